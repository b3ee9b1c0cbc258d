use super::*;
use crate::crypto::PublicKey;
use crate::ledger::{RejectReason, TxId};
use crate::protocol::{AgentId, Completion, ReplicaStats, Seq, View};
use std::time::Duration;

fn facts() -> RunFacts {
    RunFacts {
        swarm_name: "test".into(),
        validators: 4,
        max_failures: 1,
        quorum: 3,
        transfers_submitted: 3,
        expected_overdrafts: 1,
        only_overdrafts_invalid: true,
    }
}

fn completion(i: u8, outcome: TxOutcome, latency_us: u64) -> Completion {
    Completion { tx_id: TxId([i; 16]), outcome, latency_us, seq: Seq(0) }
}

fn overdraft() -> TxOutcome {
    TxOutcome::Rejected(RejectReason::InsufficientFunds { balance: 10, amount: 100 })
}

fn run() -> ClientRun {
    ClientRun {
        completions: vec![
            completion(1, TxOutcome::Committed, 1_000),
            completion(2, overdraft(), 2_000),
            completion(3, TxOutcome::Committed, 9_000),
        ],
        stats: ClientStats::default(),
        elapsed: Duration::from_millis(100),
    }
}

fn status(id: u32, seq: u64, digest: u8) -> ValidatorStatus {
    ValidatorStatus {
        id: AgentId(id),
        name: format!("bft-agent-{}", id + 1),
        public_key: PublicKey([id as u8; 32]),
        is_primary: id == 0,
        view: View(0),
        epoch: crate::protocol::Epoch(0),
        member: true,
        last_executed: Seq(seq),
        slots_in_flight: 0,
        stable_checkpoint: Seq(0),
        stable_digest: Digest([0; 32]),
        ledger_digest: Digest([digest; 32]),
        balance_sum: 1000,
        total_supply: 1000,
        ledger_totals: None,
        stats: ReplicaStats::default(),
        inbound_rejected: BTreeMap::new(),
        outbound_dropped: 0,
        injected_fault: None,
        view_history: Vec::new(),
        recovery: None,
        logged_executed: None,
    }
}

fn agreeing() -> Vec<ValidatorStatus> {
    (0..4).map(|id| status(id, 5, 7)).collect()
}

#[test]
fn agreeing_validators_and_complete_client_are_intact_and_healthy() {
    let report = RunReport::build(&run(), &agreeing(), &facts());
    assert_eq!(report.system_integrity, "intact");
    assert_eq!(report.status, "healthy");
    assert_eq!(report.healthy_agents, 4);
    assert_eq!((report.transactions_committed, report.transactions_rejected), (2, 1));
    assert_eq!(report.rejected_by_reason["insufficient-funds"], 1);
    assert_eq!(report.throughput_tx_per_s, 30.0);
    assert_eq!((report.latency_ms_p50, report.latency_ms_max), (2.0, 9.0));
    assert_eq!(report.primary, "bft-agent-1");
}

#[test]
fn different_digests_at_the_same_seq_violate_integrity() {
    let mut statuses = agreeing();
    statuses[2].ledger_digest = Digest([8; 32]);
    let report = RunReport::build(&run(), &statuses, &facts());
    assert!(report.system_integrity.starts_with("violated"), "{}", report.system_integrity);
    assert!(report.system_integrity.contains("seq 5"));
    assert_eq!(report.status, "degraded");
    assert_eq!(report.healthy_agents, 0);
}

#[test]
fn a_lagging_validator_with_an_older_digest_is_not_a_violation() {
    let mut statuses = agreeing();
    statuses[3] = status(3, 4, 1);
    let report = RunReport::build(&run(), &statuses, &facts());
    assert_eq!(report.system_integrity, "intact");
    assert_eq!((report.healthy_agents, report.quorum_met), (3, true));
}

#[test]
fn supply_mismatch_violates_integrity() {
    let mut statuses = agreeing();
    statuses[1].balance_sum = 999;
    let report = RunReport::build(&run(), &statuses, &facts());
    assert!(report.system_integrity.starts_with("violated"));
    assert!(report.system_integrity.contains("bft-agent-2"));
}

#[test]
fn missing_completions_violate_integrity() {
    let mut short = run();
    short.completions.pop();
    let report = RunReport::build(&short, &agreeing(), &facts());
    assert!(report.system_integrity.starts_with("violated: the client completed 2"));
}

#[test]
fn rejections_beyond_the_overdrafts_violate_integrity() {
    let mut extra = run();
    extra.completions[0].outcome = overdraft();
    let report = RunReport::build(&extra, &agreeing(), &facts());
    assert!(report.system_integrity.contains("2 transfers were rejected"));
}

#[test]
fn text_report_names_every_agent_and_the_integrity() {
    let text = RunReport::build(&run(), &agreeing(), &facts()).to_text();
    for name in ["bft-agent-1", "bft-agent-4", "system integrity: intact"] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}
