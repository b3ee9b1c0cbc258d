//! Lifecycle events: what the swarm tells hooks about itself.
//!
//! Each [`LifecycleEvent`] serializes to one JSON object tagged with its
//! kebab-case name (`{"event":"transaction-committed","agent":2,…}`), the
//! shape command hooks read on stdin. Events that concern transactions are
//! per batch, never per transaction: one validator executing one batch is one
//! `transaction-committed` event, whatever the batch holds.
//!
//! Timestamps are RFC 3339 (UTC) and are taken in the actor layer when an
//! event is made; the protocol never reads a clock.

use crate::protocol::AgentId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

mod once;
mod time;

pub use once::OncePerSwarm;
pub use time::{parse_rfc3339, rfc3339, timestamp_now};

/// A lifecycle event and its typed payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LifecycleEvent {
    SwarmInitialized {
        timestamp: String,
        swarm: String,
        validators: usize,
        max_failures: usize,
        quorum: usize,
    },
    AgentSpawned {
        timestamp: String,
        agent: AgentId,
        name: String,
        role: String,
        public_key: String,
    },
    AgentRemoved {
        timestamp: String,
        agent: AgentId,
        reason: String,
    },
    /// A task is about to start; `pre-task` hooks may veto it.
    PreTask {
        timestamp: String,
        task: String,
        description: String,
        transfers: usize,
    },
    PostTask {
        timestamp: String,
        task: String,
        completed: usize,
        committed: usize,
        rejected: usize,
        elapsed_ms: u64,
    },
    /// The primary assigned `seq` to a batch of `count` requests.
    TransactionProposed {
        timestamp: String,
        agent: AgentId,
        view: u64,
        seq: u64,
        count: usize,
        digest: String,
    },
    /// `agent` executed the batch at `seq`; `tx_ids` are the committed transfers.
    TransactionCommitted {
        timestamp: String,
        agent: AgentId,
        view: u64,
        seq: u64,
        count: usize,
        tx_ids: Vec<String>,
    },
    /// `agent` executed the batch at `seq` and rejected these transfers, each with its reason.
    TransactionRejected {
        timestamp: String,
        agent: AgentId,
        seq: u64,
        count: usize,
        rejections: Vec<Rejected>,
    },
    CheckpointStable {
        timestamp: String,
        agent: AgentId,
        seq: u64,
        /// What the checkpoint signs: the ledger and the membership together.
        state_digest: String,
        /// The ledger's own digest, for auditors that re-execute the batches.
        ledger_digest: String,
    },
    /// The detector convicted `accused`: on self-verifying evidence, f+1
    /// accusations or repeated censorship; `reporter` made the deciding report.
    MaliciousDetected {
        timestamp: String,
        reporter: AgentId,
        accused: AgentId,
        fault_type: String,
        detection_method: String,
        /// The evidence, as a JSON object's text.
        evidence: String,
        votes_against: usize,
    },
    AgentQuarantined {
        timestamp: String,
        agent: AgentId,
        reason: String,
        quarantine_ms: u64,
    },
    QuorumUpdated {
        timestamp: String,
        epoch: u64,
        validators: usize,
        quorum: usize,
    },
    ViewChangeStarted {
        timestamp: String,
        agent: AgentId,
        /// The membership epoch the views count in (each epoch starts in view 0).
        #[serde(default)]
        epoch: u64,
        from_view: u64,
        to_view: u64,
    },
    ViewChanged {
        timestamp: String,
        agent: AgentId,
        /// The membership epoch the view counts in (each epoch starts in view 0).
        #[serde(default)]
        epoch: u64,
        view: u64,
        primary: AgentId,
    },
}

/// One rejected transfer in a [`LifecycleEvent::TransactionRejected`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub tx_id: String,
    pub reason: String,
}

/// The kinds of event, for subscriptions; named as in the JSON (`agent-spawned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    SwarmInitialized,
    AgentSpawned,
    AgentRemoved,
    PreTask,
    PostTask,
    TransactionProposed,
    TransactionCommitted,
    TransactionRejected,
    CheckpointStable,
    MaliciousDetected,
    AgentQuarantined,
    QuorumUpdated,
    ViewChangeStarted,
    ViewChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::SwarmInitialized,
        EventKind::AgentSpawned,
        EventKind::AgentRemoved,
        EventKind::PreTask,
        EventKind::PostTask,
        EventKind::TransactionProposed,
        EventKind::TransactionCommitted,
        EventKind::TransactionRejected,
        EventKind::CheckpointStable,
        EventKind::MaliciousDetected,
        EventKind::AgentQuarantined,
        EventKind::QuorumUpdated,
        EventKind::ViewChangeStarted,
        EventKind::ViewChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::SwarmInitialized => "swarm-initialized",
            EventKind::AgentSpawned => "agent-spawned",
            EventKind::AgentRemoved => "agent-removed",
            EventKind::PreTask => "pre-task",
            EventKind::PostTask => "post-task",
            EventKind::TransactionProposed => "transaction-proposed",
            EventKind::TransactionCommitted => "transaction-committed",
            EventKind::TransactionRejected => "transaction-rejected",
            EventKind::CheckpointStable => "checkpoint-stable",
            EventKind::MaliciousDetected => "malicious-detected",
            EventKind::AgentQuarantined => "agent-quarantined",
            EventKind::QuorumUpdated => "quorum-updated",
            EventKind::ViewChangeStarted => "view-change-started",
            EventKind::ViewChanged => "view-changed",
        }
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        EventKind::ALL.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lifecycle event {name:?}; use one of: {}", EventKind::names())]
pub struct UnknownEvent {
    pub name: String,
}

impl FromStr for EventKind {
    type Err = UnknownEvent;

    fn from_str(name: &str) -> Result<EventKind, UnknownEvent> {
        EventKind::ALL.into_iter().find(|kind| kind.name() == name).ok_or_else(|| UnknownEvent { name: name.into() })
    }
}

/// A set of [`EventKind`]s, one bit each: checked once per event per hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventKinds(u32);

impl EventKinds {
    pub fn all() -> EventKinds {
        EventKind::ALL.into_iter().collect()
    }

    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    pub fn with(self, kind: EventKind) -> EventKinds {
        EventKinds(self.0 | (1 << kind as u32))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<EventKind> for EventKinds {
    fn from_iter<I: IntoIterator<Item = EventKind>>(kinds: I) -> EventKinds {
        kinds.into_iter().fold(EventKinds::default(), EventKinds::with)
    }
}

impl LifecycleEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            LifecycleEvent::SwarmInitialized { .. } => EventKind::SwarmInitialized,
            LifecycleEvent::AgentSpawned { .. } => EventKind::AgentSpawned,
            LifecycleEvent::AgentRemoved { .. } => EventKind::AgentRemoved,
            LifecycleEvent::PreTask { .. } => EventKind::PreTask,
            LifecycleEvent::PostTask { .. } => EventKind::PostTask,
            LifecycleEvent::TransactionProposed { .. } => EventKind::TransactionProposed,
            LifecycleEvent::TransactionCommitted { .. } => EventKind::TransactionCommitted,
            LifecycleEvent::TransactionRejected { .. } => EventKind::TransactionRejected,
            LifecycleEvent::CheckpointStable { .. } => EventKind::CheckpointStable,
            LifecycleEvent::MaliciousDetected { .. } => EventKind::MaliciousDetected,
            LifecycleEvent::AgentQuarantined { .. } => EventKind::AgentQuarantined,
            LifecycleEvent::QuorumUpdated { .. } => EventKind::QuorumUpdated,
            LifecycleEvent::ViewChangeStarted { .. } => EventKind::ViewChangeStarted,
            LifecycleEvent::ViewChanged { .. } => EventKind::ViewChanged,
        }
    }

    /// One line of JSON, as command hooks read it.
    pub fn to_json_line(&self) -> String {
        // Every field is a string, a number or a list of them: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_tagged_with_their_kebab_case_name() {
        let event = LifecycleEvent::TransactionCommitted {
            timestamp: "t".into(),
            agent: AgentId(2),
            view: 0,
            seq: 7,
            count: 1,
            tx_ids: vec!["x".into()],
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json_line()).unwrap();
        assert_eq!(json["event"], "transaction-committed");
        assert_eq!(json["agent"], 2);
        assert_eq!(json["seq"], 7);
        assert_eq!(serde_json::from_value::<LifecycleEvent>(json).unwrap(), event);
    }

    #[test]
    fn every_kind_parses_from_its_name_and_unknown_names_are_refused() {
        for kind in EventKind::ALL {
            assert_eq!(kind.name().parse::<EventKind>(), Ok(kind));
        }
        let error = "on-commit".parse::<EventKind>().unwrap_err().to_string();
        assert!(error.starts_with("unknown lifecycle event \"on-commit\"; use one of: swarm-initialized"), "{error}");
    }

    #[test]
    fn kind_sets_hold_exactly_what_was_put_in() {
        let kinds: EventKinds = [EventKind::PreTask, EventKind::ViewChanged].into_iter().collect();
        assert!(kinds.contains(EventKind::PreTask) && kinds.contains(EventKind::ViewChanged));
        assert!(!kinds.contains(EventKind::PostTask));
        assert!(EventKind::ALL.into_iter().all(|kind| EventKinds::all().contains(kind)));
    }
}
