//! Prometheus metrics: the recorder every long-running process (daemon, hub,
//! node) installs, the names (prefixed `bftswarm_`, after CometBFT's
//! families), and one function per place the actors count something.
//!
//! The actors call these with what they already hold (an [`Output`], a
//! [`Completion`], a drop count); the protocol itself never counts here, so it
//! stays pure. Until [`install`] runs, or while [`set_enabled`] is off, every
//! function returns at once: a swarm embedded in a test or run by `run` pays
//! one relaxed atomic load per call.

use crate::ledger::{Execution, TxOutcome};
use crate::protocol::{AgentId, Committee, Completion, Output, Replica};
use crate::wal::Recovery;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const LAST_EXECUTED_SEQ: &str = "bftswarm_consensus_last_executed_seq";
pub const VIEW: &str = "bftswarm_consensus_view";
pub const EPOCH: &str = "bftswarm_consensus_epoch";
pub const VALIDATORS: &str = "bftswarm_consensus_validators";
pub const VIEW_CHANGES: &str = "bftswarm_consensus_view_changes_total";
pub const COMMITTED: &str = "bftswarm_consensus_committed_transactions_total";
pub const REJECTED: &str = "bftswarm_consensus_rejected_transactions_total";
pub const BATCH_SIZE: &str = "bftswarm_consensus_batch_size";
pub const CLIENT_COMMITTED: &str = "bftswarm_client_committed_transactions_total";
pub const CLIENT_REJECTED: &str = "bftswarm_client_rejected_transactions_total";
pub const COMMIT_LATENCY: &str = "bftswarm_client_commit_latency_seconds";
pub const SIGNATURES_VERIFIED: &str = "bftswarm_crypto_signatures_verified_total";
pub const MESSAGES_DROPPED: &str = "bftswarm_messages_dropped_total";
pub const MAILBOX_DROPPED: &str = "bftswarm_mailbox_dropped_total";
pub const OUTBOX_DROPPED: &str = "bftswarm_outbox_dropped_total";
pub const WAL_FSYNC: &str = "bftswarm_wal_fsync_seconds";
pub const CONVICTED: &str = "bftswarm_detection_convicted_agents_total";
pub const QUARANTINED: &str = "bftswarm_detection_quarantined_agents_total";
pub const REPLACED: &str = "bftswarm_detection_replaced_agents_total";
pub const HUB_CONNECTED_PEERS: &str = "bftswarm_hub_connected_peers";
pub const HUB_REFUSED_PEERS: &str = "bftswarm_hub_refused_peers_total";

/// How often histogram samples are folded into buckets when nobody scrapes:
/// bounds the memory a long unscraped run holds.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Installs the process-wide recorder (once; later calls return the same
/// handle) and turns counting on.
pub fn install() -> &'static PrometheusHandle {
    let handle = HANDLE.get_or_init(|| {
        let handle = build().install_recorder().unwrap_or_else(|_| {
            // Another recorder is installed (an embedding program's): render an empty one.
            build().build_recorder().handle()
        });
        describe();
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
        handle
    });
    set_enabled(true);
    handle
}

fn build() -> PrometheusBuilder {
    let latency = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let fsync = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
    let batch = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
    // Each bucket list is non-empty: the builder cannot refuse them.
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(COMMIT_LATENCY.into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WAL_FSYNC.into()), &fsync))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &batch))
        .unwrap_or_default()
}

/// The text exposition of every metric, or an empty page before [`install`].
pub fn render() -> String {
    HANDLE.get().map(PrometheusHandle::render).unwrap_or_default()
}

/// Turns counting off and on (the bench measures what it costs).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

#[inline]
fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn describe() {
    describe_gauge!(LAST_EXECUTED_SEQ, "Last sequence number the validator executed");
    describe_gauge!(VIEW, "The validator's current view");
    describe_gauge!(EPOCH, "The membership epoch the validator runs in");
    describe_gauge!(VALIDATORS, "Members of the validator's current committee");
    describe_counter!(VIEW_CHANGES, "New views the validator installed");
    describe_counter!(COMMITTED, "Transfers the validator executed and committed");
    describe_counter!(REJECTED, "Transfers the validator executed and rejected, by reason");
    describe_histogram!(BATCH_SIZE, "Requests per executed batch");
    describe_counter!(CLIENT_COMMITTED, "Transfers a client accepted as committed (f+1 matching replies)");
    describe_counter!(CLIENT_REJECTED, "Transfers a client accepted as rejected");
    describe_histogram!(COMMIT_LATENCY, Unit::Seconds, "From submission to f+1 matching replies");
    describe_counter!(SIGNATURES_VERIFIED, "Signatures of messages and requests verified");
    describe_counter!(MESSAGES_DROPPED, "Inbound messages dropped unverified or unwanted, by reason");
    describe_counter!(MAILBOX_DROPPED, "Envelopes the supervisor dropped on a full recipient mailbox");
    describe_counter!(OUTBOX_DROPPED, "Outputs a validator dropped on the supervisor's full mailbox");
    describe_histogram!(WAL_FSYNC, Unit::Seconds, "One group commit of a validator's write-ahead log");
    describe_counter!(CONVICTED, "Agents the detector convicted, by fault type");
    describe_counter!(QUARANTINED, "Agents quarantined (convicted or by the operator)");
    describe_counter!(REPLACED, "Quarantined validators replaced by fresh ones");
    describe_gauge!(HUB_CONNECTED_PEERS, "Validator processes connected to the hub");
    describe_counter!(HUB_REFUSED_PEERS, "Connections the hub refused at the handshake");
}

/// A member's name in `committee`, or `agent#N` for one it does not hold.
pub fn name_in(committee: &Committee, id: AgentId) -> String {
    committee.member(id).map_or_else(|| id.to_string(), |member| member.name.clone())
}

/// What one validator output says about consensus progress: counted, and
/// logged (named) where it changes who leads.
pub fn validator_output(validator: &str, output: &Output, committee: &Committee) {
    match output {
        Output::ViewChangeStarted { from, to, .. } => {
            let primary = name_in(committee, committee.primary(*from));
            tracing::info!(validator, from_view = from.0, to_view = to.0, suspected = %primary, "view change started");
        }
        Output::ViewChanged { view, primary, recovered, .. } => {
            let primary = name_in(committee, *primary);
            tracing::info!(validator, view = view.0, %primary, recovered, "view changed");
        }
        _ => {}
    }
    if !enabled() {
        return;
    }
    match output {
        Output::Executed(executed) => {
            let (mut committed, mut rejected) = (0u64, Vec::new());
            for execution in &executed.executions {
                match execution {
                    Execution::Applied(TxOutcome::Committed) => committed += 1,
                    Execution::Applied(TxOutcome::Rejected(reason)) => rejected.push(reason.name()),
                    Execution::Replayed(_) => {}
                }
            }
            let label = validator.to_owned();
            counter!(COMMITTED, "validator" => label.clone()).increment(committed);
            for reason in rejected {
                counter!(REJECTED, "validator" => label.clone(), "reason" => reason).increment(1);
            }
            gauge!(LAST_EXECUTED_SEQ, "validator" => label.clone()).set(executed.seq.0 as f64);
            gauge!(VIEW, "validator" => label).set(executed.view.0 as f64);
            histogram!(BATCH_SIZE).record(executed.executions.len() as f64);
        }
        Output::ViewChanged { view, .. } => {
            counter!(VIEW_CHANGES, "validator" => validator.to_owned()).increment(1);
            gauge!(VIEW, "validator" => validator.to_owned()).set(view.0 as f64);
        }
        Output::EpochChanged { committee, .. } => {
            gauge!(EPOCH, "validator" => validator.to_owned()).set(committee.epoch().0 as f64);
            gauge!(VALIDATORS, "validator" => validator.to_owned()).set(committee.members().len() as f64);
        }
        _ => {}
    }
}

/// A validator starts (or restarts, from its log when it keeps one).
pub fn validator_started<A: crate::app::Application>(
    validator: &str,
    replica: &Replica<A>,
    recovery: Option<&Recovery>,
) {
    let (epoch, members) = (replica.committee().epoch().0, replica.committee().members().len());
    if let Some(recovery) = recovery {
        let last_executed = replica.last_executed().0;
        tracing::info!(validator, epoch, last_executed, ?recovery, "validator recovered from its write-ahead log");
    }
    if enabled() {
        gauge!(EPOCH, "validator" => validator.to_owned()).set(epoch as f64);
        gauge!(VALIDATORS, "validator" => validator.to_owned()).set(members as f64);
        gauge!(LAST_EXECUTED_SEQ, "validator" => validator.to_owned()).set(replica.last_executed().0 as f64);
    }
}

pub fn client_completion(completion: &Completion) {
    if !enabled() {
        return;
    }
    match completion.outcome {
        TxOutcome::Committed => counter!(CLIENT_COMMITTED).increment(1),
        TxOutcome::Rejected(_) => counter!(CLIENT_REJECTED).increment(1),
    }
    histogram!(COMMIT_LATENCY).record(completion.latency_us as f64 / 1e6);
}

pub fn signatures_verified(count: u64) {
    if enabled() {
        counter!(SIGNATURES_VERIFIED).increment(count);
    }
}

pub fn message_dropped(reason: &str, count: u64) {
    if enabled() {
        counter!(MESSAGES_DROPPED, "reason" => reason.to_owned()).increment(count);
    }
}

pub fn mailbox_dropped(count: u64) {
    if enabled() {
        counter!(MAILBOX_DROPPED).increment(count);
    }
}

pub fn outbox_dropped(count: u64) {
    if enabled() {
        counter!(OUTBOX_DROPPED).increment(count);
    }
}

/// Times one write-ahead log group commit, from its start to its drop.
pub struct WalCommitTimer(Option<Instant>);

impl WalCommitTimer {
    pub fn start() -> WalCommitTimer {
        WalCommitTimer(enabled().then(Instant::now))
    }
}

impl Drop for WalCommitTimer {
    fn drop(&mut self) {
        if let Some(started) = self.0 {
            histogram!(WAL_FSYNC).record(started.elapsed().as_secs_f64());
        }
    }
}

pub fn convicted(fault_type: &str) {
    if enabled() {
        counter!(CONVICTED, "fault_type" => fault_type.to_owned()).increment(1);
    }
}

pub fn quarantined() {
    if enabled() {
        counter!(QUARANTINED).increment(1);
    }
}

pub fn replaced(count: usize) {
    if enabled() {
        counter!(REPLACED).increment(count as u64);
    }
}

/// Counts a validator process connected to the hub while it lives.
pub struct HubPeerGauge(bool);

impl HubPeerGauge {
    pub fn joined() -> HubPeerGauge {
        let counted = enabled();
        if counted {
            gauge!(HUB_CONNECTED_PEERS).increment(1.0);
        }
        HubPeerGauge(counted)
    }
}

impl Drop for HubPeerGauge {
    fn drop(&mut self) {
        if self.0 {
            gauge!(HUB_CONNECTED_PEERS).decrement(1.0);
        }
    }
}

pub fn hub_refused_peer() {
    if enabled() {
        counter!(HUB_REFUSED_PEERS).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_recorder_renders_what_was_counted_under_its_bftswarm_name() {
        install();
        signatures_verified(3);
        mailbox_dropped(2);
        let page = render();
        let value = |name: &str| {
            page.lines().find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(-1.0)
        };
        assert!(value(SIGNATURES_VERIFIED) >= 3.0, "{page}");
        assert!(value(MAILBOX_DROPPED) >= 2.0, "{page}");
        assert!(page.contains("# HELP bftswarm_crypto_signatures_verified_total"), "{page}");
    }
}
