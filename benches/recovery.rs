//! How long a validator takes to come back from its write-ahead log after
//! 1,000,000 committed transfers with a checkpoint every 100 sequence numbers:
//! open the log, fold its records, restore the replica (the checkpoint's
//! ledger and every batch executed above it, executed again).
//!
//! The log is made by a committee of four (messages delivered in process, as
//! in the simulation): three pure replicas and the backup `v2`, a node whose
//! every step is persisted; it stops 99 batches past a checkpoint, the most a
//! log ever holds above one. Transfers are signed (the node verifies what it
//! is handed); recovery never verifies its own log.
//!
//! `cargo bench --bench recovery`

use bftswarm::app::{SignedTx, Tx};
use bftswarm::crypto::Keypair;
use bftswarm::ledger::{AccountId, Ledger, TxId};
use bftswarm::node::{Arrival, Node};
use bftswarm::protocol::{
    AgentId, ClientId, Committee, Epoch, Input, Micros, Output, ProtocolParams, Replica, Request,
};
use bftswarm::wal::{recover, Journal, Recovery, ReplicaSpec, WalOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TRANSFERS: usize = 1_000_000;
const BATCH: usize = 1_000;
const ACCOUNTS: usize = 10_000;
const CHECKPOINT_INTERVAL: u64 = 100;
/// The replica whose log is measured (a backup: it logs prepares and commits too).
const LOGGED: usize = 1;

fn accounts() -> Vec<Keypair> {
    (0..ACCOUNTS).map(|i| Keypair::from_seed(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect()
}

fn transfer(accounts: &[Keypair], i: usize) -> SignedTx {
    let from = i % ACCOUNTS;
    let transfer = Tx::transfer(
        TxId((i as u128).to_le_bytes()),
        AccountId(accounts[from].public_key()),
        AccountId(accounts[(from + 1 + i / ACCOUNTS) % ACCOUNTS].public_key()),
        1,
        (i / ACCOUNTS) as u64,
    );
    transfer.sign(&accounts[from])
}

/// Runs the committee over `TRANSFERS` (plus enough to stop 99 batches past a
/// checkpoint) and returns the logged replica's spec and the log's options.
fn build_log(dir: &std::path::Path) -> (ReplicaSpec, WalOptions, u64) {
    let accounts = accounts();
    let genesis =
        Ledger::with_genesis(&accounts.iter().map(|a| (AccountId(a.public_key()), 1_000_000)).collect::<Vec<_>>())
            .unwrap();
    let keys: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
    let public: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public, "v", None).unwrap();
    let params = ProtocolParams {
        checkpoint_interval: CHECKPOINT_INTERVAL,
        log_window: 2 * CHECKPOINT_INTERVAL,
        max_batch_size: BATCH,
        ..ProtocolParams::default()
    };
    // The replica at LOGGED stands in for the node below and is never stepped.
    let mut replicas: Vec<Replica> = (0..4)
        .map(|i| Replica::new(AgentId(i as u32), keys[i].clone(), committee.clone(), params.clone(), genesis.clone()))
        .collect();
    let spec =
        ReplicaSpec { name: "v2".into(), keypair: keys[LOGGED].clone(), committee, params, genesis, joined_in: None };
    let options = WalOptions::under_home(dir, false);
    let (mut node, mut journal, _): (Node, Journal, Recovery) = recover(&options, &spec, Micros(0)).unwrap();
    // The logged node's step: persisted, then its outbox opened by the receipt.
    let mut logged_step = |now: Micros, arrival: Arrival| -> Vec<Output> {
        let ready = node.step(now, arrival);
        let receipt = journal.persist(ready.write, node.logged_state().unwrap()).unwrap();
        ready.outbox.release(&receipt).unwrap()
    };
    let batches = (TRANSFERS / BATCH) as u64;
    let batches = batches + (CHECKPOINT_INTERVAL - 1) - batches % CHECKPOINT_INTERVAL;
    for b in 0..batches as usize {
        let requests: Vec<Request> =
            (b * BATCH..(b + 1) * BATCH).map(|i| Request { client: ClientId(0), tx: transfer(&accounts, i) }).collect();
        let mut pending: VecDeque<(usize, Output)> = VecDeque::new();
        for (i, replica) in replicas.iter_mut().enumerate() {
            let outputs = match i {
                LOGGED => logged_step(Micros(b as u64), Arrival::Requests(requests.clone())),
                _ => replica.step(Micros(b as u64), Input::Requests(requests.clone())),
            };
            pending.extend(outputs.into_iter().map(|o| (i, o)));
        }
        while let Some((from, output)) = pending.pop_front() {
            let Output::Broadcast(message) = output else { continue };
            for (to, replica) in replicas.iter_mut().enumerate().filter(|(to, _)| *to != from) {
                let outputs = match to {
                    LOGGED => logged_step(Micros(b as u64), Arrival::message(message.clone())),
                    _ => replica.step(Micros(b as u64), Input::Message(message.clone())),
                };
                pending.extend(outputs.into_iter().map(|o| (to, o)));
            }
        }
    }
    assert_eq!(node.replica().last_executed().0, batches, "every batch committed");
    (spec, options, batches)
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (spec, options, batches) = build_log(dir.path());
    let size = std::fs::metadata(options.path_of("v2")).map_or(0, |m| m.len());
    eprintln!(
        "log of {} transfers in {batches} batches ({:.1} MB) built in {:.1} s",
        batches as usize * BATCH,
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("validator_1m_transfers_checkpoint_100", |b| {
        b.iter(|| {
            let (node, journal, recovery) = recover(&options, &spec, Micros(0)).unwrap();
            assert!(matches!(recovery, Recovery::Wal { .. }));
            assert_eq!(node.replica().last_executed().0, batches);
            black_box((node, journal))
        })
    });
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
