//! The swarm's one signed request format, which every application reads: a
//! transaction `{id, from, nonce, op}` signed by `from`, whose operation is a
//! ledger transfer, a memory write, or an application's own bytes.
//!
//! One signing context covers them all: a domain tag, the header fields, then
//! a tag per operation kind and every field of that operation, so a signature
//! on one kind of operation never reads as another. The verifier batch-checks
//! these signatures before any application sees a request; applications only
//! interpret the operation.

use crate::crypto::{Digest, Keypair, Signature, SigningBytes};
use crate::ledger::{AccountId, TxId};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// A transaction as its signer wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tx {
    pub id: TxId,
    pub from: AccountId,
    /// The signer's next nonce in the application that executes it: replay
    /// protection, and the slot two conflicting requests would both claim.
    pub nonce: u64,
    pub op: Op,
}

/// What a transaction asks the application to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// The ledger's: move `amount` from the signer to `to`.
    Transfer(Transfer),
    /// The replicated memory's: write or delete one key ([`crate::app::memory`]).
    Memory(MemoryOp),
    /// An application's own operation, encoded as that application defines.
    App(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A ledger transfer's body; `from` and `nonce` are the transaction's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    pub to: AccountId,
    pub amount: u64,
    pub memo: Option<String>,
}

/// A write to the replicated memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemoryOp {
    /// Sets `key` in `namespace`; with a TTL the entry is gone `ttl` sequence
    /// numbers after the one that executes the put.
    Put {
        namespace: String,
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        ttl: Option<u64>,
    },
    Delete {
        namespace: String,
        key: String,
    },
}

/// The tag of each operation kind in the signed bytes.
#[repr(u8)]
enum OpKind {
    Transfer = 1,
    MemoryPut = 2,
    MemoryDelete = 3,
    App = 4,
}

impl Tx {
    /// A ledger transfer without a memo (the common case, kept short at call sites).
    pub fn transfer(id: TxId, from: AccountId, to: AccountId, amount: u64, nonce: u64) -> Tx {
        Tx { id, from, nonce, op: Op::Transfer(Transfer { to, amount, memo: None }) }
    }

    /// The transfer this transaction carries, if it is one.
    pub fn as_transfer(&self) -> Option<&Transfer> {
        match &self.op {
            Op::Transfer(transfer) => Some(transfer),
            _ => None,
        }
    }

    pub fn as_transfer_mut(&mut self) -> Option<&mut Transfer> {
        match &mut self.op {
            Op::Transfer(transfer) => Some(transfer),
            _ => None,
        }
    }

    pub fn signing_bytes(&self) -> Vec<u8> {
        let header = SigningBytes::new("bftswarm/tx/v1").bytes32(&id_bytes_32(&self.id)).bytes32(&self.from.0 .0);
        let header = header.u64(self.nonce);
        match &self.op {
            Op::Transfer(Transfer { to, amount, memo }) => header
                .u8(OpKind::Transfer as u8)
                .bytes32(&to.0 .0)
                .u64(*amount)
                .u8(memo.is_some() as u8)
                .var_bytes(memo.as_deref().unwrap_or("").as_bytes()),
            Op::Memory(MemoryOp::Put { namespace, key, value, ttl }) => header
                .u8(OpKind::MemoryPut as u8)
                .var_bytes(namespace.as_bytes())
                .var_bytes(key.as_bytes())
                .var_bytes(value)
                .u8(ttl.is_some() as u8)
                .u64(ttl.unwrap_or(0)),
            Op::Memory(MemoryOp::Delete { namespace, key }) => {
                header.u8(OpKind::MemoryDelete as u8).var_bytes(namespace.as_bytes()).var_bytes(key.as_bytes())
            }
            Op::App(bytes) => header.u8(OpKind::App as u8).var_bytes(bytes),
        }
        .finish()
    }

    pub fn sign(self, owner: &Keypair) -> SignedTx {
        let signature = owner.sign(&self.signing_bytes());
        SignedTx { tx: self, signature }
    }
}

fn id_bytes_32(id: &TxId) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&id.0);
    out
}

/// A transaction with its signer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedTx {
    pub tx: Tx,
    pub signature: Signature,
}

impl SignedTx {
    pub fn id(&self) -> TxId {
        self.tx.id
    }

    pub fn from(&self) -> AccountId {
        self.tx.from
    }

    pub fn nonce(&self) -> u64 {
        self.tx.nonce
    }

    pub fn verify(&self) -> bool {
        match self.tx.from.0.verifying_key() {
            Some(key) => self.verify_with(&key),
            None => false,
        }
    }

    pub fn verify_with(&self, key: &VerifyingKey) -> bool {
        self.signature.verify(key, &self.tx.signing_bytes())
    }

    /// Identifies the exact signed bytes: two transactions with one id but
    /// other contents have different digests.
    pub fn digest(&self) -> Digest {
        let mut bytes = self.tx.signing_bytes();
        bytes.extend_from_slice(&self.signature.0);
        Digest::of(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PublicKey;

    fn account(byte: u8) -> AccountId {
        AccountId(PublicKey([byte; 32]))
    }

    fn put(ttl: Option<u64>) -> Op {
        Op::Memory(MemoryOp::Put { namespace: "ns".into(), key: "k".into(), value: b"1".to_vec(), ttl })
    }

    /// Every field of every operation kind is covered, and no two kinds sign alike.
    #[test]
    fn every_field_and_every_op_kind_changes_the_signed_bytes() {
        let base = Tx::transfer(TxId([1; 16]), account(1), account(2), 10, 0);
        let delete = Op::Memory(MemoryOp::Delete { namespace: "ns".into(), key: "k".into() });
        let variants = [
            Tx { id: TxId([2; 16]), ..base.clone() },
            Tx { from: account(3), ..base.clone() },
            Tx { nonce: 1, ..base.clone() },
            Tx::transfer(TxId([1; 16]), account(1), account(4), 10, 0),
            Tx::transfer(TxId([1; 16]), account(1), account(2), 11, 0),
            Tx { op: Op::Transfer(Transfer { to: account(2), amount: 10, memo: Some(String::new()) }), ..base.clone() },
            Tx { op: put(None), ..base.clone() },
            Tx { op: put(Some(0)), ..base.clone() },
            Tx { op: put(Some(5)), ..base.clone() },
            Tx {
                op: Op::Memory(MemoryOp::Put {
                    namespace: "n".into(),
                    key: "sk".into(),
                    value: b"1".to_vec(),
                    ttl: None,
                }),
                ..base.clone()
            },
            Tx {
                op: Op::Memory(MemoryOp::Put {
                    namespace: "ns".into(),
                    key: "k".into(),
                    value: b"2".to_vec(),
                    ttl: None,
                }),
                ..base.clone()
            },
            Tx { op: delete, ..base.clone() },
            Tx { op: Op::App(Vec::new()), ..base.clone() },
            Tx { op: Op::App(vec![0]), ..base.clone() },
        ];
        let mut seen = std::collections::HashSet::from([base.signing_bytes()]);
        for (i, variant) in variants.iter().enumerate() {
            assert!(seen.insert(variant.signing_bytes()), "variant {i} signs like an earlier one");
        }
    }

    #[test]
    fn a_signature_verifies_for_its_signer_only_and_breaks_when_the_op_changes() {
        let owner = Keypair::from_seed([5; 32]);
        let from = AccountId(owner.public_key());
        let signed = Tx { id: TxId([1; 16]), from, nonce: 0, op: put(Some(3)) }.sign(&owner);
        assert!(signed.verify());
        let mut tampered = signed.clone();
        tampered.tx.op = put(Some(4));
        assert!(!tampered.verify());
        let mut stolen = signed.clone();
        stolen.tx.from = AccountId(Keypair::from_seed([6; 32]).public_key());
        assert!(!stolen.verify());
        assert_ne!(signed.digest(), tampered.digest());
    }
}
