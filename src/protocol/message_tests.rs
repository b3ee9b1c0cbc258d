//! A signature covers every field of what it signs: a reply's outcomes and
//! header, and the messages a VIEW-CHANGE or NEW-VIEW embeds.

use super::*;
use crate::ledger::RejectReason;

fn reply() -> Reply {
    let outcomes = vec![(TxId([1; 16]), TxOutcome::Committed)];
    Reply {
        epoch: Epoch(0),
        replica: AgentId(1),
        view: View(0),
        seq: Seq(1),
        client: ClientId(0),
        outcomes,
        signature: Signature([0; 64]),
    }
}

#[test]
fn a_replys_signing_bytes_change_with_each_of_its_fields() {
    let base = reply().signing_bytes();
    let changed: [fn(&mut Reply); 6] = [
        |r| r.epoch = Epoch(1),
        |r| r.replica = AgentId(2),
        |r| r.view = View(1),
        |r| r.seq = Seq(2),
        |r| r.client = ClientId(1),
        |r| r.outcomes[0].1 = TxOutcome::Rejected(RejectReason::ZeroAmount),
    ];
    for (i, change) in changed.iter().enumerate() {
        let mut other = reply();
        change(&mut other);
        assert_ne!(other.signing_bytes(), base, "change {i} is not signed");
    }
}

#[test]
fn a_view_change_or_new_view_signature_covers_the_messages_it_embeds() {
    let key = crate::crypto::Keypair::from_seed([1; 32]);
    let checkpoint = |digest: u8| {
        let message = Message::Checkpoint { seq: Seq(2), state_digest: Digest([digest; 32]) };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &key))
    };
    let view_change = |proof: Vec<Arc<SignedMessage>>| Message::ViewChange {
        new_view: View(1),
        stable_seq: Seq(2),
        stable_digest: Digest([1; 32]),
        checkpoint_proof: proof,
        prepared: Vec::new(),
        passive: false,
    };
    let bytes = |message: &Message| message.signing_bytes(Epoch(0), AgentId(0));
    assert_ne!(bytes(&view_change(vec![checkpoint(1)])), bytes(&view_change(vec![checkpoint(2)])));
    let new_view = |view_changes: Vec<Arc<SignedMessage>>| Message::NewView {
        view: View(1),
        view_changes,
        pre_prepares: Vec::new(),
    };
    let signed_view_change =
        |digest: u8| Arc::new(SignedMessage::sign(view_change(vec![checkpoint(digest)]), Epoch(0), AgentId(0), &key));
    assert_ne!(bytes(&new_view(vec![signed_view_change(1)])), bytes(&new_view(vec![signed_view_change(2)])));
}
