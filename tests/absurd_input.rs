//! Absurd input through the real binary: sizes beyond reason, addresses that
//! are not addresses, key files that are devices or links, damaged stores and
//! closed pipes. Each gets a one-line error (or nothing at all), never a
//! panic, an abort, an endless retry or lost data.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bftswarm");

fn bftswarm(dir: &Path, args: &[&str]) -> Output {
    run_within(Command::new(BIN).current_dir(dir).env("BFTSWARM_HOME", dir.join(".bftswarm")).args(args), 60)
}

/// Runs `command` to its end; kills it and fails after `seconds`.
fn run_within(command: &mut Command, seconds: u64) -> Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the binary runs");
    let pid = child.id();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(Duration::from_secs(seconds)) {
        Ok(output) => output.expect("the output"),
        Err(_) => {
            // SAFETY: kill(2) with the pid of our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{command:?} did not end within {seconds} s");
        }
    }
}

/// The command failed as a usage error (exit 2) with one line that contains every one of `needles`.
fn assert_usage_error(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "exit {:?}; stderr: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(line.starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(line.contains(needle), "{line:?} does not say {needle:?}");
    }
}

/// A testnet of four node processes in `dir`.
fn testnet(dir: &Path) {
    let written = bftswarm(dir, &["testnet", "--validators", "4", "--listen", "127.0.0.1:0", "--output", "net"]);
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
}

#[test]
fn run_count_beyond_the_limit_is_an_error_naming_it_not_an_allocation_abort() {
    let dir = tempfile::tempdir().unwrap();
    let output = bftswarm(dir.path(), &["run", "--count", "10000000000"]);
    assert_usage_error(&output, &["--count", "10000000000", "10000000"]);
}

#[test]
fn run_count_zero_is_an_error_not_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let output = bftswarm(dir.path(), &["run", "--count", "0"]);
    assert_usage_error(&output, &["--count 0", "between 1 and"]);
}

#[test]
fn workload_accounts_beyond_the_limit_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("huge.toml"), "[workload]\naccounts = 1000000000000\n").unwrap();
    let output = bftswarm(dir.path(), &["run", "--config", "huge.toml"]);
    assert_usage_error(&output, &["workload.accounts", "1000000"]);
}

#[test]
fn hub_transactions_beyond_the_limit_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let output = bftswarm(dir.path(), &["hub", "--home", "net/hub", "--transactions", "10000000000"]);
    assert_usage_error(&output, &["--transactions", "10000000"]);
}

#[test]
fn testnet_of_a_million_validators_is_refused_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let output = bftswarm(dir.path(), &["testnet", "--validators", "1000000", "--output", "net"]);
    assert_usage_error(&output, &["1024"]);
    assert!(!dir.path().join("net").exists(), "nothing is written");
}

#[test]
fn testnet_listen_that_is_not_an_address_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = bftswarm(dir.path(), &["testnet", "--validators", "4", "--listen", "bogus", "--output", "net"]);
    assert_usage_error(&output, &["--listen", "bogus", "HOST:PORT"]);
    assert!(!dir.path().join("net/start.sh").exists(), "no start script that cannot work");
}

#[test]
fn node_hub_that_is_not_an_address_is_a_usage_error_not_an_endless_retry() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let output = bftswarm(dir.path(), &["node", "--home", "net/bft-agent-1", "--hub", "bogus"]);
    assert_usage_error(&output, &["--hub", "bogus", "HOST:PORT"]);
}

#[test]
fn node_keypair_that_is_a_device_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let started = Instant::now();
    let args = ["node", "--home", "net/bft-agent-1", "--hub", "127.0.0.1:9", "--keypair", "/dev/zero"];
    let output = bftswarm(dir.path(), &args);
    assert_usage_error(&output, &["/dev/zero", "not a regular file"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    // An oversized regular file is refused too, after reading no more than the limit.
    std::fs::write(dir.path().join("huge.pem"), vec![b'A'; 1 << 20]).unwrap();
    let args = ["node", "--home", "net/bft-agent-1", "--hub", "127.0.0.1:9", "--keypair", "huge.pem"];
    assert_usage_error(&bftswarm(dir.path(), &args), &["huge.pem", "1048576 bytes"]);
}

#[test]
fn generate_keypair_force_does_not_write_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("key.pem")).unwrap();
    let args = ["byzantine", "generate-keypair", "--agent-name", "a", "--output", "key.pem", "--force"];
    let output = bftswarm(dir.path(), &args);
    assert_usage_error(&output, &["key.pem", "symbolic link"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two descriptors; the read end is closed at once.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: the write end is ours and handed over once.
    let write_end = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let output = Command::new(BIN)
        .args(["completions", "zsh"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
}

#[test]
fn a_truncated_write_ahead_log_is_moved_aside_without_redbs_raw_panic_message() {
    // One validator's log cut at a different point each time (some cuts make redb assert),
    // in a fresh home each time: with more than f logs damaged the swarm cannot vote until
    // the passive validators are past what they may have signed, and with all of them it
    // refuses to start (tests/lifecycle.rs).
    for cut in 1..=4 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.toml"), "[storage]\nwal = true\nfsync = false\n").unwrap();
        let args = ["run", "--config", "wal.toml", "--count", "300", "--json", "--home", "home"];
        let first = bftswarm(dir.path(), &args);
        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        let log = dir.path().join(format!("home/wal/bft-agent-{cut}.redb"));
        let bytes = std::fs::read(&log).unwrap();
        std::fs::write(&log, &bytes[..bytes.len() * cut / 6]).unwrap();
        let again = bftswarm(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "cut at {cut}/6: {stderr}");
        assert!(!stderr.contains("panicked"), "redb's panic reached the log:\n{stderr}");
        assert!(!stderr.contains("assertion"), "redb's panic reached the log:\n{stderr}");
        assert!(stderr.contains("the file is damaged") && stderr.contains("moved it to"), "{stderr}");
    }
}

/// A swarm home whose daemon is killed when the test ends, however it ends.
struct Daemon(tempfile::TempDir);

impl Drop for Daemon {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(self.0.path().join(".bftswarm/daemon.pid")) else { return };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: signals the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn the_control_api_answers_a_stranger_401_before_reading_the_body_and_an_empty_memory_store_is_refused() {
    let daemon = Daemon(tempfile::tempdir().unwrap());
    let dir = daemon.0.path();
    let init = bftswarm(dir, &["swarm", "init", "--max-agents", "4"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let addr = std::fs::read_to_string(dir.join(".bftswarm/daemon.addr")).unwrap();
    let body = "{\"not\": \"a spawn request\"}";
    let request = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(addr.trim()).unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.contains("missing field"), "the body's schema was named to a stranger: {answer}");

    let stopped = bftswarm(dir, &["swarm", "stop"]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let store = dir.join(".bftswarm/swarm.redb");
    std::fs::write(&store, b"").unwrap();
    let started = bftswarm(dir, &["swarm", "start"]);
    let log = std::fs::read_to_string(dir.join(".bftswarm/daemon.log")).unwrap_or_default();
    let said = format!("{}{log}", String::from_utf8_lossy(&started.stderr));
    assert!(!started.status.success(), "the daemon started on an emptied memory store:\n{said}");
    assert!(said.contains("swarm.redb") && said.contains("empty"), "{said}");
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0, "the store was replaced");
}

#[test]
fn bench_sizes_beyond_their_limits_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let huge = bftswarm(dir.path(), &["bench", "--validators", "4", "--windows", "18446744073709551615"]);
    assert_usage_error(&huge, &["65536"]);
    let transfers = bftswarm(dir.path(), &["bench", "--validators", "4", "--transactions", "10000000000"]);
    assert_usage_error(&transfers, &["--transactions", "10000000"]);
    let catch_up = bftswarm(dir.path(), &["bench", "--catch-up", "18446744073709551615"]);
    assert_usage_error(&catch_up, &["--catch-up", "workload.transactions"]);
}
