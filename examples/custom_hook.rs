//! A custom hook actor: the tutorial's `onMaliciousDetected` and
//! `onViewChange` hooks as an ordinary actix actor. It logs what it hears,
//! keeps a record of it, persists each detection to the memory store under
//! the tutorial's key, and requests a replacement of the accused agent — which
//! the swarm's operator carries out as a membership change through consensus.
//!
//! Register it before launch ([`Hooks::subscribe`]) to hear the launch itself
//! (`swarm-initialized`, `agent-spawned`); any actor that handles
//! [`HookEvent`] can be a hook.
//!
//! `cargo run --example custom_hook -- 200`

use actix::{Actor, Context, Handler};
use bftswarm::actors::MembershipChanged;
use bftswarm::actors::{LaunchOptions, Swarm, SwarmSpec};
use bftswarm::config::SwarmConfig;
use bftswarm::events::{EventKind, EventKinds, LifecycleEvent};
use bftswarm::faults::FaultType;
use bftswarm::hooks::{HookEvent, Hooks};
use bftswarm::ledger::Ledger;
use bftswarm::protocol::{AgentId, ClientId};
use bftswarm::store::MemoryStore;
use bftswarm::workload::{Workload, WorkloadSpec};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where detections are persisted, as in the tutorial.
pub const DETECTIONS_KEY: &str = "coordination/byzantine/malicious-detections";

/// Events the watcher keeps; older ones are forgotten.
const KEEP: usize = 10_000;

/// What the watcher heard, shared with whoever started it.
#[derive(Clone, Debug, Default)]
pub struct WatchRecord {
    pub events: Vec<LifecycleEvent>,
    /// Accused agents, first accusation first: the ones to replace.
    pub to_replace: Vec<AgentId>,
}

pub struct ByzantineWatch {
    record: Arc<Mutex<WatchRecord>>,
    memory: Arc<Mutex<MemoryStore>>,
    /// Where replacement requests go: whoever holds the operator's key.
    replacements: Option<mpsc::UnboundedSender<AgentId>>,
}

impl ByzantineWatch {
    pub fn new(record: Arc<Mutex<WatchRecord>>, memory: Arc<Mutex<MemoryStore>>) -> ByzantineWatch {
        ByzantineWatch { record, memory, replacements: None }
    }

    /// Sends a replacement request for each newly accused agent to `operator`.
    pub fn requesting_replacements(mut self, operator: mpsc::UnboundedSender<AgentId>) -> ByzantineWatch {
        self.replacements = Some(operator);
        self
    }

    /// The kinds it subscribes to.
    pub fn kinds() -> EventKinds {
        let kinds = [
            EventKind::SwarmInitialized,
            EventKind::AgentSpawned,
            EventKind::TransactionCommitted,
            EventKind::MaliciousDetected,
            EventKind::ViewChangeStarted,
            EventKind::ViewChanged,
        ];
        kinds.into_iter().collect()
    }

    fn on_malicious_detected(&self, reporter: AgentId, accused: AgentId, fault_type: &str, evidence: &str) {
        eprintln!("onMaliciousDetected: {accused:?} ({fault_type}) reported by {reporter:?}: {evidence}");
        // Persist: the detections so far, under the tutorial's key.
        let detection = serde_json::json!({
            "detected_agent": accused.0,
            "reported_by": reporter.0,
            "fault_type": fault_type,
            "evidence": evidence,
        });
        let mut memory = self.memory.lock().unwrap();
        let mut detections = match memory.retrieve(DETECTIONS_KEY) {
            Ok(Some(serde_json::Value::Array(list))) => list,
            _ => Vec::new(),
        };
        detections.push(detection);
        if let Err(error) = memory.store(DETECTIONS_KEY, &serde_json::Value::Array(detections), None) {
            eprintln!("onMaliciousDetected: could not persist the detection: {error}");
        }
        // Request a replacement, once per accused agent.
        let mut record = self.record.lock().unwrap();
        if !record.to_replace.contains(&accused) {
            record.to_replace.push(accused);
            if let Some(operator) = &self.replacements {
                let _ = operator.send(accused);
            }
        }
    }

    fn on_view_change(&self, event: &LifecycleEvent) {
        eprintln!("onViewChange: {}", event.to_json_line());
    }
}

impl Actor for ByzantineWatch {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Every validator reports every batch: the default 16 would drop events.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<HookEvent> for ByzantineWatch {
    type Result = ();

    fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
        match &*event {
            LifecycleEvent::MaliciousDetected { reporter, accused, fault_type, evidence, .. } => {
                self.on_malicious_detected(*reporter, *accused, fault_type, evidence)
            }
            LifecycleEvent::ViewChangeStarted { .. } | LifecycleEvent::ViewChanged { .. } => {
                self.on_view_change(&event)
            }
            _ => {}
        }
        let mut record = self.record.lock().unwrap();
        if record.events.len() < KEEP {
            record.events.push((*event).clone());
        }
    }
}

/// Launches 4 validators with the watcher, submits `count` transfers, and
/// returns what the watcher heard.
pub async fn watched_run(count: usize) -> WatchRecord {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 3,
        accounts: 40,
        transactions: count,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 3).unwrap();

    let record = Arc::new(Mutex::new(WatchRecord::default()));
    let memory = Arc::new(Mutex::new(MemoryStore::in_memory()));
    let watch = ByzantineWatch::new(record.clone(), memory).start();
    let hooks = Hooks::new().subscribe("byzantine-watch", ByzantineWatch::kinds(), watch.recipient());
    let options = LaunchOptions { name: "watched-swarm".into(), hooks, ..LaunchOptions::default() };
    let swarm = Swarm::launch_with(spec, options).expect("an in-memory swarm launches");
    let progress = Arc::new(AtomicU64::new(0));
    swarm.run_client(ClientId(1), workload.transfers, 50, 2_000, progress).await.unwrap();
    swarm.settled_status(Duration::from_secs(5)).await;
    // Hooks hear asynchronously: give the last events a moment to arrive.
    let start = Instant::now();
    while committed_count(&record.lock().unwrap()) < count && start.elapsed() < Duration::from_secs(5) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    swarm.stop();
    let record = record.lock().unwrap().clone();
    record
}

/// What a run with an equivocating primary left behind.
pub struct ReplacementRun {
    pub record: WatchRecord,
    /// The detections the hook persisted under [`DETECTIONS_KEY`].
    pub persisted: serde_json::Value,
    /// The membership changes the operator made at the hook's request.
    pub replacements: Vec<MembershipChanged>,
    pub committed: usize,
    /// The committee's members at the end, by name.
    pub members: Vec<String>,
}

/// Seven validators, the primary (`bft-agent-1`) equivocating: honest
/// validators catch it with self-verifying evidence, the hook persists the
/// detection and requests a replacement, and the operator (here, this
/// function) removes the accused and adds a fresh validator through consensus,
/// while `count` transfers go through.
pub async fn replacement_run(count: usize) -> ReplacementRun {
    let config =
        SwarmConfig::from_toml_str("[swarm]\nmax_agents = 7\n[consensus]\nview_change_timeout_ms = 300\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 4,
        accounts: 60,
        transactions: count,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 4).unwrap();
    let record = Arc::new(Mutex::new(WatchRecord::default()));
    let memory = Arc::new(Mutex::new(MemoryStore::in_memory()));
    let (requests, mut requested) = mpsc::unbounded_channel();
    let watch = ByzantineWatch::new(record.clone(), memory.clone()).requesting_replacements(requests).start();
    let hooks = Hooks::new().subscribe("byzantine-watch", ByzantineWatch::kinds(), watch.recipient());
    let options = LaunchOptions { name: "replacing-swarm".into(), hooks, ..LaunchOptions::default() };
    let swarm = Swarm::launch_with(spec, options).expect("an in-memory swarm launches");
    swarm.inject_fault(AgentId(0), FaultType::Equivocation, 1.0, Duration::ZERO).unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let client = swarm.run_client(ClientId(1), workload.transfers, 50, 500, progress);
    let operator = async {
        let mut done = Vec::new();
        // One replacement: the accused out, a fresh validator in.
        let first = actix_rt::time::timeout(Duration::from_secs(30), requested.recv()).await;
        if let Ok(Some(accused)) = first {
            match swarm.change_membership(1, &[accused], Duration::from_secs(30)).await {
                Ok(changed) => done.push(changed),
                Err(error) => eprintln!("replacement of {accused:?} failed: {error}"),
            }
        }
        done
    };
    let (run, replacements) = tokio::join!(client, operator);
    let committed = run.map(|run| run.completions.len()).unwrap_or(0);
    let members = swarm.committee().members().iter().map(|m| m.name.clone()).collect();
    swarm.stop();
    let persisted = memory.lock().unwrap().retrieve(DETECTIONS_KEY).ok().flatten().unwrap_or_default();
    let record = record.lock().unwrap().clone();
    ReplacementRun { record, persisted, replacements, committed, members }
}

/// Transfers one validator (the first) reported committed.
pub fn committed_count(record: &WatchRecord) -> usize {
    let counts = record.events.iter().map(|event| match event {
        LifecycleEvent::TransactionCommitted { agent, count, .. } if agent.0 == 0 => *count,
        _ => 0,
    });
    counts.sum()
}

fn main() {
    let count = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let record = actix::System::new().block_on(watched_run(count));
    for event in record.events.iter().filter(|e| e.kind() != EventKind::TransactionCommitted) {
        println!("{}", event.to_json_line());
    }
    let batches = record.events.iter().filter(|e| e.kind() == EventKind::TransactionCommitted).count();
    println!("{batches} transaction-committed events, {} transfers committed", committed_count(&record));
}
