//! The swarm's replicated memory through the real binary and a real daemon:
//! stores ordered by consensus, reads of the agreed state, certified answers
//! checked offline (and refused when tampered with), TTL in consensus time,
//! list and search, a restart, and a Byzantine validator.

mod common;

use common::TestSwarm;
use serde_json::{json, Value};

fn active_n4() -> TestSwarm {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    let spawned = swarm.json(&["agent", "spawn", "--count", "4", "--type", "validator", "--json"]);
    assert_eq!(spawned["swarm_status"], "active", "{spawned}");
    swarm
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The seq of the latest write: each store on an idle swarm is one batch.
fn store(swarm: &TestSwarm, key: &str, value: &str, extra: &[&str]) -> Value {
    let stored = swarm.json(&[&["memory", "store", "--key", key, "--value", value], extra].concat());
    assert_eq!((&stored["stored"], &stored["replicated"]), (&json!(true), &json!(true)), "{stored}");
    stored
}

#[test]
fn n4f1_a_value_is_stored_by_consensus_certified_and_a_tampered_proof_is_refused() {
    let swarm = active_n4();
    let stored = store(&swarm, "plan", r#"{"step":1}"#, &[]);
    let seq = stored["seq"].as_u64().expect("the seq that wrote it");
    assert!(seq >= 1, "{stored}");

    assert_eq!(swarm.json(&["memory", "retrieve", "--key", "plan"]), json!({"step": 1}));
    let entry = swarm.json(&["memory", "retrieve", "--key", "plan", "--json"]);
    assert_eq!(
        (&entry["seq"], &entry["writer"], &entry["namespace"]),
        (&json!(seq), &stored["writer"], &json!("default"))
    );

    // Certified: a quorum (2f+1 = 3) of this committee's validators signed the checkpoint.
    let proof = swarm.path("plan.proof");
    let proof_arg = proof.to_str().unwrap();
    let verified =
        swarm.json(&["memory", "retrieve", "--key", "plan", "--verify", "--json", "--save-proof", proof_arg]);
    assert_eq!((&verified["verified"], &verified["value"]), (&json!(true), &json!({"step": 1})), "{verified}");
    let signers = verified["signers"].as_array().unwrap();
    assert!(signers.len() >= 3, "{verified}");
    assert!(signers.iter().all(|s| s.as_str().unwrap().starts_with("bft-agent-")), "{verified}");
    assert!(verified["checkpoint_seq"].as_u64() >= Some(seq), "an idle swarm was moved to a checkpoint past the write");

    // The saved proof checks again offline; altered, or for another key, it is refused.
    let again = swarm.json(&["memory", "retrieve", "--key", "plan", "--verify", "--json", "--proof", proof_arg]);
    assert_eq!(again["value"], json!({"step": 1}));
    let text = std::fs::read_to_string(&proof).unwrap();
    let tampered = text.replacen(&hex(br#""step":1"#), &hex(br#""step":9"#), 1);
    assert_ne!(tampered, text, "the value is in the proof");
    std::fs::write(&proof, tampered).unwrap();
    let refused = swarm.fails(&["memory", "retrieve", "--key", "plan", "--verify", "--proof", proof_arg], 2);
    assert!(refused.contains("refused") && refused.contains("answer was altered"), "{refused}");
    std::fs::write(&proof, text).unwrap();
    let other = swarm.fails(&["memory", "retrieve", "--key", "other", "--verify", "--proof", proof_arg], 2);
    assert!(other.contains("another query than default/other"), "{other}");

    // A key never written is certified absent.
    let absent = swarm.json(&["memory", "retrieve", "--key", "nobody", "--verify", "--json"]);
    assert_eq!((&absent["verified"], &absent["found"]), (&json!(true), &json!(false)), "{absent}");
    let missing = swarm.fails(&["memory", "retrieve", "--key", "nobody"], 2);
    assert!(missing.contains("nothing is stored under nobody"), "{missing}");

    // The write survives the daemon and its validators stopping and starting.
    swarm.json(&["swarm", "stop"]);
    swarm.json(&["swarm", "start"]);
    let after = swarm.json(&["memory", "retrieve", "--key", "plan", "--json"]);
    assert_eq!((&after["value"], &after["seq"]), (&json!({"step": 1}), &json!(seq)), "{after}");
    let verified = swarm.json(&["memory", "retrieve", "--key", "plan", "--verify", "--json"]);
    assert_eq!(verified["verified"], true, "{verified}");
    swarm.json(&["swarm", "stop"]);
}

#[test]
fn n4f1_a_ttl_runs_out_in_sequence_numbers_and_keys_are_listed_and_searched() {
    let swarm = active_n4();
    let lease = store(&swarm, "tasks/lease", "holder-1", &["--ttl", "3"]);
    let expires = lease["expires_at"].as_u64().unwrap();
    assert_eq!(expires, lease["seq"].as_u64().unwrap() + 3, "{lease}");
    assert_eq!(swarm.json(&["memory", "retrieve", "--key", "tasks/lease"]), json!("holder-1"));
    let mut last = lease["seq"].as_u64().unwrap();
    let mut n = 0;
    while last < expires {
        n += 1;
        last = store(&swarm, &format!("tasks/t{n}"), &n.to_string(), &[])["seq"].as_u64().unwrap();
    }
    let gone = swarm.fails(&["memory", "retrieve", "--key", "tasks/lease"], 2);
    assert!(gone.contains("nothing is stored under tasks/lease"), "{gone}");

    store(&swarm, "tasks/plan", "[1,2]", &["--namespace", "team"]);
    let listed = swarm.json(&["memory", "list", "--prefix", "tasks/t"]);
    assert_eq!(listed["count"], n, "{listed}");
    let team = swarm.json(&["memory", "list", "--namespace", "team"]);
    assert_eq!(team["entries"][0]["key"], "tasks/plan", "{team}");
    assert_eq!(team["entries"][0]["value"], json!([1, 2]), "{team}");
    let found = swarm.json(&["memory", "search", "tasks/"]);
    let namespaces: Vec<&str> =
        found["entries"].as_array().unwrap().iter().map(|e| e["namespace"].as_str().unwrap()).collect();
    assert_eq!(namespaces.len(), n + 1, "{found}");
    assert!(namespaces.contains(&"team") && namespaces.contains(&"default"), "{found}");

    let zero = swarm.fails(&["memory", "store", "--key", "k", "--value", "1", "--ttl", "0"], 2);
    assert!(zero.contains("a TTL must be at least one sequence number"), "{zero}");
    swarm.json(&["swarm", "stop"]);
}

#[test]
fn n4f1_a_byzantine_validator_does_not_change_what_is_stored_or_retrieved() {
    let swarm = active_n4();
    let fault = ["byzantine", "inject-fault", "--agent", "bft-agent-4", "--fault-type", "signature-corruption"];
    swarm.json(&[&fault[..], &["--probability", "1.0"]].concat());
    let stored = store(&swarm, "coordination/leader", r#""bft-agent-2""#, &[]);
    assert_eq!(swarm.json(&["memory", "retrieve", "--key", "coordination/leader"]), json!("bft-agent-2"));
    let verified = swarm.json(&["memory", "retrieve", "--key", "coordination/leader", "--verify", "--json"]);
    assert_eq!((&verified["verified"], &verified["value"]), (&json!(true), &json!("bft-agent-2")), "{verified}");
    assert_eq!(verified["seq"], stored["seq"], "{verified}");
    assert!(verified["signers"].as_array().unwrap().len() >= 3, "{verified}");
    swarm.json(&["swarm", "stop"]);
}
