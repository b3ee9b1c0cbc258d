//! One table of behaviours every [`Storage`] must have, run against each
//! backend through `&mut dyn Storage` (which also proves the trait is
//! object-safe), then the redb-only scenarios: reopen, locking, corruption.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn records(range: std::ops::RangeInclusive<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("record {i}").into_bytes()).collect()
}

fn kv_round_trip(s: &mut dyn Storage) {
    s.put("coordination/byzantine/view-changes", b"[1]", None, t0()).unwrap();
    assert_eq!(s.get("coordination/byzantine/view-changes", t0()).unwrap(), Some(b"[1]".to_vec()));
    s.put("coordination/byzantine/view-changes", b"[1,2]", None, t0()).unwrap();
    assert_eq!(s.get("coordination/byzantine/view-changes", t0()).unwrap(), Some(b"[1,2]".to_vec()));
    assert_eq!(s.get("coordination/unknown", t0()).unwrap(), None);
    assert!(s.delete("coordination/byzantine/view-changes").unwrap());
    assert!(!s.delete("coordination/byzantine/view-changes").unwrap());
    assert_eq!(s.get("coordination/byzantine/view-changes", t0()).unwrap(), None);
}

fn ttl_hides_values_from_their_expiry_on(s: &mut dyn Storage) {
    s.put("lease/primary", b"v0", Some(secs(10)), t0()).unwrap();
    s.put("lease/forever", b"v1", None, t0()).unwrap();
    assert_eq!(s.get("lease/primary", t0() + Duration::from_millis(9_999)).unwrap(), Some(b"v0".to_vec()));
    assert_eq!(s.get("lease/primary", t0() + secs(10)).unwrap(), None);
    let listed = s.list("lease/", t0() + secs(10), 10).unwrap();
    assert_eq!(listed, vec![("lease/forever".to_owned(), b"v1".to_vec())]);
    // Expired but not yet purged: still deletable, and counted as present.
    assert!(s.delete("lease/primary").unwrap());
}

fn overwrite_replaces_the_expiry_too(s: &mut dyn Storage) {
    s.put("k/a", b"short", Some(secs(1)), t0()).unwrap();
    s.put("k/a", b"long", None, t0()).unwrap();
    assert_eq!(s.purge_expired(t0() + secs(3600), 100).unwrap(), 0);
    assert_eq!(s.get("k/a", t0() + secs(3600)).unwrap(), Some(b"long".to_vec()));
    s.put("k/a", b"short again", Some(secs(1)), t0()).unwrap();
    assert_eq!(s.get("k/a", t0() + secs(1)).unwrap(), None);
}

fn purge_removes_only_expired_values_up_to_the_limit(s: &mut dyn Storage) {
    for i in 0..5 {
        s.put(&format!("tmp/{i}"), b"x", Some(secs(i + 1)), t0()).unwrap();
    }
    s.put("keep/me", b"x", None, t0()).unwrap();
    assert_eq!(s.purge_expired(t0(), 100).unwrap(), 0);
    // At t0 + 3 s the values with TTL 1, 2 and 3 s have expired.
    assert_eq!(s.purge_expired(t0() + secs(3), 2).unwrap(), 2);
    assert_eq!(s.purge_expired(t0() + secs(3), 100).unwrap(), 1);
    assert_eq!(s.purge_expired(t0() + secs(3), 100).unwrap(), 0);
    assert!(!s.delete("tmp/0").unwrap(), "purged values are gone");
    assert_eq!(s.list("", t0(), 100).unwrap().len(), 3);
}

fn list_is_by_prefix_in_key_order_and_bounded(s: &mut dyn Storage) {
    for key in ["b/2", "a/1", "b/1", "b/3", "c/1", "b"] {
        s.put(key, key.as_bytes(), None, t0()).unwrap();
    }
    let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(s.list("b/", t0(), 10).unwrap()), ["b/1", "b/2", "b/3"]);
    assert_eq!(keys(s.list("b", t0(), 2).unwrap()), ["b", "b/1"]);
    assert_eq!(keys(s.list("z", t0(), 10).unwrap()), Vec::<String>::new());
}

fn oversized_and_empty_keys_and_values_are_refused(s: &mut dyn Storage) {
    assert!(matches!(s.put("", b"x", None, t0()), Err(StoreError::InvalidKey { .. })));
    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(matches!(s.put(&long_key, b"x", None, t0()), Err(StoreError::InvalidKey { .. })));
    let big = vec![0u8; MAX_VALUE_BYTES + 1];
    assert!(matches!(s.put("k", &big, None, t0()), Err(StoreError::TooLarge { .. })));
}

fn put_many_is_one_all_or_nothing_group(s: &mut dyn Storage) {
    let puts = [
        Put { key: "g/1", value: b"1", ttl: None },
        Put { key: "g/2", value: b"2", ttl: Some(secs(5)) },
        Put { key: "g/1", value: b"1 again", ttl: None },
    ];
    s.put_many(&puts, t0()).unwrap();
    assert_eq!(s.get("g/1", t0()).unwrap(), Some(b"1 again".to_vec()), "later puts of a group win");
    assert_eq!(s.purge_expired(t0() + secs(5), 10).unwrap(), 1);
    let refused = [Put { key: "h/1", value: b"1", ttl: None }, Put { key: "", value: b"2", ttl: None }];
    assert!(matches!(s.put_many(&refused, t0()), Err(StoreError::InvalidKey { .. })));
    assert_eq!(s.get("h/1", t0()).unwrap(), None, "a refused group writes nothing");
}

fn wal_group_commit_returns_the_last_index_and_reads_in_order(s: &mut dyn Storage) {
    assert_eq!(s.append("v0", &[]).unwrap(), LogIndex(0));
    assert_eq!(s.append("v0", &records(1..=3)).unwrap(), LogIndex(3));
    assert_eq!(s.append("v0", &records(4..=5)).unwrap(), LogIndex(5));
    assert_eq!(s.append("v0", &[]).unwrap(), LogIndex(5));
    let read = s.read_from("v0", LogIndex(2), 3).unwrap();
    assert_eq!(
        read,
        vec![
            (LogIndex(2), records(2..=2).remove(0)),
            (LogIndex(3), records(3..=3).remove(0)),
            (LogIndex(4), records(4..=4).remove(0))
        ]
    );
    assert_eq!(s.read_from("v0", LogIndex(6), 10).unwrap(), vec![]);
    assert_eq!(s.read_from("never-written", LogIndex(1), 10).unwrap(), vec![]);
}

fn wal_truncation_never_reuses_indices(s: &mut dyn Storage) {
    s.append("v1", &records(1..=10)).unwrap();
    assert_eq!(s.truncate_before("v1", LogIndex(4)).unwrap(), 3);
    assert_eq!(s.read_from("v1", LogIndex(1), 100).unwrap().first().map(|r| r.0), Some(LogIndex(4)));
    assert_eq!(s.truncate_before("v1", LogIndex(11)).unwrap(), 7);
    assert_eq!(s.read_from("v1", LogIndex(1), 100).unwrap(), vec![]);
    assert_eq!(s.append("v1", &records(11..=11)).unwrap(), LogIndex(11));
    assert_eq!(s.truncate_before("unknown", LogIndex(5)).unwrap(), 0);
}

fn wal_logs_of_different_validators_are_independent(s: &mut dyn Storage) {
    s.append("v0", &records(1..=2)).unwrap();
    assert_eq!(s.append("v1", &records(1..=1)).unwrap(), LogIndex(1));
    assert_eq!(s.read_from("v0", LogIndex(1), 10).unwrap().len(), 2);
    s.truncate_before("v1", LogIndex(2)).unwrap();
    assert_eq!(s.read_from("v0", LogIndex(1), 10).unwrap().len(), 2);
}

fn wal_refuses_bad_names_and_oversized_groups(s: &mut dyn Storage) {
    for name in ["", "../etc", "v 0", &"v".repeat(MAX_LOG_NAME_BYTES + 1)] {
        assert!(matches!(s.append(name, &records(1..=1)), Err(StoreError::InvalidLogName { .. })), "{name:?}");
    }
    let too_many = vec![Vec::new(); MAX_GROUP_RECORDS + 1];
    assert!(matches!(s.append("v0", &too_many), Err(StoreError::TooLarge { .. })));
    assert_eq!(s.append("v0", &[]).unwrap(), LogIndex(0), "a refused group writes nothing");
}

macro_rules! storage_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            storage_suite!(@tests $make; kv_round_trip, ttl_hides_values_from_their_expiry_on,
                overwrite_replaces_the_expiry_too, purge_removes_only_expired_values_up_to_the_limit,
                list_is_by_prefix_in_key_order_and_bounded, oversized_and_empty_keys_and_values_are_refused,
                put_many_is_one_all_or_nothing_group,
                wal_group_commit_returns_the_last_index_and_reads_in_order, wal_truncation_never_reuses_indices,
                wal_logs_of_different_validators_are_independent, wal_refuses_bad_names_and_oversized_groups);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let (mut storage, _home) = $make;
                super::$name(&mut storage);
            }
        )*
    };
}

storage_suite!(in_memory, (InMemoryStorage::default(), ()));
storage_suite!(redb, {
    let home = tempfile::tempdir().unwrap();
    (RedbStore::open(home.path(), RedbOptions::default()).unwrap(), home)
});
storage_suite!(redb_without_fsync, {
    let home = tempfile::tempdir().unwrap();
    (RedbStore::open(home.path(), RedbOptions { fsync: false, ..RedbOptions::default() }).unwrap(), home)
});
storage_suite!(shared, (SharedStorage::new(Box::new(InMemoryStorage::default())), ()));
