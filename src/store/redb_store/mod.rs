//! The embedded default [`Storage`]: one redb file per swarm home holding the
//! memory store and one WAL table per validator, so a whole swarm's durable
//! state is one file that one process locks.
//!
//! redb already checksums its pages; WAL records carry their own blake3
//! checksum over (index, payload) as well, so that a record damaged or moved
//! by anything outside redb is reported by index instead of being replayed
//! (see `wal.rs`).

mod wal;

use super::{check_puts, expiry_ms, unix_ms, LogIndex, Put, Storage, StoreError};
use redb::{Builder, Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use redb::{Error as RedbError, WriteTransaction};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The database file inside the swarm's home directory.
pub const DATABASE_FILE: &str = "swarm.redb";

/// key -> expiry (u64 LE ms, `NEVER` for none) ++ value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// expiry (u64 BE ms, so byte order is time order) ++ key -> (): lets a purge
/// visit only what has expired.
const KV_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("kv_expiry");
/// WAL name -> last index ever appended, so indices survive truncation.
const WAL_LAST: TableDefinition<&str, u64> = TableDefinition::new("wal_last");

const NEVER: u64 = u64::MAX;
const ENTRY_HEADER_BYTES: usize = 8;
/// redb 2 frees pages only in durable commits: with fsync off, one commit in
/// this many is durable anyway so that the file does not grow without bound.
/// Measured: 64 keeps a 2,048-commit run at 9 MB instead of 130 MB, at the
/// same throughput as 1,024.
const NON_DURABLE_COMMITS_PER_SYNC: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedbOptions {
    /// Wait for the disk on every commit. Off, a crash may lose the last
    /// commits (never corrupt the file); a validator then relies on its peers.
    pub fsync: bool,
    /// Page cache of the database; bounded because every validator shares it.
    pub cache_bytes: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions { fsync: true, cache_bytes: 64 << 20 }
    }
}

pub struct RedbStore {
    db: Database,
    path: PathBuf,
    fsync: bool,
    unsynced_commits: u32,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).field("fsync", &self.fsync).finish()
    }
}

thread_local! {
    /// Set while a panic is caught on purpose on this thread: the hook stays quiet.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `open` and catches its panic without the panic hook printing it: the
/// caller turns it into an error naming the file, and redb's raw message
/// (`assertion failed …` with a source path) would only confuse a log's reader.
fn catch_quietly<T>(open: impl FnOnce() -> T) -> std::thread::Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    CATCHING.with(|catching| catching.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open));
    CATCHING.with(|catching| catching.set(false));
    result
}

impl RedbStore {
    /// Opens (or creates) `<home>/swarm.redb`, creating `home` if needed.
    pub fn open(home: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(home).map_err(|source| StoreError::Home { path: home.to_owned(), source })?;
        RedbStore::open_file(&home.join(DATABASE_FILE), options)
    }

    /// Opens (or creates) the database file `path`, whose directory must exist:
    /// a validator's own write-ahead log lives in a file of its own, so that
    /// validators commit (and wait for the disk) in parallel.
    pub fn open_file(path: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        let path = path.to_owned();
        // The v3 file format is the one redb 3 reads, so upgrading redb later
        // needs no migration of existing homes.
        let builder =
            || Builder::new().set_cache_size(options.cache_bytes).create_with_file_format_v3(true).create(&path);
        // redb 2.6 asserts (panics) on some damaged files, e.g. one cut short:
        // a damaged file must be an error naming it, never a crash.
        let opened = catch_quietly(builder).map_err(|panic| {
            let reason =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            // redb's own words name its source lines, not the problem: for whoever debugs redb only.
            tracing::debug!(path = %path.display(), reason = reason.as_deref().unwrap_or("?"), "redb panicked opening a file");
            StoreError::Database {
                path: path.clone(),
                detail: "the file is damaged: cut short or overwritten, redb cannot read its layout".into(),
            }
        })?;
        let db = opened.map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            other => StoreError::Database { path: path.clone(), detail: other.to_string() },
        })?;
        let mut store = RedbStore { db, path, fsync: options.fsync, unsynced_commits: 0 };
        // Create the fixed tables once so that readers never meet a missing one.
        let txn = store.begin_write()?;
        txn.open_table(KV).map_err(|e| store.fail(e))?;
        txn.open_table(KV_EXPIRY).map_err(|e| store.fail(e))?;
        txn.open_table(WAL_LAST).map_err(|e| store.fail(e))?;
        txn.commit().map_err(|e| store.fail(e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every earlier commit durable (one fsync), whatever `fsync` says.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        self.unsynced_commits = 0;
        Ok(())
    }

    fn fail(&self, error: impl Into<Fail>) -> StoreError {
        StoreError::Database { path: self.path.clone(), detail: error.into().0.to_string() }
    }

    fn begin_write(&mut self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        if !self.fsync {
            if self.unsynced_commits < NON_DURABLE_COMMITS_PER_SYNC {
                txn.set_durability(Durability::None);
                self.unsynced_commits += 1;
            } else {
                self.unsynced_commits = 0;
            }
        }
        Ok(txn)
    }
}

/// Any redb error, boxed: redb's own is 160 bytes, too big to pass around in
/// every `Result` of the transaction closures below.
#[derive(Debug)]
struct Fail(Box<RedbError>);

impl<E: Into<RedbError>> From<E> for Fail {
    fn from(error: E) -> Self {
        Fail(Box::new(error.into()))
    }
}

impl Drop for RedbStore {
    /// A clean shutdown keeps what non-durable commits wrote.
    fn drop(&mut self) {
        if self.unsynced_commits > 0 {
            if let Err(error) = self.sync() {
                tracing::warn!(%error, "final sync of the store failed");
            }
        }
    }
}

fn expiry_key(at_ms: u64, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRY_HEADER_BYTES + key.len());
    out.extend_from_slice(&at_ms.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// Splits a stored entry into (expiry, value); `None` if it lacks a header.
fn split_entry(raw: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let (header, value) = raw.split_at_checked(ENTRY_HEADER_BYTES)?;
    let at = u64::from_le_bytes(header.try_into().ok()?);
    Some(((at != NEVER).then_some(at), value))
}

fn live(expiry: Option<u64>, now_ms: u64) -> bool {
    expiry.is_none_or(|at| now_ms < at)
}

impl Storage for RedbStore {
    fn put_many(&mut self, puts: &[Put<'_>], now: SystemTime) -> Result<(), StoreError> {
        check_puts(puts)?;
        let txn = self.begin_write()?;
        let result = (|| -> Result<(), Fail> {
            let mut kv = txn.open_table(KV)?;
            let mut index = txn.open_table(KV_EXPIRY)?;
            let mut entry = Vec::new();
            for put in puts {
                let expiry = expiry_ms(put.ttl, now);
                entry.clear();
                entry.extend_from_slice(&expiry.unwrap_or(NEVER).to_le_bytes());
                entry.extend_from_slice(put.value);
                let old =
                    kv.insert(put.key, entry.as_slice())?.and_then(|g| split_entry(g.value()).and_then(|(at, _)| at));
                if let Some(at) = old {
                    index.remove(expiry_key(at, put.key).as_slice())?;
                }
                if let Some(at) = expiry {
                    index.insert(expiry_key(at, put.key).as_slice(), ())?;
                }
            }
            Ok(())
        })();
        // On error `txn` is dropped uncommitted: the group is all or nothing.
        result.map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))
    }

    fn get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let kv = txn.open_table(KV).map_err(|e| self.fail(e))?;
        let Some(guard) = kv.get(key).map_err(|e| self.fail(e))? else { return Ok(None) };
        let (expiry, value) = split_entry(guard.value()).ok_or_else(|| StoreError::BadEntry { key: key.to_owned() })?;
        Ok(live(expiry, unix_ms(now)).then(|| value.to_vec()))
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        let txn = self.begin_write()?;
        let result = (|| -> Result<bool, Fail> {
            let mut kv = txn.open_table(KV)?;
            let Some(old) = kv.remove(key)?.map(|g| split_entry(g.value()).and_then(|(at, _)| at)) else {
                return Ok(false);
            };
            if let Some(at) = old {
                txn.open_table(KV_EXPIRY)?.remove(expiry_key(at, key).as_slice())?;
            }
            Ok(true)
        })();
        let existed = result.map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(existed)
    }

    fn list(&self, prefix: &str, now: SystemTime, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let now_ms = unix_ms(now);
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let kv = txn.open_table(KV).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in kv.range::<&str>(prefix..).map_err(|e| self.fail(e))? {
            let (key, raw) = item.map_err(|e| self.fail(e))?;
            let key = key.value();
            if out.len() >= limit || !key.starts_with(prefix) {
                break;
            }
            let (expiry, value) =
                split_entry(raw.value()).ok_or_else(|| StoreError::BadEntry { key: key.to_owned() })?;
            if live(expiry, now_ms) {
                out.push((key.to_owned(), value.to_vec()));
            }
        }
        Ok(out)
    }

    fn purge_expired(&mut self, now: SystemTime, limit: usize) -> Result<usize, StoreError> {
        // Expired means expiry <= now, i.e. index keys below (now + 1, "").
        let upper = unix_ms(now).saturating_add(1).to_be_bytes();
        let txn = self.begin_write()?;
        let result = (|| -> Result<usize, Fail> {
            let mut index = txn.open_table(KV_EXPIRY)?;
            let mut kv = txn.open_table(KV)?;
            let doomed = index
                .range::<&[u8]>(..upper.as_slice())?
                .take(limit)
                .map(|item| item.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<Vec<_>, _>>()?;
            for entry in &doomed {
                index.remove(entry.as_slice())?;
                if let Some(key) = entry.get(ENTRY_HEADER_BYTES..).and_then(|k| std::str::from_utf8(k).ok()) {
                    kv.remove(key)?;
                }
            }
            Ok(doomed.len())
        })();
        let purged = result.map_err(|e| self.fail(e))?;
        if purged == 0 {
            // Nothing changed: spare the fsync.
            txn.abort().map_err(|e| self.fail(e))?;
        } else {
            txn.commit().map_err(|e| self.fail(e))?;
        }
        Ok(purged)
    }

    fn append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<LogIndex, StoreError> {
        self.wal_append(log, records)
    }

    fn read_from(&self, log: &str, from: LogIndex, limit: usize) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        self.wal_read(log, from, limit)
    }

    fn truncate_before(&mut self, log: &str, index: LogIndex) -> Result<u64, StoreError> {
        self.wal_truncate(log, index)
    }
}
