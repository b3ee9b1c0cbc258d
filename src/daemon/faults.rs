//! `byzantine inject-fault` and `byzantine view-change --force` in the daemon.
//!
//! Injection is refused when it would make more than f agents faulty: the
//! swarm's guarantees hold only up to f, and an operator who asks for more
//! is told so instead of watching the swarm stall.

use super::state::{DaemonError, SwarmState};
use super::Daemon;
use crate::cli::report::{view_changes, ViewChangeEvent};
use crate::faults::FaultType;
use crate::protocol::AgentId;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRequest {
    pub agent: String,
    pub fault_type: String,
    pub probability: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultInjected {
    pub agent: String,
    pub fault_type: String,
    pub probability: f64,
    pub faulty_agents: Vec<String>,
    pub max_failures: usize,
}

/// Checks a fault type name.
pub fn parse_fault_type(name: &str) -> Result<FaultType, DaemonError> {
    name.parse().map_err(DaemonError::BadRequest)
}

pub fn check_probability(probability: f64) -> Result<(), DaemonError> {
    if probability.is_finite() && (0.0..=1.0).contains(&probability) {
        return Ok(());
    }
    Err(DaemonError::BadRequest(format!("--probability {probability} is not a probability; give one from 0.0 to 1.0")))
}

impl Daemon {
    pub async fn inject_fault(&self, request: FaultRequest) -> Result<FaultInjected, DaemonError> {
        let mut state = self.state.lock().await;
        let fault_type = parse_fault_type(&request.fault_type)?;
        check_probability(request.probability)?;
        let index = state.member_index(&request.agent)?;
        let max_failures = state.config.max_failures();
        check_fault_budget(&state, &request.agent, max_failures)?;
        let swarm = state.running()?.swarm.clone();
        swarm
            .inject_fault(AgentId(index as u32), fault_type, request.probability, Duration::ZERO)
            .map_err(|e| DaemonError::NotFound(e.to_string()))?;
        let description = format!("{} (p = {:.2})", fault_type.name(), request.probability);
        state.faults.insert(request.agent.clone(), description);
        Ok(FaultInjected {
            agent: request.agent,
            fault_type: fault_type.name().into(),
            probability: request.probability,
            faulty_agents: state.faults.keys().cloned().collect(),
            max_failures,
        })
    }

    /// Forces a view change and waits for a quorum to install the next view;
    /// answers with the view change in the tutorial's shape.
    pub async fn force_view_change(&self) -> Result<ViewChangeEvent, DaemonError> {
        let (swarm, quorum, timeout_ms) = {
            let state = self.state.lock().await;
            let running = state.running()?;
            (running.swarm.clone(), state.config.quorum(), state.config.consensus.view_change_timeout_ms)
        };
        let before = swarm.status().await.iter().map(|s| s.view.0).max().unwrap_or(0);
        swarm.force_view_change();
        let limit = Duration::from_millis(timeout_ms.saturating_mul(4)).max(Duration::from_secs(5));
        let start = Instant::now();
        loop {
            let statuses = swarm.status().await;
            let moved = statuses.iter().filter(|s| s.view.0 > before).count();
            if moved >= quorum {
                let events = view_changes(&statuses, quorum);
                // The first view after `before` is the one this order produced.
                if let Some(event) = events.into_iter().find(|e| e.view_number > before) {
                    return Ok(event);
                }
            }
            if start.elapsed() >= limit {
                return Err(DaemonError::Internal(format!(
                    "the view change from view {before} did not complete within {} s ({moved} validators moved, {quorum} needed)",
                    limit.as_secs()
                )));
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn check_fault_budget(state: &SwarmState, agent: &str, max_failures: usize) -> Result<(), DaemonError> {
    if state.faults.contains_key(agent) || state.faults.len() < max_failures {
        return Ok(());
    }
    let faulty: Vec<&str> = state.faults.keys().map(String::as_str).collect();
    Err(DaemonError::Conflict(format!(
        "refusing to make {agent} faulty: {} already are ({}) and this swarm tolerates f = {max_failures}",
        faulty.len(),
        faulty.join(", ")
    )))
}
