//! The swarm survives its own lifecycle, through the real binary and a real
//! daemon: a quarantine then a restart, a daemon killed by SIGKILL under load
//! again and again, a damaged key at start, hooks told the home, and the
//! testnet's start script.

mod common;

use common::{stderr, TestSwarm};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn task(swarm: &TestSwarm, count: usize) -> Value {
    swarm.json(&["task", "orchestrate", "--task", "transfers", "--count", &count.to_string()])
}

/// Every transfer of a finished task committed, but the overdrafts it meant to make.
fn assert_committed_in_full(task: &Value) {
    let (submitted, overdrafts) = (task["submitted"].as_u64().unwrap(), task["expected_overdrafts"].as_u64().unwrap());
    assert_eq!(task["state"], "done", "{task}");
    assert_eq!(task["committed"].as_u64(), Some(submitted - overdrafts), "{task}");
}

fn agents(swarm: &TestSwarm) -> Vec<(String, String, Option<String>)> {
    let list = swarm.json(&["agent", "list", "--json"]);
    let field = |agent: &Value, key: &str| agent[key].as_str().map(String::from);
    let rows = list.as_array().expect("a list");
    rows.iter().map(|a| (field(a, "id").unwrap(), field(a, "status").unwrap(), field(a, "replaced_by"))).collect()
}

fn daemon_pid(swarm: &TestSwarm) -> i32 {
    std::fs::read_to_string(swarm.home.join("daemon.pid")).unwrap().trim().parse().unwrap()
}

#[test]
fn n4f1_a_quarantine_then_a_restart_brings_back_the_replacement_and_the_next_task_commits() {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    swarm.json(&["agent", "spawn", "--type", "validator", "--count", "4", "--json"]);
    assert_committed_in_full(&task(&swarm, 500));
    swarm.json(&["byzantine", "quarantine", "--agent", "bft-agent-2", "--duration", "3600000"]);
    assert_committed_in_full(&task(&swarm, 1000));
    let deadline = Instant::now() + Duration::from_secs(60);
    while agents(&swarm).iter().all(|(_, status, _)| status != "quarantined") {
        assert!(Instant::now() < deadline, "bft-agent-2 not replaced in 60 s: {:?}", agents(&swarm));
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = agents(&swarm);

    swarm.json(&["swarm", "stop"]);
    swarm.json(&["swarm", "start"]);
    assert_eq!(agents(&swarm), before, "the membership record comes back as it was");
    let seated: Vec<&str> = before.iter().filter(|(_, s, _)| s == "active").map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(seated, ["bft-agent-1", "bft-agent-3", "bft-agent-4", "bft-agent-5"]);
    let quarantined = before.iter().find(|(name, _, _)| name == "bft-agent-2").unwrap();
    assert_eq!((quarantined.1.as_str(), quarantined.2.as_deref()), ("quarantined", Some("bft-agent-5")));
    assert_committed_in_full(&task(&swarm, 200));
    let health = swarm.json(&["byzantine", "consensus-health"]);
    assert_eq!((health["total_agents"].as_u64(), health["healthy_agents"].as_u64()), (Some(4), Some(4)), "{health}");
    assert_eq!(health["system_integrity"], "intact", "{health}");
    swarm.json(&["swarm", "stop"]);
}

/// 20 times: a task under way, the daemon SIGKILLed 0.1 to 0.3 s into it,
/// `swarm start`, and a task that must commit in full; what consensus-health
/// counted as committed before a kill is never less after it.
#[test]
fn n4f1_sigkill_of_the_daemon_under_load_twenty_times_loses_nothing_and_never_stalls() {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    swarm.json(&["agent", "spawn", "--type", "validator", "--count", "4", "--json"]);
    let mut acknowledged = 0;
    for cycle in 0..20u64 {
        let mut load = swarm.command();
        load.args(["task", "orchestrate", "--task", "load", "--count", "2000"]).stdout(Stdio::null());
        let mut load = load.stderr(Stdio::null()).spawn().expect("the binary runs");
        std::thread::sleep(Duration::from_millis(100 + (cycle * 37) % 200));
        let health = swarm.json(&["byzantine", "consensus-health"]);
        acknowledged = acknowledged.max(health["transactions_committed"].as_u64().unwrap());
        let pid = daemon_pid(&swarm);
        // SAFETY: kill(2) on the daemon this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        load.wait().unwrap();
        // As an operator would: start again once the killed process is gone (its lock goes with it).
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 {
            assert!(Instant::now() < deadline, "cycle {cycle}: the killed daemon {pid} is still there");
            std::thread::sleep(Duration::from_millis(10));
        }

        swarm.json(&["swarm", "start"]);
        let after = swarm.json(&["byzantine", "consensus-health"]);
        let recovered = after["transactions_committed"].as_u64().unwrap();
        assert!(
            recovered >= acknowledged,
            "cycle {cycle}: {recovered} committed after the kill, {acknowledged} before"
        );
        let checked = task(&swarm, 200);
        if checked["committed"] != checked["submitted"] {
            let log = std::fs::read_to_string(swarm.home.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(150).collect();
            eprintln!("DAEMON LOG TAIL:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        assert_committed_in_full(&checked);
    }
    let health = swarm.json(&["byzantine", "consensus-health"]);
    assert_eq!((health["system_integrity"].as_str(), health["malicious_detected"].as_u64()), (Some("intact"), Some(0)));
    assert_eq!(health["healthy_agents"].as_u64(), Some(4), "{health}");
    swarm.json(&["swarm", "stop"]);
}

/// A 512-bit RSA key in PKCS#8 PEM: a key file of the wrong kind.
const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEApc7AERVNnYgwfjkt
0q49oJfiAHGnO/60tu9EQ0j7P4StUWcL+xML5+WEXudkjjFrdV3kMHNbwlqwuReZ
XMzGGwIDAQABAkBr3tpP8rl8dw0UOqrGKBd5h1pUXV0zEsEnmVO/9/9mDVo1iqIm
DYCq2A4PmLeeQ3BCVFsCS3DzeOlbtPFpihSBAiEA0dfLldrMBw4x9dFQq6IinEYo
gG2v4gYKzYrDnqFxOm0CIQDKJxeHvtq2j1P8nbGdg2LCQTVcOkuzGoT/BpcjTq2H
FwIhAKLKxlStW5z5N3kcOnQ8GjUDoxJZnR7VaKSqemMr73HNAiEAqhBZfnIYxaI9
f1ybLpXS+wTyr6iC75uLQnQIKCP7tCkCIH9r+aWAZTVzs10Kh1cRZovJp3+q+RsB
9r+CfXTQtoEt
-----END PRIVATE KEY-----
";

#[test]
fn a_validator_key_replaced_by_an_rsa_key_fails_swarm_start_with_one_line_naming_the_file() {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    swarm.json(&["agent", "spawn", "--type", "validator", "--count", "4", "--json"]);
    swarm.json(&["swarm", "stop"]);
    std::fs::write(swarm.home.join("keys/bft-agent-2.pem"), RSA_KEY).unwrap();
    let output = swarm.run(&["swarm", "start"]);
    let line = stderr(&output);
    assert!(!output.status.success(), "swarm start exited 0 with a damaged key: {line}");
    assert_eq!(line.trim_end().lines().count(), 1, "not one line: {line}");
    assert!(line.contains("bft-agent-2.pem"), "{line}");
    assert!(!swarm.home.join("daemon.addr").exists(), "no daemon is left serving");
}

#[test]
fn n4f1_with_every_write_ahead_log_damaged_swarm_start_refuses_instead_of_starting_over() {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    swarm.json(&["agent", "spawn", "--type", "validator", "--count", "4", "--json"]);
    assert_committed_in_full(&task(&swarm, 300));
    swarm.json(&["swarm", "stop"]);
    for entry in std::fs::read_dir(swarm.home.join("wal")).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        std::fs::write(entry.path(), &bytes[..bytes.len() / 2]).unwrap();
    }
    let output = swarm.run(&["swarm", "start"]);
    let line = stderr(&output);
    assert!(!output.status.success(), "started from genesis with every log damaged: {line}");
    assert_eq!(line.trim_end().lines().count(), 1, "not one line: {line}");
    assert!(line.contains("every validator's write-ahead log is damaged, missing"), "{line}");
}

#[test]
fn command_hooks_get_the_swarms_home_whatever_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("elsewhere/home");
    let hook = dir.path().join("hook.sh");
    let script =
        "#!/bin/sh\nmkdir -p \"$BFTSWARM_HOME\"\nprintf '%s' \"$BFTSWARM_HOME\" > \"$BFTSWARM_HOME/hook-saw-home\"\n";
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.path().join("swarm.toml");
    let hooks = format!("[[hooks]]\nevent = \"swarm-initialized\"\ncommand = {:?}\n", hook.display().to_string());
    std::fs::write(&config, format!("[swarm]\nmax_agents = 4\n[workload]\ntransactions = 50\n{hooks}")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bftswarm"))
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .arg("--home")
        .arg(&home)
        .env_remove("BFTSWARM_HOME")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // The hook runs beside the swarm, not before the run ends: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let saw = loop {
        match std::fs::read_to_string(home.join("hook-saw-home")) {
            Ok(saw) if !saw.is_empty() => break saw,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("the hook wrote nothing into the home: {other:?}"),
        }
    };
    assert_eq!(std::path::Path::new(&saw), std::path::absolute(&home).unwrap());
}

/// The hub and node processes running in `dir` (the start script runs them from there).
fn processes_in(dir: &std::path::Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if cwd == dir && args.iter().any(|a| a == "hub" || a == "node") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn the_testnet_start_script_runs_the_binary_that_wrote_it_and_ctrl_c_stops_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let testnet = dir.path().join("net");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let written = Command::new(env!("CARGO_BIN_EXE_bftswarm"))
        .args(["testnet", "--validators", "4", "--listen", &listen, "--output"])
        .arg(&testnet)
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", stderr(&written));
    // No bftswarm on PATH: the script must find the binary that wrote it.
    let mut script = Command::new("sh");
    script.arg(testnet.join("start.sh")).env("PATH", "/usr/bin:/bin").env_remove("BFTSWARM");
    let script = std::os::unix::process::CommandExt::process_group(&mut script, 0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let script_pid = script.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_in(&testnet).len() < 5 {
        assert!(Instant::now() < deadline, "the hub and 4 nodes did not start: {:?}", processes_in(&testnet));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ctrl-C: SIGINT to the whole foreground process group.
    // SAFETY: kill(2) on the process group this test started.
    unsafe { libc::kill(-script_pid, libc::SIGINT) };
    let mut script = script;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exited = script.try_wait().unwrap().is_some();
        let left = processes_in(&testnet);
        if exited && left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for pid in &left {
                // SAFETY: cleaning up processes this test started.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            panic!("after Ctrl-C: script exited {exited}, still running: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
