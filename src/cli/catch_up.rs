//! `bftswarm bench --catch-up N`: how fast a validator that is N sequence
//! numbers behind catches up. A swarm of four commits N batches; then a fifth
//! validator joins through a membership change, empty, and must reach the
//! others by state transfer (a snapshot proven by a quorum of checkpoint
//! signatures) and the log suffix. The figure is the transfers its state
//! covers divided by the time from its start to reaching the others.

use super::run::workload_spec;
use super::CliError;
use crate::actors::{Swarm, SwarmSpec};
use crate::config::SwarmConfig;
use crate::ledger::Ledger;
use crate::protocol::ClientId;
use crate::workload::Workload;
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Transfers per batch: small batches make many sequence numbers.
const BATCH: usize = 10;

#[derive(Debug, Serialize)]
pub struct CatchUpReport {
    /// Sequence numbers the new validator was behind when it started.
    pub seqs_behind: u64,
    /// Transfers executed in those sequence numbers (what its state covers).
    pub transfers_behind: u64,
    pub accounts: usize,
    /// From the new validator's start to it having executed as far as the others.
    pub catch_up_ms: f64,
    pub replayed_tx_per_s: f64,
    pub snapshots_installed: u64,
    /// Batches it executed itself after the snapshot (the log suffix).
    pub batches_replayed: u64,
    pub retransmit_interval_ms: u64,
    pub ledgers_match: bool,
}

pub fn measure(seqs: u64, config: Option<&std::path::Path>) -> Result<CatchUpReport, CliError> {
    let mut cfg = SwarmConfig::load(config)?;
    cfg.swarm.max_agents = 4;
    cfg.swarm.max_failures = None;
    cfg.consensus.max_batch_size = BATCH;
    cfg.consensus.retransmit_interval_ms = 20;
    cfg.workload.transactions = (seqs as usize).saturating_mul(BATCH);
    cfg.workload.overdraft_ratio = 0.0;
    cfg.client.max_concurrent_requests = 8 * BATCH;
    // Each sequence number is a batch of transfers generated up front: bounded like any workload.
    cfg.validate().map_err(|e| CliError::Usage(format!("--catch-up {seqs} makes too many transfers ({e})")))?;
    let workload = Workload::generate(&workload_spec(&cfg));
    let genesis = Ledger::with_genesis(&workload.genesis)
        .map_err(|error| CliError::Usage(format!("the workload's genesis is invalid: {error}")))?;
    let spec = SwarmSpec::from_config(&cfg, genesis, cfg.workload.seed)?;
    let accounts = cfg.workload.accounts;
    let retransmit_interval_ms = cfg.consensus.retransmit_interval_ms;
    let system = actix::System::new();
    system.block_on(async move {
        let swarm = Swarm::launch(spec);
        let progress = Arc::new(AtomicU64::new(0));
        swarm.run_client(ClientId(0), workload.transfers, 8 * BATCH, 2_000, progress).await?;
        let before = swarm.settled_status(Duration::from_secs(10)).await;
        let target = before.iter().map(|s| s.last_executed).max().unwrap_or_default();
        let transfers_behind = before.iter().map(|s| s.stats.txs_committed + s.stats.txs_rejected).max().unwrap_or(0);
        let started = Instant::now();
        let change = swarm.change_membership(1, &[], Duration::from_secs(60)).await?;
        let name = change.added.first().cloned().unwrap_or_default();
        loop {
            let statuses = swarm.status().await;
            let newcomer = statuses.iter().find(|s| s.name == name);
            let reference = statuses.iter().filter(|s| s.name != name).map(|s| s.last_executed).max();
            if let (Some(newcomer), Some(reference)) = (newcomer, reference) {
                if newcomer.last_executed >= target && newcomer.last_executed >= reference {
                    let elapsed = started.elapsed().as_secs_f64();
                    let digest = statuses.iter().find(|s| s.name != name).map(|s| s.ledger_digest);
                    let report = CatchUpReport {
                        seqs_behind: target.0,
                        transfers_behind,
                        accounts,
                        catch_up_ms: (elapsed * 1e4).round() / 10.0,
                        replayed_tx_per_s: (transfers_behind as f64 / elapsed).round(),
                        snapshots_installed: newcomer.stats.snapshots_installed,
                        batches_replayed: newcomer.stats.batches_executed,
                        retransmit_interval_ms,
                        ledgers_match: digest == Some(newcomer.ledger_digest),
                    };
                    swarm.stop();
                    return Ok(report);
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                swarm.stop();
                return Err(CliError::Usage(format!("{name} did not catch up within 120 s")));
            }
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
    })
}
