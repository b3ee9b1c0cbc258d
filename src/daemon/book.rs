//! The owner of the membership record: the one copy in memory, written to the
//! home whole before any change to it is visible. The daemon's handlers read
//! it, and the running swarm writes to it through [`MembershipJournal`]
//! (replacements' keys included) before it announces a change.

use super::home::{write_private, Home, HomeError};
use super::membership::{AgentRecord, AgentStatus, MembershipRecord, QuarantineRecord};
use crate::actors::{JoinerEntry, MembershipJournal};
use crate::events::rfc3339;
use crate::protocol::{AgentId, Committee, Member};
use crate::store::unix_ms;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

pub struct MembershipBook {
    home: Home,
    record: Mutex<MembershipRecord>,
    /// What a fresh replacement validator can do (from `agents/validator.toml`).
    validator_capabilities: Vec<String>,
}

impl MembershipBook {
    /// The home's record (carried over from an older home's files, and then written in the new form).
    pub fn open(home: &Home) -> Result<MembershipBook, HomeError> {
        let record = MembershipRecord::load(home)?;
        if !home.membership().exists() && !record.agents.is_empty() {
            record.save(home)?;
        }
        let validator_capabilities = super::agent_types()
            .ok()
            .and_then(|types| types.resolve("validator").ok().map(|definition| definition.capabilities.clone()))
            .unwrap_or_default();
        Ok(MembershipBook { home: home.clone(), record: Mutex::new(record), validator_capabilities })
    }

    /// The record as it is now (a copy: no lock is held by the caller).
    pub fn read(&self) -> MembershipRecord {
        self.lock().clone()
    }

    /// Changes the record and writes it; on a failed write nothing changes.
    pub fn update<R>(&self, change: impl FnOnce(&mut MembershipRecord) -> R) -> Result<R, HomeError> {
        let mut record = self.lock();
        let mut next = record.clone();
        let result = change(&mut next);
        next.save(&self.home)?;
        *record = next;
        Ok(result)
    }

    fn lock(&self) -> MutexGuard<'_, MembershipRecord> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh validator's record; its key is written first, where the record says.
    fn keep_joiner(&self, member: &Member, keypair: &crate::crypto::Keypair) -> Result<AgentRecord, String> {
        let key_file = PathBuf::from("keys").join(format!("{}.pem", member.name));
        let pem = keypair.to_pkcs8_pem().map_err(|e| e.to_string())?;
        write_private(&self.home.root().join(&key_file), pem.as_bytes(), true).map_err(|e| e.to_string())?;
        let key = (member.public_key.to_string(), key_file);
        let capabilities = &self.validator_capabilities;
        let record = AgentRecord::new(member.name.clone(), "validator", capabilities, key, AgentStatus::Standby);
        Ok(AgentRecord { agent_id: Some(member.id.0), ..record })
    }
}

impl MembershipJournal for MembershipBook {
    fn name_taken(&self, name: &str) -> bool {
        self.lock().get(name).is_some()
    }

    fn change_planned(&self, next: &Committee, joiners: &[JoinerEntry<'_>], removed: &[AgentId]) -> Result<(), String> {
        let known = self.read();
        let mut records = Vec::with_capacity(joiners.len());
        for JoinerEntry { member, keypair } in joiners {
            match (known.get(&member.name), keypair) {
                (Some(agent), _) => records.push(AgentRecord { agent_id: Some(member.id.0), ..agent.clone() }),
                (None, Some(keypair)) => records.push(self.keep_joiner(member, keypair)?),
                (None, None) => {
                    return Err(format!("{} joins from another process, which this home does not keep", member.name))
                }
            }
        }
        self.update(|record| record.change_planned(next, records, removed)).map_err(|e| e.to_string())
    }

    fn change_took_effect(&self, next: &Committee) -> Result<(), String> {
        self.update(|record| record.change_took_effect(next)).map_err(|e| e.to_string())
    }

    fn quarantined(&self, agent: &Member, until: SystemTime, reason: &str) -> Result<(), String> {
        let quarantine = QuarantineRecord {
            at: crate::events::timestamp_now(),
            until: rfc3339(until),
            until_unix_ms: unix_ms(until),
            reason: reason.into(),
        };
        self.update(|record| record.quarantined(&agent.name, quarantine)).map_err(|e| e.to_string())
    }
}
