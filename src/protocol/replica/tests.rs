//! The replica's rules, one step at a time, asserting the exact outputs.

use super::*;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Execution, RejectReason};
use crate::protocol::Epoch;

// Shared with the other test files of the replica (`edge_tests.rs`).
pub(crate) struct Fixture {
    pub(crate) keys: Vec<Keypair>,
    pub(crate) committee: Committee,
    pub(crate) account: Keypair,
    pub(crate) genesis: Ledger,
}

pub(crate) fn fixture() -> Fixture {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap();
    let account = Keypair::from_seed([99; 32]);
    let genesis = Ledger::with_genesis(&[(AccountId(account.public_key()), 1_000)]).unwrap();
    Fixture { keys, committee, account, genesis }
}

pub(crate) fn params() -> ProtocolParams {
    ProtocolParams {
        checkpoint_interval: 2,
        log_window: 4,
        max_batch_size: 2,
        batch_delay_us: 1_000,
        max_in_flight_batches: 2,
        retransmit_interval_us: 10_000,
        max_pending_requests: 10,
        outcome_retention_checkpoints: 1,
        view_change_timeout_us: 50_000,
    }
}

impl Fixture {
    pub(crate) fn replica(&self, i: u32) -> Replica {
        Replica::new(AgentId(i), self.keys[i as usize].clone(), self.committee.clone(), params(), self.genesis.clone())
    }

    pub(crate) fn request(&self, nonce: u64) -> Request {
        let from = AccountId(self.account.public_key());
        let to = AccountId(self.keys[0].public_key());
        let transfer = Tx::transfer(TxId([nonce as u8 + 1; 16]), from, to, 10, nonce);
        Request { client: ClientId(7), tx: transfer.sign(&self.account) }
    }

    fn signed(&self, from: u32, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from), &self.keys[from as usize]))
    }

    pub(super) fn pre_prepare(&self, seq: u64, requests: Vec<Request>) -> (Arc<SignedMessage>, Digest) {
        let batch = Arc::new(Batch::of(requests));
        let digest = batch.digest();
        (self.signed(0, Message::PrePrepare { view: View(0), seq: Seq(seq), digest, batch }), digest)
    }
}

pub(super) fn broadcasts(outputs: &[Output]) -> Vec<&Message> {
    pick(outputs, |o| if let Output::Broadcast(signed) = o { Some(&signed.message) } else { None })
}

fn replies(outputs: &[Output]) -> Vec<&Reply> {
    pick(outputs, |o| if let Output::Reply(reply) = o { Some(&**reply) } else { None })
}

fn pick<'a, T: ?Sized>(outputs: &'a [Output], select: impl Fn(&'a Output) -> Option<&'a T>) -> Vec<&'a T> {
    outputs.iter().filter_map(select).collect()
}

#[test]
fn primary_cuts_a_full_batch_at_once_and_waits_batch_delay_for_the_rest() {
    let f = fixture();
    let mut primary = f.replica(0);
    let out = primary.step(Micros(0), Input::Requests(vec![f.request(0), f.request(1), f.request(2)]));
    let sent = broadcasts(&out);
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0], Message::PrePrepare { seq: Seq(1), batch, .. } if batch.requests.len() == 2));
    assert_eq!(primary.queued_requests(), 1);
    assert_eq!(primary.next_deadline(), Some(Micros(1_000)));
    let out = primary.step(Micros(1_000), Input::Tick);
    assert!(matches!(broadcasts(&out)[..], [Message::PrePrepare { seq: Seq(2), .. }]));
}

#[test]
fn backup_accepts_pre_prepare_and_broadcasts_prepare() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    let out = backup.step(Micros(0), Input::Message(pre_prepare));
    assert_eq!(broadcasts(&out), vec![&Message::Prepare { view: View(0), seq: Seq(1), digest }]);
}

#[test]
fn pre_prepare_from_a_backup_is_dropped_and_counted() {
    let f = fixture();
    let mut backup = f.replica(1);
    let batch = Arc::new(Batch::of(vec![f.request(0)]));
    let digest = batch.digest();
    let forged = f.signed(2, Message::PrePrepare { view: View(0), seq: Seq(1), digest, batch });
    assert!(backup.step(Micros(0), Input::Message(forged)).is_empty());
    assert_eq!(backup.stats().dropped_not_from_primary, 1);
}

#[test]
fn prepared_needs_pre_prepare_and_2f_matching_prepares_then_commits_with_2f_plus_1() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    backup.step(Micros(0), Input::Message(pre_prepare));
    // A prepare for another digest does not count.
    let other = f.signed(3, Message::Prepare { view: View(0), seq: Seq(1), digest: Digest([9; 32]) });
    assert!(broadcasts(&backup.step(Micros(1), Input::Message(other))).is_empty());
    let prepare = f.signed(2, Message::Prepare { view: View(0), seq: Seq(1), digest });
    let out = backup.step(Micros(2), Input::Message(prepare));
    assert_eq!(broadcasts(&out), vec![&Message::Commit { view: View(0), seq: Seq(1), digest }]);
    // Own commit + one more is not yet a quorum of 3.
    let commit = |from| f.signed(from, Message::Commit { view: View(0), seq: Seq(1), digest });
    let out = backup.step(Micros(3), Input::Message(commit(0)));
    assert!(out.iter().all(|o| !matches!(o, Output::Executed(_))));
    let out = backup.step(Micros(4), Input::Message(commit(2)));
    let executed = pick(&out, |o| if let Output::Executed(e) = o { Some(e) } else { None });
    assert_eq!(executed.len(), 1);
    assert_eq!(
        (executed[0].seq, executed[0].executions.as_slice()),
        (Seq(1), &[Execution::Applied(TxOutcome::Committed)][..])
    );
    let replies = replies(&out);
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0].client, replies[0].outcomes.len()), (ClientId(7), 1));
    assert_eq!(backup.last_executed(), Seq(1));
}

#[test]
fn a_prepare_from_the_primary_counts_for_nothing() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    backup.step(Micros(0), Input::Message(pre_prepare));
    let from_primary = f.signed(0, Message::Prepare { view: View(0), seq: Seq(1), digest });
    assert!(broadcasts(&backup.step(Micros(1), Input::Message(from_primary))).is_empty());
    assert_eq!(backup.stats().dropped_malformed, 1);
}

#[test]
fn two_pre_prepares_for_one_slot_are_equivocation_evidence() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (first, _) = f.pre_prepare(1, vec![f.request(0)]);
    let (second, _) = f.pre_prepare(1, vec![f.request(1)]);
    backup.step(Micros(0), Input::Message(first));
    let out = backup.step(Micros(1), Input::Message(second));
    let evidence = pick(&out, |o| if let Output::Evidence(e) = o { Some(e) } else { None });
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].accused(), AgentId(0));
    assert!(evidence[0].verify(&f.committee));
}

#[test]
fn messages_outside_the_water_marks_are_dropped_and_counted() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (beyond, _) = f.pre_prepare(5, vec![f.request(0)]);
    assert!(backup.step(Micros(0), Input::Message(beyond)).is_empty());
    let other_view = f.signed(2, Message::Prepare { view: View(3), seq: Seq(1), digest: Digest([1; 32]) });
    assert!(backup.step(Micros(0), Input::Message(other_view)).is_empty());
    assert_eq!((backup.stats().dropped_out_of_window, backup.stats().dropped_wrong_view), (1, 1));
}

/// Drives all four replicas to quiescence over a perfect network.
fn run_to_quiescence(replicas: &mut [Replica], mut pending: Vec<(u32, Output)>) -> Vec<(u32, Output)> {
    let mut seen = Vec::new();
    while let Some((from, output)) = pending.pop() {
        let targets: Vec<(u32, Arc<SignedMessage>)> = match &output {
            Output::Broadcast(m) => (0..4).filter(|&i| i != from).map(|i| (i, m.clone())).collect(),
            Output::SendTo(to, m) => vec![(to.0, m.clone())],
            _ => Vec::new(),
        };
        seen.push((from, output));
        for (to, message) in targets {
            let out = replicas[to as usize].step(Micros(10), Input::Message(message));
            pending.extend(out.into_iter().map(|o| (to, o)));
        }
    }
    seen
}

#[test]
fn checkpoint_becomes_stable_at_quorum_and_collects_the_log() {
    let f = fixture();
    let mut replicas: Vec<Replica> = (0..4).map(|i| f.replica(i)).collect();
    let mut outputs = Vec::new();
    for nonce in 0..4 {
        let out = replicas[0].step(Micros(0), Input::Requests(vec![f.request(nonce)]));
        outputs.extend(run_to_quiescence(&mut replicas, out.into_iter().map(|o| (0, o)).collect()));
    }
    for replica in &replicas {
        assert_eq!(replica.last_executed(), Seq(4));
        assert_eq!(replica.stable_checkpoint().seq, Seq(4));
        assert!(replica.stable_checkpoint().proof.len() >= 3);
        assert_eq!(replica.log_len(), 0, "the log below the stable checkpoint is collected");
        assert_eq!(replica.ledger().state_digest(), replicas[0].ledger().state_digest());
    }
    let stable: Vec<u64> = outputs
        .iter()
        .filter_map(|(from, o)| match o {
            Output::CheckpointStable { seq, .. } if *from == 1 => Some(seq.0),
            _ => None,
        })
        .collect();
    assert_eq!(stable, vec![2, 4]);
}

#[test]
fn resent_request_of_an_executed_transfer_is_answered_from_memory_not_reordered() {
    let f = fixture();
    let mut replicas: Vec<Replica> = (0..4).map(|i| f.replica(i)).collect();
    let out = replicas[0].step(Micros(0), Input::Requests(vec![f.request(0)]));
    run_to_quiescence(&mut replicas, out.into_iter().map(|o| (0, o)).collect());
    let out = replicas[0].step(Micros(20), Input::Requests(vec![f.request(0)]));
    assert!(broadcasts(&out).is_empty(), "no second pre-prepare");
    let answered = replies(&out);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].outcomes, vec![(f.request(0).tx_id(), TxOutcome::Committed)]);
}

/// Delivers outputs in the order they were produced (FIFO links) until nothing
/// is left, at `now`, never to or from `silent`.
fn exchange(replicas: &mut [Replica], pending: Vec<(u32, Output)>, now: Micros, silent: u32) -> Vec<(u32, Output)> {
    let mut pending: std::collections::VecDeque<(u32, Output)> = pending.into();
    let mut seen = Vec::new();
    while let Some((from, output)) = pending.pop_front() {
        let targets: Vec<(u32, Arc<SignedMessage>)> = match &output {
            Output::Broadcast(m) => (0..4).filter(|&i| i != from && i != silent).map(|i| (i, m.clone())).collect(),
            Output::SendTo(to, m) if to.0 != silent => vec![(to.0, m.clone())],
            _ => Vec::new(),
        };
        seen.push((from, output));
        for (to, message) in targets {
            let out = replicas[to as usize].step(now, Input::Message(message));
            pending.extend(out.into_iter().map(|o| (to, o)));
        }
    }
    seen
}

/// Replicas 1..3 prepare and commit seq 1 from primary 0, which then goes silent.
fn prepared_at_backups(f: &Fixture) -> (Vec<Replica>, Digest) {
    let mut replicas: Vec<Replica> = (0..4).map(|i| f.replica(i)).collect();
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    let mut pending = Vec::new();
    for backup in 1..4u32 {
        let out = replicas[backup as usize].step(Micros(0), Input::Requests(vec![f.request(1)]));
        pending.extend(out.into_iter().map(|o| (backup, o)));
        let out = replicas[backup as usize].step(Micros(0), Input::Message(pre_prepare.clone()));
        pending.extend(out.into_iter().map(|o| (backup, o)));
    }
    exchange(&mut replicas, pending, Micros(1), 0);
    (replicas, digest)
}

#[test]
fn backup_suspects_a_stalled_primary_and_sends_view_change_with_its_prepared_certificate() {
    let f = fixture();
    let (mut replicas, digest) = prepared_at_backups(&f);
    assert_eq!(replicas[1].last_executed(), Seq(1));
    // Request 1 is queued but the primary never orders it: after the timeout the backup moves on.
    let out = replicas[1].step(Micros(49_999), Input::Tick);
    assert!(broadcasts(&out).iter().all(|m| !matches!(m, Message::ViewChange { .. })));
    let out = replicas[1].step(Micros(50_001), Input::Tick);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ViewChangeStarted { from: View(0), to: View(1), requests_waited: true })));
    let view_change = broadcasts(&out).into_iter().find(|m| matches!(m, Message::ViewChange { .. })).cloned();
    let Some(Message::ViewChange { new_view, stable_seq, prepared, .. }) = view_change else {
        panic!("no view change in {out:?}")
    };
    assert_eq!((new_view, stable_seq), (View(1), Seq(0)));
    assert_eq!(prepared.len(), 1);
    assert_eq!(prepared[0].slot().map(|(v, s, d, _)| (v, s, d)), Some((View(0), Seq(1), digest)));
    assert_eq!(prepared[0].prepares.len(), 2, "quorum - 1 prepares from backups");
    assert_eq!(replicas[1].changing_to(), Some(View(1)));
}

#[test]
fn new_primary_with_a_quorum_of_view_changes_keeps_the_prepared_batch_at_its_sequence_number() {
    let f = fixture();
    let (mut replicas, digest) = prepared_at_backups(&f);
    let mut pending = Vec::new();
    for backup in 1..4u32 {
        let out = replicas[backup as usize].step(Micros(60_000), Input::Tick);
        pending.extend(out.into_iter().map(|o| (backup, o)));
    }
    let seen = exchange(&mut replicas, pending, Micros(60_001), 0);
    let new_view = seen
        .iter()
        .find_map(|(from, o)| match o {
            Output::Broadcast(m) if matches!(m.message, Message::NewView { .. }) => Some((*from, m.clone())),
            _ => None,
        })
        .expect("the primary of view 1 sends NEW-VIEW");
    assert_eq!(new_view.0, 1, "view 1's primary is validator 1");
    let Message::NewView { view, ref pre_prepares, ref view_changes } = new_view.1.message else { unreachable!() };
    assert_eq!(view, View(1));
    assert!(view_changes.len() >= 3);
    let slots: Vec<(Seq, Digest)> = pre_prepares
        .iter()
        .filter_map(|m| match m.message {
            Message::PrePrepare { seq, digest, .. } => Some((seq, digest)),
            _ => None,
        })
        .collect();
    assert_eq!(slots, vec![(Seq(1), digest)]);
    for replica in &replicas[1..] {
        assert_eq!((replica.view(), replica.changing_to(), replica.primary()), (View(1), None, AgentId(1)));
    }
    // The new primary then orders the request the old one ignored, and everyone executes it.
    let out = replicas[1].step(Micros(60_002), Input::Tick);
    exchange(&mut replicas, out.into_iter().map(|o| (1, o)).collect(), Micros(60_003), 0);
    let expected = replicas[1].ledger().state_digest();
    for replica in &replicas[1..] {
        assert_eq!(
            (replica.last_executed(), replica.ledger().state_digest()),
            (Seq(2), expected),
            "{:?}",
            replica.id()
        );
    }
}

#[test]
fn f_plus_one_view_changes_for_a_higher_view_make_a_replica_join() {
    let f = fixture();
    let (mut replicas, _) = prepared_at_backups(&f);
    let mut view_changes = Vec::new();
    for backup in [1u32, 2] {
        let out = replicas[backup as usize].step(Micros(60_000), Input::Tick);
        view_changes.extend(out.into_iter().filter_map(|o| match o {
            Output::Broadcast(m) if matches!(m.message, Message::ViewChange { .. }) => Some(m),
            _ => None,
        }));
    }
    assert_eq!(view_changes.len(), 2);
    // Replica 3 has not timed out itself; one view change is not enough, f+1 = 2 are.
    let out = replicas[3].step(Micros(10), Input::Message(view_changes[0].clone()));
    assert!(!out.iter().any(|o| matches!(o, Output::ViewChangeStarted { .. })));
    let out = replicas[3].step(Micros(11), Input::Message(view_changes[1].clone()));
    // It joins on the others' word: it saw no request wait, so it reports no censorship.
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ViewChangeStarted { from: View(0), to: View(1), requests_waited: false })));
}

#[test]
fn whichever_half_of_a_double_spend_executes_the_other_queued_half_is_dropped_with_proof() {
    let f = fixture();
    let first = f.request(0);
    let mut rival_transfer = first.tx.tx.clone();
    rival_transfer.id = TxId([200; 16]);
    rival_transfer.as_transfer_mut().unwrap().amount = 20;
    let rival = Request { client: ClientId(7), tx: rival_transfer.sign(&f.account) };
    let mut replicas: Vec<Replica> = (0..4).map(|i| f.replica(i)).collect();
    // Replica 1 queues both halves, the first one first; the primary only sees the rival.
    replicas[1].step(Micros(0), Input::Requests(vec![first.clone(), rival.clone()]));
    assert_eq!(replicas[1].queued_requests(), 2);
    let out = replicas[0].step(Micros(0), Input::Requests(vec![rival.clone()]));
    let seen = run_to_quiescence(&mut replicas, out.into_iter().map(|o| (0, o)).collect());
    assert_eq!(replicas[1].last_executed(), Seq(1));
    assert_eq!(replicas[1].queued_requests(), 0, "the half that can never commit is not waited for");
    let proofs: Vec<_> = seen
        .iter()
        .filter_map(|(from, o)| match o {
            Output::DoubleSpend { executed, conflicting } if *from == 1 => {
                Some((executed.digest(), conflicting.digest()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(proofs, vec![(rival.tx.digest(), first.tx.digest())]);
}

#[test]
fn a_request_whose_nonce_another_transfer_consumed_is_answered_nonce_consumed_not_left_waiting() {
    let f = fixture();
    let mut replicas: Vec<Replica> = (0..4).map(|i| f.replica(i)).collect();
    let out = replicas[0].step(Micros(0), Input::Requests(vec![f.request(0)]));
    run_to_quiescence(&mut replicas, out.into_iter().map(|o| (0, o)).collect());
    // A copy signed with the same nonce by a sender that lost track (a restarted client).
    let mut stale = f.request(0).tx.tx.clone();
    stale.id = TxId([150; 16]);
    let stale = Request { client: ClientId(8), tx: stale.sign(&f.account) };
    for replica in &mut replicas {
        let out = replica.step(Micros(30), Input::Requests(vec![stale.clone()]));
        assert!(broadcasts(&out).is_empty(), "never ordered");
        let answered = replies(&out);
        assert_eq!(answered.len(), 1, "answered at once");
        let rejected = TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 });
        assert_eq!((answered[0].client, answered[0].outcomes.clone()), (ClientId(8), vec![(stale.tx_id(), rejected)]));
        assert_eq!(replica.queued_requests(), 0);
    }
}

/// A VIEW-CHANGE for view 1 from `from`, its checkpoint at genesis.
fn view_change(f: &Fixture, from: u32, prepared: Vec<PreparedCertificate>) -> Arc<SignedMessage> {
    let stable_digest = checkpoint_digest(f.genesis.state_digest(), &MembershipState::default());
    let message = Message::ViewChange {
        new_view: View(1),
        stable_seq: Seq(0),
        stable_digest,
        checkpoint_proof: vec![],
        prepared,
        passive: false,
    };
    f.signed(from, message)
}

/// Replica 3 executed seq 1. A NEW-VIEW (from a faulty quorum that hid the
/// certificate) puts an empty batch there: replica 3 enters the view but
/// never prepares another digest for a slot it executed.
#[test]
fn a_replica_never_prepares_another_digest_for_a_slot_it_executed() {
    let f = fixture();
    let (mut replicas, digest) = prepared_at_backups(&f);
    assert_eq!(replicas[3].last_executed(), Seq(1));
    let null = Arc::new(Batch::default());
    let null_digest = null.digest();
    assert_ne!(null_digest, digest);
    let pre_prepare = f.signed(1, Message::PrePrepare { view: View(1), seq: Seq(1), digest: null_digest, batch: null });
    let view_changes = vec![view_change(&f, 0, vec![]), view_change(&f, 1, vec![]), view_change(&f, 2, vec![])];
    let new_view = f.signed(1, Message::NewView { view: View(1), view_changes, pre_prepares: vec![pre_prepare] });
    let out = replicas[3].step(Micros(60_000), Input::Message(new_view));
    assert_eq!(replicas[3].view(), View(1));
    let prepares: Vec<&Message> =
        broadcasts(&out).into_iter().filter(|m| matches!(m, Message::Prepare { seq: Seq(1), .. })).collect();
    assert!(prepares.is_empty(), "prepared another batch for an executed slot: {prepares:?}");
    assert_eq!(replicas[3].stats().dropped_conflicts_executed, 1);
}

/// A faulty backup's VIEW-CHANGE carries a certificate beyond its high water
/// mark (log window 4, checkpoint 0, seq 6): the new primary ignores it, and a
/// NEW-VIEW built on it is refused by the backups.
#[test]
fn view_change_certificates_and_new_view_pre_prepares_respect_the_high_water_mark() {
    let f = fixture();
    let (mut replicas, _) = prepared_at_backups(&f);
    let batch = Arc::new(Batch::of(vec![f.request(5)]));
    let digest = batch.digest();
    let pre_prepare = f.signed(0, Message::PrePrepare { view: View(0), seq: Seq(6), digest, batch });
    let prepare = |from| f.signed(from, Message::Prepare { view: View(0), seq: Seq(6), digest });
    let beyond = PreparedCertificate { pre_prepare, prepares: vec![prepare(2), prepare(3)] };
    let faulty = view_change(&f, 2, vec![beyond]);

    let mut out = replicas[1].step(Micros(60_000), Input::Tick);
    out.extend(replicas[1].step(Micros(60_001), Input::Message(faulty.clone())));
    out.extend(replicas[1].step(Micros(60_002), Input::Message(view_change(&f, 3, vec![]))));
    let beyond_window = |m: &&Message| match m {
        Message::NewView { pre_prepares, .. } => {
            pre_prepares.iter().any(|p| matches!(p.message, Message::PrePrepare { seq, .. } if seq.0 > 4))
        }
        _ => false,
    };
    assert!(!broadcasts(&out).iter().any(beyond_window), "the new primary proposed beyond the high water mark");
    assert_eq!(replicas[1].stats().dropped_out_of_window, 1);

    let null = Arc::new(Batch::default());
    let pre_prepares = (1..=6)
        .map(|seq| {
            let batch = null.clone();
            f.signed(1, Message::PrePrepare { view: View(1), seq: Seq(seq), digest: batch.digest(), batch })
        })
        .collect();
    let view_changes = vec![view_change(&f, 1, vec![]), faulty, view_change(&f, 0, vec![])];
    let new_view = f.signed(1, Message::NewView { view: View(1), view_changes, pre_prepares });
    replicas[3].step(Micros(60_003), Input::Message(new_view));
    assert_eq!(replicas[3].view(), View(0), "entered a view built on a certificate beyond the water marks");
}

/// The high water mark itself is inside the window: a certificate at
/// checkpoint + L (seq 4) is carried into the new view, and backups prepare it.
#[test]
fn a_certificate_at_the_high_water_mark_is_carried_into_the_new_view() {
    let f = fixture();
    let (mut replicas, _) = prepared_at_backups(&f);
    let batch = Arc::new(Batch::of(vec![f.request(5)]));
    let digest = batch.digest();
    let pre_prepare = f.signed(0, Message::PrePrepare { view: View(0), seq: Seq(4), digest, batch });
    let prepare = |from| f.signed(from, Message::Prepare { view: View(0), seq: Seq(4), digest });
    let at_the_mark = PreparedCertificate { pre_prepare, prepares: vec![prepare(2), prepare(3)] };
    let mut out = replicas[1].step(Micros(60_000), Input::Tick);
    out.extend(replicas[1].step(Micros(60_001), Input::Message(view_change(&f, 2, vec![at_the_mark]))));
    out.extend(replicas[1].step(Micros(60_002), Input::Message(view_change(&f, 3, vec![]))));
    let new_view = out
        .iter()
        .find_map(|o| match o {
            Output::Broadcast(m) if matches!(m.message, Message::NewView { .. }) => Some(m.clone()),
            _ => None,
        })
        .expect("a NEW-VIEW");
    let Message::NewView { ref pre_prepares, .. } = new_view.message else { unreachable!() };
    assert!(pre_prepares
        .iter()
        .any(|p| matches!(p.message, Message::PrePrepare { seq: Seq(4), digest: d, .. } if d == digest)));
    let out = replicas[3].step(Micros(60_003), Input::Message(new_view));
    assert_eq!(replicas[3].view(), View(1));
    assert!(broadcasts(&out)
        .iter()
        .any(|m| matches!(m, Message::Prepare { seq: Seq(4), digest: d, .. } if *d == digest)));
}

/// Leaving a view forgets its pre-prepare and votes, but keeps the slot's
/// prepared certificate (a later VIEW-CHANGE must carry it) and the digest
/// it executed (no later view makes it prepare another batch there).
/// Found by mutation testing: deleting either field survived every test.
#[test]
fn leaving_a_view_keeps_the_prepared_certificate_and_the_executed_digest() {
    let f = fixture();
    let (pre_prepare, digest) = f.pre_prepare(1, vec![f.request(0)]);
    let prepare = |from| f.signed(from, Message::Prepare { view: View(0), seq: Seq(1), digest });
    let certificate = PreparedCertificate { pre_prepare: pre_prepare.clone(), prepares: vec![prepare(2), prepare(3)] };
    let mut slot = Slot {
        pre_prepare: Some(pre_prepare),
        digest: Some(digest),
        prepared: true,
        committed: true,
        certificate: Some(certificate.clone()),
        executed: Some(digest),
        ..Slot::default()
    };
    slot.reset_view();
    assert_eq!((slot.certificate, slot.executed), (Some(certificate), Some(digest)));
    assert_eq!((slot.pre_prepare, slot.digest, slot.prepared, slot.committed), (None, None, false, false));
}

/// Backup 1 executes seq 1 and 2 (the checkpoint interval) from primary 0's
/// pre-prepares and its peers' votes; returns the digest of its own CHECKPOINT at 2.
fn executed_to_the_first_checkpoint(f: &Fixture) -> (Replica, Digest) {
    let mut backup = f.replica(1);
    let mut out = Vec::new();
    for seq in 1..=2u64 {
        let (pre_prepare, digest) = f.pre_prepare(seq, vec![f.request(seq - 1)]);
        out.extend(backup.step(Micros(0), Input::Message(pre_prepare)));
        for from in [2, 3] {
            let prepare = f.signed(from, Message::Prepare { view: View(0), seq: Seq(seq), digest });
            out.extend(backup.step(Micros(0), Input::Message(prepare)));
        }
        for from in [0, 2] {
            let commit = f.signed(from, Message::Commit { view: View(0), seq: Seq(seq), digest });
            out.extend(backup.step(Micros(0), Input::Message(commit)));
        }
    }
    assert_eq!(backup.last_executed(), Seq(2));
    let own = broadcasts(&out)
        .into_iter()
        .find_map(|m| match m {
            Message::Checkpoint { seq: Seq(2), state_digest } => Some(*state_digest),
            _ => None,
        })
        .expect("its own CHECKPOINT at 2");
    (backup, own)
}

/// Found by mutation testing: the quorum and the disagreement count in
/// `try_stabilize` could be weakened unnoticed.
#[test]
fn a_checkpoint_is_stable_at_exactly_a_quorum_of_matching_signatures_its_own_included() {
    let f = fixture();
    let (mut backup, own) = executed_to_the_first_checkpoint(&f);
    let vote = |from| f.signed(from, Message::Checkpoint { seq: Seq(2), state_digest: own });
    assert_eq!(backup.stable_checkpoint().seq, Seq(0), "its own signature alone is not a quorum");
    backup.step(Micros(1), Input::Message(vote(0)));
    assert_eq!(backup.stable_checkpoint().seq, Seq(0), "two of four are not a quorum");
    backup.step(Micros(1), Input::Message(vote(3)));
    assert_eq!(backup.stable_checkpoint().seq, Seq(2));
    assert_eq!(backup.stable_checkpoint().state_digest, own);
    let signers: Vec<AgentId> = backup.stable_checkpoint().proof.iter().map(|vote| vote.sender).collect();
    assert_eq!(signers, vec![AgentId(0), AgentId(1), AgentId(3)]);
    assert_eq!(backup.stats().checkpoint_disagreements, 0);
}

#[test]
fn a_quorum_signing_another_checkpoint_digest_is_a_disagreement_never_a_stable_checkpoint() {
    let f = fixture();
    let (mut backup, own) = executed_to_the_first_checkpoint(&f);
    let other = Digest([9; 32]);
    assert_ne!(other, own);
    let vote = |from| f.signed(from, Message::Checkpoint { seq: Seq(2), state_digest: other });
    backup.step(Micros(1), Input::Message(vote(0)));
    backup.step(Micros(1), Input::Message(vote(2)));
    assert_eq!(backup.stats().checkpoint_disagreements, 0, "two of four are not a quorum");
    backup.step(Micros(1), Input::Message(vote(3)));
    assert_eq!(backup.stats().checkpoint_disagreements, 1);
    assert_eq!(backup.stable_checkpoint().seq, Seq(0), "made another state's checkpoint stable");
}

/// The window (log window 4 above stable checkpoint 0) admits a CHECKPOINT
/// at its high water mark and drops the next one. Found by mutation
/// testing: `>` weakened to `>=` or `==` in the check survived.
#[test]
fn a_checkpoint_vote_at_the_high_water_mark_is_kept_and_one_beyond_it_dropped() {
    let f = fixture();
    let mut backup = f.replica(1);
    let vote = |from, seq| f.signed(from, Message::Checkpoint { seq: Seq(seq), state_digest: Digest([4; 32]) });
    backup.step(Micros(0), Input::Message(vote(0, 4)));
    assert_eq!(backup.stats().dropped_out_of_window, 0, "the high water mark itself is inside the window");
    backup.step(Micros(0), Input::Message(vote(0, 6)));
    assert_eq!(backup.stats().dropped_out_of_window, 1);
}

/// With two batches in flight (`max_in_flight_batches`) the primary cuts no
/// third, however many requests wait (until a retransmit interval or the
/// view change timeout passes). Found by mutation
/// testing: `&&` weakened to `||` in `may_propose` survived.
#[test]
fn the_primary_keeps_at_most_max_in_flight_batches_unexecuted() {
    let f = fixture();
    let mut primary = f.replica(0);
    let mut proposed = broadcasts(&primary.step(Micros(0), Input::Requests((0..6).map(|n| f.request(n)).collect())))
        .into_iter()
        .filter(|m| matches!(m, Message::PrePrepare { .. }))
        .count();
    for now in [1_000, 2_000, 5_000] {
        let out = primary.step(Micros(now), Input::Tick);
        proposed += broadcasts(&out).into_iter().filter(|m| matches!(m, Message::PrePrepare { .. })).count();
    }
    assert_eq!(proposed, 2);
    assert_eq!(primary.queued_requests(), 2);
}

/// A pre-prepare at the high water mark (stable checkpoint 0 + log window 4)
/// is inside the window: the backup prepares it. Found by mutation testing:
/// `>` weakened to `>=` in `admit` survived.
#[test]
fn a_pre_prepare_at_the_high_water_mark_is_prepared() {
    let f = fixture();
    let mut backup = f.replica(1);
    let (at_the_mark, digest) = f.pre_prepare(4, vec![f.request(0)]);
    let out = backup.step(Micros(0), Input::Message(at_the_mark));
    assert_eq!(broadcasts(&out), vec![&Message::Prepare { view: View(0), seq: Seq(4), digest }]);
    assert_eq!(backup.stats().dropped_out_of_window, 0);
}

/// A replica that lost what it signed executes what a quorum of its peers
/// commits and makes its checkpoint stable on their signatures alone,
/// signing none itself. Found by mutation testing (a sample of the rest of
/// the core): the count of the CHECKPOINT it withholds could be broken
/// unnoticed by the unit tests and the simulation.
#[test]
fn a_passive_replica_makes_its_checkpoint_stable_on_its_peers_signatures_without_signing() {
    let f = fixture();
    let mut backup = f.replica(1).forget_what_it_signed();
    let mut out = Vec::new();
    for seq in 1..=2u64 {
        let (pre_prepare, digest) = f.pre_prepare(seq, vec![f.request(seq - 1)]);
        out.extend(backup.step(Micros(0), Input::Message(pre_prepare)));
        for from in [2, 3] {
            let prepare = f.signed(from, Message::Prepare { view: View(0), seq: Seq(seq), digest });
            out.extend(backup.step(Micros(0), Input::Message(prepare)));
        }
        for from in [0, 2, 3] {
            let commit = f.signed(from, Message::Commit { view: View(0), seq: Seq(seq), digest });
            out.extend(backup.step(Micros(0), Input::Message(commit)));
        }
    }
    assert_eq!(backup.last_executed(), Seq(2));
    assert!(backup.is_passive());
    assert_eq!(broadcasts(&out), Vec::<&Message>::new(), "a passive replica signed");
    assert_eq!(backup.stats().votes_withheld_passive, 2 + 1, "a PREPARE per slot, and the CHECKPOINT");
    let own = checkpoint_digest(backup.ledger().state_digest(), &MembershipState::default());
    for from in [0, 2, 3] {
        backup.step(Micros(1), Input::Message(f.signed(from, Message::Checkpoint { seq: Seq(2), state_digest: own })));
    }
    assert_eq!(backup.stable_checkpoint().seq, Seq(2));
    let signers: Vec<AgentId> = backup.stable_checkpoint().proof.iter().map(|vote| vote.sender).collect();
    assert_eq!(signers, vec![AgentId(0), AgentId(2), AgentId(3)]);
}

/// An idle replica that hears of a later epoch (a message its verifier could
/// not check, or one of a later epoch it knows) may have missed the end of
/// its own: it asks its peers at the next progress check. One of its own
/// epoch asks nothing.
#[test]
fn an_idle_replica_that_hears_of_a_later_epoch_asks_its_peers_where_they_are() {
    let f = fixture();
    let statuses = |heard: Input| {
        let mut replica = f.replica(1);
        let mut sent = Vec::new();
        for (at, input) in [(0, Input::Tick), (1, heard), (10_001, Input::Tick)] {
            sent.extend(replica.step(Micros(at), input));
        }
        broadcasts(&sent).into_iter().filter(|m| matches!(m, Message::Status { .. })).count()
    };
    let checkpoint = |epoch: u64| {
        let message = Message::Checkpoint { seq: Seq(2), state_digest: Digest([7; 32]) };
        Input::Message(Arc::new(SignedMessage::sign(message, Epoch(epoch), AgentId(2), &f.keys[2])))
    };
    assert_eq!(statuses(Input::LaterEpochHeard(Epoch(1))), 1);
    assert_eq!(statuses(checkpoint(1)), 1);
    assert_eq!(statuses(Input::LaterEpochHeard(Epoch(0))), 0);
    assert_eq!(statuses(Input::Tick), 0);
}

/// A backup holding the operator's membership change suspects a primary that
/// leaves it out of every batch, as it would one that drops requests; an
/// idle backup with nothing held suspects nobody.
#[test]
fn a_primary_that_never_orders_a_held_membership_change_is_suspected() {
    let f = fixture();
    let joiner = crate::protocol::Member {
        id: AgentId(4),
        name: "a-5".into(),
        public_key: Keypair::from_seed([40; 32]).public_key(),
    };
    let change = crate::protocol::MembershipChange { from_epoch: Epoch(0), add: vec![joiner], remove: vec![], f: None };
    let signed = Arc::new(crate::protocol::SignedMembershipChange::sign(change, &Keypair::from_seed([77; 32])));
    let view_changes = |held: bool| {
        let mut backup = f.replica(1);
        let mut sent = backup.step(Micros(0), Input::Tick);
        if held {
            sent.extend(backup.step(Micros(1), Input::Membership(signed.clone())));
        }
        for at in (10_000..=120_000).step_by(10_000) {
            sent.extend(backup.step(Micros(at), Input::Tick));
        }
        broadcasts(&sent).into_iter().filter(|m| matches!(m, Message::ViewChange { .. })).count()
    };
    assert!(view_changes(true) > 0, "the held change did not make the primary suspect");
    assert_eq!(view_changes(false), 0);
}

/// The verifier proves a snapshot's chunks against the digest, not that the
/// application can read them: chunks it cannot decode (or that decode into
/// another state) are dropped, and the replica keeps its own state.
#[test]
fn a_proven_snapshot_the_application_cannot_decode_is_dropped_and_changes_nothing() {
    use crate::app::{Application, Chunk, Snapshot};
    let f = fixture();
    let mut backup = f.replica(1);
    let mut richer = Ledger::with_genesis(&[(AccountId(f.account.public_key()), 5_000)]).unwrap().snapshot();
    // Corrupt the only account record's balance: the chunks no longer add up to the supply.
    richer.chunks[1].0[32] ^= 1;
    let garbage = Snapshot { chunks: vec![Chunk(b"not a ledger".to_vec())] };
    let mut moved = f.genesis.clone();
    moved.execute(&f.request(0).tx.tx);
    let snapshot_of = |state: Snapshot| {
        let state_digest = checkpoint_digest(state.root(), &MembershipState::default());
        let proof = (0..3).map(|i| f.signed(i, Message::Checkpoint { seq: Seq(4), state_digest })).collect();
        let membership = Arc::new(MembershipState::default());
        let snapshot = Message::StateSnapshot { seq: Seq(4), state_digest, state: Arc::new(state), membership, proof };
        f.signed(2, snapshot)
    };
    for state in [richer, garbage] {
        backup.step(Micros(0), Input::Message(snapshot_of(state)));
    }
    assert_eq!(backup.stats().dropped_malformed, 2);
    assert_eq!(backup.stats().snapshots_installed, 0);
    assert_eq!((backup.last_executed(), backup.ledger().digest()), (Seq(0), f.genesis.digest()));
    // The same proof over chunks that decode: installed.
    backup.step(Micros(0), Input::Message(snapshot_of(moved.snapshot())));
    assert_eq!(backup.stats().snapshots_installed, 1);
    assert_eq!((backup.last_executed(), backup.ledger()), (Seq(4), &moved));
}

// A swarm of replicas driven by hand, and the tests that need one; declared
// here to leave the replica's own files alone.
#[path = "test_swarm.rs"]
mod test_swarm;

#[path = "epoch_tests.rs"]
mod epoch_tests;

#[path = "passive_checkpoint_tests.rs"]
mod passive_checkpoint_tests;

#[path = "restart_tests.rs"]
mod restart_tests;

#[path = "state_transfer_tests.rs"]
mod state_transfer_tests;
