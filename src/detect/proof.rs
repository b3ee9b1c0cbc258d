//! Self-verifying evidence: proofs of misbehaviour that anyone holding the
//! committee can check on their own, without trusting the reporter.

use crate::app::{Op, SignedTx};
use crate::protocol::{AgentId, Committee, Evidence, Message, SignedMessage};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// Two valid signatures of one agent on conflicting messages for one slot.
    Equivocation(Evidence),
    /// Two valid, different transactions from one account with one nonce of
    /// one nonce space (two transfers, two memory writes, or two of an
    /// application's own); the account is an agent's own (its key is the
    /// agent's key).
    DoubleSpend { first: Box<SignedTx>, second: Box<SignedTx> },
    /// A pre-prepare signed by the view's primary whose batch matches its
    /// digest and carries, at `index`, a transfer whose signature is invalid.
    InvalidProposal { pre_prepare: Arc<SignedMessage>, index: usize },
}

/// The fault a proof shows, in the tutorial's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvenFault {
    Equivocation,
    DoubleSpend,
    InvalidProposal,
}

impl ProvenFault {
    pub fn name(self) -> &'static str {
        match self {
            ProvenFault::Equivocation => "equivocation",
            ProvenFault::DoubleSpend => "double-spend",
            ProvenFault::InvalidProposal => "invalid-proposal",
        }
    }
}

impl Proof {
    pub fn fault(&self) -> ProvenFault {
        match self {
            Proof::Equivocation(_) => ProvenFault::Equivocation,
            Proof::DoubleSpend { .. } => ProvenFault::DoubleSpend,
            Proof::InvalidProposal { .. } => ProvenFault::InvalidProposal,
        }
    }

    /// The agent the proof convicts, if it names a member of `committee`.
    pub fn accused(&self, committee: &Committee) -> Option<AgentId> {
        match self {
            Proof::Equivocation(evidence) => Some(evidence.accused()),
            Proof::DoubleSpend { first, .. } => {
                committee.members().iter().find(|m| m.public_key == first.tx.from.0).map(|m| m.id)
            }
            Proof::InvalidProposal { pre_prepare, .. } => Some(pre_prepare.sender),
        }
    }

    /// Checks the proof from scratch against `committee`.
    pub fn verify(&self, committee: &Committee) -> bool {
        match self {
            Proof::Equivocation(evidence) => evidence.verify(committee),
            Proof::DoubleSpend { first, second } => {
                let (a, b) = (&first.tx, &second.tx);
                self.accused(committee).is_some()
                    && a.from == b.from
                    && a.nonce == b.nonce
                    && nonce_space(&a.op) == nonce_space(&b.op)
                    && first.digest() != second.digest()
                    && first.verify()
                    && second.verify()
            }
            Proof::InvalidProposal { pre_prepare, index } => {
                let Message::PrePrepare { view, digest, batch, .. } = &pre_prepare.message else { return false };
                let Some(key) = committee.member(pre_prepare.sender).and_then(|m| m.public_key.verifying_key()) else {
                    return false;
                };
                pre_prepare.epoch == committee.epoch()
                    && committee.primary(*view) == pre_prepare.sender
                    && pre_prepare.signature.verify(&key, &pre_prepare.signing_bytes())
                    && batch.digest() == *digest
                    && batch.requests.get(*index).is_some_and(|request| !request.tx.verify())
            }
        }
    }

    /// What a detection-log record shows of the proof.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Proof::Equivocation(Evidence::Equivocation { first, second }) => serde_json::json!({
                "kind": "conflicting signed messages for one slot",
                "first": format!("{:?}", first.message.kind()),
                "first_signature": crate::crypto::hex(&first.signature.0[..8]),
                "second_signature": crate::crypto::hex(&second.signature.0[..8]),
            }),
            Proof::DoubleSpend { first, second } => serde_json::json!({
                "kind": "two signed spends with one nonce",
                "account": first.tx.from.0.to_string(),
                "nonce": first.tx.nonce,
                "first_tx": first.tx.id.to_string(),
                "second_tx": second.tx.id.to_string(),
            }),
            Proof::InvalidProposal { pre_prepare, index } => serde_json::json!({
                "kind": "signed pre-prepare with an invalid transfer",
                "index": index,
                "signature": crate::crypto::hex(&pre_prepare.signature.0[..8]),
            }),
        }
    }
}

/// Which nonces a transaction consumes: the built-in application keeps the
/// ledger's and the memory's apart, so a transfer and a memory write that
/// share a nonce are both honest.
fn nonce_space(op: &Op) -> u8 {
    match op {
        Op::Transfer(_) => 0,
        Op::Memory(_) => 1,
        Op::App(_) => 2,
    }
}
