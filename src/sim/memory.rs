//! The simulation runs Byzantine-tolerant memory ([`Memory`]) through
//! [`super::app_run`]: honest writers put (some with a TTL of a few sequence
//! numbers, so entries expire mid-run), overwrite a shared key and delete;
//! one validator catches up by the memory's snapshot; a Byzantine writer
//! signs two puts with one nonce (each to half of the validators), forges a
//! put in an honest writer's name, corrupts its own signature and replays
//! executed writes.
//!
//! Beyond agreement, the memory's rules are checked against an independent
//! model fed only the agreed batches: no forged request and no replay wrote
//! anything, every entry every replica holds is the last committed put of
//! its key not deleted nor expired. At the end one replica's certified
//! answer is verified offline against the committee.

use super::app_run::{self, AppScenario, Setting};
use crate::app::memory::{decode_get, Memory, MemoryQuery};
use crate::app::{Application, MemoryOp, Op, SignedTx, Tx};
use crate::crypto::{Digest, Keypair};
use crate::ledger::{AccountId, Execution, TxId, TxOutcome};
use crate::protocol::{verify_certified, Batch, ClientId, Request, Seq};
use crate::rng::SeededRng;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const HONEST_WRITERS: usize = 3;
/// Writes per honest writer.
const WRITES: u64 = 8;
const FORGED_VALUE: &[u8] = b"\"forged\"";

#[derive(Clone, Debug)]
pub struct MemoryReport {
    pub seed: u64,
    pub validators: usize,
    pub violations: Vec<String>,
    pub steps: usize,
    pub completed: usize,
    pub highest_executed: u64,
    /// Snapshots the cut-off validator installed.
    pub snapshots_installed: u64,
    /// Entries whose TTL ran out during the run.
    pub expired: usize,
    /// Signers of the certified answer verified offline at the end, and the quorum.
    pub certified_signers: usize,
    pub quorum: usize,
}

impl MemoryReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

struct Writers {
    keys: Vec<Keypair>,
}

impl Writers {
    fn account(&self, writer: usize) -> AccountId {
        AccountId(self.keys[writer].public_key())
    }

    fn tx(&self, writer: usize, nonce: u64, op: MemoryOp) -> Tx {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&nonce.to_le_bytes());
        id[8] = writer as u8;
        id[9] = matches!(op, MemoryOp::Delete { .. }) as u8;
        id[10..].copy_from_slice(&Digest::of(&postcard::to_allocvec(&op).unwrap_or_default()).0[..6]);
        Tx { id: TxId(id), from: self.account(writer), nonce, op: Op::Memory(op) }
    }

    fn sign(&self, writer: usize, nonce: u64, op: MemoryOp) -> SignedTx {
        self.tx(writer, nonce, op).sign(&self.keys[writer])
    }

    /// Each honest writer puts an expiring key and a lasting one, claims the
    /// shared leader key, then deletes its lasting key, twice over; the
    /// Byzantine writer (last) writes twice through the client as well.
    fn workload(&self, rng: &mut SeededRng) -> Vec<SignedTx> {
        let byzantine = HONEST_WRITERS;
        let mut writes = vec![
            self.sign(byzantine, 0, put("swarm", "byzantine/a", b"1", None)),
            self.sign(byzantine, 1, put("shared", "leader", b"\"byzantine\"", None)),
        ];
        for nonce in 0..WRITES {
            for writer in 0..HONEST_WRITERS {
                let key = format!("w{writer}/k{}", nonce - nonce % 4);
                let op = match nonce % 4 {
                    0 => put("swarm", &format!("{key}-lease"), b"{\"lease\":true}", Some(rng.between(2, 6))),
                    1 => put("swarm", &key, b"{\"done\":false}", None),
                    2 => put("shared", "leader", format!("\"w{writer}\"").as_bytes(), None),
                    _ => MemoryOp::Delete { namespace: "swarm".into(), key },
                };
                writes.push(self.sign(writer, nonce, op));
            }
        }
        writes
    }
}

fn put(namespace: &str, key: &str, value: &[u8], ttl: Option<u64>) -> MemoryOp {
    MemoryOp::Put { namespace: namespace.into(), key: key.into(), value: value.to_vec(), ttl }
}

type Batches = BTreeMap<Seq, (Digest, Arc<Batch>, Vec<Execution>)>;
/// (namespace, key) → (value, writer, expires at).
type Entries = BTreeMap<(String, String), (Vec<u8>, AccountId, Option<Seq>)>;

/// The memory's rules, modelled apart from its code: (namespace, key) →
/// (value, writer, expires at), from the agreed committed writes in order.
#[derive(Default)]
struct Model {
    entries: Entries,
    expired: usize,
}

impl Model {
    fn advance(&mut self, seq: Seq) {
        let before = self.entries.len();
        self.entries.retain(|_, (_, _, expires)| expires.is_none_or(|at| at > seq));
        self.expired += before - self.entries.len();
    }

    /// Replays the agreed batches, flagging a committed write that a forged
    /// or replayed request made.
    fn replay(batches: &Batches, violations: &mut Vec<String>) -> Model {
        let mut model = Model::default();
        let mut written: HashSet<(AccountId, u64)> = HashSet::new();
        for (seq, (_, batch, executions)) in batches {
            model.advance(*seq);
            for (request, execution) in batch.requests.iter().zip(executions) {
                if *execution != Execution::Applied(TxOutcome::Committed) {
                    continue;
                }
                let tx = &request.tx.tx;
                if !request.tx.verify() {
                    violations.push(format!("a request with a forged signature wrote at {seq}"));
                }
                if !written.insert((tx.from, tx.nonce)) {
                    violations.push(format!(
                        "nonce {} of {:?} wrote twice (replay or double write) at {seq}",
                        tx.nonce, tx.from
                    ));
                }
                match &tx.op {
                    Op::Memory(MemoryOp::Put { namespace, key, value, ttl }) => {
                        let expires = ttl.map(|ttl| Seq(seq.0 + ttl));
                        model.entries.insert((namespace.clone(), key.clone()), (value.clone(), tx.from, expires));
                    }
                    Op::Memory(MemoryOp::Delete { namespace, key }) => {
                        if model.entries.remove(&(namespace.clone(), key.clone())).is_none() {
                            violations.push(format!("a delete of an absent key committed at {seq}"));
                        }
                    }
                    _ => violations.push(format!("a request that is no memory write committed at {seq}")),
                }
            }
        }
        model
    }
}

pub fn run(seed: u64) -> MemoryReport {
    let mut rng = SeededRng::new(seed ^ 0x03E3_04A7);
    let setting = Setting::draw(&mut rng);
    let validators = setting.keys.len();
    let writers = Writers { keys: (0..=HONEST_WRITERS).map(|_| Keypair::from_seed(rng.bytes())).collect() };
    let workload = writers.workload(&mut rng);
    let byzantine = HONEST_WRITERS;
    let to_all = |request: &Request| (0..validators).map(|i| (i, request.clone())).collect::<Vec<_>>();
    // From the start: a put in writer 0's name signed with the Byzantine key,
    // and one with the Byzantine writer's own signature corrupted.
    let forged_value = put("shared", "leader", FORGED_VALUE, None);
    let impostor = writers.tx(0, WRITES, forged_value.clone()).sign(&writers.keys[byzantine]);
    let mut corrupted = writers.sign(byzantine, 2, forged_value);
    corrupted.signature.0[5] ^= 0x40;
    let mut injected = to_all(&Request { client: ClientId(1), tx: impostor });
    injected.extend(to_all(&Request { client: ClientId(1), tx: corrupted }));
    // Once writes executed: two puts on one nonce, to half of the validators
    // each, and replays of executed writes (the Byzantine's and an honest one's).
    let twice = [
        writers.sign(byzantine, 2, put("shared", "leader", b"\"byzantine-2\"", None)),
        writers.sign(byzantine, 2, put("swarm", "byzantine/b", b"2", Some(1))),
    ];
    let mut later: Vec<(usize, Request)> =
        (0..validators).map(|i| (i, Request { client: ClientId(1), tx: twice[i % 2].clone() })).collect();
    for replayed in [&workload[0], &workload[2], &workload[3]] {
        later.extend(to_all(&Request { client: ClientId(2), tx: replayed.clone() }));
    }
    let scenario = AppScenario {
        setting,
        genesis: Memory::default(),
        workload,
        window: rng.between(1, 4) as usize,
        injected,
        later: Some((Seq(6), later)),
    };
    let mut run = app_run::run(scenario, rng);
    let mut model = Model::replay(&run.batches, &mut run.violations);
    let highest = run.highest_executed();
    model.advance(highest);
    check_final_state(&run.replicas[0], &model, &mut run.violations);
    let certified_signers = match check_certified_answer(&run) {
        Ok(signers) => signers,
        Err(violation) => {
            run.violations.push(violation);
            0
        }
    };
    MemoryReport {
        seed,
        validators,
        violations: run.violations,
        steps: run.steps,
        completed: run.completed,
        highest_executed: highest.0,
        snapshots_installed: run.snapshots_installed,
        expired: model.expired,
        certified_signers,
        quorum: run.committee.quorum(),
    }
}

/// Every replica's memory holds exactly the model's entries (the harness
/// checked all replicas hold one state, so one replica stands for all).
fn check_final_state(replica: &crate::protocol::Replica<Memory>, model: &Model, violations: &mut Vec<String>) {
    let memory = replica.app();
    let namespaces = ["swarm", "shared"];
    let held: Entries = namespaces
        .iter()
        .flat_map(|namespace| {
            memory.list(namespace, "").map(|(key, entry)| {
                ((namespace.to_string(), key.to_owned()), (entry.value.clone(), entry.writer, entry.expires_at))
            })
        })
        .collect();
    if held != model.entries || memory.len() != held.len() {
        violations.push(format!("the memory holds {held:?}, the agreed writes make {:?}", model.entries));
    }
    if held.values().any(|(value, ..)| value == FORGED_VALUE) {
        violations.push("the forged value is in the memory".into());
    }
}

/// Replica 0's certified answer for the shared key (and for an absent key)
/// verifies offline against the committee, and says what its stable state says.
fn check_certified_answer(run: &app_run::AppRun<Memory>) -> Result<usize, String> {
    let replica = &run.replicas[0];
    let mut signers = usize::MAX;
    for key in ["leader", "nobody"] {
        let query = MemoryQuery::Get { namespace: "shared".into(), key: key.into() }.encode();
        let certified = replica.certified_query(&query).ok_or("replica 0 has no stable checkpoint to certify")?;
        let verified = verify_certified::<Memory>(&certified, &run.committee)
            .map_err(|error| format!("replica 0's certified answer for {key} is refused: {error}"))?;
        let stable = replica.stable_app().query(&query);
        if verified.answer != stable || verified.seq != replica.stable_checkpoint().seq {
            return Err(format!("the certified answer for {key} is not the stable state's"));
        }
        if (key == "nobody") != (decode_get(&verified.answer) == Some(None)) {
            return Err(format!("the certified answer for {key} is {:?}", decode_get(&verified.answer)));
        }
        let mut altered = certified.clone();
        altered.answer =
            replica.stable_app().query(&MemoryQuery::Get { namespace: "swarm".into(), key: key.into() }.encode());
        if altered.answer != certified.answer && verify_certified::<Memory>(&altered, &run.committee).is_ok() {
            return Err(format!("an altered answer for {key} verified"));
        }
        signers = signers.min(verified.signers.len());
    }
    Ok(signers)
}
