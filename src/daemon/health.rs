//! What `byzantine consensus-health` and `byzantine health` answer, computed
//! by pure functions from the validators' statuses so the rules are tested
//! without a swarm.
//!
//! An agent is healthy when it answers and no fault was injected into it. The
//! swarm's integrity holds when every ledger conserves the supply and any two
//! validators that executed up to the same sequence number hold the same
//! ledger digest.

use crate::actors::ValidatorStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The committee's shape, for judging statuses.
#[derive(Clone, Debug)]
pub struct CommitteeFacts {
    pub members: Vec<String>,
    pub max_failures: usize,
    pub quorum: usize,
}

/// The tutorial's `consensus-health` object (its step 8), plus view and primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsensusHealth {
    pub status: String,
    pub total_agents: usize,
    /// Agents convicted by the detector (the daemon fills it from the detection log).
    pub malicious_detected: usize,
    pub healthy_agents: usize,
    pub quorum_met: bool,
    pub quorum_threshold: usize,
    pub transactions_committed: u64,
    pub transactions_rejected: u64,
    pub false_positive_rate: f64,
    pub system_integrity: String,
    pub view: u64,
    pub primary: String,
}

/// `byzantine health --json`: who is healthy and who is not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub total_agents: usize,
    pub healthy_agents: usize,
    pub faulty_agents: Vec<String>,
    pub unresponsive_agents: Vec<String>,
    pub max_failures: usize,
    pub quorum_threshold: usize,
    pub quorum_met: bool,
    pub agents: Vec<AgentHealth>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    pub name: String,
    pub healthy: bool,
    pub role: String,
    pub view: u64,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected_fault: Option<String>,
}

pub fn health(statuses: &[ValidatorStatus], facts: &CommitteeFacts) -> Health {
    let agents: Vec<AgentHealth> = statuses
        .iter()
        .map(|s| AgentHealth {
            name: s.name.clone(),
            healthy: s.injected_fault.is_none(),
            role: role(s).into(),
            view: s.view.0,
            last_executed: s.last_executed.0,
            stable_checkpoint: s.stable_checkpoint.0,
            injected_fault: s.injected_fault.clone(),
        })
        .collect();
    let healthy_agents = agents.iter().filter(|a| a.healthy).count();
    let quorum_met = healthy_agents >= facts.quorum;
    let status = if quorum_met && integrity(statuses).is_ok() { "healthy" } else { "degraded" };
    Health {
        status: status.into(),
        total_agents: facts.members.len(),
        healthy_agents,
        faulty_agents: agents.iter().filter(|a| !a.healthy).map(|a| a.name.clone()).collect(),
        unresponsive_agents: facts
            .members
            .iter()
            .filter(|m| !statuses.iter().any(|s| &s.name == *m))
            .cloned()
            .collect(),
        max_failures: facts.max_failures,
        quorum_threshold: facts.quorum,
        quorum_met,
        agents,
    }
}

pub fn consensus_health(statuses: &[ValidatorStatus], facts: &CommitteeFacts) -> ConsensusHealth {
    let health = health(statuses, facts);
    // The ledger of the honest validator that executed furthest speaks: its
    // totals are replicated state, so they survive restarts and state transfer.
    let leader = statuses
        .iter()
        .filter(|s| s.injected_fault.is_none())
        .filter_map(|s| Some((s.last_executed, s.ledger_totals?)))
        .max_by_key(|(last_executed, totals)| (*last_executed, totals.committed))
        .map(|(_, totals)| totals);
    let view = statuses.iter().map(|s| s.view.0).max().unwrap_or(0);
    let primary = statuses.iter().find(|s| s.is_primary && s.view.0 == view).map_or("unknown", |s| &s.name);
    ConsensusHealth {
        status: health.status,
        total_agents: health.total_agents,
        malicious_detected: 0,
        healthy_agents: health.healthy_agents,
        quorum_met: health.quorum_met,
        quorum_threshold: health.quorum_threshold,
        transactions_committed: leader.map_or(0, |totals| totals.committed),
        transactions_rejected: leader.map_or(0, |totals| totals.rejected_total()),
        false_positive_rate: 0.0,
        system_integrity: match integrity(statuses) {
            Ok(()) => "intact".into(),
            Err(reason) => format!("violated: {reason}"),
        },
        view,
        primary: primary.to_string(),
    }
}

pub fn role(status: &ValidatorStatus) -> &'static str {
    if status.is_primary {
        "primary"
    } else {
        "replica"
    }
}

/// Supply conserved everywhere, and one ledger digest per executed sequence number.
pub fn integrity(statuses: &[ValidatorStatus]) -> Result<(), String> {
    if let Some(s) = statuses.iter().find(|s| s.balance_sum != s.total_supply as u128) {
        return Err(format!("{} holds {} units for a supply of {}", s.name, s.balance_sum, s.total_supply));
    }
    let mut by_seq: BTreeMap<u64, &ValidatorStatus> = BTreeMap::new();
    for status in statuses {
        match by_seq.get(&status.last_executed.0) {
            Some(other) if other.ledger_digest != status.ledger_digest => {
                return Err(format!(
                    "{} and {} executed up to seq {} but hold different ledgers",
                    other.name, status.name, status.last_executed.0
                ));
            }
            Some(_) => {}
            None => {
                by_seq.insert(status.last_executed.0, status);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Digest, PublicKey};
    use crate::ledger::LedgerTotals;
    use crate::protocol::{AgentId, ReplicaStats, Seq, View};

    fn status(i: u32, seq: u64, digest: &[u8], fault: Option<&str>) -> ValidatorStatus {
        ValidatorStatus {
            id: AgentId(i),
            name: format!("bft-agent-{}", i + 1),
            public_key: PublicKey([i as u8; 32]),
            is_primary: i == 0,
            view: View(0),
            epoch: crate::protocol::Epoch(0),
            member: true,
            last_executed: Seq(seq),
            slots_in_flight: 0,
            stable_checkpoint: Seq(0),
            stable_digest: Digest::of(b""),
            ledger_digest: Digest::of(digest),
            balance_sum: 100,
            total_supply: 100,
            ledger_totals: Some(LedgerTotals { committed: seq * 10, rejected: [seq, 0, 0, 1, 0, 0, 0] }),
            stats: ReplicaStats::default(),
            inbound_rejected: BTreeMap::new(),
            outbound_dropped: 0,
            injected_fault: fault.map(str::to_string),
            view_history: vec![],
            recovery: None,
            logged_executed: None,
        }
    }

    fn facts(n: usize) -> CommitteeFacts {
        CommitteeFacts { members: (1..=n).map(|i| format!("bft-agent-{i}")).collect(), max_failures: 2, quorum: 5 }
    }

    #[test]
    fn n7f2_with_two_faulty_agents_is_healthy_with_five() {
        let mut statuses: Vec<_> = (0..7).map(|i| status(i, 3, b"a", None)).collect();
        statuses[4].injected_fault = Some("signature-corruption (p = 0.50)".into());
        statuses[5].injected_fault = Some("silent (p = 1.00)".into());
        let report = consensus_health(&statuses, &facts(7));
        assert_eq!((report.status.as_str(), report.healthy_agents, report.quorum_met), ("healthy", 5, true));
        assert_eq!((report.transactions_committed, report.system_integrity.as_str()), (30, "intact"));
        assert_eq!(report.transactions_rejected, 4, "from the ledger's totals, every reason");
        assert_eq!(report.primary, "bft-agent-1");
        let health = health(&statuses, &facts(7));
        assert_eq!(health.faulty_agents, ["bft-agent-5", "bft-agent-6"]);
    }

    #[test]
    fn n7f2_with_three_faulty_agents_misses_the_quorum() {
        let statuses: Vec<_> = (0..7).map(|i| status(i, 3, b"a", (i < 3).then_some("silent"))).collect();
        let report = consensus_health(&statuses, &facts(7));
        assert_eq!((report.status.as_str(), report.healthy_agents, report.quorum_met), ("degraded", 4, false));
    }

    #[test]
    fn two_ledgers_at_one_seq_violate_integrity_and_a_silent_agent_is_unresponsive() {
        let statuses = vec![status(0, 3, b"a", None), status(1, 3, b"b", None), status(2, 2, b"c", None)];
        let report = consensus_health(&statuses, &facts(4));
        assert!(report.system_integrity.starts_with("violated: bft-agent-1 and bft-agent-2"), "{report:?}");
        assert_eq!(health(&statuses, &facts(4)).unresponsive_agents, ["bft-agent-4"]);
    }
}
