//! Self-verifying proof of misbehaviour that the replica can produce by itself.

use super::committee::Committee;
use super::message::{Message, SignedMessage};
use super::types::AgentId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Two messages signed by one agent that cannot both come from an honest one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// Two signed messages of one kind for one slot (view and sequence, or checkpoint
    /// sequence) with different digests.
    Equivocation { first: Arc<SignedMessage>, second: Arc<SignedMessage> },
}

impl Evidence {
    pub fn accused(&self) -> AgentId {
        match self {
            Evidence::Equivocation { first, .. } => first.sender,
        }
    }

    /// Anyone holding the committee can re-check the evidence on its own.
    pub fn verify(&self, committee: &Committee) -> bool {
        match self {
            Evidence::Equivocation { first, second } => {
                let Some(member) = committee.member(first.sender) else {
                    return false;
                };
                let Some(key) = member.public_key.verifying_key() else {
                    return false;
                };
                first.sender == second.sender
                    && first.epoch == second.epoch
                    && slot_of(&first.message).is_some()
                    && slot_of(&first.message) == slot_of(&second.message)
                    && digest_of(&first.message) != digest_of(&second.message)
                    && first.signature.verify(&key, &first.signing_bytes())
                    && second.signature.verify(&key, &second.signing_bytes())
            }
        }
    }
}

/// The slot a message speaks for: kind, view and sequence.
fn slot_of(message: &Message) -> Option<(u8, u64, u64)> {
    match message {
        Message::PrePrepare { view, seq, .. } => Some((1, view.0, seq.0)),
        Message::Prepare { view, seq, .. } => Some((2, view.0, seq.0)),
        Message::Commit { view, seq, .. } => Some((3, view.0, seq.0)),
        Message::Checkpoint { seq, .. } => Some((4, 0, seq.0)),
        Message::Status { .. }
        | Message::StateSnapshot { .. }
        | Message::ViewChange { .. }
        | Message::NewView { .. } => None,
    }
}

fn digest_of(message: &Message) -> Option<crate::crypto::Digest> {
    match message {
        Message::PrePrepare { digest, .. } | Message::Prepare { digest, .. } | Message::Commit { digest, .. } => {
            Some(*digest)
        }
        Message::Checkpoint { state_digest, .. } => Some(*state_digest),
        Message::Status { .. }
        | Message::StateSnapshot { .. }
        | Message::ViewChange { .. }
        | Message::NewView { .. } => None,
    }
}

#[cfg(test)]
#[path = "evidence_tests.rs"]
mod tests;
