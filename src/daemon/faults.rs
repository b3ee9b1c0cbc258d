//! `byzantine inject-fault` and `byzantine view-change --force` in the daemon.
//!
//! Injection is refused when it would make more than f agents faulty: the
//! swarm's guarantees hold only up to f, and an operator who asks for more
//! is told so instead of watching the swarm stall.

use super::membership::InjectedFault;
use super::state::{DaemonError, SwarmState};
use super::Daemon;
use crate::cli::report::{view_changes, ViewChangeEvent};
use crate::faults::FaultType;
use crate::protocol::Committee;
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
        let state = self.state.lock().await;
        let fault_type = parse_fault_type(&request.fault_type)?;
        check_probability(request.probability)?;
        let agent = state.member_id(&request.agent)?;
        let swarm = state.running()?.swarm.clone();
        let committee = swarm.committee();
        let max_failures = committee.f();
        check_fault_budget(&state, &request.agent, &committee)?;
        swarm
            .inject_fault(agent, fault_type, request.probability, Duration::ZERO)
            .map_err(|e| DaemonError::NotFound(e.to_string()))?;
        let fault = InjectedFault { fault_type: fault_type.name().into(), probability: request.probability };
        state.book.update(|record| {
            if let Some(agent) = record.get_mut(&request.agent) {
                agent.injected_fault = Some(fault);
            }
        })?;
        Ok(FaultInjected {
            agent: request.agent,
            fault_type: fault_type.name().into(),
            probability: request.probability,
            faulty_agents: faulty_members(&state, &committee),
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

/// The agents made faulty that still sit in `committee`: one that was
/// quarantined and replaced, or removed, no longer counts against f.
fn faulty_members(state: &SwarmState, committee: &Committee) -> Vec<String> {
    let seated = |name: &String| committee.members().iter().any(|member| &member.name == name);
    state.book.read().faults().into_keys().filter(|name| seated(name)).collect()
}

fn check_fault_budget(state: &SwarmState, agent: &str, committee: &Committee) -> Result<(), DaemonError> {
    let faulty = faulty_members(state, committee);
    let max_failures = committee.f();
    if faulty.iter().any(|name| name == agent) || faulty.len() < max_failures {
        return Ok(());
    }
    Err(DaemonError::Conflict(format!(
        "refusing to make {agent} faulty: {} already are ({}) and this swarm tolerates f = {max_failures}",
        faulty.len(),
        faulty.join(", ")
    )))
}
