//! Costs of the storage layer in-process: memory-store stores (one commit
//! each, and groups of 64 per commit) and retrieves on the embedded redb file
//! (fsync on, as shipped, and off) and on the in-memory backend, and WAL group
//! commits of 64 records with fsync on and off.
//!
//! `cargo bench --bench store`

use bftswarm::store::{InMemoryStorage, LogIndex, MemoryStore, RedbOptions, RedbStore, Storage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;

const KEYS: usize = 4_096;
const GROUP: usize = 64;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("coordination/byzantine/malicious-detections/{i}")).collect()
}

fn backends(home: &std::path::Path) -> Vec<(&'static str, MemoryStore)> {
    let redb = |dir: &str, fsync| {
        let store = RedbStore::open(&home.join(dir), RedbOptions { fsync, ..RedbOptions::default() }).unwrap();
        MemoryStore::new(Box::new(store))
    };
    vec![
        ("redb_fsync", redb("fsync", true)),
        ("redb_no_fsync", redb("no-fsync", false)),
        ("in_memory", MemoryStore::new(Box::new(InMemoryStorage::default()))),
    ]
}

fn memory_store(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    let keys = keys();
    let value = json!({"agent": "validator-3", "reason": "equivocation", "view": 7, "seq": 1234});
    let mut group = c.benchmark_group("memory_store");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    for (name, mut store) in backends(home.path()) {
        let mut i = 0;
        group.bench_function(BenchmarkId::new("store", name), |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                store.store(&keys[i], black_box(&value), None).unwrap();
            })
        });
        // One commit per mailbox drain: 64 stores, one disk sync.
        group.throughput(Throughput::Elements(GROUP as u64));
        group.bench_function(BenchmarkId::new("store_many_64", name), |b| {
            b.iter(|| {
                i = (i + GROUP) % (KEYS - GROUP);
                let entries: Vec<_> = keys[i..i + GROUP].iter().map(|k| (k.as_str(), &value, None)).collect();
                store.store_many(black_box(&entries)).unwrap();
            })
        });
        group.throughput(Throughput::Elements(1));
        // Every key now exists: retrieves hit.
        for key in &keys {
            store.store(key, &value, None).unwrap();
        }
        group.bench_function(BenchmarkId::new("retrieve", name), |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(store.retrieve(&keys[i]).unwrap());
            })
        });
    }
    group.finish();
}

fn wal(c: &mut Criterion) {
    let home = tempfile::tempdir().unwrap();
    // A prepared certificate or a signed vote is a few hundred bytes.
    let records: Vec<Vec<u8>> = (0..GROUP).map(|i| vec![i as u8; 256]).collect();
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(GROUP as u64));
    group.measurement_time(Duration::from_secs(4));
    for fsync in [true, false] {
        let name = if fsync { "append_64_fsync" } else { "append_64_no_fsync" };
        let options = RedbOptions { fsync, ..RedbOptions::default() };
        let mut store = RedbStore::open(&home.path().join(name), options).unwrap();
        let mut last = LogIndex(0);
        group.bench_function(name, |b| {
            b.iter(|| {
                last = store.append("validator-0", black_box(&records)).unwrap();
                // Keep the log bounded, as checkpoints do in the runtime.
                if last.0 % (GROUP as u64 * 128) == 0 {
                    store.truncate_before("validator-0", last).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memory_store, wal);
criterion_main!(benches);
