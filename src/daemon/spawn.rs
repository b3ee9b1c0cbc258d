//! `agent spawn` and `agent list`: registering validators (with the operator's
//! key file or a fresh key kept in the home) and observers, and showing every
//! agent with its status and role. All or nothing: a spawn of several agents that fails on
//! one registers none.

use super::home::write_private;
use super::membership::{AgentRecord, AgentStatus, MembershipRecord};
use super::observer::BatchesSeen;
use super::registry::{check_name, natural_order};
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
    /// injected), unresponsive, quarantined, standby (registered beyond the
    /// committee), replaced or removed (left the committee).
    pub status: String,
    pub public_key: String,
    /// primary, replica, spare for a validator on standby, or observer.
    pub role: String,
    pub capabilities: Vec<String>,
    /// Executed batches an observer has seen (one per validator per batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches_seen: Option<u64>,
    /// The membership epoch it joined the committee in, and the one it left in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_epoch: Option<u64>,
    /// Until when its quarantine is in force (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_until: Option<String>,
    /// The fresh validator that took its seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
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
        state.book.update(|record| record.agents.extend(planned.into_iter().map(|(agent, _)| agent)))?;
        super::launch::launch_if_ready(&mut state, &self.home, &self.memory)?;
        let record = state.book.read();
        if let Some(running) = &mut state.running {
            super::observer::start_observers(running, record.agents.iter());
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
fn plan(state: &SwarmState, request: &SpawnRequest) -> Result<Vec<(AgentRecord, Option<String>)>, DaemonError> {
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
    let mut registry = state.book.read();
    let forming = registry.committees.is_empty();
    let mut planned = Vec::new();
    for _ in 0..count {
        let name = request.name.clone().unwrap_or_else(|| registry.next_free_name(&prefix));
        check_name(&name).map_err(bad)?;
        if let Some(taken) = registry.get(&name) {
            return Err(DaemonError::Conflict(format!(
                "an agent named {name} is already registered ({}); names are never reused",
                taken.status.name()
            )));
        }
        if !definition.voting {
            let key = ("-".to_string(), PathBuf::new());
            let agent = AgentRecord::new(name, &definition.agent_type, &capabilities, key, AgentStatus::Observer);
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
        let member = forming && registry.members().len() < state.config.validators();
        let status = if member { AgentStatus::Active } else { AgentStatus::Standby };
        // Relative to the home, so a home that moves keeps its keys.
        let key_file = PathBuf::from("keys").join(format!("{name}.pem"));
        let agent = AgentRecord::new(name, &definition.agent_type, &capabilities, (public_key, key_file), status);
        registry.agents.push(agent.clone());
        planned.push((agent, Some(pem)));
    }
    Ok(planned)
}

/// Every agent the record holds: members in committee order, then validators
/// on standby, then those that left the committee, then observers (with the
/// batches each has seen, from `seen`).
fn rows(state: &SwarmState, statuses: &[ValidatorStatus], seen: &[(String, u64)]) -> Vec<AgentRow> {
    let record: MembershipRecord = state.book.read();
    let now_ms = crate::store::unix_ms(std::time::SystemTime::now());
    let row = |agent: &AgentRecord, status: &str, role: &str| AgentRow {
        id: agent.name.clone(),
        agent_type: agent.agent_type.clone(),
        status: status.into(),
        public_key: agent.public_key.clone(),
        role: role.into(),
        capabilities: agent.capabilities.clone(),
        batches_seen: seen.iter().find(|(name, _)| *name == agent.name).map(|(_, batches)| *batches),
        joined_epoch: agent.joined_epoch,
        left_epoch: agent.left_epoch,
        quarantined_until: agent.quarantine.as_ref().filter(|q| q.until_unix_ms > now_ms).map(|q| q.until.clone()),
        replaced_by: agent.replaced_by.clone(),
    };
    let mut rows: Vec<AgentRow> = record
        .members()
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            if !state.is_active() {
                return row(agent, "pending", if index == 0 { "primary" } else { "replica" });
            }
            let live = statuses.iter().find(|s| s.name == agent.name);
            let role = live.map_or("replica", super::health::role);
            match live {
                _ if agent.status == AgentStatus::Quarantined => row(agent, "quarantined", role),
                Some(s) if s.injected_fault.is_some() => row(agent, "faulty", role),
                Some(_) => row(agent, "active", role),
                None if statuses.is_empty() => row(agent, "active", if index == 0 { "primary" } else { "replica" }),
                None => row(agent, "unresponsive", role),
            }
        })
        .collect();
    // Agents spawned at once register in any order: list each group by name.
    let mut by_name: Vec<&AgentRecord> = record.agents.iter().collect();
    by_name.sort_by(|a, b| natural_order(&a.name, &b.name));
    let with_status = |status: AgentStatus| by_name.iter().copied().filter(move |agent| agent.status == status);
    rows.extend(with_status(AgentStatus::Standby).map(|agent| row(agent, "standby", "spare")));
    let departed = by_name.iter().filter(|agent| matches!(agent.status, AgentStatus::Replaced | AgentStatus::Removed));
    rows.extend(departed.map(|agent| {
        let in_force = agent.quarantine.as_ref().is_some_and(|q| q.until_unix_ms > now_ms);
        row(agent, if in_force { "quarantined" } else { agent.status.name() }, "retired")
    }));
    let observer_status = if state.is_active() { "active" } else { "pending" };
    rows.extend(with_status(AgentStatus::Observer).map(|agent| row(agent, observer_status, "observer")));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SwarmConfig;
    use crate::daemon::book::MembershipBook;
    use crate::daemon::home::Home;
    use crate::daemon::state::SwarmMeta;
    use std::collections::BTreeMap;

    fn n4() -> (tempfile::TempDir, SwarmState) {
        let dir = tempfile::tempdir().unwrap();
        let book = std::sync::Arc::new(MembershipBook::open(&Home::at(dir.path())).unwrap());
        let state = SwarmState {
            config: SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap(),
            meta: SwarmMeta { swarm_id: "swarm-bft-test".into(), created_at: "t0".into() },
            book,
            pubkeys: BTreeMap::new(),
            running: None,
            next_task_id: 1,
            observed: Default::default(),
        };
        (dir, state)
    }

    fn validators(count: usize) -> SpawnRequest {
        SpawnRequest { agent_type: "validator".into(), count: Some(count), ..SpawnRequest::default() }
    }

    #[test]
    fn the_first_max_agents_validators_form_the_committee_and_the_rest_wait() {
        let (_home, state) = n4();
        let planned = plan(&state, &validators(5)).unwrap();
        let members: Vec<(&str, bool)> = planned.iter().map(|(a, _)| (a.name.as_str(), a.is_member())).collect();
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
        let (_home, mut state) = n4();
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
        state.book.update(|record| record.agents.push(first)).unwrap();
        assert!(matches!(plan(&state, &named), Err(DaemonError::Conflict(m)) if m.contains("already registered")));
    }
}
