//! The actix runtime: thin shells around the pure protocol.
//!
//! Each actor only does I/O. A [`Validator`] verifies what arrives with
//! [`crate::protocol::Verifier`], feeds it to its [`crate::protocol::Replica`]
//! and hands the outputs to the [`Supervisor`], the hub of a star: every
//! message between agents passes through it. A [`Client`] does the same around
//! [`crate::protocol::ClientCore`]. [`Swarm`] starts them all, each validator on
//! its own thread (an actix `Arbiter`), and is the API the CLI and embedders use.
//!
//! Messages carry batches, never single transactions, and consensus messages
//! travel as `Arc<SignedMessage>`: in one process nothing is copied.
//!
//! # Custom agents
//!
//! A user's actix actor joins a running swarm as a **non-voting observer**
//! with [`Swarm::add_observer`]: it handles [`BatchExecuted`] (every batch
//! every validator executes, with its outcomes; `agent` says which validator)
//! and, optionally, [`crate::hooks::HookEvent`] for the lifecycle event kinds
//! it names. It never signs, so it cannot sway consensus; what it sees is what
//! the validators executed. Delivery is `try_send`: give the actor a mailbox
//! large enough for n copies of each batch (`agents/observer.toml` says 1024)
//! or it loses batches. `examples/custom_agent.rs` is an auditor built this way.
//! Validators are started with [`Swarm::launch_with`]; their mailbox bound can
//! come from `agents/validator.toml` ([`crate::agents`]).
//!
//! A user's actor can also hold a **seat in the committee** with its own
//! behaviour: name its member in [`LaunchOptions::external_validators`], and
//! the actor joins through the same API the built-in [`Validator`] uses —
//! [`Register`] with [`Swarm::supervisor`], verify each [`Deliver`]ed envelope
//! with a [`crate::protocol::Verifier`], step a [`crate::protocol::Replica`],
//! and send its outputs as a [`Route`]. It signs with its own key only and its
//! messages are verified by every peer like anyone's.
//! `examples/custom_validator.rs` is a compliance officer built this way.
//!
//! # Your own application
//!
//! [`Swarm`] is generic over the application its validators replicate
//! ([`HostedApp`]: any [`crate::app::Application`]; the default is the
//! built-in ledger and memory), and so are the [`Validator`] actor, its
//! write-ahead log ([`RecoveredValidator`]), quarantine and replacement.
//! `examples/custom_app.rs` runs a task board on `Swarm<TaskBoard>`.

mod client;
mod committees;
mod detector;
mod durable;
mod journal;
mod membership;
mod messages;
mod quarantine;
mod remote;
mod supervisor;
mod swarm;
mod timer;
mod validator;

pub use client::{Begin, Client, ClientRun};
pub use detector::{DetectorActor, Misbehaviour};
pub use durable::RecoveredValidator;
pub use journal::{JoinerEntry, MembershipJournal};
pub use membership::{Joiner, MembershipChanged};
pub use messages::{
    BatchExecuted, Deliver, DeliverReply, Destination, Envelope, ForceViewChange, GetNextNonces, GetRoutingStats,
    GetStatus, InjectFault, LearnCommittee, ObserveExecutions, Origin, Quarantine, ReadReplica, Register,
    RegisterClient, ReportMisbehaviourTo, Restart, Route, RoutingStats, Unregister, UnregisterClient, ValidatorStatus,
    ViewRecord,
};
pub use quarantine::{DetectionRecord, QuarantinePolicy, DETECTIONS_KEY};
pub use remote::RemoteLink;
pub use supervisor::{AgentEntry, Supervisor};
pub use swarm::{
    params_from_config, with_validator_accounts, LaunchOptions, Relaunch, Swarm, SwarmError, SwarmHandle, SwarmSpec,
    PRE_TASK_ACTOR_TIMEOUT,
};
pub use timer::DeadlineTimer;
pub use validator::{HostedApp, Validator};

use crate::protocol::Micros;
use std::sync::OnceLock;
use std::time::Instant;

/// The protocol's clock: microseconds since the first call in this process.
/// One origin for every actor, so deadlines computed on one thread mean the
/// same on another.
pub fn now() -> Micros {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    Micros(origin.elapsed().as_micros().min(u64::MAX as u128) as u64)
}

/// Mailbox bound of validators and clients, in actor messages (each a batch).
/// The protocol's own windows keep far fewer in flight; beyond this, messages
/// are dropped and counted, and retransmission recovers them.
pub const AGENT_MAILBOX: usize = 4096;

/// Mailbox bound of the supervisor, which hears from every agent.
pub const SUPERVISOR_MAILBOX: usize = 16384;
