//! Observability end to end, with the real binary: the daemon's, the hub's
//! and the nodes' `/metrics` agree with the reports of the runs they served;
//! the event stream sends each event once; `--watch` survives a daemon
//! restart; command hooks hear of a view change once; JSON logs name agents.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bftswarm");

/// A swarm home in a temporary directory; its daemon is killed with it.
struct Home {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let home = dir.path().join(".bftswarm");
        Home { dir, home }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.current_dir(self.dir.path()).env("BFTSWARM_HOME", &self.home).env_remove("BFTSWARM_ADDR");
        command
    }

    fn json(&self, args: &[&str]) -> Value {
        let output: Output = self.command().args(args).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} failed: {stderr}");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
    }

    /// `swarm init` and `agent spawn` of `n` validators: an active swarm.
    fn active(n: usize) -> Home {
        let home = Home::new();
        home.json(&["swarm", "init", "--max-agents", &n.to_string(), "--json"]);
        let spawned = home.json(&["agent", "spawn", "--count", &n.to_string(), "--type", "validator", "--json"]);
        assert_eq!(spawned["swarm_status"], "active", "{spawned}");
        home
    }

    fn task(&self, count: usize) -> Value {
        let task = self.json(&["task", "orchestrate", "--task", "payments", "--count", &count.to_string(), "--json"]);
        assert_eq!(task["state"], "done", "{task}");
        task
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(self.home.join("daemon.pid")) else { return };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: signals the daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// One HTTP/1.0 GET; the body, read until the server closes or `limit` passes.
fn http_get(url: &str, limit: Duration) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    stream.set_read_timeout(Some(limit)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes); // a stream ends by the time-out
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert!(text.starts_with("HTTP/1.") && text[9..12] == *"200", "GET {url}: {text}");
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The value of the sample `name{…labels…}` (all of `labels` among its labels), or `name` alone.
fn sample(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
        (metric == name && labels.iter().all(|label| rest.contains(label))).then(|| value.parse().ok())?
    })
}

/// Scrapes `url` until `check` holds (validators catch up after the client's f+1), or panics with the page.
fn scrape_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = http_get(url, Duration::from_secs(5));
        if check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{what} never held at {url}:\n{page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn n4_daemon_metrics_and_event_stream_match_the_task_report() {
    let home = Home::active(4);
    let status = home.json(&["swarm", "status", "--json"]);
    let metrics_url = status["metrics_url"].as_str().expect("swarm status gives metrics_url").to_string();
    let dashboard_url = status["dashboard_url"].as_str().expect("swarm status gives dashboard_url").to_string();
    assert!(metrics_url.starts_with("http://127.0.0.1:") && metrics_url.ends_with("/metrics"), "{status}");

    let task = home.task(300);
    let committed = task["committed"].as_f64().unwrap();
    assert!(committed > 0.0, "{task}");
    let page = scrape_until(&metrics_url, "every validator's committed counter equals the report's", |page| {
        (1..=4).all(|i| {
            let label = format!("validator=\"bft-agent-{i}\"");
            sample(page, "bftswarm_consensus_committed_transactions_total", &[&label]) == Some(committed)
        })
    });
    assert_eq!(sample(&page, "bftswarm_client_committed_transactions_total", &[]), Some(committed), "{page}");
    assert!(sample(&page, "bftswarm_crypto_signatures_verified_total", &[]).unwrap_or(0.0) >= 4.0 * 300.0);
    assert!(page.contains("bftswarm_client_commit_latency_seconds_bucket"), "latency is a histogram: {page}");

    // Each executed batch once on the stream, not once per validator: the counts add up to the report.
    let stream_url = metrics_url.replace("/metrics", "/v1/events");
    let stream = http_get(&stream_url, Duration::from_millis(1500));
    let committed_on_stream: f64 = stream
        .split("\n\n")
        .filter(|frame| frame.contains("event: transaction-committed"))
        .filter_map(|frame| frame.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(|data| serde_json::from_str::<Value>(data).unwrap()["count"].as_f64().unwrap())
        .sum();
    assert_eq!(committed_on_stream, committed, "each batch once on the event stream");
    let ids: Vec<&str> = stream.lines().filter_map(|line| line.strip_prefix("id: ")).collect();
    let last = ids.last().expect("events have ids");
    // Resuming after the last id sends nothing old.
    let resumed = http_get(&format!("{stream_url}?last_event_id={last}"), Duration::from_millis(800));
    assert!(!resumed.contains("id: "), "after the last id nothing is sent again: {resumed}");

    let html = http_get(&dashboard_url, Duration::from_secs(5));
    assert!(html.contains("<title>bftswarm dashboard</title>") && !html.contains("https://"), "self-contained page");
    let snapshot: Value =
        serde_json::from_str(&http_get(&dashboard_url.replace("/dashboard", "/v1/dashboard"), Duration::from_secs(5)))
            .unwrap();
    let names: Vec<&str> = snapshot["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-4"]);
    assert_eq!(snapshot["agents"][0]["role"], "primary");
    home.json(&["swarm", "stop"]);
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The hub's pretty-printed JSON report: stdout lines up to the closing brace.
fn read_report(lines: &Receiver<String>, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    let mut text = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else { break };
        text.push_str(&line);
        text.push('\n');
        if line == "}" {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        }
    }
    panic!("no report within {limit:?}: {text}");
}

fn lines_of(read: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    receive
}

#[test]
fn n4_hub_and_node_processes_metrics_match_the_hub_report() {
    let dir = tempfile::tempdir().unwrap();
    let written = Command::new(BIN)
        .args(["testnet", "--validators", "4", "--in-process", "0", "--listen", "127.0.0.1:0", "--output"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let mut processes = Processes(Vec::new());
    let mut hub = Command::new(BIN)
        .args(["hub", "--home"])
        .arg(dir.path().join("hub"))
        .args(["--transactions", "300", "--window", "64", "--json", "--wait-secs", "30"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report_lines = lines_of(hub.stdout.take().unwrap());
    processes.0.push(hub);
    let deadline = Instant::now() + Duration::from_secs(20);
    let hub_file = |name: &str| std::fs::read_to_string(dir.path().join("hub").join(name)).ok();
    while hub_file("hub.addr").is_none() || hub_file("hub.http").is_none() {
        assert!(Instant::now() < deadline, "the hub wrote no hub.addr and hub.http");
        std::thread::sleep(Duration::from_millis(50));
    }
    let hub_addr = hub_file("hub.addr").unwrap();
    let mut node_urls = Vec::new();
    for index in 1..=4 {
        let port = free_port();
        let node = Command::new(BIN)
            .args(["node", "--no-fsync", "--hub", &hub_addr, "--home"])
            .arg(dir.path().join(format!("bft-agent-{index}")))
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        processes.0.push(node);
        node_urls.push((format!("bft-agent-{index}"), format!("http://127.0.0.1:{port}/metrics")));
    }
    let report = read_report(&report_lines, Duration::from_secs(90));
    let committed = report["transactions_committed"].as_f64().unwrap();
    assert!(committed > 0.0, "{report:#}");

    let hub_url = format!("http://{}/metrics", hub_file("hub.http").unwrap());
    let page = scrape_until(&hub_url, "the hub's client counter equals the report's", |page| {
        sample(page, "bftswarm_client_committed_transactions_total", &[]) == Some(committed)
    });
    assert_eq!(sample(&page, "bftswarm_hub_connected_peers", &[]), Some(4.0), "{page}");
    // The hub serves the dashboard too: its snapshot names the four node processes' validators.
    let hub_base = hub_url.trim_end_matches("/metrics");
    assert!(http_get(&format!("{hub_base}/dashboard"), Duration::from_secs(5)).contains("bftswarm dashboard"));
    let snapshot: Value =
        serde_json::from_str(&http_get(&format!("{hub_base}/v1/dashboard"), Duration::from_secs(10))).unwrap();
    assert_eq!(snapshot["process"], "hub", "{snapshot}");
    assert_eq!(snapshot["agents"].as_array().map(Vec::len), Some(4), "{snapshot}");
    for (name, url) in &node_urls {
        let label = format!("validator=\"{name}\"");
        scrape_until(url, &format!("{name}'s committed counter equals the report's"), |page| {
            sample(page, "bftswarm_consensus_committed_transactions_total", &[&label]) == Some(committed)
        });
    }
}

#[test]
fn detect_malicious_watch_follows_the_event_stream_across_a_daemon_restart() {
    let home = Home::active(4);
    let mut watch = home
        .command()
        .args(["byzantine", "detect-malicious", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = lines_of(watch.stdout.take().unwrap());
    let mut processes = Processes(vec![watch]);
    std::thread::sleep(Duration::from_millis(500));
    home.json(&["swarm", "stop"]);
    home.json(&["swarm", "start"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while home.json(&["swarm", "status", "--json"])["status"] != "active" {
        assert!(Instant::now() < deadline, "the swarm did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(processes.0[0].try_wait().unwrap().is_none(), "the watch outlived the daemon's restart");
    let inject = ["byzantine", "inject-fault", "--agent", "bft-agent-3", "--fault-type", "signature-corruption"];
    home.json(&[&inject[..], &["--probability", "1.0", "--json"]].concat());
    home.task(200);
    let line = printed.recv_timeout(Duration::from_secs(60)).expect("the watch printed the conviction");
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["detected_agent"], "bft-agent-3", "{record}");
    let _ = processes.0[0].kill();
}

#[test]
fn command_hooks_hear_a_view_change_once_and_json_logs_name_the_new_primary() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.jsonl");
    let hook =
        script(dir.path(), "on-view-changed.sh", &format!("cat >> {}\necho >> {}", heard.display(), heard.display()));
    let config = dir.path().join("silent-primary.toml");
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/silent-primary.toml")).unwrap();
    let hooks = format!("\n[[hooks]]\nevent = \"view-changed\"\ncommand = \"{}\"\ntimeout_ms = 5000\n", hook.display());
    std::fs::write(&config, base + &hooks).unwrap();
    let output = Command::new(BIN)
        // The config's 3,000 transfers: the primary goes silent 50 ms in, long before they are done.
        .args(["run", "--json", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let events: Vec<Value> = std::fs::read_to_string(&heard)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut views: Vec<u64> = events.iter().map(|event| event["view"].as_u64().unwrap()).collect();
    assert!(!views.is_empty(), "the silent primary was replaced");
    views.dedup();
    assert_eq!(views.len(), events.len(), "one view-changed per view, not one per validator: {events:?}");

    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal");
    // Log lines are JSON objects; other stderr lines (the run's own notes) are not logs.
    let logs: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("every log line is one JSON object"))
        .collect();
    let view_changed = logs
        .iter()
        .find(|log| log["fields"]["message"] == "view changed")
        .unwrap_or_else(|| panic!("a log line for the view change: {stderr}"));
    assert_eq!(view_changed["fields"]["primary"], "bft-agent-2", "named, not numbered: {view_changed}");
    assert!(view_changed["fields"]["validator"].as_str().unwrap().starts_with("bft-agent-"), "{view_changed}");
}

#[test]
fn text_logs_redirected_to_a_file_carry_no_colour_codes() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/silent-primary.toml");
    let output = Command::new(BIN)
        .args(["run", "--json", "--count", "1000", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("BFTSWARM_LOG_FORMAT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line = stderr.lines().find(|line| line.contains("view changed")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("primary=bft-agent-2"), "the new primary by name: {line}");
    assert!(!stderr.contains('\u{1b}'), "no escape codes off a terminal: {stderr}");
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
