//! A [`Storage`] that lives in `BTreeMap`s: the backend of tests and of
//! swarms that want no disk, and the proof that the trait admits a second
//! backend. Nothing survives the process.

use super::{check_group, check_log_name, check_puts, expiry_ms, unix_ms, LogIndex, Put, Storage, StoreError};
use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct InMemoryStorage {
    entries: BTreeMap<String, Entry>,
    logs: BTreeMap<String, Log>,
}

#[derive(Debug)]
struct Entry {
    expires_at_ms: Option<u64>,
    value: Vec<u8>,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

#[derive(Debug, Default)]
struct Log {
    /// Last index ever appended; kept when truncation empties `records` so
    /// that indices are never reused.
    last: u64,
    records: BTreeMap<u64, Vec<u8>>,
}

impl Storage for InMemoryStorage {
    fn put_many(&mut self, puts: &[Put<'_>], now: SystemTime) -> Result<(), StoreError> {
        check_puts(puts)?;
        for put in puts {
            let entry = Entry { expires_at_ms: expiry_ms(put.ttl, now), value: put.value.to_vec() };
            self.entries.insert(put.key.to_owned(), entry);
        }
        Ok(())
    }

    fn get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>, StoreError> {
        let now_ms = unix_ms(now);
        Ok(self.entries.get(key).filter(|e| e.live(now_ms)).map(|e| e.value.clone()))
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.entries.remove(key).is_some())
    }

    fn list(&self, prefix: &str, now: SystemTime, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let now_ms = unix_ms(now);
        Ok(self
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| e.live(now_ms))
            .take(limit)
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect())
    }

    fn purge_expired(&mut self, now: SystemTime, limit: usize) -> Result<usize, StoreError> {
        let now_ms = unix_ms(now);
        let expired: Vec<String> =
            self.entries.iter().filter(|(_, e)| !e.live(now_ms)).take(limit).map(|(k, _)| k.clone()).collect();
        for key in &expired {
            self.entries.remove(key);
        }
        Ok(expired.len())
    }

    fn append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<LogIndex, StoreError> {
        check_log_name(log)?;
        check_group(records)?;
        let wal = self.logs.entry(log.to_owned()).or_default();
        for record in records {
            wal.last += 1;
            wal.records.insert(wal.last, record.clone());
        }
        Ok(LogIndex(wal.last))
    }

    fn read_from(&self, log: &str, from: LogIndex, limit: usize) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        check_log_name(log)?;
        let Some(wal) = self.logs.get(log) else { return Ok(Vec::new()) };
        Ok(wal.records.range(from.0..).take(limit).map(|(i, r)| (LogIndex(*i), r.clone())).collect())
    }

    fn truncate_before(&mut self, log: &str, index: LogIndex) -> Result<u64, StoreError> {
        check_log_name(log)?;
        let Some(wal) = self.logs.get_mut(log) else { return Ok(0) };
        let kept = wal.records.split_off(&index.0);
        let dropped = std::mem::replace(&mut wal.records, kept).len();
        Ok(dropped as u64)
    }
}
