//! What a backup drops, and that each drop and each replayed transfer is
//! counted by its reason; the view-change timer fires at its deadline; what
//! it remembers past a stable checkpoint and sends a peer left below it.
//! Written against mutants cargo-mutants left alive (README, "Mutation testing").

use crate::app::Tx;
use crate::crypto::{Digest, Keypair};
use crate::ledger::{AccountId, Execution, RejectReason, TxId, TxOutcome};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{
    AgentId, Batch, ClientId, Epoch, Input, MembershipState, Message, Micros, Output, Replica, Request, Seq,
    SignedMessage, View,
};
use std::sync::Arc;

/// The shared fixture's view-change timeout (`tests::params`).
const VIEW_CHANGE_TIMEOUT_US: u64 = 50_000;
/// Its retransmit interval: how often a stuck replica checks its progress.
const RETRANSMIT_US: u64 = 10_000;

struct Fixture {
    keys: Vec<Keypair>,
    account: Keypair,
    backup: Replica,
}

fn fixture() -> Fixture {
    let shared = crate::protocol::replica::tests::fixture();
    Fixture { keys: shared.keys.clone(), account: shared.account.clone(), backup: shared.replica(1) }
}

impl Fixture {
    fn request(&self, nonce: u64) -> Request {
        let from = AccountId(self.account.public_key());
        let to = AccountId(self.keys[0].public_key());
        let transfer = Tx::transfer(TxId([nonce as u8 + 1; 16]), from, to, 10, nonce);
        Request { client: ClientId(7), tx: transfer.sign(&self.account) }
    }

    fn signed(&self, from: u32, epoch: u64, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, Epoch(epoch), AgentId(from), &self.keys[from as usize]))
    }

    fn step(&mut self, at: u64, input: Input) -> Vec<Output> {
        self.backup.step(Micros(at), input)
    }

    /// The primary's pre-prepare of `requests` at `seq`, then the others' prepares and commits:
    /// the backup executes it. What it executed.
    fn commit(&mut self, at: u64, seq: u64, requests: Vec<Request>) -> Vec<Execution> {
        let batch = Arc::new(Batch::of(requests));
        let (view, seq, digest) = (View(0), Seq(seq), batch.digest());
        let mut messages = vec![self.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })];
        messages.extend([2, 3].map(|from| self.signed(from, 0, Message::Prepare { view, seq, digest })));
        messages.extend([0, 2].map(|from| self.signed(from, 0, Message::Commit { view, seq, digest })));
        let mut executions = Vec::new();
        for message in messages {
            for output in self.step(at, Input::Message(message)) {
                if let Output::Executed(executed) = output {
                    executions.extend(executed.executions.clone());
                }
            }
        }
        executions
    }
}

fn broadcasts(outputs: &[Output]) -> Vec<&Message> {
    outputs
        .iter()
        .filter_map(|o| if let Output::Broadcast(signed) = o { Some(&signed.message) } else { None })
        .collect()
}

#[test]
fn a_request_or_view_change_received_twice_and_a_new_view_of_the_current_view_are_counted_as_dropped() {
    let mut f = fixture();
    let request = f.request(0);
    f.step(0, Input::Requests(vec![request.clone()]));
    f.step(1, Input::Requests(vec![request]));
    assert_eq!((f.backup.queued_requests(), f.backup.stats().dropped_duplicate), (1, 1));
    let stable_digest = checkpoint_digest(f.backup.ledger().state_digest(), &MembershipState::default());
    let view_change = f.signed(
        2,
        0,
        Message::ViewChange {
            new_view: View(1),
            stable_seq: Seq(0),
            stable_digest,
            checkpoint_proof: Vec::new(),
            prepared: Vec::new(),
            passive: false,
        },
    );
    f.step(2, Input::Message(view_change.clone()));
    f.step(3, Input::Message(view_change));
    assert_eq!(f.backup.stats().dropped_duplicate, 2);
    let new_view = Message::NewView { view: View(0), view_changes: Vec::new(), pre_prepares: Vec::new() };
    assert!(broadcasts(&f.step(4, Input::Message(f.signed(0, 0, new_view)))).is_empty());
    assert_eq!((f.backup.view(), f.backup.stats().dropped_stale), (View(0), 1));
}

#[test]
fn a_vote_of_another_epoch_counts_for_nothing_and_is_counted_as_dropped() {
    let mut f = fixture();
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    for (at, from) in [(1, 2), (2, 3)] {
        let prepare = f.signed(from, 1, Message::Prepare { view, seq, digest });
        assert!(broadcasts(&f.step(at, Input::Message(prepare))).is_empty(), "prepared on votes of epoch 1");
    }
    assert_eq!(f.backup.stats().dropped_wrong_epoch, 2);
}

#[test]
fn while_changing_view_a_vote_of_another_view_is_counted_as_dropped() {
    let mut f = fixture();
    f.step(0, Input::ForceViewChange);
    assert_eq!(f.backup.changing_to(), Some(View(1)));
    let prepare = f.signed(2, 0, Message::Prepare { view: View(1), seq: Seq(1), digest: Digest([5; 32]) });
    assert!(broadcasts(&f.step(1, Input::Message(prepare))).is_empty());
    assert_eq!(f.backup.stats().dropped_view_changing, 1);
}

#[test]
fn a_transfer_ordered_again_is_replayed_not_applied_twice_and_counted() {
    let mut f = fixture();
    let request = f.request(0);
    assert_eq!(f.commit(0, 1, vec![request.clone()]), vec![Execution::Applied(TxOutcome::Committed)]);
    let replayed = f.commit(1, 2, vec![request]);
    assert!(matches!(replayed[..], [Execution::Replayed(TxOutcome::Committed)]), "{replayed:?}");
    let stats = f.backup.stats();
    assert_eq!((stats.txs_committed, stats.txs_replayed, stats.batches_executed), (1, 1, 2));
}

#[test]
fn a_backup_whose_request_waits_asks_for_the_next_view_at_the_deadline_not_a_tick_later() {
    let mut f = fixture();
    f.step(0, Input::Requests(vec![f.request(0)]));
    f.step(VIEW_CHANGE_TIMEOUT_US - 1, Input::Tick);
    assert_eq!(f.backup.changing_to(), None);
    let out = f.step(VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    assert_eq!(f.backup.changing_to(), Some(View(1)));
    assert!(broadcasts(&out).iter().any(|m| matches!(m, Message::ViewChange { new_view: View(1), .. })));
}

#[test]
fn a_peer_is_answered_at_most_once_per_retransmit_interval_and_the_rest_counted() {
    let mut f = fixture();
    f.commit(0, 1, vec![f.request(0)]);
    let status =
        f.signed(2, 0, Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(0), passive: false });
    let answers = |out: &[Output]| out.iter().filter(|o| matches!(o, Output::SendTo(AgentId(2), _))).count();
    assert!(answers(&f.step(1, Input::Message(status.clone()))) > 0, "the peer behind is sent what it lacks");
    for at in [2, 3] {
        assert_eq!(answers(&f.step(at, Input::Message(status.clone()))), 0);
    }
    let stats = f.backup.stats();
    assert_eq!((stats.status_answered, stats.status_rate_limited), (1, 2));
}

/// An idle replica has nothing it waits for, so it never asks; a peer's
/// STATUS saying it executed further is how it learns it fell behind.
#[test]
fn an_idle_replica_that_a_peers_status_shows_behind_asks_its_peers_at_its_next_check() {
    let mut f = fixture();
    let asks = |out: &[Output]| broadcasts(out).iter().any(|m| matches!(m, Message::Status { .. }));
    assert!(!asks(&f.step(0, Input::Tick)));
    let status = |last| Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(last), passive: false };
    // A peer exactly as far: nothing to ask.
    f.step(1, Input::Message(f.signed(2, 0, status(0))));
    assert!(!asks(&f.step(RETRANSMIT_US + 1, Input::Tick)));
    f.step(RETRANSMIT_US + 2, Input::Message(f.signed(3, 0, status(3))));
    assert!(asks(&f.step(2 * RETRANSMIT_US + 2, Input::Tick)), "the replica behind never asked");
}

#[test]
fn a_passive_replica_without_a_bound_withholds_its_view_change_and_counts_it() {
    let Fixture { backup, .. } = fixture();
    let mut passive = backup.forget_what_it_signed();
    for (at, withheld) in [(0, 1), (1, 2)] {
        let out = passive.step(Micros(at), Input::ForceViewChange);
        assert!(broadcasts(&out).iter().all(|m| !matches!(m, Message::ViewChange { .. })), "{out:?}");
        assert_eq!((passive.changing_to(), passive.stats().votes_withheld_passive), (None, withheld));
    }
}

impl Fixture {
    /// Seqs 1 and 2 executed (transfers of nonces 0 and 1) and checkpoint 2
    /// made stable on the CHECKPOINTs of validators 0 and 2.
    fn stable_at_2(&mut self) {
        self.commit(0, 1, vec![self.request(0)]);
        self.commit(0, 2, vec![self.request(1)]);
        let state_digest = checkpoint_digest(self.backup.ledger().state_digest(), &MembershipState::default());
        for from in [0, 2] {
            self.step(1, Input::Message(self.signed(from, 0, Message::Checkpoint { seq: Seq(2), state_digest })));
        }
        assert_eq!(self.backup.stable_checkpoint().seq, Seq(2));
    }
}

#[test]
fn a_checkpoint_vote_between_checkpoint_boundaries_is_malformed_and_counted() {
    let mut f = fixture();
    let off = f.signed(2, 0, Message::Checkpoint { seq: Seq(1), state_digest: Digest([3; 32]) });
    f.step(0, Input::Message(off));
    assert_eq!(f.backup.stats().dropped_malformed, 1);
}

#[test]
fn outcomes_of_the_last_checkpoint_interval_are_remembered_for_clients_that_retry() {
    let mut f = fixture();
    f.stable_at_2();
    let out = f.step(2, Input::Requests(vec![f.request(0)]));
    let answered: Vec<_> = out
        .iter()
        .filter_map(|o| if let Output::Reply(reply) = o { Some(reply.outcomes.clone()) } else { None })
        .collect();
    assert_eq!(answered, vec![vec![(f.request(0).tx_id(), TxOutcome::Committed)]], "not answered from memory");
    assert_eq!(f.backup.stats().requests_answered_again, 1);
}

#[test]
fn a_peer_below_the_stable_checkpoint_is_sent_its_proof() {
    let mut f = fixture();
    f.stable_at_2();
    // The peer executed seq 2 but never saw a quorum of CHECKPOINTs.
    let status =
        f.signed(2, 0, Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(2), passive: false });
    let out = f.step(2, Input::Message(status));
    let mut signers: Vec<AgentId> = out
        .iter()
        .filter_map(|o| match o {
            Output::SendTo(AgentId(2), m) if matches!(m.message, Message::Checkpoint { seq: Seq(2), .. }) => {
                Some(m.sender)
            }
            _ => None,
        })
        .collect();
    signers.sort();
    signers.dedup();
    assert!(signers.len() >= 3, "the proof of checkpoint 2 was not sent: {signers:?}");
}

#[test]
fn requests_beyond_the_pending_limit_are_dropped_and_counted() {
    let mut f = fixture();
    let requests: Vec<Request> = (0..11).map(|nonce| f.request(nonce)).collect();
    f.step(0, Input::Requests(requests));
    let stats = f.backup.stats();
    assert_eq!((f.backup.queued_requests(), stats.requests_queued, stats.requests_dropped_queue_full), (10, 10, 1));
}

#[test]
fn a_vote_at_or_below_the_stable_checkpoint_is_stale_and_counted() {
    let mut f = fixture();
    f.stable_at_2();
    let before = f.backup.stats().dropped_stale;
    let late = f.signed(3, 0, Message::Commit { view: View(0), seq: Seq(2), digest: Digest([1; 32]) });
    assert!(broadcasts(&f.step(2, Input::Message(late))).is_empty());
    assert_eq!(f.backup.stats().dropped_stale, before + 1);
}

#[test]
fn a_request_executed_meanwhile_leaves_the_queue_and_starts_no_view_change() {
    let mut f = fixture();
    let request = f.request(0);
    f.step(0, Input::Requests(vec![request.clone()]));
    f.commit(1, 1, vec![request]);
    f.step(2 * VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    assert_eq!((f.backup.changing_to(), f.backup.stats().view_changes_started), (None, 0));
}

#[test]
fn a_view_change_for_the_current_view_is_stale_and_counted() {
    let mut f = fixture();
    let stable_digest = checkpoint_digest(f.backup.ledger().state_digest(), &MembershipState::default());
    let message = Message::ViewChange {
        new_view: View(0),
        stable_seq: Seq(0),
        stable_digest,
        checkpoint_proof: Vec::new(),
        prepared: Vec::new(),
        passive: false,
    };
    f.step(0, Input::Message(f.signed(2, 0, message)));
    assert_eq!(f.backup.stats().dropped_stale, 1);
}

#[test]
fn a_backup_whose_pre_prepared_batch_never_commits_asks_for_the_next_view() {
    let mut f = fixture();
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    f.step(VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    assert_eq!(f.backup.changing_to(), Some(View(1)));
}

#[test]
fn a_view_change_forced_again_asks_for_the_view_after_the_one_asked_for() {
    let mut f = fixture();
    f.step(0, Input::ForceViewChange);
    f.step(1, Input::ForceViewChange);
    assert_eq!((f.backup.changing_to(), f.backup.stats().view_changes_started), (Some(View(2)), 2));
}

#[test]
fn a_vote_received_twice_is_counted_once_as_a_duplicate() {
    let mut f = fixture();
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    let prepare = f.signed(2, 0, Message::Prepare { view, seq, digest });
    f.step(1, Input::Message(prepare.clone()));
    assert!(broadcasts(&f.step(2, Input::Message(prepare))).is_empty(), "the same prepare counted twice");
    assert_eq!(f.backup.stats().dropped_duplicate, 1);
}

#[test]
fn outcomes_older_than_the_retention_are_forgotten() {
    let mut f = fixture();
    f.stable_at_2();
    f.commit(3, 3, vec![f.request(2)]);
    f.commit(3, 4, vec![f.request(3)]);
    let state_digest = checkpoint_digest(f.backup.ledger().state_digest(), &MembershipState::default());
    for from in [0, 2] {
        f.step(4, Input::Message(f.signed(from, 0, Message::Checkpoint { seq: Seq(4), state_digest })));
    }
    assert_eq!(f.backup.stable_checkpoint().seq, Seq(4));
    // One checkpoint interval is kept (seqs 3 and 4): seq 3's outcome is answered from
    // memory, seq 1's is forgotten (its nonce is consumed, which is all a retry learns).
    let answered = |out: Vec<Output>| -> Vec<TxOutcome> {
        out.iter().filter_map(|o| if let Output::Reply(reply) = o { Some(reply.outcomes[0].1) } else { None }).collect()
    };
    assert_eq!(answered(f.step(5, Input::Requests(vec![f.request(2)]))), vec![TxOutcome::Committed]);
    let forgotten = answered(f.step(5, Input::Requests(vec![f.request(0)])));
    assert!(
        matches!(forgotten[..], [TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 })]),
        "{forgotten:?}"
    );
}

#[test]
fn a_peer_left_in_an_older_view_is_sent_the_new_view() {
    let mut f = fixture();
    let new_view =
        f.signed(2, 0, Message::NewView { view: View(2), view_changes: Vec::new(), pre_prepares: Vec::new() });
    f.step(0, Input::Message(new_view.clone()));
    assert_eq!(f.backup.view(), View(2));
    let status = |view| Message::Status { view: View(view), low_water: Seq(0), last_executed: Seq(0), passive: false };
    let sent = |out: Vec<Output>| out.iter().any(|o| matches!(o, Output::SendTo(AgentId(2), m) if *m == new_view));
    assert!(sent(f.step(1, Input::Message(f.signed(2, 0, status(0))))), "the peer in view 0 was not sent the NEW-VIEW");
    assert!(!sent(f.step(VIEW_CHANGE_TIMEOUT_US, Input::Message(f.signed(2, 0, status(2))))));
}

#[test]
fn a_copy_spending_a_consumed_nonce_is_answered_and_counted_as_a_double_spend() {
    let mut f = fixture();
    f.commit(0, 1, vec![f.request(0)]);
    let mut rival = f.request(0).tx.tx.clone();
    rival.id = TxId([200; 16]);
    let rival = Request { client: ClientId(8), tx: rival.sign(&f.account) };
    let out = f.step(1, Input::Requests(vec![rival]));
    assert_eq!(out.iter().filter(|o| matches!(o, Output::Reply(_))).count(), 1);
    assert_eq!((f.backup.queued_requests(), f.backup.stats().double_spends_dropped), (0, 1));
}

/// A slot that holds only votes (its pre-prepare never came, or a view
/// change emptied it) can execute nothing: a daemon waiting for in-flight
/// work to drain must not wait for it.
#[test]
fn slots_in_flight_counts_the_pre_prepared_slots_above_the_last_executed_and_not_bare_votes() {
    let mut f = fixture();
    assert_eq!(f.backup.slots_in_flight(), 0);
    let digest = Batch::of(vec![f.request(5)]).digest();
    f.step(2, Input::Message(f.signed(2, 0, Message::Prepare { view: View(0), seq: Seq(3), digest })));
    assert_eq!(f.backup.slots_in_flight(), 0);
    for seq in 1..=2 {
        let batch = Arc::new(Batch::of(vec![f.request(seq - 1)]));
        let (view, seq, digest) = (View(0), Seq(seq), batch.digest());
        f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    }
    assert_eq!(f.backup.slots_in_flight(), 2);
}

#[test]
fn its_own_message_echoed_back_is_dropped_and_counted_as_a_duplicate() {
    let mut f = fixture();
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    let echo = f.signed(1, 0, Message::Prepare { view, seq, digest });
    assert!(f.step(1, Input::Message(echo)).is_empty());
    assert_eq!(f.backup.stats().dropped_duplicate, 1);
}

/// The wait for a NEW-VIEW doubles with each view skipped past the current
/// one: asking for view 2 from view 0, a backup waits twice the timeout.
#[test]
fn the_wait_for_a_new_view_doubles_with_each_view_skipped() {
    let mut f = fixture();
    f.step(0, Input::ForceViewChange);
    f.step(1, Input::ForceViewChange);
    assert_eq!(f.backup.changing_to(), Some(View(2)));
    f.step(2 * VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    assert_eq!(f.backup.changing_to(), Some(View(2)), "gave up on view 2 before twice the timeout");
    f.step(1 + 2 * VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    assert_eq!(f.backup.changing_to(), Some(View(3)));
}

/// A primary suspected for a batch that never commits did not make a
/// request wait (the backup never queued one): no censorship is claimed.
#[test]
fn a_view_change_for_a_batch_that_never_commits_says_no_request_waited() {
    let mut f = fixture();
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    f.step(0, Input::Message(f.signed(0, 0, Message::PrePrepare { view, seq, digest, batch })));
    let out = f.step(VIEW_CHANGE_TIMEOUT_US, Input::Tick);
    let started = out.iter().find_map(|o| match o {
        Output::ViewChangeStarted { to, requests_waited, .. } => Some((*to, *requests_waited)),
        _ => None,
    });
    assert_eq!(started, Some((View(1), false)));
}
