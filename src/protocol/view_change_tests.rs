//! The NEW-VIEW plan takes, for each sequence number, the batch prepared in
//! the highest view, whatever order the VIEW-CHANGEs came in.

use super::*;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::protocol::{AgentId, Epoch, PreparedCertificate, Request};

fn key() -> Keypair {
    Keypair::from_seed([1; 32])
}

/// A certificate of a batch prepared in `view` at seq 1 (its prepares do not matter to the plan).
fn prepared_in(view: u64, requests: Vec<Request>) -> PreparedCertificate {
    let batch = Arc::new(Batch::of(requests));
    let message = Message::PrePrepare { view: View(view), seq: Seq(1), digest: batch.digest(), batch };
    PreparedCertificate {
        pre_prepare: Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &key())),
        prepares: Vec::new(),
    }
}

fn view_change(from: u32, prepared: Vec<PreparedCertificate>) -> Arc<SignedMessage> {
    let message = Message::ViewChange {
        new_view: View(3),
        stable_seq: Seq(0),
        stable_digest: Digest::default(),
        checkpoint_proof: Vec::new(),
        prepared,
        passive: false,
    };
    Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from), &key()))
}

#[test]
fn the_plan_keeps_the_batch_prepared_in_the_highest_view() {
    let transfer = |nonce: u64| {
        let owner = Keypair::from_seed([9; 32]);
        let from = crate::ledger::AccountId(owner.public_key());
        let id = crate::ledger::TxId([nonce as u8; 16]);
        let tx = Tx::transfer(id, from, from, 1, nonce).sign(&owner);
        Request { client: crate::protocol::ClientId(0), tx }
    };
    let (older, newer) = (prepared_in(1, vec![transfer(0)]), prepared_in(2, vec![transfer(1)]));
    let newer_digest = newer.slot().unwrap().2;
    let one_order = [view_change(1, vec![older.clone()]), view_change(2, vec![newer.clone()]), view_change(3, vec![])];
    let other_order = [view_change(1, vec![newer]), view_change(2, vec![older]), view_change(3, vec![])];
    for view_changes in [one_order, other_order] {
        let plan = plan_new_view(&view_changes);
        assert_eq!((plan.min_seq, plan.max_seq), (Seq(0), Seq(1)));
        assert_eq!(plan.slots.get(&Seq(1)).map(|(digest, _)| *digest), Some(newer_digest));
    }
}
