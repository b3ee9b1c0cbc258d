//! The membership record's rules: who holds a seat after each kind of change,
//! what a departed agent's story says, and an older home carried over.

use super::*;
use crate::crypto::Keypair;
use crate::protocol::Epoch;

fn agent(name: &str, status: AgentStatus) -> AgentRecord {
    let key = (format!("0x{name}"), PathBuf::from(format!("keys/{name}.pem")));
    AgentRecord::new(name.into(), "validator", &[], key, status)
}

fn member(id: u32, name: &str) -> Member {
    Member { id: AgentId(id), name: name.into(), public_key: Keypair::from_seed([id as u8 + 1; 32]).public_key() }
}

fn quarantine(until_unix_ms: u64) -> QuarantineRecord {
    QuarantineRecord {
        at: "2026-12-06T05:00:00.000Z".into(),
        until: "later".into(),
        until_unix_ms,
        reason: "double-spend (self-verifying-evidence)".into(),
    }
}

/// bft-agent-1..4 launched as epoch 0.
fn n4_launched() -> (MembershipRecord, Committee) {
    let mut record = MembershipRecord {
        agents: (1..=4).map(|k| agent(&format!("bft-agent-{k}"), AgentStatus::Active)).collect(),
        ..MembershipRecord::default()
    };
    let members = (0..4).map(|i| member(i, &format!("bft-agent-{}", i + 1))).collect();
    let genesis = Committee::new(Epoch(0), members, None).unwrap();
    record.launched(&genesis);
    (record, genesis)
}

fn next_committee(from: &Committee, add: Vec<Member>, remove: &[AgentId]) -> Committee {
    let mut members: Vec<Member> = from.members().iter().filter(|m| !remove.contains(&m.id)).cloned().collect();
    members.extend(add);
    Committee::new(Epoch(from.epoch().0 + 1), members, None).unwrap()
}

#[test]
fn a_quarantined_member_keeps_its_seat_until_its_replacement_takes_effect() {
    let (mut record, genesis) = n4_launched();
    record.quarantined("bft-agent-2", quarantine(u64::MAX));
    assert_eq!(record.get("bft-agent-2").unwrap().status, AgentStatus::Quarantined);
    assert_eq!(record.members().len(), 4, "still seated");
    assert_eq!(record.quarantined_members(0).len(), 1);

    let fresh = member(4, "bft-agent-5");
    let next = next_committee(&genesis, vec![fresh.clone()], &[AgentId(1)]);
    let mut joiner = agent("bft-agent-5", AgentStatus::Standby);
    joiner.agent_id = Some(4);
    record.change_planned(&next, vec![joiner], &[AgentId(1)]);
    assert_eq!(record.pending.as_ref().map(|p| p.next.epoch()), Some(Epoch(1)));
    assert_eq!(record.get("bft-agent-5").unwrap().status, AgentStatus::Standby, "not seated before it takes effect");
    assert_eq!(record.committee(), Some(&genesis));

    record.change_took_effect(&next);
    let replaced = record.get("bft-agent-2").unwrap();
    assert_eq!(
        (replaced.status, replaced.replaced_by.as_deref(), replaced.left_epoch),
        (AgentStatus::Replaced, Some("bft-agent-5"), Some(1))
    );
    let joined = record.get("bft-agent-5").unwrap();
    assert_eq!((joined.status, joined.joined_epoch, joined.agent_id), (AgentStatus::Active, Some(1), Some(4)));
    let seated: Vec<&str> = record.members().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(seated, ["bft-agent-1", "bft-agent-3", "bft-agent-4", "bft-agent-5"]);
    assert!(record.pending.is_none());
    assert_eq!(record.committees.len(), 2);
    let story = replaced.departure();
    assert!(story.contains("quarantined at") && story.contains("replaced by bft-agent-5 in epoch 1"), "{story}");
}

#[test]
fn an_operator_removal_is_a_removal_not_a_replacement() {
    let (mut record, genesis) = n4_launched();
    record.agents.push(agent("bft-agent-5", AgentStatus::Standby));
    let next = next_committee(&genesis, vec![member(4, "bft-agent-5")], &[AgentId(0)]);
    let joiner = record.get("bft-agent-5").cloned().unwrap();
    record.change_planned(&next, vec![joiner], &[AgentId(0)]);
    record.change_took_effect(&next);
    let removed = record.get("bft-agent-1").unwrap();
    assert_eq!((removed.status, removed.replaced_by.as_ref()), (AgentStatus::Removed, None));
    assert!(removed.departure().contains("removed from the committee in epoch 1"), "{}", removed.departure());
    assert_eq!(record.agents.iter().filter(|a| a.name == "bft-agent-5").count(), 1, "recorded once");
}

#[test]
fn names_are_never_reused_and_faults_are_remembered() {
    let (mut record, _) = n4_launched();
    record.get_mut("bft-agent-2").unwrap().status = AgentStatus::Replaced;
    assert_eq!(record.next_free_name("bft-agent-"), "bft-agent-5");
    record.get_mut("bft-agent-3").unwrap().injected_fault =
        Some(InjectedFault { fault_type: "silent".into(), probability: 1.0 });
    assert_eq!(record.faults().into_iter().collect::<Vec<_>>(), [("bft-agent-3".into(), "silent (p = 1.00)".into())]);
}

#[test]
fn an_expired_quarantine_is_no_longer_in_force() {
    let (mut record, _) = n4_launched();
    record.quarantined("bft-agent-3", quarantine(1_000));
    assert_eq!(record.quarantined_members(999).len(), 1);
    assert!(record.quarantined_members(1_000).is_empty());
}

#[test]
fn a_swarm_without_logs_starts_over_from_its_genesis() {
    let (mut record, genesis) = n4_launched();
    record.quarantined("bft-agent-2", quarantine(u64::MAX));
    let next = next_committee(&genesis, vec![member(4, "bft-agent-5")], &[AgentId(1)]);
    let mut joiner = agent("bft-agent-5", AgentStatus::Standby);
    joiner.agent_id = Some(4);
    record.change_planned(&next, vec![joiner], &[AgentId(1)]);
    record.change_took_effect(&next);
    record.started_over();
    assert_eq!(record.committees, vec![genesis]);
    assert_eq!(record.get("bft-agent-2").unwrap().status, AgentStatus::Active);
    assert_eq!(record.get("bft-agent-5").unwrap().status, AgentStatus::Standby);
    assert!(record.get("bft-agent-2").unwrap().quarantine.is_some(), "history stays");
}

#[test]
fn an_older_home_is_carried_over_with_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let agents = serde_json::json!({ "agents": [
        { "name": "bft-agent-1", "agent_type": "validator", "capabilities": [], "public_key": "0x1",
          "key_file": "keys/bft-agent-1.pem", "member": true },
        { "name": "bft-agent-2", "agent_type": "validator", "capabilities": [], "public_key": "0x2",
          "key_file": "keys/bft-agent-2.pem", "member": false },
        { "name": "watcher", "agent_type": "observer", "capabilities": [], "public_key": "-",
          "key_file": "", "member": false, "observer": true }
    ]});
    std::fs::write(dir.path().join("agents.json"), agents.to_string()).unwrap();
    let record = MembershipRecord::load(&home).unwrap();
    let statuses: Vec<AgentStatus> = record.agents.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AgentStatus::Active, AgentStatus::Standby, AgentStatus::Observer]);
    assert!(record.committees.is_empty());
    record.save(&home).unwrap();
    assert_eq!(MembershipRecord::load(&home).unwrap(), record, "the new form reads back the same");
}
