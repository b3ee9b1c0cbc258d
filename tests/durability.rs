//! Durable validators in the actix runtime: a validator restarted alone
//! rebuilds its replica from its write-ahead log while the others go on; a
//! whole swarm launched again from its home holds what it committed; a
//! damaged log is reported and its validator catches up from its peers.

use bftswarm::actors::{LaunchOptions, Swarm, SwarmSpec, ValidatorStatus};
use bftswarm::app::SignedTx;
use bftswarm::config::SwarmConfig;
use bftswarm::ledger::{Ledger, TxOutcome};
use bftswarm::protocol::{AgentId, ClientId, Seq};
use bftswarm::wal::{Recovery, WalOptions};
use bftswarm::workload::{Workload, WorkloadSpec};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setup(transactions: usize) -> (SwarmSpec, Vec<SignedTx>) {
    let config =
        SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n[consensus]\ncheckpoint_interval = 10\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 21,
        accounts: 40,
        transactions,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    (SwarmSpec::from_config(&config, genesis, 21).unwrap(), workload.transfers)
}

fn launch(spec: &SwarmSpec, home: &Path) -> Swarm {
    let options = LaunchOptions { wal: Some(WalOptions::under_home(home, true)), ..LaunchOptions::default() };
    Swarm::launch_with(spec.clone(), options).expect("the logs open")
}

async fn commit_all(swarm: &Swarm, client: u32, transfers: &[SignedTx]) {
    let progress = Arc::new(AtomicU64::new(0));
    let run = swarm.run_client(ClientId(client), transfers.to_vec(), 20, 500, progress).await.unwrap();
    assert_eq!(run.completions.len(), transfers.len());
    assert!(run.completions.iter().all(|c| c.outcome == TxOutcome::Committed));
}

/// Waits until every validator has executed `at_least` and agrees on the ledger.
async fn converged(swarm: &Swarm, at_least: Seq) -> Vec<ValidatorStatus> {
    let start = Instant::now();
    loop {
        let statuses = swarm.status().await;
        let first = &statuses[0];
        let agree = statuses.iter().all(|s| s.ledger_digest == first.ledger_digest && s.last_executed >= at_least);
        if agree || start.elapsed() > Duration::from_secs(20) {
            return statuses;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until validator `id`'s committed log holds everything it executed
/// (a restart is a crash: it loses what was recorded and not yet committed),
/// and returns how far that is.
async fn logged(swarm: &Swarm, id: AgentId) -> Seq {
    let start = Instant::now();
    loop {
        let statuses = swarm.status().await;
        let status = statuses.iter().find(|s| s.id == id).expect("the validator runs");
        if status.logged_executed == Some(status.last_executed) || start.elapsed() > Duration::from_secs(20) {
            return status.logged_executed.expect("a durable validator says what its log holds");
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

fn assert_agree(statuses: &[ValidatorStatus]) {
    for status in statuses {
        assert_eq!(status.ledger_digest, statuses[0].ledger_digest, "{} disagrees", status.name);
        assert_eq!(status.last_executed, statuses[0].last_executed, "{} disagrees", status.name);
        assert_eq!(status.balance_sum, status.total_supply as u128);
        assert_eq!(status.stats.evidence_found, 0, "{} saw equivocation", status.name);
    }
}

#[actix::test]
async fn n4f1_validator_restarted_alone_rebuilds_from_its_log_while_the_others_go_on() {
    let home = tempfile::tempdir().unwrap();
    let (spec, transfers) = setup(600);
    let swarm = launch(&spec, home.path());
    commit_all(&swarm, 1, &transfers[..300]).await;
    converged(&swarm, Seq(1)).await;
    let executed = logged(&swarm, AgentId(2)).await;
    assert!(executed.0 > 10, "executed only {executed:?}");

    swarm.restart(AgentId(2)).unwrap();
    commit_all(&swarm, 2, &transfers[300..]).await;
    let after = converged(&swarm, Seq(executed.0 + 1)).await;
    assert_agree(&after);
    match &after[2].recovery {
        Some(Recovery::Wal { last_executed, stable_checkpoint, .. }) => {
            assert!(*last_executed >= executed, "rebuilt at {last_executed:?}, its log held {executed:?}");
            assert!(stable_checkpoint.0 >= 10, "{stable_checkpoint:?}");
        }
        other => panic!("validator 3 did not rebuild from its log: {other:?}"),
    }
    assert_eq!(after[2].stats.snapshots_installed, 0, "it caught up by state transfer, not from its log");
    assert!(after.iter().all(|s| s.stats.txs_committed >= 300));
    swarm.stop();
}

#[actix::test]
async fn n4f1_swarm_launched_again_from_its_home_holds_every_committed_transfer() {
    let home = tempfile::tempdir().unwrap();
    let (spec, transfers) = setup(400);
    let swarm = launch(&spec, home.path());
    commit_all(&swarm, 1, &transfers[..200]).await;
    let first = converged(&swarm, Seq(1)).await;
    assert!(first.iter().all(|s| s.recovery == Some(Recovery::Fresh)));
    swarm.stop();

    let swarm = launch(&spec, home.path());
    let again = swarm.status().await;
    for (before, after) in first.iter().zip(&again) {
        assert_eq!(after.ledger_digest, before.ledger_digest, "{}", after.name);
        assert_eq!(after.last_executed, before.last_executed, "{}", after.name);
        assert_eq!(after.view, before.view, "{}", after.name);
        assert!(matches!(after.recovery, Some(Recovery::Wal { .. })), "{:?}", after.recovery);
    }
    // The second half only commits on top of the first: its nonces follow.
    commit_all(&swarm, 2, &transfers[200..]).await;
    assert_agree(&converged(&swarm, Seq(first[0].last_executed.0 + 1)).await);
    swarm.stop();
}

#[actix::test]
async fn n4f1_recovery_damaged_log_is_reported_and_its_validator_catches_up_from_peers() {
    let home = tempfile::tempdir().unwrap();
    let (spec, transfers) = setup(600);
    let swarm = launch(&spec, home.path());
    commit_all(&swarm, 1, &transfers[..300]).await;
    swarm.stop();

    let path = WalOptions::under_home(home.path(), true).path_of("bft-agent-4");
    let mut bytes = std::fs::read(&path).unwrap();
    let damaged = bytes.len() / 2;
    bytes.truncate(damaged);
    std::fs::write(&path, &bytes).unwrap();

    let swarm = launch(&spec, home.path());
    let status = swarm.status().await;
    let Some(Recovery::Discarded { error, moved_to }) = &status[3].recovery else {
        panic!("the damaged log was used: {:?}", status[3].recovery);
    };
    assert!(error.contains("bft-agent-4"), "the error names the log: {error}");
    assert!(moved_to.exists(), "the damaged log is kept for inspection at {moved_to:?}");
    // Started from genesis (Discarded); a restarted validator asks its peers at once, so it may have caught up already.
    assert!(status[3].last_executed <= status[0].last_executed);
    commit_all(&swarm, 2, &transfers[300..]).await;
    let after = converged(&swarm, status[0].last_executed).await;
    assert_agree(&after);
    assert!(after[3].stats.snapshots_installed > 0, "it caught up by state transfer");
    swarm.stop();
}

#[actix::test]
async fn n4f1_validator_added_by_a_membership_change_restarted_rebuilds_from_its_log() {
    let home = tempfile::tempdir().unwrap();
    let (spec, transfers) = setup(600);
    let swarm = launch(&spec, home.path());
    commit_all(&swarm, 1, &transfers[..200]).await;
    let changed = swarm.change_membership(1, &[], Duration::from_secs(30)).await.unwrap();
    assert_eq!(changed.added, ["bft-agent-5"]);
    let joiner = AgentId(4);
    assert!(WalOptions::under_home(home.path(), true).path_of("bft-agent-5").exists(), "the joiner keeps a log");
    commit_all(&swarm, 2, &transfers[200..400]).await;
    assert_agree(&converged(&swarm, Seq(1)).await);
    let executed = logged(&swarm, joiner).await;

    swarm.restart(joiner).unwrap();
    commit_all(&swarm, 3, &transfers[400..]).await;
    let after = converged(&swarm, Seq(executed.0 + 1)).await;
    assert_agree(&after);
    assert_eq!(after.len(), 5);
    let rebuilt = after.iter().find(|s| s.id == joiner).unwrap();
    assert!(rebuilt.member && rebuilt.epoch.0 == 1, "{} runs in epoch {:?}", rebuilt.name, rebuilt.epoch);
    match &rebuilt.recovery {
        Some(Recovery::Wal { last_executed, .. }) => {
            assert!(*last_executed >= executed, "rebuilt at {last_executed:?}, its log held {executed:?}")
        }
        other => panic!("the joiner did not rebuild from its log: {other:?}"),
    }
    swarm.stop();
}
