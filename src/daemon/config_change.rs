//! `byzantine config`: which parameters may change when. Before the committee
//! forms, all of them; once the swarm is active, what the client and the
//! (future) detector read applies live, and what the running validators were
//! built with is refused with an error that says a restart is needed.

use super::home::write_atomically;
use super::state::{Daemon, DaemonError};
use crate::config::SwarmConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The flags of `byzantine config`; unset ones are left as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigChange {
    pub signature_algorithm: Option<String>,
    pub verification_threshold: Option<f64>,
    pub view_change_timeout: Option<u64>,
    pub checkpoint_interval: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub malicious_detection: Option<bool>,
    pub detection_strategy: Option<String>,
    pub quarantine_duration: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigChanged {
    /// The config keys whose value changed.
    pub changed: Vec<String>,
    pub config: SwarmConfig,
}

impl Daemon {
    pub async fn config(&self) -> SwarmConfig {
        self.state.lock().await.config.clone()
    }

    /// Applies `change` to the config file and the daemon, all or nothing.
    pub async fn change_config(&self, change: ConfigChange) -> Result<ConfigChanged, DaemonError> {
        let mut state = self.state.lock().await;
        let old = state.config.clone();
        let new = changed_config(&old, &change)?;
        let changed = changed_keys(&old, &new);
        if state.is_active() {
            refuse_restart_only(&old, &new)?;
        }
        let text = toml::to_string(&new).map_err(|e| DaemonError::Internal(e.to_string()))?;
        write_atomically(&self.home.config(), text.as_bytes())?;
        state.config = new.clone();
        Ok(ConfigChanged { changed, config: new })
    }
}

fn changed_config(old: &SwarmConfig, change: &ConfigChange) -> Result<SwarmConfig, DaemonError> {
    let mut new = old.clone();
    let (c, d) = (&mut new.consensus, &mut new.detection);
    if let Some(value) = &change.signature_algorithm {
        c.signature_algorithm = value.clone();
    }
    if let Some(value) = change.verification_threshold {
        c.verification_threshold = Some(value);
    }
    if let Some(value) = change.view_change_timeout {
        c.view_change_timeout_ms = value;
    }
    if let Some(value) = change.checkpoint_interval {
        c.checkpoint_interval = value;
    }
    if let Some(value) = change.max_concurrent_requests {
        new.client.max_concurrent_requests = value;
    }
    if let Some(value) = change.malicious_detection {
        d.malicious_detection = value;
    }
    if let Some(value) = &change.detection_strategy {
        d.detection_strategy = value.clone();
    }
    if let Some(value) = change.quarantine_duration {
        d.quarantine_duration_ms = value;
    }
    new.validate().map_err(|e| DaemonError::BadRequest(e.to_string()))?;
    Ok(new)
}

fn changed_keys(old: &SwarmConfig, new: &SwarmConfig) -> Vec<String> {
    let flatten = |cfg: &SwarmConfig| -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        if let Ok(Value::Object(sections)) = serde_json::to_value(cfg) {
            for (section, keys) in sections {
                if let Value::Object(keys) = keys {
                    out.extend(keys.into_iter().map(|(key, value)| (format!("{section}.{key}"), value)));
                }
            }
        }
        out
    };
    let (before, after) = (flatten(old), flatten(new));
    after.iter().filter(|(key, value)| before.get(*key) != Some(value)).map(|(key, _)| key.clone()).collect()
}

/// Parameters the running validators were built with: changing them needs a restart.
fn refuse_restart_only(old: &SwarmConfig, new: &SwarmConfig) -> Result<(), DaemonError> {
    let (a, b) = (&old.consensus, &new.consensus);
    let mut needs_restart = Vec::new();
    if a.view_change_timeout_ms != b.view_change_timeout_ms {
        needs_restart.push("--view-change-timeout");
    }
    if a.checkpoint_interval != b.checkpoint_interval {
        needs_restart.push("--checkpoint-interval");
    }
    if a.verification_threshold != b.verification_threshold {
        needs_restart.push("--verification-threshold");
    }
    if needs_restart.is_empty() {
        return Ok(());
    }
    Err(DaemonError::Conflict(format!(
        "{} cannot change while the swarm is active (its validators run with the current value); nothing was changed: set it before the committee forms, or edit config.toml in the swarm's home and run `bftswarm swarm stop && bftswarm swarm start`",
        needs_restart.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n7() -> SwarmConfig {
        SwarmConfig::from_toml_str("[swarm]\nmax_agents = 7\nmax_failures = 2\n").unwrap()
    }

    #[test]
    fn the_tutorials_config_changes_only_what_differs_from_the_defaults() {
        let change = ConfigChange {
            signature_algorithm: Some("ed25519".into()),
            verification_threshold: Some(0.71),
            view_change_timeout: Some(5000),
            checkpoint_interval: Some(100),
            max_concurrent_requests: Some(50),
            ..ConfigChange::default()
        };
        let new = changed_config(&n7(), &change).unwrap();
        assert_eq!(changed_keys(&n7(), &new), ["consensus.verification_threshold"]);
    }

    #[test]
    fn invalid_values_are_refused_with_the_field_named() {
        let below_quorum = ConfigChange { verification_threshold: Some(0.65), ..ConfigChange::default() };
        let error = changed_config(&n7(), &below_quorum).unwrap_err().to_string();
        assert!(error.contains("verification_threshold") && error.contains("5/7"), "{error}");
        let rsa = ConfigChange { signature_algorithm: Some("rsa".into()), ..ConfigChange::default() };
        assert!(changed_config(&n7(), &rsa).unwrap_err().to_string().contains("signature_algorithm"));
    }

    #[test]
    fn an_active_swarm_takes_client_and_detection_changes_but_not_protocol_ones() {
        let live = ConfigChange {
            max_concurrent_requests: Some(64),
            quarantine_duration: Some(60_000),
            ..ConfigChange::default()
        };
        refuse_restart_only(&n7(), &changed_config(&n7(), &live).unwrap()).unwrap();
        for change in [
            ConfigChange { view_change_timeout: Some(3000), ..ConfigChange::default() },
            ConfigChange { checkpoint_interval: Some(50), ..ConfigChange::default() },
            ConfigChange { verification_threshold: Some(0.8), ..ConfigChange::default() },
        ] {
            let error = refuse_restart_only(&n7(), &changed_config(&n7(), &change).unwrap()).unwrap_err();
            assert!(error.to_string().contains("cannot change while the swarm is active"), "{error}");
        }
    }
}
