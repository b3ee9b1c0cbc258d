//! `agent spawn` and `agent list`: registering validators (with the operator's
//! key file or a fresh key kept in the home) and observers, and showing every
//! agent with its status and role. All or nothing: a spawn of several agents that fails on
//! one registers none.

use super::home::{write_json, write_private};
use super::observer::BatchesSeen;
use super::registry::{check_name, RegisteredAgent};
use super::state::{Daemon, DaemonError, SwarmState};
use crate::actors::ValidatorStatus;
use crate::crypto::Keypair;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Most agents one `agent spawn --count N` registers.
pub const MAX_SPAWN_COUNT: usize = 64;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub agent_type: String,
    pub name: Option<String>,
    pub capabilities: Option<Vec<String>>,
    /// An absolute path to a PKCS#8 PEM private key, read by the daemon.
    pub keypair: Option<PathBuf>,
    pub count: Option<usize>,
}

/// One row of `agent list` (the tutorial's table: id, type, status, public key, role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    pub id: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    /// pending (the committee is not complete), active, faulty (a fault was
    /// injected), unresponsive, or standby (registered beyond the committee).
    pub status: String,
    pub public_key: String,
    /// primary, replica, spare for a validator on standby, or observer.
    pub role: String,
    pub capabilities: Vec<String>,
    /// Executed batches an observer has seen (one per validator per batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches_seen: Option<u64>,
}

impl Daemon {
    pub async fn spawn(&self, request: SpawnRequest) -> Result<Vec<AgentRow>, DaemonError> {
        let mut state = self.state.lock().await;
        let planned = plan(&state, &request)?;
        let names: Vec<String> = planned.iter().map(|(agent, _)| agent.name.clone()).collect();
        for (agent, pem) in &planned {
            if let Some(pem) = pem {
                write_private(&self.home.root().join(&agent.key_file), pem.as_bytes(), true)?;
            }
        }
        let mut registry = state.registry.clone();
        registry.agents.extend(planned.into_iter().map(|(agent, _)| agent));
        write_json(&self.home.agents(), &registry)?;
        state.registry = registry;
        super::launch::launch_if_ready(&mut state, &self.home, &self.memory)?;
        let SwarmState { running, registry, .. } = &mut *state;
        if let Some(running) = running {
            super::observer::start_observers(running, registry.agents.iter());
        }
        let rows = rows(&state, &[], &[]);
        Ok(rows.into_iter().filter(|row| names.contains(&row.id)).collect())
    }

    pub async fn list_agents(&self) -> Vec<AgentRow> {
        let (swarm, observers) = {
            let state = self.state.lock().await;
            let running = state.running.as_ref();
            (running.map(|r| r.swarm.clone()), running.map(|r| r.observers.clone()).unwrap_or_default())
        };
        let statuses = match swarm {
            Some(swarm) => super::state::statuses(swarm).await,
            None => Vec::new(),
        };
        let mut seen = Vec::new();
        for (name, observer) in observers {
            if let Ok(batches) = observer.send(BatchesSeen).await {
                seen.push((name, batches));
            }
        }
        let state = self.state.lock().await;
        rows(&state, &statuses, &seen)
    }
}

/// Checks the whole request and prepares every agent (with its key's PEM)
/// before anything is written.
/// Observers have no key (`None`).
fn plan(state: &SwarmState, request: &SpawnRequest) -> Result<Vec<(RegisteredAgent, Option<String>)>, DaemonError> {
    let bad = DaemonError::BadRequest;
    let types = super::agent_types().map_err(|e| bad(e.to_string()))?;
    let definition = types.resolve(&request.agent_type).map_err(|e| bad(e.to_string()))?;
    if !definition.voting && request.keypair.is_some() {
        return Err(bad(format!("{} agents never sign; leave out --keypair", definition.agent_type)));
    }
    let capabilities = match &request.capabilities {
        Some(asked) => {
            if let Some(unknown) = asked.iter().find(|c| !definition.capabilities.contains(c)) {
                return Err(bad(format!(
                    "`{unknown}` is not a capability of {} agents; they have: {}",
                    definition.agent_type,
                    definition.capabilities.join(", ")
                )));
            }
            asked.clone()
        }
        None => definition.capabilities.clone(),
    };
    let count = request.count.unwrap_or(1);
    if !(1..=MAX_SPAWN_COUNT).contains(&count) {
        return Err(bad(format!("--count {count} is out of range; spawn 1 to {MAX_SPAWN_COUNT} agents at a time")));
    }
    if count > 1 && (request.name.is_some() || request.keypair.is_some()) {
        return Err(bad("--count spawns agents with generated names and keys; leave out --name and --keypair".into()));
    }
    let prefix = definition.name_prefix.clone().unwrap_or_else(|| state.config.swarm.agent_name_prefix.clone());
    let mut registry = state.registry.clone();
    let mut planned = Vec::new();
    for _ in 0..count {
        let name = request.name.clone().unwrap_or_else(|| registry.next_free_name(&prefix));
        check_name(&name).map_err(bad)?;
        if registry.get(&name).is_some() {
            return Err(DaemonError::Conflict(format!("an agent named {name} is already registered")));
        }
        if !definition.voting {
            let agent = RegisteredAgent {
                name,
                agent_type: definition.agent_type.clone(),
                capabilities: capabilities.clone(),
                public_key: "-".into(),
                key_file: PathBuf::new(),
                member: false,
                observer: true,
            };
            registry.agents.push(agent.clone());
            planned.push((agent, None));
            continue;
        }
        let keypair = match &request.keypair {
            Some(path) => Keypair::read_pem_file(path).map_err(|e| bad(e.to_string()))?,
            None => Keypair::generate(),
        };
        let public_key = keypair.public_key().to_string();
        if let Some(owner) = registry.by_public_key(&public_key) {
            return Err(DaemonError::Conflict(format!(
                "this key already belongs to {}; generate one per agent with `bftswarm byzantine generate-keypair`",
                owner.name
            )));
        }
        if let Some(distributed) = state.pubkeys.get(&name).filter(|key| **key != public_key) {
            return Err(DaemonError::Conflict(format!(
                "the key of {name} does not match the public key distributed for it ({distributed}); pass the key file that `distribute-pubkeys` read"
            )));
        }
        let pem = keypair.to_pkcs8_pem().map_err(|e| DaemonError::Internal(e.to_string()))?;
        let member = !state.is_active() && registry.members().len() < state.config.validators();
        // Relative to the home, so a home that moves keeps its keys.
        let key_file = PathBuf::from("keys").join(format!("{name}.pem"));
        let agent = RegisteredAgent {
            name,
            agent_type: definition.agent_type.clone(),
            capabilities: capabilities.clone(),
            public_key,
            key_file,
            member,
            observer: false,
        };
        registry.agents.push(agent.clone());
        planned.push((agent, Some(pem)));
    }
    Ok(planned)
}

/// Every registered agent: members in committee order, then validators on
/// standby, then observers (with the batches each has seen, from `seen`).
fn rows(state: &SwarmState, statuses: &[ValidatorStatus], seen: &[(String, u64)]) -> Vec<AgentRow> {
    let members = state.registry.members();
    let standby = state.registry.agents.iter().filter(|agent| !agent.member && !agent.observer);
    let observers = state.registry.agents.iter().filter(|agent| agent.observer);
    let row = |agent: &RegisteredAgent, status: &str, role: &str| AgentRow {
        id: agent.name.clone(),
        agent_type: agent.agent_type.clone(),
        status: status.into(),
        public_key: agent.public_key.clone(),
        role: role.into(),
        capabilities: agent.capabilities.clone(),
        batches_seen: seen.iter().find(|(name, _)| *name == agent.name).map(|(_, batches)| *batches),
    };
    let mut rows: Vec<AgentRow> = members
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            if !state.is_active() {
                return row(agent, "pending", if index == 0 { "primary" } else { "replica" });
            }
            match statuses.iter().find(|s| s.name == agent.name) {
                Some(s) if s.injected_fault.is_some() => row(agent, "faulty", super::health::role(s)),
                Some(s) => row(agent, "active", super::health::role(s)),
                None if statuses.is_empty() => row(agent, "active", if index == 0 { "primary" } else { "replica" }),
                None => row(agent, "unresponsive", "replica"),
            }
        })
        .collect();
    rows.extend(standby.map(|agent| row(agent, "standby", "spare")));
    let observer_status = if state.is_active() { "active" } else { "pending" };
    rows.extend(observers.map(|agent| row(agent, observer_status, "observer")));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SwarmConfig;
    use crate::daemon::state::SwarmMeta;
    use std::collections::BTreeMap;

    fn n4() -> SwarmState {
        SwarmState {
            config: SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap(),
            meta: SwarmMeta {
                swarm_id: "swarm-bft-test".into(),
                created_at: "t0".into(),
                genesis_committee: Vec::new(),
            },
            registry: Default::default(),
            pubkeys: BTreeMap::new(),
            running: None,
            faults: BTreeMap::new(),
            next_task_id: 1,
            observed: Default::default(),
        }
    }

    fn validators(count: usize) -> SpawnRequest {
        SpawnRequest { agent_type: "validator".into(), count: Some(count), ..SpawnRequest::default() }
    }

    #[test]
    fn the_first_max_agents_validators_form_the_committee_and_the_rest_wait() {
        let planned = plan(&n4(), &validators(5)).unwrap();
        let members: Vec<(&str, bool)> = planned.iter().map(|(a, _)| (a.name.as_str(), a.member)).collect();
        assert_eq!(
            members,
            [
                ("bft-agent-1", true),
                ("bft-agent-2", true),
                ("bft-agent-3", true),
                ("bft-agent-4", true),
                ("bft-agent-5", false)
            ]
        );
        assert!(planned.iter().all(|(agent, pem)| pem.is_some() && agent.key_file.starts_with("keys")));
    }

    #[test]
    fn spawn_mistakes_are_refused_before_anything_is_planned() {
        let mut state = n4();
        let bad_capability = SpawnRequest { capabilities: Some(vec!["flying".into()]), ..validators(1) };
        assert!(matches!(plan(&state, &bad_capability), Err(DaemonError::BadRequest(m)) if m.contains("flying")));
        assert!(matches!(plan(&state, &validators(0)), Err(DaemonError::BadRequest(_))));
        assert!(matches!(plan(&state, &validators(MAX_SPAWN_COUNT + 1)), Err(DaemonError::BadRequest(_))));
        let observer_key =
            SpawnRequest { agent_type: "observer".into(), keypair: Some("k.pem".into()), ..SpawnRequest::default() };
        assert!(matches!(plan(&state, &observer_key), Err(DaemonError::BadRequest(m)) if m.contains("never sign")));

        state.pubkeys.insert("bft-agent-1".into(), "0xdistributed".into());
        let named = SpawnRequest { name: Some("bft-agent-1".into()), ..validators(1) };
        assert!(matches!(plan(&state, &named), Err(DaemonError::Conflict(m)) if m.contains("distributed")));
        state.pubkeys.clear();
        let (first, _) = plan(&state, &named).unwrap().remove(0);
        state.registry.agents.push(first);
        assert!(matches!(plan(&state, &named), Err(DaemonError::Conflict(m)) if m.contains("already registered")));
    }
}
