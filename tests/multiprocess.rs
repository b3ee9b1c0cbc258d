//! Validators as separate processes on loopback: `bftswarm testnet` writes
//! the homes, `bftswarm hub` listens and submits a workload, one
//! `bftswarm node` per validator joins over TCP. Crashes (SIGKILL and
//! restart), partitions (SIGSTOP/SIGCONT), refused keys and a mixed swarm.
//!
//! The scenarios run one at a time (they share two cores); every wait has a
//! deadline and fails with what the hub printed.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bftswarm");

/// One scenario at a time: each runs n + 1 processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A testnet's processes; every child is killed when the scenario ends, however it ends.
struct Testnet {
    dir: tempfile::TempDir,
    hub: Option<Child>,
    hub_lines: Option<Receiver<String>>,
    hub_stderr: Arc<Mutex<Vec<String>>>,
    nodes: Vec<Option<Child>>,
}

impl Testnet {
    fn write(validators: usize, in_process: usize) -> Testnet {
        Testnet::write_with_standby(validators, in_process, 0)
    }

    fn write_with_standby(validators: usize, in_process: usize, standby: usize) -> Testnet {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let written = Command::new(BIN)
            .args(["testnet", "--validators", &validators.to_string(), "--in-process", &in_process.to_string()])
            .args(["--standby", &standby.to_string()])
            .args(["--listen", "127.0.0.1:0", "--output"])
            .arg(dir.path())
            .output()
            .expect("bftswarm testnet runs");
        assert!(written.status.success(), "bftswarm testnet failed: {}", String::from_utf8_lossy(&written.stderr));
        let nodes = (0..validators - in_process + standby).map(|_| None).collect();
        Testnet { dir, hub: None, hub_lines: None, hub_stderr: Arc::default(), nodes }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Starts the hub with `args`; returns the address it listens on.
    fn start_hub(&mut self, args: &[&str]) -> String {
        let mut child = Command::new(BIN)
            .arg("hub")
            .arg("--home")
            .arg(self.path("hub"))
            .args(args)
            .env("BFTSWARM_CONSENSUS__VIEW_CHANGE_TIMEOUT_MS", "1000")
            .env("BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL", "20")
            .env("BFTSWARM_CLIENT__REQUEST_RETRY_MS", "500")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hub starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (send, receive) = channel();
        let seen = self.hub_stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.clone());
                let _ = send.send(line);
            }
        });
        self.hub = Some(child);
        self.hub_lines = Some(receive);
        self.wait_for_hub_line("hub listening on", Duration::from_secs(20));
        std::fs::read_to_string(self.path("hub/hub.addr")).expect("the hub wrote hub.addr")
    }

    /// A testnet whose hub runs a workload of `transactions` (`window` in
    /// flight) over all its node processes (`durable`: with fsync), once the
    /// workload started; and the hub's address.
    fn under_load(
        validators: usize,
        in_process: usize,
        (transactions, window): (usize, usize),
        durable: bool,
    ) -> (Testnet, String) {
        let mut net = Testnet::write(validators, in_process);
        let hub = net.start_hub_with_workload(transactions, window);
        for index in 0..validators - in_process {
            if durable {
                net.start_durable_node(index, &hub);
            } else {
                net.start_node(index, &hub);
            }
        }
        net.wait_for_hub_line("workload started", Duration::from_secs(30));
        (net, hub)
    }

    /// Starts the hub with a workload of `transactions` (`window` in flight); returns its address.
    fn start_hub_with_workload(&mut self, transactions: usize, window: usize) -> String {
        let args = hub_args(transactions, window);
        self.start_hub(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts the hub again on the address it listened on (`hub`), where its
    /// node processes, still running, reconnect; runs `transactions` more
    /// transfers and returns the report and what the hub printed this time.
    fn restart_hub(&mut self, hub: &str, transactions: usize) -> (Value, String) {
        let printed_before = self.hub_stderr.lock().unwrap().len();
        let mut args = hub_args(transactions, 64);
        args.extend(["--listen".to_owned(), hub.to_owned()]);
        self.start_hub(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let report = self.hub_report(Duration::from_secs(60));
        (report, self.hub_stderr.lock().unwrap()[printed_before..].join("\n"))
    }

    fn wait_for_hub_line(&self, needle: &str, limit: Duration) {
        let lines = self.hub_lines.as_ref().expect("the hub runs");
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the hub did not print `{needle}` within {limit:?}; it printed:\n{}", self.hub_log());
    }

    fn hub_log(&self) -> String {
        self.hub_stderr.lock().unwrap().join("\n")
    }

    fn start_node(&mut self, index: usize, hub: &str) {
        self.start_node_with(index, hub, &["--no-fsync"]);
    }

    /// A node whose log survives SIGKILL: with `--no-fsync` a killed process
    /// loses its last commits (redb keeps them in memory until a durable one),
    /// which is what the flag promises, not what a crash test can assert on.
    fn start_durable_node(&mut self, index: usize, hub: &str) {
        self.start_node_with(index, hub, &[]);
    }

    fn start_node_with(&mut self, index: usize, hub: &str, args: &[&str]) {
        let name = format!("bft-agent-{}", index + 1);
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).expect("a node log");
        let child = Command::new(BIN)
            .args(["node", "--hub", hub, "--home"])
            .arg(self.path(&name))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the node starts");
        self.nodes[index] = Some(child);
    }

    fn signal(&mut self, index: usize, signal: i32) {
        let child = self.nodes[index].as_ref().expect("the node runs");
        // SAFETY: kill(2) with the pid of our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0, "signal {signal} to node {index}");
    }

    fn kill_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for node `index` to exit on its own; panics after `limit`.
    fn wait_for_node_exit(&mut self, index: usize, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.nodes[index].as_mut().expect("the node runs");
        loop {
            if let Some(status) = child.try_wait().expect("the node can be waited for") {
                self.nodes[index] = None;
                return status;
            }
            assert!(Instant::now() < deadline, "node {index} did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the hub to exit with its report; panics with its log otherwise.
    fn hub_report(&mut self, limit: Duration) -> Value {
        let mut hub = self.hub.take().expect("the hub runs");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = hub.try_wait().expect("the hub can be waited for") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = hub.kill();
                panic!("the hub did not finish within {limit:?}; it printed:\n{}", self.hub_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut hub.stdout.take().expect("piped stdout"), &mut stdout).unwrap();
        assert!(status.success(), "the hub failed ({status}):\n{}\n{stdout}", self.hub_log());
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the hub's report is not JSON ({e}):\n{stdout}"))
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].is_some() {
                self.signal(index, libc::SIGCONT);
            }
            self.kill_node(index);
        }
        if let Some(mut hub) = self.hub.take() {
            let _ = hub.kill();
            let _ = hub.wait();
        }
    }
}

fn hub_args(transactions: usize, window: usize) -> Vec<String> {
    let (transactions, window) = (transactions.to_string(), window.to_string());
    ["--transactions", &transactions, "--window", &window, "--exit-when-done", "--json", "--wait-secs", "30"]
        .map(String::from)
        .to_vec()
}

/// The report's validators by name, sorted (the order they joined varies with restarts).
fn agent_names(report: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = report["agents"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    names.sort_unstable();
    names
}

/// Every transfer completed exactly once, the ledgers agree and every validator settled on them.
fn assert_nothing_lost(report: &Value, validators: u64) {
    eprintln!("elapsed {} ms, view {}", report["elapsed_ms"], report["view"]);
    let submitted = report["transactions_submitted"].as_u64().unwrap();
    let committed = report["transactions_committed"].as_u64().unwrap();
    let rejected = report["transactions_rejected"].as_u64().unwrap();
    assert_eq!(committed + rejected, submitted, "every transfer completes: {report:#}");
    assert_eq!(rejected, report["expected_overdrafts"].as_u64().unwrap(), "only overdrafts are rejected: {report:#}");
    assert_eq!(report["system_integrity"], "intact", "{report:#}");
    assert_eq!(report["healthy_agents"].as_u64(), Some(validators), "every validator caught up: {report:#}");
}

fn run_workload(validators: usize, in_process: usize, transactions: usize) -> Value {
    let mut net = Testnet::write(validators, in_process);
    let hub = net.start_hub_with_workload(transactions, 64);
    for index in 0..validators - in_process {
        net.start_node(index, &hub);
    }
    net.hub_report(Duration::from_secs(60))
}

#[test]
fn n4_node_processes_commit_a_workload() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let report = run_workload(4, 0, 3000);
    assert_nothing_lost(&report, 4);
}

#[test]
fn n7_node_processes_commit_a_workload() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let report = run_workload(7, 0, 2000);
    assert_nothing_lost(&report, 7);
}

#[test]
fn mixed_swarm_of_in_process_and_remote_validators_commits_a_workload() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let report = run_workload(4, 2, 2000);
    assert_nothing_lost(&report, 4);
}

/// Appends `text` to the hub's config.toml.
fn add_to_hub_config(net: &Testnet, text: &str) {
    let config = net.path("hub/config.toml");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + text).unwrap();
}

/// The report's detection log convicted exactly `agent` on f+1 accusations of
/// corrupted signatures, quarantined it and replaced it; nobody else was convicted.
fn assert_convicted_and_replaced(report: &Value, agent: &str) {
    let detections = report["detections"].as_array().expect("a detection log");
    assert_eq!(detections.len(), 1, "one conviction: {report:#}");
    let record = &detections[0];
    assert_eq!(record["detected_agent"], agent, "{report:#}");
    assert_eq!(record["fault_type"], "signature-corruption", "{report:#}");
    assert_eq!(record["detection_method"], "f-plus-one-accusations", "{report:#}");
    assert!(record["votes_against"].as_u64().unwrap() >= 2, "f+1 = 2 distinct accusers: {report:#}");
    assert_eq!(record["action"], "quarantined", "{report:#}");
    assert!(record["replaced_by"].is_string(), "a fresh validator took its seat: {report:#}");
    assert_eq!(report["false_positive_rate"].as_f64(), Some(0.0), "{report:#}");
    let names = agent_names(report);
    assert!(!names.contains(&agent), "the convicted agent left the committee: {names:?}");
}

#[test]
fn node_processes_convict_a_byzantine_validator_inside_the_hub() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // bft-agent-4 runs inside the hub and corrupts half of its signatures; the
    // three node processes are the only possible accusers, and f+1 = 2 of them must report.
    let mut net = Testnet::write(4, 1);
    add_to_hub_config(
        &net,
        "\n[[faults]]\nagent = \"bft-agent-4\"\nfault_type = \"signature-corruption\"\nprobability = 0.5\n",
    );
    let hub = net.start_hub_with_workload(2000, 64);
    for index in 0..3 {
        net.start_node(index, &hub);
    }
    let report = net.hub_report(Duration::from_secs(90));
    assert_nothing_lost(&report, 4);
    assert_convicted_and_replaced(&report, "bft-agent-4");
    // Started again, the hub comes back in the epoch of the replacement, which
    // it runs from its key and log in the hub's home; the convicted one stays out.
    let (report, printed) = net.restart_hub(&hub, 300);
    assert!(printed.contains("waiting for 3 validator processes (epoch 1)"), "{printed}");
    assert_nothing_lost(&report, 4);
    let names = agent_names(&report);
    assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"], "{report:#}");
    assert_eq!(report["detections"].as_array().map(Vec::len), Some(0), "nobody convicted anew: {report:#}");
}

#[test]
fn a_byzantine_node_process_is_convicted_refused_and_replaced() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Testnet::write(4, 0);
    let hub = net.start_hub_with_workload(2000, 64);
    for index in 0..3 {
        net.start_node(index, &hub);
    }
    net.start_node_with(3, &hub, &["--no-fsync", "--fault", "signature-corruption", "--fault-probability", "0.5"]);
    // Quarantined, the node is hung up on and refused when it reconnects; it exits saying why.
    let refused = net.wait_for_node_exit(3, Duration::from_secs(60));
    let log = std::fs::read_to_string(net.path("bft-agent-4.log")).unwrap();
    assert!(!refused.success() && log.contains("bft-agent-4 is quarantined"), "{refused}: {log}");
    let report = net.hub_report(Duration::from_secs(90));
    assert_nothing_lost(&report, 4);
    assert_convicted_and_replaced(&report, "bft-agent-4");
}

#[test]
fn sigkill_and_restart_of_f_nodes_during_load_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Testnet::write(7, 0);
    let hub = net.start_hub_with_workload(8000, 16);
    for index in 0..7 {
        match index {
            2 | 5 => net.start_durable_node(index, &hub),
            _ => net.start_node(index, &hub),
        }
    }
    net.wait_for_hub_line("workload started", Duration::from_secs(30));
    // f = 2: crash two backups in the middle of the load, then start them again from their logs.
    std::thread::sleep(Duration::from_millis(400));
    net.kill_node(2);
    net.kill_node(5);
    std::thread::sleep(Duration::from_millis(400));
    net.start_durable_node(2, &hub);
    net.start_durable_node(5, &hub);
    let report = net.hub_report(Duration::from_secs(60));
    assert_nothing_lost(&report, 7);
    for restarted in ["bft-agent-3", "bft-agent-6"] {
        let log = std::fs::read_to_string(net.path(&format!("{restarted}.log"))).unwrap();
        let rebuilt = format!("{restarted}: rebuilt from its write-ahead log");
        assert!(log.contains(&rebuilt), "{restarted} came back from its log:\n{log}");
    }
}

#[test]
fn sigkill_of_a_node_without_fsync_brings_it_back_passive_unconvicted_and_caught_up() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut net, hub) = Testnet::under_load(4, 0, (6000, 16), false);
    // Its log keeps only redb's last durable commit: it may have signed more than it holds.
    std::thread::sleep(Duration::from_millis(400));
    net.kill_node(2);
    std::thread::sleep(Duration::from_millis(400));
    net.start_node(2, &hub);
    let report = net.hub_report(Duration::from_secs(90));
    assert_nothing_lost(&report, 4);
    assert_eq!(report["detections"].as_array().map(Vec::len), Some(0), "nobody convicted: {report:#}");
    let log = std::fs::read_to_string(net.path("bft-agent-3.log")).unwrap();
    assert!(log.contains("not closed cleanly without fsync; passive"), "bft-agent-3 came back passive:\n{log}");
}

#[test]
fn sigstop_partition_of_the_primary_recovers_after_sigcont() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut net, _hub) = Testnet::under_load(4, 0, (6000, 16), false);
    std::thread::sleep(Duration::from_millis(300));
    // The primary stops answering: the others move to a new view and go on without it.
    net.signal(0, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    net.signal(0, libc::SIGCONT);
    let report = net.hub_report(Duration::from_secs(60));
    assert_nothing_lost(&report, 4);
    assert!(report["view"].as_u64().unwrap() >= 1, "the swarm changed view around the stopped primary: {report:#}");
    let change = &report["view_changes"][0];
    assert_eq!(change["old_primary"], "bft-agent-1", "the node processes report their view changes: {report:#}");
}

#[test]
fn node_with_an_unregistered_key_is_refused_with_a_clear_error() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Testnet::write(4, 0);
    let hub = net.start_hub(&["--wait-secs", "30"]);
    let stray = net.path("stray-key.pem");
    let generated = Command::new(BIN)
        .args(["byzantine", "generate-keypair", "--agent-name", "stray", "--output"])
        .arg(&stray)
        .output()
        .expect("generate-keypair runs");
    assert!(generated.status.success());
    let refused = run_node_to_exit(&net.path("bft-agent-1"), &hub, &["--keypair", stray.to_str().unwrap()]);
    assert!(!refused.status.success(), "a stray key must not join");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused this node") && stderr.contains("not registered with this hub"), "{stderr}");

    // And the node refuses a hub that cannot prove the key its home names.
    let impostor = "0x".to_string() + &"11".repeat(32);
    let wrong_hub = run_node_to_exit(&net.path("bft-agent-1"), &hub, &["--hub-key", &impostor]);
    assert!(!wrong_hub.status.success());
    let stderr = String::from_utf8_lossy(&wrong_hub.stderr);
    assert!(stderr.contains("not the expected"), "{stderr}");
}

/// Runs a node that must exit on its own within 20 s.
fn run_node_to_exit(home: &Path, hub: &str, args: &[&str]) -> std::process::Output {
    let child = Command::new(BIN)
        .args(["node", "--no-fsync", "--hub", hub, "--home"])
        .arg(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the node starts");
    let pid = child.id();
    let (send, receive) = channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(Duration::from_secs(20)) {
        Ok(output) => output.expect("the node's output"),
        Err(_) => {
            // SAFETY: kill(2) with the pid of our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the node did not exit within 20 s although the hub must refuse it");
        }
    }
}

#[test]
fn membership_change_removes_a_node_process_and_adds_a_standby_one_that_survives_sigkill() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Testnet::write_with_standby(4, 0, 1);
    let config = net.path("hub/config.toml");
    let change = "\n[[membership]]\nafter_transfers = 800\nadd = 1\nremove = [\"bft-agent-4\"]\n";
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + change).unwrap();
    let hub = net.start_hub_with_workload(10000, 16);
    for index in 0..4 {
        net.start_node(index, &hub);
    }
    net.wait_for_hub_line("membership changed to epoch 1", Duration::from_secs(40));
    net.start_durable_node(4, &hub);
    // The removed node process is hung up on, refused when it reconnects, and exits saying why.
    let removed = net.wait_for_node_exit(3, Duration::from_secs(20));
    let log = std::fs::read_to_string(net.path("bft-agent-4.log")).unwrap();
    assert!(!removed.success() && log.contains("was removed from the committee"), "{removed}: {log}");
    // The joined node keeps a log too: killed under load and started again, it rebuilds from it.
    std::thread::sleep(Duration::from_millis(500));
    net.kill_node(4);
    std::thread::sleep(Duration::from_millis(300));
    let first_run = std::fs::read_to_string(net.path("bft-agent-5.log")).unwrap();
    net.start_durable_node(4, &hub);
    let report = net.hub_report(Duration::from_secs(60));
    let log = std::fs::read_to_string(net.path("bft-agent-5.log")).unwrap();
    assert!(first_run.contains("bft-agent-5: a new write-ahead log"), "{first_run}");
    assert!(
        log.contains("bft-agent-5: rebuilt from its write-ahead log"),
        "bft-agent-5 came back from its log:\n{log}"
    );
    assert_nothing_lost(&report, 4);
    let change = &report["membership_changes"][0];
    assert_eq!(change["added"], serde_json::json!(["bft-agent-5"]), "{report:#}");
    assert_eq!(change["removed"], serde_json::json!(["bft-agent-4"]), "{report:#}");
    let names = agent_names(&report);
    assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"], "{report:#}");
    // Started again, the hub comes back in epoch 1: it waits for bft-agent-5,
    // not for the removed bft-agent-4, and makes no change twice.
    let (report, printed) = net.restart_hub(&hub, 300);
    assert!(printed.contains("waiting for 4 validator processes (epoch 1)"), "{printed}");
    assert_nothing_lost(&report, 4);
    assert_eq!(report["membership_changes"].as_array().map(Vec::len), Some(0), "{report:#}");
    let names = agent_names(&report);
    assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"], "{report:#}");
}

#[test]
fn a_hub_killed_under_load_comes_back_and_its_next_workload_commits_in_full() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // bft-agent-4 runs inside the hub, from the hub's log; the others are node processes.
    let (mut net, hub) = Testnet::under_load(4, 1, (20000, 64), true);
    std::thread::sleep(Duration::from_millis(400));
    let mut killed = net.hub.take().expect("the hub runs");
    killed.kill().expect("SIGKILL the hub");
    killed.wait().expect("the killed hub is reaped");
    // Its account nonces come from the validators' ledgers, not from the
    // killed process: every transfer of the next workload commits or is an overdraft.
    let (report, printed) = net.restart_hub(&hub, 500);
    assert!(printed.contains("waiting for 3 validator processes (epoch 0)"), "{printed}");
    assert_nothing_lost(&report, 4);
    assert_eq!(report["detections"].as_array().map(Vec::len), Some(0), "nobody convicted: {report:#}");
}

#[test]
fn a_validator_of_the_hub_whose_log_is_gone_comes_back_passive() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // bft-agent-4 runs inside the hub: no peer's log lies beside its own.
    let mut net = Testnet::write(4, 1);
    let hub = net.start_hub_with_workload(600, 64);
    for index in 0..3 {
        net.start_node(index, &hub);
    }
    assert_nothing_lost(&net.hub_report(Duration::from_secs(60)), 4);
    std::fs::remove_file(net.path("hub/wal/bft-agent-4.redb")).expect("the hub keeps bft-agent-4's log");
    // The hub's record says the swarm ran: bft-agent-4 cannot prove what it
    // signed, so it rejoins passive instead of signing its old slots again.
    let (report, printed) = net.restart_hub(&hub, 300);
    assert!(printed.contains("the write-ahead log of bft-agent-4 is missing while the swarm ran before"), "{printed}");
    assert_nothing_lost(&report, 4);
    assert_eq!(report["detections"].as_array().map(Vec::len), Some(0), "nobody convicted: {report:#}");
}

#[test]
fn a_hub_home_of_another_swarm_is_refused() {
    let first = Testnet::write(4, 0);
    let second = Testnet::write(4, 0);
    // A hub that runs once writes its record, even when its nodes never come.
    let ran = Command::new(BIN).arg("hub").arg("--home").arg(first.path("hub")).args(["--wait-secs", "1"]).output();
    assert!(!ran.unwrap().status.success(), "no node came");
    std::fs::copy(first.path("hub/membership.json"), second.path("hub/membership.json")).unwrap();
    let refused = Command::new(BIN).arg("hub").arg("--home").arg(second.path("hub")).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("membership.json records another swarm than committee.toml"), "{stderr}");
}

#[test]
fn testnet_refuses_a_swarm_that_cannot_tolerate_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN).args(["testnet", "--validators", "3", "--output"]).arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 4"), "{stderr}");
}
