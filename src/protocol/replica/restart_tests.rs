//! A replica rebuilt from what its log kept (found by mutation testing,
//! README "Mutation testing"): it counts again what it executed again, holds
//! a pre-prepared batch as work in progress (and suspects a primary that
//! never gets it committed), never executes a slot it had only voted in, and
//! resumes the view change it was in; the NEW-VIEW a log keeps.

use crate::protocol::membership::checkpoint_digest;
use crate::protocol::replica::tests::test_swarm::{swarm, VIEW_CHANGE_TIMEOUT_US};
use crate::protocol::replica::tests::{fixture, params};
use crate::protocol::{
    AgentId, Input, MembershipState, Message, Micros, Output, RecoveredSlot, RecoveredState, Replica, ReplicaStats,
    Seq, SignedMessage, View,
};
use std::sync::Arc;

fn restore(state: RecoveredState) -> Replica {
    let f = fixture();
    Replica::restore(AgentId(1), f.keys[1].clone(), f.committee.clone(), params(), f.genesis.clone(), state, Micros(0))
}

#[test]
fn a_restored_replica_counts_the_batches_it_executes_again_as_it_counted_them_the_first_time() {
    let mut s = swarm();
    // Nonce 5 is out of order: executed, and rejected.
    let requests = vec![s.f.request(0), s.f.request(5), s.f.request(1)];
    for i in 0..4 {
        s.step(i, Input::Requests(requests.clone()));
    }
    s.deliver_all();
    let live = &s.replicas[1];
    let mut state = RecoveredState::default();
    state.executed.extend(s.of(1, |o| match o {
        Output::Executed(executed) => Some((executed.seq, executed.batch.clone())),
        _ => None,
    }));
    assert_eq!(state.executed.len(), 2);
    let restored = restore(state);
    let counted = |stats: &ReplicaStats| (stats.batches_executed, stats.txs_committed, stats.txs_rejected);
    assert_eq!(counted(live.stats()), (2, 2, 1));
    assert_eq!(counted(restored.stats()), counted(live.stats()));
    assert_eq!((restored.last_executed(), restored.ledger()), (Seq(2), live.ledger()));
}

/// Backup 1 had accepted the primary's pre-prepare at seq 1 and prepared it.
fn pre_prepared_before_the_crash(executed: bool) -> RecoveredState {
    let f = fixture();
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    let prepare = f.signed(1, Message::Prepare { view: View(0), seq: Seq(1), digest });
    let mut state = RecoveredState::default();
    if executed {
        let Message::PrePrepare { batch, .. } = &pre_prepare.message else { unreachable!() };
        state.executed.insert(Seq(1), batch.clone());
    }
    let slot = RecoveredSlot { pre_prepare: Some(pre_prepare), prepare: Some(prepare), ..RecoveredSlot::default() };
    state.slots.insert(Seq(1), slot);
    state
}

#[test]
fn a_restored_backup_holding_a_batch_that_never_commits_suspects_the_primary_and_one_that_executed_it_does_not() {
    for executed in [false, true] {
        let mut backup = restore(pre_prepared_before_the_crash(executed));
        assert_eq!(backup.last_executed(), Seq(u64::from(executed)));
        let mut suspected = false;
        for at in (1..=8).map(|i| i * VIEW_CHANGE_TIMEOUT_US) {
            let out = backup.step(Micros(at), Input::Tick);
            suspected |= out.iter().any(|o| matches!(o, Output::ViewChangeStarted { .. }));
        }
        assert_eq!(suspected, !executed, "executed before the crash: {executed}");
    }
}

#[test]
fn a_restored_backup_executes_a_slot_it_only_prepared_once_a_quorum_commits_not_before() {
    let f = fixture();
    let mut backup = restore(pre_prepared_before_the_crash(false));
    let digest = backup.pre_prepare_at(Seq(1)).and_then(|p| crate::protocol::slot_of(p)).map(|(.., d)| d).unwrap();
    let prepare = f.signed(2, Message::Prepare { view: View(0), seq: Seq(1), digest });
    backup.step(Micros(1), Input::Message(prepare));
    assert_eq!(backup.last_executed(), Seq(0), "executed on its own prepared certificate");
    for from in [0, 2] {
        backup.step(Micros(2), Input::Message(f.signed(from, Message::Commit { view: View(0), seq: Seq(1), digest })));
    }
    assert_eq!((backup.last_executed(), backup.stats().txs_committed), (Seq(1), 1));
}

/// `from`'s VIEW-CHANGE for `new_view` from the genesis checkpoint.
fn view_change(from: u32, new_view: u64) -> Arc<SignedMessage> {
    let f = fixture();
    let stable_digest = checkpoint_digest(f.genesis.state_digest(), &MembershipState::default());
    f.signed(
        from,
        Message::ViewChange {
            new_view: View(new_view),
            stable_seq: Seq(0),
            stable_digest,
            checkpoint_proof: Vec::new(),
            prepared: Vec::new(),
            passive: false,
        },
    )
}

#[test]
fn a_restored_replica_resumes_its_own_view_change_to_a_view_above_its_own_and_no_other() {
    let restored_with = |view: u64, view_change: Arc<SignedMessage>| {
        restore(RecoveredState { view: View(view), view_change: Some(view_change), ..RecoveredState::default() })
    };
    let mut asking = restored_with(0, view_change(1, 1));
    assert_eq!((asking.view(), asking.changing_to()), (View(0), Some(View(1))));
    // Its timer runs from the restart: at its deadline it asks for the next view.
    let out = asking.step(Micros(VIEW_CHANGE_TIMEOUT_US + 1), Input::Tick);
    assert!(out.iter().any(|o| matches!(o, Output::ViewChangeStarted { from: View(0), to: View(2), .. })), "{out:?}");
    assert_eq!(asking.changing_to(), Some(View(2)));
    // A VIEW-CHANGE for the view it is in is over; one signed by another is not its own.
    assert_eq!(restored_with(1, view_change(1, 1)).changing_to(), None);
    assert_eq!(restored_with(0, view_change(2, 1)).changing_to(), None);
}

/// Replica 0 (view 0's primary) orders nothing: the others move to view 1,
/// whose primary (1) sends the NEW-VIEW. Every replica keeps that NEW-VIEW,
/// which its log records with the view (and a restart resends to a peer
/// still in view 0).
#[test]
fn every_replica_keeps_the_new_view_that_started_its_view() {
    let mut s = swarm();
    s.lose = Some(|m| matches!(m.message, Message::PrePrepare { .. }));
    s.submit(0..1);
    s.lose = None;
    assert!(s.replicas.iter().all(|r| r.last_new_view().is_none()));
    s.tick(VIEW_CHANGE_TIMEOUT_US + 1);
    let sent = s.of(1, |o| match o {
        Output::Broadcast(m) if matches!(m.message, Message::NewView { view: View(1), .. }) => Some(m.clone()),
        _ => None,
    });
    assert_eq!(sent.len(), 1, "view 1's primary sends one NEW-VIEW");
    for replica in &s.replicas {
        assert_eq!(replica.view(), View(1));
        assert_eq!(replica.last_new_view(), Some(&sent[0]), "replica {:?}", replica.id());
    }
}
