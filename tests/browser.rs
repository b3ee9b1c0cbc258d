//! The dashboard in a real headless browser: Debian's `chromium`, driven by
//! `playwright-core` (tests/browser/dashboard.mjs). The page loads, shows every
//! agent, and shows a conviction appear after a fault is injected.
//!
//! `.ci/run` installs both (`apt-get install chromium`, `npm ci` in
//! tests/browser). Without them the test is skipped with a note, except on CI
//! (`CI` set), where it must run.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bftswarm");

/// The browser and the driver, or why they are missing.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!("no {} (apt-get install chromium)", chromium.display()));
    }
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !scripts.join("node_modules/playwright-core").is_dir() {
        return Err("no playwright-core (cd tests/browser && npm ci)".into());
    }
    Ok((chromium, scripts))
}

fn bftswarm(dir: &Path, home: &Path, args: &[&str]) -> Value {
    let output = Command::new(BIN).current_dir(dir).env("BFTSWARM_HOME", home).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboard_shows_every_agent_and_a_conviction_appear_live() {
    let (chromium, scripts) = match browser_setup() {
        Ok(setup) => setup,
        Err(missing) if std::env::var_os("CI").is_none() => {
            eprintln!("note: skipped outside CI: {missing}");
            return;
        }
        Err(missing) => panic!("the browser test must run on CI: {missing}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(".bftswarm");
    bftswarm(dir.path(), &home, &["swarm", "init", "--max-agents", "4", "--json"]);
    let daemon = DaemonGuard(home.clone());
    bftswarm(dir.path(), &home, &["agent", "spawn", "--count", "4", "--type", "validator", "--json"]);
    let status = bftswarm(dir.path(), &home, &["swarm", "status", "--json"]);
    let url = status["dashboard_url"].as_str().expect("swarm status gives dashboard_url").to_string();

    let agents = ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-4"];
    let mut driver = Command::new("node")
        .arg(scripts.join("dashboard.mjs"))
        .arg(&url)
        .args(agents)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = driver.stdout.take().unwrap();
    let driver = KillOnDrop(driver);
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let next = |limit| lines.recv_timeout(limit).unwrap_or_else(|_| "(nothing)".into());
    let ready = next(Duration::from_secs(60));
    assert_eq!(ready, "READY", "the page shows every agent");

    let inject = ["byzantine", "inject-fault", "--agent", "bft-agent-3", "--fault-type", "signature-corruption"];
    bftswarm(dir.path(), &home, &[&inject[..], &["--probability", "1.0", "--json"]].concat());
    bftswarm(dir.path(), &home, &["task", "orchestrate", "--task", "payments", "--count", "200", "--json"]);
    let mut convicted = next(Duration::from_secs(100));
    while convicted.starts_with("FAILED") || convicted.starts_with("---") {
        // The driver's failure report spans lines: show all of it.
        let more = lines.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
        assert!(!more.is_empty(), "{convicted}");
        convicted = format!("{convicted}\n{more}");
    }
    assert_eq!(convicted, "CONVICTED bft-agent-3", "the conviction appeared on the page");
    drop(driver);
    drop(daemon);
}

/// Kills the daemon of `home` when the test ends, however it ends.
struct DaemonGuard(PathBuf);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(self.0.join("daemon.pid")) else { return };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: signals the daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
