//! Command hooks: an executable run once per event, the event as one JSON line
//! on stdin, killed at its timeout.
//!
//! The script is executed directly (no `sh -c`, so nothing in the config is
//! re-parsed by a shell), in its own process group so that killing it also
//! kills what it started (`sleep` in a shell script). Its stdout goes to our
//! stderr: the CLI's stdout is the report and must stay parseable.
//!
//! Each run gets its own thread, because waiting on a child blocks and an
//! actor thread must never block; at most [`MAX_RUNS_IN_FLIGHT`] runs per
//! hook exist at once, and events beyond that are dropped and counted.

use crate::events::EventKind;
use serde::Serialize;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs of one command hook alive at once; more events than that are dropped.
pub const MAX_RUNS_IN_FLIGHT: usize = 4;

/// How often a running hook is checked for exit; hooks are rare, so coarse is fine.
const POLL: Duration = Duration::from_millis(5);

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// It exited non-zero or was killed by a signal; the text says which.
    Failed(String),
    TimedOut,
    /// It could not be started (missing, not executable).
    NotStarted(String),
    /// [`MAX_RUNS_IN_FLIGHT`] runs were already alive.
    Busy,
}

impl RunOutcome {
    pub fn reason(&self) -> String {
        match self {
            RunOutcome::Succeeded => "succeeded".into(),
            RunOutcome::Failed(why) => why.clone(),
            RunOutcome::TimedOut => "timed out and was killed".into(),
            RunOutcome::NotStarted(why) => format!("could not be started: {why}"),
            RunOutcome::Busy => format!("already had {MAX_RUNS_IN_FLIGHT} runs in flight"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommandHookStats {
    pub event: String,
    pub command: String,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub not_started: u64,
    pub dropped_busy: u64,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    not_started: AtomicU64,
    dropped_busy: AtomicU64,
}

/// One `[[hooks]]` entry, ready to run.
#[derive(Clone)]
pub struct CommandHook {
    pub event: EventKind,
    pub command: PathBuf,
    pub timeout: Duration,
    in_flight: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    /// The swarm's home, given to the command as `BFTSWARM_HOME`.
    home: Option<Arc<Path>>,
}

impl CommandHook {
    pub fn new(event: EventKind, command: PathBuf, timeout: Duration) -> CommandHook {
        CommandHook { event, command, timeout, in_flight: Arc::default(), counters: Arc::default(), home: None }
    }

    /// Runs the command with `BFTSWARM_HOME` set to `home` (absolute), so a
    /// script writes into the swarm's home wherever it was started from.
    pub fn with_home(mut self, home: &Path) -> CommandHook {
        let home = std::path::absolute(home).unwrap_or_else(|_| home.to_path_buf());
        self.home = Some(Arc::from(home.as_path()));
        self
    }

    /// Runs the hook on its own thread; the result is only logged and counted.
    pub fn fire(&self, json: Arc<str>) {
        drop(self.start(json));
    }

    /// Runs the hook on its own thread and returns how it ended.
    pub async fn run(&self, json: Arc<str>) -> RunOutcome {
        match self.start(json) {
            Some(done) => done.await.unwrap_or_else(|_| RunOutcome::Failed("its thread ended early".into())),
            None => RunOutcome::Busy,
        }
    }

    fn start(&self, json: Arc<str>) -> Option<tokio::sync::oneshot::Receiver<RunOutcome>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_RUNS_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.record(&RunOutcome::Busy);
            return None;
        }
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let hook = self.clone();
        let spawned = std::thread::Builder::new().name("bftswarm-hook".into()).spawn(move || {
            let outcome = run_once(&hook.command, hook.home.as_deref(), &json, hook.timeout);
            hook.record(&outcome);
            hook.in_flight.fetch_sub(1, Ordering::AcqRel);
            let _ = done_tx.send(outcome);
        });
        if let Err(error) = spawned {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.record(&RunOutcome::NotStarted(format!("no thread: {error}")));
            return None;
        }
        Some(done_rx)
    }

    fn record(&self, outcome: &RunOutcome) {
        let counters = &self.counters;
        let counter = match outcome {
            RunOutcome::Succeeded => &counters.succeeded,
            RunOutcome::Failed(_) => &counters.failed,
            RunOutcome::TimedOut => &counters.timed_out,
            RunOutcome::NotStarted(_) => &counters.not_started,
            RunOutcome::Busy => &counters.dropped_busy,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if *outcome != RunOutcome::Succeeded {
            let command = self.command.display();
            tracing::warn!(event = %self.event, %command, outcome = %outcome.reason(), "command hook did not succeed");
        }
    }

    pub fn stats(&self) -> CommandHookStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        CommandHookStats {
            event: self.event.name().into(),
            command: self.command.display().to_string(),
            succeeded: load(&counters.succeeded),
            failed: load(&counters.failed),
            timed_out: load(&counters.timed_out),
            not_started: load(&counters.not_started),
            dropped_busy: load(&counters.dropped_busy),
        }
    }
}

/// Starts `command`, feeds it `json` and a newline, and waits at most `timeout`.
fn run_once(command: &Path, home: Option<&Path>, json: &str, timeout: Duration) -> RunOutcome {
    let mut child = match spawn_hook(command, home) {
        Ok(child) => child,
        Err(error) => return RunOutcome::NotStarted(error.to_string()),
    };
    // Written from another thread: a hook that never reads its stdin must not
    // block us on a full pipe. It fails (EPIPE) when the hook exits or is killed.
    if let Some(mut stdin) = child.stdin.take() {
        let line = format!("{json}\n");
        let _ = std::thread::Builder::new().name("bftswarm-hook-stdin".into()).spawn(move || {
            let _ = stdin.write_all(line.as_bytes());
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return RunOutcome::Succeeded,
            Ok(Some(status)) => return RunOutcome::Failed(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return RunOutcome::TimedOut;
            }
            Ok(None) => std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))),
            Err(error) => return RunOutcome::Failed(format!("cannot be waited on: {error}")),
        }
    }
}

/// Starts the hook in its own process group. A script written just before
/// may be "busy" (ETXTBSY) for a moment: a process forked elsewhere in this
/// program still holds the writer's descriptor until it execs. Retried briefly.
fn spawn_hook(command: &Path, home: Option<&Path>) -> std::io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        let mut hook = Command::new(command);
        if let Some(home) = home {
            hook.env("BFTSWARM_HOME", home);
        }
        let spawned = hook.stdin(Stdio::piped()).stdout(stderr_as_stdio()).process_group(0).spawn();
        match spawned {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

/// Kills the hook's process group (it leads its own, see `process_group(0)`).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours;
        // the group is the child's own, so nothing else is signalled.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Our stderr as a child's stdout, so hook output never mixes into the report on stdout.
fn stderr_as_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr().as_fd().try_clone_to_owned().map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_hook_reads_the_event_on_stdin_and_its_exit_status_is_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let ok = script(&dir, "ok.sh", &format!("cat > {}", out.display()));
        assert_eq!(run_once(&ok, None, "{\"event\":\"pre-task\"}", Duration::from_secs(5)), RunOutcome::Succeeded);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"event\":\"pre-task\"}\n");
        let failing = script(&dir, "fail.sh", "exit 3");
        let outcome = run_once(&failing, None, "{}", Duration::from_secs(5));
        assert!(matches!(&outcome, RunOutcome::Failed(why) if why.contains('3')), "{outcome:?}");
        let missing = dir.path().join("missing.sh");
        assert!(matches!(run_once(&missing, None, "{}", Duration::from_secs(5)), RunOutcome::NotStarted(_)));
    }

    #[test]
    fn a_hanging_hook_is_killed_with_its_children_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let hanging = script(&dir, "hang.sh", "sleep 10");
        let start = Instant::now();
        assert_eq!(run_once(&hanging, None, "{}", Duration::from_millis(200)), RunOutcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[actix::test]
    async fn runs_beyond_the_bound_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let hook = CommandHook::new(EventKind::PostTask, script(&dir, "slow.sh", "sleep 1"), Duration::from_secs(5));
        for _ in 0..MAX_RUNS_IN_FLIGHT {
            hook.fire("{}".into());
        }
        assert_eq!(hook.run("{}".into()).await, RunOutcome::Busy);
        assert_eq!(hook.stats().dropped_busy, 1);
    }
}
