//! `bftswarm durability-probe` (hidden): the child process of the crash test.
//! It launches a durable swarm from `--home`, submits round `--round` of a
//! fixed workload in small client runs and prints one `ack` line per transfer
//! as soon as f+1 validators answered it, so that a parent that kills it with
//! SIGKILL at any moment knows what was acknowledged. With `--settle` it then
//! waits until every validator agrees and prints one `validator` line each.
//!
//! Round r spends from its own accounts only (nonces from 0), so a round never
//! depends on what a killed round managed to commit.

use super::run::workload_spec;
use super::CliError;
use crate::actors::{LaunchOptions, Swarm, SwarmSpec};
use crate::app::{SignedTx, Tx};
use crate::config::SwarmConfig;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger, TxId, TxOutcome};
use crate::protocol::ClientId;
use crate::wal::WalOptions;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Rounds the probe's genesis has accounts for.
pub const ROUNDS: usize = 64;
/// Accounts each round spends from.
pub const ACCOUNTS_PER_ROUND: usize = 8;
const INITIAL_BALANCE: u64 = 1_000_000;
/// Transfers per client run: an `ack` line is printed when a run returns.
const CHUNK: usize = 8;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[arg(long, env = "BFTSWARM_HOME", value_name = "DIR")]
    pub home: PathBuf,
    /// Which round of the workload to submit (its accounts are used by no other round).
    #[arg(long)]
    pub round: usize,
    #[arg(long, default_value_t = 400)]
    pub transfers: usize,
    /// After submitting, wait until every validator agrees and print their state.
    #[arg(long)]
    pub settle: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The probe's accounts and genesis: the same in every process.
pub struct ProbeWorkload {
    pub accounts: Vec<Keypair>,
    pub genesis: Ledger,
}

impl ProbeWorkload {
    pub fn new() -> Result<ProbeWorkload, CliError> {
        let accounts: Vec<Keypair> = (0..ROUNDS * ACCOUNTS_PER_ROUND)
            .map(|i| Keypair::from_seed(*blake3::hash(format!("probe-account-{i}").as_bytes()).as_bytes()))
            .collect();
        let balances: Vec<_> = accounts.iter().map(|k| (AccountId(k.public_key()), INITIAL_BALANCE)).collect();
        let genesis = Ledger::with_genesis(&balances).map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(ProbeWorkload { accounts, genesis })
    }

    /// Transfer `j` of `round`: from the round's account j mod 8, with nonce j / 8.
    pub fn transfer(&self, round: usize, j: usize) -> (usize, SignedTx) {
        let from = round * ACCOUNTS_PER_ROUND + j % ACCOUNTS_PER_ROUND;
        let to = round * ACCOUNTS_PER_ROUND + (j + 1) % ACCOUNTS_PER_ROUND;
        let id: [u8; 16] =
            blake3::hash(format!("probe-{round}-{j}").as_bytes()).as_bytes()[..16].try_into().unwrap_or_default();
        let transfer = Tx::transfer(
            TxId(id),
            AccountId(self.accounts[from].public_key()),
            AccountId(self.accounts[to].public_key()),
            1 + (j % 7) as u64,
            (j / ACCOUNTS_PER_ROUND) as u64,
        );
        (from, transfer.sign(&self.accounts[from]))
    }
}

pub fn execute(args: &ProbeArgs) -> Result<(), CliError> {
    if args.round >= ROUNDS {
        return Err(CliError::Usage(format!("--round must be below {ROUNDS}")));
    }
    let cfg = SwarmConfig::load(args.config.as_deref())?;
    let workload = ProbeWorkload::new()?;
    let spec = SwarmSpec::from_config(&cfg, workload.genesis.clone(), workload_spec(&cfg).seed)?;
    let transfers: Vec<(usize, SignedTx)> = (0..args.transfers).map(|j| workload.transfer(args.round, j)).collect();
    let wal = WalOptions::under_home(&args.home, cfg.storage.fsync);
    let (window, retry_ms) = (CHUNK, cfg.client.request_retry_ms);
    let system = actix::System::new();
    system.block_on(async move {
        let options = LaunchOptions { name: cfg.swarm.name.clone(), wal: Some(wal), ..LaunchOptions::default() };
        let swarm = Swarm::launch_with(spec, options)?;
        for status in swarm.status().await {
            let recovery = serde_json::to_string(&status.recovery).unwrap_or_default();
            print_line(&format!("recovered {} {recovery}", status.name))?;
        }
        let index: HashMap<TxId, (usize, u64)> =
            transfers.iter().map(|(from, tx)| (tx.id(), (*from, tx.nonce()))).collect();
        for (chunk_no, chunk) in transfers.chunks(CHUNK).enumerate() {
            let client = ClientId((args.round * 100_000 + chunk_no) as u32);
            let chunk: Vec<SignedTx> = chunk.iter().map(|(_, tx)| tx.clone()).collect();
            let run = swarm.run_client(client, chunk, window, retry_ms, Arc::new(AtomicU64::new(0))).await?;
            for completion in run.completions {
                let (from, nonce) = index.get(&completion.tx_id).copied().unwrap_or_default();
                let outcome = if completion.outcome == TxOutcome::Committed { "committed" } else { "rejected" };
                print_line(&format!("ack {from} {nonce} {outcome}"))?;
            }
        }
        if args.settle {
            for status in swarm.settled_status(Duration::from_secs(30)).await {
                print_line(&format!(
                    "validator {} {} {} {}",
                    status.name, status.last_executed.0, status.ledger_digest, status.stats.evidence_found
                ))?;
            }
        }
        swarm.stop();
        Ok(())
    })
}

fn print_line(line: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}
