//! Answers checkable offline: one query's answer, the snapshot chunk it is
//! read from, that chunk's Merkle path to the application digest, and the
//! quorum of signed CHECKPOINT messages over
//! [`checkpoint_digest`]`(app digest, membership)` at a stable checkpoint.
//!
//! Whoever holds the committee in force at that checkpoint (its members'
//! public keys and quorum) checks such an answer without trusting the
//! replica that produced it, or any single validator: the chunk proves the
//! answer, the path proves the chunk, and 2f+1 signatures prove the digest.

use super::committee::Committee;
use super::membership::checkpoint_digest_of;
use super::message::{Message, SignedMessage};
use super::types::{AgentId, Epoch, Seq};
use crate::app::{merkle_path, merkle_root, verify_path, Application, Chunk, MerklePath, Snapshot};
use crate::crypto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// One query's answer with everything that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedAnswer {
    #[serde(with = "serde_bytes")]
    pub query: Vec<u8>,
    /// What the application answers (its encoding; the memory: an encoded
    /// `Option<Entry>`, so an absence is an answer too).
    #[serde(with = "serde_bytes")]
    pub answer: Vec<u8>,
    pub chunk: Chunk,
    pub path: MerklePath,
    pub app_digest: Digest,
    pub membership_digest: Digest,
    /// The stable checkpoint the state is at.
    pub seq: Seq,
    /// The quorum of CHECKPOINT messages that made it stable.
    pub checkpoint: Vec<Arc<SignedMessage>>,
}

impl CertifiedAnswer {
    /// `query` answered on `app` (whose chunks are `snapshot`) at the stable
    /// checkpoint `seq` proven by `checkpoint`; none when the application
    /// names no single chunk that answers it.
    pub fn build<A: Application>(
        app: &A,
        snapshot: &Snapshot,
        query: &[u8],
        membership_digest: Digest,
        seq: Seq,
        checkpoint: Vec<Arc<SignedMessage>>,
    ) -> Option<CertifiedAnswer> {
        let index = app.proving_chunk(query)?;
        let leaves: Vec<Digest> = snapshot.chunks.iter().map(Chunk::hash).collect();
        Some(CertifiedAnswer {
            query: query.to_vec(),
            answer: app.query(query),
            chunk: snapshot.chunks.get(index)?.clone(),
            path: merkle_path(&leaves, index)?,
            app_digest: merkle_root(leaves),
            membership_digest,
            seq,
            checkpoint,
        })
    }
}

/// An answer whose proof held, and who vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAnswer {
    pub answer: Vec<u8>,
    pub seq: Seq,
    /// The members whose CHECKPOINT signatures certified the state, in id order.
    pub signers: Vec<AgentId>,
}

/// Why a certified answer is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the chunk does not answer this query (another key's chunk, or not this application's)")]
    ChunkDoesNotAnswer,
    #[error("the answer differs from what the chunk holds (the answer was altered)")]
    AnswerAltered,
    #[error("the chunk and its Merkle path do not lead to the application digest (altered chunk, path or digest)")]
    PathDoesNotProve,
    #[error(
        "checkpoint message {index} is not a CHECKPOINT of seq {seq} over this state (another seq or digest, or \
         the application digest was altered)"
    )]
    OtherCheckpoint { index: usize, seq: Seq },
    #[error("checkpoint message {index} is signed in epoch {found}, the committee given is epoch {expected}")]
    WrongEpoch { index: usize, expected: Epoch, found: Epoch },
    #[error("checkpoint message {index} names {sender}, who is not a member of the committee")]
    NotAMember { index: usize, sender: AgentId },
    #[error("checkpoint message {index} claims to be {sender}'s, but {sender}'s key did not sign it")]
    BadSignature { index: usize, sender: AgentId },
    #[error("{sender} signed more than one of the checkpoint messages")]
    DuplicateSigner { sender: AgentId },
    #[error("{signers} members signed the checkpoint; the committee needs {quorum}")]
    TooFewSigners { signers: usize, quorum: usize },
}

/// Checks `certified` offline against `committee` (the one in force at its
/// seq) for application `A`, and returns the answer with its signers.
pub fn verify_certified<A: Application>(
    certified: &CertifiedAnswer,
    committee: &Committee,
) -> Result<VerifiedAnswer, CertificateError> {
    let read = A::answer_from_chunk(&certified.query, &certified.chunk).ok_or(CertificateError::ChunkDoesNotAnswer)?;
    if read != certified.answer {
        return Err(CertificateError::AnswerAltered);
    }
    if !verify_path(certified.app_digest, certified.chunk.hash(), &certified.path) {
        return Err(CertificateError::PathDoesNotProve);
    }
    let state_digest = checkpoint_digest_of(certified.app_digest, certified.membership_digest);
    let signers = check_signers(&certified.checkpoint, certified.seq, state_digest, committee)?;
    Ok(VerifiedAnswer { answer: read, seq: certified.seq, signers })
}

/// Every message is a CHECKPOINT of (`seq`, `state_digest`) signed by a
/// distinct member of `committee`, and there is a quorum of them.
fn check_signers(
    checkpoint: &[Arc<SignedMessage>],
    seq: Seq,
    state_digest: Digest,
    committee: &Committee,
) -> Result<Vec<AgentId>, CertificateError> {
    let mut signers = BTreeSet::new();
    for (index, vote) in checkpoint.iter().enumerate() {
        let matches =
            matches!(vote.message, Message::Checkpoint { seq: s, state_digest: d } if s == seq && d == state_digest);
        if !matches {
            return Err(CertificateError::OtherCheckpoint { index, seq });
        }
        if vote.epoch != committee.epoch() {
            return Err(CertificateError::WrongEpoch { index, expected: committee.epoch(), found: vote.epoch });
        }
        let sender = vote.sender;
        let member = committee.member(sender).ok_or(CertificateError::NotAMember { index, sender })?;
        let key = member.public_key.verifying_key().ok_or(CertificateError::BadSignature { index, sender })?;
        if !vote.signature.verify(&key, &vote.signing_bytes()) {
            return Err(CertificateError::BadSignature { index, sender });
        }
        if !signers.insert(sender) {
            return Err(CertificateError::DuplicateSigner { sender });
        }
    }
    if signers.len() < committee.quorum() {
        return Err(CertificateError::TooFewSigners { signers: signers.len(), quorum: committee.quorum() });
    }
    Ok(signers.into_iter().collect())
}

#[cfg(test)]
#[path = "certified_tests.rs"]
mod tests;
