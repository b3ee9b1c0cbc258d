//! Every delivered equivocation convicts its signer within two views once the
//! network is fair.
//!
//! "Delivered" means what one honest replica is able to prove on its own: two
//! signed PRE-PREPAREs, PREPAREs or COMMITs of one agent for one slot (epoch,
//! view, sequence number) with different digests, both reaching it while it
//! is in that view and the sequence number is inside its window, and each one
//! a message its log takes (a pre-prepare from that view's primary, a prepare
//! from anyone else). Then its log holds the first when the second arrives,
//! and it must report [`crate::protocol::Output::Evidence`]. A conflicting
//! message it drops unread — of a view it left, below its stable checkpoint,
//! inside a NEW-VIEW — is not compared: proving those would mean keeping every
//! signed message forever, and another replica that still holds the slot
//! proves them instead.

use super::invariants::Violation;
use crate::crypto::Digest;
use crate::protocol::{AgentId, Message, MessageKind, Micros, Replica, SignedMessage};
use std::collections::{BTreeSet, HashMap};

/// (receiver, signer, epoch, kind, view, seq)
type SlotAtReceiver = (AgentId, AgentId, u64, MessageKind, u64, u64);

/// A delivered message's slot at its receiver, and its digest.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    key: SlotAtReceiver,
    digest: Digest,
}

#[derive(Clone, Copy, Debug)]
struct Delivered {
    signer: AgentId,
    receiver: AgentId,
    view: u64,
    seq: u64,
}

pub struct DeliveredEquivocations {
    first: HashMap<SlotAtReceiver, Digest>,
    pending: Vec<Delivered>,
    fair_from_us: u64,
    /// The highest honest view when the network turned fair: views count from there.
    view_when_fair: Option<u64>,
    /// How many equivocations were delivered (and so had to convict).
    pub delivered: usize,
    violations: Vec<Violation>,
}

impl DeliveredEquivocations {
    pub fn new(fair_from_us: u64) -> DeliveredEquivocations {
        DeliveredEquivocations {
            first: HashMap::new(),
            pending: Vec::new(),
            fair_from_us,
            view_when_fair: None,
            delivered: 0,
            violations: Vec::new(),
        }
    }

    /// What `receiver` (honest) would prove if its node takes `signed`, read
    /// from its replica before the step; see [`DeliveredEquivocations::on_delivery`].
    pub fn candidate(&self, receiver: AgentId, signed: &SignedMessage, replica: &Replica) -> Option<Candidate> {
        let (view, seq, digest) = match signed.message {
            Message::PrePrepare { view, seq, digest, .. } if signed.sender == replica.committee().primary(view) => {
                (view, seq, digest)
            }
            Message::Prepare { view, seq, digest } if signed.sender != replica.committee().primary(view) => {
                (view, seq, digest)
            }
            Message::Commit { view, seq, digest } => (view, seq, digest),
            _ => return None,
        };
        let stable = replica.stable_checkpoint().seq.0;
        let in_window = seq.0 > stable && seq.0 <= stable + replica.params().log_window;
        let current = signed.epoch == replica.committee().epoch() && view == replica.view();
        if !in_window || !current || signed.sender == receiver {
            return None;
        }
        let key = (receiver, signed.sender, signed.epoch.0, signed.message.kind(), view.0, seq.0);
        Some(Candidate { key, digest })
    }

    /// The node verified the message of `candidate` and stepped its replica with it.
    pub fn on_delivery(&mut self, candidate: Option<Candidate>) {
        let Some(Candidate { key, digest }) = candidate else { return };
        let first = *self.first.entry(key).or_insert(digest);
        if first != digest {
            self.delivered += 1;
            let (receiver, signer, _, _, view, seq) = key;
            self.pending.push(Delivered { signer, receiver, view, seq });
        }
    }

    /// A restarted replica's log starts again from what its WAL held.
    pub fn forget(&mut self, receiver: AgentId) {
        self.first.retain(|key, _| key.0 != receiver);
    }

    /// After each event: a delivered equivocation whose signer is still free
    /// once an honest replica is two views past it (counted from when the
    /// network turned fair) is a violation.
    pub fn check(&mut self, now: Micros, highest_view: u64, convicted: &BTreeSet<AgentId>) {
        self.pending.retain(|delivered| !convicted.contains(&delivered.signer));
        if now.0 < self.fair_from_us {
            return;
        }
        let fair_view = *self.view_when_fair.get_or_insert(highest_view);
        if self.pending.is_empty() {
            return;
        }
        let (late, waiting): (Vec<Delivered>, Vec<Delivered>) =
            self.pending.iter().partition(|d| highest_view >= d.view.max(fair_view) + 2);
        self.pending = waiting;
        self.violations.extend(late.into_iter().map(not_convicted));
    }

    /// At the end of the run every delivered equivocation must have convicted.
    pub fn into_violations(mut self, convicted: &BTreeSet<AgentId>) -> Vec<Violation> {
        let unconvicted = self.pending.into_iter().filter(|d| !convicted.contains(&d.signer));
        self.violations.extend(unconvicted.map(not_convicted));
        self.violations
    }
}

fn not_convicted(delivered: Delivered) -> Violation {
    let Delivered { signer, receiver, view, seq } = delivered;
    Violation::EquivocationNotConvicted { signer, receiver, view, seq }
}
