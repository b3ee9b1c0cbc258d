//! The actix runtime driven from code, without the CLI: a swarm of four
//! validators, each on its own thread, and one client.

use bftswarm::actors::{Swarm, SwarmSpec};
use bftswarm::config::SwarmConfig;
use bftswarm::ledger::{Ledger, TxOutcome};
use bftswarm::protocol::ClientId;
use bftswarm::workload::{Workload, WorkloadSpec};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[actix::test]
async fn n4f1_swarm_commits_300_transfers_and_every_validator_holds_the_same_ledger() {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 11,
        accounts: 50,
        transactions: 300,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 11).unwrap();
    let swarm = Swarm::launch(spec);
    let progress = Arc::new(AtomicU64::new(0));

    let run = swarm
        .run_client(ClientId(1), workload.transfers, 50, 2_000, progress.clone())
        .await
        .expect("the client completes");

    assert_eq!(run.completions.len(), 300);
    assert!(run.completions.iter().all(|c| c.outcome == TxOutcome::Committed));
    assert_eq!(progress.load(Ordering::Relaxed), 300);
    let statuses = swarm.settled_status(Duration::from_secs(5)).await;
    assert_eq!(statuses.len(), 4);
    let first = &statuses[0];
    assert!(first.last_executed.0 > 0);
    for status in &statuses {
        assert_eq!(status.last_executed, first.last_executed, "{}", status.name);
        assert_eq!(status.ledger_digest, first.ledger_digest, "{}", status.name);
        assert_eq!(status.balance_sum, status.total_supply as u128);
        assert_eq!(status.stats.txs_committed, 300);
        assert!(status.inbound_rejected.is_empty(), "{:?}", status.inbound_rejected);
    }
    assert_eq!(statuses.iter().filter(|s| s.is_primary).count(), 1);
    let routing = swarm.routing_stats().await.unwrap();
    // Late replies to the finished client are undeliverable; none is lost to a full mailbox.
    assert_eq!(routing.dropped_mailbox_full, 0);
    assert_eq!(routing.misaddressed, 0);
    assert!(routing.delivered > 0);
    swarm.stop();
}

/// The operator's forced view change on a running swarm: every validator moves
/// to view 1 under a new primary, and transfers keep committing afterwards.
#[actix::test]
async fn n4f1_forced_view_change_installs_view_1_and_the_swarm_keeps_committing() {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 12,
        accounts: 50,
        transactions: 400,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let swarm = Swarm::launch(SwarmSpec::from_config(&config, genesis, 12).unwrap());
    let (before, after) = workload.transfers.split_at(200);
    let progress = Arc::new(AtomicU64::new(0));
    let first = swarm.run_client(ClientId(1), before.to_vec(), 50, 2_000, progress.clone()).await.unwrap();
    assert_eq!(first.completions.len(), 200);

    swarm.force_view_change();
    let second = swarm.run_client(ClientId(2), after.to_vec(), 50, 2_000, progress).await.unwrap();
    assert_eq!(second.completions.len(), 200);
    assert!(second.completions.iter().all(|c| c.outcome == TxOutcome::Committed));

    let statuses = swarm.settled_status(Duration::from_secs(5)).await;
    for status in &statuses {
        assert_eq!(status.view.0, 1, "{} is in view {}", status.name, status.view.0);
        assert_eq!(status.ledger_digest, statuses[0].ledger_digest, "{}", status.name);
        assert_eq!(status.stats.txs_committed, 400, "{}", status.name);
    }
    let primaries: Vec<&str> = statuses.iter().filter(|s| s.is_primary).map(|s| s.name.as_str()).collect();
    assert_eq!(primaries, ["bft-agent-2"]);
    swarm.stop();
}

/// Membership epochs on a running swarm under load: one validator added, then
/// one removed (the primary of view 0). Both changes go through the log, the
/// new validator catches up by state transfer, every transfer commits once,
/// and the removed validator is no longer routed to.
#[actix::test]
async fn a_validator_is_added_then_another_removed_mid_run_and_every_transfer_commits() {
    let config =
        SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n[consensus]\ncheckpoint_interval = 10\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 13,
        accounts: 60,
        transactions: 3_000,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let swarm = Swarm::launch(SwarmSpec::from_config(&config, genesis, 13).unwrap());
    let progress = Arc::new(AtomicU64::new(0));
    let client = swarm.run_client(ClientId(1), workload.transfers, 20, 500, progress.clone());
    let operator = async {
        while progress.load(Ordering::Relaxed) < 300 {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let added = swarm.change_membership(1, &[], Duration::from_secs(20)).await.expect("the addition takes effect");
        let removed = swarm
            .change_membership(0, &[bftswarm::protocol::AgentId(0)], Duration::from_secs(20))
            .await
            .expect("the removal takes effect");
        (added, removed)
    };
    // Both on this task: the operator changes the membership while the client runs.
    let (run, (added, removed)) = tokio::join!(client, operator);
    let run = run.expect("the client completes");
    assert_eq!(run.completions.len(), 3_000);
    assert!(run.completions.iter().all(|c| c.outcome == TxOutcome::Committed));
    assert_eq!((added.epoch, added.validators, added.added.len()), (1, 5, 1));
    assert_eq!((removed.epoch, removed.validators, removed.quorum), (2, 4, 3));
    assert_eq!(removed.removed, ["bft-agent-1"]);

    let statuses = swarm.settled_status(Duration::from_secs(10)).await;
    assert_eq!(statuses.len(), 4, "the removed validator is gone from the swarm");
    assert!(statuses.iter().all(|s| s.id != bftswarm::protocol::AgentId(0)));
    let newcomer = statuses.iter().find(|s| s.name == "bft-agent-5").expect("the added validator runs");
    assert!(newcomer.stats.snapshots_installed > 0, "it caught up by state transfer");
    for status in &statuses {
        assert_eq!(status.epoch, bftswarm::protocol::Epoch(2), "{}", status.name);
        assert_eq!(status.ledger_digest, newcomer.ledger_digest, "{}", status.name);
        assert_eq!(status.last_executed, newcomer.last_executed, "{}", status.name);
        assert_eq!(status.balance_sum, status.total_supply as u128);
    }
    swarm.stop();
}

/// Collects the lifecycle events a hook actor is sent.
struct EventLog(Arc<std::sync::Mutex<Vec<bftswarm::events::LifecycleEvent>>>);

impl actix::Actor for EventLog {
    type Context = actix::Context<Self>;
}

impl actix::Handler<bftswarm::hooks::HookEvent> for EventLog {
    type Result = ();

    fn handle(&mut self, event: bftswarm::hooks::HookEvent, _: &mut actix::Context<Self>) {
        self.0.lock().unwrap().push((*event.0).clone());
    }
}

/// A validator corrupting every signature is convicted on f+1 accusations;
/// hooks hear `malicious-detected` then `agent-quarantined`, and a fresh
/// validator replaces it through a membership epoch while transfers commit.
#[actix::test]
async fn a_convicted_validator_is_quarantined_announced_to_hooks_and_replaced() {
    use actix::Actor;
    use bftswarm::actors::{LaunchOptions, QuarantinePolicy};
    use bftswarm::events::{EventKind, EventKinds, LifecycleEvent};
    use bftswarm::faults::FaultType;
    use bftswarm::protocol::AgentId;

    let config =
        SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n[consensus]\ncheckpoint_interval = 10\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 5,
        accounts: 50,
        transactions: 400,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 5).unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kinds: EventKinds = [EventKind::MaliciousDetected, EventKind::AgentQuarantined].into_iter().collect();
    let hooks = bftswarm::hooks::Hooks::new().subscribe("log", kinds, EventLog(events.clone()).start().recipient());
    let quarantine = QuarantinePolicy { enforce: true, ..QuarantinePolicy::default() };
    let swarm = Swarm::launch_with(spec, LaunchOptions { hooks, quarantine, ..LaunchOptions::default() }).unwrap();
    swarm.inject_fault(AgentId(3), FaultType::SignatureCorruption, 1.0, Duration::ZERO).unwrap();

    let run = swarm.run_client(ClientId(1), workload.transfers, 20, 500, Arc::new(AtomicU64::new(0))).await.unwrap();
    assert_eq!(run.completions.len(), 400);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = swarm.detection_log().await.unwrap();
        if log.first().is_some_and(|record| record.replaced_by.is_some()) || std::time::Instant::now() > deadline {
            break log;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].agent_id, log[0].fault_type.as_str()), (AgentId(3), "signature-corruption"));
    assert_eq!(log[0].replaced_by.as_deref(), Some("bft-agent-5"), "{log:?}");
    assert!(!swarm.committee().contains(AgentId(3)) && swarm.committee().n() == 4);
    let events = events.lock().unwrap().clone();
    let detected = events
        .iter()
        .position(|e| matches!(e, LifecycleEvent::MaliciousDetected { accused, .. } if *accused == AgentId(3)));
    let quarantined =
        events.iter().position(|e| matches!(e, LifecycleEvent::AgentQuarantined { agent, .. } if *agent == AgentId(3)));
    assert!(detected.is_some() && detected < quarantined, "{events:?}");
    swarm.stop();
}
