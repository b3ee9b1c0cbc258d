//! The node's steps asserted whole: each test compares one [`Ready`] with
//! `==`, the records, the outbox and the gate on it, the reports, the
//! refusals and the deadline together.

use super::*;
use crate::crypto::{Digest, Signature};
use crate::detect::{AccusationReason, Report};
use crate::protocol::{Batch, Message, Seq, View};

const RETRANSMIT_US: u64 = 10_000;
const VIEW_CHANGE_US: u64 = 50_000;
use crate::protocol::{replica_fixture as fixture, replica_params as params, ReplicaFixture as Fixture};

/// What the node's tests add to the replica tests' fixture.
trait NodeFixture {
    fn logged_backup(&self, i: u32) -> Node;
    fn signed_in(&self, from: u32, epoch: Epoch, message: Message) -> Arc<SignedMessage>;
    fn one_pre_prepare(&self, seq: u64) -> (Arc<SignedMessage>, Digest);
}

impl NodeFixture for Fixture {
    /// Backup `i`, every step of which is logged (a fresh log).
    fn logged_backup(&self, i: u32) -> Node {
        Node::logged(self.replica(i), RecoveredState::default())
    }

    fn signed_in(&self, from: u32, epoch: Epoch, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, epoch, AgentId(from), &self.keys[from as usize]))
    }

    /// The primary's PRE-PREPARE of one request at `seq`, and its digest.
    fn one_pre_prepare(&self, seq: u64) -> (Arc<SignedMessage>, Digest) {
        let batch = Arc::new(Batch::of(vec![self.request(seq - 1)]));
        let digest = batch.digest();
        (self.signed_in(0, Epoch(0), Message::PrePrepare { view: View(0), seq: Seq(seq), digest, batch }), digest)
    }
}

fn nothing_written() -> LogWrite {
    LogWrite::new(None, Vec::new(), false)
}

#[test]
fn a_backups_prepare_waits_for_the_durable_record_of_the_pre_prepare_it_accepted() {
    let fx = fixture();
    let mut backup = fx.logged_backup(1);
    let (pre_prepare, digest) = fx.one_pre_prepare(1);

    let ready = backup.step(Micros(100), Arrival::Message { channel: Some(AgentId(0)), message: pre_prepare.clone() });

    let prepare = fx.signed_in(1, Epoch(0), Message::Prepare { view: View(0), seq: Seq(1), digest });
    let expected = Ready {
        // The pre-prepare behind the vote, then the vote: both before the vote leaves.
        write: LogWrite::new(Some(1), vec![WalRecord::PrePrepare(pre_prepare), WalRecord::Own(prepare.clone())], false),
        outbox: Outbox::new(vec![Output::Broadcast(prepare.clone())], Some(1)),
        reports: Vec::new(),
        refused: Vec::new(),
        // The next progress check (the view-change timer runs later).
        deadline: Some(Micros(100 + RETRANSMIT_US)),
    };
    assert_eq!(ready, expected);
    let Ready { write, outbox, .. } = ready;
    // Nothing opens the outbox before the log took the write…
    let outbox = outbox.send_now().expect_err("a vote left before its record was durable");
    let outbox = outbox.release(&Receipt::default()).expect_err("an older receipt opened the outbox");
    // …and the write's own receipt does.
    assert_eq!(outbox.release(&write.written_at_once()), Ok(vec![Output::Broadcast(prepare)]));
}

#[test]
fn a_step_that_writes_nothing_still_waits_for_the_writes_before_it() {
    let fx = fixture();
    let mut backup = fx.logged_backup(1);
    let (pre_prepare, _) = fx.one_pre_prepare(1);
    let first = backup.step(Micros(100), Arrival::message(pre_prepare.clone()));
    // The same pre-prepare again: the replica drops it, the log holds it already.
    let again = backup.step(Micros(200), Arrival::message(pre_prepare));
    assert_eq!(again.write, nothing_written());
    assert_eq!(again.outbox, Outbox::new(Vec::new(), Some(1)));
    // A group commit: the first write's receipt opens both outboxes.
    let receipt = first.write.written_at_once();
    assert!(again.outbox.release(&receipt).is_ok());
    assert!(first.outbox.release(&receipt).is_ok());
}

#[test]
fn a_forged_signature_relayed_by_a_peer_is_refused_and_accuses_the_channel() {
    let fx = fixture();
    let mut backup = Node::new(fx.replica(1));
    let (pre_prepare, _) = fx.one_pre_prepare(1);
    let mut forged = (*pre_prepare).clone();
    forged.signature = Signature([7; 64]);
    let before = backup.replica().next_deadline();

    let ready = backup.step(Micros(100), Arrival::Message { channel: Some(AgentId(2)), message: Arc::new(forged) });

    let expected = Ready {
        write: nothing_written(),
        outbox: Outbox::new(Vec::new(), None),
        // The channel that handed it over is accused, not the signer it names.
        reports: vec![Report::Accusation {
            accuser: AgentId(1),
            accused: AgentId(2),
            reason: AccusationReason::BadSignature,
        }],
        refused: vec![Refused::Message(Rejection::BadSignature(AgentId(0)))],
        // The replica never saw it: its timers are as they were.
        deadline: before,
    };
    assert_eq!(ready, expected);
    assert_eq!(backup.replica().stats(), fx.replica(1).stats());
}

#[test]
fn a_message_of_a_later_epoch_makes_the_node_ask_its_peers_at_its_next_check() {
    let fx = fixture();
    let mut backup = Node::new(fx.replica(1));
    let status = Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(0), passive: false };
    let first = backup.step(Micros(0), Arrival::Tick);
    assert_eq!(first.deadline, Some(Micros(RETRANSMIT_US)));

    let later = fx.signed_in(2, Epoch(3), status.clone());
    let ready = backup.step(Micros(100), Arrival::Message { channel: Some(AgentId(2)), message: later });
    let expected = Ready {
        write: nothing_written(),
        outbox: Outbox::new(Vec::new(), None),
        // Anyone can send an unknown epoch: no accusation.
        reports: Vec::new(),
        refused: vec![Refused::Message(Rejection::WrongEpoch { expected: Epoch(0), received: Epoch(3) })],
        deadline: Some(Micros(RETRANSMIT_US)),
    };
    assert_eq!(ready, expected);
    assert!(!ready.refused[0].kept_from_replica(), "the replica steps to ask for what it missed");

    // At its next progress check it asks its peers (STATUS), as a replica that saw votes beyond its window.
    let tick = backup.step(Micros(RETRANSMIT_US), Arrival::Tick);
    let own_status = fx.signed_in(1, Epoch(0), status);
    let expected = Ready {
        write: nothing_written(),
        outbox: Outbox::new(vec![Output::Broadcast(own_status)], None),
        reports: Vec::new(),
        refused: Vec::new(),
        deadline: Some(Micros(2 * RETRANSMIT_US)),
    };
    assert_eq!(tick, expected);
}

#[test]
fn a_backup_holding_a_request_sets_its_deadline_to_suspect_the_primary() {
    let fx = fixture();
    let mut backup = Node::new(fx.replica(1));
    let idle = backup.step(Micros(0), Arrival::Tick);
    assert_eq!(idle.deadline, Some(Micros(RETRANSMIT_US)));

    let ready = backup.step(Micros(5_000), Arrival::Requests(vec![fx.request(0)]));
    let expected = Ready {
        write: nothing_written(),
        outbox: Outbox::new(Vec::new(), None),
        reports: Vec::new(),
        refused: Vec::new(),
        // The progress check comes first; the view-change timer runs from the request's arrival.
        deadline: Some(Micros(RETRANSMIT_US)),
    };
    assert_eq!(ready, expected);
    // Past the progress checks, the next deadline is the view change: the request waited a whole timeout.
    let mut now = RETRANSMIT_US;
    let mut deadlines = Vec::new();
    while now < 5_000 + VIEW_CHANGE_US {
        let ready = backup.step(Micros(now), Arrival::Tick);
        assert!(ready.outbox.outputs().iter().all(|o| !matches!(o, Output::ViewChangeStarted { .. })));
        now = ready.deadline.expect("a backup holding a request always has a deadline").0;
        deadlines.push(now);
    }
    assert_eq!(deadlines.last(), Some(&(5_000 + VIEW_CHANGE_US)), "{deadlines:?}");
    let suspect = backup.step(Micros(now), Arrival::Tick);
    assert!(suspect
        .outbox
        .outputs()
        .iter()
        .any(|o| matches!(o, Output::ViewChangeStarted { from: View(0), to: View(1), requests_waited: true })));
    // The same request's censorship strike against the primary goes to the detector.
    assert_eq!(
        suspect.reports,
        vec![Report::CensorshipStrike { reporter: AgentId(1), primary: AgentId(0), view: View(0) }]
    );
}

#[test]
fn a_client_signature_that_does_not_verify_is_counted_and_the_valid_requests_go_on() {
    let fx = fixture();
    let mut primary = Node::new(fx.replica(0));
    let mut forged = fx.request(1);
    forged.tx.signature = Signature([1; 64]);
    let ready = primary.step(Micros(0), Arrival::Requests(vec![fx.request(0), forged]));
    assert_eq!(ready.refused, vec![Refused::InvalidClientSignatures(1)]);
    assert!(!ready.refused[0].kept_from_replica());
    let proposed: Vec<_> = ready
        .outbox
        .outputs()
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => match &m.message {
                Message::PrePrepare { batch, .. } => Some(batch.requests.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(proposed, vec![vec![fx.request(0)]]);
}

#[test]
fn refusals_are_counted_under_kebab_case_names() {
    assert_eq!(Refused::Message(Rejection::BadSignature(AgentId(3))).name(), "bad-signature");
    let wrong_epoch = Rejection::WrongEpoch { expected: Epoch(0), received: Epoch(1) };
    assert_eq!(Refused::Message(wrong_epoch).name(), "wrong-epoch");
    assert_eq!(Refused::InvalidClientSignatures(3).name(), "invalid-client-signature");
    assert_eq!(Refused::InvalidClientSignatures(3).count(), 3);
    assert_eq!(Refused::UnsignedMembershipChange.name(), "unsigned-membership-change");
}

/// Logged nodes on a loss-free network whose logs take each write at once.
struct Network {
    nodes: Vec<Node>,
    receipts: Vec<Receipt>,
    view_changes: usize,
}

impl Network {
    fn of(nodes: Vec<Node>) -> Network {
        let receipts = vec![Receipt::default(); nodes.len()];
        Network { nodes, receipts, view_changes: 0 }
    }

    /// Steps node `i`; what it sends, addressed.
    fn step(&mut self, i: usize, now: u64, arrival: Arrival) -> Vec<(usize, Arc<SignedMessage>)> {
        let ready = self.nodes[i].step(Micros(now), arrival);
        self.receipts[i] = self.receipts[i].and(ready.write.written_at_once());
        let outputs = ready.outbox.release(&self.receipts[i]).expect("the log holds every write");
        let mut addressed = Vec::new();
        for output in outputs {
            match output {
                Output::Broadcast(message) => {
                    addressed.extend((0..self.nodes.len()).filter(|&to| to != i).map(|to| (to, message.clone())))
                }
                Output::SendTo(to, message) => addressed.push((to.0 as usize, message)),
                Output::ViewChangeStarted { .. } => self.view_changes += 1,
                _ => {}
            }
        }
        addressed
    }

    /// Delivers everything sent at once and ticks every deadline in time
    /// order, until `until` or until `done`; returns the time reached.
    fn run(&mut self, mut now: u64, until: u64, done: impl Fn(&[Node]) -> bool) -> u64 {
        let mut inbox = Vec::new();
        while !done(&self.nodes) && now <= until {
            while let Some((to, message)) = inbox.pop() {
                inbox.extend(self.step(to, now, Arrival::message(message)));
            }
            let deadlines =
                self.nodes.iter().enumerate().filter_map(|(i, n)| Some((n.replica().next_deadline()?.0, i)));
            let Some((at, i)) = deadlines.min() else { break };
            now = at.max(now);
            inbox.extend(self.step(i, now, Arrival::Tick));
        }
        now
    }
}

#[test]
fn a_whole_swarm_killed_mid_agreement_finishes_the_batch_by_asking_each_other_not_by_a_view_change() {
    let fx = fixture();
    let mut net = Network::of((0..4).map(|i| Node::logged(fx.replica(i), RecoveredState::default())).collect());
    // The primary orders one request; every backup accepts it and logs its
    // PREPARE, and then every process dies before any PREPARE arrives.
    let mut ordered = net.step(0, 100, Arrival::Requests(vec![fx.request(0)]));
    ordered.extend(net.step(0, 100 + 1_000, Arrival::Tick));
    assert_eq!(ordered.len(), 3, "one PRE-PREPARE to each backup");
    for (to, pre_prepare) in ordered {
        assert_eq!(net.step(to, 1_200, Arrival::message(pre_prepare)).len(), 3, "backup {to} broadcasts its PREPARE");
    }
    let restarted_at = 2_000;
    let restarted = net.nodes.iter().enumerate().map(|(i, node)| {
        let state = node.logged_state().expect("a logged node").clone();
        let (key, committee, genesis) = (fx.keys[i].clone(), fx.committee.clone(), fx.genesis.clone());
        let replica =
            Replica::restore(AgentId(i as u32), key, committee, params(), genesis, state.clone(), Micros(restarted_at));
        Node::logged(replica, state)
    });
    let mut net = Network::of(restarted.collect());
    assert!(net.nodes.iter().all(|node| node.replica().last_executed() == Seq(0)));

    // Nothing arrives from outside: the restarted validators must get
    // going on their own, well before the primary would be suspected.
    let executed = |nodes: &[Node]| nodes.iter().all(|node| node.replica().last_executed() == Seq(1));
    let reached = net.run(restarted_at, restarted_at + VIEW_CHANGE_US / 2, executed);
    assert!(executed(&net.nodes), "the batch was still not executed {} µs after the restart", reached - restarted_at);
    assert_eq!(net.view_changes, 0);
    assert!(net.nodes.iter().all(|node| node.replica().view() == View(0)));
}
