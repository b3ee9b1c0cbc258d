//! What follows a conviction (DESIGN §7), as two actors:
//!
//! - the **QuarantineManager** records the detection in the tutorial's shape
//!   ([`DetectionRecord`]), quarantines the agent for the configured duration
//!   (the supervisor stops routing what it sends at once), publishes
//!   `agent-quarantined`, keeps the log under
//!   `coordination/byzantine/malicious-detections` in the memory store, and
//!   asks for a replacement;
//! - the **ReplacementSpawner** removes the convicted agents through consensus
//!   (a membership epoch) and adds as many fresh validators, with fresh keys,
//!   which catch up by state transfer: n returns to its size. One change at a
//!   time; convictions that arrive meanwhile go into the next one. The
//!   membership rules refuse a removed key forever, so a quarantined key is
//!   never reused.

use super::messages::Quarantine;
use super::swarm::SwarmHandle;
use super::validator::HostedApp;
use crate::app::SwarmApp;
use crate::detect::Conviction;
use crate::events::{parse_rfc3339, rfc3339, timestamp_now, LifecycleEvent};
use crate::hooks::Publish;
use crate::protocol::AgentId;
use crate::store::MemoryStore;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, Recipient, WrapFuture};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Where the detection log is kept in the memory store (the tutorial's key).
pub const DETECTIONS_KEY: &str = "coordination/byzantine/malicious-detections";

/// What a conviction leads to.
#[derive(Clone)]
pub struct QuarantinePolicy {
    /// How long a quarantine record stays active.
    pub duration: Duration,
    /// Quarantine (stop routing, replace through consensus); otherwise only record.
    pub enforce: bool,
    /// How long one membership change may take before it is given up.
    pub max_wait: Duration,
    /// Where the detection log is written, if anywhere.
    pub memory: Option<Arc<Mutex<MemoryStore>>>,
    /// The swarm is the one that wrote `memory`'s detection log, relaunched
    /// from its logs: carry on with that log. Otherwise the swarm is a new
    /// one (a run from genesis) and starts a log of its own: an earlier
    /// swarm's convictions are not this one's.
    pub resume: bool,
}

impl Default for QuarantinePolicy {
    fn default() -> QuarantinePolicy {
        QuarantinePolicy {
            duration: Duration::from_secs(3600),
            enforce: false,
            max_wait: Duration::from_secs(30),
            memory: None,
            resume: false,
        }
    }
}

/// A conviction, with how long the detector took from report to verdict.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Convicted {
    pub conviction: Conviction,
    pub latency: Duration,
    pub at: Instant,
}

/// One detection-log record, in the tutorial's shape plus what happened next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub timestamp: String,
    pub detected_agent: String,
    pub agent_id: AgentId,
    pub fault_type: String,
    pub detection_method: String,
    pub evidence: serde_json::Value,
    pub votes_against: usize,
    /// `quarantined`, or `detected` when the policy only records.
    pub action: String,
    pub quarantine_expires: Option<String>,
    /// Quarantine still in force (records expire after the policy's duration).
    pub active: bool,
    /// The validator that took its seat, once the membership change took effect.
    pub replaced_by: Option<String>,
    /// From the deciding report being sent to the conviction being recorded.
    pub detection_latency_us: u64,
    /// From the conviction to the replacement running in the new epoch.
    pub replacement_ms: Option<f64>,
}

/// The detection log, oldest first.
#[derive(Message)]
#[rtype(result = "Vec<DetectionRecord>")]
pub struct GetDetectionLog;

/// A replacement took effect (or failed, with `error`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replaced {
    pub removed: Vec<AgentId>,
    pub added: Vec<String>,
    pub error: Option<String>,
}

pub struct QuarantineManager<A: HostedApp = SwarmApp> {
    policy: QuarantinePolicy,
    swarm: Weak<SwarmHandle<A>>,
    spawner: Recipient<Replace>,
    records: Vec<(DetectionRecord, SystemTime, Instant)>,
}

impl<A: HostedApp> QuarantineManager<A> {
    /// A manager whose log starts with the records the memory store kept
    /// when the policy resumes (a relaunched swarm carries on with its
    /// detection log, never replaces it), or empty, the kept log removed.
    pub fn new(policy: QuarantinePolicy, swarm: Weak<SwarmHandle<A>>, spawner: Recipient<Replace>) -> Self {
        let records = match (&policy.memory, policy.resume) {
            (Some(memory), true) => kept_records(memory),
            (Some(memory), false) => {
                if let Err(error) = memory.lock().unwrap_or_else(PoisonError::into_inner).delete(DETECTIONS_KEY) {
                    tracing::warn!(%error, "cannot clear an earlier swarm's detection log");
                }
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        QuarantineManager { policy, swarm, spawner, records }
    }

    fn name_of(&self, agent: AgentId) -> String {
        let member = self.swarm.upgrade().and_then(|swarm| swarm.member_in_any_epoch(agent));
        member.map_or_else(|| agent.to_string(), |member| member.name)
    }

    fn log(&self) -> Vec<DetectionRecord> {
        let now = SystemTime::now();
        let active = |expires: &SystemTime| self.policy.enforce && *expires > now;
        self.records
            .iter()
            .map(|(record, expires, _)| DetectionRecord { active: active(expires), ..record.clone() })
            .collect()
    }

    fn save(&self) {
        let Some(memory) = &self.policy.memory else { return };
        let value = match serde_json::to_value(self.log()) {
            Ok(value) => value,
            Err(error) => return tracing::warn!(%error, "cannot encode the detection log"),
        };
        let mut memory = memory.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = memory.store(DETECTIONS_KEY, &value, None) {
            tracing::warn!(%error, "cannot store the detection log");
        }
    }
}

impl<A: HostedApp> Actor for QuarantineManager<A> {
    type Context = Context<Self>;
}

impl<A: HostedApp> QuarantineManager<A> {
    /// Records the conviction and, when `enforce`, quarantines and replaces the agent.
    fn quarantine(
        &mut self,
        conviction: Conviction,
        latency: Duration,
        at: Instant,
        duration: Duration,
        enforce: bool,
    ) {
        let agent = conviction.detected_agent;
        let expires = SystemTime::now() + duration;
        let record = DetectionRecord {
            timestamp: timestamp_now(),
            detected_agent: self.name_of(agent),
            agent_id: agent,
            fault_type: conviction.fault_type.clone(),
            detection_method: conviction.detection_method.name().into(),
            evidence: conviction.evidence.clone(),
            votes_against: conviction.votes_against,
            action: if enforce { "quarantined" } else { "detected" }.into(),
            quarantine_expires: enforce.then(|| rfc3339(expires)),
            active: enforce,
            replaced_by: None,
            detection_latency_us: latency.as_micros().min(u64::MAX as u128) as u64,
            replacement_ms: None,
        };
        tracing::warn!(agent = %record.detected_agent, fault = %record.fault_type, action = %record.action, quarantine_ms = duration.as_millis() as u64, "agent quarantined");
        self.records.push((record, expires, at));
        self.save();
        if !enforce {
            return;
        }
        crate::observe::quarantined();
        if let Some(swarm) = self.swarm.upgrade() {
            if let (Some(journal), Some(member)) = (&swarm.journal, swarm.member_in_any_epoch(agent)) {
                let reason = format!("{} ({})", conviction.fault_type, conviction.detection_method.name());
                if let Err(error) = journal.quarantined(&member, expires, &reason) {
                    tracing::error!(agent = %member.name, %error, "cannot record the quarantine; enforcing it all the same");
                }
            }
            swarm.supervisor.do_send(Quarantine(agent));
            let event = LifecycleEvent::AgentQuarantined {
                timestamp: timestamp_now(),
                agent,
                reason: format!("{} ({})", conviction.fault_type, conviction.detection_method.name()),
                quarantine_ms: duration.as_millis().min(u64::MAX as u128) as u64,
            };
            swarm.hub.do_send(Publish(vec![event]));
        }
        self.spawner.do_send(Replace(agent));
    }
}

impl<A: HostedApp> Handler<Convicted> for QuarantineManager<A> {
    type Result = ();

    fn handle(&mut self, Convicted { conviction, latency, at }: Convicted, _: &mut Context<Self>) {
        let (duration, enforce) = (self.policy.duration, self.policy.enforce);
        self.quarantine(conviction, latency, at, duration, enforce);
    }
}

/// The operator's `byzantine quarantine`: quarantine and replace `agent` for
/// `duration`, whatever the detector concluded.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OperatorQuarantine {
    pub agent: AgentId,
    pub duration: Duration,
}

impl<A: HostedApp> Handler<OperatorQuarantine> for QuarantineManager<A> {
    type Result = ();

    fn handle(&mut self, OperatorQuarantine { agent, duration }: OperatorQuarantine, _: &mut Context<Self>) {
        let conviction = Conviction {
            detected_agent: agent,
            fault_type: "operator-quarantine".into(),
            detection_method: crate::detect::DetectionMethod::OperatorDecision,
            evidence: serde_json::json!({ "requested_by": "operator" }),
            votes_against: 0,
            at: super::now(),
        };
        self.quarantine(conviction, Duration::ZERO, Instant::now(), duration, true);
    }
}

impl<A: HostedApp> Handler<Replaced> for QuarantineManager<A> {
    type Result = ();

    fn handle(&mut self, replaced: Replaced, _: &mut Context<Self>) {
        if let Some(error) = &replaced.error {
            tracing::error!(removed = ?replaced.removed, %error, "replacing convicted validators failed");
            return;
        }
        let mut added = replaced.added.into_iter();
        for (record, _, convicted_at) in &mut self.records {
            if replaced.removed.contains(&record.agent_id) && record.replaced_by.is_none() {
                record.replaced_by = added.next();
                tracing::info!(agent = %record.detected_agent, replaced_by = ?record.replaced_by, "quarantined validator replaced");
                crate::observe::replaced(1);
                record.replacement_ms = Some(convicted_at.elapsed().as_secs_f64() * 1000.0);
            }
        }
        self.save();
    }
}

impl<A: HostedApp> Handler<GetDetectionLog> for QuarantineManager<A> {
    type Result = MessageResult<GetDetectionLog>;

    fn handle(&mut self, _: GetDetectionLog, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.log())
    }
}

/// The detection log kept in the memory store, each record with the moment
/// its quarantine ends (unreadable records are dropped with a warning).
fn kept_records(memory: &Arc<Mutex<MemoryStore>>) -> Vec<(DetectionRecord, SystemTime, Instant)> {
    let kept = memory.lock().unwrap_or_else(PoisonError::into_inner).retrieve(DETECTIONS_KEY);
    let Ok(Some(serde_json::Value::Array(entries))) = kept else { return Vec::new() };
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        match serde_json::from_value::<DetectionRecord>(entry) {
            Ok(record) => {
                let expires = record.quarantine_expires.as_deref().and_then(|t| parse_rfc3339(t).ok());
                records.push((record, expires.unwrap_or(SystemTime::UNIX_EPOCH), Instant::now()));
            }
            Err(error) => tracing::warn!(%error, "a kept detection record is unreadable; it is left out"),
        }
    }
    records
}

/// A quarantine a relaunched swarm found in its membership record: the
/// supervisor stops routing what `agent` sends again, and unless a change
/// already pending removes it, a replacement is asked for.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reinstate {
    pub agent: AgentId,
    pub replace: bool,
}

impl<A: HostedApp> Handler<Reinstate> for QuarantineManager<A> {
    type Result = ();

    fn handle(&mut self, Reinstate { agent, replace }: Reinstate, _: &mut Context<Self>) {
        if let Some(swarm) = self.swarm.upgrade() {
            swarm.supervisor.do_send(Quarantine(agent));
        }
        if replace {
            self.spawner.do_send(Replace(agent));
        }
    }
}

/// Replace this convicted validator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replace(pub AgentId);

pub struct ReplacementSpawner<A: HostedApp = SwarmApp> {
    swarm: Weak<SwarmHandle<A>>,
    max_wait: Duration,
    waiting: Vec<AgentId>,
    busy: bool,
}

impl<A: HostedApp> ReplacementSpawner<A> {
    pub fn new(swarm: Weak<SwarmHandle<A>>, max_wait: Duration) -> ReplacementSpawner<A> {
        ReplacementSpawner { swarm, max_wait, waiting: Vec::new(), busy: false }
    }

    /// Starts the next change: every convicted validator still in the committee, out; as many fresh ones, in.
    fn next_change(&mut self, ctx: &mut Context<Self>) {
        let Some(swarm) = self.swarm.upgrade() else { return };
        let committee = swarm.committee();
        self.waiting.retain(|agent| committee.contains(*agent));
        if self.busy || self.waiting.is_empty() {
            return;
        }
        self.busy = true;
        let removed = std::mem::take(&mut self.waiting);
        let max_wait = self.max_wait;
        let change = {
            let removed = removed.clone();
            async move { swarm.change_membership(removed.len(), &removed, max_wait).await.map(|done| (swarm, done)) }
        };
        ctx.spawn(change.into_actor(self).map(move |result, spawner, ctx| {
            spawner.busy = false;
            let replaced = match result {
                Ok((_, changed)) => Replaced { removed, added: changed.added, error: None },
                Err(error) => {
                    // Try again with the next conviction; a change that timed out may still take effect.
                    Replaced { removed, added: Vec::new(), error: Some(error.to_string()) }
                }
            };
            if let Some(swarm) = spawner.swarm.upgrade() {
                swarm.quarantine.do_send(replaced);
            }
            spawner.next_change(ctx);
        }));
    }
}

impl<A: HostedApp> Actor for ReplacementSpawner<A> {
    type Context = Context<Self>;
}

impl<A: HostedApp> Handler<Replace> for ReplacementSpawner<A> {
    type Result = ();

    fn handle(&mut self, Replace(agent): Replace, ctx: &mut Context<Self>) {
        if !self.waiting.contains(&agent) {
            self.waiting.push(agent);
        }
        self.next_change(ctx);
    }
}
