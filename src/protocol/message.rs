//! What travels between agents: client requests, batches, the signed consensus
//! messages of Castro & Liskov's PBFT, and signed replies to clients.

use super::membership::{MembershipState, SignedMembershipChange};
use super::types::{AgentId, ClientId, Epoch, Seq, View};
use crate::app::{SignedTx, Snapshot};
use crate::crypto::{Digest, Keypair, Signature, SigningBytes};
use crate::ledger::{TxId, TxOutcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A client's signed transaction and where to send the reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client: ClientId,
    pub tx: SignedTx,
}

impl Request {
    pub fn tx_id(&self) -> TxId {
        self.tx.id()
    }
}

/// The requests the primary orders under one sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub requests: Vec<Request>,
    /// A membership change the primary orders with these requests.
    #[serde(default)]
    pub membership: Option<Arc<SignedMembershipChange>>,
}

impl Batch {
    pub fn of(requests: Vec<Request>) -> Batch {
        Batch { requests, membership: None }
    }

    /// blake3 over every request's client, signed bytes and signature, in
    /// order, then the membership change if there is one.
    pub fn digest(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"bftswarm/batch/v1");
        hasher.update(&(self.requests.len() as u64).to_le_bytes());
        for request in &self.requests {
            hasher.update(&request.client.0.to_le_bytes());
            let signed = request.tx.tx.signing_bytes();
            hasher.update(&(signed.len() as u64).to_le_bytes());
            hasher.update(&signed);
            hasher.update(&request.tx.signature.0);
        }
        if let Some(change) = &self.membership {
            hasher.update(b"membership");
            hasher.update(&change.digest().0);
        }
        Digest(*hasher.finalize().as_bytes())
    }
}

/// The consensus messages. Each is signed in a [`SignedMessage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The primary assigns `seq` to the batch with `digest` in `view`.
    PrePrepare { view: View, seq: Seq, digest: Digest, batch: Arc<Batch> },
    /// A backup accepted the pre-prepare.
    Prepare { view: View, seq: Seq, digest: Digest },
    /// The sender has a prepared certificate for the batch.
    Commit { view: View, seq: Seq, digest: Digest },
    /// The sender's ledger digest after executing `seq`.
    Checkpoint { seq: Seq, state_digest: Digest },
    /// "I am stuck here": peers answer by resending what the sender lacks.
    /// `passive`: the sender lost the record of what it signed, so where it
    /// stands says nothing about where the swarm was.
    Status { view: View, low_water: Seq, last_executed: Seq, passive: bool },
    /// The application's state at a stable checkpoint, as chunks, for a peer
    /// that fell behind it, with the quorum of signed CHECKPOINT messages that
    /// proves its digest. The receiver trusts the proof and the digest, never
    /// the sender. The membership changes travel with the state: a replica
    /// that missed one learns it here.
    StateSnapshot {
        seq: Seq,
        state_digest: Digest,
        state: Arc<Snapshot>,
        membership: Arc<MembershipState>,
        proof: Vec<Arc<SignedMessage>>,
    },
    /// The sender suspects the primary and moves to `new_view`, carrying its
    /// stable checkpoint (with proof) and every certificate it prepared above it.
    /// `passive`: the sender lost its log, so certificates it once held may be
    /// missing; a NEW-VIEW counts such VIEW-CHANGEs apart
    /// ([`crate::protocol::view_change::enough_view_changes`]).
    ViewChange {
        new_view: View,
        stable_seq: Seq,
        stable_digest: Digest,
        checkpoint_proof: Vec<Arc<SignedMessage>>,
        prepared: Vec<PreparedCertificate>,
        passive: bool,
    },
    /// The new primary's proof that `view` starts: a quorum of VIEW-CHANGEs and
    /// the pre-prepares computed from them, which every backup recomputes.
    NewView { view: View, view_changes: Vec<Arc<SignedMessage>>, pre_prepares: Vec<Arc<SignedMessage>> },
}

/// A batch prepared in some view: its pre-prepare and quorum-1 matching
/// prepares from distinct backups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCertificate {
    pub pre_prepare: Arc<SignedMessage>,
    pub prepares: Vec<Arc<SignedMessage>>,
}

impl PreparedCertificate {
    /// (view, seq, digest, batch) of the certified pre-prepare.
    pub fn slot(&self) -> Option<(View, Seq, Digest, &Arc<Batch>)> {
        match &self.pre_prepare.message {
            Message::PrePrepare { view, seq, digest, batch } => Some((*view, *seq, *digest, batch)),
            _ => None,
        }
    }
}

/// Binds a list of embedded signed messages into a signature: each is named
/// by its sender and signature, which together identify its signed content.
fn embedded_digest<'a>(messages: impl Iterator<Item = &'a Arc<SignedMessage>>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for message in messages {
        hasher.update(&[message.message.kind() as u8]);
        hasher.update(&message.sender.0.to_le_bytes());
        hasher.update(&message.signature.0);
    }
    *hasher.finalize().as_bytes()
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::PrePrepare { .. } => MessageKind::PrePrepare,
            Message::Prepare { .. } => MessageKind::Prepare,
            Message::Commit { .. } => MessageKind::Commit,
            Message::Checkpoint { .. } => MessageKind::Checkpoint,
            Message::Status { .. } => MessageKind::Status,
            Message::StateSnapshot { .. } => MessageKind::StateSnapshot,
            Message::ViewChange { .. } => MessageKind::ViewChange,
            Message::NewView { .. } => MessageKind::NewView,
        }
    }

    /// The canonical bytes a signature covers. A pre-prepare is signed over its
    /// digest, not its batch: the receiver checks the batch against the digest.
    fn signing_bytes(&self, epoch: Epoch, sender: AgentId) -> Vec<u8> {
        let header = SigningBytes::new("bftswarm/consensus/v1").u8(self.kind() as u8).u64(epoch.0).u32(sender.0);
        match self {
            Message::PrePrepare { view, seq, digest, .. }
            | Message::Prepare { view, seq, digest }
            | Message::Commit { view, seq, digest } => header.u64(view.0).u64(seq.0).bytes32(&digest.0),
            Message::Checkpoint { seq, state_digest } | Message::StateSnapshot { seq, state_digest, .. } => {
                header.u64(seq.0).bytes32(&state_digest.0)
            }
            Message::Status { view, low_water, last_executed, passive } => {
                header.u64(view.0).u64(low_water.0).u64(last_executed.0).u8(u8::from(*passive))
            }
            Message::ViewChange { new_view, stable_seq, stable_digest, checkpoint_proof, prepared, passive } => {
                let certificates = prepared.iter().flat_map(|c| std::iter::once(&c.pre_prepare).chain(&c.prepares));
                header
                    .u64(new_view.0)
                    .u64(stable_seq.0)
                    .bytes32(&stable_digest.0)
                    .bytes32(&embedded_digest(checkpoint_proof.iter()))
                    .bytes32(&embedded_digest(certificates))
                    .u8(u8::from(*passive))
            }
            Message::NewView { view, view_changes, pre_prepares } => header
                .u64(view.0)
                .bytes32(&embedded_digest(view_changes.iter()))
                .bytes32(&embedded_digest(pre_prepares.iter())),
        }
        .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum MessageKind {
    PrePrepare = 1,
    Prepare = 2,
    Commit = 3,
    Checkpoint = 4,
    Status = 5,
    StateSnapshot = 6,
    ViewChange = 7,
    NewView = 8,
}

/// A consensus message with its sender's signature over type, epoch, sender,
/// view, sequence and digest: it cannot be replayed into another context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    pub epoch: Epoch,
    pub sender: AgentId,
    pub message: Message,
    pub signature: Signature,
}

impl SignedMessage {
    pub fn sign(message: Message, epoch: Epoch, sender: AgentId, keypair: &Keypair) -> SignedMessage {
        let signature = keypair.sign(&message.signing_bytes(epoch, sender));
        SignedMessage { epoch, sender, message, signature }
    }

    pub fn signing_bytes(&self) -> Vec<u8> {
        self.message.signing_bytes(self.epoch, self.sender)
    }
}

/// A replica's signed answer to one client for the client's requests in one batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub epoch: Epoch,
    pub replica: AgentId,
    pub view: View,
    pub seq: Seq,
    pub client: ClientId,
    pub outcomes: Vec<(TxId, TxOutcome)>,
    pub signature: Signature,
}

impl Reply {
    pub fn sign(
        epoch: Epoch,
        replica: AgentId,
        view: View,
        seq: Seq,
        client: ClientId,
        outcomes: Vec<(TxId, TxOutcome)>,
        keypair: &Keypair,
    ) -> Reply {
        let mut reply = Reply { epoch, replica, view, seq, client, outcomes, signature: Signature([0; 64]) };
        reply.signature = keypair.sign(&reply.signing_bytes());
        reply
    }

    pub fn signing_bytes(&self) -> Vec<u8> {
        let outcomes = postcard::to_allocvec(&self.outcomes).unwrap_or_default();
        SigningBytes::new("bftswarm/reply/v1")
            .u64(self.epoch.0)
            .u32(self.replica.0)
            .u64(self.view.0)
            .u64(self.seq.0)
            .u32(self.client.0)
            .bytes32(&Digest::of(&outcomes).0)
            .finish()
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
