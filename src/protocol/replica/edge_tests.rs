//! The replica's rules at their edges, found by mutation testing (README,
//! "Mutation testing"): a timer acts at its deadline, not a tick later; a
//! membership change handed in again while it is being ordered is not
//! ordered twice; evidence found and snapshots installed are counted.

use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, TxId};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{
    AgentId, Committee, Epoch, Input, Member, MembershipChange, MembershipState, Message, Micros, Output, Replica, Seq,
    SignedMembershipChange, SignedMessage,
};
use std::sync::Arc;

use crate::protocol::replica::tests::{broadcasts, fixture, params};

/// `params()`'s retransmit interval.
const RETRANSMIT_US: u64 = 10_000;

#[test]
fn a_stuck_backup_asks_for_what_it_lacks_at_its_retransmit_deadline_then_backs_off() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    backup.step(Micros(0), Input::Message(pre_prepare));
    assert_eq!((backup.log_len(), backup.params()), (1, &params()));
    // Its prepare reached no one: nothing moves until the retransmit timer.
    let deadline = backup.next_deadline();
    assert_eq!(deadline, Some(Micros(RETRANSMIT_US)));
    assert!(broadcasts(&backup.step(Micros(RETRANSMIT_US - 1), Input::Tick)).is_empty());
    let out = backup.step(Micros(RETRANSMIT_US), Input::Tick);
    let sent = broadcasts(&out);
    assert!(
        matches!(sent[..], [Message::Status { last_executed: Seq(0), .. }, Message::Prepare { seq: Seq(1), digest: d, .. }] if *d == digest),
        "at its deadline the backup sent {sent:?}"
    );
    assert_eq!(backup.stats().status_sent, 1);
    // Still stuck: it asks again, then waits twice as long before the next time.
    assert_eq!(backup.next_deadline(), Some(Micros(2 * RETRANSMIT_US)));
    backup.step(Micros(2 * RETRANSMIT_US), Input::Tick);
    assert_eq!(backup.stats().status_sent, 2);
    assert_eq!(backup.next_deadline(), Some(Micros(4 * RETRANSMIT_US)), "no back-off while stuck");
}

#[test]
fn a_membership_change_handed_in_again_while_it_is_being_ordered_is_a_duplicate_not_proposed_again() {
    let f = fixture();
    let operator = Keypair::from_seed([50; 32]);
    let joiner = Member { id: AgentId(4), name: "a5".into(), public_key: Keypair::from_seed([60; 32]).public_key() };
    let change = MembershipChange { from_epoch: Epoch(0), add: vec![joiner], remove: Vec::new(), f: None };
    let change = Arc::new(SignedMembershipChange::sign(change, &operator));
    let mut primary = f.replica(0);
    let out = primary.step(Micros(0), Input::Membership(change.clone()));
    let sent = broadcasts(&out);
    assert!(
        matches!(sent[..], [Message::PrePrepare { seq: Seq(1), batch, .. }] if batch.membership.as_ref() == Some(&change)),
        "the primary orders the change at once: {sent:?}"
    );
    // The operator's tool hands it in again (a retry, or to every validator).
    let out = primary.step(Micros(1), Input::Membership(change));
    assert_eq!(broadcasts(&out), Vec::<&Message>::new(), "the change was proposed twice");
    assert_eq!(primary.stats().dropped_duplicate, 1);
}

#[test]
fn every_equivocation_found_is_reported_and_counted() {
    let f = fixture();
    let mut backup = f.replica(1);
    backup.step(Micros(0), Input::Message(f.pre_prepare(1, vec![f.request(0)]).0));
    for (at, nonce) in [(1, 1), (2, 2)] {
        let out = backup.step(Micros(at), Input::Message(f.pre_prepare(1, vec![f.request(nonce)]).0));
        assert!(out.iter().any(|o| matches!(o, Output::Evidence(e) if e.accused() == AgentId(0))), "{out:?}");
        assert_eq!(backup.stats().evidence_found, at);
    }
}

#[test]
fn a_snapshot_installed_is_counted_and_a_stale_one_is_dropped() {
    let f = fixture();
    let mut behind = f.replica(1);
    let mut ledger = f.genesis.clone();
    let from = AccountId(f.account.public_key());
    let to = AccountId(f.keys[0].public_key());
    ledger.execute(&Tx::transfer(TxId([1; 16]), from, to, 10, 0));
    let membership = Arc::new(MembershipState::default());
    let state_digest = checkpoint_digest(ledger.state_digest(), &membership);
    let snapshot = |seq: u64| {
        let message = Message::StateSnapshot {
            seq: Seq(seq),
            state_digest,
            state: Arc::new(crate::app::Application::snapshot(&ledger)),
            membership: membership.clone(),
            proof: Vec::new(),
        };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(2), &f.keys[2]))
    };
    // The caller's verifier checked the proof; the replica installs what it has not reached.
    behind.step(Micros(0), Input::Message(snapshot(2)));
    assert_eq!((behind.last_executed(), behind.stats().snapshots_installed), (Seq(2), 1));
    assert_eq!(behind.ledger().state_digest(), ledger.state_digest());
    behind.step(Micros(1), Input::Message(snapshot(2)));
    assert_eq!((behind.stats().snapshots_installed, behind.stats().dropped_stale), (1, 1));
}

#[test]
fn a_membership_change_from_another_epoch_is_dropped_as_stale_and_counted() {
    let f = fixture();
    let operator = Keypair::from_seed([50; 32]);
    let mut primary = f.replica(0);
    for (at, from_epoch) in [(0, 1), (1, 2)] {
        let change =
            MembershipChange { from_epoch: Epoch(from_epoch), add: Vec::new(), remove: vec![AgentId(3)], f: None };
        let out =
            primary.step(Micros(at), Input::Membership(Arc::new(SignedMembershipChange::sign(change, &operator))));
        assert_eq!(broadcasts(&out), Vec::<&Message>::new(), "a change of epoch {from_epoch} was ordered in epoch 0");
        assert_eq!(primary.stats().dropped_stale, at + 1);
    }
}

#[test]
fn a_backup_holding_a_request_the_primary_has_not_ordered_asks_for_what_it_lacks() {
    let f = fixture();
    let mut backup = f.replica(1);
    let request = f.pre_prepare(1, vec![f.request(0)]).0;
    let Message::PrePrepare { batch, .. } = &request.message else { unreachable!() };
    backup.step(Micros(0), Input::Requests(batch.requests.clone()));
    let out = backup.step(Micros(RETRANSMIT_US), Input::Tick);
    assert!(matches!(broadcasts(&out)[..], [Message::Status { .. }]), "{out:?}");
}

#[test]
fn a_replica_knows_each_committee_once_a_joiner_its_own_too() {
    let f = fixture();
    let epochs = |replica: &Replica| replica.known_committees().iter().map(Committee::epoch).collect::<Vec<_>>();
    assert_eq!(epochs(&f.replica(0)), vec![Epoch(0)]);
    let joiner_key = Keypair::from_seed([60; 32]);
    let joiner = Member { id: AgentId(4), name: "a5".into(), public_key: joiner_key.public_key() };
    let change = MembershipChange { from_epoch: Epoch(0), add: vec![joiner], remove: Vec::new(), f: None };
    let joined = change.apply(&f.committee).unwrap().starting_after(Seq(2));
    let replica = Replica::joining(AgentId(4), joiner_key, f.committee.clone(), joined, params(), f.genesis.clone());
    assert_eq!(epochs(&replica), vec![Epoch(0), Epoch(1)]);
}
