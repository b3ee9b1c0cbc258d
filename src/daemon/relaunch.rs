//! Coming back from a membership record ([`MembershipRecord`]): what the
//! daemon and the hub both do when their home shows a swarm that ran before.
//! The record says which committee sits now, which change is pending, who is
//! quarantined and which faults the operator injected; this module turns that
//! into a [`Relaunch`] for [`crate::actors::Swarm::launch_with`] and takes the
//! rest up again once the swarm runs.

use super::home::Home;
use super::membership::{AgentRecord, AgentStatus, MembershipRecord};
use crate::actors::{Relaunch, Swarm};
use crate::crypto::Keypair;
use crate::protocol::{AgentId, Committee};
use std::time::Duration;

/// A swarm that changed its members comes back in its last epoch: every
/// committee since genesis, a change still pending, and the keys of every
/// validator that joined after genesis and still holds (or is about to take)
/// a seat. A joiner whose key this home does not keep (a hub's node process)
/// comes back on its own, from its own home.
pub fn relaunch_from(record: &MembershipRecord, home: &Home) -> Result<Option<Relaunch>, String> {
    let mut history = record.committees.clone();
    let pending = match &record.pending {
        Some(change) if history.last().is_some_and(|last| change.next.epoch() > last.epoch()) => {
            history.push(change.next.clone());
            true
        }
        _ => false,
    };
    if history.len() < 2 {
        return Ok(None);
    }
    let founders = &history[0];
    let seated = history.iter().rev().take(1 + pending as usize).flat_map(|committee| committee.members());
    let mut joined = Vec::new();
    for member in seated.filter(|member| !founders.contains(member.id)) {
        let agent = recorded(home, record, &member.name)?;
        if agent.key_kept_here() && !joined.iter().any(|(name, _)| name == &member.name) {
            joined.push((member.name.clone(), agent_key(home, agent)?));
        }
    }
    let joined = joined.into_iter().map(|(_, key)| key).collect();
    Ok(Some(Relaunch { history, joined, pending }))
}

/// What a relaunched swarm takes up again from its record: the faults the
/// operator injected into members that still sit, the quarantines of members
/// not replaced yet (their replacement asked for again unless the pending
/// change removes them), and the pending change itself (given `max_wait` to
/// take effect).
pub fn carry_on(swarm: &Swarm, record: &MembershipRecord, pending: bool, max_wait: Duration) {
    let committee = swarm.committee();
    for agent in record.members() {
        let Some(id) = agent.agent_id.map(AgentId) else { continue };
        if let Some(fault) = &agent.injected_fault {
            if let Ok(fault_type) = fault.fault_type.parse() {
                let _ = swarm.inject_fault(id, fault_type, fault.probability, Duration::ZERO);
            }
        }
    }
    let leaving = record.pending.as_ref().map(|pending| pending.removed.clone()).unwrap_or_default();
    for agent in record.agents.iter().filter(|agent| agent.status == AgentStatus::Quarantined) {
        let Some(id) = agent.agent_id.map(AgentId).filter(|id| committee.contains(*id)) else { continue };
        swarm.reinstate_quarantine(id, !leaving.contains(&id));
    }
    if pending {
        let handle = swarm.handle();
        actix::spawn(async move {
            match handle.resume_change(max_wait).await {
                Ok(changed) => tracing::info!(epoch = changed.epoch, "the pending membership change took effect"),
                Err(error) => tracing::error!(%error, "the pending membership change did not take effect"),
            }
        });
    }
}

/// The agent the record names `name`.
fn recorded<'a>(home: &Home, record: &'a MembershipRecord, name: &str) -> Result<&'a AgentRecord, String> {
    record.get(name).ok_or_else(|| format!("{name} of the committee is missing from {}", home.membership().display()))
}

/// The private key of the agent the record names `name`.
pub fn record_key(home: &Home, record: &MembershipRecord, name: &str) -> Result<Keypair, String> {
    agent_key(home, recorded(home, record, name)?)
}

/// A registered validator's private key, from the home.
pub fn agent_key(home: &Home, agent: &AgentRecord) -> Result<Keypair, String> {
    Keypair::read_pem_file(&home.root().join(&agent.key_file)).map_err(|e| e.to_string())
}

/// Member names by agent id (the index), over every epoch.
pub fn member_names(history: &[Committee]) -> Vec<String> {
    let mut names = Vec::new();
    for member in history.iter().flat_map(Committee::members) {
        let index = member.id.0 as usize;
        if names.len() <= index {
            names.resize(index + 1, String::new());
        }
        names[index] = member.name.clone();
    }
    names
}
