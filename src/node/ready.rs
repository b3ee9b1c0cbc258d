//! What one step of a [`super::Node`] hands its driver: [`Ready`]. The
//! records to make durable travel as a [`LogWrite`]; the messages, replies
//! and facts wait in an [`Outbox`] that opens only with a [`Receipt`], which
//! only a `LogWrite` handed over yields, so persist-before-send is a rule of
//! the types rather than of every driver's care.

use super::log::WalRecord;
use crate::app::Application;
use crate::detect::Report;
use crate::ledger::Ledger;
use crate::protocol::{Micros, Output, Rejection};

/// Everything one step produced, in the order a driver carries it out:
/// persist `write`, then open `outbox` with the receipt; `reports` and
/// `refused` may go at once (nothing this node signs depends on them).
#[derive(Debug, PartialEq)]
#[must_use = "a step's records must be persisted and its outbox sent"]
pub struct Ready<A: Application = Ledger> {
    /// What the log must hold before the outbox may leave.
    pub write: LogWrite<A>,
    /// The replica's outputs, in order: messages, replies, and the facts
    /// lifecycle events are derived from (executed batches, view changes …).
    pub outbox: Outbox,
    /// What the detector should hear: rejections that accuse or prove, and
    /// the replica's evidence, double spends and censorship strikes.
    pub reports: Vec<Report>,
    /// What the verifier refused, to count by [`Refused::name`].
    pub refused: Vec<Refused>,
    /// When the node wants a [`super::Arrival::Tick`], if ever.
    pub deadline: Option<Micros>,
}

/// Records one step appends to the log, numbered so that a receipt for a
/// later write covers every earlier one (a group commit).
#[derive(Debug, PartialEq)]
#[must_use = "the outbox waits for this write's receipt"]
pub struct LogWrite<A: Application = Ledger> {
    /// None for a step that changed nothing the log holds.
    number: Option<u64>,
    pub records: Vec<WalRecord<A>>,
    /// A checkpoint became stable: the log should replace everything it
    /// holds by one snapshot of the node's [`super::Node::logged_state`].
    pub snapshot: bool,
}

/// Proof that the log holds every write up to one number; it opens the
/// outboxes of the steps that wrote them (or that came before a later write).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Receipt(u64);

/// Outputs that may leave only once the log holds what they depend on.
#[derive(Debug, PartialEq)]
#[must_use = "an outbox holds messages to send"]
pub struct Outbox {
    outputs: Vec<Output>,
    /// The newest write this node had asked for when the step ended; none when it never wrote.
    waits_for: Option<u64>,
}

/// Something the verifier refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A consensus message: forged, of an unknown sender or epoch, malformed.
    Message(Rejection),
    /// Client requests whose signatures do not verify (how many).
    InvalidClientSignatures(usize),
    /// A membership change the operator did not sign.
    UnsignedMembershipChange,
}

impl<A: Application> LogWrite<A> {
    pub(super) fn new(number: Option<u64>, records: Vec<WalRecord<A>>, snapshot: bool) -> LogWrite<A> {
        LogWrite { number, records, snapshot }
    }

    /// Hands the records over to be written. Give the receipt to
    /// [`Outbox::release`] only once the write (or a later group commit
    /// that includes it) returned.
    pub fn into_parts(self) -> (Vec<WalRecord<A>>, bool, Receipt) {
        (self.records, self.snapshot, Receipt(self.number.unwrap_or(0)))
    }

    /// For a driver whose durable state is the node's own mirror (the
    /// simulation), or that keeps no log: the write is done as soon as it is taken.
    pub fn written_at_once(self) -> Receipt {
        self.into_parts().2
    }
}

impl Receipt {
    /// The receipt that covers this one and `other`.
    pub fn and(self, other: Receipt) -> Receipt {
        self.max(other)
    }
}

impl Outbox {
    pub(super) fn new(outputs: Vec<Output>, waits_for: Option<u64>) -> Outbox {
        Outbox { outputs, waits_for }
    }

    /// The outputs, if `receipt` shows the log holds what they depend on;
    /// otherwise the outbox back, to release after a later commit.
    pub fn release(self, receipt: &Receipt) -> Result<Vec<Output>, Outbox> {
        match self.waits_for {
            Some(number) if receipt.0 < number => Err(self),
            _ => Ok(self.outputs),
        }
    }

    /// The outputs, if nothing this node ever asked to write is pending (a
    /// node without a log, or one that has not written yet).
    pub fn send_now(self) -> Result<Vec<Output>, Outbox> {
        self.release(&Receipt(0))
    }

    /// What waits, to read (tests, invariants); sending needs [`Outbox::release`].
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }
}

impl Refused {
    /// A stable counter name: `bad-signature`, `invalid-client-signature` …
    pub fn name(&self) -> String {
        match self {
            Refused::Message(rejection) => rejection_name(rejection),
            Refused::InvalidClientSignatures(_) => "invalid-client-signature".into(),
            Refused::UnsignedMembershipChange => "unsigned-membership-change".into(),
        }
    }

    /// What arrived never reached the replica, which did not step: a refused
    /// message (but one of an epoch this node does not know yet, after which
    /// the replica steps to ask its peers what it missed) or membership change.
    /// Refused client requests do not stop the step: the valid ones go on.
    pub fn kept_from_replica(&self) -> bool {
        match self {
            Refused::Message(Rejection::WrongEpoch { expected, received }) => received <= expected,
            Refused::Message(_) | Refused::UnsignedMembershipChange => true,
            Refused::InvalidClientSignatures(_) => false,
        }
    }

    /// How many items were refused.
    pub fn count(&self) -> u64 {
        match self {
            Refused::InvalidClientSignatures(count) => *count as u64,
            Refused::Message(_) | Refused::UnsignedMembershipChange => 1,
        }
    }
}

/// A stable counter name for a rejection, from its variant: `BadSignature(..)`
/// becomes `bad-signature`. Derived rather than listed so that a new kind of
/// rejection gets a name without touching the runtime.
pub fn rejection_name(rejection: &Rejection) -> String {
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
