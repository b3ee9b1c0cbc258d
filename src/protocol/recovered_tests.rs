//! Folding a replica's own messages into its recovered state: what is kept,
//! what a restart then recognizes as already signed, and what lies at or
//! below the stable checkpoint and is not kept.

use super::*;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::Ledger;
use crate::protocol::{Batch, Epoch, MembershipState};

const ME: AgentId = AgentId(0);

fn key() -> Keypair {
    Keypair::from_seed([3; 32])
}

fn own(message: Message) -> Arc<SignedMessage> {
    Arc::new(SignedMessage::sign(message, Epoch(0), ME, &key()))
}

fn pre_prepare(view: u64, seq: u64) -> Arc<SignedMessage> {
    let batch = Arc::new(Batch::of(Vec::new()));
    own(Message::PrePrepare { view: View(view), seq: Seq(seq), digest: batch.digest(), batch })
}

fn view_change(new_view: u64) -> Arc<SignedMessage> {
    own(Message::ViewChange {
        new_view: View(new_view),
        stable_seq: Seq(0),
        stable_digest: Digest([0; 32]),
        checkpoint_proof: Vec::new(),
        prepared: Vec::new(),
        passive: false,
    })
}

/// A pre-prepare, PREPARE, COMMIT and CHECKPOINT of this replica, all at `seq`.
fn slot_messages(seq: u64) -> Vec<Arc<SignedMessage>> {
    let (seq, digest) = (Seq(seq), Digest([7; 32]));
    vec![
        pre_prepare(1, seq.0),
        own(Message::Prepare { view: View(1), seq, digest }),
        own(Message::Commit { view: View(1), seq, digest }),
        own(Message::Checkpoint { seq, state_digest: digest }),
    ]
}

fn stable_at(seq: u64) -> RecoveredCheckpoint {
    RecoveredCheckpoint {
        seq: Seq(seq),
        state_digest: Digest([1; 32]),
        proof: Vec::new(),
        app: Arc::new(Ledger::with_genesis(&[]).unwrap()),
        membership: Arc::new(MembershipState::default()),
    }
}

#[test]
fn every_own_message_recorded_is_recognized_after_a_restart_and_recording_it_again_changes_nothing() {
    let mut state = RecoveredState { view: View(1), ..RecoveredState::<Ledger>::default() };
    for signed in slot_messages(1).into_iter().chain([view_change(2)]) {
        assert!(!state.holds_own(&signed), "{:?} before it is recorded", signed.message);
        state.record_own(signed.clone());
        assert!(state.holds_own(&signed), "{:?} is not recognized once recorded", signed.message);
        let once = state.clone();
        state.record_own(signed.clone());
        assert_eq!(state, once, "recording a message twice changed the state");
        // Another message of this replica for the same slot is not the one it holds.
        let mut other = (*signed).clone();
        other.signature = own(Message::Prepare { view: View(9), seq: Seq(9), digest: Digest([9; 32]) }).signature;
        assert!(!state.holds_own(&other), "{:?} held by its sender alone", other.message);
    }
    // The primary's own pre-prepare is its slot's pre-prepare, and an audit sees it.
    assert_eq!(state.own_messages(ME).len(), 5);
    assert!(state.batch_for(Seq(1), Batch::of(Vec::new()).digest()).is_some());
}

#[test]
fn own_messages_at_or_below_the_stable_checkpoint_or_asking_for_a_past_view_are_not_kept() {
    let mut state = RecoveredState { view: View(2), ..RecoveredState::<Ledger>::default() };
    state.make_stable(stable_at(4));
    for signed in slot_messages(3).into_iter().chain(slot_messages(4)).chain([view_change(2)]) {
        state.record_own(signed.clone());
        assert!(!state.holds_own(&signed), "{:?} was kept", signed.message);
    }
    assert_eq!(
        state,
        RecoveredState { view: View(2), stable: Some(stable_at(4)), ..RecoveredState::<Ledger>::default() }
    );
    for signed in slot_messages(5).into_iter().chain([view_change(3)]) {
        state.record_own(signed.clone());
        assert!(state.holds_own(&signed), "{:?} was not kept", signed.message);
    }
}

#[test]
fn a_pre_prepare_of_an_older_view_never_replaces_the_one_of_a_newer_view() {
    let mut state = RecoveredState::<Ledger>::default();
    state.accept_pre_prepare(pre_prepare(2, 1));
    state.record_own(own(Message::Prepare { view: View(2), seq: Seq(1), digest: Digest([7; 32]) }));
    let before = state.clone();
    state.accept_pre_prepare(pre_prepare(1, 1));
    assert_eq!(state, before, "an older view's pre-prepare changed the slot");
    assert!(state.holds_pre_prepare(&pre_prepare(2, 1)));
}

#[test]
fn entering_a_view_ends_the_view_change_and_takes_the_new_views_pre_prepares() {
    let mut state = RecoveredState { view: View(1), ..RecoveredState::<Ledger>::default() };
    state.accept_pre_prepare(pre_prepare(1, 1));
    state.record_own(own(Message::Prepare { view: View(1), seq: Seq(1), digest: Digest([7; 32]) }));
    state.record_own(view_change(2));
    let new_view = Arc::new(SignedMessage::sign(
        Message::NewView { view: View(2), view_changes: Vec::new(), pre_prepares: vec![pre_prepare(2, 1)] },
        Epoch(0),
        AgentId(2),
        &Keypair::from_seed([4; 32]),
    ));
    state.enter_view(View(2), Some(new_view.clone()));
    assert_eq!((state.view, state.view_change.clone(), state.new_view.clone()), (View(2), None, Some(new_view)));
    let slot = &state.slots[&Seq(1)];
    assert_eq!((slot.pre_prepare.clone(), slot.prepare.clone()), (Some(pre_prepare(2, 1)), None));
    // An older view announced late never takes the replica back.
    state.enter_view(View(1), None);
    assert_eq!(state.view, View(2));
}

/// Views count within an epoch: the NEW-VIEW of epoch 1's view 1 starts that
/// view although epoch 0 had reached view 3; one of epoch 0 afterwards changes nothing.
#[test]
fn a_new_view_of_a_later_epoch_starts_its_view_whatever_the_view_held() {
    let new_view = |view: u64, epoch: u64| {
        let message = Message::NewView { view: View(view), view_changes: Vec::new(), pre_prepares: Vec::new() };
        Arc::new(SignedMessage::sign(message, Epoch(epoch), AgentId(1), &Keypair::from_seed([4; 32])))
    };
    let mut state = RecoveredState::<Ledger>::default();
    state.enter_view(View(3), Some(new_view(3, 0)));
    state.enter_view(View(1), Some(new_view(1, 1)));
    assert_eq!((state.view, state.new_view.as_ref().map(|nv| nv.epoch)), (View(1), Some(Epoch(1))));
    let before = state.clone();
    state.enter_view(View(4), Some(new_view(4, 0)));
    assert_eq!(state, before);
    // Within one epoch, views only go up: the next NEW-VIEW moves on, a late one of an older view changes nothing.
    state.enter_view(View(2), Some(new_view(2, 1)));
    assert_eq!((state.view, state.new_view.clone()), (View(2), Some(new_view(2, 1))));
    state.enter_view(View(1), Some(new_view(1, 1)));
    assert_eq!(state.view, View(2));
}

#[test]
fn a_prepared_certificate_recorded_is_held_and_one_with_other_prepares_is_not() {
    let mut state = RecoveredState::<Ledger>::default();
    state.accept_pre_prepare(pre_prepare(1, 1));
    let prepare = |from: u8| {
        let message = Message::Prepare { view: View(1), seq: Seq(1), digest: Batch::of(Vec::new()).digest() };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from.into()), &Keypair::from_seed([from; 32])))
    };
    assert!(state.record_prepared(View(1), Seq(1), vec![prepare(1), prepare(2)]));
    let certificate = |prepares| PreparedCertificate { pre_prepare: pre_prepare(1, 1), prepares };
    assert!(state.holds_certificate(Seq(1), &certificate(vec![prepare(1), prepare(2)])));
    assert!(!state.holds_certificate(Seq(1), &certificate(vec![prepare(1), prepare(2), prepare(3)])));
    assert!(!state.holds_certificate(Seq(2), &certificate(vec![prepare(1), prepare(2)])));
    // No pre-prepare of that view is recorded: nothing to certify.
    assert!(!state.record_prepared(View(2), Seq(1), vec![prepare(1), prepare(2)]));
}

#[test]
fn the_batch_of_a_slot_is_found_only_under_its_own_digest() {
    let mut state = RecoveredState::<Ledger>::default();
    state.accept_pre_prepare(pre_prepare(1, 1));
    let digest = Batch::of(Vec::new()).digest();
    assert_eq!(state.batch_for(Seq(1), digest).map(|batch| batch.digest()), Some(digest));
    assert!(state.batch_for(Seq(1), Digest([9; 32])).is_none(), "another batch's digest found this one");
    assert!(state.batch_for(Seq(2), digest).is_none());
}

#[test]
fn the_recovered_ledger_is_the_checkpoints_with_the_executed_batches_applied_in_order() {
    let owner = Keypair::from_seed([20; 32]);
    let from = crate::ledger::AccountId(owner.public_key());
    let to = crate::ledger::AccountId(key().public_key());
    let genesis = Ledger::with_genesis(&[(from, 100)]).unwrap();
    let transfer = |nonce: u64| Tx::transfer(crate::ledger::TxId([nonce as u8 + 1; 16]), from, to, 10, nonce);
    let batch = |nonce| {
        Arc::new(Batch::of(vec![super::super::Request {
            client: crate::protocol::ClientId(0),
            tx: transfer(nonce).sign(&owner),
        }]))
    };
    let mut state = RecoveredState::<Ledger>::default();
    state.record_executed(Seq(1), batch(0));
    state.record_executed(Seq(2), batch(1));
    // Seq 4 follows a hole: not executed yet.
    state.record_executed(Seq(4), batch(3));
    let mut expected = genesis.clone();
    for nonce in 0..2 {
        expected.execute(&transfer(nonce));
    }
    assert_eq!(state.app(&genesis).state_digest(), expected.state_digest());
}
