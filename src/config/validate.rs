//! The rules a loaded config must satisfy, each failure naming its field.

use super::{ConfigError, SwarmConfig};
use crate::events::EventKind;

/// Upper bound on n: every validator talks to every other (O(n²) messages
/// per batch) and names and keys are made for all n up front.
pub const MAX_VALIDATORS: usize = 1024;
const MAX_BATCH_SIZE: u64 = 65_536;
/// Upper bound on a workload's transfers: they are generated and signed up
/// front (a few hundred bytes each), so beyond this a run would exhaust memory.
pub const MAX_TRANSACTIONS: usize = 10_000_000;
/// Upper bound on a workload's accounts: each gets a key pair and a genesis entry up front.
pub const MAX_ACCOUNTS: usize = 1_000_000;
/// Upper bound on every duration in the config: a day. Durations become
/// deadlines (now + duration) and microseconds; beyond this they overflow.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Upper bound on a quarantine: a year.
pub const MAX_QUARANTINE_MS: u64 = 365 * MAX_DURATION_MS;
/// Upper bound on the client's window of requests in flight.
pub const MAX_CONCURRENT_REQUESTS: usize = 65_536;
const DETECTION_STRATEGIES: [&str; 3] = ["signature-mismatch", "quorum-verification", "transaction-log-verification"];

impl SwarmConfig {
    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in("the config")
    }

    /// [`SwarmConfig::validate`], naming `origin` (the file) in hook errors.
    pub(super) fn validate_in(&self, origin: &str) -> Result<(), ConfigError> {
        self.validate_swarm()?;
        self.validate_hooks(origin)?;
        self.validate_faults(origin)?;
        self.validate_membership(origin)?;
        self.validate_consensus()?;
        let (c, w, d) = (&self.client, &self.workload, &self.detection);
        between("client.max_concurrent_requests", c.max_concurrent_requests as u64, 1, MAX_CONCURRENT_REQUESTS as u64)?;
        between("client.request_retry_ms", c.request_retry_ms, 1, MAX_DURATION_MS)?;
        between("workload.transactions", w.transactions as u64, 1, MAX_TRANSACTIONS as u64)?;
        between("workload.accounts", w.accounts as u64, 2, MAX_ACCOUNTS as u64)?;
        at_least("workload.initial_balance", w.initial_balance, 1)?;
        between("workload.max_amount", w.max_amount, 1, w.initial_balance)?;
        if !(0.0..=1.0).contains(&w.overdraft_ratio) {
            return invalid(
                "workload.overdraft_ratio",
                format!("is {}; it must be between 0.0 and 1.0", w.overdraft_ratio),
            );
        }
        between("detection.quarantine_duration_ms", d.quarantine_duration_ms, 0, MAX_QUARANTINE_MS)?;
        one_of("detection.detection_strategy", &d.detection_strategy, &DETECTION_STRATEGIES)
    }

    fn validate_swarm(&self) -> Result<(), ConfigError> {
        let s = &self.swarm;
        if s.name.trim().is_empty() {
            return invalid("swarm.name", "is empty; give the swarm a name".into());
        }
        one_of("swarm.topology", &s.topology, &["star"])?;
        one_of("swarm.consensus", &s.consensus, &["byzantine"])?;
        between("swarm.max_agents", s.max_agents as u64, 4, MAX_VALIDATORS as u64)?;
        let prefix_ok = s.agent_name_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if s.agent_name_prefix.is_empty() || !prefix_ok {
            return invalid(
                "swarm.agent_name_prefix",
                format!(
                    "= {:?} cannot name key files; use letters, digits, `-`, `_` or `.`, e.g. \"bft-agent-\"",
                    s.agent_name_prefix
                ),
            );
        }
        if let Some(f) = s.max_failures {
            let n = s.max_agents;
            if f == 0 {
                return invalid(
                    "swarm.max_failures",
                    format!(
                        "is 0; a Byzantine swarm tolerates at least 1 failure; remove it to use floor((n-1)/3) = {}",
                        (n - 1) / 3
                    ),
                );
            }
            let needed = f.saturating_mul(3).saturating_add(1);
            if n < needed {
                return invalid(
                    "swarm.max_agents",
                    format!(
                        "= {n} cannot tolerate max_failures = {f}: Byzantine agreement needs n >= 3f+1 = {needed}; raise max_agents or lower max_failures"
                    ),
                );
            }
        }
        Ok(())
    }

    fn validate_consensus(&self) -> Result<(), ConfigError> {
        let c = &self.consensus;
        one_of("consensus.signature_algorithm", &c.signature_algorithm, &["ed25519"])?;
        if let Some(threshold) = c.verification_threshold {
            let (q, n) = (self.quorum(), self.validators());
            let fraction = q as f64 / n as f64;
            // The tutorial writes 5/7 as 0.71: allow rounding to two decimals.
            if threshold.is_nan() || threshold < fraction - 0.01 {
                return invalid(
                    "consensus.verification_threshold",
                    format!(
                        "{threshold:.2} is below the quorum fraction {q}/{n} = {fraction:.2}; raise it or remove it"
                    ),
                );
            }
            if threshold > 1.0 {
                return invalid(
                    "consensus.verification_threshold",
                    format!("{threshold:.2} is above 1.0; use a fraction of the validators, at least {fraction:.2}, or remove it"),
                );
            }
        }
        between("consensus.view_change_timeout_ms", c.view_change_timeout_ms, 1, MAX_DURATION_MS)?;
        between("consensus.batch_delay_us", c.batch_delay_us, 0, MAX_DURATION_MS)?;
        at_least("consensus.checkpoint_interval", c.checkpoint_interval as u64, 1)?;
        if c.log_window != 0 && c.log_window < c.checkpoint_interval {
            return invalid(
                "consensus.log_window",
                format!(
                    "= {} is smaller than checkpoint_interval = {}: the primary would stall before a checkpoint; raise it or set 0 for 2 * checkpoint_interval",
                    c.log_window, c.checkpoint_interval
                ),
            );
        }
        between("consensus.max_batch_size", c.max_batch_size as u64, 1, MAX_BATCH_SIZE)?;
        at_least("consensus.max_in_flight_batches", c.max_in_flight_batches as u64, 1)?;
        if c.max_in_flight_batches > self.log_window() {
            return invalid(
                "consensus.max_in_flight_batches",
                format!(
                    "= {} exceeds the log window of {} sequence numbers; lower it or raise consensus.log_window",
                    c.max_in_flight_batches,
                    self.log_window()
                ),
            );
        }
        between("consensus.retransmit_interval_ms", c.retransmit_interval_ms, 1, MAX_DURATION_MS)?;
        if c.max_pending_requests < c.max_batch_size {
            return invalid(
                "consensus.max_pending_requests",
                format!(
                    "= {} is smaller than max_batch_size = {}: a full batch could never be queued; raise it",
                    c.max_pending_requests, c.max_batch_size
                ),
            );
        }
        Ok(())
    }
}

impl SwarmConfig {
    /// `[[hooks]]` entries are numbered, so their errors name `hooks[2].event`;
    /// `Invalid` takes only static names, hence `Type`, which also names the file.
    fn validate_hooks(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |index: usize, key: &str, message: String| ConfigError::Type {
            field: format!("hooks[{index}].{key}"),
            origin: origin.to_string(),
            message,
        };
        for (index, hook) in self.hooks.iter().enumerate() {
            if let Err(error) = hook.event.parse::<EventKind>() {
                return Err(bad(
                    index,
                    "event",
                    format!("= {:?} is not a lifecycle event; use one of: {}", error.name, EventKind::names()),
                ));
            }
            if hook.command.trim().is_empty() {
                return Err(bad(
                    index,
                    "command",
                    "is empty; give the path of an executable, e.g. \"hooks/audit-log.sh\"".into(),
                ));
            }
            if !(1..=MAX_DURATION_MS).contains(&hook.timeout_ms) {
                let message = format!("is {}; it must be between 1 and {MAX_DURATION_MS}", hook.timeout_ms);
                return Err(bad(index, "timeout_ms", message));
            }
        }
        Ok(())
    }
}

impl SwarmConfig {
    /// `[[faults]]`: a known agent and fault type, a probability, and no more
    /// faulty agents than the committee tolerates (beyond f, nothing is promised).
    fn validate_faults(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |index: usize, key: &str, message: String| ConfigError::Type {
            field: format!("faults[{index}].{key}"),
            origin: origin.to_string(),
            message,
        };
        let names = self.agent_names();
        let mut faulty = std::collections::BTreeSet::new();
        for (index, fault) in self.faults.iter().enumerate() {
            if !names.contains(&fault.agent) {
                let message = format!(
                    "= {:?} is not an agent of this swarm; agents are {}1..{}",
                    fault.agent,
                    self.swarm.agent_name_prefix,
                    names.len()
                );
                return Err(bad(index, "agent", message));
            }
            if let Err(message) = fault.fault_type.parse::<crate::faults::FaultType>() {
                return Err(bad(index, "fault_type", message));
            }
            if !(0.0..=1.0).contains(&fault.probability) {
                return Err(bad(index, "probability", format!("= {} must be between 0.0 and 1.0", fault.probability)));
            }
            if fault.after_ms > MAX_DURATION_MS {
                return Err(bad(
                    index,
                    "after_ms",
                    format!("= {} is more than a day ({MAX_DURATION_MS})", fault.after_ms),
                ));
            }
            faulty.insert(fault.agent.as_str());
        }
        if faulty.len() > self.max_failures() {
            let message = format!(
                "names {} faulty agents but the swarm tolerates at most f = {}; inject fewer or raise max_agents",
                faulty.len(),
                self.max_failures()
            );
            return Err(ConfigError::Type { field: "faults".into(), origin: origin.to_string(), message });
        }
        Ok(())
    }
}

impl SwarmConfig {
    /// `[[membership]]`: each change adds or removes someone, removes only
    /// agents present at that point, and never leaves fewer than four validators
    /// (a committee must tolerate a fault).
    fn validate_membership(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |index: usize, key: &str, message: String| ConfigError::Type {
            field: format!("membership[{index}].{key}"),
            origin: origin.to_string(),
            message,
        };
        let mut present = self.agent_names();
        let mut next_number = present.len() + 1;
        for (index, entry) in self.membership.iter().enumerate() {
            if entry.add == 0 && entry.remove.is_empty() {
                return Err(bad(index, "add", "and remove are both empty: the change would do nothing".into()));
            }
            for name in &entry.remove {
                let Some(position) = present.iter().position(|agent| agent == name) else {
                    let message = format!("names {name:?}, which is not a validator at that point of the run");
                    return Err(bad(index, "remove", message));
                };
                present.remove(position);
            }
            for _ in 0..entry.add {
                present.push(format!("{}{next_number}", self.swarm.agent_name_prefix));
                next_number += 1;
            }
            if present.len() < 4 || present.len() > MAX_VALIDATORS {
                let message =
                    format!("would leave {} validators; a swarm needs between 4 and {MAX_VALIDATORS}", present.len());
                return Err(bad(index, "remove", message));
            }
        }
        Ok(())
    }
}

fn invalid(field: &'static str, message: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { field, message })
}

fn at_least(field: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return invalid(field, format!("is {value}; it must be at least {min}"));
    }
    Ok(())
}

fn between(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return invalid(field, format!("is {value}; it must be between {min} and {max}"));
    }
    Ok(())
}

fn one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    if !allowed.contains(&value) {
        let allowed = allowed.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
        return invalid(field, format!("= {value:?} is not supported; use one of: {allowed}"));
    }
    Ok(())
}
