use std::path::{Path, PathBuf};

use super::*;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn error_text(toml: &str) -> String {
    match SwarmConfig::from_toml_str(toml) {
        Ok(config) => panic!("expected an error for {toml:?}, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn every_shipped_config_file_loads_and_validates() {
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(config_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config =
                SwarmConfig::load_with_env(Some(&path), no_env()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            loaded.push((name, config));
        }
    }
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "byzantine-7",
            "censoring-primary",
            "default",
            "membership",
            "scale-10",
            "scale-13",
            "scale-31",
            "scale-4",
            "silent-primary"
        ]
    );
    for (name, config) in &loaded {
        if let Some(n) = name.strip_prefix("scale-") {
            assert_eq!(config.validators(), n.parse::<usize>().unwrap(), "{name}");
            assert_eq!(config.workload.transactions, 100_000, "{name}");
            assert_eq!(config.workload.accounts, 20_000, "{name}");
            assert_eq!(config.client.max_concurrent_requests, 8192, "{name}");
            assert_eq!(config.consensus.max_batch_size, 1024, "{name}");
            assert_eq!(config.consensus.checkpoint_interval, 100, "{name}");
            assert_eq!(config.workload.overdraft_ratio, 0.0, "{name}");
        }
    }
}

#[test]
fn n7f2_tutorial_scenario_has_quorum_5() {
    let path = config_dir().join("byzantine-7.toml");
    let config = SwarmConfig::load_with_env(Some(&path), no_env()).unwrap();
    assert_eq!((config.validators(), config.max_failures(), config.quorum()), (7, 2, 5));
    assert_eq!(config.consensus.verification_threshold, Some(0.71));
    assert_eq!(config.consensus.view_change_timeout_ms, 5000);
    assert_eq!(config.consensus.checkpoint_interval, 100);
    assert_eq!(config.client.max_concurrent_requests, 50);
    assert_eq!(config.workload.transactions, 1000);
    assert_eq!(config.workload.overdraft_ratio, 0.0);
    let faults: Vec<(&str, &str)> = config.faults.iter().map(|f| (f.agent.as_str(), f.fault_type.as_str())).collect();
    assert_eq!(faults, [("bft-agent-5", "signature-corruption"), ("bft-agent-6", "double-spend")]);
    assert_eq!(config.detection.detection_strategy, "signature-mismatch");
    assert_eq!(config.detection.quarantine_duration_ms, 3_600_000);
    assert_eq!(config.agent_names().first().unwrap(), "bft-agent-1");
    assert_eq!(config.agent_names().last().unwrap(), "bft-agent-7");
}

#[test]
fn defaults_are_n4f1_with_resolved_log_window() {
    let config = SwarmConfig::load_with_env(None, no_env()).unwrap();
    assert_eq!(SwarmConfig::from_toml_str("").unwrap(), config);
    assert_eq!((config.validators(), config.max_failures(), config.quorum()), (4, 1, 3));
    assert_eq!(config.swarm.max_failures, None);
    assert_eq!(config.consensus.verification_threshold, None);
    assert_eq!(config.log_window(), 200);
    assert_eq!(config.agent_names(), ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-4"]);
}

#[test]
fn quorum_size_matches_the_tutorial_table() {
    for (n, f, quorum) in [(4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7), (13, 4, 9), (31, 10, 21)] {
        assert_eq!(quorum_size(n, f), quorum, "n = {n}, f = {f}");
    }
}

#[test]
fn any_two_quorums_intersect_in_an_honest_validator() {
    for n in 4..=100 {
        let f = (n - 1) / 3;
        let q = quorum_size(n, f);
        assert!(q <= n - f, "n = {n}: quorum {q} unreachable with f = {f} silent");
        assert!(2 * q - n > f, "n = {n}: quorums overlap in {} <= f = {f}", 2 * q - n);
    }
}

#[test]
fn each_broken_rule_names_its_field() {
    #[rustfmt::skip]
    let cases = [
        ("[swarm]\nmax_agents = 6\nmax_failures = 2", "swarm.max_agents", "3f+1 = 7"),
        ("[swarm]\nmax_agents = 3", "swarm.max_agents", "between 4 and"),
        ("[swarm]\nmax_failures = 0", "swarm.max_failures", "at least 1"),
        ("[swarm]\ntopology = \"mesh\"", "swarm.topology", "\"star\""),
        ("[swarm]\nconsensus = \"raft\"", "swarm.consensus", "\"byzantine\""),
        ("[swarm]\nagent_name_prefix = \"a/b\"", "swarm.agent_name_prefix", "letters"),
        ("[consensus]\nmax_batch_size = 0", "consensus.max_batch_size", "is 0; it must be between 1 and 65536"),
        ("[[faults]]\nagent = \"bft-agent-9\"\nfault_type = \"silent\"", "faults[0].agent", "not an agent"),
        ("[[faults]]\nagent = \"bft-agent-1\"\nfault_type = \"gossip\"", "faults[0].fault_type", "signature-corruption"),
        ("[[faults]]\nagent = \"bft-agent-1\"\nfault_type = \"silent\"\nprobability = 2.0", "faults[0].probability", "between 0.0 and 1.0"),
        ("[[faults]]\nagent = \"bft-agent-1\"\nfault_type = \"silent\"\n[[faults]]\nagent = \"bft-agent-2\"\nfault_type = \"replay\"", "faults", "at most f = 1"),
        ("[[membership]]\nafter_transfers = 5", "membership[0].add", "would do nothing"),
        ("[[membership]]\nremove = [\"bft-agent-9\"]", "membership[0].remove", "not a validator at that point"),
        ("[[membership]]\nremove = [\"bft-agent-1\"]", "membership[0].remove", "would leave 3 validators"),
        ("[[membership]]\nadd = 1\n[[membership]]\nremove = [\"bft-agent-1\", \"bft-agent-1\"]", "membership[1].remove", "not a validator at that point"),
        ("[consensus]\ncheckpoint_interval = 0", "consensus.checkpoint_interval", "at least 1"),
        ("[consensus]\nlog_window = 50", "consensus.log_window", "checkpoint_interval = 100"),
        ("[consensus]\nsignature_algorithm = \"rsa\"", "consensus.signature_algorithm", "\"ed25519\""),
        (
            "[swarm]\nmax_agents = 7\n[consensus]\nverification_threshold = 0.5",
            "consensus.verification_threshold",
            "0.50 is below the quorum fraction 5/7 = 0.71; raise it or remove it",
        ),
        ("[consensus]\nverification_threshold = 1.5", "consensus.verification_threshold", "above 1.0"),
        ("[consensus]\ncheckpoint_interval = 2\nmax_in_flight_batches = 5", "consensus.max_in_flight_batches", "log window of 4"),
        ("[consensus]\nmax_pending_requests = 10", "consensus.max_pending_requests", "max_batch_size = 512"),
        ("[client]\nmax_concurrent_requests = 0", "client.max_concurrent_requests", "between 1 and 65536"),
        ("[workload]\naccounts = 1", "workload.accounts", "between 2 and 1000000"),
        ("[workload]\naccounts = 1000000000000", "workload.accounts", "between 2 and 1000000"),
        ("[workload]\ntransactions = 10000000000", "workload.transactions", "between 1 and 10000000"),
        ("[consensus]\nview_change_timeout_ms = 9223372036854775807", "consensus.view_change_timeout_ms", "between 1 and 86400000"),
        ("[detection]\nquarantine_duration_ms = 9223372036854775807", "detection.quarantine_duration_ms", "between 0 and 31536000000"),
        ("[workload]\nmax_amount = 2000000", "workload.max_amount", "between 1 and 1000000"),
        ("[workload]\noverdraft_ratio = 1.5", "workload.overdraft_ratio", "between 0.0 and 1.0"),
        ("[detection]\ndetection_strategy = \"vibes\"", "detection.detection_strategy", "quorum-verification"),
        ("[storage]\nfsync = \"sometimes\"", "storage.fsync", "true or false"),
        ("[consensus]\nchekpoint_interval = 5", "unknown field `chekpoint_interval` in [consensus]", "did you mean `checkpoint_interval`?"),
        ("[consensus]\nmax_batch_size = \"lots\"", "consensus.max_batch_size", "expected a non-negative integer"),
        ("[consensu]\nlog_window = 5", "unknown section [consensu]", "did you mean `consensus`?"),
        ("[swarm\nname = 1", "the given TOML is not valid TOML", "line 1"),
    ];
    for (toml, field, detail) in cases {
        let text = error_text(toml);
        assert!(text.contains(field), "{toml:?}: {text:?} does not name {field}");
        assert!(text.contains(detail), "{toml:?}: {text:?} does not say {detail:?}");
        assert!(!text.contains('\n'), "{toml:?}: {text:?} spans several lines");
    }
}

#[test]
fn unknown_field_error_is_structured_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.toml");
    std::fs::write(&path, "[consensus]\nchekpoint_interval = 5\n").unwrap();
    let error = SwarmConfig::load_with_env(Some(&path), no_env()).unwrap_err();
    let text = error.to_string();
    let ConfigError::UnknownField { field, section, valid, .. } = error else {
        panic!("expected UnknownField, got {text}");
    };
    assert_eq!((field.as_str(), section.as_str()), ("chekpoint_interval", "consensus"));
    assert!(valid.contains("`max_pending_requests`"), "{valid}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn unknown_field_in_the_file_is_not_blamed_on_a_valid_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.toml");
    std::fs::write(&path, "[consensus]\nswarm = 5\n").unwrap();
    let vars = env(&[("BFTSWARM_SWARM__NAME", "x")]);
    let error = SwarmConfig::load_with_env(Some(&path), vars).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownField { field, section, .. } if field == "swarm" && section == "consensus"),
        "{error}"
    );
}

#[test]
fn environment_overrides_the_file() {
    let path = config_dir().join("byzantine-7.toml");
    let vars = env(&[
        ("BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL", "50"),
        ("BFTSWARM_CONSENSUS__VERIFICATION_THRESHOLD", "0.8"),
        ("BFTSWARM_DETECTION__MALICIOUS_DETECTION", "false"),
        ("BFTSWARM_STORAGE__WAL", "true"),
        // A string field keeps its text exactly, even when it looks like a number.
        ("BFTSWARM_SWARM__NAME", "007"),
        // Not config overrides: other settings, empty values, other programs.
        ("BFTSWARM_HOME", "/tmp/elsewhere"),
        ("BFTSWARM_WORKLOAD__SEED", ""),
        ("PATH", "/usr/bin"),
    ]);
    let config = SwarmConfig::load_with_env(Some(&path), vars).unwrap();
    assert_eq!(config.consensus.checkpoint_interval, 50);
    assert_eq!(config.log_window(), 100);
    assert_eq!(config.consensus.verification_threshold, Some(0.8));
    assert!(!config.detection.malicious_detection);
    assert!(config.storage.wal && config.storage.fsync);
    assert_eq!(config.swarm.name, "007");
    assert_eq!(config.workload.seed, 42);
    assert_eq!(config.validators(), 7, "the file's value survives");
}

#[test]
fn bad_environment_values_name_the_variable() {
    #[rustfmt::skip]
    let cases = [
        ("BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL", "abc", "consensus.checkpoint_interval"),
        ("BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL", "-5", "expected a non-negative integer"),
        ("BFTSWARM_WORKLOAD__OVERDRAFT_RATIO", "lots", "workload.overdraft_ratio"),
        ("BFTSWARM_DETECTION__MALICIOUS_DETECTION", "maybe", "expected true or false"),
        ("BFTSWARM_CONSENSUS__CHEKPOINT_INTERVAL", "5", "unknown field `chekpoint_interval`"),
        ("BFTSWARM_NOPE__X", "5", "unknown section [nope]"),
        ("BFTSWARM_CONSENSUS_CHECKPOINT_INTERVAL", "5", "lacks the `__`"),
        ("BFTSWARM_CONSENSUS__A__B", "5", "is not of the form"),
        ("BFTSWARM___", "5", "is not of the form"),
        ("BFTSWARM_CONSENSUS__MAX-BATCH", "5", "is not of the form"),
    ];
    for (var, value, detail) in cases {
        let result = SwarmConfig::load_with_env(None, env(&[(var, value)]));
        let text = match result {
            Err(error @ ConfigError::Env { .. }) => error.to_string(),
            other => panic!("{var}={value}: expected an Env error, got {other:?}"),
        };
        assert!(text.contains(var), "{text:?} does not name {var}");
        assert!(text.contains(detail), "{text:?} does not say {detail:?}");
        assert!(!text.contains('\n'), "{text:?} spans several lines");
    }
}

#[test]
fn environment_values_are_validated_too() {
    let vars = env(&[("BFTSWARM_CONSENSUS__MAX_BATCH_SIZE", "0")]);
    let error = SwarmConfig::load_with_env(None, vars).unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { field: "consensus.max_batch_size", .. }));
}

#[test]
fn missing_file_is_not_found() {
    let path = Path::new("config/nope.toml");
    let error = SwarmConfig::load_with_env(Some(path), no_env()).unwrap_err();
    assert_eq!(error.to_string(), "config file config/nope.toml not found; pass an existing file to --config");
    assert!(matches!(error, ConfigError::NotFound { path: p } if p == path));
}

#[test]
fn huge_values_never_overflow() {
    let text = format!("[swarm]\nmax_agents = {}\nmax_failures = {}", i64::MAX, i64::MAX);
    assert!(error_text(&text).contains("swarm.max_agents"));
    let text = format!("[consensus]\ncheckpoint_interval = {}", i64::MAX);
    let config = SwarmConfig::from_toml_str(&text).unwrap();
    assert_eq!(config.log_window(), 2 * i64::MAX as usize);
    let text = error_text("[consensus]\ncheckpoint_interval = 99999999999999999999");
    assert!(text.contains("not valid TOML"), "{text}");
}

#[test]
fn config_round_trips_through_json() {
    let path = config_dir().join("byzantine-7.toml");
    let config = SwarmConfig::load_with_env(Some(&path), no_env()).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<SwarmConfig>(&json).unwrap(), config);
}
