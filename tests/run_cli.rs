//! `bftswarm run` end to end: the binary, a config file, the JSON report.

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

fn run_json(args: &[&str]) -> Value {
    let output = cargo_bin_cmd!("bftswarm").args(["run", "--json"]).args(args).output().expect("the binary runs");
    assert!(output.status.success(), "exit {:?}, stderr: {}", output.status, String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

/// The tutorial's steps 6-9 from one config: two malicious agents injected,
/// both convicted with evidence, quarantined and replaced through consensus,
/// every honest transfer committed, the double spend rejected, nobody honest convicted.
#[test]
fn byzantine_7_scenario_detects_quarantines_and_replaces_both_malicious_agents() {
    let home = tempfile::tempdir().unwrap();
    let home_arg = home.path().to_str().unwrap();
    let report = run_json(&["--config", "config/byzantine-7.toml", "--home", home_arg]);
    assert_eq!(report["transactions_committed"], 1000, "{report:#}");
    assert_eq!(report["system_integrity"], "intact");
    assert_eq!(report["status"], "healthy");
    assert_eq!((report["total_agents"].as_u64(), report["healthy_agents"].as_u64()), (Some(7), Some(7)));
    assert_eq!((report["quorum_threshold"].as_u64(), report["quorum_met"].as_bool()), (Some(5), Some(true)));
    assert_eq!(report["false_positive_rate"], 0.0);
    assert_eq!(report["malicious_detected"], 2);
    assert!(report["double_spends_rejected"].as_u64().unwrap() >= 1, "{report:#}");
    assert_eq!(report["rejected_by_reason"]["double-spend"], report["double_spends_rejected"]);
    let detections = report["detections"].as_array().unwrap();
    let by_agent = |name: &str| detections.iter().find(|d| d["detected_agent"] == name).cloned();
    let corrupter = by_agent("bft-agent-5").expect("bft-agent-5 detected");
    assert_eq!(corrupter["fault_type"], "signature-corruption");
    assert_eq!(corrupter["detection_method"], "f-plus-one-accusations");
    assert!(corrupter["votes_against"].as_u64().unwrap() >= 3);
    let spender = by_agent("bft-agent-6").expect("bft-agent-6 detected");
    assert_eq!(spender["fault_type"], "double-spend");
    assert_eq!(spender["detection_method"], "self-verifying-evidence");
    for detection in detections {
        assert_eq!(detection["action"], "quarantined");
        assert!(detection["quarantine_expires"].is_string());
        assert!(detection["replaced_by"].is_string(), "{detection:#}");
    }
    // The replacements run in place of the convicted: n is back to 7.
    let agents: Vec<&str> = report["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(agents.len(), 7);
    assert!(!agents.contains(&"bft-agent-5") && !agents.contains(&"bft-agent-6"), "{agents:?}");
    assert!(agents.contains(&"bft-agent-8") && agents.contains(&"bft-agent-9"), "{agents:?}");
    // The detection log is in the home's memory store under the tutorial's key.
    let memory = bftswarm::store::MemoryStore::open(home.path(), Default::default()).unwrap();
    let stored = memory.retrieve("coordination/byzantine/malicious-detections").unwrap().expect("detections stored");
    let stored: Vec<&str> = stored.as_array().unwrap().iter().filter_map(|d| d["detected_agent"].as_str()).collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&"bft-agent-5") && stored.contains(&"bft-agent-6"), "{stored:?}");
    drop(memory);
    // Another run from the same home, without logs, is a new swarm from
    // genesis: the first swarm's convictions are not its own (they made this
    // run report honest agents convicted).
    let second = run_json(&["--config", "config/silent-primary.toml", "--home", home_arg]);
    assert_eq!(second["system_integrity"], "intact", "{second:#}");
    let detected: Vec<&str> =
        second["detections"].as_array().unwrap().iter().filter_map(|d| d["detected_agent"].as_str()).collect();
    assert!(detected.iter().all(|agent| *agent == "bft-agent-1"), "{detected:?}");
}

#[test]
fn count_flag_overrides_the_workload_size() {
    let report = run_json(&["--config", "config/default.toml", "--count", "200"]);
    assert_eq!(report["transactions_committed"], 200);
    assert_eq!(report["transactions_rejected"], 0);
    assert_eq!(report["system_integrity"], "intact");
    for agent in report["agents"].as_array().unwrap() {
        assert_eq!(agent["txs_committed"], 200, "{agent}");
    }
}

#[test]
fn missing_config_file_is_a_one_line_error_naming_the_file() {
    let output = cargo_bin_cmd!("bftswarm")
        .args(["run", "--config", "config/no-such-swarm.toml"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("config/no-such-swarm.toml"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn bench_reports_every_size_and_window_with_integrity_and_the_signature_bound() {
    let output = cargo_bin_cmd!("bftswarm")
        .args(["bench", "--json", "--validators", "4,5", "--windows", "8,64", "--transactions", "300"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let rows = report["rows"].as_array().unwrap();
    let shapes: Vec<(u64, u64)> =
        rows.iter().map(|r| (r["validators"].as_u64().unwrap(), r["window"].as_u64().unwrap())).collect();
    assert_eq!(shapes, [(4, 8), (4, 64), (5, 8), (5, 64)]);
    for row in rows {
        assert_eq!(row["system_integrity"], "intact");
        assert!(row["throughput_tx_per_s"].as_f64().unwrap() > 0.0);
        let bound = row["signature_bound_tx_per_s"].as_f64().unwrap();
        let expected = report["cores"].as_f64().unwrap() * 1e6
            / (row["validators"].as_f64().unwrap() * report["ed25519_batch_verify_us_per_signature"].as_f64().unwrap());
        assert!((bound - expected).abs() < 1.0, "bound {bound} != {expected}");
    }
    assert_eq!(rows[0]["tutorial_tx_per_s"], 1200.0);
}

#[test]
fn bench_durable_runs_with_write_ahead_logs_under_the_home() {
    let home = tempfile::tempdir().unwrap();
    let output = cargo_bin_cmd!("bftswarm")
        .args(["bench", "--json", "--durable", "--validators", "4", "--windows", "16", "--transactions", "200"])
        .arg("--home")
        .arg(home.path())
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let row = &report["rows"][0];
    assert_eq!((row["storage"].as_str(), row["system_integrity"].as_str()), (Some("wal+fsync"), Some("intact")));
    let logs = home.path().join("bench/n4-w16/wal");
    let files = std::fs::read_dir(&logs).unwrap().count();
    assert_eq!(files, 4, "one log per validator in {logs:?}");
}

#[test]
fn bench_refuses_a_committee_that_cannot_tolerate_a_fault() {
    let output = cargo_bin_cmd!("bftswarm").args(["bench", "--validators", "3"]).output().expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 4"));
}

/// Issue 3's scenario: the primary goes silent mid-run; a view change replaces
/// it and every transfer commits with integrity intact.
#[test]
fn silent_primary_scenario_is_voted_out_and_every_transfer_commits() {
    // 3,000 transfers outlast the crash at 50 ms, even in a debug build.
    let report = run_json(&["--config", "config/silent-primary.toml"]);
    assert_eq!(report["transactions_committed"], 3000);
    assert_eq!(report["system_integrity"], "intact");
    assert!(report["view"].as_u64().unwrap() >= 1, "{report}");
    assert_ne!(report["primary"], "bft-agent-1");
    assert_eq!(report["agents"][0]["injected_fault"], "silent (p = 1.00)");
    let change = &report["view_changes"][0];
    assert_eq!((change["event"].as_str(), change["view_number"].as_u64()), (Some("view-change"), Some(1)));
    assert_eq!(
        (change["old_primary"].as_str(), change["new_primary"].as_str()),
        (Some("bft-agent-1"), Some("bft-agent-2"))
    );
    assert_eq!(change["quorum_met"], true);
    assert!(change["triggered_by"].as_array().unwrap().len() >= 3, "{change}");
}

/// Issue 3's membership scenario: a validator added and the first primary
/// removed mid-run, through consensus; every transfer commits, the new
/// validator holds the same ledger as the others, integrity stays intact.
#[test]
fn membership_scenario_adds_then_removes_a_validator_and_every_transfer_commits() {
    let report = run_json(&["--config", "config/membership.toml"]);
    assert_eq!(report["transactions_committed"], 3000);
    assert_eq!(report["system_integrity"], "intact", "{report}");
    let changes = report["membership_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{report}");
    assert_eq!((changes[0]["epoch"].as_u64(), changes[0]["validators"].as_u64()), (Some(1), Some(5)));
    assert_eq!(changes[0]["added"][0], "bft-agent-5");
    assert_eq!((changes[1]["epoch"].as_u64(), changes[1]["quorum"].as_u64()), (Some(2), Some(3)));
    assert_eq!(changes[1]["removed"][0], "bft-agent-1");
    let agents: Vec<&str> = report["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(agents, ["bft-agent-2", "bft-agent-3", "bft-agent-4", "bft-agent-5"]);
    assert_eq!(report["healthy_agents"], 4);
    assert_eq!(report["quorum_threshold"], 3);
}

/// The tutorial's step 10: a primary that censors every request is voted out.
#[test]
fn censoring_primary_scenario_is_voted_out_and_every_transfer_commits() {
    let report = run_json(&["--config", "config/censoring-primary.toml", "--count", "500"]);
    assert_eq!(report["transactions_committed"], 500);
    assert_eq!(report["system_integrity"], "intact");
    assert!(report["view"].as_u64().unwrap() >= 1, "{report}");
    assert_ne!(report["primary"], "bft-agent-1");
    assert_eq!(report["agents"][0]["injected_fault"], "censorship (p = 1.00)");
    assert_eq!(report["view_changes"][0]["new_primary"], "bft-agent-2");
    assert_eq!(report["view_changes"][0]["quorum_met"], true);
}

#[test]
fn bench_with_hook_actors_delivers_committed_batches_to_them() {
    let output = cargo_bin_cmd!("bftswarm")
        .args([
            "bench",
            "--json",
            "--validators",
            "4",
            "--windows",
            "16",
            "--transactions",
            "200",
            "--hook-actors",
            "3",
        ])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let row = &report["rows"][0];
    assert_eq!((row["hook_actors"].as_u64(), row["system_integrity"].as_str()), (Some(3), Some("intact")));
    assert!(row["hook_events_received"].as_u64().unwrap() >= 3, "{row}");
}
