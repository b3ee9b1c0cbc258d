//! Costs of the pure core on one thread: signatures, digests, execution, and a
//! whole batch through every replica of an n = 4 and n = 7 committee (each
//! replica verifies every signature it receives, as in the runtime).
//!
//! `cargo bench --bench protocol`

use bftswarm::app::SignedTx;
use bftswarm::crypto::{verify_batch, Keypair, Signature, SigningBytes};
use bftswarm::ledger::Ledger;
use bftswarm::protocol::{
    AgentId, Batch, ClientId, Committee, Epoch, Input, Micros, Output, ProtocolParams, Replica, Request, Verifier,
};
use bftswarm::workload::{Workload, WorkloadSpec};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::VerifyingKey;
use std::hint::black_box;
use std::sync::Arc;

const BATCH: usize = 256;

fn workload(transactions: usize) -> Workload {
    Workload::generate(&WorkloadSpec {
        seed: 1,
        accounts: 1024,
        transactions,
        initial_balance: 1_000_000,
        max_amount: 100,
        overdraft_ratio: 0.0,
    })
}

fn crypto(c: &mut Criterion) {
    let keypair = Keypair::from_seed([1; 32]);
    let message = SigningBytes::new("bench").u64(7).finish();
    let signature = keypair.sign(&message);
    let key = keypair.public_key().verifying_key().unwrap();
    let mut group = c.benchmark_group("ed25519");
    group.bench_function("sign", |b| b.iter(|| keypair.sign(black_box(&message))));
    group.bench_function("verify", |b| b.iter(|| signature.verify(&key, black_box(&message))));
    let signed = workload(BATCH).transfers;
    let messages: Vec<Vec<u8>> = signed.iter().map(|t| t.tx.signing_bytes()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = signed.iter().map(|t| t.signature).collect();
    let keys: Vec<VerifyingKey> = signed.iter().map(|t| t.from().0.verifying_key().unwrap()).collect();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("verify_batch_256", |b| b.iter(|| verify_batch(&refs, &signatures, &keys)));
    group.finish();
}

fn ledger_and_digest(c: &mut Criterion) {
    let load = workload(BATCH);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let batch = Batch::of(load.transfers.iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect());
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_digest_256", |b| b.iter(|| black_box(&batch).digest()));
    group.bench_function("execute_256", |b| {
        b.iter_batched(
            || genesis.clone(),
            |mut ledger| {
                for tx in &load.transfers {
                    ledger.execute(&tx.tx);
                }
                ledger
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("state_digest_1024_accounts", |b| b.iter(|| genesis.state_digest()));
    group.finish();
}

struct Swarm {
    replicas: Vec<Replica>,
    verifiers: Vec<Verifier>,
}

fn swarm(n: usize, genesis: &Ledger) -> Swarm {
    let keys: Vec<Keypair> = (0..n).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap();
    let params = ProtocolParams {
        max_batch_size: BATCH,
        log_window: 1 << 40,
        checkpoint_interval: 1 << 30,
        ..Default::default()
    };
    let replicas = (0..n)
        .map(|i| Replica::new(AgentId(i as u32), keys[i].clone(), committee.clone(), params.clone(), genesis.clone()))
        .collect();
    let verifiers = (0..n).map(|_| Verifier::new(&committee, BATCH)).collect();
    Swarm { replicas, verifiers }
}

/// One batch from client request to execution on every replica; returns executions seen.
fn commit_one_batch(swarm: &mut Swarm, transfers: Vec<SignedTx>) -> usize {
    let requests = transfers.into_iter().map(|tx| Request { client: ClientId(0), tx }).collect();
    let (valid, _) = swarm.verifiers[0].verify_requests(requests);
    let mut pending: Vec<(usize, Output)> =
        swarm.replicas[0].step(Micros(0), Input::Requests(valid)).into_iter().map(|o| (0, o)).collect();
    let n = swarm.replicas.len();
    let mut executed = 0;
    while let Some((from, output)) = pending.pop() {
        let message = match output {
            Output::Broadcast(message) => message,
            Output::Executed(_) => {
                executed += 1;
                continue;
            }
            _ => continue,
        };
        for to in (0..n).filter(|&to| to != from) {
            if swarm.verifiers[to].verify_message(&message).is_ok() {
                let out = swarm.replicas[to].step(Micros(1), Input::Message(Arc::clone(&message)));
                pending.extend(out.into_iter().map(|o| (to, o)));
            }
        }
    }
    executed
}

fn whole_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("pbft_batch_of_256_one_thread");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in [4usize, 7] {
        let load = workload(BATCH * 64);
        let genesis = Ledger::with_genesis(&load.genesis).unwrap();
        let mut chunks = load.transfers.chunks(BATCH).map(<[SignedTx]>::to_vec).cycle();
        let mut state = swarm(n, &genesis);
        group.bench_function(format!("n{n}"), |b| {
            b.iter_batched(
                || chunks.next().unwrap_or_default(),
                |transfers| {
                    let executed = commit_one_batch(&mut state, transfers);
                    // Once the workload wraps around, nonces repeat: rebuild so every batch commits.
                    if executed < n {
                        state = swarm(n, &genesis);
                    }
                    executed
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, crypto, ledger_and_digest, whole_batch);
criterion_main!(benches);
