//! The interface between consensus and the state machine it replicates: what
//! the replica asks of an application (validation before ordering, execution
//! of an ordered batch, a state digest, chunked snapshots, queries), and the
//! Merkle tree that lets a snapshot chunk be checked against the digest.
//!
//! The shape follows CometBFT's ABCI (CheckTx, FinalizeBlock, Commit, Query,
//! snapshots), cut down to what a pure replica needs: no I/O, no clock, no
//! randomness. Every method is deterministic: honest replicas that execute the
//! same batches in the same order hold the same state and the same digest.
//!
//! Requests come in the swarm's one signed format ([`Request`] carries a
//! [`SignedTx`], batch-verified by the verifier before the application sees
//! it) and outcomes in the reply's ([`TxOutcome`]); each application executes
//! the operations ([`Op`]) that are its own and rejects the others.

pub mod memory;
mod merkle;
mod swarm_app;
pub mod task_board;
mod tx;

pub use merkle::{merkle_path, merkle_root, verify_path, MerklePath};
pub use swarm_app::{verify_account, verify_memory_get, Part, ProofError, ProvenAccount, SwarmApp};
pub use tx::{MemoryOp, Op, SignedTx, Transfer, Tx};

use crate::crypto::Digest;
use crate::ledger::{Execution, TxOutcome};
use crate::protocol::{Request, Seq};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hash;

/// A deterministic replicated state machine the replica is generic over.
pub trait Application: Clone + Debug + Send + Sync + Unpin + 'static {
    /// Identifies what a request consumes (the ledger: its account and
    /// nonce). Two signed requests with one key exclude each other: once one
    /// executes, the other is dropped unordered and both are reported as
    /// proof that their signer signed twice for one slot.
    type ConflictKey: Copy + Eq + Hash + Debug + Send + Sync + Unpin;

    /// Validation before ordering, against the state executed so far.
    fn check(&self, request: &Request) -> Result<(), Refusal>;

    /// Executes the ordered batch at `seq` whose signatures the verifier
    /// checked: one execution per request, in order, the same on every
    /// replica. `seq` is consensus time (every replica executes a batch at
    /// the same one), the only clock an application may read.
    fn execute(&mut self, seq: Seq, requests: &[Request]) -> Vec<Execution>;

    /// What `request` consumes, if two requests can conflict at all.
    fn conflict_key(request: &Request) -> Option<Self::ConflictKey>;

    /// The state digest a checkpoint signs: the [`merkle_root`] of the
    /// hashes of [`Application::snapshot`]'s chunks, so any one chunk can
    /// be proven against it.
    fn digest(&self) -> Digest;

    /// The whole state as chunks, for a peer that fell behind.
    fn snapshot(&self) -> Snapshot;

    /// Rebuilds the state from a snapshot whose digest was proven; refuses
    /// chunks it cannot decode (or that do not encode canonically).
    fn restore(snapshot: &Snapshot) -> Result<Self, RestoreError>;

    /// Answers a read-only query (the application defines both encodings).
    fn query(&self, query: &[u8]) -> Vec<u8>;

    /// The index of the [`Application::snapshot`] chunk that answers `query`
    /// on its own, so the answer can be proven with that chunk and its
    /// [`MerklePath`]; none when no single chunk does (the default).
    fn proving_chunk(&self, _query: &[u8]) -> Option<usize> {
        None
    }

    /// Reads the answer to `query` out of that chunk alone, offline: the
    /// bytes [`Application::query`] answers on the state the chunk belongs
    /// to. None when the chunk cannot answer it (it is not that query's chunk).
    fn answer_from_chunk(_query: &[u8], _chunk: &Chunk) -> Option<Vec<u8>> {
        None
    }
}

/// Why a request is not ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This very request already executed: ordering it again only replays
    /// its outcome (it is ordered, since its outcome may have been forgotten).
    Executed,
    /// Ordering it could only reject it: the client is told this at once.
    Rejected(TxOutcome),
}

/// An application's state cut into chunks; its digest is the Merkle root
/// over the chunks' hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub chunks: Vec<Chunk>,
}

/// One piece of a snapshot, encoded by its application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Snapshot {
    /// The digest the chunks prove: what [`Application::digest`] returns for the state they encode.
    pub fn root(&self) -> Digest {
        merkle_root(self.chunks.iter().map(Chunk::hash))
    }

    /// Checks one chunk against a proven digest, without the others.
    pub fn verify_chunk(root: Digest, chunk: &Chunk, path: &MerklePath) -> bool {
        verify_path(root, chunk.hash(), path)
    }
}

impl Chunk {
    pub fn hash(&self) -> Digest {
        Chunk::hash_bytes(&self.0)
    }

    /// A chunk's leaf in the Merkle tree, from its bytes (so an application
    /// can take its digest without building the chunks).
    pub fn hash_bytes(bytes: &[u8]) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"bftswarm/chunk/v1");
        hasher.update(bytes);
        Digest(*hasher.finalize().as_bytes())
    }
}

/// A snapshot that does not decode into the application's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snapshot chunk {chunk} does not decode: {reason}")]
pub struct RestoreError {
    pub chunk: usize,
    pub reason: &'static str,
}

#[cfg(test)]
mod tests;
