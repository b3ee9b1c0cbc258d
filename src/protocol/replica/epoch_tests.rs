//! Membership epochs driven by hand on pure replicas (found by mutation
//! testing, README "Mutation testing"): a change executed and scheduled, the
//! switch at the stable checkpoint of its boundary, messages of the next
//! epoch held until then, a retired member falling silent, a joiner
//! catching up from a snapshot.

use crate::crypto::{Digest, Keypair};
use crate::protocol::replica::tests::params;
use crate::protocol::replica::tests::test_swarm::{swarm, swarm_with, RETRANSMIT_US, VIEW_CHANGE_TIMEOUT_US};
use crate::protocol::{
    AgentId, Epoch, Input, Member, MembershipChange, Message, Micros, Output, ProtocolParams, RecoveredCheckpoint,
    RecoveredState, Replica, Seq, SignedMessage, View,
};
use std::sync::Arc;

/// The checkpoint votes at the first boundary (seq 2): withheld, they keep a
/// replica from switching there.
fn first_boundary_vote(signed: &SignedMessage) -> bool {
    matches!(signed.message, Message::Checkpoint { seq: Seq(2), .. })
}

fn joiner_key() -> Keypair {
    Keypair::from_seed([60; 32])
}

fn joiner() -> Member {
    Member { id: AgentId(4), name: "a5".into(), public_key: joiner_key().public_key() }
}

/// The change adding [`joiner`] to epoch 0's committee.
fn add_joiner() -> MembershipChange {
    MembershipChange { from_epoch: Epoch(0), add: vec![joiner()], remove: Vec::new(), f: None }
}

#[test]
fn an_ordered_change_is_scheduled_at_the_next_boundary_and_switches_when_its_checkpoint_is_stable() {
    let mut s = swarm();
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    // Ordered alone in batch 1: due at the checkpoint at 2, which the primary reaches without load.
    let scheduled = s.of(1, |o| match o {
        Output::EpochScheduled { executed_at, at, committee } => Some((*executed_at, *at, committee.epoch())),
        _ => None,
    });
    assert_eq!(scheduled, vec![(Seq(1), Seq(2), Epoch(1))]);
    assert_eq!(s.epochs(), vec![Epoch(1); 4]);
    for replica in &s.replicas {
        assert_eq!(replica.committee().n(), 5);
        assert_eq!(replica.stats().membership_changes_applied, 1);
        assert_eq!(replica.membership().applied, vec![change.clone()]);
        assert_eq!(replica.membership().boundaries, vec![Seq(2)]);
    }
    let changed = s.of(1, |o| match o {
        Output::EpochChanged { committee, member } => Some((committee.epoch(), *member)),
        _ => None,
    });
    assert_eq!(changed, vec![(Epoch(1), true)]);
}

/// A replica whose votes for the boundary's checkpoint are late stays in the
/// old epoch while its peers run the new one: it answers nothing of the new
/// epoch yet but holds it, and processes it once it switches. Its peers answer
/// its STATUS although it is signed in the older epoch.
#[test]
fn a_replica_that_switches_late_holds_the_next_epochs_messages_and_replays_them_after_switching() {
    let mut s = swarm();
    s.withhold = Some((2, first_boundary_vote));
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    assert_eq!(s.epochs(), vec![Epoch(1), Epoch(1), Epoch(0), Epoch(1)]);
    // It waits for its checkpoint: it asks its peers, which answer across the epochs.
    let mark = s.outputs.len();
    for _ in 0..3 {
        s.now += RETRANSMIT_US + 1;
        s.step(2, Input::Tick);
        s.deliver_all();
    }
    assert!(s.sent_since(mark, 2).iter().any(|(_, m)| matches!(m, Message::Status { .. })));
    assert!(
        s.sent_since(mark, 0).iter().any(|(to, _)| *to == Some(AgentId(2))),
        "a STATUS of the older epoch went unanswered"
    );
    // Epoch 1 (five members, quorum 4) cannot order without it: its messages wait at replica 2.
    s.submit(0..2);
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), vec![Seq(2); 4]);
    assert_eq!(s.replicas[2].stats().dropped_wrong_epoch, 0, "the next epoch's messages were dropped");
    s.release();
    assert_eq!(s.epochs(), vec![Epoch(1); 4]);
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), vec![Seq(3); 4]);
}

/// A member removed by the change it was late for retires at the switch and
/// then takes no part: the messages of the new epoch it held are not replayed.
#[test]
fn a_replica_retired_at_a_late_switch_replays_none_of_the_messages_it_held() {
    let mut s = swarm();
    s.withhold = Some((3, first_boundary_vote));
    let replace = MembershipChange { from_epoch: Epoch(0), add: vec![joiner()], remove: vec![AgentId(3)], f: None };
    let change = s.sign(replace);
    s.hand_in(&change);
    assert_eq!(s.epochs(), vec![Epoch(1), Epoch(1), Epoch(1), Epoch(0)]);
    // Members 0 to 2 are a quorum of the new committee.
    s.submit(0..2);
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), [3, 3, 3, 2].map(Seq));
    let mark = s.outputs.len();
    s.release();
    let retired = &s.replicas[3];
    assert!(retired.is_retired());
    assert_eq!((retired.committee().epoch(), retired.last_executed()), (Epoch(1), Seq(2)));
    assert_eq!(s.sent_since(mark, 3), vec![], "a retired replica took part in the new epoch");
    let changed = s.of(3, |o| match o {
        Output::EpochChanged { member, .. } => Some(*member),
        _ => None,
    });
    assert_eq!(changed, vec![false]);
}

/// The messages of the next epoch held before the switch are bounded: the
/// 4,097th is dropped and counted.
#[test]
fn a_replica_holds_at_most_4096_messages_of_the_next_epoch() {
    let mut s = swarm();
    s.withhold = Some((2, first_boundary_vote));
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    assert_eq!(s.replicas[2].committee().epoch(), Epoch(0));
    let dropped = s.replicas[2].stats().dropped_wrong_epoch;
    for seq in 0..4097 {
        let prepare = Message::Prepare { view: View(0), seq: Seq(100 + seq), digest: Digest([1; 32]) };
        let signed = Arc::new(SignedMessage::sign(prepare, Epoch(1), AgentId(1), &s.f.keys[1]));
        s.replicas[2].step(Micros(s.now), Input::Message(signed));
    }
    assert_eq!(s.replicas[2].stats().dropped_wrong_epoch, dropped + 1);
}

/// Once the change executed (scheduled, the switch not yet made) the replica
/// no longer holds it: handed in again it is stale, not a duplicate of a held one.
#[test]
fn a_change_handed_in_again_after_it_executed_is_stale() {
    let mut s = swarm();
    s.withhold = Some((2, first_boundary_vote));
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    assert_eq!(s.replicas[2].committee().epoch(), Epoch(0));
    let before = s.replicas[2].stats().clone();
    s.step(2, Input::Membership(change));
    let after = s.replicas[2].stats();
    assert_eq!((after.dropped_stale, after.dropped_duplicate), (before.dropped_stale + 1, before.dropped_duplicate));
}

/// A backup that held another change of the old epoch (the primary ordered a
/// different one) forgets it at the switch: it can never be ordered there, so
/// it is no work left undone for which the new primary could be suspected.
#[test]
fn a_held_change_of_the_old_epoch_is_forgotten_at_the_switch() {
    let mut s = swarm();
    let ordered = s.sign(add_joiner());
    let other = Member { id: AgentId(5), name: "a6".into(), public_key: Keypair::from_seed([61; 32]).public_key() };
    let held = s.sign(MembershipChange { from_epoch: Epoch(0), add: vec![other], remove: Vec::new(), f: None });
    for i in 0..4 {
        s.step(i, Input::Membership(ordered.clone()));
    }
    s.step(1, Input::Membership(held));
    s.deliver_all();
    assert_eq!(s.epochs(), vec![Epoch(1); 4]);
    for _ in 0..8 {
        s.tick(VIEW_CHANGE_TIMEOUT_US);
    }
    let suspected = s.outputs.iter().filter(|(_, o)| matches!(o, Output::ViewChangeStarted { .. })).count();
    assert_eq!(suspected, 0, "an idle swarm suspected its primary");
    let refused = s.outputs.iter().filter(|(_, o)| matches!(o, Output::MembershipRefused { .. })).count();
    assert_eq!(refused, 0);
}

/// Founders that made the switch themselves hold the whole history: idle in
/// the new epoch, they ask nobody anything. A validator that joined in it
/// holds none of it and asks at once, even with nothing to do; the snapshot
/// it is sent brings the state and the history, and it then takes part.
#[test]
fn only_a_joiner_without_the_history_of_its_epoch_asks_when_idle_and_a_snapshot_lets_it_take_part() {
    let mut s = swarm();
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    for _ in 0..4 {
        s.tick(RETRANSMIT_US + 1);
    }
    let asked: Vec<u64> = s.replicas.iter().map(|replica| replica.stats().status_sent).collect();
    assert_eq!(asked, vec![0; 4], "idle founders asked for what they hold");
    let joined = add_joiner().apply(&s.committee).unwrap().starting_after(Seq(2));
    s.join(joiner_key(), joined);
    for _ in 0..3 {
        s.tick(RETRANSMIT_US + 1);
    }
    let joiner = &s.replicas[4];
    assert!(joiner.stats().status_sent > 0, "the joiner never asked");
    assert_eq!((joiner.stats().snapshots_installed, joiner.last_executed()), (1, Seq(2)));
    assert_eq!(joiner.membership().applied, vec![change]);
    assert!(!joiner.is_retired());
    s.submit(0..2);
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), vec![Seq(3); 5]);
}

/// Found by `examples/custom_app.rs`: the members changed view in epoch 0
/// (an equivocating primary voted out), then a replacement joined epoch 1.
/// Every replica enters an epoch in its view 0, so the joiner, which starts
/// there, takes part at once; it used to wait in view 0 while its peers
/// carried view 1 into the epoch with no NEW-VIEW there to show it, dropping
/// their messages as of another view.
#[test]
fn a_joiner_takes_part_although_its_peers_changed_view_in_the_epoch_before() {
    let mut s = swarm();
    for i in 0..4 {
        s.step(i, Input::ForceViewChange);
    }
    s.deliver_all();
    assert_eq!(s.replicas.iter().map(Replica::view).collect::<Vec<_>>(), vec![View(1); 4]);
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    let joined = add_joiner().apply(&s.committee).unwrap().starting_after(Seq(2));
    s.join(joiner_key(), joined);
    for _ in 0..3 {
        s.tick(RETRANSMIT_US + 1);
    }
    assert_eq!(s.replicas[4].last_executed(), Seq(2));
    // One batch past the boundary, not a checkpoint: the joiner must execute it in step with its peers.
    s.submit(0..1);
    let views: Vec<View> = s.replicas.iter().map(Replica::view).collect();
    assert_eq!(views, vec![View(0); 5], "every replica entered epoch 1 in its view 0");
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), vec![Seq(3); 5]);
    assert_eq!(s.replicas[4].stats().dropped_wrong_view, 0);
}

/// A founder that heard nothing of a change until its peers had switched
/// catches up by a snapshot, and with it moves into the committee the
/// snapshot's history leads to: a member of it, or retired if removed.
#[test]
fn a_founder_that_missed_a_whole_change_moves_to_its_committee_with_the_snapshot() {
    let replace = MembershipChange { from_epoch: Epoch(0), add: vec![joiner()], remove: vec![AgentId(3)], f: None };
    for (change, retired) in [(add_joiner(), false), (replace, true)] {
        let mut s = swarm();
        s.cut_off[3] = true;
        let change = s.sign(change);
        for i in 0..3 {
            s.step(i, Input::Membership(change.clone()));
        }
        s.deliver_all();
        assert_eq!(s.epochs(), vec![Epoch(1), Epoch(1), Epoch(1), Epoch(0)]);
        s.cut_off[3] = false;
        s.step(3, Input::LaterEpochHeard(Epoch(1)));
        for _ in 0..3 {
            s.tick(RETRANSMIT_US + 1);
        }
        let late = &s.replicas[3];
        assert_eq!((late.stats().snapshots_installed, late.last_executed()), (1, Seq(2)));
        assert_eq!((late.committee().epoch(), late.is_retired()), (Epoch(1), retired), "{:?}", change.change);
        assert_eq!(late.membership().applied, vec![change]);
    }
}

/// A change that cannot apply (it removes a validator that is no member) is
/// ordered like any other and refused by every replica in the same way.
#[test]
fn an_ordered_change_that_cannot_apply_is_refused_by_every_replica_and_counted() {
    let mut s = swarm();
    let change = s.sign(MembershipChange { from_epoch: Epoch(0), add: Vec::new(), remove: vec![AgentId(9)], f: None });
    s.hand_in(&change);
    for (i, replica) in s.replicas.iter().enumerate() {
        assert_eq!(replica.committee().epoch(), Epoch(0));
        assert_eq!((replica.stats().membership_changes_refused, replica.stats().membership_changes_applied), (1, 0));
        let refused = s.of(i, |o| match o {
            Output::MembershipRefused { seq, reason } => Some((*seq, reason.clone())),
            _ => None,
        });
        assert_eq!(refused, vec![(Seq(1), "validator 9 is not in the committee, so it cannot be removed".to_string())]);
    }
}

/// The change was prepared everywhere but committed nowhere when the primary
/// was replaced: the NEW-VIEW carries its batch, so the new primary does not
/// order it a second time (which every replica would then refuse).
#[test]
fn a_change_carried_into_a_new_view_is_not_ordered_again_by_the_new_primary() {
    let mut s = swarm();
    s.lose = Some(|signed| matches!(signed.message, Message::Commit { .. }));
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    assert_eq!(s.replicas.iter().map(Replica::last_executed).collect::<Vec<_>>(), vec![Seq(0); 4]);
    s.lose = None;
    for i in 0..4 {
        s.step(i, Input::ForceViewChange);
    }
    s.deliver_all();
    // View 1 executed the change; the switch to epoch 1 then starts its view 0.
    assert!(s.replicas.iter().all(|replica| replica.stats().views_installed == 1));
    assert_eq!(s.replicas.iter().map(Replica::view).collect::<Vec<_>>(), vec![View(0); 4]);
    assert_eq!(s.epochs(), vec![Epoch(1); 4]);
    let refused = s.outputs.iter().filter(|(_, o)| matches!(o, Output::MembershipRefused { .. })).count();
    assert_eq!(refused, 0, "the change was ordered twice");
}

/// A change executed at seq 3 is due at the checkpoint at 4: the checkpoint
/// at 2 becoming stable later (its votes were late) does not switch early.
#[test]
fn a_checkpoint_below_the_boundary_made_stable_late_does_not_switch_the_epoch() {
    let mut s = swarm();
    s.withhold = Some((2, |signed| matches!(signed.message, Message::Checkpoint { .. })));
    s.submit(0..4);
    let change = s.sign(add_joiner());
    s.hand_in(&change);
    assert_eq!((s.replicas[2].last_executed(), s.replicas[2].stable_checkpoint().seq), (Seq(4), Seq(0)));
    s.release();
    let steps = s.of(2, |o| match o {
        Output::CheckpointStable { seq, .. } => Some(format!("stable {}", seq.0)),
        Output::EpochScheduled { at, .. } => Some(format!("scheduled at {}", at.0)),
        Output::EpochChanged { committee, .. } => Some(format!("epoch {}", committee.epoch().0)),
        _ => None,
    });
    assert_eq!(steps, ["scheduled at 4", "stable 2", "stable 4", "epoch 1"]);
    assert_eq!(s.epochs(), vec![Epoch(1); 4]);
}

/// Checkpoint votes of the old epoch for sequence numbers past the boundary
/// (only a faulty member sends them: the old epoch executes nothing there)
/// are dropped at the switch; kept, one would stand in for its signer's vote
/// of the new epoch and the checkpoint would never be stable. With a
/// checkpoint at every sequence number, the first one past the boundary too.
#[test]
fn old_epoch_checkpoint_votes_past_the_boundary_are_dropped_at_the_switch() {
    // (checkpoint interval, the forged vote's seq, requests that fill the batches up to it)
    for (interval, forged_at, requests) in [(2, 4, 4), (1, 2, 2)] {
        let mut s = swarm_with(ProtocolParams { checkpoint_interval: interval, ..params() });
        let forged = Message::Checkpoint { seq: Seq(forged_at), state_digest: Digest([3; 32]) };
        let forged = Arc::new(SignedMessage::sign(forged, Epoch(0), AgentId(1), &s.f.keys[1]));
        s.step(0, Input::Message(forged));
        let change = s.sign(add_joiner());
        s.hand_in(&change);
        assert_eq!(s.epochs(), vec![Epoch(1); 4]);
        s.submit(0..requests);
        let stable: Vec<Seq> = s.replicas.iter().map(|replica| replica.stable_checkpoint().seq).collect();
        assert_eq!(stable, vec![Seq(forged_at); 4], "checkpoint interval {interval}");
        let evidence = s.outputs.iter().filter(|(_, o)| matches!(o, Output::Evidence(_))).count();
        assert_eq!(evidence, 0, "checkpoint interval {interval}");
    }
}

/// A founder rebuilt from a log whose stable checkpoint lies past a change
/// runs in the committee that checkpoint's history leads to: a member of it,
/// or retired if the change removed it.
#[test]
fn a_founder_restored_from_a_checkpoint_past_a_change_runs_in_the_committee_it_leads_to() {
    let replace = MembershipChange { from_epoch: Epoch(0), add: vec![joiner()], remove: vec![AgentId(3)], f: None };
    for (change, retired) in [(add_joiner(), false), (replace, true)] {
        let mut s = swarm();
        let change = s.sign(change);
        s.hand_in(&change);
        s.submit(0..4);
        let kept = &s.replicas[0];
        let stable = kept.stable_checkpoint();
        assert_eq!((stable.seq, kept.stable_membership().applied.len()), (Seq(4), 1));
        let checkpoint = RecoveredCheckpoint {
            seq: stable.seq,
            state_digest: stable.state_digest,
            proof: stable.proof.clone(),
            app: kept.stable_app().clone(),
            membership: kept.stable_membership().clone(),
        };
        let state = RecoveredState { stable: Some(checkpoint), ..RecoveredState::default() };
        let (keypair, genesis) = (s.f.keys[3].clone(), s.f.genesis.clone());
        let restored = Replica::restore(AgentId(3), keypair, s.committee.clone(), params(), genesis, state, Micros(1));
        assert_eq!(restored.committee().epoch(), Epoch(1));
        assert_eq!((restored.is_retired(), restored.last_executed()), (retired, Seq(4)), "{:?}", change.change);
    }
}

/// A STATUS signed in a later epoch than this replica's (none scheduled) is
/// not answered: only a peer left in an older epoch is helped across.
#[test]
fn a_status_of_a_later_epoch_is_dropped_not_answered() {
    let s = swarm();
    let mut replica = s.replicas.into_iter().nth(1).unwrap();
    let status = Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(0), passive: false };
    let later = Arc::new(SignedMessage::sign(status, Epoch(1), AgentId(2), &s.f.keys[2]));
    let out = replica.step(Micros(1), Input::Message(later));
    assert!(out.iter().all(|o| !matches!(o, Output::SendTo(..))), "{out:?}");
    assert_eq!((replica.stats().status_answered, replica.stats().dropped_wrong_epoch), (0, 1));
}
