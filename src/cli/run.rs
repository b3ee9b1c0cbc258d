//! `bftswarm run`: a whole scenario in the foreground. Load the config, sign
//! the workload (before any clock starts), launch the swarm, submit through
//! one client, wait for the validators to settle, report, and fail when the
//! swarm's integrity is violated.

use super::report::{RunFacts, RunReport};
use super::CliError;
use crate::actors::{
    ClientRun, DetectionRecord, LaunchOptions, MembershipChanged, QuarantinePolicy, Swarm, SwarmSpec, ValidatorStatus,
};
use crate::agents::AgentDefinition;
use crate::app::SignedTx;
use crate::config::{SwarmConfig, MAX_TRANSACTIONS};
use crate::faults::FaultType;
use crate::hooks::Hooks;
use crate::ledger::Ledger;
use crate::protocol::AgentId;
use crate::protocol::ClientId;
use crate::store::{MemoryStore, RedbOptions};
use crate::wal::WalOptions;
use crate::workload::{Workload, WorkloadSpec};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Swarm config file (TOML); keys it omits come from config/default.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of transfers to submit (overrides workload.transactions).
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Seed of the workload (overrides workload.seed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The swarm's home: with `storage.wal = true`, validators keep their
    /// write-ahead logs in DIR/wal and a run from the same home recovers.
    #[arg(long, env = "BFTSWARM_HOME", default_value = ".bftswarm", value_name = "DIR")]
    pub home: PathBuf,
}

/// How long validators may take to catch up with the f+1 that answered the client.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

pub fn execute(args: &RunArgs) -> Result<(), CliError> {
    let mut cfg = SwarmConfig::load(args.config.as_deref())?;
    if let Some(count) = args.count {
        cfg.workload.transactions = transfers_to_submit("--count", count)?;
    }
    if let Some(seed) = args.seed {
        cfg.workload.seed = seed;
    }
    let workload = Workload::generate(&workload_spec(&cfg));
    let genesis = Ledger::with_genesis(&workload.genesis).map_err(|error| {
        CliError::Usage(format!(
            "the workload's genesis is invalid: {error}; lower workload.accounts or workload.initial_balance"
        ))
    })?;
    let spec = SwarmSpec::from_config(&cfg, genesis, cfg.workload.seed)?;
    let facts = RunFacts {
        swarm_name: cfg.swarm.name.clone(),
        validators: cfg.validators(),
        max_failures: cfg.max_failures(),
        quorum: cfg.quorum(),
        transfers_submitted: workload.transfers.len(),
        expected_overdrafts: workload.overdrafts,
        only_overdrafts_invalid: every_honest_transfer_is_funded(&cfg),
    };
    let show_progress = !args.json && std::io::stdout().is_terminal();
    let wal = wal_options(&cfg, &args.home);
    let (run, statuses, membership_changes, detections) =
        drive(spec, workload.transfers, &cfg, &args.home, wal, show_progress)?;
    // After membership changes, the committee that ran last is the one to judge.
    let facts = match membership_changes.last() {
        Some(last) => {
            RunFacts { validators: last.validators, max_failures: last.max_failures, quorum: last.quorum, ..facts }
        }
        None => facts,
    };
    let mut report = RunReport::build(&run, &statuses, &facts);
    report.membership_changes = membership_changes;
    report.add_detections(detections, &injected_agents(&cfg));
    match print(&report, args.json) {
        // A reader that stopped early (`| head`) is not a failure of the run.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result?,
    }
    match report.system_integrity.strip_prefix("violated: ") {
        Some(reason) => Err(CliError::Integrity(reason.to_string())),
        None => Ok(()),
    }
}

fn print(report: &RunReport, json: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.to_text())?;
    }
    stdout.flush()
}

/// The validators' logs under `home`, when the config asks for them.
pub(crate) fn wal_options(cfg: &SwarmConfig, home: &Path) -> Option<WalOptions> {
    cfg.storage.wal.then(|| WalOptions::under_home(home, cfg.storage.fsync))
}

pub(crate) fn workload_spec(cfg: &SwarmConfig) -> WorkloadSpec {
    let workload = &cfg.workload;
    WorkloadSpec {
        seed: workload.seed,
        accounts: workload.accounts,
        transactions: workload.transactions,
        initial_balance: workload.initial_balance,
        max_amount: workload.max_amount,
        overdraft_ratio: workload.overdraft_ratio,
    }
}

/// `count` transfers asked for on the command line by `flag`, within
/// [`MAX_TRANSACTIONS`]: they are generated and signed before the first is submitted.
pub fn transfers_to_submit(flag: &str, count: usize) -> Result<usize, CliError> {
    if !(1..=MAX_TRANSACTIONS).contains(&count) {
        return Err(CliError::Usage(format!(
            "{flag} {count} is out of range; submit between 1 and {MAX_TRANSACTIONS} transfers (they are generated up front)"
        )));
    }
    Ok(count)
}

/// True when no account can spend more than its genesis balance on transfers
/// that are not overdrafts (it sends at most ceil(transactions / accounts) of
/// them), so every rejection must be an overdraft.
fn every_honest_transfer_is_funded(cfg: &SwarmConfig) -> bool {
    let workload = &cfg.workload;
    let per_account = workload.transactions.div_ceil(workload.accounts.max(2)) as u128;
    per_account * workload.max_amount as u128 <= workload.initial_balance as u128
}

/// Runs the swarm on an actix System and returns what the client saw and the
/// validators' settled statuses.
pub(crate) fn drive(
    spec: SwarmSpec,
    transfers: Vec<SignedTx>,
    cfg: &SwarmConfig,
    home: &Path,
    wal: Option<WalOptions>,
    show_progress: bool,
) -> Result<DriveResult, CliError> {
    let memory = detection_memory(cfg, home);
    // Only a swarm launched again from its logs is the one whose convictions the store holds.
    let resume = wal.as_ref().is_some_and(|wal| has_logs(&wal.dir));
    drive_with(spec, transfers, cfg, wal, show_progress, |options| {
        options.quarantine.memory = memory;
        options.quarantine.resume = resume;
        options.hooks = std::mem::take(&mut options.hooks).home(home);
    })
}

/// Whether `dir` holds a validator's write-ahead log (`*.redb`).
fn has_logs(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.filter_map(Result::ok).any(|entry| entry.path().extension().is_some_and(|ext| ext == "redb"))
}

/// The memory store under `home` where detections are written, for runs that
/// inject faults or keep logs. A store held by another process (a daemon on
/// the same home) is skipped with a warning: the run does not need it.
fn detection_memory(cfg: &SwarmConfig, home: &Path) -> Option<Arc<Mutex<MemoryStore>>> {
    if cfg.faults.is_empty() && !cfg.storage.wal {
        return None;
    }
    let opened = std::fs::create_dir_all(home)
        .map_err(|error| error.to_string())
        .and_then(|()| MemoryStore::open(home, RedbOptions::default()).map_err(|error| error.to_string()));
    match opened {
        Ok(memory) => Some(Arc::new(Mutex::new(memory))),
        Err(error) => {
            tracing::warn!(%error, home = %home.display(), "detections are not written to the memory store");
            None
        }
    }
}

/// The agents the config makes Byzantine: convicting anyone else is a false positive.
pub(crate) fn injected_agents(cfg: &SwarmConfig) -> Vec<String> {
    cfg.faults.iter().map(|fault| fault.agent.clone()).collect()
}

/// [`drive`], with the launch options adjusted by `adjust` (called inside the
/// actix System, so it may start hook actors).
pub(crate) fn drive_with(
    spec: SwarmSpec,
    transfers: Vec<SignedTx>,
    cfg: &SwarmConfig,
    wal: Option<WalOptions>,
    show_progress: bool,
    adjust: impl FnOnce(&mut LaunchOptions),
) -> Result<DriveResult, CliError> {
    let total = transfers.len();
    let window = cfg.client.max_concurrent_requests;
    let retry_ms = cfg.client.request_retry_ms;
    let stall_limit = cfg.stall_limit();
    let hooks = Hooks::new().commands(&cfg.hooks).map_err(|error| CliError::Usage(error.to_string()))?;
    let (name, validator_mailbox) = (cfg.swarm.name.clone(), validator_mailbox()?);
    let faults = configured_faults(cfg)?;
    let membership = configured_membership(cfg);
    let quarantine = quarantine_policy(cfg);
    let system = actix::System::new();
    system.block_on(async move {
        let mut options = LaunchOptions { name, hooks, validator_mailbox, wal, quarantine, ..LaunchOptions::default() };
        adjust(&mut options);
        let swarm = Swarm::launch_with(spec, options)?;
        for (agent, fault_type, probability, after) in faults {
            swarm.inject_fault(agent, fault_type, probability, after)?;
        }
        // A veto (or a failing pre-task command) ends the run before any transfer is sent.
        swarm.pre_task("run", &format!("submit {total} transfers"), total).await?;
        let progress = Arc::new(AtomicU64::new(0));
        let display = show_progress.then(|| ProgressDisplay::start(progress.clone(), total));
        let client =
            swarm.run_client_until_stalled(ClientId(0), transfers, (window, retry_ms), progress.clone(), stall_limit);
        let operator = change_membership(&swarm, &membership, &progress);
        // Both on this thread: the operator changes the membership while the client runs.
        let (run, membership_changes) = tokio::join!(client, operator);
        let run = stalled_as_cli_error(run);
        let membership_changes = membership_changes?;
        if let Some(display) = display {
            display.finish();
        }
        if let Ok(Ok(run)) = &run {
            swarm.post_task("run", run).await?;
        }
        let result = match run {
            Ok(Ok(run)) => {
                let detections = replacements_done(&swarm, MEMBERSHIP_WAIT).await;
                Ok((run, swarm.settled_status(SETTLE_WAIT).await, membership_changes, detections))
            }
            Ok(Err(error)) => Err(error.into()),
            Err(mut stalled) => {
                if let CliError::Stalled { executed, .. } = &mut stalled {
                    let seqs: Vec<String> =
                        swarm.status().await.iter().map(|s| s.last_executed.0.to_string()).collect();
                    *executed = seqs.join(", ");
                }
                Err(stalled)
            }
        };
        if let Ok(routing) = swarm.routing_stats().await {
            tracing::debug!(?routing, "supervisor counters");
        }
        swarm.stop();
        result
    })
}

/// What the client saw, the validators' settled statuses, the membership
/// changes made and the detection log.
pub(crate) type DriveResult = (ClientRun, Vec<ValidatorStatus>, Vec<MembershipChanged>, Vec<DetectionRecord>);

/// What `[detection]` makes of a conviction (the detection log is not stored).
pub(crate) fn quarantine_policy(cfg: &SwarmConfig) -> QuarantinePolicy {
    QuarantinePolicy {
        duration: Duration::from_millis(cfg.detection.quarantine_duration_ms),
        enforce: cfg.detection.malicious_detection,
        max_wait: MEMBERSHIP_WAIT,
        memory: None,
        resume: false,
    }
}

/// The detection log once every quarantined agent has been replaced (or `max_wait` passed).
pub(crate) async fn replacements_done(swarm: &Swarm, max_wait: Duration) -> Vec<DetectionRecord> {
    let started = Instant::now();
    loop {
        let log = swarm.detection_log().await.unwrap_or_default();
        let pending = log.iter().any(|record| record.action == "quarantined" && record.replaced_by.is_none());
        if !pending || started.elapsed() >= max_wait {
            return log;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long one membership change may take to take effect.
pub(crate) const MEMBERSHIP_WAIT: Duration = Duration::from_secs(30);

/// One `[[membership]]` entry, resolved: after how many transfers, how many to add, whom to remove.
struct PlannedChange {
    after_transfers: usize,
    add: usize,
    remove: Vec<String>,
}

fn configured_membership(cfg: &SwarmConfig) -> Vec<PlannedChange> {
    let entries = cfg.membership.iter();
    entries
        .map(|e| PlannedChange { after_transfers: e.after_transfers, add: e.add, remove: e.remove.clone() })
        .collect()
}

/// Makes the planned changes in order, each once the client completed enough transfers.
async fn change_membership(
    swarm: &Swarm,
    plan: &[PlannedChange],
    progress: &AtomicU64,
) -> Result<Vec<MembershipChanged>, CliError> {
    let mut done = Vec::with_capacity(plan.len());
    for change in plan {
        let remove = when_due(swarm, progress, change.after_transfers, &change.remove).await?;
        done.push(swarm.change_membership(change.add, &remove, MEMBERSHIP_WAIT).await?);
    }
    Ok(done)
}

/// Waits until `after_transfers` transfers completed, then names the ids of
/// the current committee's members to `remove`.
pub(crate) async fn when_due(
    swarm: &crate::actors::SwarmHandle,
    progress: &AtomicU64,
    after_transfers: usize,
    remove: &[String],
) -> Result<Vec<AgentId>, CliError> {
    while (progress.load(Ordering::Relaxed) as usize) < after_transfers {
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
    let committee = swarm.committee();
    remove
        .iter()
        .map(|name| {
            let member = committee.members().iter().find(|m| &m.name == name);
            member.map(|m| m.id).ok_or_else(|| CliError::Usage(format!("no validator {name} to remove")))
        })
        .collect()
}

/// The validators' mailbox bound from `agents/validator.toml` when the working
/// directory has agent definitions; without them, the runtime's default.
fn validator_mailbox() -> Result<Option<usize>, CliError> {
    let dir = Path::new("agents");
    if !dir.is_dir() {
        return Ok(None);
    }
    let usage = |error: crate::agents::AgentError| CliError::Usage(error.to_string());
    let registry = AgentDefinition::load_dir(dir).map_err(usage)?;
    Ok(registry.resolve("validator").map_err(usage)?.mailbox)
}

/// The config's `[[faults]]`, resolved to agents (validated by the config already).
fn configured_faults(cfg: &SwarmConfig) -> Result<Vec<(AgentId, FaultType, f64, Duration)>, CliError> {
    let names = cfg.agent_names();
    cfg.faults
        .iter()
        .map(|fault| {
            let index = names.iter().position(|name| *name == fault.agent);
            let agent = index.ok_or_else(|| CliError::Usage(format!("no agent {} in this swarm", fault.agent)))?;
            let fault_type = fault.fault_type.parse::<FaultType>().map_err(CliError::Usage)?;
            Ok((AgentId(agent as u32), fault_type, fault.probability, Duration::from_millis(fault.after_ms)))
        })
        .collect()
}

/// A stalled run as the CLI reports it (with the validators' positions filled
/// in by the caller), any other outcome as it was.
pub(crate) fn stalled_as_cli_error(
    run: Result<ClientRun, crate::actors::SwarmError>,
) -> Result<Result<ClientRun, crate::actors::SwarmError>, CliError> {
    match run {
        Err(crate::actors::SwarmError::Stalled { seconds, completed, total }) => {
            Err(CliError::Stalled { seconds, completed, total, executed: String::new() })
        }
        other => Ok(other),
    }
}

/// A progress bar on stderr, redrawn from the client's counter every 100 ms by
/// its own thread, so drawing never competes with the actors' mailboxes.
struct ProgressDisplay {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl ProgressDisplay {
    fn start(progress: Arc<AtomicU64>, total: usize) -> ProgressDisplay {
        let style =
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} transfers ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let bar = ProgressBar::new(total as u64).with_style(style);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_seen = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop_seen.load(Ordering::Relaxed) {
                bar.set_position(progress.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        ProgressDisplay { stop, thread }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
