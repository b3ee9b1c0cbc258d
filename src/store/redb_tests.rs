//! What only a file can do: survive a reopen, be locked by another opener, and
//! be damaged. Scenario names say what they break.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn open(home: &std::path::Path) -> RedbStore {
    RedbStore::open(home, RedbOptions::default()).unwrap()
}

fn payload(i: usize) -> Vec<u8> {
    format!("prepare v=1 s={i}").into_bytes()
}

#[test]
fn reopen_keeps_values_ttl_and_wal() {
    let home = tempfile::tempdir().unwrap();
    let mut store = open(home.path());
    store.put("coordination/byzantine/malicious-detections", b"[\"v3\"]", None, t0()).unwrap();
    store.put("coordination/lease", b"1", Some(Duration::from_secs(5)), t0()).unwrap();
    store.append("v0", &[b"view 1".to_vec()]).unwrap();
    drop(store);

    let mut store = open(home.path());
    let detections = store.get("coordination/byzantine/malicious-detections", t0()).unwrap();
    assert_eq!(detections, Some(b"[\"v3\"]".to_vec()));
    assert_eq!(store.get("coordination/lease", t0()).unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.get("coordination/lease", t0() + Duration::from_secs(5)).unwrap(), None);
    assert_eq!(store.purge_expired(t0() + Duration::from_secs(5), 10).unwrap(), 1);
    assert_eq!(store.read_from("v0", LogIndex(1), 10).unwrap(), vec![(LogIndex(1), b"view 1".to_vec())]);
    assert_eq!(store.append("v0", &[b"view 2".to_vec()]).unwrap(), LogIndex(2), "indices continue");
}

#[test]
fn recovery_group_commit_of_many_records_reads_back_in_order_after_reopen() {
    let home = tempfile::tempdir().unwrap();
    let group: Vec<Vec<u8>> = (1..=10_000).map(payload).collect();
    let mut store = open(home.path());
    assert_eq!(store.append("v2", &group).unwrap(), LogIndex(10_000));
    drop(store);

    let store = open(home.path());
    let mut next = LogIndex(1);
    let mut read = Vec::new();
    // Read in bounded pages, as a recovering validator does.
    loop {
        let page = store.read_from("v2", next, 4_096).unwrap();
        let Some(&(last, _)) = page.last() else { break };
        next = LogIndex(last.0 + 1);
        read.extend(page);
    }
    assert_eq!(read.len(), 10_000);
    assert!(read.iter().enumerate().all(|(i, (index, bytes))| index.0 == i as u64 + 1 && *bytes == payload(i + 1)));
}

#[test]
fn recovery_wal_record_corruption_is_reported_not_returned() {
    let home = tempfile::tempdir().unwrap();
    let mut store = open(home.path());
    store.append("v1", &(1..=10).map(payload).collect::<Vec<_>>()).unwrap();
    let mut raw = store.raw_record("v1", 5).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    store.write_raw_record("v1", 5, &raw).unwrap();

    match store.read_from("v1", LogIndex(1), 100) {
        Err(StoreError::Corrupt { index: 5, reason: "checksum mismatch", .. }) => {}
        other => panic!("expected record 5 to be reported corrupt, got {other:?}"),
    }
    // The records before it are intact and readable up to it.
    assert_eq!(store.read_from("v1", LogIndex(1), 4).unwrap().len(), 4);
    assert_eq!(store.read_from("v1", LogIndex(6), 100).unwrap().len(), 5);
    let message = store.read_from("v1", LogIndex(5), 1).unwrap_err().to_string();
    assert_eq!(message, "WAL record 5 of v1 is corrupt (checksum mismatch); the validator will recover from its peers");
}

#[test]
fn recovery_wal_record_moved_to_another_slot_is_corrupt() {
    let home = tempfile::tempdir().unwrap();
    let mut store = open(home.path());
    store.append("v1", &(1..=4).map(payload).collect::<Vec<_>>()).unwrap();
    // A valid record in the wrong place: its checksum covers its index.
    let third = store.raw_record("v1", 3).unwrap();
    store.write_raw_record("v1", 4, &third).unwrap();
    assert!(matches!(store.read_from("v1", LogIndex(1), 10), Err(StoreError::Corrupt { index: 4, .. })));
    store.write_raw_record("v1", 2, b"short").unwrap();
    let read = store.read_from("v1", LogIndex(1), 10);
    assert!(matches!(read, Err(StoreError::Corrupt { index: 2, reason: "shorter than its checksum", .. })));
}

#[test]
fn recovery_wal_hole_is_reported_as_missing() {
    let home = tempfile::tempdir().unwrap();
    let mut store = open(home.path());
    store.append("v1", &(1..=3).map(payload).collect::<Vec<_>>()).unwrap();
    // A record past the counter stands for a lost record 4.
    store.write_raw_record("v1", 5, b"").unwrap();
    let read = store.read_from("v1", LogIndex(1), 10);
    assert!(matches!(read, Err(StoreError::Corrupt { index: 4, reason: "missing", .. })), "{read:?}");
}

#[test]
fn second_open_of_the_same_home_is_locked() {
    let home = tempfile::tempdir().unwrap();
    let _first = open(home.path());
    let second = RedbStore::open(home.path(), RedbOptions::default());
    let Err(error @ StoreError::Locked { .. }) = second else { panic!("expected Locked, got {second:?}") };
    let expected = format!(
        "memory store at {} is locked by another process; stop the running swarm or pass another --home",
        home.path().join(DATABASE_FILE).display()
    );
    assert_eq!(error.to_string(), expected);
}

#[test]
fn garbage_database_file_is_an_error_not_a_panic() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(DATABASE_FILE), vec![0xA5; 64 * 1024]).unwrap();
    let opened = RedbStore::open(home.path(), RedbOptions::default());
    assert!(matches!(opened, Err(StoreError::Database { .. })), "{opened:?}");
}

#[test]
fn home_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("not-a-dir");
    std::fs::write(&home, b"").unwrap();
    let opened = RedbStore::open(&home, RedbOptions::default());
    assert!(matches!(opened, Err(StoreError::Home { .. }) | Err(StoreError::Database { .. })), "{opened:?}");
}

#[test]
fn without_fsync_a_clean_close_keeps_every_commit() {
    let home = tempfile::tempdir().unwrap();
    let options = RedbOptions { fsync: false, ..RedbOptions::default() };
    let mut store = RedbStore::open(home.path(), options).unwrap();
    // More groups than non-durable commits between syncs, to cross one.
    for i in 0..300 {
        store.append("v0", &[payload(i)]).unwrap();
    }
    drop(store);
    let store = RedbStore::open(home.path(), options).unwrap();
    assert_eq!(store.read_from("v0", LogIndex(1), 1_000).unwrap().len(), 300);
}

#[test]
fn shared_storage_serves_the_wal_and_the_memory_store_from_one_file() {
    let home = tempfile::tempdir().unwrap();
    let shared = SharedStorage::new(Box::new(open(home.path())));
    let mut validator = shared.clone();
    let mut memory = MemoryStore::new(Box::new(shared.clone()));
    validator.append("v0", &[b"view 1".to_vec()]).unwrap();
    memory.store("coordination/byzantine/view-changes", &serde_json::json!([1]), None).unwrap();
    assert_eq!(shared.read_from("v0", LogIndex(1), 1).unwrap().len(), 1);
    assert!(shared.get("coordination/byzantine/view-changes", SystemTime::now()).unwrap().is_some());
}

#[test]
fn recovery_file_cut_short_is_an_error_naming_it_not_a_panic() {
    let home = tempfile::tempdir().unwrap();
    let mut store = open(home.path());
    let records: Vec<Vec<u8>> = (0..2_000).map(payload).collect();
    store.append("v0", &records).unwrap();
    drop(store);
    let path = home.path().join(DATABASE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() / 2, 100, 0] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let outcome = RedbStore::open(home.path(), RedbOptions::default())
            .and_then(|store| store.read_from("v0", LogIndex(1), 10_000).map(|records| records.len()));
        match outcome {
            Err(error) => assert!(error.to_string().contains("swarm.redb"), "{error}"),
            // An empty file is a new database: nothing is invented.
            Ok(found) => assert_eq!((keep, found), (0, 0), "a file cut to {keep} bytes read back {found} records"),
        }
    }
}
