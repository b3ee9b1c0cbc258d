//! Turns a validator's protocol outputs into lifecycle events, so the
//! validator itself only forwards: one [`Publish`] per step, and only when
//! the step produced an event.

use super::Publish;
use crate::events::{timestamp_now, LifecycleEvent, Rejected};
use crate::ledger::{Execution, TxOutcome};
use crate::protocol::{AgentId, Committee, Executed, Message, Output, Seq, View};
use actix::Recipient;

/// `swarm-initialized` and one `agent-spawned` per member, as a swarm launches.
pub fn launch_events(swarm: &str, committee: &Committee) -> Vec<LifecycleEvent> {
    let timestamp = timestamp_now();
    let initialized = LifecycleEvent::SwarmInitialized {
        timestamp: timestamp.clone(),
        swarm: swarm.into(),
        validators: committee.n(),
        max_failures: committee.f(),
        quorum: committee.quorum(),
    };
    let spawned = committee.members().iter().map(|member| LifecycleEvent::AgentSpawned {
        timestamp: timestamp.clone(),
        agent: member.id,
        name: member.name.clone(),
        role: "validator".into(),
        public_key: member.public_key.to_string(),
    });
    std::iter::once(initialized).chain(spawned).collect()
}

pub(crate) struct EventEmitter {
    hub: Recipient<Publish>,
    pending: Vec<LifecycleEvent>,
    /// One timestamp per step: every event of a step happened at once.
    timestamp: Option<String>,
    /// The primary re-broadcasts its pre-prepares while stuck; a proposal is
    /// announced once.
    last_proposed: Option<(View, Seq)>,
    /// Steps whose events the hub's full or closed mailbox refused.
    dropped: u64,
}

impl EventEmitter {
    pub(crate) fn new(hub: Recipient<Publish>) -> EventEmitter {
        EventEmitter { hub, pending: Vec::new(), timestamp: None, last_proposed: None, dropped: 0 }
    }

    pub(crate) fn observe(&mut self, me: AgentId, epoch: u64, output: &Output) {
        let event = match output {
            Output::Broadcast(signed) => match &signed.message {
                Message::PrePrepare { view, seq, digest, batch } if signed.sender == me => {
                    if self.last_proposed.is_some_and(|last| last >= (*view, *seq)) {
                        return;
                    }
                    self.last_proposed = Some((*view, *seq));
                    let timestamp = self.timestamp();
                    let (view, seq, count, digest) = (view.0, seq.0, batch.requests.len(), digest.to_string());
                    LifecycleEvent::TransactionProposed { timestamp, agent: me, view, seq, count, digest }
                }
                _ => return,
            },
            Output::Executed(executed) => return self.executed(me, executed),
            Output::CheckpointStable { seq, state_digest, ledger_digest } => LifecycleEvent::CheckpointStable {
                timestamp: self.timestamp(),
                agent: me,
                seq: seq.0,
                state_digest: state_digest.to_string(),
                ledger_digest: ledger_digest.to_string(),
            },
            Output::ViewChangeStarted { from, to, .. } => LifecycleEvent::ViewChangeStarted {
                timestamp: self.timestamp(),
                agent: me,
                epoch,
                from_view: from.0,
                to_view: to.0,
            },
            Output::ViewChanged { view, primary, .. } => {
                let timestamp = self.timestamp();
                LifecycleEvent::ViewChanged { timestamp, agent: me, epoch, view: view.0, primary: *primary }
            }
            // Membership changes are announced once per swarm, by the supervisor;
            // convictions by the detector, which weighs what every validator reports.
            Output::Evidence(_)
            | Output::DoubleSpend { .. }
            | Output::SendTo(..)
            | Output::Reply(_)
            | Output::EpochScheduled { .. }
            | Output::MembershipRefused { .. }
            | Output::EpochChanged { .. } => return,
        };
        self.pending.push(event);
    }

    /// One `transaction-committed` and one `transaction-rejected` per batch, each only if non-empty.
    fn executed(&mut self, me: AgentId, executed: &Executed) {
        let mut tx_ids = Vec::new();
        let mut rejections = Vec::new();
        for (request, execution) in executed.batch.requests.iter().zip(&executed.executions) {
            let tx_id = request.tx_id().to_string();
            // A replay changed nothing: it was announced when it first executed.
            match execution {
                Execution::Applied(TxOutcome::Committed) => tx_ids.push(tx_id),
                Execution::Applied(TxOutcome::Rejected(reason)) => {
                    rejections.push(Rejected { tx_id, reason: reason.name().into() })
                }
                Execution::Replayed(_) => {}
            }
        }
        let (view, seq) = (executed.view.0, executed.seq.0);
        if !tx_ids.is_empty() {
            let (timestamp, count) = (self.timestamp(), tx_ids.len());
            self.pending.push(LifecycleEvent::TransactionCommitted { timestamp, agent: me, view, seq, count, tx_ids });
        }
        if !rejections.is_empty() {
            let (timestamp, count) = (self.timestamp(), rejections.len());
            self.pending.push(LifecycleEvent::TransactionRejected { timestamp, agent: me, seq, count, rejections });
        }
    }

    /// Hands this step's events to the hub as one message; never waits.
    pub(crate) fn flush(&mut self) {
        self.timestamp = None;
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        if self.hub.try_send(Publish(events)).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(steps = self.dropped, "event hub mailbox full or stopped; lifecycle events dropped");
            }
        }
    }

    fn timestamp(&mut self) -> String {
        self.timestamp.get_or_insert_with(timestamp_now).clone()
    }
}

/// A short, human-readable account of the evidence (the proof itself carries
/// whole batches, far too large for an event).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::ledger::RejectReason;
    use crate::protocol::{Batch, ClientId, Epoch, Request, SignedMessage};
    use crate::workload::{Workload, WorkloadSpec};
    use actix::{Actor, Context, Handler};
    use std::sync::{Arc, Mutex};

    struct Collector(Arc<Mutex<Vec<Vec<LifecycleEvent>>>>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<Publish> for Collector {
        type Result = ();

        fn handle(&mut self, Publish(events): Publish, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(events);
        }
    }

    fn batch_of_two() -> Arc<Batch> {
        let spec = WorkloadSpec {
            seed: 2,
            accounts: 3,
            transactions: 2,
            initial_balance: 100,
            max_amount: 5,
            overdraft_ratio: 0.0,
        };
        let requests = Workload::generate(&spec).transfers.into_iter().map(|tx| Request { client: ClientId(1), tx });
        Arc::new(Batch::of(requests.collect()))
    }

    #[actix::test]
    async fn a_step_is_one_publish_and_a_re_broadcast_proposal_is_announced_once() {
        let published = Arc::new(Mutex::new(Vec::new()));
        let mut emitter = EventEmitter::new(Collector(published.clone()).start().recipient());
        let (me, keypair) = (AgentId(0), Keypair::from_seed([7; 32]));
        let batch = batch_of_two();
        let pre_prepare =
            Message::PrePrepare { view: View(0), seq: Seq(1), digest: batch.digest(), batch: batch.clone() };
        let proposal = Output::Broadcast(Arc::new(SignedMessage::sign(pre_prepare, Epoch(0), me, &keypair)));
        let executions = vec![
            Execution::Applied(TxOutcome::Committed),
            Execution::Applied(TxOutcome::Rejected(RejectReason::ZeroAmount)),
        ];
        let executed = Executed { seq: Seq(1), view: View(0), digest: batch.digest(), batch, executions };

        emitter.observe(me, 0, &proposal);
        emitter.observe(me, 0, &Output::Executed(executed));
        emitter.flush();
        emitter.observe(me, 0, &proposal); // retransmission: no new event
        emitter.flush();
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;

        let published = published.lock().unwrap();
        assert_eq!(published.len(), 1, "one message per step with events, none for a step without");
        let kinds: Vec<&str> = published[0].iter().map(|event| event.kind().name()).collect();
        assert_eq!(kinds, ["transaction-proposed", "transaction-committed", "transaction-rejected"]);
        assert!(matches!(&published[0][1], LifecycleEvent::TransactionCommitted { count: 1, seq: 1, .. }));
        let LifecycleEvent::TransactionRejected { rejections, .. } = &published[0][2] else { unreachable!() };
        assert_eq!(rejections[0].reason, "zero-amount");
    }
}
