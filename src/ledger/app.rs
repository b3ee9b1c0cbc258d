//! The transfer ledger as an [`Application`]: its chunked encoding (the state
//! digest is the Merkle root over the chunks), decoding for state transfer,
//! validation before ordering, balance queries and their proofs.
//!
//! A chunk is fixed-width records, no serde: the digest is taken at every
//! checkpoint, and blake3 over a few large buffers is far faster than many
//! small updates. Chunk 0 is the header (supply and totals); every further
//! chunk holds [`ACCOUNTS_PER_CHUNK`] accounts in key order, the last fewer.
//!
//! An account chunk opens with its own domain and the keys just outside it
//! (the previous chunk's last, the next chunk's first), so the one chunk
//! proves an account's balance and next nonce, or that no such account
//! exists: its key falls between the chunk's bounds and is not in it.

use super::{Account, AccountId, Execution, LastTransfer, Ledger, LedgerTotals, RejectReason, TxId, TxOutcome};
use crate::app::{merkle_root, Application, Chunk, Refusal, RestoreError, Snapshot};
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{Request, Seq};

/// Accounts per snapshot chunk: about 30 KiB of records.
pub const ACCOUNTS_PER_CHUNK: usize = 256;
const DOMAIN: &[u8] = b"bftswarm/ledger/v5";
/// Opens every account chunk: no header chunk and no memory chunk (whose
/// postcard encoding starts with a length byte) begins with it.
const ACCOUNTS_DOMAIN: &[u8] = b"bftswarm/ledger-accounts/v1";
/// Bytes before an account chunk's first record: its domain and two bounds
/// (a presence byte and a key each).
pub(crate) const ACCOUNT_CHUNK_HEADER: usize = ACCOUNTS_DOMAIN.len() + 2 * 33;
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
        answer_of(&account)
    }

    /// An account query's chunk: the one holding the account, or for an
    /// absent one the chunk whose bounds enclose its key.
    fn proving_chunk(&self, query: &[u8]) -> Option<usize> {
        let key = AccountId(PublicKey(<[u8; 32]>::try_from(query).ok()?));
        let below = self.accounts.range(..key).count();
        let rank = if below < self.accounts.len() { below } else { below.checked_sub(1)? };
        Some(1 + rank / ACCOUNTS_PER_CHUNK)
    }

    /// The account's record in the chunk, or zeros when the key lies within
    /// the chunk's bounds and no record holds it; none for any other chunk.
    fn answer_from_chunk(query: &[u8], chunk: &Chunk) -> Option<Vec<u8>> {
        let key = AccountId(PublicKey(<[u8; 32]>::try_from(query).ok()?));
        let AccountChunk { below, above, accounts } = decode_account_chunk(&chunk.0, 0).ok()?;
        if let Some((_, account)) = accounts.iter().find(|(id, _)| *id == key) {
            return Some(answer_of(account));
        }
        let inside = below.is_none_or(|below| below < key) && above.is_none_or(|above| key < above);
        inside.then(|| answer_of(&Account::default()))
    }
}

/// A balance query's answer: balance and next nonce, 16 bytes little endian.
fn answer_of(account: &Account) -> Vec<u8> {
    [account.balance.to_le_bytes(), account.next_nonce.to_le_bytes()].concat()
}

/// Reads a balance query's answer ([`Application::query`]): balance, next nonce.
pub fn decode_balance(answer: &[u8]) -> Option<(u64, u64)> {
    let (balance, nonce) = answer.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*balance), u64::from_le_bytes(<[u8; 8]>::try_from(nonce).ok()?)))
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
        let accounts: Vec<(&AccountId, &Account)> = self.accounts.iter().collect();
        let cut: Vec<&[(&AccountId, &Account)]> = accounts.chunks(ACCOUNTS_PER_CHUNK).collect();
        for (index, records) in cut.iter().enumerate() {
            bytes.clear();
            bytes.extend_from_slice(ACCOUNTS_DOMAIN);
            let below = index.checked_sub(1).and_then(|previous| cut[previous].last()).map(|(id, _)| **id);
            let above = cut.get(index + 1).and_then(|next| next.first()).map(|(id, _)| **id);
            encode_bound(below, &mut bytes);
            encode_bound(above, &mut bytes);
            for (id, account) in records.iter() {
                bytes.extend_from_slice(&id.0 .0);
                bytes.extend_from_slice(&account.balance.to_le_bytes());
                bytes.extend_from_slice(&account.next_nonce.to_le_bytes());
                encode_last(&account.last, &mut bytes);
            }
            sink(&bytes);
        }
    }
}

/// A presence byte and the key (zeros when absent).
fn encode_bound(bound: Option<AccountId>, bytes: &mut Vec<u8>) {
    bytes.push(bound.is_some() as u8);
    bytes.extend_from_slice(&bound.map_or([0; 32], |id| id.0 .0));
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

    fn bound(&mut self) -> Result<Option<AccountId>, RestoreError> {
        let (present, key) = (self.take::<1>()?[0], self.take::<32>()?);
        match present {
            0 if key == [0; 32] => Ok(None),
            1 => Ok(Some(AccountId(PublicKey(key)))),
            _ => self.fail("bad bound"),
        }
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
    let mut expected_below = None;
    for (index, chunk) in account_chunks.iter().enumerate() {
        let number = index + 1;
        let AccountChunk { below, above, accounts } = decode_account_chunk(&chunk.0, number)?;
        let fail = |reason| Err(RestoreError { chunk: number, reason });
        let count = accounts.len();
        let last_chunk = number == account_chunks.len();
        if count == 0 || count > ACCOUNTS_PER_CHUNK || (!last_chunk && count < ACCOUNTS_PER_CHUNK) {
            return fail("accounts not cut as the ledger cuts them");
        }
        let first = accounts.first().map(|(id, _)| *id);
        if previous.is_some_and(|previous| Some(previous) >= first) {
            return fail("accounts out of order");
        }
        let next_first = account_chunks.get(number).and_then(|next| next.0.get(ACCOUNT_CHUNK_HEADER..)?.get(..32));
        if below != expected_below || above.map(|id| id.0 .0.to_vec()).as_deref() != next_first {
            return fail("bounds are not the neighbouring chunks' keys");
        }
        previous = accounts.last().map(|(id, _)| *id);
        expected_below = previous;
        ledger.accounts.extend(accounts);
    }
    if ledger.balance_sum() != ledger.total_supply as u128 {
        return Err(RestoreError { chunk: 0, reason: "balances do not add up to the supply" });
    }
    Ok(ledger)
}

/// One account chunk: its bounds and its accounts, in strict key order.
struct AccountChunk {
    below: Option<AccountId>,
    above: Option<AccountId>,
    accounts: Vec<(AccountId, Account)>,
}

/// Decodes account chunk number `chunk`; errors name it.
fn decode_account_chunk(bytes: &[u8], chunk: usize) -> Result<AccountChunk, RestoreError> {
    let mut reader = Reader { bytes, chunk };
    if reader.take::<{ ACCOUNTS_DOMAIN.len() }>()? != *ACCOUNTS_DOMAIN {
        return reader.fail("not an account chunk");
    }
    let (below, above) = (reader.bound()?, reader.bound()?);
    let mut accounts: Vec<(AccountId, Account)> = Vec::new();
    while !reader.bytes.is_empty() {
        let id = AccountId(PublicKey(reader.take::<32>()?));
        if accounts.last().is_some_and(|(previous, _)| *previous >= id) {
            return reader.fail("accounts out of order");
        }
        let balance = reader.u64()?;
        let next_nonce = reader.u64()?;
        let last = decode_last(&mut reader)?;
        accounts.push((id, Account { balance, next_nonce, last }));
    }
    Ok(AccountChunk { below, above, accounts })
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
