//! Durable storage: the write-ahead logs of the validators and the memory store
//! (namespaced JSON values with optional TTL), behind the [`Storage`] trait so a
//! user can plug another backend.
//!
//! The embedded default is [`RedbStore`], one redb file per swarm home
//! (`<home>/swarm.redb`); [`InMemoryStorage`] keeps everything in a `BTreeMap`
//! for tests and for swarms that need no durability. Time is always an argument
//! (`now`), never read here, so TTL behaviour is testable without sleeping.
//!
//! ```
//! use bftswarm::store::{InMemoryStorage, LogIndex, Storage};
//! use std::time::{Duration, SystemTime};
//!
//! let mut storage = InMemoryStorage::default();
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
//! storage.put("coordination/swarm/leader", b"\"v0\"", Some(Duration::from_secs(60)), now).unwrap();
//! assert!(storage.get("coordination/swarm/leader", now).unwrap().is_some());
//! assert!(storage.get("coordination/swarm/leader", now + Duration::from_secs(60)).unwrap().is_none());
//!
//! let last = storage.append("v0", &[b"view 1".to_vec(), b"vote 7".to_vec()]).unwrap();
//! assert_eq!(last, LogIndex(2));
//! let records = storage.read_from("v0", LogIndex(1), 10).unwrap();
//! assert_eq!(records[1], (LogIndex(2), b"vote 7".to_vec()));
//! ```

mod error;
mod in_memory;
pub mod memory;
mod redb_store;
#[cfg(test)]
mod redb_tests;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use in_memory::InMemoryStorage;
pub use memory::{MemoryKey, MemoryStore};
pub use redb_store::{RedbOptions, RedbStore, DATABASE_FILE};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Position of a record in one validator's WAL. The first record is 1; indices
/// are never reused, even after [`Storage::truncate_before`] empties the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

/// One write of a [`Storage::put_many`] group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Put<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    pub ttl: Option<Duration>,
}

/// Longest key of the key-value store (also the memory store's key limit).
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value of the key-value store: swarm knowledge, not bulk data.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest WAL record: a ledger snapshot must fit, a runaway encoder must not.
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// Most records in one group commit (one mailbox drain of a validator).
pub const MAX_GROUP_RECORDS: usize = 65_536;
/// Most bytes in one WAL group commit, so that a group stays one bounded
/// write even when every record is large.
pub const MAX_GROUP_BYTES: usize = 256 << 20;
/// Longest WAL name; names become table names of the database.
pub const MAX_LOG_NAME_BYTES: usize = 64;

/// A storage backend: a key-value store with expiry and, per validator, an
/// append-only log whose appends are group commits.
///
/// Object-safe and `Send`, so the swarm holds a `Box<dyn Storage>` and a
/// validator actor can own it. Readers take a `limit` so that no call
/// materialises an unbounded amount of data.
pub trait Storage: Send {
    /// Stores `value` under `key`, replacing any previous value. With a `ttl`
    /// the value is visible strictly before `now + ttl`.
    fn put(&mut self, key: &str, value: &[u8], ttl: Option<Duration>, now: SystemTime) -> Result<(), StoreError> {
        self.put_many(&[Put { key, value, ttl }], now)
    }

    /// Stores up to [`MAX_GROUP_RECORDS`] values as one commit, all or none:
    /// the memory store's group commit, as [`Storage::append`] is the WAL's.
    /// A writer that drains a mailbox pays one disk sync per drain.
    fn put_many(&mut self, puts: &[Put<'_>], now: SystemTime) -> Result<(), StoreError>;

    /// The value under `key`, unless it is missing or expired at `now`.
    fn get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes `key`; returns whether a value (expired or not) was there.
    fn delete(&mut self, key: &str) -> Result<bool, StoreError>;

    /// Up to `limit` live entries whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str, now: SystemTime, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Removes up to `limit` entries expired at `now`; returns how many. A
    /// caller that gets `limit` back calls again.
    fn purge_expired(&mut self, now: SystemTime, limit: usize) -> Result<usize, StoreError>;

    /// Appends `records` to the WAL named `log` as one durable commit (all or
    /// none) and returns the index of the last one; with no records, the index
    /// of the last record ever appended (0 for a new log).
    fn append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<LogIndex, StoreError>;

    /// Up to `limit` records of `log` from index `from` on, in order. A record
    /// that fails its checksum, or a hole in the sequence, is an error naming
    /// the record: never data.
    fn read_from(&self, log: &str, from: LogIndex, limit: usize) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError>;

    /// Drops the records of `log` before `index` (they are covered by a stable
    /// checkpoint); returns how many were dropped.
    fn truncate_before(&mut self, log: &str, index: LogIndex) -> Result<u64, StoreError>;
}

/// One backend shared by every validator and the memory store of a swarm:
/// redb locks its file for one `Database` per process, so they all go through
/// the same [`RedbStore`]. Cloning shares it.
#[derive(Clone)]
pub struct SharedStorage(Arc<Mutex<Box<dyn Storage>>>);

impl SharedStorage {
    pub fn new(storage: Box<dyn Storage>) -> Self {
        SharedStorage(Arc::new(Mutex::new(storage)))
    }

    /// A panic while the lock was held cannot have left half a write behind
    /// (each call is one transaction), so poisoning is not a reason to stop.
    fn lock(&self) -> MutexGuard<'_, Box<dyn Storage>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SharedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStorage").finish_non_exhaustive()
    }
}

impl Storage for SharedStorage {
    fn put_many(&mut self, puts: &[Put<'_>], now: SystemTime) -> Result<(), StoreError> {
        self.lock().put_many(puts, now)
    }
    fn get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>, StoreError> {
        self.lock().get(key, now)
    }
    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.lock().delete(key)
    }
    fn list(&self, prefix: &str, now: SystemTime, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.lock().list(prefix, now, limit)
    }
    fn purge_expired(&mut self, now: SystemTime, limit: usize) -> Result<usize, StoreError> {
        self.lock().purge_expired(now, limit)
    }
    fn append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<LogIndex, StoreError> {
        self.lock().append(log, records)
    }
    fn read_from(&self, log: &str, from: LogIndex, limit: usize) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        self.lock().read_from(log, from, limit)
    }
    fn truncate_before(&mut self, log: &str, index: LogIndex) -> Result<u64, StoreError> {
        self.lock().truncate_before(log, index)
    }
}

/// Milliseconds since the Unix epoch; a clock set before 1970 counts as 0.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The expiry instant in ms, `None` for values that never expire. Saturates
/// so that an absurd TTL means "practically never", not an overflow.
pub(crate) fn expiry_ms(ttl: Option<Duration>, now: SystemTime) -> Option<u64> {
    ttl.map(|ttl| unix_ms(now).saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)))
}

/// Validates a whole group before anything is written, so a refused group
/// writes nothing.
pub(crate) fn check_puts(puts: &[Put<'_>]) -> Result<(), StoreError> {
    if puts.len() > MAX_GROUP_RECORDS {
        return Err(StoreError::TooLarge {
            what: "memory store group (values)",
            size: puts.len(),
            limit: MAX_GROUP_RECORDS,
        });
    }
    puts.iter().try_for_each(|put| check_value(put.key, put.value))
}

fn check_value(key: &str, value: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidKey { key: key.to_owned(), reason: "must be 1 to 512 bytes long" });
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::TooLarge { what: "memory store value", size: value.len(), limit: MAX_VALUE_BYTES });
    }
    Ok(())
}

/// WAL names are validator names; they become table names, so keep them to a
/// portable alphabet rather than trusting whatever a config file holds.
pub(crate) fn check_log_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() || name.len() > MAX_LOG_NAME_BYTES {
        "must be 1 to 64 bytes long"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        "may only hold ASCII letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidLogName { name: name.to_owned(), reason })
}

pub(crate) fn check_group(records: &[Vec<u8>]) -> Result<(), StoreError> {
    if records.len() > MAX_GROUP_RECORDS {
        return Err(StoreError::TooLarge {
            what: "WAL group (records)",
            size: records.len(),
            limit: MAX_GROUP_RECORDS,
        });
    }
    let bytes = records.iter().map(Vec::len).fold(0usize, usize::saturating_add);
    if bytes > MAX_GROUP_BYTES {
        return Err(StoreError::TooLarge { what: "WAL group", size: bytes, limit: MAX_GROUP_BYTES });
    }
    match records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
        Some(r) => Err(StoreError::TooLarge { what: "WAL record", size: r.len(), limit: MAX_RECORD_BYTES }),
        None => Ok(()),
    }
}
