//! The one durable record of who is in the swarm (`membership.json` in the
//! home): every agent ever admitted — name (unique forever), type, key file,
//! status, the epochs it joined and left, its quarantine — and the committee
//! of every membership epoch. It is written whole (write, fsync, rename) with
//! each change, operator's or automatic, before the change is announced;
//! `agent list`, the health queries, the fault budget, `update-quorum` and a
//! relaunch all read it.
//!
//! A home written before this record existed (`agents.json`, `swarm.json`'s
//! genesis names, `committees.json`) is read once and carried over.

use super::home::{read_json, write_json, Home, HomeError};
use super::registry::natural_order;
use crate::protocol::{AgentId, Committee, Member};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where an agent stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentStatus {
    /// A validator registered beyond the committee, or joining through a change not yet in effect.
    Standby,
    /// A member of the current committee (or of the first one, before the swarm launches).
    Active,
    /// Convicted or quarantined by the operator: still a member until its removal takes effect.
    Quarantined,
    /// Left the committee through `update-quorum`.
    Removed,
    /// Quarantined, then replaced by a fresh validator (`replaced_by`).
    Replaced,
    /// A non-voting observer.
    Observer,
}

impl AgentStatus {
    pub fn name(self) -> &'static str {
        match self {
            AgentStatus::Standby => "standby",
            AgentStatus::Active => "active",
            AgentStatus::Quarantined => "quarantined",
            AgentStatus::Removed => "removed",
            AgentStatus::Replaced => "replaced",
            AgentStatus::Observer => "observer",
        }
    }
}

/// A quarantine: when, why, and until when it is in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub at: String,
    pub until: String,
    /// `until` in milliseconds since the Unix epoch, for comparisons.
    pub until_unix_ms: u64,
    pub reason: String,
}

/// A fault the operator injected (`byzantine inject-fault`): made again on a
/// relaunch while the agent holds a seat, and remembered after, so that its
/// conviction is never counted as a false positive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InjectedFault {
    pub fault_type: String,
    pub probability: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub agent_type: String,
    pub capabilities: Vec<String>,
    /// `0x` and 64 hex digits (`-` for an observer).
    pub public_key: String,
    /// The private key's PEM file, relative to the home (`keys/<name>.pem`);
    /// empty for a validator whose key only its own process holds (a hub's node).
    #[serde(default)]
    pub key_file: PathBuf,
    pub status: AgentStatus,
    /// The committee id it holds or held (none before it first joined one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_fault: Option<InjectedFault>,
}

impl AgentRecord {
    /// An agent just admitted: no seat held yet, no history.
    pub fn new(
        name: String,
        agent_type: &str,
        capabilities: &[String],
        (public_key, key_file): (String, PathBuf),
        status: AgentStatus,
    ) -> AgentRecord {
        AgentRecord {
            name,
            agent_type: agent_type.into(),
            capabilities: capabilities.to_vec(),
            public_key,
            key_file,
            status,
            agent_id: None,
            joined_epoch: None,
            left_epoch: None,
            quarantine: None,
            replaced_by: None,
            injected_fault: None,
        }
    }

    /// In the committee now (a quarantined member still holds its seat until it is replaced).
    pub fn is_member(&self) -> bool {
        matches!(self.status, AgentStatus::Active | AgentStatus::Quarantined)
    }

    /// Whether this home holds the agent's private key (it runs in this process).
    pub fn key_kept_here(&self) -> bool {
        !self.key_file.as_os_str().is_empty()
    }

    pub fn is_observer(&self) -> bool {
        self.status == AgentStatus::Observer
    }

    pub fn is_validator(&self) -> bool {
        !self.is_observer()
    }

    /// What became of an agent no longer in the committee, in words.
    pub fn departure(&self) -> String {
        let quarantined = self.quarantine.as_ref().map(|q| format!(" was quarantined at {} ({}) and", q.at, q.reason));
        let left = self.left_epoch.map(|epoch| format!(" in epoch {epoch}")).unwrap_or_default();
        match (self.status, &self.replaced_by) {
            (AgentStatus::Replaced, Some(by)) => {
                format!("{}{} replaced by {by}{left}", self.name, quarantined.unwrap_or_else(|| " was".into()))
            }
            (AgentStatus::Removed, _) => format!("{} was removed from the committee{left}", self.name),
            (AgentStatus::Standby, _) => format!("{} is on standby, not in the committee", self.name),
            (AgentStatus::Observer, _) => format!("{} is an observer, not a validator", self.name),
            _ => format!("{} is {}", self.name, self.status.name()),
        }
    }
}

/// A membership change announced to the validators and not yet known to be in effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingChange {
    /// The committee it makes.
    pub next: Committee,
    /// Members that leave.
    pub removed: Vec<AgentId>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// Every agent ever admitted, in the order they were.
    pub agents: Vec<AgentRecord>,
    /// The committee of every membership epoch in effect, the genesis first; empty until the first launch.
    #[serde(default)]
    pub committees: Vec<Committee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingChange>,
}

impl MembershipRecord {
    /// The record in `home`, carried over from the files of an older home if need be.
    pub fn load(home: &Home) -> Result<MembershipRecord, HomeError> {
        if let Some(record) = read_json(&home.membership())? {
            return Ok(record);
        }
        legacy::read(home)
    }

    /// Writes the record whole; the change it holds is durable when this returns.
    pub fn save(&self, home: &Home) -> Result<(), HomeError> {
        write_json(&home.membership(), self)
    }

    pub fn get(&self, name: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut AgentRecord> {
        self.agents.iter_mut().find(|agent| agent.name == name)
    }

    pub fn by_public_key(&self, public_key: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|agent| agent.public_key == public_key)
    }

    pub fn by_id(&self, id: AgentId) -> Option<&AgentRecord> {
        self.agents.iter().find(|agent| agent.agent_id == Some(id.0))
    }

    /// The committee in effect, once the swarm launched.
    pub fn committee(&self) -> Option<&Committee> {
        self.committees.last()
    }

    /// The members of the committee, in committee order (before the first
    /// launch: the validators registered to form it, in natural name order).
    pub fn members(&self) -> Vec<&AgentRecord> {
        if let Some(committee) = self.committee() {
            return committee.members().iter().filter_map(|member| self.get(&member.name)).collect();
        }
        let mut members: Vec<&AgentRecord> = self.agents.iter().filter(|agent| agent.is_member()).collect();
        members.sort_by(|a, b| natural_order(&a.name, &b.name));
        members
    }

    /// The first name `<prefix><k>` never given to an agent, k counting from 1.
    pub fn next_free_name(&self, prefix: &str) -> String {
        (1..).map(|k| format!("{prefix}{k}")).find(|name| self.get(name).is_none()).unwrap_or_default()
    }

    /// The swarm launched for the first time with `genesis`.
    pub fn launched(&mut self, genesis: &Committee) {
        self.committees = vec![genesis.clone()];
        for member in genesis.members() {
            if let Some(agent) = self.get_mut(&member.name) {
                agent.agent_id = Some(member.id.0);
                agent.joined_epoch = Some(genesis.epoch().0);
            }
        }
    }

    /// A swarm without write-ahead logs launched again starts over from its
    /// genesis committee: its founders hold their seats again, later joiners
    /// wait on standby (quarantine records stay, as history).
    pub fn started_over(&mut self) {
        let Some(genesis) = self.committees.first().cloned() else { return };
        for agent in self.agents.iter_mut().filter(|agent| agent.is_validator()) {
            if genesis.members().iter().any(|member| member.name == agent.name) {
                (agent.status, agent.left_epoch, agent.replaced_by) = (AgentStatus::Active, None, None);
            } else if agent.is_member() {
                (agent.status, agent.agent_id, agent.joined_epoch) = (AgentStatus::Standby, None, None);
            }
        }
        self.committees = vec![genesis];
        self.pending = None;
    }

    /// A change is about to be announced: its joiners are recorded (on
    /// standby until it takes effect), and it is pending.
    pub fn change_planned(&mut self, next: &Committee, joiners: Vec<AgentRecord>, removed: &[AgentId]) {
        for joiner in joiners {
            match self.get_mut(&joiner.name) {
                Some(agent) => agent.agent_id = joiner.agent_id,
                None => self.agents.push(joiner),
            }
        }
        self.pending = Some(PendingChange { next: next.clone(), removed: removed.to_vec() });
    }

    /// The committee `next` is in effect: joiners become active; members that
    /// left are removed, or replaced when they were quarantined (paired with
    /// the joiners in order).
    pub fn change_took_effect(&mut self, next: &Committee) {
        let Some(previous) = self.committee().cloned() else { return };
        let epoch = next.epoch().0;
        let joined: Vec<&Member> = next.members().iter().filter(|m| !previous.contains(m.id)).collect();
        let mut fresh = joined.iter().map(|m| m.name.clone());
        for member in joined.iter() {
            if let Some(agent) = self.get_mut(&member.name) {
                agent.status = AgentStatus::Active;
                agent.agent_id = Some(member.id.0);
                agent.joined_epoch = Some(epoch);
            }
        }
        for member in previous.members().iter().filter(|m| !next.contains(m.id)) {
            let replacement = self.get(&member.name).filter(|a| a.quarantine.is_some()).and_then(|_| fresh.next());
            if let Some(agent) = self.get_mut(&member.name) {
                agent.left_epoch = Some(epoch);
                agent.status = if replacement.is_some() { AgentStatus::Replaced } else { AgentStatus::Removed };
                agent.replaced_by = replacement;
            }
        }
        if self.pending.as_ref().is_some_and(|pending| pending.next.epoch() <= next.epoch()) {
            self.pending = None;
        }
        self.committees.push(next.clone());
    }

    /// `name` is quarantined (it keeps its seat until its replacement takes effect).
    pub fn quarantined(&mut self, name: &str, quarantine: QuarantineRecord) {
        if let Some(agent) = self.get_mut(name) {
            if agent.is_member() {
                agent.status = AgentStatus::Quarantined;
            }
            agent.quarantine = Some(quarantine);
        }
    }

    /// Agents the operator made faulty, by name, with what was injected.
    pub fn faults(&self) -> std::collections::BTreeMap<String, String> {
        let faulty = self.agents.iter().filter_map(|agent| Some((agent, agent.injected_fault.as_ref()?)));
        faulty
            .map(|(agent, fault)| (agent.name.clone(), format!("{} (p = {:.2})", fault.fault_type, fault.probability)))
            .collect()
    }

    /// Members whose quarantine is in force at `now_unix_ms` and who still hold a seat.
    pub fn quarantined_members(&self, now_unix_ms: u64) -> Vec<&AgentRecord> {
        self.members()
            .into_iter()
            .filter(|agent| agent.status == AgentStatus::Quarantined)
            .filter(|agent| agent.quarantine.as_ref().is_some_and(|q| q.until_unix_ms > now_unix_ms))
            .collect()
    }
}

/// Homes written before the record: `agents.json`, `swarm.json`'s
/// `genesis_committee` and `committees.json`.
mod legacy {
    use super::*;

    #[derive(Deserialize)]
    struct Registry {
        agents: Vec<RegisteredAgent>,
    }

    #[derive(Deserialize)]
    struct RegisteredAgent {
        name: String,
        agent_type: String,
        capabilities: Vec<String>,
        public_key: String,
        key_file: PathBuf,
        member: bool,
        #[serde(default)]
        observer: bool,
    }

    pub(super) fn read(home: &Home) -> Result<MembershipRecord, HomeError> {
        let registry: Option<Registry> = read_json(&home.root().join("agents.json"))?;
        let committees: Vec<Committee> = read_json(&home.root().join("committees.json"))?.unwrap_or_default();
        let agents = registry.map(|r| r.agents).unwrap_or_default();
        let mut record = MembershipRecord {
            agents: agents
                .into_iter()
                .map(|agent| {
                    let status = match (agent.observer, agent.member) {
                        (true, _) => AgentStatus::Observer,
                        (false, true) => AgentStatus::Active,
                        (false, false) => AgentStatus::Standby,
                    };
                    let key = (agent.public_key, agent.key_file);
                    AgentRecord::new(agent.name, &agent.agent_type, &agent.capabilities, key, status)
                })
                .collect(),
            committees: Vec::new(),
            pending: None,
        };
        for committee in &committees {
            for member in committee.members() {
                if let Some(agent) = record.get_mut(&member.name) {
                    agent.agent_id = Some(member.id.0);
                    agent.joined_epoch.get_or_insert(committee.epoch().0);
                }
            }
        }
        record.committees = committees;
        Ok(record)
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
