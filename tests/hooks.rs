//! Lifecycle hooks against a running 4-validator swarm: hook actors get what
//! they subscribed to, a hanging command hook and a panicking hook actor do
//! not stall consensus, a failing pre-task hook vetoes, and bad hook config
//! is a one-line error naming the entry.

use actix::{Actor, Arbiter, Context, Handler};
use bftswarm::actors::{LaunchOptions, Swarm, SwarmError, SwarmSpec};
use bftswarm::app::SignedTx;
use bftswarm::config::{HookEntry, SwarmConfig};
use bftswarm::events::{EventKind, EventKinds, LifecycleEvent};
use bftswarm::hooks::{HookEvent, Hooks, PreTask, Veto};
use bftswarm::ledger::{Ledger, TxOutcome};
use bftswarm::protocol::ClientId;
use bftswarm::workload::{Workload, WorkloadSpec};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn swarm_spec(transactions: usize) -> (SwarmSpec, Vec<SignedTx>) {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 5,
        accounts: 40,
        transactions,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    (SwarmSpec::from_config(&config, genesis, 5).unwrap(), workload.transfers)
}

/// Records every event it gets.
struct Recorder(Arc<Mutex<Vec<LifecycleEvent>>>);

impl Actor for Recorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Each of 4 validators reports each batch; the default 16 would drop some.
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<HookEvent> for Recorder {
    type Result = ();

    fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push((*event).clone());
    }
}

/// Panics on the first event it gets.
struct Panicker;

impl Actor for Panicker {
    type Context = Context<Self>;
}

impl Handler<HookEvent> for Panicker {
    type Result = ();

    fn handle(&mut self, _: HookEvent, _: &mut Context<Self>) {
        panic!("a hook actor with a bug");
    }
}

/// Vetoes every task.
struct Refuser;

impl Actor for Refuser {
    type Context = Context<Self>;
}

impl Handler<PreTask> for Refuser {
    type Result = Result<(), Veto>;

    fn handle(&mut self, _: PreTask, _: &mut Context<Self>) -> Result<(), Veto> {
        Err(Veto { hook: "refuser".into(), reason: "maintenance window".into() })
    }
}

fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn entry(event: &str, command: &std::path::Path, timeout_ms: u64) -> HookEntry {
    HookEntry { event: event.into(), command: command.display().to_string(), timeout_ms }
}

async fn run_all(swarm: &Swarm, transfers: Vec<SignedTx>) {
    let count = transfers.len();
    let run = swarm.run_client(ClientId(1), transfers, 50, 2_000, Arc::new(AtomicU64::new(0))).await.unwrap();
    assert_eq!(run.completions.len(), count);
    assert!(run.completions.iter().all(|c| c.outcome == TxOutcome::Committed));
    for status in swarm.settled_status(Duration::from_secs(5)).await {
        assert_eq!(status.stats.txs_committed, count as u64, "{}", status.name);
    }
}

/// Waits until `done` holds for the recorded events (delivery is asynchronous).
async fn wait_for(events: &Mutex<Vec<LifecycleEvent>>, done: impl Fn(&[LifecycleEvent]) -> bool) {
    let start = Instant::now();
    while !done(&events.lock().unwrap()) && start.elapsed() < Duration::from_secs(5) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

fn committed_by_agent_0(events: &[LifecycleEvent]) -> usize {
    let counts = events.iter().map(|event| match event {
        LifecycleEvent::TransactionCommitted { agent, count, .. } if agent.0 == 0 => *count,
        _ => 0,
    });
    counts.sum()
}

#[actix::test]
async fn n4f1_hook_actor_receives_exactly_the_kinds_it_subscribed_to() {
    let (spec, transfers) = swarm_spec(200);
    let events = Arc::new(Mutex::new(Vec::new()));
    let kinds: EventKinds = [EventKind::SwarmInitialized, EventKind::TransactionCommitted].into_iter().collect();
    let hooks = Hooks::new().subscribe("recorder", kinds, Recorder(events.clone()).start().recipient());
    let swarm = Swarm::launch_with(spec, LaunchOptions { hooks, ..LaunchOptions::default() }).unwrap();
    run_all(&swarm, transfers).await;
    wait_for(&events, |events| committed_by_agent_0(events) == 200).await;

    let events = events.lock().unwrap().clone();
    assert!(matches!(&events[0], LifecycleEvent::SwarmInitialized { validators: 4, quorum: 3, .. }), "{:?}", events[0]);
    assert_eq!(committed_by_agent_0(&events), 200, "one event per batch, counts add up to every transfer");
    assert!(events.iter().all(|event| kinds.contains(event.kind())), "only subscribed kinds");
    let batches = events.iter().filter(|e| e.kind() == EventKind::TransactionCommitted).count();
    assert!(batches < 4 * 200, "{batches} events: per batch, not per transaction");
    let stats = swarm.hook_stats().await.unwrap();
    assert_eq!(stats.actors[0].dropped_full + stats.actors[0].dropped_stopped, 0);
    swarm.stop();
}

#[actix::test]
async fn n4f1_hanging_command_hook_and_panicking_hook_actor_leave_consensus_committing() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = script(&dir, "hang.sh", "sleep 10");
    let (spec, transfers) = swarm_spec(300);
    // On its own thread, as a user's actor would be: its panic ends only it.
    let panicker = Panicker::start_in_arbiter(&Arbiter::new().handle(), |_| Panicker);
    let hooks = Hooks::new()
        .subscribe("panicker", EventKinds::all(), panicker.recipient())
        .commands(&[entry("transaction-committed", &hanging, 200)])
        .unwrap();
    let swarm = Swarm::launch_with(spec, LaunchOptions { hooks, ..LaunchOptions::default() }).unwrap();
    let start = Instant::now();
    run_all(&swarm, transfers).await;
    assert!(start.elapsed() < Duration::from_secs(10), "consensus waited on a hook: {:?}", start.elapsed());

    actix_rt::time::sleep(Duration::from_millis(400)).await;
    let stats = swarm.hook_stats().await.unwrap();
    // actix keeps a panicked actor's mailbox open, so its events fill it and are
    // then dropped as "full" (a stopped actor's would count as "stopped").
    let panicker = &stats.actors[0];
    assert!(panicker.dropped_full + panicker.dropped_stopped > 0, "{panicker:?}");
    let command = &stats.commands[0];
    assert!(command.timed_out >= 1, "{command:?}");
    assert!(command.dropped_busy >= 1, "at most 4 hanging runs at once: {command:?}");
    assert_eq!(command.succeeded, 0);
    swarm.stop();
}

#[actix::test]
async fn failing_pre_task_command_vetoes_the_task_and_a_passing_one_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, _) = swarm_spec(10);
    let failing = script(&dir, "deny.sh", "cat > /dev/null; exit 4");
    let hooks = Hooks::new().commands(&[entry("pre-task", &failing, 2_000)]).unwrap();
    let swarm = Swarm::launch_with(spec.clone(), LaunchOptions { hooks, ..LaunchOptions::default() }).unwrap();
    let error = swarm.pre_task("run", "submit 10 transfers", 10).await.unwrap_err();
    assert!(matches!(&error, SwarmError::Vetoed(veto) if veto.hook.ends_with("deny.sh")), "{error}");
    assert!(error.to_string().contains("vetoed the task: exited with exit status: 4"), "{error}");
    swarm.stop();

    let passing = script(&dir, "allow.sh", "cat > /dev/null");
    let hooks = Hooks::new().commands(&[entry("pre-task", &passing, 2_000)]).unwrap();
    let swarm = Swarm::launch_with(spec, LaunchOptions { hooks, ..LaunchOptions::default() }).unwrap();
    swarm.pre_task("run", "submit 10 transfers", 10).await.unwrap();
    swarm.stop();
}

#[actix::test]
async fn pre_task_hook_actor_vetoes_with_its_reason() {
    let (spec, _) = swarm_spec(10);
    let hooks = Hooks::new().pre_task("refuser", Refuser.start().recipient());
    let swarm = Swarm::launch_with(spec, LaunchOptions { hooks, ..LaunchOptions::default() }).unwrap();
    let error = swarm.pre_task("run", "anything", 1).await.unwrap_err();
    assert_eq!(error.to_string(), "pre-task hook refuser vetoed the task: maintenance window");
    swarm.stop();
}

#[test]
fn bad_hook_config_is_one_line_naming_the_entry_and_field() {
    let hook = |event: &str, command: &str, timeout: &str| {
        format!("[[hooks]]\nevent = \"{event}\"\ncommand = \"{command}\"\n{timeout}\n")
    };
    let good = hook("pre-task", "hooks/pre-task.sh", "timeout_ms = 2000");
    let cases = [
        (
            hook("on-commit", "hooks/a.sh", ""),
            "hooks[2].event in the given TOML = \"on-commit\" is not a lifecycle event",
        ),
        (hook("post-task", " ", ""), "hooks[2].command in the given TOML is empty"),
        (hook("post-task", "hooks/a.sh", "timeout_ms = 0"), "hooks[2].timeout_ms in the given TOML is 0"),
    ];
    for (third, expected) in cases {
        let text = format!("{good}{good}{third}");
        let error = SwarmConfig::from_toml_str(&text).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
    let config = SwarmConfig::from_toml_str(&good).unwrap();
    assert_eq!(
        config.hooks,
        vec![HookEntry { event: "pre-task".into(), command: "hooks/pre-task.sh".into(), timeout_ms: 2000 }]
    );
    let unknown = SwarmConfig::from_toml_str("[[hooks]]\nevent = \"pre-task\"\ncommand = \"x\"\ntimeout = 5\n");
    let error = unknown.unwrap_err().to_string();
    assert!(error.contains("timeout") && !error.contains('\n'), "{error}");
}

#[test]
fn shipped_audit_and_detection_hooks_append_the_event_under_the_home() {
    let home = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hooks");
    for (script, file) in [("audit-log.sh", "audit.log"), ("on-malicious-detected.sh", "detections.jsonl")] {
        for _ in 0..2 {
            let mut child = std::process::Command::new(root.join(script))
                .current_dir(home.path())
                .env_remove("BFTSWARM_HOME")
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"{\"event\":\"malicious-detected\"}\n").unwrap();
            assert!(child.wait().unwrap().success(), "{script}");
        }
        let written = std::fs::read_to_string(home.path().join(".bftswarm").join(file)).unwrap();
        assert_eq!(written, "{\"event\":\"malicious-detected\"}\n".repeat(2), "{script}");
    }
}

#[test]
fn run_with_a_failing_pre_task_hook_exits_non_zero_with_one_line_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let failing = script(&dir, "deny.sh", "exit 1");
    let config = dir.path().join("swarm.toml");
    let text = format!("[[hooks]]\nevent = \"pre-task\"\ncommand = \"{}\"\ntimeout_ms = 2000\n", failing.display());
    std::fs::write(&config, text).unwrap();
    let output = assert_cmd::cargo::cargo_bin_cmd!("bftswarm")
        .args(["run", "--json", "--count", "20", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no report for a vetoed run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains("deny.sh vetoed the task: exited with exit status: 1"), "{stderr}");
}
