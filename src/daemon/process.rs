//! The daemon as a process: its pid lock (one daemon per home), starting it
//! detached in the background, and waiting for it to come up or go away.
//!
//! The pid file is held under an exclusive `flock` for the daemon's whole
//! life, so "is a daemon running?" is answered by the kernel, not by a pid
//! that may have been reused.

use super::home::{Home, HomeError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand the CLI re-executes itself with to become the daemon.
pub const DAEMON_SUBCOMMAND: &str = "daemon";

/// Held by the running daemon; releasing it (drop, exit, crash) frees the home.
#[derive(Debug)]
pub struct PidLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error("a swarm daemon is already running for {home} (pid {pid}); stop it with `bftswarm swarm stop`")]
    AlreadyRunning { home: String, pid: u32 },
    #[error("cannot start the daemon: {0}")]
    Spawn(std::io::Error),
    #[error("the daemon exited during start-up: {last_log_line} (log: {log})")]
    DiedAtStart { last_log_line: String, log: String },
    #[error("the daemon did not answer within {seconds} s (log: {log})")]
    StartTimeout { seconds: u64, log: String },
    #[error("the daemon (pid {pid}) is still running {seconds} s after it was asked to stop")]
    StopTimeout { pid: u32, seconds: u64 },
}

impl PidLock {
    /// Takes the home's pid lock and writes our pid, or says who holds it.
    pub fn acquire(home: &Home) -> Result<PidLock, ProcessError> {
        let path = home.pid();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(HomeError::io("open", &path))?;
        if !try_lock(&file, libc::LOCK_EX) {
            let pid = read_pid(&mut file).unwrap_or(0);
            return Err(ProcessError::AlreadyRunning { home: home.root().display().to_string(), pid });
        }
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| {
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        });
        written.map_err(HomeError::io("write", &path))?;
        Ok(PidLock { _file: file })
    }
}

/// The pid of the daemon running for `home`, if one holds its lock.
pub fn running_pid(home: &Home) -> Option<u32> {
    let mut file = File::open(home.pid()).ok()?;
    if try_lock(&file, libc::LOCK_SH) {
        // Nobody holds it: a stale file from a daemon that died.
        return None;
    }
    Some(read_pid(&mut file).unwrap_or(0))
}

fn try_lock(file: &File, kind: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor we own; the lock lives as long as the file.
    unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) == 0 }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Starts `bftswarm daemon --home HOME` detached (own session, stdin from
/// /dev/null, output appended to the home's log) and returns its pid.
pub fn spawn_daemon(home: &Home) -> Result<u32, ProcessError> {
    let exe = std::env::current_exe().map_err(ProcessError::Spawn)?;
    let log_path = home.log();
    let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(HomeError::io("open", &log_path))?;
    let log_err = log.try_clone().map_err(HomeError::io("open", &log_path))?;
    let mut command = Command::new(exe);
    command
        .arg(DAEMON_SUBCOMMAND)
        .arg("--home")
        .arg(home.root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from the
    // terminal's session so that Ctrl-C in the shell does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command.spawn().map_err(ProcessError::Spawn)?;
    Ok(child.id())
}

/// Waits until `ready` says yes, giving up when the daemon `pid` dies or after `limit`.
pub fn wait_until_ready(
    home: &Home,
    pid: u32,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ProcessError> {
    let start = Instant::now();
    let log = home.log().display().to_string();
    loop {
        if ready() {
            return Ok(());
        }
        if !process_alive(pid) {
            let last_log_line = last_line(&home.log()).unwrap_or_else(|| "no output".into());
            return Err(ProcessError::DiedAtStart { last_log_line, log });
        }
        if start.elapsed() >= limit {
            return Err(ProcessError::StartTimeout { seconds: limit.as_secs(), log });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until no daemon holds the home's lock.
pub fn wait_until_stopped(home: &Home, pid: u32, limit: Duration) -> Result<(), ProcessError> {
    let start = Instant::now();
    while running_pid(home).is_some() {
        if start.elapsed() >= limit {
            return Err(ProcessError::StopTimeout { pid, seconds: limit.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Whether `pid` is a live process (a zombie child we have not reaped counts as dead).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    let mut status = 0;
    // SAFETY: plain syscalls on a pid; waitpid only reaps our own child.
    unsafe {
        if libc::waitpid(pid, &mut status, libc::WNOHANG) == pid {
            return false;
        }
        libc::kill(pid, 0) == 0
    }
}

fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|line| !line.trim().is_empty()).map(|line| line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_home_and_a_released_lock_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        assert_eq!(running_pid(&home), None, "no pid file: nothing runs");
        let lock = PidLock::acquire(&home).unwrap();
        assert_eq!(running_pid(&home), Some(std::process::id()));
        match PidLock::acquire(&home) {
            Err(ProcessError::AlreadyRunning { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("a second daemon was allowed: {other:?}"),
        }
        drop(lock);
        assert_eq!(running_pid(&home), None, "a stale pid file does not count");
        PidLock::acquire(&home).unwrap();
    }
}
