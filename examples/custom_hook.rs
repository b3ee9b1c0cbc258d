//! A custom hook actor: the tutorial's `onMaliciousDetected` and
//! `onViewChange` hooks as an ordinary actix actor. It logs what it hears,
//! keeps a record of it, and keeps a short list of agents to replace.
//!
//! Register it before launch ([`Hooks::subscribe`]) to hear the launch itself
//! (`swarm-initialized`, `agent-spawned`); any actor that handles
//! [`HookEvent`] can be a hook.
//!
//! `cargo run --example custom_hook -- 200`

use actix::{Actor, Context, Handler};
use bftswarm::actors::{LaunchOptions, Swarm, SwarmSpec};
use bftswarm::config::SwarmConfig;
use bftswarm::events::{EventKind, EventKinds, LifecycleEvent};
use bftswarm::hooks::{HookEvent, Hooks};
use bftswarm::ledger::Ledger;
use bftswarm::protocol::{AgentId, ClientId};
use bftswarm::workload::{Workload, WorkloadSpec};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

impl ByzantineWatch {
    pub fn new(record: Arc<Mutex<WatchRecord>>) -> ByzantineWatch {
        ByzantineWatch { record }
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

    fn on_malicious_detected(&self, accused: AgentId, fault_type: &str, evidence: &str) {
        eprintln!("onMaliciousDetected: {accused:?} ({fault_type}): {evidence}; requesting a replacement");
        let mut record = self.record.lock().unwrap();
        if !record.to_replace.contains(&accused) {
            record.to_replace.push(accused);
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
            LifecycleEvent::MaliciousDetected { accused, fault_type, evidence, .. } => {
                self.on_malicious_detected(*accused, fault_type, evidence)
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
    let watch = ByzantineWatch::new(record.clone()).start();
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
