//! The memory store the CLI and the runtime use (`bftswarm memory store --key
//! coordination/byzantine/view-changes --value '[…]'`): JSON values under
//! slash-separated keys whose first segment is the namespace, with optional
//! TTL, on any [`Storage`].

use super::{InMemoryStorage, Put, RedbOptions, RedbStore, Storage, StoreError, DATABASE_FILE, MAX_KEY_BYTES};
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// A validated memory-store key: 1 to 512 bytes, segments separated by '/',
/// none of them empty, no control characters (keys end up in terminals).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryKey(String);

impl MemoryKey {
    pub fn parse(key: &str) -> Result<Self, StoreError> {
        let reason = if key.is_empty() {
            "it is empty"
        } else if key.len() > MAX_KEY_BYTES {
            "it is longer than 512 bytes"
        } else if key.split('/').any(str::is_empty) {
            "it has an empty segment (leading, trailing or doubled '/')"
        } else if key.chars().any(char::is_control) {
            "it contains a control character"
        } else {
            return Ok(MemoryKey(key.to_owned()));
        };
        // Echo at most the limit back: the message must stay one line.
        let shown: String = key.chars().filter(|c| !c.is_control()).take(MAX_KEY_BYTES).collect();
        Err(StoreError::InvalidKey { key: shown, reason })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment: `coordination` for `coordination/byzantine/view-changes`.
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl FromStr for MemoryKey {
    type Err = StoreError;
    fn from_str(key: &str) -> Result<Self, StoreError> {
        MemoryKey::parse(key)
    }
}

impl fmt::Display for MemoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Clock = Box<dyn Fn() -> SystemTime + Send>;

/// JSON values with TTL over a storage backend; reads the wall clock unless a
/// test gives it another one.
pub struct MemoryStore {
    storage: Box<dyn Storage>,
    clock: Clock,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new(storage: Box<dyn Storage>) -> Self {
        MemoryStore { storage, clock: Box::new(SystemTime::now) }
    }

    /// The embedded default: `<home>/swarm.redb`. An existing file that is
    /// empty or damaged is refused ([`StoreError::Unreadable`]): redb would
    /// take an empty file for a new database, silently losing what was stored.
    pub fn open(home: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        let path = home.join(DATABASE_FILE);
        let unreadable = |detail: String| StoreError::Unreadable { path: path.clone(), detail };
        let existed = match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.len() == 0 => return Err(unreadable("the file is empty".into())),
            Ok(_) => true,
            Err(_) => false,
        };
        match RedbStore::open(home, options) {
            Ok(store) => Ok(MemoryStore::new(Box::new(store))),
            Err(StoreError::Database { detail, .. }) if existed => Err(unreadable(detail)),
            Err(error) => Err(error),
        }
    }

    /// A store that forgets everything with the process.
    pub fn in_memory() -> Self {
        MemoryStore::new(Box::new(InMemoryStorage::default()))
    }

    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Stores `value` under `key`, replacing what was there; with `ttl` it
    /// expires that long from now.
    pub fn store(&mut self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<(), StoreError> {
        let key = MemoryKey::parse(key)?;
        let bytes =
            serde_json::to_vec(value).map_err(|e| StoreError::NotJson { key: key.0.clone(), detail: e.to_string() })?;
        self.storage.put(key.as_str(), &bytes, ttl, (self.clock)())
    }

    /// Stores several values as one commit, all or none: what a writer that
    /// drains a mailbox of detections calls, to pay one disk sync per drain.
    pub fn store_many(&mut self, entries: &[(&str, &Value, Option<Duration>)]) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value, ttl) in entries {
            let key = MemoryKey::parse(key)?;
            let bytes = serde_json::to_vec(value)
                .map_err(|e| StoreError::NotJson { key: key.0.clone(), detail: e.to_string() })?;
            encoded.push((key, bytes, *ttl));
        }
        let puts: Vec<Put<'_>> =
            encoded.iter().map(|(key, value, ttl)| Put { key: key.as_str(), value, ttl: *ttl }).collect();
        self.storage.put_many(&puts, (self.clock)())
    }

    pub fn retrieve(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let key = MemoryKey::parse(key)?;
        match self.storage.get(key.as_str(), (self.clock)())? {
            Some(bytes) => decode(key.as_str(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` live entries whose key starts with `prefix` (plain string
    /// prefix; end it with '/' to stay inside one subtree), in key order.
    pub fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(MemoryKey, Value)>, StoreError> {
        if prefix.len() > MAX_KEY_BYTES {
            return Err(StoreError::InvalidKey { key: prefix.to_owned(), reason: "prefix longer than 512 bytes" });
        }
        self.storage
            .list(prefix, (self.clock)(), limit)?
            .into_iter()
            .map(|(key, bytes)| Ok((MemoryKey::parse(&key)?, decode(&key, &bytes)?)))
            .collect()
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        let key = MemoryKey::parse(key)?;
        self.storage.delete(key.as_str())
    }

    /// Removes up to `limit` expired entries; returns how many.
    pub fn purge_expired(&mut self, limit: usize) -> Result<usize, StoreError> {
        self.storage.purge_expired((self.clock)(), limit)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::NotJson { key: key.to_owned(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    const DETECTIONS: &str = "coordination/byzantine/malicious-detections";

    fn clocked() -> (MemoryStore, Arc<AtomicU64>) {
        let secs = Arc::new(AtomicU64::new(1_700_000_000));
        let now = secs.clone();
        let store = MemoryStore::in_memory()
            .with_clock(move || SystemTime::UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst)));
        (store, secs)
    }

    #[test]
    fn key_namespace_is_the_first_segment() {
        let key = MemoryKey::parse(DETECTIONS).unwrap();
        assert_eq!(key.namespace(), "coordination");
        assert_eq!(MemoryKey::parse("solo").unwrap().namespace(), "solo");
    }

    #[test]
    fn invalid_keys_are_refused_with_a_reason() {
        let long = "a".repeat(MAX_KEY_BYTES + 1);
        for (key, reason) in [
            ("", "it is empty"),
            ("/coordination", "it has an empty segment (leading, trailing or doubled '/')"),
            ("coordination/", "it has an empty segment (leading, trailing or doubled '/')"),
            ("coordination//x", "it has an empty segment (leading, trailing or doubled '/')"),
            ("a\nb", "it contains a control character"),
            (long.as_str(), "it is longer than 512 bytes"),
        ] {
            match MemoryKey::parse(key) {
                Err(StoreError::InvalidKey { reason: got, .. }) => assert_eq!(got, reason, "key {key:?}"),
                other => panic!("key {key:?} gave {other:?}"),
            }
        }
        assert!(MemoryKey::parse(&"a".repeat(MAX_KEY_BYTES)).is_ok());
        let message = MemoryStore::in_memory().store("a//b", &json!(1), None).unwrap_err().to_string();
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn store_retrieve_list_delete_json() {
        let (mut store, _) = clocked();
        let detections = json!([{"agent": "v3", "reason": "equivocation", "view": 2}]);
        store.store(DETECTIONS, &detections, None).unwrap();
        store.store("coordination/byzantine/view-changes", &json!([1, 2]), None).unwrap();
        store.store("tasks/42", &json!({"done": true}), None).unwrap();
        assert_eq!(store.retrieve(DETECTIONS).unwrap(), Some(detections.clone()));
        let listed = store.list("coordination/", 10).unwrap();
        let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [DETECTIONS, "coordination/byzantine/view-changes"]);
        assert_eq!(store.list("", 1).unwrap().len(), 1, "the limit bounds a listing");
        assert!(store.delete(DETECTIONS).unwrap());
        assert!(!store.delete(DETECTIONS).unwrap());
        assert_eq!(store.retrieve(DETECTIONS).unwrap(), None);
    }

    #[test]
    fn store_many_is_all_or_nothing() {
        let (mut store, _) = clocked();
        let one = json!(1);
        store.store_many(&[("a/1", &one, None), ("a/2", &one, Some(Duration::from_secs(5)))]).unwrap();
        assert_eq!(store.list("a/", 10).unwrap().len(), 2);
        let refused = store.store_many(&[("b/1", &one, None), ("b//2", &one, None)]);
        assert!(matches!(refused, Err(StoreError::InvalidKey { .. })));
        assert_eq!(store.retrieve("b/1").unwrap(), None);
    }

    #[test]
    fn ttl_expires_values_on_the_store_clock() {
        let (mut store, secs) = clocked();
        store.store("coordination/swarm/lease", &json!("v0"), Some(Duration::from_secs(30))).unwrap();
        secs.fetch_add(29, Ordering::SeqCst);
        assert_eq!(store.retrieve("coordination/swarm/lease").unwrap(), Some(json!("v0")));
        secs.fetch_add(1, Ordering::SeqCst);
        assert_eq!(store.retrieve("coordination/swarm/lease").unwrap(), None);
        assert!(store.list("coordination", 10).unwrap().is_empty());
        assert_eq!(store.purge_expired(100).unwrap(), 1);
    }

    #[test]
    fn non_json_bytes_are_an_error_not_a_panic() {
        let mut storage = InMemoryStorage::default();
        storage.put("raw/blob", &[0xff, 0x00], None, SystemTime::now()).unwrap();
        let store = MemoryStore::new(Box::new(storage));
        assert!(matches!(store.retrieve("raw/blob"), Err(StoreError::NotJson { .. })));
    }

    #[test]
    fn memory_store_survives_reopen_of_its_home() {
        let home = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(home.path(), RedbOptions::default()).unwrap();
        store.store(DETECTIONS, &json!(["v3"]), None).unwrap();
        drop(store);
        let store = MemoryStore::open(home.path(), RedbOptions::default()).unwrap();
        assert_eq!(store.retrieve(DETECTIONS).unwrap(), Some(json!(["v3"])));
    }

    #[test]
    fn an_emptied_or_damaged_memory_store_is_refused_and_left_as_it_is() {
        let home = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(home.path(), RedbOptions::default()).unwrap();
        store.store(DETECTIONS, &json!(["v3"]), None).unwrap();
        drop(store);
        let path = home.path().join(DATABASE_FILE);
        let bytes = std::fs::read(&path).unwrap();
        for damaged in [Vec::new(), vec![0xA5; bytes.len()], bytes[..bytes.len() / 3].to_vec()] {
            std::fs::write(&path, &damaged).unwrap();
            match MemoryStore::open(home.path(), RedbOptions::default()) {
                Err(error @ StoreError::Unreadable { .. }) => {
                    assert!(error.to_string().contains("swarm.redb"), "{error}")
                }
                Err(other) => panic!("{} bytes: not refused as unreadable: {other}", damaged.len()),
                Ok(_) => panic!("a damaged store of {} bytes opened as if nothing were lost", damaged.len()),
            }
            assert_eq!(std::fs::read(&path).unwrap(), damaged, "the damaged file was changed");
        }
    }
}
