//! The swarm daemon and the tutorial's command line, end to end: the binary,
//! a temporary home per test, a real daemon in the background (killed by a
//! guard if a test fails before `swarm stop`).

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use common::{mode, names, raw_request, stderr, TestSwarm};
use serde_json::Value;
use std::process::{Command, Stdio};

const CAPABILITIES: &str = "transaction-validation,signature-verification,consensus";

#[test]
fn tutorial_n7f2_from_swarm_init_to_view_change_and_stop() {
    let tutorial_init = ["--topology", "star", "--consensus", "byzantine", "--max-agents", "7", "--max-failures", "2"];
    let (swarm, info) = TestSwarm::init(&tutorial_init);
    assert!(info["swarm_id"].as_str().unwrap().starts_with("swarm-bft-"), "{info}");
    let fields = ["swarm_id", "topology", "consensus", "status", "max_failures", "required_agents", "quorum_size"];
    let first: Vec<&String> = info.as_object().unwrap().keys().take(fields.len()).collect();
    assert_eq!(first, fields, "the tutorial's fields first, in its order");
    assert_eq!((info["topology"].as_str(), info["consensus"].as_str()), (Some("star"), Some("byzantine")));
    assert_eq!((info["status"].as_str(), info["max_failures"].as_u64()), (Some("initializing"), Some(2)));
    assert_eq!((info["required_agents"].as_u64(), info["quorum_size"].as_u64()), (Some(7), Some(5)));
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(mode(&swarm.home.join("token")), 0o600);
    let twice = swarm.fails(&[&["swarm", "init"], &tutorial_init[..]].concat(), 2);
    assert!(twice.contains("already running"), "{twice}");

    // Step 2: both `byzantine config` calls, before the committee forms.
    let config = ["byzantine", "config", "--signature-algorithm", "ed25519", "--verification-threshold", "0.71"];
    let changed =
        swarm.json(&[&config[..], &["--view-change-timeout", "5000", "--checkpoint-interval", "100"]].concat());
    assert_eq!(changed["changed"], serde_json::json!(["consensus.verification_threshold"]));
    let detection = ["--malicious-detection", "true", "--detection-strategy", "signature-mismatch"];
    swarm.json(&[&["byzantine", "config"], &detection[..], &["--quarantine-duration", "3600000"]].concat());

    // Step 3: keys, 0600, refused overwrite, readable by OpenSSL, distributed.
    let mut public_keys = Vec::new();
    for i in 1..=7 {
        let (name, file) = (format!("bft-agent-{i}"), format!("keys/bft-agent-{i}-key.pem"));
        let output = swarm.run(&["byzantine", "generate-keypair", "--agent-name", &name, "--output", &file]);
        assert!(output.status.success(), "{}", stderr(&output));
        let line = String::from_utf8_lossy(&output.stdout).into_owned();
        let public = line.split("Public=").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
        assert!(public.starts_with("0x") && public.len() == 66, "{line}");
        public_keys.push(public.to_string());
        assert_eq!(mode(&swarm.path(&file)), 0o600);
    }
    let before = std::fs::read(swarm.path("keys/bft-agent-1-key.pem")).unwrap();
    let again = swarm.fails(&["byzantine", "generate-keypair", "--agent-name", "bft-agent-1"], 2);
    assert!(again.contains("already exists") && again.contains("--force"), "{again}");
    assert_eq!(std::fs::read(swarm.path("keys/bft-agent-1-key.pem")).unwrap(), before);
    if let Ok(openssl) =
        Command::new("openssl").args(["pkey", "-noout", "-in"]).arg(swarm.path("keys/bft-agent-1-key.pem")).output()
    {
        assert!(openssl.status.success(), "openssl pkey cannot read the key: {}", stderr(&openssl));
    }
    swarm.json(&["byzantine", "distribute-pubkeys", "--key-directory", "keys/", "--all-agents", "--json"]);

    // Step 4: seven concurrent spawns, as the tutorial does with `&` and `wait`.
    let spawns: Vec<_> = (1..=7)
        .map(|i| {
            let (name, key) = (format!("bft-agent-{i}"), format!("keys/bft-agent-{i}-key.pem"));
            let args = ["agent", "spawn", "--type", "validator", "--name", &name, "--capabilities", CAPABILITIES];
            let mut command = swarm.command();
            command.args(args).args(["--keypair", &key]).stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().expect("spawn runs")
        })
        .collect();
    for spawn in spawns {
        let output = spawn.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(swarm.json(&["swarm", "status"])["status"], "active");
    let agents = swarm.json(&["agent", "list", "--filter", "active", "--json"]);
    assert_eq!(names(&agents, "id"), (1..=7).map(|i| format!("bft-agent-{i}")).collect::<Vec<_>>());
    assert_eq!(names(&agents, "public_key"), public_keys);
    assert_eq!(names(&agents, "role"), ["primary", "replica", "replica", "replica", "replica", "replica", "replica"]);

    // Step 5: 1,000 transfers through the daemon.
    let orchestrate = ["task", "orchestrate", "--task", "Process financial transactions", "--strategy", "sequential"];
    let more = ["--max-agents", "7", "--priority", "critical", "--count", "1000", "--consensus", "byzantine"];
    let task = swarm.json(&[&orchestrate[..], &more[..]].concat());
    assert_eq!((task["state"].as_str(), task["completed"].as_u64()), (Some("done"), Some(1000)), "{task}");
    assert_eq!(task["committed"].as_u64().unwrap() + task["rejected"].as_u64().unwrap(), 1000);

    // Step 6: two Byzantine agents; a third would exceed f.
    let fault = |agent: &str, fault_type: &str, p: &str| {
        ["byzantine", "inject-fault", "--agent", agent, "--fault-type", fault_type, "--probability", p]
            .map(String::from)
    };
    let injected = swarm.json(&fault("bft-agent-5", "signature-corruption", "0.5").each_ref().map(String::as_str));
    assert_eq!(injected["faulty_agents"], serde_json::json!(["bft-agent-5"]));
    swarm.json(&fault("bft-agent-6", "double-spend", "0.3").each_ref().map(String::as_str));
    let third = swarm.fails(&fault("bft-agent-1", "censorship", "1.0").each_ref().map(String::as_str), 2);
    assert!(third.contains("tolerates f = 2"), "{third}");

    // Step 7: under load both are detected with evidence, quarantined and replaced.
    let more = ["--max-agents", "7", "--priority", "critical", "--count", "500", "--consensus", "byzantine"];
    let attacked = swarm.json(&[&orchestrate[..], &more[..]].concat());
    assert_eq!((attacked["state"].as_str(), attacked["committed"].as_u64()), (Some("done"), Some(500)), "{attacked}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let log = loop {
        let log = swarm.json(&["byzantine", "detection-log", "--tail", "20"]);
        let records = log.as_array().unwrap();
        if records.len() == 2 && records.iter().all(|r| r["replaced_by"].is_string()) {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "not both detected and replaced in 60 s: {log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let field = |r: &Value, key: &str| r[key].as_str().unwrap_or_default().to_string();
    let detected: std::collections::BTreeSet<(String, String)> =
        log.as_array().unwrap().iter().map(|r| (field(r, "detected_agent"), field(r, "fault_type"))).collect();
    let expected = [("bft-agent-5", "signature-corruption"), ("bft-agent-6", "double-spend")];
    assert_eq!(detected, expected.iter().map(|(a, f)| (a.to_string(), f.to_string())).collect(), "{log}");
    assert!(log.as_array().unwrap().iter().all(|r| r["action"] == "quarantined"), "{log}");

    let watched = swarm.run(&["byzantine", "detect-malicious"]);
    assert_eq!(String::from_utf8_lossy(&watched.stdout).lines().count(), 2, "{}", stderr(&watched));

    // Step 8: consensus stays healthy; the replacements bring n back to 7.
    let health = swarm.json(&["byzantine", "consensus-health"]);
    assert_eq!((health["status"].as_str(), health["total_agents"].as_u64()), (Some("healthy"), Some(7)), "{health}");
    assert_eq!((health["healthy_agents"].as_u64(), health["quorum_met"].as_bool()), (Some(7), Some(true)));
    assert_eq!((health["quorum_threshold"].as_u64(), health["malicious_detected"].as_u64()), (Some(5), Some(2)));
    assert!(health["transactions_committed"].as_u64() >= Some(task["committed"].as_u64().unwrap() + 500));
    assert_eq!(
        (health["false_positive_rate"].as_f64(), health["system_integrity"].as_str()),
        (Some(0.0), Some("intact"))
    );

    // Step 10: replace the primary; the daemon records the view history in memory.
    // Under load a view may time out and the swarm move on once more: the
    // forced change is the first new view, and the history must agree with it.
    let event = swarm.json(&["byzantine", "view-change", "--force"]);
    assert_eq!(event["event"], "view-change", "{event}");
    assert!(event["view_number"].as_u64().unwrap() >= 1, "{event}");
    assert_eq!(event["old_primary"], "bft-agent-1", "{event}");
    assert_ne!(event["new_primary"], "bft-agent-1", "{event}");
    assert_eq!(event["quorum_met"], true);
    let views = swarm.json(&["memory", "retrieve", "--key", "coordination/byzantine/view-changes"]);
    let primaries = names(&views, "primary");
    assert_eq!(
        (primaries[0].as_str(), Some(&primaries[1])),
        ("bft-agent-1", event["new_primary"].as_str().map(String::from).as_ref()),
        "{views}"
    );
    assert_eq!(views[1]["view"], event["view_number"], "{views}");
    assert!(views[0]["end"].is_string() && views.as_array().unwrap().last().unwrap()["end"].is_null(), "{views}");

    // Memory integration, and network latency.
    let detections = r#"[{"agent":"bft-agent-5","fault":"signature-corruption","quarantine_duration":3600000}]"#;
    let key = "coordination/byzantine/malicious-detections";
    swarm.json(&["memory", "store", "--key", key, "--value", detections]);
    let stored = swarm.json(&["memory", "retrieve", "--key", key]);
    assert_eq!(stored, serde_json::from_str::<Value>(detections).unwrap());
    let latency = swarm.json(&["network", "latency", "--all-agents", "--json"]);
    assert_eq!(latency.as_array().unwrap().len(), 7);
    assert!(latency.as_array().unwrap().iter().all(|row| row["samples"] == 5), "{latency}");

    // The operator quarantines an agent without proof: recorded as such, and replaced too.
    let quarantined = swarm.json(&["byzantine", "quarantine", "--agent", "bft-agent-7", "--duration", "60000"]);
    assert_eq!(quarantined["agent"], "bft-agent-7", "{quarantined}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = swarm.json(&["byzantine", "detection-log", "--tail", "1"]);
        let last = &log[0];
        if last["detected_agent"] == "bft-agent-7" && last["replaced_by"].is_string() {
            assert_eq!(last["detection_method"], "operator-decision", "{log}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bft-agent-7 not replaced in 60 s: {log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The replacements are members, listed; the convicted are quarantined, never "unresponsive".
    let replaced_by = |agent: &str| {
        let log = swarm.json(&["byzantine", "detection-log", "--tail", "20"]);
        let record = log.as_array().unwrap().iter().rev().find(|r| r["detected_agent"] == agent).cloned();
        record.and_then(|r| r["replaced_by"].as_str().map(String::from)).unwrap()
    };
    let replacements: Vec<String> = ["bft-agent-5", "bft-agent-6", "bft-agent-7"].map(replaced_by).to_vec();
    let active = swarm.json(&["agent", "list", "--filter", "active", "--json"]);
    let mut seated = names(&active, "id");
    seated.sort();
    let mut expected: Vec<String> = (1..=4).map(|i| format!("bft-agent-{i}")).chain(replacements.clone()).collect();
    expected.sort();
    assert_eq!(seated, expected, "{active}");
    let quarantined = swarm.json(&["agent", "list", "--filter", "quarantined", "--json"]);
    assert_eq!(names(&quarantined, "id"), ["bft-agent-5", "bft-agent-6", "bft-agent-7"], "{quarantined}");
    assert_eq!(names(&quarantined, "replaced_by"), replacements, "{quarantined}");
    let taken = ["agent", "spawn", "--type", "validator", "--name", replacements[0].as_str()];
    let reused = swarm.fails(&taken, 2);
    assert!(reused.contains("already registered"), "{reused}");
    // update-quorum names what became of a replaced agent.
    let gone = swarm.fails(&["byzantine", "update-quorum", "--remove", "bft-agent-5"], 2);
    assert!(gone.contains("quarantined at") && gone.contains(&format!("replaced by {}", replacements[0])), "{gone}");
    // The dropped half of the double spend is a rejected transaction.
    let health = swarm.json(&["byzantine", "consensus-health"]);
    assert!(health["transactions_rejected"].as_u64() >= Some(1), "{health}");
    // Agents that left the committee no longer count against f (the tutorial's step 10).
    let censor = swarm.json(&fault("bft-agent-1", "censorship", "1.0").each_ref().map(String::as_str));
    assert_eq!(censor["faulty_agents"], serde_json::json!(["bft-agent-1"]), "{censor}");

    // A restart brings back the last epoch whole: replacements, quarantines, the fault, the counts.
    let listed = swarm.json(&["agent", "list", "--json"]);
    swarm.json(&["swarm", "stop"]);
    swarm.json(&["swarm", "start"]);
    assert_eq!(swarm.json(&["agent", "list", "--json"])["status"], listed["status"]);
    let relisted = swarm.json(&["agent", "list", "--json"]);
    let rows = relisted.as_array().unwrap().iter();
    // bft-agent-1 is still the one the operator made faulty: the fault comes back with the swarm.
    let mut seated: Vec<String> = rows
        .filter(|row| row["status"] == "active" || row["status"] == "faulty")
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    seated.sort();
    assert_eq!(seated, expected, "{relisted}");
    let faulty = swarm.json(&["agent", "list", "--filter", "faulty", "--json"]);
    assert_eq!(names(&faulty, "id"), ["bft-agent-1"], "{faulty}");
    let after = swarm.json(&["byzantine", "consensus-health"]);
    for counter in ["transactions_committed", "transactions_rejected", "malicious_detected"] {
        assert!(after[counter].as_u64() >= health[counter].as_u64(), "{counter} went back: {health} then {after}");
    }
    let more = ["--max-agents", "7", "--priority", "critical", "--count", "100", "--consensus", "byzantine"];
    let resumed = swarm.json(&[&orchestrate[..], &more[..]].concat());
    assert_eq!((resumed["state"].as_str(), resumed["committed"].as_u64()), (Some("done"), Some(100)), "{resumed}");

    let stopped = swarm.json(&["swarm", "stop"]);
    assert_eq!(stopped["status"], "stopped");
    assert!(!swarm.home.join("daemon.pid").exists());
    let gone = swarm.fails(&["byzantine", "consensus-health"], 1);
    assert!(gone.contains("no swarm daemon is running") && gone.contains("swarm start"), "{gone}");
}

#[test]
fn n4f1_bad_inputs_are_one_line_errors_that_change_nothing() {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    let spawned = swarm.json(&["agent", "spawn", "--count", "4", "--type", "validator", "--json"]);
    assert_eq!(spawned["swarm_status"], "active", "{spawned}");
    let verbose = swarm.json(&["swarm", "status", "--verbose"]);
    assert_eq!(verbose["agents"].as_array().map(Vec::len), Some(4), "{verbose}");
    assert_eq!(verbose["config"]["swarm"]["max_agents"], 4);
    assert!(verbose["addr"].as_str().unwrap().starts_with("127.0.0.1:"), "{verbose}");
    let inject = ["byzantine", "inject-fault", "--fault-type", "silent", "--agent"];

    let unknown = swarm.fails(&[&inject[..], &["bft-agent-9"]].concat(), 2);
    assert!(unknown.contains("no agent bft-agent-9"), "{unknown}");
    let probability = swarm.fails(&[&inject[..], &["bft-agent-2", "--probability", "1.5"]].concat(), 2);
    assert!(probability.contains("not a probability"), "{probability}");
    let missing_key = ["agent", "spawn", "--type", "validator", "--name", "bft-agent-5", "--keypair", "keys/none.pem"];
    let missing = swarm.fails(&missing_key, 2);
    assert!(missing.contains("keys/none.pem"), "{missing}");
    let unknown_type = swarm.fails(&["agent", "spawn", "--type", "oracle"], 2);
    assert!(unknown_type.contains("known types: observer, validator"), "{unknown_type}");
    let wrong_token = ["memory", "store", "--key", "a/b", "--value", "1", "--token", "not-the-token"];
    let refused = swarm.fails(&wrong_token, 2);
    assert!(refused.contains("bearer token is wrong"), "{refused}");
    // Without a token the API itself refuses, and the daemon keeps running.
    let addr = std::fs::read_to_string(swarm.home.join("daemon.addr")).unwrap();
    let answer = raw_request(
        addr.trim(),
        "POST /v1/swarm/stop HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("no bearer token was sent"), "{answer}");
    assert_eq!(swarm.json(&["swarm", "status"])["status"], "active");
    let restart_only = swarm.fails(&["byzantine", "config", "--view-change-timeout", "3000"], 2);
    assert!(restart_only.contains("cannot change while the swarm is active"), "{restart_only}");
    let sync = swarm.fails(&["byzantine", "sync-clocks", "--ntp-server", "pool.ntp.org"], 2);
    assert!(sync.contains("nothing to synchronise"), "{sync}");
    let fast = swarm.fails(&["byzantine", "config", "--fast-view-change", "true"], 2);
    assert!(fast.contains("--fast-view-change does not apply"), "{fast}");
    let quorum = swarm.fails(&["byzantine", "update-quorum", "--remove", "bft-agent-1", "--add", "bft-agent-5"], 2);
    assert!(quorum.contains("no agent bft-agent-5"), "{quorum}");
    let quarantine = swarm.fails(&["byzantine", "quarantine", "--agent", "bft-agent-9", "--duration", "3600000"], 2);
    assert!(quarantine.contains("no agent bft-agent-9 in this swarm"), "{quarantine}");

    // Nothing changed: no fault, no fifth agent, no stored value, the old timeout.
    let health = swarm.json(&["byzantine", "health", "--json"]);
    assert_eq!(
        (health["healthy_agents"].as_u64(), health["faulty_agents"].as_array().map(Vec::len)),
        (Some(4), Some(0))
    );
    assert_eq!(swarm.json(&["agent", "list", "--json"]).as_array().unwrap().len(), 4);
    let absent = swarm.fails(&["memory", "retrieve", "--key", "a/b"], 2);
    assert!(absent.contains("nothing is stored under a/b"), "{absent}");
    let config = swarm.json(&["byzantine", "config", "--json"]);
    assert_eq!(config["config"]["consensus"]["view_change_timeout_ms"], 5000);
    // A client-side parameter is live.
    let live = swarm.json(&["byzantine", "config", "--max-concurrent-requests", "64"]);
    assert_eq!(live["changed"], serde_json::json!(["client.max_concurrent_requests"]));

    // An observer joins without a key and without a vote.
    let keyed = swarm.fails(&["agent", "spawn", "--type", "observer", "--keypair", "keys/none.pem"], 2);
    assert!(keyed.contains("keys/none.pem"), "the key file is checked first: {keyed}");
    let observer = swarm.json(&["agent", "spawn", "--type", "observer", "--json"]);
    let row = &observer["spawned"][0];
    assert_eq!(
        (row["id"].as_str(), row["status"].as_str(), row["role"].as_str()),
        (Some("observer-1"), Some("active"), Some("observer"))
    );
    assert_eq!(swarm.json(&["byzantine", "consensus-health"])["total_agents"], 4);

    // Stop, then start from the home: the same committee comes back from its
    // write-ahead logs with what it executed, and its clients carry on.
    let task = swarm.json(&["task", "orchestrate", "--task", "before restart", "--count", "300"]);
    assert_eq!(task["committed"], 300, "{task}");
    let before = swarm.json(&["byzantine", "status", "--json"])["last_executed"].as_u64().unwrap();
    assert!(before > 0);
    swarm.json(&["swarm", "stop"]);
    assert!(swarm.home.join("wal/bft-agent-1.redb").exists(), "a daemon's validators keep their logs in the home");
    assert_eq!(swarm.json(&["swarm", "start"])["status"], "active");
    let agents = swarm.json(&["agent", "list", "--json"]);
    assert_eq!(names(&agents, "id")[..4], names(&spawned["spawned"], "id"));
    let recovered = swarm.json(&["byzantine", "status", "--json"]);
    assert!(recovered["last_executed"].as_u64().unwrap() >= before, "recovered, not from genesis: {recovered}");
    let task = swarm.json(&["task", "orchestrate", "--task", "after restart", "--count", "200"]);
    assert_eq!(task["committed"], 200, "the accounts' nonces carry on from the recovered ledger: {task}");
    let after = swarm.json(&["byzantine", "status", "--json"])["last_executed"].as_u64().unwrap();
    assert!(after > recovered["last_executed"].as_u64().unwrap(), "new transfers, not answers to old ones");
    let observer = swarm.json(&["agent", "list", "--filter", "active", "--json"])[4].clone();
    assert_eq!(observer["id"], "observer-1", "the observer came back with the swarm");
    assert!(observer["batches_seen"].as_u64().unwrap() >= 4, "it saw each validator execute: {observer}");

    // `status --watch` streams until it is stopped; its first line is the status now.
    let mut watch = swarm.command();
    watch.args(["byzantine", "status", "--watch", "--interval-ms", "100"]).stdout(Stdio::piped());
    let mut watch = watch.spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(watch.stdout.take().unwrap()), &mut first).unwrap();
    assert_eq!(watch.try_wait().unwrap(), None, "--watch keeps running");
    watch.kill().unwrap();
    watch.wait().unwrap();
    let status: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(status["status"], "healthy");
    assert!(status["transactions_committed"].as_u64().unwrap() >= 200, "{status}");

    // A validator spawned once the committee is complete waits on standby.
    let standby = swarm.json(&["agent", "spawn", "--type", "validator", "--json"]);
    assert_eq!(names(&standby["spawned"], "id"), ["bft-agent-5"]);
    let spare = swarm.json(&["agent", "list", "--filter", "standby", "--json"]);
    assert_eq!((names(&spare, "id"), names(&spare, "role")), (vec!["bft-agent-5".into()], vec!["spare".into()]));
    assert_eq!(swarm.json(&["byzantine", "consensus-health"])["total_agents"], 4);

    // update-quorum: the standby validator joins and bft-agent-1 leaves, through consensus.
    let unknown = swarm.fails(&["byzantine", "update-quorum", "--add", "bft-agent-9"], 2);
    assert!(unknown.contains("bft-agent-9"), "{unknown}");
    let member = swarm.fails(&["byzantine", "update-quorum", "--add", "bft-agent-2"], 2);
    assert!(member.contains("standby"), "{member}");
    let changed = swarm.json(&["byzantine", "update-quorum", "--remove", "bft-agent-1", "--add", "bft-agent-5"]);
    assert_eq!((changed["epoch"].as_u64(), changed["validators"].as_u64()), (Some(1), Some(4)), "{changed}");
    assert_eq!(
        (changed["added"][0].as_str(), changed["removed"][0].as_str()),
        (Some("bft-agent-5"), Some("bft-agent-1"))
    );
    let task = swarm.json(&["task", "orchestrate", "--task", "after update-quorum", "--count", "100"]);
    assert_eq!(task["committed"], 100, "the new committee commits: {task}");
    let health = swarm.json(&["byzantine", "consensus-health"]);
    assert_eq!(
        (health["total_agents"].as_u64(), health["system_integrity"].as_str()),
        (Some(4), Some("intact")),
        "{health}"
    );

    // Stopped and started again, the swarm comes back in its last epoch: the
    // validator that joined is relaunched from its log, the removed one is not.
    swarm.json(&["swarm", "stop"]);
    assert_eq!(swarm.json(&["swarm", "start"])["status"], "active");
    let health = swarm.json(&["byzantine", "health", "--json"]);
    let mut running = names(&health["agents"], "name");
    running.sort();
    assert_eq!(running, ["bft-agent-2", "bft-agent-3", "bft-agent-4", "bft-agent-5"], "{health}");
    assert_eq!(health["healthy_agents"], 4, "{health}");
    let task = swarm.json(&["task", "orchestrate", "--task", "after a restart in epoch 1", "--count", "100"]);
    assert_eq!(task["committed"], 100, "{task}");
    swarm.json(&["swarm", "stop"]);
}

#[test]
fn without_a_daemon_every_command_says_how_to_start_one() {
    let swarm = TestSwarm::new();
    for args in [&["byzantine", "consensus-health"][..], &["swarm", "status"], &["agent", "list"]] {
        let line = swarm.fails(args, 1);
        assert!(line.contains("no swarm daemon is running") && line.contains("swarm init"), "{line}");
    }
    let start = swarm.fails(&["swarm", "start"], 2);
    assert!(start.contains("no swarm home"), "{start}");
    let bad_init = swarm.fails(&["swarm", "init", "--max-agents", "6", "--max-failures", "2"], 2);
    assert!(bad_init.contains("3f+1"), "{bad_init}");
    assert!(!swarm.home.join("config.toml").exists(), "a refused init leaves no home behind");
}

#[test]
fn completions_cover_the_tutorial_groups() {
    let output = cargo_bin_cmd!("bftswarm").args(["completions", "bash"]).output().unwrap();
    assert!(output.status.success());
    let script = String::from_utf8_lossy(&output.stdout);
    for word in ["byzantine", "inject-fault", "consensus-health", "orchestrate", "distribute-pubkeys"] {
        assert!(script.contains(word), "{word} missing from the completion script");
    }
}
