//! The report of a `bftswarm run`: built by a pure function from what the
//! client saw and what the validators say, so its integrity rules are tested
//! without starting a swarm. Printed as JSON (`--json`) or as a table.

use crate::actors::{ClientRun, DetectionRecord, MembershipChanged, ValidatorStatus};
use crate::crypto::Digest;
use crate::ledger::TxOutcome;
use crate::protocol::AgentId;
use crate::protocol::ClientStats;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the run was asked to do, to judge what it did.
#[derive(Clone, Debug)]
pub struct RunFacts {
    pub swarm_name: String,
    /// n, f and the quorum of the committee.
    pub validators: usize,
    pub max_failures: usize,
    pub quorum: usize,
    pub transfers_submitted: usize,
    pub expected_overdrafts: usize,
    /// Whether every transfer that is not an overdraft is sure to be funded,
    /// so that the rejections must be exactly the overdrafts.
    pub only_overdrafts_invalid: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub swarm: String,
    pub status: &'static str,
    pub total_agents: usize,
    pub healthy_agents: usize,
    pub quorum_met: bool,
    pub quorum_threshold: usize,
    pub max_failures: usize,
    pub transactions_submitted: usize,
    pub transactions_committed: usize,
    pub transactions_rejected: usize,
    pub rejected_by_reason: BTreeMap<String, usize>,
    pub expected_overdrafts: usize,
    /// Agents the detector convicted (each quarantined and replaced when detection enforces).
    pub malicious_detected: usize,
    /// Conflicting spends of a nonce that another spend consumed: dropped, never executed.
    pub double_spends_rejected: u64,
    /// Convicted agents the config did not make Byzantine, over all honest agents: must be 0.
    pub false_positive_rate: f64,
    pub system_integrity: String,
    pub throughput_tx_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub elapsed_ms: f64,
    pub view: u64,
    pub primary: String,
    /// The view changes of the run, in the tutorial's `view-change` event shape.
    pub view_changes: Vec<ViewChangeEvent>,
    /// The membership changes of the run (`[[membership]]`), in order.
    pub membership_changes: Vec<MembershipChanged>,
    /// The detection log: one record per conviction, with its quarantine and replacement.
    pub detections: Vec<DetectionRecord>,
    pub agents: Vec<AgentRow>,
    pub client: ClientStats,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentRow {
    pub name: String,
    pub public_key: String,
    pub role: &'static str,
    pub healthy: bool,
    pub view: u64,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    pub state_digest: String,
    pub txs_committed: u64,
    pub txs_rejected: u64,
    pub inbound_rejected: u64,
    /// The fault injected into this agent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected_fault: Option<String>,
}

/// The tutorial's view-change event (its step 10).
#[derive(Debug, Clone, Serialize)]
pub struct ViewChangeEvent {
    pub event: &'static str,
    pub old_primary: String,
    pub new_primary: String,
    pub view_number: u64,
    /// From the validator suspecting the primary to it installing the NEW-VIEW.
    pub view_change_duration_ms: f64,
    pub triggered_by: Vec<String>,
    pub quorum_met: bool,
    pub transactions_recovered: usize,
}

/// The view history of the honest validator that saw the most view changes.
pub(crate) fn view_changes(statuses: &[ValidatorStatus], quorum: usize) -> Vec<ViewChangeEvent> {
    let name = |id: AgentId| statuses.iter().find(|s| s.id == id).map_or_else(|| id.to_string(), |s| s.name.clone());
    let witness = statuses.iter().filter(|s| s.injected_fault.is_none()).max_by_key(|s| s.view_history.len());
    let Some(witness) = witness else { return Vec::new() };
    witness
        .view_history
        .iter()
        .map(|record| ViewChangeEvent {
            event: "view-change",
            old_primary: name(record.old_primary),
            new_primary: name(record.new_primary),
            view_number: record.view.0,
            view_change_duration_ms: (record.duration_ms * 10.0).round() / 10.0,
            triggered_by: record.triggered_by.iter().map(|id| name(*id)).collect(),
            quorum_met: record.triggered_by.len() >= quorum,
            transactions_recovered: record.transactions_recovered,
        })
        .collect()
}

impl RunReport {
    pub fn build(run: &ClientRun, statuses: &[ValidatorStatus], facts: &RunFacts) -> RunReport {
        let mut rejected_by_reason = BTreeMap::new();
        let mut committed = 0;
        for completion in &run.completions {
            match completion.outcome {
                TxOutcome::Committed => committed += 1,
                TxOutcome::Rejected(reason) => *rejected_by_reason.entry(reason.name().to_string()).or_default() += 1,
            }
        }
        let double_spends = statuses.iter().map(|s| s.stats.double_spends_dropped).max().unwrap_or(0);
        if double_spends > 0 {
            rejected_by_reason.insert("double-spend".to_string(), double_spends as usize);
        }
        let rejected = run.completions.len() - committed + double_spends as usize;
        let mut latencies: Vec<u64> = run.completions.iter().map(|c| c.latency_us).collect();
        latencies.sort_unstable();
        let elapsed_s = run.elapsed.as_secs_f64();
        let throughput = if elapsed_s > 0.0 { run.completions.len() as f64 / elapsed_s } else { 0.0 };
        let reference = agreed_state(statuses);
        let agents: Vec<AgentRow> =
            statuses.iter().map(|s| agent_row(s, reference == Some((s.last_executed.0, s.ledger_digest)))).collect();
        let healthy_agents = agents.iter().filter(|a| a.healthy).count();
        let integrity = check_integrity(run, statuses, facts);
        let quorum_met = healthy_agents >= facts.quorum;
        let view = statuses.iter().map(|s| s.view.0).max().unwrap_or(0);
        let primary = statuses
            .iter()
            .find(|s| s.is_primary && s.view.0 == view)
            .map_or_else(|| "unknown".to_string(), |s| s.name.clone());
        RunReport {
            swarm: facts.swarm_name.clone(),
            status: if integrity.is_ok() && quorum_met { "healthy" } else { "degraded" },
            total_agents: facts.validators,
            healthy_agents,
            quorum_met,
            quorum_threshold: facts.quorum,
            max_failures: facts.max_failures,
            transactions_submitted: facts.transfers_submitted,
            transactions_committed: committed,
            transactions_rejected: rejected,
            rejected_by_reason,
            expected_overdrafts: facts.expected_overdrafts,
            malicious_detected: 0,
            double_spends_rejected: double_spends,
            false_positive_rate: 0.0,
            system_integrity: match integrity {
                Ok(()) => "intact".to_string(),
                Err(reason) => format!("violated: {reason}"),
            },
            throughput_tx_per_s: (throughput * 10.0).round() / 10.0,
            latency_ms_p50: percentile_ms(&latencies, 0.50),
            latency_ms_p99: percentile_ms(&latencies, 0.99),
            latency_ms_max: percentile_ms(&latencies, 1.0),
            elapsed_ms: (run.elapsed.as_secs_f64() * 1e4).round() / 10.0,
            view,
            primary,
            view_changes: view_changes(statuses, facts.quorum),
            membership_changes: Vec::new(),
            detections: Vec::new(),
            agents,
            client: run.stats.clone(),
        }
    }

    /// Adds the detection log; a conviction of an agent not in `byzantine`
    /// is a false positive and violates the swarm's integrity.
    pub fn add_detections(&mut self, detections: Vec<DetectionRecord>, byzantine: &[String]) {
        let wrongly: Vec<&str> = detections
            .iter()
            .map(|record| record.detected_agent.as_str())
            .filter(|agent| !byzantine.iter().any(|name| name == agent))
            .collect();
        let honest = (self.total_agents + detections.len()).saturating_sub(byzantine.len()).max(1);
        self.false_positive_rate = wrongly.len() as f64 / honest as f64;
        if !wrongly.is_empty() && self.integrity_intact() {
            self.system_integrity = format!("violated: honest agents convicted: {}", wrongly.join(", "));
            self.status = "degraded";
        }
        self.malicious_detected = detections.len();
        self.detections = detections;
    }

    pub fn integrity_intact(&self) -> bool {
        self.system_integrity == "intact"
    }

    /// A table of agents and a summary, for a person at a terminal.
    pub fn to_text(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "agent",
            "role",
            "last executed",
            "stable checkpoint",
            "state digest",
            "txs committed",
            "inbound rejected",
        ]);
        for agent in &self.agents {
            table.add_row([
                agent.name.clone(),
                agent.role.to_string(),
                agent.last_executed.to_string(),
                agent.stable_checkpoint.to_string(),
                agent.state_digest.clone(),
                agent.txs_committed.to_string(),
                agent.inbound_rejected.to_string(),
            ]);
        }
        let reasons: Vec<String> =
            self.rejected_by_reason.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
        let reasons = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
        format!(
            "{table}\n\
             swarm {swarm}: {status}, {healthy}/{total} agents healthy, quorum {quorum} {met}\n\
             committed {committed}, rejected {rejected}{reasons}, expected overdrafts {overdrafts}\n\
             throughput {tps:.0} tx/s over {elapsed:.0} ms; commit latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
             view {view}, primary {primary}\n\
             {view_changes}\
             {membership}\
             {detections}\
             malicious detected {malicious}, double spends rejected {double_spends}, false positive rate {fpr:.1}\n\
             system integrity: {integrity}\n",
            detections = self.detections.iter().map(detection_line).collect::<String>(),
            malicious = self.malicious_detected,
            double_spends = self.double_spends_rejected,
            fpr = self.false_positive_rate,
            membership = self
                .membership_changes
                .iter()
                .map(|change| format!(
                    "epoch {}: added [{}], removed [{}]; now {} validators, f = {}, quorum {} ({:.1} ms)\n",
                    change.epoch,
                    change.added.join(", "),
                    change.removed.join(", "),
                    change.validators,
                    change.max_failures,
                    change.quorum,
                    change.elapsed_ms
                ))
                .collect::<String>(),
            view_changes = self
                .view_changes
                .iter()
                .map(|vc| format!(
                    "view change to {}: {} -> {} in {:.1} ms, triggered by {}\n",
                    vc.view_number,
                    vc.old_primary,
                    vc.new_primary,
                    vc.view_change_duration_ms,
                    vc.triggered_by.join(", ")
                ))
                .collect::<String>(),
            swarm = self.swarm,
            status = self.status,
            healthy = self.healthy_agents,
            total = self.total_agents,
            quorum = self.quorum_threshold,
            met = if self.quorum_met { "met" } else { "NOT met" },
            committed = self.transactions_committed,
            rejected = self.transactions_rejected,
            overdrafts = self.expected_overdrafts,
            tps = self.throughput_tx_per_s,
            elapsed = self.elapsed_ms,
            p50 = self.latency_ms_p50,
            p99 = self.latency_ms_p99,
            max = self.latency_ms_max,
            view = self.view,
            primary = self.primary,
            integrity = self.system_integrity,
        )
    }
}

/// One detection, as a line of the text report.
fn detection_line(record: &DetectionRecord) -> String {
    let replaced = match (&record.replaced_by, record.replacement_ms) {
        (Some(by), Some(ms)) => format!(", replaced by {by} after {ms:.0} ms"),
        _ => String::new(),
    };
    format!(
        "detected {} ({}, {}, {} votes against) in {:.2} ms: {}{}\n",
        record.detected_agent,
        record.fault_type,
        record.detection_method,
        record.votes_against,
        record.detection_latency_us as f64 / 1000.0,
        record.action,
        replaced
    )
}

/// The first rule the run broke, if any.
pub fn check_integrity(run: &ClientRun, statuses: &[ValidatorStatus], facts: &RunFacts) -> Result<(), String> {
    if statuses.is_empty() {
        return Err("no validator answered".into());
    }
    let mut digests_at: BTreeMap<u64, BTreeSet<Digest>> = BTreeMap::new();
    for status in statuses {
        digests_at.entry(status.last_executed.0).or_default().insert(status.ledger_digest);
    }
    if let Some((seq, _)) = digests_at.iter().find(|(_, digests)| digests.len() > 1) {
        let names: Vec<&str> = statuses.iter().filter(|s| s.last_executed.0 == *seq).map(|s| s.name.as_str()).collect();
        return Err(format!("validators {} executed up to seq {seq} but hold different ledgers", names.join(", ")));
    }
    if let Some(s) = statuses.iter().find(|s| s.balance_sum != s.total_supply as u128) {
        return Err(format!(
            "{}'s balances sum to {} but the total supply is {}",
            s.name, s.balance_sum, s.total_supply
        ));
    }
    let distinct: BTreeSet<_> = run.completions.iter().map(|c| c.tx_id).collect();
    if distinct.len() != facts.transfers_submitted || run.completions.len() != distinct.len() {
        return Err(format!(
            "the client completed {} distinct of {} transfers ({} completions)",
            distinct.len(),
            facts.transfers_submitted,
            run.completions.len()
        ));
    }
    let rejected = run.completions.iter().filter(|c| c.outcome != TxOutcome::Committed).count();
    if facts.only_overdrafts_invalid && rejected != facts.expected_overdrafts {
        return Err(format!(
            "{rejected} transfers were rejected but the workload holds {} overdrafts",
            facts.expected_overdrafts
        ));
    }
    Ok(())
}

/// The (seq, ledger digest) of the validators furthest ahead, when they agree
/// and their supply is conserved: the state a healthy agent holds.
fn agreed_state(statuses: &[ValidatorStatus]) -> Option<(u64, Digest)> {
    let top = statuses.iter().map(|s| s.last_executed.0).max()?;
    let mut leaders = statuses.iter().filter(|s| s.last_executed.0 == top);
    let first = leaders.next()?;
    let agreed =
        leaders.all(|s| s.ledger_digest == first.ledger_digest) && first.balance_sum == first.total_supply as u128;
    agreed.then_some((top, first.ledger_digest))
}

fn agent_row(status: &ValidatorStatus, healthy: bool) -> AgentRow {
    AgentRow {
        name: status.name.clone(),
        public_key: status.public_key.short_hex(),
        role: if status.is_primary { "primary" } else { "replica" },
        healthy,
        view: status.view.0,
        last_executed: status.last_executed.0,
        stable_checkpoint: status.stable_checkpoint.0,
        state_digest: status.ledger_digest.short_hex(),
        txs_committed: status.stats.txs_committed,
        txs_rejected: status.stats.txs_rejected,
        inbound_rejected: status.inbound_rejected.values().sum(),
        injected_fault: status.injected_fault.clone(),
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u64], quantile: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted_us.len() as f64).ceil() as usize;
    let micros = sorted_us[rank.clamp(1, sorted_us.len()) - 1];
    (micros as f64 / 100.0).round() / 10.0
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
