//! The write-ahead logs: one table `wal/<validator>` of index -> blake3(index,
//! payload) ++ payload, plus the last index ever appended in `wal_last`.
//!
//! The checksum covers the index so that a record copied to the wrong slot is
//! as detectable as a flipped bit; reading checks every record and the absence
//! of holes, and stops at the first bad one with its index.

use super::{Fail, RedbStore, WAL_LAST};
use crate::store::{check_group, check_log_name, LogIndex, StoreError};
use redb::{ReadableTable, TableDefinition, TableError};

const CHECKSUM_BYTES: usize = 32;

type WalTable<'a> = TableDefinition<'a, u64, &'static [u8]>;

fn checksum(index: u64, payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn table_name(log: &str) -> String {
    format!("wal/{log}")
}

fn corrupt(log: &str, index: u64, reason: &'static str) -> StoreError {
    StoreError::Corrupt { log: log.to_owned(), index, reason }
}

impl RedbStore {
    pub(super) fn wal_append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<LogIndex, StoreError> {
        check_log_name(log)?;
        check_group(records)?;
        if records.is_empty() {
            return self.wal_last(log).map(LogIndex);
        }
        let name = table_name(log);
        let txn = self.begin_write()?;
        let result = (|| -> Result<Result<u64, StoreError>, Fail> {
            let mut meta = txn.open_table(WAL_LAST)?;
            let mut wal = txn.open_table(WalTable::new(&name))?;
            let mut index = meta.get(log)?.map_or(0, |g| g.value());
            let mut stored = Vec::new();
            for record in records {
                // Only a damaged counter gets here; refuse rather than wrap.
                let Some(next) = index.checked_add(1) else {
                    return Ok(Err(corrupt(log, index, "its index counter is at its maximum")));
                };
                index = next;
                stored.clear();
                stored.extend_from_slice(checksum(index, record).as_bytes());
                stored.extend_from_slice(record);
                wal.insert(index, stored.as_slice())?;
            }
            meta.insert(log, index)?;
            Ok(Ok(index))
        })();
        // On any error `txn` is dropped uncommitted: the group is all or nothing.
        let last = result.map_err(|e| self.fail(e))??;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(LogIndex(last))
    }

    fn wal_last(&self, log: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let meta = txn.open_table(WAL_LAST).map_err(|e| self.fail(e))?;
        let last = meta.get(log).map_err(|e| self.fail(e))?.map_or(0, |g| g.value());
        Ok(last)
    }

    pub(super) fn wal_read(
        &self,
        log: &str,
        from: LogIndex,
        limit: usize,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        check_log_name(log)?;
        let name = table_name(log);
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let last = txn
            .open_table(WAL_LAST)
            .and_then(|meta| Ok(meta.get(log)?.map_or(0, |g| g.value())))
            .map_err(|e| self.fail(e))?;
        let wal = match txn.open_table(WalTable::new(&name)) {
            Ok(wal) => wal,
            // Truncation keeps the table, so a counter without one lost it all.
            Err(TableError::TableDoesNotExist(_)) if last == 0 || limit == 0 || from.0 > last => return Ok(Vec::new()),
            Err(TableError::TableDoesNotExist(_)) => return Err(corrupt(log, from.0.max(1), "missing")),
            Err(e) => return Err(self.fail(e)),
        };
        let first = wal.first().map_err(|e| self.fail(e))?.map_or(last.saturating_add(1), |(k, _)| k.value());
        // Records below `first` were truncated; from there on none may be missing.
        let mut expected = from.0.max(first);
        let mut out = Vec::new();
        for item in wal.range(from.0..).map_err(|e| self.fail(e))? {
            if out.len() >= limit {
                return Ok(out);
            }
            let (key, raw) = item.map_err(|e| self.fail(e))?;
            let index = key.value();
            if index != expected {
                return Err(corrupt(log, expected, "missing"));
            }
            let raw = raw.value();
            let Some((sum, payload)) = raw.split_at_checked(CHECKSUM_BYTES) else {
                return Err(corrupt(log, index, "shorter than its checksum"));
            };
            if sum != checksum(index, payload).as_bytes() {
                return Err(corrupt(log, index, "checksum mismatch"));
            }
            out.push((LogIndex(index), payload.to_vec()));
            expected = index.saturating_add(1);
        }
        if out.len() < limit && expected <= last {
            // The tail the counter promises is gone (a truncated file).
            return Err(corrupt(log, expected, "missing"));
        }
        Ok(out)
    }

    pub(super) fn wal_truncate(&mut self, log: &str, index: LogIndex) -> Result<u64, StoreError> {
        check_log_name(log)?;
        let name = table_name(log);
        let txn = self.begin_write()?;
        let mut dropped = 0u64;
        txn.open_table(WalTable::new(&name))
            .map_err(Fail::from)
            .and_then(|mut wal| {
                wal.retain_in(..index.0, |_, _| {
                    dropped += 1;
                    false
                })
                .map_err(Fail::from)
            })
            .map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(dropped)
    }

    /// Test-only back door that overwrites a stored WAL record verbatim, to
    /// play the part of a damaged disk.
    #[cfg(test)]
    pub(crate) fn write_raw_record(&mut self, log: &str, index: u64, raw: &[u8]) -> Result<(), StoreError> {
        let name = table_name(log);
        let txn = self.begin_write()?;
        txn.open_table(WalTable::new(&name))
            .map_err(Fail::from)
            .and_then(|mut wal| wal.insert(index, raw).map(|_| ()).map_err(Fail::from))
            .map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))
    }

    #[cfg(test)]
    pub(crate) fn raw_record(&self, log: &str, index: u64) -> Option<Vec<u8>> {
        let name = table_name(log);
        let txn = self.db.begin_read().ok()?;
        let wal = txn.open_table(WalTable::new(&name)).ok()?;
        let raw = wal.get(index).ok()??.value().to_vec();
        Some(raw)
    }
}
