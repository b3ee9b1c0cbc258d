//! The client's lifecycle: it is done only when nothing waits and nothing is
//! in flight, it resends what goes unanswered for a retry period, and a
//! forged reply counts for nothing.

use super::*;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::protocol::{Seq, View};

const RETRY_US: u64 = 1_000;

struct Setup {
    keys: Vec<Keypair>,
    transfers: Vec<SignedTx>,
    client: ClientCore,
}

/// A client of four validators with two transfers of one account: the second
/// waits until the first is accepted (one in flight per account).
fn setup() -> Setup {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "v", None).unwrap();
    let owner = Keypair::from_seed([50; 32]);
    let from = AccountId(owner.public_key());
    let transfers: Vec<SignedTx> = (0..2u8)
        .map(|nonce| {
            let transfer = Tx::transfer(TxId([nonce + 1; 16]), from, from, 1, nonce.into());
            transfer.sign(&owner)
        })
        .collect();
    let client = ClientCore::new(ClientId(0), committee, transfers.clone(), 2, RETRY_US);
    Setup { keys, transfers, client }
}

impl Setup {
    /// Replicas 0 and 1 (f+1 of four) answer that `tx` committed; what the client completed.
    fn accept(&mut self, now: u64, tx: usize) -> Vec<TxId> {
        let mut completed = Vec::new();
        for replica in 0..2 {
            let outcomes = vec![(self.transfers[tx].id(), TxOutcome::Committed)];
            let reply = Reply::sign(
                Epoch(0),
                AgentId(replica),
                View(0),
                Seq(1),
                ClientId(0),
                outcomes,
                &self.keys[replica as usize],
            );
            for output in self.client.step(Micros(now), ClientInput::Reply(Arc::new(reply))) {
                if let ClientOutput::Completed(done) = output {
                    completed.push(done.tx_id);
                }
            }
        }
        completed
    }
}

fn sent(outputs: &[ClientOutput]) -> Vec<TxId> {
    outputs
        .iter()
        .flat_map(|output| match output {
            ClientOutput::Broadcast(requests) => requests.iter().map(Request::tx_id).collect(),
            ClientOutput::Completed(_) => Vec::new(),
        })
        .collect()
}

#[test]
fn a_client_is_done_only_when_nothing_waits_and_nothing_is_in_flight() {
    let mut s = setup();
    assert!(!s.client.is_done(), "done before it sent anything");
    let first = s.transfers[0].id();
    assert_eq!(sent(&s.client.step(Micros(0), ClientInput::Tick)), vec![first]);
    assert_eq!(s.client.in_flight(), 1, "the second waits for the first");
    assert!(!s.client.is_done());
    assert_eq!(s.accept(10, 0), vec![first]);
    // The second is in flight now, nothing waits.
    assert_eq!(s.client.in_flight(), 1);
    assert!(!s.client.is_done(), "done with a transfer in flight");
    assert_eq!(s.accept(20, 1), vec![s.transfers[1].id()]);
    assert!(s.client.is_done());
}

#[test]
fn an_unanswered_request_is_sent_again_once_its_retry_period_passed() {
    let mut s = setup();
    let first = s.transfers[0].id();
    s.client.step(Micros(0), ClientInput::Tick);
    assert_eq!(s.client.next_deadline(), Some(Micros(RETRY_US)));
    assert!(sent(&s.client.step(Micros(RETRY_US - 1), ClientInput::Tick)).is_empty(), "resent too early");
    // The caller may wake late: the request is resent all the same.
    assert_eq!(sent(&s.client.step(Micros(RETRY_US * 3 / 2), ClientInput::Tick)), vec![first]);
    assert_eq!(s.client.stats().resent, 1);
    // Checked four times per retry period from then on.
    assert_eq!(s.client.next_deadline(), Some(Micros(RETRY_US * 3 / 2 + RETRY_US / 4)));
}

#[test]
fn a_reply_with_a_bad_signature_counts_for_nothing_and_is_counted() {
    let mut s = setup();
    s.client.step(Micros(0), ClientInput::Tick);
    let outcomes = vec![(s.transfers[0].id(), TxOutcome::Committed)];
    for replica in 0..2u32 {
        // Signed by another validator's key than the one it names.
        let key = &s.keys[(replica as usize + 2) % 4];
        let forged = Reply::sign(Epoch(0), AgentId(replica), View(0), Seq(1), ClientId(0), outcomes.clone(), key);
        let out = s.client.step(Micros(1), ClientInput::Reply(Arc::new(forged)));
        assert!(out.iter().all(|o| !matches!(o, ClientOutput::Completed(_))), "completed on forged replies");
    }
    assert_eq!((s.client.stats().replies_bad_signature, s.client.in_flight()), (2, 1));
}
