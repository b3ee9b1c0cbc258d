//! `byzantine update-quorum --remove a,b --add c,d` in the daemon: a
//! membership change through consensus. The added agents are validators on
//! standby (spawned after the committee formed, with their keys in the home);
//! the removed ones leave the committee at the next checkpoint boundary. The
//! registry follows once the change took effect.

use super::home::write_json;
use super::state::DaemonError;
use super::Daemon;
use crate::actors::MembershipChanged;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a membership change may take to take effect.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QuorumRequest {
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub add: Vec<String>,
}

impl Daemon {
    pub async fn update_quorum(&self, request: QuorumRequest) -> Result<MembershipChanged, DaemonError> {
        if request.remove.is_empty() && request.add.is_empty() {
            return Err(DaemonError::BadRequest("say which agents to --remove and/or --add".into()));
        }
        let (swarm, remove, add) = {
            let state = self.state.lock().await;
            let running = state.running()?;
            let committee = running.swarm.committee();
            let mut remove = Vec::with_capacity(request.remove.len());
            for name in &request.remove {
                let member = committee.members().iter().find(|m| &m.name == name).ok_or_else(|| {
                    DaemonError::NotFound(format!("{name} is not in the committee; `bftswarm agent list` shows it"))
                })?;
                remove.push(member.id);
            }
            let mut add = Vec::with_capacity(request.add.len());
            for name in &request.add {
                let agent = state.registry.get(name).ok_or_else(|| {
                    DaemonError::NotFound(format!(
                        "no agent {name}; spawn it first with `bftswarm agent spawn --type validator --name {name}`"
                    ))
                })?;
                if agent.member || agent.observer || committee.members().iter().any(|m| &m.name == name) {
                    return Err(DaemonError::Conflict(format!(
                        "{name} cannot be added: only a validator on standby can join the committee"
                    )));
                }
                add.push((name.clone(), super::launch::agent_key(&self.home, agent)?));
            }
            (running.swarm.clone(), remove, add)
        };
        let changed = swarm
            .change_membership_with(add, &remove, MEMBERSHIP_WAIT)
            .await
            .map_err(|e| DaemonError::Conflict(e.to_string()))?;
        let mut state = self.state.lock().await;
        let mut registry = state.registry.clone();
        for agent in &mut registry.agents {
            if changed.removed.contains(&agent.name) {
                agent.member = false;
            }
            if changed.added.contains(&agent.name) {
                agent.member = true;
            }
        }
        // The epochs first: a registry naming a member the history lacks would leave it out of a relaunch.
        write_json(&self.home.committees(), &swarm.committee_history())
            .map_err(|e| DaemonError::Internal(e.to_string()))?;
        write_json(&self.home.agents(), &registry).map_err(|e| DaemonError::Internal(e.to_string()))?;
        state.registry = registry;
        if let Some(running) = &mut state.running {
            let committee = running.swarm.committee();
            for member in committee.members() {
                let index = member.id.0 as usize;
                if running.names.len() <= index {
                    running.names.resize(index + 1, String::new());
                }
                running.names[index] = member.name.clone();
            }
        }
        Ok(changed)
    }
}
