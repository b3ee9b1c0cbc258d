//! Crashes and restarts in the simulation, and the invariant they threaten.
//!
//! A durable validator's node keeps what its write-ahead log would hold after
//! each step ([`crate::node::Node::logged_state`], what the real log is told
//! to write; only the disk is left out). A crash throws its replica away and restores one from that
//! state, as a restarted process does from its log.
//!
//! No honest replica may ever sign two different messages for one slot:
//! [`SignedSlots`] remembers every signature honest replicas send, per
//! (signer, kind, view, sequence), crash or no crash. VIEW-CHANGE is left
//! out: a replica that asked for view v+2 and then entered v+1 leaves its
//! view change, and may later ask for v+2 again with newer certificates — the
//! protocol's own behaviour, harmless (peers keep one VIEW-CHANGE per sender
//! and target, and each carries its own proofs), found by this check.

use super::invariants::Violation;
use crate::protocol::{AgentId, Message, MessageKind, Micros, Output, SignedMessage};
use crate::rng::SeededRng;
use std::collections::BTreeMap;

/// When which validator crashes: at most `count` crashes in the first `within_us`.
pub fn crash_schedule(rng: &mut SeededRng, validators: usize, count: u64, within_us: u64) -> Vec<(Micros, usize)> {
    let mut crashes: Vec<(Micros, usize)> = (0..rng.between(1, count))
        .map(|_| (Micros(rng.between(1_000, within_us)), rng.below(validators as u64) as usize))
        .collect();
    crashes.sort();
    crashes
}

/// Who loses its log in [`super::Scenario::LostLogsBeyondF`]: f+1 to n-1
/// validators, all but one that is at least as far as each of them (in
/// view and in execution), so the history they signed is still held by an
/// intact log. None while no validator is that far (the run tries again at
/// the next event).
pub fn beyond_f_victims(validators: &[super::SimValidator], rng: &mut SeededRng) -> Vec<usize> {
    let reach = |v: &super::SimValidator| {
        (v.replica().view(), v.replica().last_executed(), v.replica().stable_checkpoint().seq)
    };
    let Some(keeper) = (0..validators.len()).find(|&k| {
        let (view, executed, stable) = reach(&validators[k]);
        validators.iter().all(|v| {
            let (v_view, v_executed, v_stable) = reach(v);
            v_view <= view && v_executed <= executed && v_stable <= stable
        })
    }) else {
        return Vec::new();
    };
    let n = validators.len();
    let f = (n - 1) / 3;
    let count = rng.between(f as u64 + 1, n as u64 - 1) as usize;
    let mut others: Vec<usize> = (0..n).filter(|&i| i != keeper).collect();
    while others.len() > count {
        others.remove(rng.below(others.len() as u64) as usize);
    }
    others
}

#[derive(Default)]
pub struct SignedSlots {
    /// (signer, epoch, kind, view, seq): the signature binds the epoch, so a
    /// slot of a new membership epoch is another slot.
    signatures: BTreeMap<(AgentId, u64, MessageKind, u64, u64), [u8; 64]>,
}

impl SignedSlots {
    /// Records what `me` (honest) sends; a second, different signature for
    /// the same slot is a violation.
    pub fn check(&mut self, me: AgentId, output: &Output) -> Option<Violation> {
        let (Output::Broadcast(signed) | Output::SendTo(_, signed)) = output else { return None };
        let (kind, view, seq) = slot(signed)?;
        if signed.sender != me {
            return None;
        }
        let known = self.signatures.entry((me, signed.epoch.0, kind, view, seq)).or_insert(signed.signature.0);
        (*known != signed.signature.0).then_some(Violation::Equivocation { replica: me, kind, view, seq })
    }
}

fn slot(signed: &SignedMessage) -> Option<(MessageKind, u64, u64)> {
    let (view, seq) = match signed.message {
        Message::PrePrepare { view, seq, .. } | Message::Prepare { view, seq, .. } => (view.0, seq.0),
        Message::Commit { view, seq, .. } => (view.0, seq.0),
        Message::Checkpoint { seq, .. } => (0, seq.0),
        Message::NewView { view, .. } => (view.0, 0),
        Message::ViewChange { .. } | Message::Status { .. } | Message::StateSnapshot { .. } => return None,
    };
    Some((signed.message.kind(), view, seq))
}
