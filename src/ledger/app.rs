//! The transfer ledger as an [`Application`]: its chunked encoding (the state
//! digest is the Merkle root over the chunks), decoding for state transfer,
//! validation before ordering and balance queries.
//!
//! A chunk is fixed-width records, no serde: the digest is taken at every
//! checkpoint, and blake3 over a few large buffers is far faster than many
//! small updates. Chunk 0 is the header (supply and totals); every further
//! chunk holds [`ACCOUNTS_PER_CHUNK`] accounts in key order, the last fewer.

use super::{Account, AccountId, Execution, LastTransfer, Ledger, LedgerTotals, RejectReason, TxId, TxOutcome};
use crate::app::{merkle_root, Application, Chunk, Refusal, RestoreError, Snapshot};
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{Request, Seq};

/// Accounts per snapshot chunk: about 30 KiB of records.
pub const ACCOUNTS_PER_CHUNK: usize = 256;
const DOMAIN: &[u8] = b"bftswarm/ledger/v4";
/// Bytes of one account record with its last transfer (without: 49).
const RECORD_LAST: usize = 32 + 8 + 8 + 1 + 16 + 32 + 1 + 8 + 8;

impl Application for Ledger {
    type ConflictKey = (AccountId, u64);

    fn check(&self, request: &Request) -> Result<(), Refusal> {
        let tx = &request.tx.tx;
        if tx.as_transfer().is_none() {
            Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::UnsupportedOp)))
        } else if !self.nonce_consumed(tx) {
            Ok(())
        } else if self.nonce_spent(tx) {
            let reason = RejectReason::NonceConsumed { received: tx.nonce };
            Err(Refusal::Rejected(TxOutcome::Rejected(reason)))
        } else {
            Err(Refusal::Executed)
        }
    }

    /// Transfers do not depend on the sequence number.
    fn execute(&mut self, _seq: Seq, requests: &[Request]) -> Vec<Execution> {
        requests.iter().map(|request| self.apply(&request.tx.tx)).collect()
    }

    fn conflict_key(request: &Request) -> Option<(AccountId, u64)> {
        Some((request.tx.from(), request.tx.nonce()))
    }

    fn digest(&self) -> Digest {
        self.state_digest()
    }

    fn snapshot(&self) -> Snapshot {
        let mut chunks = Vec::new();
        self.encode_chunks(|bytes| chunks.push(Chunk(bytes.to_vec())));
        Snapshot { chunks }
    }

    fn restore(snapshot: &Snapshot) -> Result<Ledger, RestoreError> {
        decode(snapshot)
    }

    /// A 32-byte account key → its balance and next nonce (16 bytes, little
    /// endian); anything else → nothing.
    fn query(&self, query: &[u8]) -> Vec<u8> {
        let Ok(key) = <[u8; 32]>::try_from(query) else { return Vec::new() };
        let account = self.account(&AccountId(PublicKey(key)));
        [account.balance.to_le_bytes(), account.next_nonce.to_le_bytes()].concat()
    }
}

impl Ledger {
    /// The Merkle root over the snapshot's chunks ([`Application::digest`]).
    pub fn state_digest(&self) -> Digest {
        merkle_root(self.chunk_hashes())
    }

    /// The hash of each snapshot chunk, in order: the leaves of the digest's
    /// tree, for an application that holds the ledger as one of its parts.
    pub fn chunk_hashes(&self) -> Vec<Digest> {
        let mut leaves = Vec::with_capacity(self.chunk_count());
        self.encode_chunks(|bytes| leaves.push(Chunk::hash_bytes(bytes)));
        leaves
    }

    /// How many chunks [`Application::snapshot`] cuts: the header and one per
    /// [`ACCOUNTS_PER_CHUNK`] accounts.
    pub fn chunk_count(&self) -> usize {
        1 + self.accounts.len().div_ceil(ACCOUNTS_PER_CHUNK)
    }

    /// Hands each chunk's bytes to `sink`, reusing one buffer.
    fn encode_chunks(&self, mut sink: impl FnMut(&[u8])) {
        let mut bytes = Vec::with_capacity(ACCOUNTS_PER_CHUNK * RECORD_LAST);
        bytes.extend_from_slice(DOMAIN);
        bytes.extend_from_slice(&self.total_supply.to_le_bytes());
        bytes.extend_from_slice(&self.totals.committed.to_le_bytes());
        for rejected in self.totals.rejected {
            bytes.extend_from_slice(&rejected.to_le_bytes());
        }
        sink(&bytes);
        bytes.clear();
        let mut in_chunk = 0;
        for (id, account) in &self.accounts {
            bytes.extend_from_slice(&id.0 .0);
            bytes.extend_from_slice(&account.balance.to_le_bytes());
            bytes.extend_from_slice(&account.next_nonce.to_le_bytes());
            encode_last(&account.last, &mut bytes);
            in_chunk += 1;
            if in_chunk == ACCOUNTS_PER_CHUNK {
                sink(&bytes);
                bytes.clear();
                in_chunk = 0;
            }
        }
        if in_chunk > 0 {
            sink(&bytes);
        }
    }
}

/// Fixed-width encoding of an account's last transfer.
fn encode_last(last: &Option<LastTransfer>, bytes: &mut Vec<u8>) {
    let Some(LastTransfer { id, digest, outcome }) = last else {
        bytes.push(0);
        return;
    };
    bytes.push(1);
    bytes.extend_from_slice(&id.0);
    bytes.extend_from_slice(&digest.0);
    let (tag, a, b) = match outcome {
        TxOutcome::Committed => (0u8, 0, 0),
        TxOutcome::Rejected(RejectReason::WrongNonce { expected, received }) => (1, *expected, *received),
        TxOutcome::Rejected(RejectReason::InsufficientFunds { balance, amount }) => (2, *balance, *amount),
        TxOutcome::Rejected(RejectReason::ZeroAmount) => (3, 0, 0),
        TxOutcome::Rejected(RejectReason::SelfTransfer) => (4, 0, 0),
        TxOutcome::Rejected(RejectReason::NonceConsumed { received }) => (5, *received, 0),
        TxOutcome::Rejected(RejectReason::Refused { code }) => (6, *code, 0),
        TxOutcome::Rejected(RejectReason::UnsupportedOp) => (7, 0, 0),
    };
    bytes.push(tag);
    bytes.extend_from_slice(&a.to_le_bytes());
    bytes.extend_from_slice(&b.to_le_bytes());
}

/// Reads fixed-width fields off a chunk; every read names what was missing.
struct Reader<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RestoreError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(RestoreError { chunk: self.chunk, reason: "cut short" });
        };
        self.bytes = rest;
        Ok(*head)
    }

    fn u64(&mut self) -> Result<u64, RestoreError> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    fn fail<T>(&self, reason: &'static str) -> Result<T, RestoreError> {
        Err(RestoreError { chunk: self.chunk, reason })
    }
}

fn decode(snapshot: &Snapshot) -> Result<Ledger, RestoreError> {
    let Some((header, account_chunks)) = snapshot.chunks.split_first() else {
        return Err(RestoreError { chunk: 0, reason: "no header chunk" });
    };
    let mut reader = Reader { bytes: &header.0, chunk: 0 };
    if reader.take::<18>()? != *DOMAIN {
        return reader.fail("not a ledger snapshot");
    }
    let total_supply = reader.u64()?;
    let mut totals = LedgerTotals { committed: reader.u64()?, ..LedgerTotals::default() };
    for rejected in &mut totals.rejected {
        *rejected = reader.u64()?;
    }
    if !reader.bytes.is_empty() {
        return reader.fail("trailing bytes");
    }
    let mut ledger = Ledger { total_supply, totals, ..Ledger::default() };
    let mut previous: Option<AccountId> = None;
    for (index, chunk) in account_chunks.iter().enumerate() {
        let mut reader = Reader { bytes: &chunk.0, chunk: index + 1 };
        let mut count = 0;
        while !reader.bytes.is_empty() {
            let id = AccountId(PublicKey(reader.take::<32>()?));
            if previous.is_some_and(|previous| previous >= id) {
                return reader.fail("accounts out of order");
            }
            let balance = reader.u64()?;
            let next_nonce = reader.u64()?;
            let last = decode_last(&mut reader)?;
            ledger.accounts.insert(id, Account { balance, next_nonce, last });
            previous = Some(id);
            count += 1;
        }
        let last_chunk = index + 1 == account_chunks.len();
        if count == 0 || count > ACCOUNTS_PER_CHUNK || (!last_chunk && count < ACCOUNTS_PER_CHUNK) {
            return reader.fail("accounts not cut as the ledger cuts them");
        }
    }
    if ledger.balance_sum() != ledger.total_supply as u128 {
        return Err(RestoreError { chunk: 0, reason: "balances do not add up to the supply" });
    }
    Ok(ledger)
}

fn decode_last(reader: &mut Reader<'_>) -> Result<Option<LastTransfer>, RestoreError> {
    match reader.take::<1>()?[0] {
        0 => return Ok(None),
        1 => {}
        _ => return reader.fail("bad last-transfer tag"),
    }
    let id = TxId(reader.take::<16>()?);
    let digest = Digest(reader.take::<32>()?);
    let tag = reader.take::<1>()?[0];
    let (a, b) = (reader.u64()?, reader.u64()?);
    let reason = match tag {
        0 if (a, b) == (0, 0) => return Ok(Some(LastTransfer { id, digest, outcome: TxOutcome::Committed })),
        1 => RejectReason::WrongNonce { expected: a, received: b },
        2 => RejectReason::InsufficientFunds { balance: a, amount: b },
        3 if (a, b) == (0, 0) => RejectReason::ZeroAmount,
        4 if (a, b) == (0, 0) => RejectReason::SelfTransfer,
        5 if b == 0 => RejectReason::NonceConsumed { received: a },
        6 if b == 0 => RejectReason::Refused { code: a },
        7 if (a, b) == (0, 0) => RejectReason::UnsupportedOp,
        _ => return reader.fail("bad outcome"),
    };
    Ok(Some(LastTransfer { id, digest, outcome: TxOutcome::Rejected(reason) }))
}
