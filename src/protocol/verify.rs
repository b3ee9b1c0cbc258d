//! Checks everything that arrives from outside before the replica sees it:
//! consensus signatures against the committee, a pre-prepare's batch against its
//! digest, client signatures in batches (batch-verified), and replies.
//!
//! Pure computation, shared by the actor shell and the simulation, so both run
//! the same checks. Byzantine input is not an error path for the caller: a
//! [`Rejection`] is counted and, where it proves something, becomes evidence.

use super::committee::Committee;
use super::message::{Message, Reply, Request, SignedMessage};
use super::types::{AgentId, Epoch, Seq};
use crate::crypto::Digest;
use crate::crypto::{verify_batch, Signature};
use crate::ledger::AccountId;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("message for epoch {received}, expected {expected}")]
    WrongEpoch { expected: Epoch, received: Epoch },
    #[error("sender {0} is not in the committee")]
    UnknownSender(AgentId),
    #[error("bad signature from {0}")]
    BadSignature(AgentId),
    #[error("pre-prepare from {0} carries a batch that does not match its digest")]
    BatchDigestMismatch(AgentId),
    #[error("pre-prepare from {sender} carries {size} requests, more than {max}")]
    BatchTooLarge { sender: AgentId, size: usize, max: usize },
    #[error("pre-prepare from {sender} carries a request with an invalid client signature (index {index})")]
    InvalidClientSignature { sender: AgentId, index: usize },
    #[error("state snapshot from {0} is not proven by a quorum of checkpoint signatures over its digest")]
    UnprovenSnapshot(AgentId),
}

/// Caches decompressed keys: decompression costs a third of a verification.
pub struct Verifier {
    epoch: Epoch,
    members: BTreeMap<AgentId, VerifyingKey>,
    quorum: usize,
    accounts: HashMap<AccountId, Option<VerifyingKey>>,
    max_batch_size: usize,
}

/// Bound of the account key cache; it is cleared when full (keys are cheap to redo).
const ACCOUNT_CACHE_LIMIT: usize = 1 << 20;

impl Verifier {
    pub fn new(committee: &Committee, max_batch_size: usize) -> Verifier {
        let members =
            committee.members().iter().filter_map(|m| m.public_key.verifying_key().map(|key| (m.id, key))).collect();
        Verifier {
            epoch: committee.epoch(),
            members,
            quorum: committee.quorum(),
            accounts: HashMap::new(),
            max_batch_size,
        }
    }

    pub fn verify_message(&mut self, signed: &SignedMessage) -> Result<(), Rejection> {
        if signed.epoch != self.epoch {
            return Err(Rejection::WrongEpoch { expected: self.epoch, received: signed.epoch });
        }
        let key = self.members.get(&signed.sender).ok_or(Rejection::UnknownSender(signed.sender))?;
        if !signed.signature.verify(key, &signed.signing_bytes()) {
            return Err(Rejection::BadSignature(signed.sender));
        }
        if let Message::PrePrepare { digest, batch, .. } = &signed.message {
            if batch.requests.len() > self.max_batch_size {
                let (size, max) = (batch.requests.len(), self.max_batch_size);
                return Err(Rejection::BatchTooLarge { sender: signed.sender, size, max });
            }
            if batch.digest() != *digest {
                return Err(Rejection::BatchDigestMismatch(signed.sender));
            }
            if let Some(index) = self.first_invalid_request(&batch.requests) {
                return Err(Rejection::InvalidClientSignature { sender: signed.sender, index });
            }
        }
        if let Message::StateSnapshot { seq, state_digest, ledger, proof } = &signed.message {
            if !self.proves_checkpoint(*seq, *state_digest, proof) || ledger.state_digest() != *state_digest {
                return Err(Rejection::UnprovenSnapshot(signed.sender));
            }
        }
        Ok(())
    }

    /// A quorum of distinct members signed CHECKPOINT(seq, digest).
    fn proves_checkpoint(&self, seq: Seq, digest: Digest, proof: &[Arc<SignedMessage>]) -> bool {
        let mut signers = BTreeSet::new();
        for vote in proof {
            let matches =
                matches!(vote.message, Message::Checkpoint { seq: s, state_digest: d } if s == seq && d == digest);
            let valid = vote.epoch == self.epoch
                && self.members.get(&vote.sender).is_some_and(|key| vote.signature.verify(key, &vote.signing_bytes()));
            if !matches || !valid || !signers.insert(vote.sender) {
                return false;
            }
        }
        signers.len() >= self.quorum
    }

    /// Splits client requests into those with valid signatures and the rest.
    pub fn verify_requests(&mut self, requests: Vec<Request>) -> (Vec<Request>, Vec<Request>) {
        if self.first_invalid_request(&requests).is_none() {
            return (requests, Vec::new());
        }
        requests.into_iter().partition(|request| self.verify_one(request))
    }

    pub fn verify_reply(&self, reply: &Reply) -> bool {
        reply.epoch == self.epoch
            && self.members.get(&reply.replica).is_some_and(|key| reply.signature.verify(key, &reply.signing_bytes()))
    }

    /// Batch-verifies; only when the batch fails are signatures checked one by one.
    fn first_invalid_request(&mut self, requests: &[Request]) -> Option<usize> {
        let mut keys = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            match self.account_key(&request.tx.transfer.from) {
                Some(key) => keys.push(key),
                None => return Some(index),
            }
        }
        let messages: Vec<Vec<u8>> = requests.iter().map(|r| r.tx.transfer.signing_bytes()).collect();
        let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = requests.iter().map(|r| r.tx.signature).collect();
        if verify_batch(&message_refs, &signatures, &keys) {
            return None;
        }
        (0..requests.len()).find(|&i| !signatures[i].verify(&keys[i], &messages[i]))
    }

    fn verify_one(&mut self, request: &Request) -> bool {
        match self.account_key(&request.tx.transfer.from) {
            Some(key) => request.tx.verify_with(&key),
            None => false,
        }
    }

    fn account_key(&mut self, account: &AccountId) -> Option<VerifyingKey> {
        if let Some(cached) = self.accounts.get(account) {
            return *cached;
        }
        if self.accounts.len() >= ACCOUNT_CACHE_LIMIT {
            self.accounts.clear();
        }
        let key = account.0.verifying_key();
        self.accounts.insert(*account, key);
        key
    }
}
