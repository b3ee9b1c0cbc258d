//! The PBFT replica as a pure, deterministic state machine (Castro & Liskov).
//!
//! [`Replica::step`] takes an [`Input`] — verified client requests, a verified
//! consensus message, or a tick — and the current time, and returns the
//! [`Output`]s the caller must carry out: messages to send, replies, executed
//! batches, stable checkpoints, evidence. No actix, no clock, no disk, no
//! randomness: the same code runs in the actor runtime and in the simulation.

pub mod certified;
pub mod client;
mod committee;
mod epoch_starts;
mod evidence;
pub mod membership;
mod message;
mod params;
mod recovered;
mod replica;
/// The replica tests' committee, account and parameters, shared with the node's tests.
#[cfg(test)]
pub(crate) use replica::tests::{fixture as replica_fixture, params as replica_params, Fixture as ReplicaFixture};
mod types;
pub mod verify;
pub mod view_change;

pub use certified::{verify_certified, CertificateError, CertifiedAnswer, VerifiedAnswer};
pub use client::{ClientCore, ClientInput, ClientOutput, ClientStats, Completion};
pub use committee::{quorum_size, Committee, CommitteeError, Member};
pub use evidence::Evidence;
pub use membership::{MembershipChange, MembershipError, MembershipState, SignedMembershipChange};
pub use message::{Batch, Message, MessageKind, PreparedCertificate, Reply, Request, SignedMessage};
pub use params::ProtocolParams;
pub use recovered::{slot_of, Passive, RecoveredCheckpoint, RecoveredSlot, RecoveredState};
pub use replica::{Executed, Input, Output, Replica, ReplicaStats};
pub use types::{AgentId, ClientId, Epoch, Micros, Seq, View};
pub use verify::{Rejection, Verifier};
