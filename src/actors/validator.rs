//! A validator: one [`Replica`] and the [`Verifier`] that guards it.
//!
//! Everything that arrives is verified here, on the validator's own thread,
//! before the replica sees it; a rejection is counted by reason and dropped.
//! The outputs of one delivery go to the supervisor as one [`Route`], and the
//! lifecycle events they imply to the event hub as one `Publish`.
//!
//! A durable validator ([`Validator::recovered`]) first makes what those
//! outputs depend on durable in its write-ahead log ([`crate::wal`]), one
//! group commit per mailbox drain, and only then sends them. It runs under an actix
//! `Supervisor`: stopped ([`Restart`], or a failed write), it is started again
//! from its log, exactly as after a crash of the process.

use super::detector::Misbehaviour;
use super::durable::{DurableLog, FlushLog, RecoveredValidator};
use super::messages::{
    BatchExecuted, Deliver, Destination, Envelope, ForceViewChange, GetNextNonces, GetStatus, InjectFault,
    ObserveExecutions, Origin, ReportMisbehaviourTo, Restart, Route, ValidatorStatus, ViewRecord,
};
use super::timer::DeadlineTimer;
use super::{now, AGENT_MAILBOX};
use crate::crypto::Keypair;
use crate::detect::{report_output, report_rejection, Report};
use crate::faults::Adversary;
use crate::hooks::{EventEmitter, Publish};
use crate::ledger::AccountId;
use crate::protocol::{AgentId, Input, Micros, Output, Rejection, Replica, Verifier, View};
use crate::wal::Recovery;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, MessageResult, Recipient, Supervised};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// How many view changes a validator remembers for its status.
const VIEW_HISTORY: usize = 64;

/// What a double-spending agent moves in each of its two conflicting transfers.
const DOUBLE_SPEND_AMOUNT: u64 = 100;

pub struct Validator {
    name: String,
    replica: Replica,
    verifier: Verifier,
    route: Recipient<Route>,
    /// Hook point for observers of executed batches (auditors, hooks, metrics).
    observers: Vec<Recipient<BatchExecuted>>,
    timer: DeadlineTimer,
    inbound_rejected: BTreeMap<String, u64>,
    /// Outputs the supervisor's full mailbox refused; peers recover them by retransmission.
    outbound_dropped: u64,
    /// Lifecycle events for the event hub, if the swarm has one.
    events: Option<EventEmitter>,
    mailbox: usize,
    /// The agent's own key, for a fault that signs what an attacker would.
    keypair: Option<Keypair>,
    /// Injected Byzantine behaviour: rewrites what this validator sends.
    adversary: Option<Adversary>,
    /// When this validator started suspecting the primary, and of which view.
    suspecting_since: Option<(View, Micros)>,
    view_history: VecDeque<ViewRecord>,
    /// The write-ahead log, for a durable validator.
    durable: Option<DurableLog>,
    /// Committees of earlier epochs this validator was started with; kept for a rebuild.
    known_committees: Vec<crate::protocol::Committee>,
    /// Where rejections and proofs of misbehaviour are reported.
    detector: Option<Recipient<Misbehaviour>>,
    /// Reports of the current delivery, sent once it is handled.
    reports: Vec<Report>,
}

impl Validator {
    pub fn new(name: String, replica: Replica, route: Recipient<Route>) -> Validator {
        let mut verifier = Verifier::new(replica.committee(), replica.params().max_batch_size);
        replica.known_committees().iter().for_each(|committee| verifier.learn(committee));
        Validator {
            name,
            replica,
            verifier,
            route,
            observers: Vec::new(),
            timer: DeadlineTimer::default(),
            inbound_rejected: BTreeMap::new(),
            outbound_dropped: 0,
            events: None,
            mailbox: AGENT_MAILBOX,
            keypair: None,
            adversary: None,
            suspecting_since: None,
            view_history: VecDeque::new(),
            durable: None,
            known_committees: Vec::new(),
            detector: None,
            reports: Vec::new(),
        }
    }

    /// Verifies messages of these committees too: a validator that joins in a
    /// later epoch must check the earlier epochs' checkpoint proofs.
    pub fn with_known_committees(mut self, committees: &[crate::protocol::Committee]) -> Validator {
        committees.iter().for_each(|committee| self.verifier.learn(committee));
        self.known_committees = committees.to_vec();
        self
    }

    /// A durable validator, from a replica rebuilt from its write-ahead log;
    /// it persists every step from now on.
    pub fn recovered(recovered: RecoveredValidator, route: Recipient<Route>) -> Validator {
        let RecoveredValidator { spec, replica, log } = recovered;
        let mut validator = Validator::new(spec.name, replica, route).with_keypair(spec.keypair);
        validator.durable = Some(log);
        validator
    }

    /// How this validator came back from its log, if it keeps one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.durable.as_ref().map(DurableLog::recovery)
    }

    /// Drops everything in memory and rebuilds the replica from the log.
    fn rebuild_from_wal(&mut self) {
        let Some(durable) = &mut self.durable else { return };
        if let Some(replica) = durable.reopen() {
            self.verifier = Verifier::new(replica.committee(), replica.params().max_batch_size);
            self.known_committees.iter().for_each(|committee| self.verifier.learn(committee));
            replica.known_committees().iter().for_each(|committee| self.verifier.learn(committee));
            self.replica = replica;
        }
        self.timer = DeadlineTimer::default();
        self.suspecting_since = None;
    }

    /// The validator's own signing key, which an injected fault may sign with.
    pub fn with_keypair(mut self, keypair: Keypair) -> Validator {
        self.keypair = Some(keypair);
        self
    }

    /// Publishes this validator's lifecycle events to `hub`, one message per step.
    pub fn with_events(mut self, hub: Recipient<Publish>) -> Validator {
        self.events = Some(EventEmitter::new(hub));
        self
    }

    /// Reports what this validator's verifier refuses and its replica proves to `detector`.
    pub fn with_detector(mut self, detector: Recipient<Misbehaviour>) -> Validator {
        self.detector = Some(detector);
        self
    }

    /// Bounds the mailbox at `mailbox` actor messages instead of [`AGENT_MAILBOX`].
    pub fn with_mailbox(mut self, mailbox: usize) -> Validator {
        self.mailbox = mailbox.max(1);
        self
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    fn receive(&mut self, from: Origin, envelope: Envelope, outputs: &mut Vec<Output>) {
        match envelope {
            Envelope::Consensus(message) => match self.verifier.verify_message(&message) {
                Ok(()) => {
                    crate::observe::signatures_verified(1);
                    outputs.extend(self.replica.step(now(), Input::Message(message)))
                }
                Err(rejection) => {
                    if let (Origin::Validator(channel), Some(_)) = (from, &self.detector) {
                        let me = self.replica.id();
                        self.reports.extend(report_rejection(me, channel, &message, &rejection));
                    }
                    if let Rejection::WrongEpoch { expected, received } = &rejection {
                        if received > expected {
                            outputs.extend(self.replica.step(now(), Input::LaterEpochHeard(*received)));
                        }
                    }
                    self.count_rejected(rejection_name(&rejection), 1)
                }
            },
            Envelope::Requests(requests) => {
                // The supervisor shares one batch among validators; copy only when shared.
                let requests = Arc::try_unwrap(requests).unwrap_or_else(|shared| (*shared).clone());
                let (valid, invalid) = self.verifier.verify_requests(requests);
                crate::observe::signatures_verified((valid.len() + invalid.len()) as u64);
                if !invalid.is_empty() {
                    self.count_rejected("invalid-client-signature".into(), invalid.len() as u64);
                }
                if self.adversary.is_some() {
                    self.attempt_double_spend();
                }
                let valid = match &mut self.adversary {
                    Some(adversary) => adversary.filter_requests(now(), valid),
                    None => valid,
                };
                if !valid.is_empty() {
                    outputs.extend(self.replica.step(now(), Input::Requests(valid)));
                }
            }
            Envelope::Membership(change) => {
                if self.verifier.verify_membership(&change) {
                    outputs.extend(self.replica.step(now(), Input::Membership(change)));
                } else {
                    self.count_rejected("unsigned-membership-change".into(), 1);
                }
            }
            Envelope::Reply(_) => self.count_rejected("reply-sent-to-validator".into(), 1),
        }
    }

    /// A double-spending agent, as a client would, sends two spends of one
    /// nonce of its own account to two groups of its peers.
    fn attempt_double_spend(&mut self) {
        let (Some(adversary), Some(keypair)) = (&mut self.adversary, &self.keypair) else { return };
        let account = AccountId(keypair.public_key());
        let nonce = self.replica.ledger().account(&account).next_nonce;
        let spends = adversary.double_spend(now(), nonce, DOUBLE_SPEND_AMOUNT, self.replica.committee());
        if spends.is_empty() {
            return;
        }
        let items = spends
            .into_iter()
            .map(|(peer, spend)| (Destination::Validator(peer), Envelope::Requests(Arc::new(vec![spend]))))
            .collect();
        let _ = self.route.try_send(Route { from: Origin::Validator(self.replica.id()), items });
    }

    /// Sends this delivery's reports to the detector, stamped now.
    fn send_reports(&mut self) {
        if self.reports.is_empty() {
            return;
        }
        let reports = std::mem::take(&mut self.reports);
        if let Some(detector) = &self.detector {
            let _ = detector.try_send(Misbehaviour { reports, sent_at: std::time::Instant::now() });
        }
    }

    fn count_rejected(&mut self, reason: String, count: u64) {
        crate::observe::message_dropped(&reason, count);
        *self.inbound_rejected.entry(reason).or_default() += count;
    }

    /// A durable validator records the step in its log and holds the outputs
    /// until the log is committed, once per mailbox drain (group commit);
    /// otherwise they are sent at once.
    fn carry_out(&mut self, outputs: Vec<Output>, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else {
            return self.send(outputs, ctx);
        };
        if durable.record(outputs, &self.replica) {
            // Handled after every message already in the mailbox.
            ctx.notify(FlushLog);
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else { return };
        match durable.commit() {
            Ok(Some(outputs)) => self.send(outputs, ctx),
            // The log could not be reopened: send nothing, as a crashed validator.
            Ok(None) => {}
            Err(error) => {
                // Nothing of these steps may leave: restart from what the log holds.
                tracing::error!(validator = %self.name, %error, "write-ahead log write failed; restarting from the log");
                ctx.stop();
            }
        }
    }

    /// Sends what must be sent as one route, tells observers what was
    /// executed, then re-arms the timer for the replica's next deadline.
    fn send(&mut self, outputs: Vec<Output>, ctx: &mut Context<Self>) {
        let me = self.replica.id();
        let outputs = match &mut self.adversary {
            Some(adversary) => adversary.rewrite(now(), outputs, self.replica.committee()),
            None => outputs,
        };
        let mut items = Vec::with_capacity(outputs.len());
        for output in outputs {
            crate::observe::validator_output(&self.name, &output, self.replica.committee());
            if let Some(events) = &mut self.events {
                events.observe(me, &output);
            }
            if self.detector.is_some() {
                self.reports.extend(report_output(me, &output, self.replica.committee()));
            }
            match output {
                Output::Broadcast(message) => {
                    items.push((Destination::AllValidatorsExcept(me), Envelope::Consensus(message)))
                }
                Output::SendTo(to, message) => items.push((Destination::Validator(to), Envelope::Consensus(message))),
                Output::Reply(reply) => items.push((Destination::Client(reply.client), Envelope::Reply(reply))),
                Output::Executed(executed) => self.notify_observers(executed),
                // Counted in the replica's stats; hooks hear of it through the emitter.
                Output::ViewChangeStarted { from, .. } => {
                    self.suspecting_since.get_or_insert((from, now()));
                }
                Output::ViewChanged { view, primary, triggered_by, recovered } => {
                    self.record_view(view, primary, triggered_by, recovered)
                }
                Output::CheckpointStable { .. } => {}
                Output::EpochScheduled { committee, .. } => self.verifier.learn(&committee),
                Output::EpochChanged { committee, member } => {
                    self.verifier.learn(&committee);
                    tracing::info!(validator = %self.name, epoch = %committee.epoch(), member, "membership epoch changed");
                }
                Output::MembershipRefused { seq, reason } => {
                    tracing::warn!(validator = %self.name, %seq, %reason, "membership change refused");
                }
                Output::Evidence(evidence) => {
                    let accused = crate::observe::name_in(self.replica.committee(), evidence.accused());
                    tracing::warn!(validator = %self.name, %accused, "evidence of misbehaviour");
                }
                Output::DoubleSpend { executed, .. } => {
                    tracing::warn!(validator = %self.name, account = %executed.tx.from, "double spend");
                }
            }
        }
        if !items.is_empty() {
            let count = items.len() as u64;
            let route = Route { from: Origin::Validator(me), items };
            if self.route.try_send(route).is_err() {
                self.outbound_dropped += count;
                crate::observe::outbox_dropped(count);
            }
        }
        if let Some(events) = &mut self.events {
            events.flush();
        }
        self.send_reports();
        let held = self.adversary.as_ref().and_then(Adversary::next_deadline);
        let deadline = self.replica.next_deadline().into_iter().chain(held).min();
        self.timer.arm(ctx, now(), deadline, Validator::on_timer);
    }

    fn notify_observers(&mut self, executed: crate::protocol::Executed) {
        if self.observers.is_empty() {
            return;
        }
        let agent = self.replica.id();
        // A slow or stopped observer loses events; it never slows consensus.
        self.observers.retain(|observer| {
            let event = BatchExecuted { agent, executed: executed.clone() };
            !matches!(observer.try_send(event), Err(actix::dev::SendError::Closed(_)))
        });
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        self.timer.fired();
        let outputs = self.replica.step(now(), Input::Tick);
        self.carry_out(outputs, ctx);
    }

    fn status(&self) -> ValidatorStatus {
        let replica = &self.replica;
        let ledger = replica.ledger();
        let stable = replica.stable_checkpoint();
        ValidatorStatus {
            id: replica.id(),
            name: self.name.clone(),
            public_key: self.verifier_key(),
            is_primary: replica.is_primary(),
            view: replica.view(),
            epoch: replica.committee().epoch(),
            member: !replica.is_retired(),
            last_executed: replica.last_executed(),
            slots_in_flight: replica.slots_in_flight(),
            stable_checkpoint: stable.seq,
            stable_digest: stable.state_digest,
            ledger_digest: ledger.state_digest(),
            balance_sum: ledger.balance_sum(),
            total_supply: ledger.total_supply(),
            ledger_totals: Some(ledger.totals()),
            stats: replica.stats().clone(),
            inbound_rejected: self.inbound_rejected.clone(),
            outbound_dropped: self.outbound_dropped,
            view_history: self.view_history.iter().cloned().collect(),
            recovery: self.recovery().cloned(),
            logged_executed: self.durable.as_ref().and_then(|durable| durable.logged_executed()),
            injected_fault: self.adversary.as_ref().map(|adversary| {
                let spec = adversary.spec();
                format!("{} (p = {:.2})", spec.fault_type.name(), spec.probability)
            }),
        }
    }

    fn record_view(&mut self, view: View, new_primary: AgentId, triggered_by: Vec<AgentId>, recovered: usize) {
        let committee = self.replica.committee();
        let (old_view, duration_ms) = match self.suspecting_since.take() {
            Some((from, since)) => (from, now().saturating_sub(since) as f64 / 1000.0),
            None => (View(view.0.saturating_sub(1)), 0.0),
        };
        self.view_history.push_back(ViewRecord {
            view,
            old_primary: committee.primary(old_view),
            new_primary,
            duration_ms,
            triggered_by,
            transactions_recovered: recovered,
        });
        if self.view_history.len() > VIEW_HISTORY {
            self.view_history.pop_front();
        }
    }

    fn verifier_key(&self) -> crate::crypto::PublicKey {
        let committee = self.replica.committee();
        committee.member(self.replica.id()).map(|member| member.public_key).unwrap_or(crate::crypto::PublicKey([0; 32]))
    }
}

/// A stable counter name for a rejection, from its variant: `BadSignature(..)`
/// becomes `bad-signature`. Derived rather than listed so that a new kind of
/// rejection gets a name without touching the runtime.
fn rejection_name(rejection: &Rejection) -> String {
    let debug = format!("{rejection:?}");
    let variant = debug.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("unknown");
    let mut name = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

impl Actor for Validator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        crate::observe::validator_started(&self.name, &self.replica, self.recovery());
        self.timer.arm(ctx, now(), self.replica.next_deadline(), Validator::on_timer);
    }
}

impl Supervised for Validator {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.rebuild_from_wal();
    }
}

impl Handler<FlushLog> for Validator {
    type Result = ();

    fn handle(&mut self, _: FlushLog, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<Restart> for Validator {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Deliver> for Validator {
    type Result = ();

    fn handle(&mut self, Deliver { from, envelopes }: Deliver, ctx: &mut Context<Self>) {
        let mut outputs = Vec::new();
        for envelope in envelopes {
            self.receive(from, envelope, &mut outputs);
        }
        self.carry_out(outputs, ctx);
        // Rejections leave no output to carry; report them now.
        self.send_reports();
    }
}

impl Handler<InjectFault> for Validator {
    type Result = ();

    fn handle(&mut self, InjectFault(spec): InjectFault, _: &mut Context<Self>) {
        let Some(keypair) = self.keypair.clone() else {
            tracing::warn!(agent = %self.name, "cannot inject a fault: the validator has no keypair of its own");
            return;
        };
        let seed = u64::from(self.replica.id().0) ^ now().0;
        self.adversary = Some(Adversary::new(self.replica.id(), keypair, spec, seed));
    }
}

impl Handler<ForceViewChange> for Validator {
    type Result = ();

    fn handle(&mut self, _: ForceViewChange, ctx: &mut Context<Self>) {
        let outputs = self.replica.step(now(), Input::ForceViewChange);
        self.carry_out(outputs, ctx);
    }
}

impl Handler<GetStatus> for Validator {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<GetNextNonces> for Validator {
    type Result = MessageResult<GetNextNonces>;

    fn handle(&mut self, GetNextNonces(accounts): GetNextNonces, _: &mut Context<Self>) -> Self::Result {
        let ledger = self.replica.ledger();
        MessageResult(accounts.iter().map(|account| ledger.account(account).next_nonce).collect())
    }
}

impl Handler<ObserveExecutions> for Validator {
    type Result = ();

    fn handle(&mut self, ObserveExecutions(observer): ObserveExecutions, _: &mut Context<Self>) {
        self.observers.push(observer);
    }
}

impl Handler<ReportMisbehaviourTo> for Validator {
    type Result = ();

    fn handle(&mut self, ReportMisbehaviourTo(detector): ReportMisbehaviourTo, _: &mut Context<Self>) {
        self.detector = Some(detector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AgentId, Epoch};

    #[test]
    fn rejection_names_are_kebab_case_variant_names() {
        assert_eq!(rejection_name(&Rejection::BadSignature(AgentId(3))), "bad-signature");
        let wrong_epoch = Rejection::WrongEpoch { expected: Epoch(0), received: Epoch(1) };
        assert_eq!(rejection_name(&wrong_epoch), "wrong-epoch");
    }
}
