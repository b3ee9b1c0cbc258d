//! The application the swarm agrees on: accounts keyed by Ed25519 public keys,
//! signed transfers, deterministic execution and the state digest.
//!
//! Execution never panics and never depends on anything but the ledger and the
//! batch: every honest replica that executes the same batches in the same order
//! holds the same balances and the same digest.

mod app;
mod transfer;

pub use app::{decode_balance, ACCOUNTS_PER_CHUNK};

pub use transfer::{AccountId, TxId};

use crate::app::{Transfer, Tx};

use crate::crypto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    /// The nonce the account's next transfer must carry.
    pub next_nonce: u64,
    /// The transfer that consumed the last nonce and what it did: executed
    /// again (ordered twice, or replayed), it is answered with the same outcome
    /// and changes nothing. Part of the state, so a replica that caught up by
    /// snapshot answers like one that executed it (PBFT keeps the last reply per
    /// client for the same reason).
    pub last: Option<LastTransfer>,
}

/// An account's last nonce-consuming transfer: which one exactly, and its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTransfer {
    pub id: TxId,
    /// blake3 of its signed bytes: a different transfer reusing the id is not a replay.
    pub digest: Digest,
    pub outcome: TxOutcome,
}

/// Why a transfer was not applied. Recorded, replied to the client, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RejectReason {
    /// The nonce is ahead of the account's next one: out of order.
    WrongNonce {
        expected: u64,
        received: u64,
    },
    /// Another transfer already consumed this nonce (a double spend, or a
    /// copy signed before its sender lost track): it can never execute.
    NonceConsumed {
        received: u64,
    },
    InsufficientFunds {
        balance: u64,
        amount: u64,
    },
    ZeroAmount,
    SelfTransfer,
    /// Another application's own rule refused the request; `code` is that
    /// application's (the ledger never refuses this way).
    Refused {
        code: u64,
    },
    /// The application does not execute this kind of operation (the ledger:
    /// anything but a transfer).
    UnsupportedOp,
}

impl RejectReason {
    pub const KINDS: usize = 7;
    /// Stable names for reports and counters, by [`RejectReason::index`].
    pub const NAMES: [&'static str; Self::KINDS] = [
        "wrong-nonce",
        "insufficient-funds",
        "zero-amount",
        "self-transfer",
        "nonce-consumed",
        "refused",
        "unsupported-op",
    ];

    pub fn index(&self) -> usize {
        match self {
            RejectReason::WrongNonce { .. } => 0,
            RejectReason::InsufficientFunds { .. } => 1,
            RejectReason::ZeroAmount => 2,
            RejectReason::SelfTransfer => 3,
            RejectReason::NonceConsumed { .. } => 4,
            RejectReason::Refused { .. } => 5,
            RejectReason::UnsupportedOp => 6,
        }
    }

    /// A stable name for reports and counters.
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxOutcome {
    Committed,
    Rejected(RejectReason),
}

/// What executing a transfer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Execution {
    /// Executed now, with this outcome.
    Applied(TxOutcome),
    /// The account's last transfer again: nothing changed; this was its outcome.
    Replayed(TxOutcome),
}

impl Execution {
    /// What the client is told.
    pub fn outcome(self) -> TxOutcome {
        match self {
            Execution::Applied(outcome) | Execution::Replayed(outcome) => outcome,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis lists account {0} twice")]
    DuplicateAccount(String),
    #[error("genesis balances overflow the total supply")]
    SupplyOverflow,
}

/// How many transfers the ledger executed, by outcome: replicated state
/// (under the digest, carried by snapshots and rebuilt from the logs), so
/// the swarm's counts never depend on one process and never go backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    pub committed: u64,
    /// Indexed like [`RejectReason::index`].
    pub rejected: [u64; RejectReason::KINDS],
}

impl LedgerTotals {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Rejections by reason name, the reasons that occurred only.
    pub fn rejected_by_reason(&self) -> BTreeMap<&'static str, u64> {
        let names = RejectReason::NAMES.iter().zip(self.rejected);
        names.filter(|(_, count)| *count > 0).map(|(name, count)| (*name, count)).collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    accounts: BTreeMap<AccountId, Account>,
    total_supply: u64,
    #[serde(default)]
    totals: LedgerTotals,
}

impl Ledger {
    pub fn with_genesis(balances: &[(AccountId, u64)]) -> Result<Ledger, GenesisError> {
        let mut ledger = Ledger::default();
        ledger.open_accounts(balances)?;
        Ok(ledger)
    }

    /// Opens more funded accounts (validators' own, next to the workload's).
    pub fn open_accounts(&mut self, balances: &[(AccountId, u64)]) -> Result<(), GenesisError> {
        for (account, balance) in balances {
            if self.accounts.contains_key(account) {
                return Err(GenesisError::DuplicateAccount(account.to_string()));
            }
            self.total_supply = self.total_supply.checked_add(*balance).ok_or(GenesisError::SupplyOverflow)?;
            self.accounts.insert(*account, Account { balance: *balance, next_nonce: 0, last: None });
        }
        Ok(())
    }

    /// Whether a transaction with this nonce (this one or another) already executed.
    pub fn nonce_consumed(&self, tx: &Tx) -> bool {
        self.accounts.get(&tx.from).is_some_and(|sender| tx.nonce < sender.next_nonce)
    }

    /// True when the transaction's nonce is already consumed by another one:
    /// ordering it could only reject it (a double spend, or a stale copy).
    /// The very transaction that consumed it is not: ordering it again replays its outcome.
    pub fn nonce_spent(&self, tx: &Tx) -> bool {
        let Some(sender) = self.accounts.get(&tx.from) else { return false };
        if tx.nonce >= sender.next_nonce {
            return false;
        }
        let replay = tx.nonce + 1 == sender.next_nonce
            && sender.last.is_some_and(|last| last.digest == Digest::of(&tx.signing_bytes()));
        !replay
    }

    /// Executes a transaction whose signature the caller has verified and
    /// says what the client is told.
    pub fn execute(&mut self, tx: &Tx) -> TxOutcome {
        self.apply(tx).outcome()
    }

    /// Applies a transaction whose signature the caller has verified.
    ///
    /// One with the right nonce consumes it even when it is rejected (for
    /// funds, or because it is not a transfer), so a client learns the outcome
    /// once and its next nonce is known.
    pub fn apply(&mut self, tx: &Tx) -> Execution {
        let sender = self.accounts.get(&tx.from).copied().unwrap_or_default();
        let digest = Digest::of(&tx.signing_bytes());
        if let Some(last) = sender.last {
            if last.digest == digest && tx.nonce + 1 == sender.next_nonce {
                return Execution::Replayed(last.outcome);
            }
        }
        if tx.nonce != sender.next_nonce {
            let (expected, received) = (sender.next_nonce, tx.nonce);
            let reason = match received < expected {
                true => RejectReason::NonceConsumed { received },
                false => RejectReason::WrongNonce { expected, received },
            };
            self.totals.rejected[reason.index()] += 1;
            return Execution::Applied(TxOutcome::Rejected(reason));
        }
        let transfer = tx.as_transfer();
        let outcome = match transfer {
            Some(transfer) => check_funds(tx.from, transfer, sender.balance),
            None => TxOutcome::Rejected(RejectReason::UnsupportedOp),
        };
        let sender_entry = self.accounts.entry(tx.from).or_default();
        sender_entry.next_nonce += 1;
        sender_entry.last = Some(LastTransfer { id: tx.id, digest, outcome });
        match outcome {
            TxOutcome::Committed => self.totals.committed += 1,
            TxOutcome::Rejected(reason) => self.totals.rejected[reason.index()] += 1,
        }
        if let (TxOutcome::Committed, Some(transfer)) = (outcome, transfer) {
            sender_entry.balance -= transfer.amount;
            // Cannot overflow: the total supply fits in u64 and is conserved.
            self.accounts.entry(transfer.to).or_default().balance += transfer.amount;
        }
        Execution::Applied(outcome)
    }

    pub fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).copied().unwrap_or_default()
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }

    pub fn total_supply(&self) -> u64 {
        self.total_supply
    }

    /// The transfers executed so far, by outcome.
    pub fn totals(&self) -> LedgerTotals {
        self.totals
    }

    /// Sum of all balances; equals `total_supply` unless execution is broken.
    pub fn balance_sum(&self) -> u128 {
        self.accounts.values().map(|a| a.balance as u128).sum()
    }
}

fn check_funds(from: AccountId, transfer: &Transfer, balance: u64) -> TxOutcome {
    if transfer.amount == 0 {
        TxOutcome::Rejected(RejectReason::ZeroAmount)
    } else if from == transfer.to {
        TxOutcome::Rejected(RejectReason::SelfTransfer)
    } else if transfer.amount > balance {
        TxOutcome::Rejected(RejectReason::InsufficientFunds { balance, amount: transfer.amount })
    } else {
        TxOutcome::Committed
    }
}

#[cfg(test)]
mod tests;
