//! Launch a swarm from a config file inside your own program, submit a
//! workload, and check that every validator agrees.
//!
//! `cargo run --example embed -- config/default.toml 500`

use bftswarm::actors::{Swarm, SwarmSpec};
use bftswarm::config::SwarmConfig;
use bftswarm::ledger::{Ledger, TxOutcome};
use bftswarm::protocol::ClientId;
use bftswarm::workload::{Workload, WorkloadSpec};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "config/default.toml".into()));
    let config = SwarmConfig::load(Some(&path))?;
    let count = args.next().map(|n| n.parse()).transpose()?.unwrap_or(500);

    let workload = Workload::generate(&WorkloadSpec {
        seed: config.workload.seed,
        accounts: config.workload.accounts,
        transactions: count,
        initial_balance: config.workload.initial_balance,
        max_amount: config.workload.max_amount,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis)?;
    let spec = SwarmSpec::from_config(&config, genesis, config.workload.seed)?;

    let system = actix::System::new();
    let (run, statuses) = system.block_on(async move {
        let swarm = Swarm::launch(spec);
        let progress = Arc::new(AtomicU64::new(0));
        let window = config.client.max_concurrent_requests;
        let run = swarm.run_client(ClientId(1), workload.transfers, window, config.client.request_retry_ms, progress);
        let run = run.await;
        let statuses = swarm.settled_status(Duration::from_secs(2)).await;
        swarm.stop();
        (run, statuses)
    });
    let run = run?;

    let committed = run.completions.iter().filter(|c| c.outcome == TxOutcome::Committed).count();
    println!("{committed} of {count} transfers committed in {:?}", run.elapsed);
    for status in &statuses {
        println!("{:<14} seq {:>5}  digest {}", status.name, status.last_executed.0, status.ledger_digest.short_hex());
    }
    let agreed = statuses.windows(2).all(|w| w[0].ledger_digest == w[1].ledger_digest);
    if !agreed || committed != count {
        return Err("validators disagree or transfers are missing".into());
    }
    println!("all {} validators hold the same ledger", statuses.len());
    Ok(())
}
