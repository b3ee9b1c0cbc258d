//! The actor messages of the runtime: what agents hand the supervisor, what it
//! delivers, and what callers may ask a validator.
//!
//! Every message carries a batch (a `Vec`), so one actor hand-off, which may
//! wake another thread, is paid per batch and never per transaction.

use crate::crypto::{Digest, PublicKey};
use crate::protocol::{
    AgentId, ClientId, Committee, Epoch, Executed, Output, Replica, ReplicaStats, Reply, Request, Seq,
    SignedMembershipChange, SignedMessage, View,
};
use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One protocol message as it travels between actors; shared, never copied.
/// Serializable, so the same envelopes travel to validators in other processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Envelope {
    /// A signed PBFT message; its receiver verifies the signature.
    Consensus(Arc<SignedMessage>),
    /// Signed client requests; the receiving validator verifies each signature.
    Requests(Arc<Vec<Request>>),
    /// A validator's signed answer to a client; the client verifies it.
    Reply(Arc<Reply>),
    /// A membership change signed by the operator; the validator verifies it.
    Membership(Arc<SignedMembershipChange>),
}

/// Where the supervisor should deliver an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    /// A broadcast from a validator, which does not send to itself.
    AllValidatorsExcept(AgentId),
    Validator(AgentId),
    AllValidators,
    Client(ClientId),
}

/// Who handed a [`Route`] to the supervisor (for its counters; the receivers
/// trust only signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Validator(AgentId),
    Client(ClientId),
    /// The swarm's operator (membership changes).
    Operator,
}

/// Everything one step of one agent wants sent, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Route {
    pub from: Origin,
    pub items: Vec<(Destination, Envelope)>,
}

impl Route {
    /// Where one output of validator `me`'s node goes: a message to its
    /// peers or one of them, a reply to its client. A fact (an executed
    /// batch, a view change …) is no item and comes back.
    pub fn item(me: AgentId, output: Output) -> Result<(Destination, Envelope), Output> {
        match output {
            Output::Broadcast(message) => Ok((Destination::AllValidatorsExcept(me), Envelope::Consensus(message))),
            Output::SendTo(to, message) => Ok((Destination::Validator(to), Envelope::Consensus(message))),
            Output::Reply(reply) => Ok((Destination::Client(reply.client), Envelope::Reply(reply))),
            fact => Err(fact),
        }
    }
}

/// What the supervisor delivers to a validator: its share of one [`Route`],
/// and who handed that route over (the authenticated channel it came on: a
/// bad signature accuses the channel, not the signer a message names).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub from: Origin,
    pub envelopes: Vec<Envelope>,
}

/// The supervisor stops routing what this convicted validator sends, at once,
/// before the membership change that removes it takes effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Quarantine(pub AgentId);

/// A client accepts replies signed by this committee from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LearnCommittee(pub Committee);

/// What the supervisor delivers to a client: its replies from one [`Route`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverReply(pub Vec<Arc<Reply>>);

/// Adds an agent to the supervisor's registry (or replaces its entry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub id: AgentId,
    pub name: String,
    pub public_key: PublicKey,
    pub recipient: Recipient<Deliver>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister(pub AgentId);

#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterClient {
    pub id: ClientId,
    pub recipient: Recipient<DeliverReply>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterClient(pub ClientId);

/// Asks the supervisor for its counters.
#[derive(Message)]
#[rtype(result = "RoutingStats")]
pub struct GetRoutingStats;

/// The supervisor's counters, in envelopes (one envelope to n validators counts n).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, actix::MessageResponse)]
pub struct RoutingStats {
    pub routes: u64,
    pub delivered: u64,
    /// No such agent or client, or it has stopped.
    pub undeliverable: u64,
    /// The recipient's mailbox was full: dropped, recovered by retransmission.
    pub dropped_mailbox_full: u64,
    /// An envelope of a kind the destination does not take (a reply to a validator).
    pub misaddressed: u64,
    /// Sent by a quarantined validator: not routed.
    pub dropped_quarantined: u64,
}

/// Asks a validator for a snapshot of its state.
#[derive(Message)]
#[rtype(result = "ValidatorStatus")]
pub struct GetStatus;

/// Asks a validator for the nonce each of these accounts' next transfer must
/// carry in its ledger, in the same order.
#[derive(Message)]
#[rtype(result = "Vec<u64>")]
pub struct GetNextNonces(pub std::sync::Arc<Vec<crate::ledger::AccountId>>);

/// Reads a validator's replica without stepping it: a query of its
/// application (the built-in ledger and memory, or a user's own), a certified
/// answer from its stable checkpoint. One message type for every read, so a
/// new query needs no new message.
pub struct ReadReplica<R, A: crate::app::Application = crate::app::SwarmApp>(pub ReadOf<R, A>);

/// What a [`ReadReplica`] runs on the replica.
pub type ReadOf<R, A> = Box<dyn FnOnce(&Replica<A>) -> R + Send>;

impl<R: Send + 'static, A: crate::app::Application> Message for ReadReplica<R, A> {
    type Result = R;
}

/// Makes a validator Byzantine in the given way (fault injection, DESIGN §6).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectFault(pub crate::faults::FaultSpec);

/// Stops a validator's actor as a crash would; its supervisor starts it again,
/// and a durable validator rebuilds its replica from its write-ahead log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// An operator's order to a validator: suspect the primary and move to the next view.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceViewChange;

#[derive(Clone, Debug, Serialize)]
pub struct ValidatorStatus {
    pub id: AgentId,
    pub name: String,
    pub public_key: PublicKey,
    pub is_primary: bool,
    pub view: View,
    /// The membership epoch this validator runs in.
    pub epoch: Epoch,
    /// False once a membership change removed it.
    pub member: bool,
    pub last_executed: Seq,
    /// Sequence numbers above `last_executed` its log holds something for.
    pub slots_in_flight: usize,
    pub stable_checkpoint: Seq,
    pub stable_digest: Digest,
    /// The digest of the application (the ledger and the memory) after `last_executed`.
    pub ledger_digest: Digest,
    pub balance_sum: u128,
    pub total_supply: u64,
    /// What its ledger executed, by outcome (replicated state: equal at equal
    /// `last_executed`); none for a validator in another process.
    pub ledger_totals: Option<crate::ledger::LedgerTotals>,
    pub stats: ReplicaStats,
    /// Inbound messages refused before the replica saw them, by reason.
    pub inbound_rejected: BTreeMap<String, u64>,
    /// Outputs dropped because the supervisor's mailbox was full.
    pub outbound_dropped: u64,
    /// The fault injected into this validator, e.g. "silent (p = 1.00)".
    pub injected_fault: Option<String>,
    /// The views this validator installed after the first, oldest first (the last 64).
    pub view_history: Vec<ViewRecord>,
    /// How the validator came back from its write-ahead log; none without one.
    pub recovery: Option<crate::wal::Recovery>,
    /// The last sequence number executed that its write-ahead log holds,
    /// committed (a crash now rebuilds it there); none without a log.
    pub logged_executed: Option<Seq>,
}

/// One view change as a validator saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// The membership epoch the view counts in (each epoch starts in view 0).
    pub epoch: Epoch,
    pub view: View,
    pub old_primary: AgentId,
    pub new_primary: AgentId,
    /// From this validator suspecting the primary to installing the NEW-VIEW
    /// (0 when it joined at the NEW-VIEW without having suspected).
    pub duration_ms: f64,
    pub triggered_by: Vec<AgentId>,
    pub transactions_recovered: usize,
}

/// Subscribes an observer to the batches a validator executes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ObserveExecutions(pub Recipient<BatchExecuted>);

/// Reports what the validator's verifier refuses and its replica proves to
/// this detector from now on (a validator process reports to its hub).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportMisbehaviourTo(pub Recipient<super::detector::Misbehaviour>);

/// A batch one validator executed, with its outcomes.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct BatchExecuted {
    pub agent: AgentId,
    pub executed: Executed,
}
