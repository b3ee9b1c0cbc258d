//! A bounded memory of the signed messages a validator has already verified.
//!
//! Retransmission resends messages a peer may already hold: a pre-prepare
//! comes back with its whole batch, whose client signatures cost ~15 µs each.
//! A copy already verified costs a hash instead. Safe because a hit needs the
//! exact signed bytes and signature under the current epoch and, for a
//! pre-prepare, a batch that hashes to the signed digest: the same content
//! that passed the full check.

use crate::crypto::Digest;
use crate::protocol::{Epoch, Message, SignedMessage};
use std::collections::{HashSet, VecDeque};

pub(super) struct VerifiedMessages {
    seen: HashSet<Digest>,
    order: VecDeque<Digest>,
    capacity: usize,
}

impl VerifiedMessages {
    pub(super) fn new(capacity: usize) -> VerifiedMessages {
        VerifiedMessages {
            seen: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Whether an identical message was verified under `epoch`.
    pub(super) fn contains(&self, epoch: Epoch, signed: &SignedMessage) -> bool {
        if !self.seen.contains(&key(epoch, signed)) {
            return false;
        }
        match &signed.message {
            // The signature covers the digest, not the batch: re-check the batch against it.
            Message::PrePrepare { digest, batch, .. } => batch.digest() == *digest,
            _ => true,
        }
    }

    /// Records a message that passed full verification under `epoch`.
    pub(super) fn insert(&mut self, epoch: Epoch, signed: &SignedMessage) {
        let key = key(epoch, signed);
        if !self.seen.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
    }
}

fn key(epoch: Epoch, signed: &SignedMessage) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bftswarm/verified/v1");
    hasher.update(&epoch.0.to_le_bytes());
    hasher.update(&signed.signing_bytes());
    hasher.update(&signed.signature.0);
    Digest(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{AgentId, Batch, Seq, View};
    use std::sync::Arc;

    fn pre_prepare(batch: Batch, keypair: &Keypair) -> SignedMessage {
        let message =
            Message::PrePrepare { view: View(0), seq: Seq(1), digest: batch.digest(), batch: Arc::new(batch) };
        SignedMessage::sign(message, Epoch(0), AgentId(0), keypair)
    }

    #[test]
    fn a_verified_copy_hits_but_not_in_another_epoch() {
        let keypair = Keypair::from_seed([1; 32]);
        let signed = pre_prepare(Batch::default(), &keypair);
        let mut verified = VerifiedMessages::new(4);
        assert!(!verified.contains(Epoch(0), &signed));
        verified.insert(Epoch(0), &signed);
        assert!(verified.contains(Epoch(0), &signed.clone()));
        assert!(!verified.contains(Epoch(1), &signed));
    }

    #[test]
    fn a_pre_prepare_with_a_swapped_batch_misses() {
        use crate::crypto::PublicKey;
        use crate::ledger::{AccountId, Transfer, TxId};
        use crate::protocol::{ClientId, Request};
        let keypair = Keypair::from_seed([1; 32]);
        let signed = pre_prepare(Batch::default(), &keypair);
        let mut verified = VerifiedMessages::new(4);
        verified.insert(Epoch(0), &signed);
        let transfer = Transfer {
            id: TxId([3; 16]),
            from: AccountId(keypair.public_key()),
            to: AccountId(PublicKey([5; 32])),
            amount: 1,
            nonce: 0,
            memo: None,
        };
        let request = Request { client: ClientId(9), tx: transfer.sign(&keypair) };
        let mut forged = signed.clone();
        if let Message::PrePrepare { batch, .. } = &mut forged.message {
            *batch = Arc::new(Batch { requests: vec![request] });
        }
        assert!(!verified.contains(Epoch(0), &forged));
    }

    #[test]
    fn the_oldest_entry_is_forgotten_beyond_capacity() {
        let keypair = Keypair::from_seed([1; 32]);
        let mut verified = VerifiedMessages::new(2);
        let messages: Vec<SignedMessage> = (1..=3)
            .map(|seq| {
                let message = Message::Checkpoint { seq: Seq(seq), state_digest: Digest([0; 32]) };
                SignedMessage::sign(message, Epoch(0), AgentId(0), &keypair)
            })
            .collect();
        for message in &messages {
            verified.insert(Epoch(0), message);
        }
        assert!(!verified.contains(Epoch(0), &messages[0]));
        assert!(verified.contains(Epoch(0), &messages[2]));
    }
}
