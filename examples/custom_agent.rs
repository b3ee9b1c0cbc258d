//! A custom agent: an auditor that joins the swarm as a non-voting observer,
//! re-verifies and re-executes every committed batch on its own copy of the
//! ledger, and compares its state digest with the swarm's stable checkpoints.
//! Any mismatch raises an alarm.
//!
//! It uses only the public API: [`Swarm::add_observer`] gives it every
//! executed batch (`BatchExecuted`) and the lifecycle events it asks for
//! (`checkpoint-stable` here).
//!
//! `cargo run --example custom_agent -- 500`

use actix::{Actor, Context, Handler};
use bftswarm::actors::{BatchExecuted, Swarm, SwarmSpec};
use bftswarm::agents::AgentDefinition;
use bftswarm::app::{Application, SwarmApp};
use bftswarm::config::SwarmConfig;
use bftswarm::events::{EventKind, LifecycleEvent};
use bftswarm::hooks::HookEvent;
use bftswarm::ledger::{Ledger, TxOutcome};
use bftswarm::protocol::{ClientId, Executed};
use bftswarm::workload::{Workload, WorkloadSpec};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches and checkpoints the auditor remembers, so its memory stays bounded.
const WINDOW: usize = 1024;

/// What the auditor found, shared with whoever started it.
#[derive(Clone, Debug, Default)]
pub struct AuditReport {
    pub batches_applied: u64,
    pub checkpoints_matched: u64,
    pub alarms: Vec<String>,
}

pub struct Auditor {
    /// The swarm's built-in application (its ledger and memory), re-executed here.
    app: SwarmApp,
    next_seq: u64,
    /// Per applied sequence number: the batch digest and the executions, to
    /// compare every other validator's copy of the batch with.
    applied: BTreeMap<u64, Executed>,
    /// Batches that arrived ahead of the next one (from a faster validator).
    ahead: BTreeMap<u64, Executed>,
    /// Our ledger digest after each recent sequence number.
    state_at: BTreeMap<u64, String>,
    /// Stable checkpoints announced before we reached them.
    expected: BTreeMap<u64, String>,
    /// Every validator announces each checkpoint; each is checked once.
    last_checkpoint: u64,
    /// From the `observer` agent definition.
    mailbox: usize,
    report: Arc<Mutex<AuditReport>>,
}

impl Auditor {
    pub fn new(genesis: Ledger, report: Arc<Mutex<AuditReport>>, mailbox: usize) -> Auditor {
        let (applied, ahead, state_at, expected) = Default::default();
        let last_checkpoint = 0;
        Auditor {
            app: SwarmApp::new(genesis),
            next_seq: 1,
            applied,
            ahead,
            state_at,
            expected,
            last_checkpoint,
            mailbox,
            report,
        }
    }

    fn alarm(&self, message: String) {
        eprintln!("AUDIT ALARM: {message}");
        self.report.lock().unwrap().alarms.push(message);
    }

    /// Checks one validator's executed batch, and applies it if it is the next.
    pub fn check_batch(&mut self, agent: u32, executed: Executed) {
        let seq = executed.seq.0;
        if executed.batch.digest() != executed.digest {
            return self.alarm(format!("agent {agent}: the batch at seq {seq} does not match its digest"));
        }
        match self.applied.get(&seq) {
            Some(mine) if mine.digest != executed.digest || mine.executions != executed.executions => {
                self.alarm(format!("agent {agent} executed a different batch or outcome at seq {seq}"))
            }
            Some(_) => {}
            None if seq >= self.next_seq && self.ahead.len() < WINDOW => {
                self.ahead.entry(seq).or_insert(executed);
                self.apply_ready();
            }
            None => {} // Older than our window, or too far ahead: nothing to compare with.
        }
    }

    /// Re-executes batches in sequence order on our own ledger.
    fn apply_ready(&mut self) {
        while let Some(executed) = self.ahead.remove(&self.next_seq) {
            let seq = executed.seq.0;
            // Consensus time moves with every batch, an empty one too (the memory's TTLs run on it).
            self.app.execute(executed.seq, &[]);
            for (index, request) in executed.batch.requests.iter().enumerate() {
                let outcome = match request.tx.verify() {
                    true => self.app.execute(executed.seq, std::slice::from_ref(request)).remove(0),
                    false => {
                        self.alarm(format!("seq {seq}: transfer {} has an invalid signature", request.tx_id()));
                        continue;
                    }
                };
                if executed.executions.get(index) != Some(&outcome) {
                    self.alarm(format!("seq {seq}: transfer {} re-executes to {outcome:?}", request.tx_id()));
                }
            }
            let digest = self.app.digest().to_string();
            if let Some(stable) = self.expected.remove(&seq) {
                self.compare_checkpoint(seq, &stable, &digest);
            }
            self.state_at.insert(seq, digest);
            self.applied.insert(seq, executed);
            self.next_seq += 1;
            self.report.lock().unwrap().batches_applied += 1;
            while self.applied.len() > WINDOW {
                self.applied.pop_first();
                self.state_at.pop_first();
            }
        }
    }

    fn compare_checkpoint(&mut self, seq: u64, stable: &str, mine: &str) {
        self.last_checkpoint = self.last_checkpoint.max(seq);
        match stable == mine {
            true => self.report.lock().unwrap().checkpoints_matched += 1,
            false => self.alarm(format!("stable checkpoint at seq {seq} has digest {stable}, our ledger {mine}")),
        }
    }
}

impl Actor for Auditor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Each batch arrives once per validator; a full mailbox would lose batches.
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<BatchExecuted> for Auditor {
    type Result = ();

    fn handle(&mut self, batch: BatchExecuted, _: &mut Context<Self>) {
        self.check_batch(batch.agent.0, batch.executed);
    }
}

impl Handler<HookEvent> for Auditor {
    type Result = ();

    fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
        let LifecycleEvent::CheckpointStable { seq, ledger_digest: state_digest, .. } = &*event else {
            return;
        };
        if *seq <= self.last_checkpoint {
            return;
        }
        match self.state_at.get(seq).cloned() {
            Some(mine) => self.compare_checkpoint(*seq, state_digest, &mine),
            None if *seq >= self.next_seq && self.expected.len() < WINDOW => {
                self.expected.insert(*seq, state_digest.clone());
            }
            None => {}
        }
    }
}

/// The observer's mailbox bound, from `agents/observer.toml`.
pub fn observer_mailbox() -> usize {
    let agents = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    let registry = AgentDefinition::load_dir(&agents).unwrap_or_else(|error| panic!("{error}"));
    let observer = registry.resolve("observer").unwrap_or_else(|error| panic!("{error}"));
    observer.mailbox.unwrap_or(1024)
}

/// Launches 4 validators with an auditor, submits `count` transfers, and
/// returns what the auditor found once it has caught up, and how many
/// batches the swarm executed.
pub async fn audited_run(count: usize) -> (AuditReport, u64) {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n[consensus]\ncheckpoint_interval = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 9,
        accounts: 50,
        transactions: count,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.1,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 9).unwrap();
    // The swarm's genesis ledger: the workload's accounts and the validators' own.
    let genesis = spec.genesis.ledger().clone();
    let swarm = Swarm::launch(spec);

    let report = Arc::new(Mutex::new(AuditReport::default()));
    let auditor = Auditor::new(genesis, report.clone(), observer_mailbox()).start();
    let checkpoints = [EventKind::CheckpointStable].into_iter().collect();
    let events = Some((checkpoints, auditor.clone().recipient()));
    swarm.add_observer("auditor", auditor.clone().recipient(), events).await.unwrap();

    let progress = Arc::new(AtomicU64::new(0));
    let run = swarm.run_client(ClientId(1), workload.transfers, 50, 2_000, progress).await.unwrap();
    let committed = run.completions.iter().filter(|c| c.outcome == TxOutcome::Committed).count();
    let executed = swarm.settled_status(Duration::from_secs(5)).await[0].last_executed.0;
    let start = Instant::now();
    while report.lock().unwrap().batches_applied < executed && start.elapsed() < Duration::from_secs(5) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    swarm.stop();
    println!("{committed} of {count} transfers committed in {executed} batches");
    let report = report.lock().unwrap().clone();
    (report, executed)
}

fn main() {
    let count = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(500);
    let (report, executed) = actix::System::new().block_on(audited_run(count));
    println!(
        "auditor re-executed {} of {executed} batches, matched {} stable checkpoints, raised {} alarms",
        report.batches_applied,
        report.checkpoints_matched,
        report.alarms.len()
    );
    if !report.alarms.is_empty() || report.batches_applied != executed {
        std::process::exit(1);
    }
}
