//! The swarm config: its sections, how they are layered and how they are validated.
//!
//! Layers, each overriding the one before: the embedded `config/default.toml`,
//! an optional config file, then environment variables
//! `BFTSWARM_<SECTION>__<KEY>` (e.g. `BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL=50`).
//! Empty variables count as unset; `BFTSWARM_*` variables without a `__` (such
//! as `BFTSWARM_HOME`) belong to other parts of the program and are ignored.
//!
//! Following Narwhal's split, [`SwarmSection`] says who is in the committee and
//! [`ConsensusSection`] how the protocol is tuned. The quorum math lives in
//! [`quorum_size`] so the protocol and the CLI use the same numbers.

mod error;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::ConfigError;
pub use validate::{
    MAX_ACCOUNTS, MAX_CONCURRENT_REQUESTS, MAX_DURATION_MS, MAX_QUARANTINE_MS, MAX_TRANSACTIONS, MAX_VALIDATORS,
};

const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "BFTSWARM_";
const SECTIONS: [&str; 6] = ["swarm", "consensus", "client", "workload", "detection", "storage"];

/// The whole swarm config, as loaded from defaults, file and environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmConfig {
    pub swarm: SwarmSection,
    pub consensus: ConsensusSection,
    pub client: ClientSection,
    pub workload: WorkloadSection,
    pub detection: DetectionSection,
    pub storage: StorageSection,
    /// Command hooks, `[[hooks]]` entries: a script run on each event of a kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookEntry>,
    /// Injected Byzantine behaviour, `[[faults]]` entries (the tutorial's `inject-fault`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultEntry>,
    /// Membership changes made during the run, `[[membership]]` entries, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub membership: Vec<MembershipEntry>,
}

/// Who: the committee (the tutorial's `swarm init` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmSection {
    pub name: String,
    pub topology: String,
    pub consensus: String,
    pub max_agents: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<usize>,
    pub agent_name_prefix: String,
}

/// Tuning: the protocol parameters (the tutorial's first `byzantine config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    pub signature_algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_threshold: Option<f64>,
    pub view_change_timeout_ms: u64,
    pub checkpoint_interval: usize,
    pub log_window: usize,
    pub max_batch_size: usize,
    pub batch_delay_us: u64,
    pub max_in_flight_batches: usize,
    pub retransmit_interval_ms: u64,
    pub max_pending_requests: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub max_concurrent_requests: usize,
    pub request_retry_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
    pub transactions: usize,
    pub accounts: usize,
    pub initial_balance: u64,
    /// Each validator's own account at genesis; 0 opens none.
    pub validator_balance: u64,
    pub max_amount: u64,
    pub overdraft_ratio: f64,
    pub seed: u64,
}

/// The tutorial's second `byzantine config`: malicious-agent detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSection {
    pub malicious_detection: bool,
    pub detection_strategy: String,
    pub quarantine_duration_ms: u64,
}

/// Durability: the validators' write-ahead logs under the swarm's home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Keep a write-ahead log per validator, so a swarm started again from
    /// the same home recovers what it committed.
    pub wal: bool,
    /// Wait for the disk on every group commit of a log.
    pub fsync: bool,
}

/// One `[[hooks]]` entry: run `command` (a path, executed directly, not by a
/// shell) with each `event` as JSON on stdin, killed after `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookEntry {
    pub event: String,
    pub command: String,
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_hook_timeout_ms() -> u64 {
    2000
}

/// One `[[faults]]` entry: validator `agent` behaves as `fault_type` with
/// `probability`, starting `after_ms` after the swarm starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    pub agent: String,
    pub fault_type: String,
    #[serde(default = "default_fault_probability")]
    pub probability: f64,
    #[serde(default)]
    pub after_ms: u64,
}

/// One `[[membership]]` entry: once `after_transfers` transfers completed,
/// the operator adds `add` validators (fresh keys) and removes the named ones,
/// through consensus (the tutorial's `update-quorum`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipEntry {
    #[serde(default)]
    pub after_transfers: usize,
    #[serde(default)]
    pub add: usize,
    #[serde(default)]
    pub remove: Vec<String>,
}

fn default_fault_probability() -> f64 {
    1.0
}

pub use crate::protocol::quorum_size;

impl SwarmConfig {
    /// Embedded defaults, then the file if given, then `BFTSWARM_*` from the
    /// process environment, then validation.
    pub fn load(path: Option<&Path>) -> Result<SwarmConfig, ConfigError> {
        // std::env::vars() panics on non-UTF-8 variables; lossy text instead
        // reaches the usual checks and fails with the variable named.
        let env =
            std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()));
        Self::load_with_env(path, env)
    }

    /// [`SwarmConfig::load`] with the environment given explicitly.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SwarmConfig, ConfigError> {
        let file = match path {
            Some(path) => Some((path.display().to_string(), read_file(path)?)),
            None => None,
        };
        let env = EnvOverrides::collect(env)?;
        let file = file.as_ref().map(|(origin, text)| (origin.as_str(), text.as_str()));
        layered(file, &env)
    }

    /// Defaults overridden by `text` (TOML), then validation; no environment.
    pub fn from_toml_str(text: &str) -> Result<SwarmConfig, ConfigError> {
        layered(Some(("the given TOML", text)), &EnvOverrides::default())
    }

    /// n, the number of validators.
    pub fn validators(&self) -> usize {
        self.swarm.max_agents
    }

    /// f: the configured `max_failures`, or the most n can tolerate.
    pub fn max_failures(&self) -> usize {
        self.swarm.max_failures.unwrap_or(self.validators().saturating_sub(1) / 3)
    }

    pub fn quorum(&self) -> usize {
        quorum_size(self.validators(), self.max_failures())
    }

    /// The log window in sequence numbers, with 0 resolved to two checkpoints.
    pub fn log_window(&self) -> usize {
        match self.consensus.log_window {
            0 => self.consensus.checkpoint_interval.saturating_mul(2),
            window => window,
        }
    }

    /// How long a client run may go without one transfer completing before it
    /// is called stalled: long enough for retries and a view change to show
    /// progress again. One limit for `run`, the hub and the daemon's tasks.
    pub fn stall_limit(&self) -> std::time::Duration {
        let ms = |ms: u64| std::time::Duration::from_millis(ms);
        std::time::Duration::from_secs(30)
            .max(ms(self.client.request_retry_ms.saturating_mul(10)))
            .max(ms(self.consensus.view_change_timeout_ms.saturating_mul(3)))
    }

    /// Validator names, `<prefix>1` to `<prefix>n`, as in the tutorial's keys/ files.
    pub fn agent_names(&self) -> Vec<String> {
        (1..=self.validators()).map(|i| format!("{}{i}", self.swarm.agent_name_prefix)).collect()
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound { path: path.to_path_buf() },
        _ => ConfigError::Io { path: path.to_path_buf(), source },
    })
}

fn layered(file: Option<(&str, &str)>, env: &EnvOverrides) -> Result<SwarmConfig, ConfigError> {
    use ::config::{Config, Environment, File, FileFormat};

    let origin = file.map_or("the defaults", |(origin, _)| origin);
    let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some((_, text)) = file {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    // try_parsing stays off: values stay strings and are converted to each
    // field's type when deserialized, so a name like "007" is not turned into 7.
    let environment =
        Environment::with_prefix("BFTSWARM").prefix_separator("_").separator("__").source(Some(env.vars.clone()));
    let config: SwarmConfig = builder
        .add_source(environment)
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|error| error::translate(error, origin, env))?;
    config.validate_in(origin)?;
    Ok(config)
}

/// The `BFTSWARM_<SECTION>__<KEY>` variables, and which variable set which key
/// so that errors can name the variable the user wrote.
#[derive(Debug, Default)]
struct EnvOverrides {
    vars: ::config::Map<String, String>,
    /// `consensus.checkpoint_interval` -> (variable name, value)
    by_key: BTreeMap<String, (String, String)>,
}

impl EnvOverrides {
    fn collect(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut overrides = Self::default();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let Some((section, key)) = rest.split_once("__") else {
                if SECTIONS.iter().any(|s| rest.starts_with(&format!("{s}_"))) {
                    return Err(ConfigError::Env {
                        message: format!(
                            "looks like a config override but lacks the `__` between section and key; \
                             write it as {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}CONSENSUS__CHECKPOINT_INTERVAL"
                        ),
                        var,
                    });
                }
                continue;
            };
            let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !word(section) || !word(key) || key.contains("__") {
                return Err(ConfigError::Env {
                    message: format!(
                        "is not of the form {ENV_PREFIX}<SECTION>__<KEY> (letters, digits, `_`); rename or unset it"
                    ),
                    var,
                });
            }
            overrides.by_key.insert(format!("{section}.{key}"), (var.clone(), value.clone()));
            overrides.vars.insert(var, value);
        }
        Ok(overrides)
    }

    fn get(&self, key: &str) -> Option<&(String, String)> {
        self.by_key.get(key)
    }
}
