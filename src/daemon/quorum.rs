//! `byzantine update-quorum --remove a,b --add c,d` in the daemon: a
//! membership change through consensus. The added agents are validators on
//! standby (spawned after the committee formed, with their keys in the home);
//! the removed ones leave the committee at the next checkpoint boundary. The
//! membership record follows the change as the swarm makes it.

use super::launch::MEMBERSHIP_WAIT;
use super::membership::AgentStatus;
use super::state::DaemonError;
use super::Daemon;
use crate::actors::MembershipChanged;
use serde::{Deserialize, Serialize};

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
            let remove = request.remove.iter().map(|name| state.member_id(name)).collect::<Result<Vec<_>, _>>()?;
            let record = state.book.read();
            let mut add = Vec::with_capacity(request.add.len());
            for name in &request.add {
                let agent = record.get(name).ok_or_else(|| {
                    DaemonError::NotFound(format!(
                        "no agent {name}; spawn it first with `bftswarm agent spawn --type validator --name {name}`"
                    ))
                })?;
                if agent.status != AgentStatus::Standby {
                    return Err(DaemonError::Conflict(format!(
                        "{name} cannot be added: only a validator on standby can join the committee ({})",
                        agent.departure()
                    )));
                }
                add.push((name.clone(), super::relaunch::agent_key(&self.home, agent).map_err(DaemonError::Internal)?));
            }
            (running.swarm.clone(), remove, add)
        };
        // The swarm writes the change to the membership record before it announces it.
        let changed = swarm
            .change_membership_with(add, &remove, MEMBERSHIP_WAIT)
            .await
            .map_err(|e| DaemonError::Conflict(e.to_string()))?;
        let mut state = self.state.lock().await;
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
