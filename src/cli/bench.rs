//! `bftswarm bench`: throughput, latency and CPU per transfer for several
//! committee sizes, in one process, next to the cost of Ed25519 verification
//! measured in the same run and the tutorial's figures.
//!
//! Every validator must verify every client signature once, so n validators on
//! `cores` cores can never exceed `cores / (n × batch-verify cost)` transfers
//! per second: the report gives each throughput as a fraction of that bound.

use super::report::{RunFacts, RunReport};
use super::run::{drive_with, workload_spec};
use super::CliError;
use crate::actors::{LaunchOptions, SwarmSpec};
use crate::config::SwarmConfig;
use crate::crypto::{verify_batch, Keypair, Signature, SigningBytes};
use crate::events::{EventKind, EventKinds};
use crate::hooks::HookEvent;
use crate::ledger::Ledger;
use crate::wal::WalOptions;
use crate::workload::Workload;
use actix::{Actor, Context, Handler};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
#[command(after_help = "Example: bftswarm bench --validators 4,7,10,13 --windows 192,4096 --transactions 40000")]
pub struct BenchArgs {
    /// Committee sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "4,7,10,13")]
    pub validators: Vec<usize>,
    /// Client windows (requests in flight) to measure each size with: a small
    /// one shows latency, a large one peak throughput.
    #[arg(long, value_delimiter = ',', default_value = "192,4096")]
    pub windows: Vec<usize>,
    /// Transfers per measurement (signed before the clock starts).
    #[arg(long, default_value_t = 40_000)]
    pub transactions: usize,
    /// Base config; the bench overrides committee size, window and workload.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Hook actors subscribed to `transaction-committed` during each run, to
    /// measure what hooks cost (compare with a run without).
    #[arg(long, default_value_t = 0)]
    pub hook_actors: usize,
    /// Instead of the table: how fast a validator this many sequence numbers
    /// behind catches up (it joins an n = 4 swarm that committed them).
    #[arg(long, value_name = "SEQS")]
    pub catch_up: Option<u64>,
    /// Validators keep write-ahead logs (in DIR/bench of --home, removed before each
    /// run); fsync as `storage.fsync` says (on unless BFTSWARM_STORAGE__FSYNC=false).
    #[arg(long)]
    pub durable: bool,
    /// Measure every row twice: in this process, then with every validator a
    /// separate process (`bftswarm node`, write-ahead log without fsync) joined over loopback TCP.
    #[arg(long, conflicts_with_all = ["durable", "hook_actors", "catch_up"])]
    pub processes: bool,
    /// Measure every row twice, in one process: with metrics and logging off,
    /// then on (Prometheus metrics recorded, `info` logs written to stderr).
    #[arg(long, conflicts_with_all = ["processes", "catch_up"])]
    pub observability: bool,
    /// The swarm's home, for --durable.
    #[arg(long, env = "BFTSWARM_HOME", default_value = ".bftswarm", value_name = "DIR")]
    pub home: std::path::PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub validators: usize,
    pub max_failures: usize,
    pub quorum: usize,
    pub window: usize,
    pub transactions: usize,
    pub throughput_tx_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub cpu_us_per_tx: f64,
    /// cores / (n × batch-verify µs): what signature checks alone allow.
    pub signature_bound_tx_per_s: f64,
    pub fraction_of_bound: f64,
    pub system_integrity: String,
    pub hook_actors: usize,
    /// Events the hook actors received in all (each validator reports each batch).
    pub hook_events_received: u64,
    /// "memory", "wal+fsync" or "wal" (write-ahead logs without fsync).
    pub storage: String,
    /// Agents the base config's `[[faults]]` make Byzantine.
    pub byzantine_agents: usize,
    /// Convictions in the run; each convicted agent was quarantined and replaced.
    pub malicious_detected: usize,
    /// Slowest conviction: from the deciding report being sent to the conviction recorded.
    pub detection_latency_ms: Option<f64>,
    /// Slowest replacement: from the conviction to the new validator running in the new epoch.
    pub replacement_ms: Option<f64>,
    pub tutorial_tx_per_s: Option<f64>,
    pub tutorial_latency_ms: Option<f64>,
    /// With --observability: "off" or "on" (metrics and info logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub cores: usize,
    pub ed25519_verify_us: f64,
    pub ed25519_batch_verify_us_per_signature: f64,
    pub rows: Vec<BenchRow>,
}

/// The tutorial's "Scalability Analysis" table.
fn tutorial(n: usize) -> (Option<f64>, Option<f64>) {
    match n {
        4 => (Some(1200.0), Some(40.0)),
        7 => (Some(470.0), Some(85.0)),
        10 => (Some(180.0), Some(150.0)),
        13 => (Some(90.0), Some(250.0)),
        _ => (None, None),
    }
}

/// Hook actors a bench may subscribe: each is an actor that hears every commit.
const MAX_HOOK_ACTORS: usize = 10_000;

pub fn execute(args: &BenchArgs) -> Result<(), CliError> {
    if let Some(seqs) = args.catch_up {
        let report = super::catch_up::measure(seqs, args.config.as_deref())?;
        eprintln!(
            "a validator {} seqs ({} transfers, {} accounts) behind caught up in {:.1} ms: {:.0} tx/s of replayed state \
             ({} snapshot(s), {} batches replayed, ledgers match: {})",
            report.seqs_behind,
            report.transfers_behind,
            report.accounts,
            report.catch_up_ms,
            report.replayed_tx_per_s,
            report.snapshots_installed,
            report.batches_replayed,
            report.ledgers_match
        );
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        }
        return Ok(());
    }
    if args.validators.iter().any(|&n| n < 4) || args.windows.contains(&0) || args.transactions == 0 {
        return Err(CliError::Usage(
            "bench needs --validators of at least 4, windows of at least 1 and at least 1 transaction".into(),
        ));
    }
    super::run::transfers_to_submit("--transactions", args.transactions)?;
    let (max_window, max_n) = (crate::config::MAX_CONCURRENT_REQUESTS, crate::config::MAX_VALIDATORS);
    if args.windows.iter().any(|&w| w > max_window) || args.validators.iter().any(|&n| n > max_n) {
        return Err(CliError::Usage(format!(
            "bench measures windows of at most {max_window} and --validators of at most {max_n}"
        )));
    }
    if args.hook_actors > MAX_HOOK_ACTORS {
        return Err(CliError::Usage(format!("--hook-actors {} is more than {MAX_HOOK_ACTORS}", args.hook_actors)));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (verify_us, batch_us) = measure_verification();
    eprintln!(
        "ed25519 on this machine: verify {verify_us:.1} µs, batch verify {batch_us:.1} µs/signature, {cores} cores"
    );
    let mut rows = Vec::new();
    // With --processes, each row in one process and then across processes, side by side.
    let placements: &[bool] = if args.processes { &[false, true] } else { &[false] };
    // With --observability, each row with metrics and logging off, then on.
    let observed: &[Option<bool>] = if args.observability { &[Some(false), Some(true)] } else { &[None] };
    if args.observability {
        crate::observe::install();
    }
    for &n in &args.validators {
        let rows_of_n = args.windows.iter().flat_map(|w| placements.iter().map(move |p| (w, p)));
        for ((&window, &processes), &observe) in rows_of_n.flat_map(|row| observed.iter().map(move |o| (row, o))) {
            if let Some(on) = observe {
                crate::observe::set_enabled(on);
                crate::observe::logging::set_level(if on { "info" } else { "warn" });
            }
            let mut row = measure(args, n, window, processes, cores, batch_us)?;
            row.observability = observe.map(|on| if on { "on" } else { "off" });
            eprintln!(
                "n = {:>2}, window {:>5}, {}{}: {:>8.0} tx/s, p50 {:>6.1} ms, p99 {:>6.1} ms, {:>5.0} µs CPU/tx, {:.0}% of bound, {}",
                n,
                window,
                row.storage,
                row.observability.map_or(String::new(), |o| format!(", metrics+logs {o}")),
                row.throughput_tx_per_s,
                row.latency_ms_p50,
                row.latency_ms_p99,
                row.cpu_us_per_tx,
                row.fraction_of_bound * 100.0,
                row.system_integrity
            );
            rows.push(row);
        }
    }
    let report =
        BenchReport { cores, ed25519_verify_us: verify_us, ed25519_batch_verify_us_per_signature: batch_us, rows };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?);
    } else {
        print!("{}", table(&report));
    }
    match report.rows.iter().find(|row| row.system_integrity != "intact") {
        Some(row) => Err(CliError::Integrity(format!("n = {}: {}", row.validators, row.system_integrity))),
        None => Ok(()),
    }
}

fn measure(
    args: &BenchArgs,
    n: usize,
    window: usize,
    processes: bool,
    cores: usize,
    batch_us: f64,
) -> Result<BenchRow, CliError> {
    let mut cfg = SwarmConfig::load(args.config.as_deref())?;
    cfg.swarm.max_agents = n;
    cfg.swarm.max_failures = None;
    cfg.client.max_concurrent_requests = window;
    cfg.consensus.max_batch_size = cfg.consensus.max_batch_size.max(1024);
    cfg.consensus.max_pending_requests = cfg.consensus.max_pending_requests.max(window * 2);
    cfg.workload.transactions = args.transactions;
    // Enough accounts that the window never waits for one account's previous nonce.
    cfg.workload.accounts = cfg.workload.accounts.max(window * 4).max(2_000);
    cfg.workload.overdraft_ratio = 0.0;
    cfg.validate()?;
    let workload = Workload::generate(&workload_spec(&cfg));
    let genesis = Ledger::with_genesis(&workload.genesis).map_err(|e| CliError::Usage(e.to_string()))?;
    let spec = SwarmSpec::from_config(&cfg, genesis, cfg.workload.seed)?;
    let facts = RunFacts {
        swarm_name: format!("bench-n{n}"),
        validators: n,
        max_failures: cfg.max_failures(),
        quorum: cfg.quorum(),
        transfers_submitted: workload.transfers.len(),
        expected_overdrafts: 0,
        only_overdrafts_invalid: true,
    };
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let hook_actors = args.hook_actors;
    let add_hooks = move |options: &mut LaunchOptions| {
        let kinds: EventKinds = [EventKind::TransactionCommitted].into_iter().collect();
        let mut hooks = std::mem::take(&mut options.hooks);
        for i in 0..hook_actors {
            let actor = CountingHook(counter.clone()).start();
            hooks = hooks.subscribe(&format!("bench-hook-{i}"), kinds, actor.recipient());
        }
        options.hooks = hooks;
    };
    let wal = if args.durable {
        let home = args.home.join("bench").join(format!("n{n}-w{window}"));
        match std::fs::remove_dir_all(&home) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
        Some(WalOptions::under_home(&home, cfg.storage.fsync))
    } else {
        None
    };
    let storage = match &wal {
        _ if processes => "processes+wal",
        None => "memory",
        Some(wal) if wal.fsync => "wal+fsync",
        Some(_) => "wal",
    };
    let cpu_before = process_cpu_time();
    let (run, statuses, nodes_cpu, detections) = if processes {
        let run = super::bench_processes::run(&cfg, spec.genesis.ledger().clone(), workload.transfers)?;
        (run.run, run.statuses, run.nodes_cpu, Vec::new())
    } else {
        let (run, statuses, _, detections) = drive_with(spec, workload.transfers, &cfg, wal, false, add_hooks)?;
        (run, statuses, Duration::ZERO, detections)
    };
    let cpu = process_cpu_time().saturating_sub(cpu_before) + nodes_cpu;
    let mut report = RunReport::build(&run, &statuses, &facts);
    let slowest = |values: Vec<f64>| values.into_iter().reduce(f64::max);
    let detection_latency_ms = slowest(detections.iter().map(|d| d.detection_latency_us as f64 / 1000.0).collect());
    let replacement_ms = slowest(detections.iter().filter_map(|d| d.replacement_ms).collect());
    let byzantine: Vec<String> = cfg.faults.iter().map(|fault| fault.agent.clone()).collect();
    report.add_detections(detections, &byzantine);
    let committed = report.transactions_committed.max(1) as f64;
    let bound = cores as f64 * 1e6 / (n as f64 * batch_us);
    let (tutorial_tx_per_s, tutorial_latency_ms) = tutorial(n);
    Ok(BenchRow {
        validators: n,
        max_failures: cfg.max_failures(),
        quorum: cfg.quorum(),
        window,
        transactions: args.transactions,
        throughput_tx_per_s: report.throughput_tx_per_s,
        latency_ms_p50: report.latency_ms_p50,
        latency_ms_p99: report.latency_ms_p99,
        cpu_us_per_tx: cpu.as_secs_f64() * 1e6 / committed,
        signature_bound_tx_per_s: bound,
        fraction_of_bound: report.throughput_tx_per_s / bound,
        system_integrity: report.system_integrity,
        hook_actors: args.hook_actors,
        hook_events_received: received.load(Ordering::Relaxed),
        storage: storage.into(),
        byzantine_agents: byzantine.len(),
        malicious_detected: report.malicious_detected,
        detection_latency_ms,
        replacement_ms,
        tutorial_tx_per_s,
        tutorial_latency_ms,
        observability: None,
    })
}

/// A hook actor that only counts what it hears, with a mailbox deep enough for
/// every validator's events of a busy run.
struct CountingHook(Arc<AtomicU64>);

impl Actor for CountingHook {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<HookEvent> for CountingHook {
    type Result = ();

    fn handle(&mut self, _: HookEvent, _: &mut Context<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Single and batched (256) verification on one thread, about half a second each.
fn measure_verification() -> (f64, f64) {
    let keys: Vec<Keypair> = (0..256u32).map(|i| Keypair::from_seed(blake3::hash(&i.to_le_bytes()).into())).collect();
    let messages: Vec<Vec<u8>> = (0..256u64).map(|i| SigningBytes::new("bench").u64(i).finish()).collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().filter_map(|k| k.public_key().verifying_key()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let single = per_call_us(|| {
        std::hint::black_box(signatures[0].verify(&verifying[0], &messages[0]));
    });
    let batch = per_call_us(|| {
        std::hint::black_box(verify_batch(&refs, &signatures, &verifying));
    }) / 256.0;
    (single, batch)
}

fn per_call_us(mut call: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        call();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

/// User plus system CPU time of the whole process, every thread.
fn process_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn table(report: &BenchReport) -> String {
    let mut table = comfy_table::Table::new();
    table.set_header([
        "n",
        "f",
        "quorum",
        "window",
        "storage",
        "tx/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/tx",
        "sig bound tx/s",
        "of bound",
        "byzantine",
        "convicted (slowest ms)",
        "replaced (slowest ms)",
        "tutorial tx/s",
        "tutorial ms",
    ]);
    let optional = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.0}"));
    for row in &report.rows {
        table.add_row([
            row.validators.to_string(),
            row.max_failures.to_string(),
            row.quorum.to_string(),
            row.window.to_string(),
            row.observability.map_or(row.storage.clone(), |o| format!("{} (metrics+logs {o})", row.storage)),
            format!("{:.0}", row.throughput_tx_per_s),
            format!("{:.1}", row.latency_ms_p50),
            format!("{:.1}", row.latency_ms_p99),
            format!("{:.0}", row.cpu_us_per_tx),
            format!("{:.0}", row.signature_bound_tx_per_s),
            format!("{:.0}%", row.fraction_of_bound * 100.0),
            row.byzantine_agents.to_string(),
            format!(
                "{} ({})",
                row.malicious_detected,
                row.detection_latency_ms.map_or("-".into(), |ms| format!("{ms:.2}"))
            ),
            optional(row.replacement_ms),
            optional(row.tutorial_tx_per_s),
            optional(row.tutorial_latency_ms),
        ]);
    }
    format!(
        "{table}\ned25519 verify {:.1} µs, batch verify {:.1} µs/signature, {} cores\n",
        report.ed25519_verify_us, report.ed25519_batch_verify_us_per_signature, report.cores
    )
}
