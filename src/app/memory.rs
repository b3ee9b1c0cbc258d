//! Byzantine-tolerant memory: a replicated, namespaced key-value store the
//! swarm orders by consensus, so no f agents can change its coordination
//! memory, and any one answer can be proven against a certified digest.
//!
//! Writes are signed [`MemoryOp`]s; any signer may put or delete in any
//! namespace, and each entry records who wrote it. A TTL counts sequence
//! numbers (consensus time): a put executed at seq `s` with TTL `t` is gone
//! once the batch at `s + t` executes, on every replica alike, since
//! [`Application::execute`] hands every replica the same seq.
//!
//! The state is cut into a header chunk (the last seq executed, each
//! writer's nonce and last outcome) and [`BUCKETS`] bucket chunks; an entry
//! lives in the bucket its `(namespace, key)` hashes to, the bucket's entries
//! in key order. Why buckets: the tree's shape is fixed, so one key's proof
//! is its bucket (about 1/256 of the entries) and a path of
//! ⌈log2(257)⌉ = 9 hashes; the absence of a key is proven by the same bucket
//! not holding it, which a chunk per entry could only do with two neighbours.

use super::{merkle_root, Application, Chunk, MemoryOp, Op, Refusal, RestoreError, Snapshot};
use crate::crypto::Digest;
use crate::ledger::{AccountId, Execution, RejectReason, TxOutcome};
use crate::protocol::{Request, Seq};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Bucket chunks after the header chunk.
pub const BUCKETS: usize = 256;
pub const MAX_NAMESPACE_BYTES: usize = 64;
pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Entries the memory holds at most: a Byzantine writer cannot grow it without bound.
pub const MAX_ENTRIES: usize = 65_536;
/// Entries a list query answers at most.
pub const MAX_LISTED: usize = 1_000;

/// Why the memory refused a write ([`RejectReason::Refused`]'s code).
pub const EMPTY_NAME: u64 = 1;
pub const NAMESPACE_TOO_LONG: u64 = 2;
pub const KEY_TOO_LONG: u64 = 3;
pub const VALUE_TOO_LARGE: u64 = 4;
pub const ZERO_TTL: u64 = 5;
pub const MEMORY_FULL: u64 = 6;
pub const NO_SUCH_KEY: u64 = 7;

/// What a refusal code means, for a client's message.
pub fn refusal_reason(code: u64) -> &'static str {
    match code {
        EMPTY_NAME => "the namespace and the key must not be empty",
        NAMESPACE_TOO_LONG => "the namespace is longer than 64 bytes",
        KEY_TOO_LONG => "the key is longer than 256 bytes",
        VALUE_TOO_LARGE => "the value is larger than 16 KiB",
        ZERO_TTL => "a TTL must be at least one sequence number",
        MEMORY_FULL => "the memory holds its maximum of 65536 entries",
        NO_SUCH_KEY => "there is no such key to delete",
        _ => "unknown refusal",
    }
}

/// One stored value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub writer: AccountId,
    pub written_at: Seq,
    /// The first seq at which the entry is gone.
    pub expires_at: Option<Seq>,
}

/// A read of the memory, postcard-encoded as [`Application::query`]'s bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryQuery {
    /// Answered with an encoded `Option<Entry>`; provable by one chunk.
    Get { namespace: String, key: String },
    /// Answered with an encoded `Vec<(String, Entry)>` of keys starting with
    /// `prefix`, in key order, at most [`MAX_LISTED`].
    List { namespace: String, prefix: String },
}

impl MemoryQuery {
    pub fn encode(&self) -> Vec<u8> {
        postcard_bytes(self)
    }

    pub fn decode(bytes: &[u8]) -> Option<MemoryQuery> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Reads a get's answer back.
pub fn decode_get(answer: &[u8]) -> Option<Option<Entry>> {
    postcard::from_bytes(answer).ok()
}

/// Reads a list's answer back.
pub fn decode_list(answer: &[u8]) -> Option<Vec<(String, Entry)>> {
    postcard::from_bytes(answer).ok()
}

/// A signer's replay protection, as the ledger keeps it per account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Writer {
    next_nonce: u64,
    /// The digest of the request that consumed the last nonce, and its outcome.
    last: Option<(Digest, TxOutcome)>,
}

type Name = (String, String);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    entries: BTreeMap<Name, Entry>,
    /// (expires_at, namespace, key) of every entry with a TTL: what to drop next.
    expiries: BTreeSet<(Seq, String, String)>,
    writers: BTreeMap<AccountId, Writer>,
    /// The last seq executed: the consensus time the state is at.
    executed: Seq,
}

/// The bucket (0..BUCKETS) of one name; its chunk is `1 + bucket`.
pub fn bucket_of(namespace: &str, key: &str) -> usize {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bftswarm/memory-bucket/v1");
    hasher.update(&(namespace.len() as u64).to_le_bytes());
    hasher.update(namespace.as_bytes());
    hasher.update(key.as_bytes());
    let hash = hasher.finalize();
    u16::from_le_bytes([hash.as_bytes()[0], hash.as_bytes()[1]]) as usize % BUCKETS
}

impl Memory {
    pub fn get(&self, namespace: &str, key: &str) -> Option<&Entry> {
        self.entries.get(&(namespace.to_owned(), key.to_owned()))
    }

    /// Entries of `namespace` whose key starts with `prefix`, in key order.
    pub fn list<'a>(&'a self, namespace: &'a str, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let start = (namespace.to_owned(), prefix.to_owned());
        self.entries
            .range(start..)
            .take_while(move |((ns, key), _)| ns == namespace && key.starts_with(prefix))
            .map(|((_, key), entry)| (key.as_str(), entry))
    }

    /// Every entry as (namespace, key, entry), in name order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Entry)> {
        self.entries.iter().map(|((namespace, key), entry)| (namespace.as_str(), key.as_str(), entry))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nonce `writer`'s next write must carry.
    pub fn next_nonce(&self, writer: &AccountId) -> u64 {
        self.writers.get(writer).map_or(0, |w| w.next_nonce)
    }

    /// The hash of each snapshot chunk, in order: the leaves of the digest's tree.
    pub fn chunk_hashes(&self) -> Vec<Digest> {
        self.snapshot().chunks.iter().map(Chunk::hash).collect()
    }

    /// The consensus time the state is at: the last seq executed.
    pub fn executed(&self) -> Seq {
        self.executed
    }

    /// Drops every entry whose time is up at `seq`.
    fn expire(&mut self, seq: Seq) {
        while let Some(first) = self.expiries.first() {
            if first.0 > seq {
                return;
            }
            if let Some((_, namespace, key)) = self.expiries.pop_first() {
                self.entries.remove(&(namespace, key));
            }
        }
    }

    fn write(&mut self, writer: AccountId, seq: Seq, op: &Op) -> TxOutcome {
        let refused = |code| TxOutcome::Rejected(RejectReason::Refused { code });
        let Op::Memory(op) = op else { return TxOutcome::Rejected(RejectReason::UnsupportedOp) };
        if let Err(code) = check_limits(op) {
            return refused(code);
        }
        match op {
            MemoryOp::Put { namespace, key, value, ttl } => {
                let name = (namespace.clone(), key.clone());
                if !self.entries.contains_key(&name) && self.entries.len() >= MAX_ENTRIES {
                    return refused(MEMORY_FULL);
                }
                let expires_at = ttl.map(|ttl| Seq(seq.0.saturating_add(ttl)));
                let entry = Entry { value: value.clone(), writer, written_at: seq, expires_at };
                self.forget_expiry(&name);
                if let Some(at) = expires_at {
                    self.expiries.insert((at, name.0.clone(), name.1.clone()));
                }
                self.entries.insert(name, entry);
            }
            MemoryOp::Delete { namespace, key } => {
                let name = (namespace.clone(), key.clone());
                self.forget_expiry(&name);
                if self.entries.remove(&name).is_none() {
                    return refused(NO_SUCH_KEY);
                }
            }
        }
        TxOutcome::Committed
    }

    fn forget_expiry(&mut self, name: &Name) {
        if let Some(Entry { expires_at: Some(at), .. }) = self.entries.get(name) {
            self.expiries.remove(&(*at, name.0.clone(), name.1.clone()));
        }
    }

    fn apply(&mut self, seq: Seq, request: &Request) -> Execution {
        let tx = &request.tx.tx;
        let digest = request.tx.digest();
        let writer = self.writers.get(&tx.from).copied().unwrap_or_default();
        if let Some((last, outcome)) = writer.last {
            if last == digest && tx.nonce + 1 == writer.next_nonce {
                return Execution::Replayed(outcome);
            }
        }
        if tx.nonce != writer.next_nonce {
            let (expected, received) = (writer.next_nonce, tx.nonce);
            let reason = match received < expected {
                true => RejectReason::NonceConsumed { received },
                false => RejectReason::WrongNonce { expected, received },
            };
            return Execution::Applied(TxOutcome::Rejected(reason));
        }
        let outcome = self.write(tx.from, seq, &tx.op);
        self.writers.insert(tx.from, Writer { next_nonce: tx.nonce + 1, last: Some((digest, outcome)) });
        Execution::Applied(outcome)
    }

    fn header_chunk(&self) -> Chunk {
        let writers: Vec<(AccountId, Writer)> = self.writers.iter().map(|(id, w)| (*id, *w)).collect();
        Chunk(postcard_bytes(&(HEADER_DOMAIN, self.executed, writers)))
    }

    /// Each bucket's entries in key order.
    fn buckets(&self) -> Vec<Vec<(&Name, &Entry)>> {
        let mut buckets = vec![Vec::new(); BUCKETS];
        for (name, entry) in &self.entries {
            buckets[bucket_of(&name.0, &name.1)].push((name, entry));
        }
        buckets
    }
}

const HEADER_DOMAIN: &str = "bftswarm/memory-header/v1";
const BUCKET_DOMAIN: &str = "bftswarm/memory-bucket/v1";

/// A bucket chunk as it is encoded: the domain, its bucket number, its entries.
type EncodedBucket<'a> = (&'a str, u32, Vec<(&'a Name, &'a Entry)>);
type DecodedBucket = (String, u32, Vec<(Name, Entry)>);

fn bucket_chunk(bucket: usize, entries: Vec<(&Name, &Entry)>) -> Chunk {
    let encoded: EncodedBucket = (BUCKET_DOMAIN, bucket as u32, entries);
    Chunk(postcard_bytes(&encoded))
}

/// A bucket chunk's entries, if it is the chunk of `bucket` and encoded as
/// the memory encodes it (so one state has one encoding, and one digest).
fn decode_bucket(chunk: &Chunk, bucket: usize) -> Option<Vec<(Name, Entry)>> {
    let (domain, number, entries): DecodedBucket = postcard::from_bytes(&chunk.0).ok()?;
    let sorted = entries.windows(2).all(|pair| pair[0].0 < pair[1].0);
    let placed = entries.iter().all(|(name, _)| bucket_of(&name.0, &name.1) == bucket);
    let canonical = {
        let borrowed = entries.iter().map(|(name, entry)| (name, entry)).collect();
        bucket_chunk(bucket, borrowed) == *chunk
    };
    (domain == BUCKET_DOMAIN && number as usize == bucket && sorted && placed && canonical).then_some(entries)
}

/// The limits every write keeps, whatever the state.
fn check_limits(op: &MemoryOp) -> Result<(), u64> {
    let (namespace, key) = match op {
        MemoryOp::Put { namespace, key, .. } | MemoryOp::Delete { namespace, key } => (namespace, key),
    };
    if namespace.is_empty() || key.is_empty() {
        return Err(EMPTY_NAME);
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(NAMESPACE_TOO_LONG);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KEY_TOO_LONG);
    }
    match op {
        MemoryOp::Put { value, .. } if value.len() > MAX_VALUE_BYTES => Err(VALUE_TOO_LARGE),
        MemoryOp::Put { ttl: Some(0), .. } => Err(ZERO_TTL),
        _ => Ok(()),
    }
}

impl Application for Memory {
    type ConflictKey = (AccountId, u64);

    /// Refuses at once what no state would accept (another application's
    /// operation, a write beyond the limits) and a nonce another request consumed.
    fn check(&self, request: &Request) -> Result<(), Refusal> {
        let tx = &request.tx.tx;
        let Op::Memory(op) = &tx.op else {
            return Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::UnsupportedOp)));
        };
        check_limits(op).map_err(|code| Refusal::Rejected(TxOutcome::Rejected(RejectReason::Refused { code })))?;
        let writer = self.writers.get(&tx.from).copied().unwrap_or_default();
        if tx.nonce >= writer.next_nonce {
            return Ok(());
        }
        let replay = writer.last.is_some_and(|(d, _)| d == request.tx.digest() && tx.nonce + 1 == writer.next_nonce);
        match replay {
            true => Err(Refusal::Executed),
            false => Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::NonceConsumed { received: tx.nonce }))),
        }
    }

    /// Expires what is due at `seq` first, then applies the batch at `seq`.
    fn execute(&mut self, seq: Seq, requests: &[Request]) -> Vec<Execution> {
        self.executed = seq;
        self.expire(seq);
        requests.iter().map(|request| self.apply(seq, request)).collect()
    }

    fn conflict_key(request: &Request) -> Option<(AccountId, u64)> {
        Some((request.tx.from(), request.tx.nonce()))
    }

    fn digest(&self) -> Digest {
        merkle_root(self.chunk_hashes())
    }

    /// The header chunk, then one chunk per bucket (empty buckets included,
    /// so the tree's shape never changes).
    fn snapshot(&self) -> Snapshot {
        let mut chunks = Vec::with_capacity(1 + BUCKETS);
        chunks.push(self.header_chunk());
        chunks.extend(self.buckets().into_iter().enumerate().map(|(bucket, entries)| bucket_chunk(bucket, entries)));
        Snapshot { chunks }
    }

    fn restore(snapshot: &Snapshot) -> Result<Memory, RestoreError> {
        let fail = |chunk, reason| RestoreError { chunk, reason };
        if snapshot.chunks.len() != 1 + BUCKETS {
            return Err(fail(0, "a memory has a header and 256 bucket chunks"));
        }
        type Header = (String, Seq, Vec<(AccountId, Writer)>);
        let (domain, executed, writers): Header =
            postcard::from_bytes(&snapshot.chunks[0].0).map_err(|_| fail(0, "header"))?;
        let mut memory = Memory { executed, writers: writers.into_iter().collect(), ..Memory::default() };
        if domain != HEADER_DOMAIN || memory.header_chunk() != snapshot.chunks[0] {
            return Err(fail(0, "not a memory header as the memory encodes it"));
        }
        for (bucket, chunk) in snapshot.chunks[1..].iter().enumerate() {
            let entries =
                decode_bucket(chunk, bucket).ok_or(fail(bucket + 1, "not this bucket as the memory encodes it"))?;
            for (name, entry) in entries {
                if entry.expires_at.is_some_and(|at| at <= executed) {
                    return Err(fail(bucket + 1, "an entry that expired before the state's seq"));
                }
                if let Some(at) = entry.expires_at {
                    memory.expiries.insert((at, name.0.clone(), name.1.clone()));
                }
                memory.entries.insert(name, entry);
            }
        }
        if memory.entries.len() > MAX_ENTRIES {
            return Err(fail(0, "more entries than the memory holds"));
        }
        Ok(memory)
    }

    /// A [`MemoryQuery`] → its encoded answer; bytes that are no query → nothing.
    fn query(&self, query: &[u8]) -> Vec<u8> {
        match MemoryQuery::decode(query) {
            Some(MemoryQuery::Get { namespace, key }) => postcard_bytes(&self.get(&namespace, &key)),
            Some(MemoryQuery::List { namespace, prefix }) => {
                let listed: Vec<(&str, &Entry)> = self.list(&namespace, &prefix).take(MAX_LISTED).collect();
                postcard_bytes(&listed)
            }
            None => Vec::new(),
        }
    }

    /// A get is answered by its key's bucket; a list spans buckets.
    fn proving_chunk(&self, query: &[u8]) -> Option<usize> {
        match MemoryQuery::decode(query)? {
            MemoryQuery::Get { namespace, key } => Some(1 + bucket_of(&namespace, &key)),
            MemoryQuery::List { .. } => None,
        }
    }

    fn answer_from_chunk(query: &[u8], chunk: &Chunk) -> Option<Vec<u8>> {
        let MemoryQuery::Get { namespace, key } = MemoryQuery::decode(query)? else { return None };
        let entries = decode_bucket(chunk, bucket_of(&namespace, &key))?;
        let found = entries.into_iter().find(|(name, _)| name.0 == namespace && name.1 == key).map(|(_, e)| e);
        Some(postcard_bytes(&found))
    }
}

fn postcard_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Plain strings, vectors, tuples and enums of this module: encoding cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
