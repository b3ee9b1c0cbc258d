//! Transfers and their signatures.

use crate::crypto::{Digest, Keypair, PublicKey, Signature, SigningBytes};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An account is its owner's public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub PublicKey);

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Account({})", crate::crypto::hex(&self.0 .0[..4]))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client-chosen transaction id (a UUID's bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxId(pub [u8; 16]);

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tx({})", crate::crypto::hex(&self.0[..4]))
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&uuid::Uuid::from_bytes(self.0).to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TxId,
    pub from: AccountId,
    pub to: AccountId,
    pub amount: u64,
    pub nonce: u64,
    pub memo: Option<String>,
}

impl Transfer {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let memo = self.memo.as_deref().unwrap_or("");
        SigningBytes::new("bftswarm/transfer/v1")
            .bytes32(&uuid_bytes_32(&self.id))
            .bytes32(&self.from.0 .0)
            .bytes32(&self.to.0 .0)
            .u64(self.amount)
            .u64(self.nonce)
            .u8(self.memo.is_some() as u8)
            .var_bytes(memo.as_bytes())
            .finish()
    }

    pub fn sign(self, owner: &Keypair) -> SignedTransfer {
        let signature = owner.sign(&self.signing_bytes());
        SignedTransfer { transfer: self, signature }
    }
}

fn uuid_bytes_32(id: &TxId) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&id.0);
    out
}

/// A transfer with its owner's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedTransfer {
    pub transfer: Transfer,
    pub signature: Signature,
}

impl SignedTransfer {
    pub fn verify(&self) -> bool {
        match self.transfer.from.0.verifying_key() {
            Some(key) => self.verify_with(&key),
            None => false,
        }
    }

    pub fn verify_with(&self, key: &VerifyingKey) -> bool {
        self.signature.verify(key, &self.transfer.signing_bytes())
    }

    /// Identifies the exact signed bytes: two transfers with one id but other
    /// contents have different digests.
    pub fn digest(&self) -> Digest {
        let mut bytes = self.transfer.signing_bytes();
        bytes.extend_from_slice(&self.signature.0);
        Digest::of(&bytes)
    }
}
