//! The daemon's queries and small commands: swarm info, health, status,
//! public keys, memory, the detection log and `network latency`.

use super::health::{self, CommitteeFacts, ConsensusHealth, Health};
use super::home::write_json;
use super::state::{statuses, Daemon, DaemonError, SwarmState};
use crate::actors::{GetStatus, ValidatorStatus};
use crate::cli::report::{view_changes, ViewChangeEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `swarm init` / `swarm status`: the tutorial's fields, then the daemon's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwarmInfo {
    pub swarm_id: String,
    pub topology: String,
    pub consensus: String,
    pub status: String,
    pub max_failures: usize,
    pub required_agents: usize,
    pub quorum_size: usize,
    pub created_at: String,
    pub registered_validators: usize,
    pub pid: u32,
    pub home: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<String>,
    /// Prometheus metrics of this daemon and its validators.
    pub metrics_url: Option<String>,
    /// The dashboard: committee, throughput, views and detections, live.
    pub dashboard_url: Option<String>,
    /// Lifecycle events as server-sent events, each once, resumable with Last-Event-ID.
    pub events_url: Option<String>,
}

/// `network latency`: one round trip from the daemon to each validator's mailbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyRow {
    pub agent: String,
    pub round_trip_us_min: u64,
    pub round_trip_us_avg: u64,
    pub samples: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ByzantineStatus {
    pub swarm_id: String,
    pub status: String,
    pub view: u64,
    pub primary: String,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    pub transactions_committed: u64,
    pub transactions_rejected: u64,
    pub faulty_agents: Vec<String>,
    pub view_changes: Vec<ViewChangeEvent>,
}

impl Daemon {
    pub async fn info(&self) -> SwarmInfo {
        let state = self.state.lock().await;
        let cfg = &state.config;
        SwarmInfo {
            swarm_id: state.meta.swarm_id.clone(),
            topology: cfg.swarm.topology.clone(),
            consensus: cfg.swarm.consensus.clone(),
            status: if state.is_active() { "active" } else { "initializing" }.into(),
            max_failures: cfg.max_failures(),
            required_agents: cfg.validators(),
            quorum_size: cfg.quorum(),
            created_at: state.meta.created_at.clone(),
            registered_validators: state.book.read().members().len(),
            pid: self.pid,
            home: self.home.root().display().to_string(),
            launched_at: state.running.as_ref().map(|r| r.launched_at.clone()),
            metrics_url: self.observed.url("/metrics"),
            dashboard_url: self.observed.url("/dashboard"),
            events_url: self.observed.url("/v1/events"),
        }
    }

    pub async fn health(&self) -> Result<Health, DaemonError> {
        let (statuses, facts) = self.snapshot().await?;
        Ok(health::health(&statuses, &facts))
    }

    pub async fn consensus_health(&self) -> Result<ConsensusHealth, DaemonError> {
        let (statuses, facts) = self.snapshot().await?;
        let mut health = health::consensus_health(&statuses, &facts);
        let detected = self.detection_counts(health.total_agents).await;
        health.malicious_detected = detected.malicious_detected;
        health.false_positive_rate = detected.false_positive_rate;
        health.transactions_rejected += detected.double_spends_rejected;
        Ok(health)
    }

    pub async fn byzantine_status(&self) -> Result<ByzantineStatus, DaemonError> {
        let (statuses, facts) = self.snapshot().await?;
        let consensus = self.consensus_health().await?;
        let honest = statuses.iter().filter(|s| s.injected_fault.is_none());
        Ok(ByzantineStatus {
            swarm_id: self.state.lock().await.meta.swarm_id.clone(),
            status: consensus.status,
            view: consensus.view,
            primary: consensus.primary,
            last_executed: honest.clone().map(|s| s.last_executed.0).max().unwrap_or(0),
            stable_checkpoint: honest.map(|s| s.stable_checkpoint.0).max().unwrap_or(0),
            transactions_committed: consensus.transactions_committed,
            transactions_rejected: consensus.transactions_rejected,
            faulty_agents: health::health(&statuses, &facts).faulty_agents,
            view_changes: view_changes(&statuses, facts.quorum),
        })
    }

    /// The validators' statuses and the committee's shape, for the health queries.
    async fn snapshot(&self) -> Result<(Vec<ValidatorStatus>, CommitteeFacts), DaemonError> {
        let (swarm, facts) = {
            let state = self.state.lock().await;
            (state.running()?.swarm.clone(), committee_facts(&state))
        };
        Ok((statuses(swarm).await, facts))
    }

    /// Records announced public keys; one that contradicts a registered agent's key changes nothing.
    pub async fn distribute_pubkeys(&self, keys: BTreeMap<String, String>) -> Result<usize, DaemonError> {
        let mut state = self.state.lock().await;
        for (name, key) in &keys {
            super::registry::check_name(name).map_err(DaemonError::BadRequest)?;
            if let Some(agent) = state.book.read().get(name).filter(|agent| agent.public_key != *key) {
                return Err(DaemonError::Conflict(format!(
                    "{name} is registered with public key {}, not {key}; its key file changed since it was spawned",
                    agent.public_key
                )));
            }
        }
        let mut pubkeys = state.pubkeys.clone();
        pubkeys.extend(keys);
        write_json(&self.home.pubkeys(), &pubkeys)?;
        state.pubkeys = pubkeys;
        Ok(state.pubkeys.len())
    }

    pub fn memory_store(&self, key: &str, value: &Value, ttl: Option<Duration>) -> Result<(), DaemonError> {
        self.memory().store(key, value, ttl).map_err(|e| DaemonError::BadRequest(e.to_string()))
    }

    pub fn memory_retrieve(&self, key: &str) -> Result<Value, DaemonError> {
        match self.memory().retrieve(key) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(DaemonError::NotFound(format!("nothing is stored under {key}"))),
            Err(error) => Err(DaemonError::BadRequest(error.to_string())),
        }
    }

    pub async fn latency(&self, samples: usize) -> Result<Vec<LatencyRow>, DaemonError> {
        let swarm = self.state.lock().await.running()?.swarm.clone();
        let mut rows = Vec::new();
        for member in swarm.committee().members() {
            let Some(validator) = swarm.validator(member.id) else { continue };
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let start = Instant::now();
                if validator.send(GetStatus).await.is_ok() {
                    times.push(start.elapsed().as_micros() as u64);
                }
            }
            let avg = if times.is_empty() { 0 } else { times.iter().sum::<u64>() / times.len() as u64 };
            let min = times.iter().copied().min().unwrap_or(0);
            rows.push(LatencyRow {
                agent: member.name.clone(),
                round_trip_us_min: min,
                round_trip_us_avg: avg,
                samples: times.len(),
            });
        }
        Ok(rows)
    }
}

pub(super) fn committee_facts(state: &SwarmState) -> CommitteeFacts {
    // The committee of the current membership epoch (update-quorum changes it).
    match &state.running {
        Some(running) => {
            let committee = running.swarm.committee();
            CommitteeFacts {
                members: committee.members().iter().map(|m| m.name.clone()).collect(),
                max_failures: committee.f(),
                quorum: committee.quorum(),
            }
        }
        None => CommitteeFacts {
            members: Vec::new(),
            max_failures: state.config.max_failures(),
            quorum: state.config.quorum(),
        },
    }
}
