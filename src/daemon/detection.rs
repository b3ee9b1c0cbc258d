//! Detection in the daemon: `byzantine quarantine` (the operator's decision),
//! and what `consensus-health` and `detection-log` report of the detector's
//! convictions. The swarm's quarantine manager keeps the log in the memory
//! store, so it outlives the swarm.

use super::state::DaemonError;
use super::Daemon;
use crate::actors::DETECTIONS_KEY;
use crate::cli::report::false_positives;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuarantineRequest {
    pub agent: String,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuarantineStarted {
    pub agent: String,
    pub duration_ms: u64,
    pub action: String,
}

impl Daemon {
    /// Quarantines `agent` now: the hub stops routing what it sends and a
    /// fresh validator replaces it through consensus (watch `detection-log`).
    pub async fn quarantine(&self, request: QuarantineRequest) -> Result<QuarantineStarted, DaemonError> {
        let state = self.state.lock().await;
        let swarm = &state.running()?.swarm;
        let member = state.member_id(&request.agent)?;
        if request.duration_ms == 0 {
            return Err(DaemonError::BadRequest("--duration must be at least 1 ms".into()));
        }
        swarm
            .quarantine(member, Duration::from_millis(request.duration_ms))
            .map_err(|e| DaemonError::Conflict(e.to_string()))?;
        Ok(QuarantineStarted {
            agent: request.agent,
            duration_ms: request.duration_ms,
            action: "quarantined; a replacement joins through the next membership epoch".into(),
        })
    }

    /// The last `tail` detections; an empty list while nothing was detected.
    pub fn detection_log(&self, tail: usize) -> Result<Vec<Value>, DaemonError> {
        let log = self.memory().retrieve(DETECTIONS_KEY).map_err(|e| DaemonError::Internal(e.to_string()))?;
        let entries = match log {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        };
        Ok(entries[entries.len().saturating_sub(tail)..].to_vec())
    }

    /// What the detection log (durable, in the memory store) adds to the health report.
    pub(super) async fn detection_counts(&self, total_agents: usize) -> DetectionCounts {
        let log = self.detection_log(usize::MAX).unwrap_or_default();
        let faults: BTreeMap<String, String> = self.state.lock().await.book.read().faults();
        let convicted: Vec<&str> = log
            .iter()
            .filter(|record| record["detection_method"] != "operator-decision")
            .filter_map(|record| record["detected_agent"].as_str())
            .collect();
        let malicious_detected = convicted.len();
        let honest = total_agents.saturating_sub(faults.len());
        let (_, false_positive_rate) = false_positives(convicted, |agent| faults.contains_key(agent), honest);
        // The half of a double spend that lost never reaches a ledger: it was
        // dropped with the two signed spends as proof, which the log keeps.
        let double_spends_rejected = log.iter().filter(|record| record["fault_type"] == "double-spend").count() as u64;
        DetectionCounts { malicious_detected, false_positive_rate, double_spends_rejected }
    }
}

pub(super) struct DetectionCounts {
    /// Convictions by the detector (not the operator's quarantines).
    pub malicious_detected: usize,
    /// Convicted agents no fault was injected into, over the agents without one.
    pub false_positive_rate: f64,
    pub double_spends_rejected: u64,
}
