//! The hub's membership record: the `membership.json` the daemon keeps
//! ([`MembershipBook`]), in the hub's home. The first launch writes
//! committee.toml's validators (active) and standby nodes into it; every
//! membership change and quarantine is written to it before it is announced;
//! a hub started again comes back in the record's last epoch, with the
//! validators it runs itself rebuilt from their logs (`wal/`) and its node
//! processes reconnecting on their own.

use super::hub::HubSetup;
use super::CliError;
use crate::actors::Relaunch;
use crate::crypto::PublicKey;
use crate::daemon::book::MembershipBook;
use crate::daemon::home::Home;
use crate::daemon::membership::{AgentRecord, AgentStatus, MembershipRecord};
use crate::protocol::{AgentId, Committee};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The hub home's record, opened for a launch.
pub struct HubRecord {
    pub book: Arc<MembershipBook>,
    /// The record as the launch found it (after a first launch wrote it).
    pub record: MembershipRecord,
    /// Whether the swarm ran from this home before.
    pub relaunched: bool,
}

impl HubRecord {
    /// Opens `home`'s record; a new one is filled from committee.toml with `genesis`.
    /// A record of another committee (another swarm's home) is refused.
    pub fn open(home: &Path, setup: &HubSetup, genesis: &Committee) -> Result<HubRecord, CliError> {
        let home = Home::at(home);
        let book = Arc::new(MembershipBook::open(&home)?);
        let relaunched = match book.read().committees.first() {
            Some(recorded) if recorded == genesis => true,
            Some(_) => {
                return Err(CliError::Usage(format!(
                    "{} records another swarm than committee.toml and hub-key.pem describe; \
                     move it (and wal/) away to start this one from genesis",
                    home.membership().display()
                )))
            }
            None => false,
        };
        book.update(|record| admit(record, setup, genesis, relaunched))?;
        Ok(HubRecord { record: book.read(), book, relaunched })
    }

    /// Whether a membership change was ever made or announced (the config's
    /// plan, or a replacement): then the plan is not made again.
    pub fn changed_membership(&self) -> bool {
        self.record.committees.len() > 1 || self.record.pending.is_some()
    }

    /// How the swarm comes back: none on a first launch.
    pub fn relaunch(&self, home: &Path) -> Result<Option<Relaunch>, CliError> {
        crate::daemon::relaunch::relaunch_from(&self.record, &Home::at(home)).map_err(CliError::Usage)
    }

    /// Members of the committee in effect (and of a pending one) that run as
    /// node processes and are not quarantined: the processes to wait for.
    pub fn nodes_to_wait_for(&self) -> BTreeSet<AgentId> {
        let pending = self.record.pending.iter().map(|pending| &pending.next);
        let seated = self.record.committee().into_iter().chain(pending).flat_map(Committee::members);
        let remote = seated.filter_map(|member| self.record.get(&member.name).map(|agent| (member.id, agent)));
        remote
            .filter(|(_, agent)| !agent.key_kept_here() && agent.status == AgentStatus::Active)
            .map(|(id, _)| id)
            .collect()
    }

    /// Keys the hub refuses whatever the committee says: quarantined members', with why.
    pub fn refused(&self) -> Vec<(PublicKey, String)> {
        let quarantined = self.record.agents.iter().filter(|agent| agent.status == AgentStatus::Quarantined);
        let with_key =
            quarantined.filter_map(|agent| Some((agent, crate::transport::parse_public_key(&agent.public_key).ok()?)));
        with_key
            .map(|(agent, key)| {
                let reason = agent.quarantine.as_ref().map_or("quarantined".to_owned(), |q| q.reason.clone());
                (key, format!("{} is quarantined: {reason}", agent.name))
            })
            .collect()
    }

    /// The standby validators of committee.toml that never joined, in order.
    pub fn standby(&self, setup: &HubSetup) -> Result<Vec<(String, PublicKey)>, CliError> {
        let unused = |(name, _): &(String, PublicKey)| {
            self.record.get(name).is_none_or(|agent| agent.status == AgentStatus::Standby)
        };
        Ok(setup.standby()?.into_iter().filter(unused).collect())
    }
}

/// Writes committee.toml's validators and standby nodes that the record does
/// not know yet; on a first launch, the genesis committee too.
fn admit(record: &mut MembershipRecord, setup: &HubSetup, genesis: &Committee, relaunched: bool) {
    let entries = setup.committee.validators.iter().map(|entry| (entry, AgentStatus::Active));
    let standby = setup.committee.standby.iter().map(|entry| (entry, AgentStatus::Standby));
    for (entry, status) in entries.chain(standby) {
        if record.get(&entry.name).is_some() {
            continue;
        }
        // The hub holds only the keys of the validators it runs; a node's stays in the node's home.
        let key_file = match entry.in_process {
            true => PathBuf::from("keys").join(format!("{}-key.pem", entry.name)),
            false => PathBuf::new(),
        };
        let key = (entry.public_key.clone(), key_file);
        record.agents.push(AgentRecord::new(entry.name.clone(), "validator", &[], key, status));
    }
    if !relaunched {
        record.launched(genesis);
    }
}
