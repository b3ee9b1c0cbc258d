//! A validator: the actix shell around one [`Node`], which verifies, steps
//! the replica and says what to persist and send; this actor only does the
//! I/O. Each delivery is stepped on the validator's own thread; refusals are
//! counted by reason; the outputs of one delivery go to the supervisor as one
//! [`Route`], and the lifecycle events they imply to the event hub as one `Publish`.
//!
//! A durable validator ([`Validator::recovered`]) hands each step's write to
//! its write-ahead log ([`crate::wal`]), one group commit per mailbox drain,
//! and sends a step's outbox only once the commit's receipt opens it. It runs under an actix
//! `Supervisor`: stopped ([`Restart`], or a failed write), it is started again
//! from its log, exactly as after a crash of the process.

use super::detector::Misbehaviour;
use super::durable::{DurableLog, FlushLog, RecoveredValidator};
use super::messages::{
    BatchExecuted, Deliver, Destination, Envelope, ForceViewChange, GetNextNonces, GetStatus, InjectFault,
    ObserveExecutions, Origin, ReadReplica, ReportMisbehaviourTo, Restart, Route, ValidatorStatus, ViewRecord,
};
use super::timer::DeadlineTimer;
use super::{now, AGENT_MAILBOX};
use crate::app::{Application, SwarmApp};
use crate::crypto::Keypair;
use crate::detect::Report;
use crate::faults::Adversary;
use crate::hooks::{EventEmitter, Publish};
use crate::ledger::{AccountId, Ledger};
use crate::node::{Arrival, Node, Ready};
use crate::protocol::{AgentId, Micros, Output, Replica, View};
use crate::wal::Recovery;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, MessageResult, Recipient, Supervised};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// An application a [`Validator`] actor runs: any [`Application`]. One that
/// keeps the built-in transfer ledger hands it out, for the validator's status
/// (balances, supply) and for the double-spend fault, which spends from it;
/// any other application implements this with its one line, `impl HostedApp for MyApp {}`.
pub trait HostedApp: Application {
    /// The transfer ledger this application keeps, if any.
    fn ledger(&self) -> Option<&Ledger> {
        None
    }
}

impl HostedApp for SwarmApp {
    fn ledger(&self) -> Option<&Ledger> {
        Some(SwarmApp::ledger(self))
    }
}

impl HostedApp for crate::app::task_board::TaskBoard {}

/// How many view changes a validator remembers for its status.
const VIEW_HISTORY: usize = 64;

/// What a double-spending agent moves in each of its two conflicting transfers.
const DOUBLE_SPEND_AMOUNT: u64 = 100;

pub struct Validator<A: HostedApp = SwarmApp> {
    name: String,
    node: Node<A>,
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
    durable: Option<DurableLog<A>>,
    /// Where rejections and proofs of misbehaviour are reported.
    detector: Option<Recipient<Misbehaviour>>,
    /// Reports of the current delivery, sent once it is handled.
    reports: Vec<Report>,
}

impl<A: HostedApp> Validator<A> {
    pub fn new(name: String, replica: Replica<A>, route: Recipient<Route>) -> Validator<A> {
        Validator::of_node(name, Node::new(replica), route)
    }

    fn of_node(name: String, node: Node<A>, route: Recipient<Route>) -> Validator<A> {
        Validator {
            name,
            node,
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
            detector: None,
            reports: Vec::new(),
        }
    }

    /// Verifies messages of these committees too: a validator that joins in a
    /// later epoch must check the earlier epochs' checkpoint proofs.
    pub fn with_known_committees(mut self, committees: &[crate::protocol::Committee]) -> Validator<A> {
        self.node = self.node.with_known_committees(committees);
        self
    }

    /// A durable validator, from a replica rebuilt from its write-ahead log;
    /// it persists every step from now on.
    pub fn recovered(recovered: RecoveredValidator<A>, route: Recipient<Route>) -> Validator<A> {
        let RecoveredValidator { spec, node, log } = recovered;
        let mut validator = Validator::of_node(spec.name, node, route).with_keypair(spec.keypair);
        validator.durable = Some(log);
        validator
    }

    /// How this validator came back from its log, if it keeps one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.durable.as_ref().map(DurableLog::recovery)
    }

    /// Drops everything in memory and rebuilds the node from the log.
    fn rebuild_from_wal(&mut self) {
        let Some(durable) = &mut self.durable else { return };
        if let Some(rebuilt) = durable.reopen() {
            self.node.restart(rebuilt);
        }
        self.timer = DeadlineTimer::default();
        self.suspecting_since = None;
    }

    /// The validator's own signing key, which an injected fault may sign with.
    pub fn with_keypair(mut self, keypair: Keypair) -> Validator<A> {
        self.keypair = Some(keypair);
        self
    }

    /// Publishes this validator's lifecycle events to `hub`, one message per step.
    pub fn with_events(mut self, hub: Recipient<Publish>) -> Validator<A> {
        self.events = Some(EventEmitter::new(hub));
        self
    }

    /// Reports what this validator's verifier refuses and its replica proves to `detector`.
    pub fn with_detector(mut self, detector: Recipient<Misbehaviour>) -> Validator<A> {
        self.detector = Some(detector);
        self
    }

    /// Bounds the mailbox at `mailbox` actor messages instead of [`AGENT_MAILBOX`].
    pub fn with_mailbox(mut self, mailbox: usize) -> Validator<A> {
        self.mailbox = mailbox.max(1);
        self
    }

    pub fn replica(&self) -> &Replica<A> {
        self.node.replica()
    }

    /// What one envelope becomes for the node; none for what a validator
    /// never takes (counted), or requests an injected fault dropped.
    fn arrival(&mut self, from: Origin, envelope: Envelope) -> Option<Arrival> {
        match envelope {
            Envelope::Consensus(message) => {
                let channel = match from {
                    Origin::Validator(channel) => Some(channel),
                    _ => None,
                };
                Some(Arrival::Message { channel, message })
            }
            Envelope::Requests(requests) => {
                // The supervisor shares one batch among validators; copy only when shared.
                let requests = Arc::try_unwrap(requests).unwrap_or_else(|shared| (*shared).clone());
                crate::observe::signatures_verified(requests.len() as u64);
                if self.adversary.is_some() {
                    self.attempt_double_spend();
                }
                let requests = match &mut self.adversary {
                    Some(adversary) => adversary.filter_requests(now(), requests),
                    None => requests,
                };
                (!requests.is_empty()).then_some(Arrival::Requests(requests))
            }
            Envelope::Membership(change) => Some(Arrival::Membership(change)),
            Envelope::Reply(_) => {
                self.count_rejected("reply-sent-to-validator".into(), 1);
                None
            }
        }
    }

    /// Takes in one step's result: refusals counted, reports kept for the
    /// detector, the write handed to the log; what may be sent is added to
    /// `sendable`. True when a log commit must be scheduled.
    fn take_in(&mut self, ready: Ready<A>, sendable: &mut Vec<Output>) -> bool {
        let Ready { write, outbox, reports, refused, deadline: _ } = ready;
        for refused in &refused {
            self.count_rejected(refused.name(), refused.count());
        }
        if self.detector.is_some() {
            self.reports.extend(reports);
        }
        match &mut self.durable {
            Some(durable) => {
                let (released, flush) = durable.record(write, outbox);
                sendable.extend(released.into_iter().flatten());
                flush
            }
            // A node without a log has nothing to wait for.
            None => {
                sendable.extend(outbox.send_now().unwrap_or_default());
                false
            }
        }
    }

    /// A double-spending agent, as a client would, sends two spends of one
    /// nonce of its own account to two groups of its peers.
    fn attempt_double_spend(&mut self) {
        let (Some(adversary), Some(keypair)) = (&mut self.adversary, &self.keypair) else { return };
        let account = AccountId(keypair.public_key());
        let replica = self.node.replica();
        // Only an application that keeps the ledger has money to spend twice.
        let Some(ledger) = replica.app().ledger() else { return };
        let nonce = ledger.account(&account).next_nonce;
        let spends = adversary.double_spend(now(), nonce, DOUBLE_SPEND_AMOUNT, replica.committee());
        if spends.is_empty() {
            return;
        }
        let items = spends
            .into_iter()
            .map(|(peer, spend)| (Destination::Validator(peer), Envelope::Requests(Arc::new(vec![spend]))))
            .collect();
        let _ = self.route.try_send(Route { from: Origin::Validator(self.node.replica().id()), items });
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

    /// Carries out one step outside a delivery (a tick, a forced view change).
    fn carry_out(&mut self, ready: Ready<A>, ctx: &mut Context<Self>) {
        let mut sendable = Vec::new();
        if self.take_in(ready, &mut sendable) {
            // Handled after every message already in the mailbox.
            ctx.notify(FlushLog);
        }
        self.send(sendable, ctx);
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(durable) = &mut self.durable else { return };
        match durable.commit(self.node.logged_state()) {
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
        let (me, epoch) = (self.node.replica().id(), self.node.replica().committee().epoch().0);
        let outputs = match &mut self.adversary {
            Some(adversary) => adversary.rewrite(now(), outputs, self.node.replica().committee()),
            None => outputs,
        };
        let mut items = Vec::with_capacity(outputs.len());
        for output in outputs {
            crate::observe::validator_output(&self.name, &output, self.node.replica().committee());
            if let Some(events) = &mut self.events {
                events.observe(me, epoch, &output);
            }
            let fact = match Route::item(me, output) {
                Ok(item) => {
                    items.push(item);
                    continue;
                }
                Err(fact) => fact,
            };
            match fact {
                Output::Broadcast(_) | Output::SendTo(..) | Output::Reply(_) => {}
                Output::Executed(executed) => self.notify_observers(executed),
                // Counted in the replica's stats; hooks hear of it through the emitter.
                Output::ViewChangeStarted { from, .. } => {
                    self.suspecting_since.get_or_insert((from, now()));
                }
                Output::ViewChanged { view, primary, triggered_by, recovered } => {
                    self.record_view(view, primary, triggered_by, recovered)
                }
                // The node's verifier learned the committee in the step.
                Output::CheckpointStable { .. } | Output::EpochScheduled { .. } => {}
                Output::EpochChanged { committee, member } => {
                    tracing::info!(validator = %self.name, epoch = %committee.epoch(), member, "membership epoch changed");
                }
                Output::MembershipRefused { seq, reason } => {
                    tracing::warn!(validator = %self.name, %seq, %reason, "membership change refused");
                }
                Output::Evidence(evidence) => {
                    let accused = crate::observe::name_in(self.node.replica().committee(), evidence.accused());
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
        let deadline = self.node.replica().next_deadline().into_iter().chain(held).min();
        self.timer.arm(ctx, now(), deadline, Self::on_timer);
    }

    fn notify_observers(&mut self, executed: crate::protocol::Executed) {
        if self.observers.is_empty() {
            return;
        }
        let agent = self.node.replica().id();
        // A slow or stopped observer loses events; it never slows consensus.
        self.observers.retain(|observer| {
            let event = BatchExecuted { agent, executed: executed.clone() };
            !matches!(observer.try_send(event), Err(actix::dev::SendError::Closed(_)))
        });
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        self.timer.fired();
        let ready = self.node.step(now(), Arrival::Tick);
        self.carry_out(ready, ctx);
    }

    fn status(&self) -> ValidatorStatus {
        let replica = self.node.replica();
        let ledger = replica.app().ledger();
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
            ledger_digest: replica.app().digest(),
            balance_sum: ledger.map_or(0, Ledger::balance_sum),
            total_supply: ledger.map_or(0, Ledger::total_supply),
            ledger_totals: ledger.map(Ledger::totals),
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
        let committee = self.node.replica().committee();
        let (old_view, duration_ms) = match self.suspecting_since.take() {
            Some((from, since)) => (from, now().saturating_sub(since) as f64 / 1000.0),
            None => (View(view.0.saturating_sub(1)), 0.0),
        };
        self.view_history.push_back(ViewRecord {
            epoch: committee.epoch(),
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
        let committee = self.node.replica().committee();
        committee
            .member(self.node.replica().id())
            .map(|member| member.public_key)
            .unwrap_or(crate::crypto::PublicKey([0; 32]))
    }
}

impl<A: HostedApp> Actor for Validator<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        crate::observe::validator_started(&self.name, self.node.replica(), self.recovery());
        self.timer.arm(ctx, now(), self.node.replica().next_deadline(), Self::on_timer);
    }
}

impl<A: HostedApp> Supervised for Validator<A> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.rebuild_from_wal();
    }
}

impl<A: HostedApp> Handler<FlushLog> for Validator<A> {
    type Result = ();

    fn handle(&mut self, _: FlushLog, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl<A: HostedApp> Handler<Restart> for Validator<A> {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl<A: HostedApp> Handler<Deliver> for Validator<A> {
    type Result = ();

    fn handle(&mut self, Deliver { from, envelopes }: Deliver, ctx: &mut Context<Self>) {
        let mut sendable = Vec::new();
        let mut flush = false;
        for envelope in envelopes {
            let Some(arrival) = self.arrival(from, envelope) else { continue };
            let verifying = matches!(arrival, Arrival::Message { .. });
            let ready = self.node.step(now(), arrival);
            if verifying && ready.refused.is_empty() {
                crate::observe::signatures_verified(1);
            }
            flush |= self.take_in(ready, &mut sendable);
        }
        if flush {
            // Handled after every message already in the mailbox.
            ctx.notify(FlushLog);
        }
        // What needs no commit leaves now, as one route; reports too.
        self.send(sendable, ctx);
    }
}

impl<A: HostedApp> Handler<InjectFault> for Validator<A> {
    type Result = ();

    fn handle(&mut self, InjectFault(spec): InjectFault, _: &mut Context<Self>) {
        let Some(keypair) = self.keypair.clone() else {
            tracing::warn!(agent = %self.name, "cannot inject a fault: the validator has no keypair of its own");
            return;
        };
        let id = self.node.replica().id();
        let seed = u64::from(id.0) ^ now().0;
        self.adversary = Some(Adversary::new(id, keypair, spec, seed));
    }
}

impl<A: HostedApp> Handler<ForceViewChange> for Validator<A> {
    type Result = ();

    fn handle(&mut self, _: ForceViewChange, ctx: &mut Context<Self>) {
        let ready = self.node.step(now(), Arrival::ForceViewChange);
        self.carry_out(ready, ctx);
    }
}

impl<A: HostedApp> Handler<GetStatus> for Validator<A> {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl<A: HostedApp> Handler<GetNextNonces> for Validator<A> {
    type Result = MessageResult<GetNextNonces>;

    fn handle(&mut self, GetNextNonces(accounts): GetNextNonces, _: &mut Context<Self>) -> Self::Result {
        // An application without the ledger vouches for no nonce (an empty answer).
        let Some(ledger) = self.node.replica().app().ledger() else { return MessageResult(Vec::new()) };
        MessageResult(accounts.iter().map(|account| ledger.account(account).next_nonce).collect())
    }
}

impl<R: Send + 'static, A: HostedApp> Handler<ReadReplica<R, A>> for Validator<A> {
    type Result = MessageResult<ReadReplica<R, A>>;

    fn handle(&mut self, ReadReplica(read): ReadReplica<R, A>, _: &mut Context<Self>) -> Self::Result {
        MessageResult(read(self.node.replica()))
    }
}

impl<A: HostedApp> Handler<ObserveExecutions> for Validator<A> {
    type Result = ();

    fn handle(&mut self, ObserveExecutions(observer): ObserveExecutions, _: &mut Context<Self>) {
        self.observers.push(observer);
    }
}

impl<A: HostedApp> Handler<ReportMisbehaviourTo> for Validator<A> {
    type Result = ();

    fn handle(&mut self, ReportMisbehaviourTo(detector): ReportMisbehaviourTo, _: &mut Context<Self>) {
        self.detector = Some(detector);
    }
}
