//! Launching the PBFT swarm once the committee is complete: the registered
//! members' keys, the config's protocol parameters, the genesis that funds the
//! task accounts, command hooks from the config, and the view-change recorder.

use super::home::{write_private, Home};
use super::membership::{AgentRecord, AgentStatus, MembershipRecord};
use super::state::{DaemonError, Running, SwarmState};
use super::view_log::ViewChangeRecorder;
use crate::actors::{
    params_from_config, LaunchOptions, MembershipJournal, QuarantinePolicy, Relaunch, Swarm, SwarmSpec,
};
use crate::crypto::Keypair;
use crate::events::{timestamp_now, EventKind, EventKinds};
use crate::hooks::Hooks;
use crate::observe::stream::EventLogHook;
use crate::protocol::{AgentId, Committee, Epoch, Member};
use crate::store::MemoryStore;
use crate::wal::WalOptions;
use actix::{Actor, Arbiter};
use std::sync::{Arc, Mutex};

/// Launches the swarm if it is not running and its committee is known: from
/// the membership record (every epoch since genesis, replacements included),
/// or, on the first launch, once `max_agents` validators are registered.
pub(super) fn launch_if_ready(
    state: &mut SwarmState,
    home: &Home,
    memory: &Arc<Mutex<MemoryStore>>,
) -> Result<(), DaemonError> {
    let record = state.book.read();
    let first_launch = record.committees.is_empty();
    if state.running.is_some() || (first_launch && record.members().len() < state.config.validators()) {
        return Ok(());
    }
    let internal = |message: String| DaemonError::Internal(message);
    let config = &state.config;
    let genesis_committee = match record.committees.first() {
        Some(genesis) => genesis.clone(),
        None => {
            let mut members = Vec::new();
            for (index, agent) in record.members().into_iter().enumerate() {
                let public_key = agent_key(home, agent)?.public_key();
                members.push(Member { id: AgentId(index as u32), name: agent.name.clone(), public_key });
            }
            Committee::new(Epoch(0), members, Some(config.max_failures()))
                .map_err(|e| internal(format!("cannot form the committee: {e}")))?
        }
    };
    let keys = genesis_committee
        .members()
        .iter()
        .map(|member| record_key(home, &record, &member.name))
        .collect::<Result<Vec<_>, _>>()?;
    let (workload, genesis) = super::tasks::TaskWorkload::new(config).map_err(internal)?;
    let genesis = crate::actors::with_validator_accounts(genesis, &keys, config.workload.validator_balance)
        .map_err(|e| internal(e.to_string()))?;
    let spec = SwarmSpec::new(genesis_committee, keys, params_from_config(config), genesis)
        .map_err(|e| internal(e.to_string()))?;
    // The daemon is the operator: it signs the membership changes of `update-quorum` and of replacements.
    let spec = spec.with_operator(operator_key(home)?);
    if first_launch {
        state.book.update(|record| record.launched(&spec.committee))?;
    } else if !config.storage.wal && record.committees.len() > 1 {
        // Without logs a swarm starts over from its genesis: say so in the record.
        state.book.update(|record| record.started_over())?;
    }
    let record = state.book.read();
    let relaunch = if config.storage.wal { relaunch_from(&record, home)? } else { None };
    let pending = relaunch.as_ref().is_some_and(|relaunch| relaunch.pending);
    let history = relaunch.as_ref().map_or_else(|| record.committees.clone(), |r| r.history.clone());
    let names = member_names(&history);
    let launched_at = timestamp_now();
    let agents_arbiter = Arbiter::new();
    let recorder = {
        let (names, launched_at, memory) = (names.clone(), launched_at.clone(), memory.clone());
        ViewChangeRecorder::start_in_arbiter(&agents_arbiter.handle(), move |_| {
            ViewChangeRecorder::new(names, launched_at, memory)
        })
    };
    let events = state.observed.events.clone();
    let stream = EventLogHook::start_in_arbiter(&agents_arbiter.handle(), move |_| EventLogHook(events));
    let hooks = Hooks::new().commands(&config.hooks).map_err(|e| internal(e.to_string()))?.home(home.root()).subscribe(
        "view-change-recorder",
        EventKinds::default().with(EventKind::ViewChanged),
        recorder.recipient(),
    );
    let hooks = hooks.subscribe("event-stream", EventKinds::all(), stream.recipient());
    let validator_mailbox = super::agent_types()
        .ok()
        .and_then(|types| types.resolve("validator").ok().and_then(|definition| definition.mailbox));
    let quarantine = QuarantinePolicy {
        duration: std::time::Duration::from_millis(config.detection.quarantine_duration_ms),
        enforce: config.detection.malicious_detection,
        max_wait: MEMBERSHIP_WAIT,
        memory: Some(memory.clone()),
    };
    let name = state.meta.swarm_id.clone();
    let wal = config.storage.wal.then(|| WalOptions::under_home(home.root(), config.storage.fsync));
    let journal: Arc<dyn MembershipJournal> = state.book.clone();
    let options = LaunchOptions {
        name,
        hooks,
        validator_mailbox,
        quarantine,
        wal,
        relaunch,
        journal: Some(journal),
        ..LaunchOptions::default()
    };
    let swarm = Arc::new(Swarm::launch_with(spec, options).map_err(|e| internal(e.to_string()))?);
    tracing::info!(validators = names.len(), epoch = history.len().saturating_sub(1), "swarm launched");
    carry_on(&swarm, &record, pending);
    state.observed.set_swarm(Some(swarm.clone()));
    let mut running = Running { swarm, workload, names, launched_at, agents_arbiter, observers: Vec::new() };
    super::observer::start_observers(&mut running, record.agents.iter());
    state.running = Some(running);
    Ok(())
}

/// What a relaunched swarm takes up again from its record: the faults the
/// operator injected into members that still sit, the quarantines of members
/// not replaced yet (their replacement asked for again unless the pending
/// change removes them), and the pending change itself.
fn carry_on(swarm: &Swarm, record: &MembershipRecord, pending: bool) {
    let committee = swarm.committee();
    for agent in record.members() {
        let Some(id) = agent.agent_id.map(AgentId) else { continue };
        if let Some(fault) = &agent.injected_fault {
            if let Ok(fault_type) = fault.fault_type.parse() {
                let _ = swarm.inject_fault(id, fault_type, fault.probability, std::time::Duration::ZERO);
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
            match handle.resume_change(MEMBERSHIP_WAIT).await {
                Ok(changed) => tracing::info!(epoch = changed.epoch, "the pending membership change took effect"),
                Err(error) => tracing::error!(%error, "the pending membership change did not take effect"),
            }
        });
    }
}

/// How long a membership change may take to take effect.
pub(super) const MEMBERSHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A swarm that changed its members comes back in its last epoch: every
/// committee since genesis, a change still pending, and the keys of every
/// validator that joined after genesis and still holds (or is about to take) a seat.
fn relaunch_from(record: &MembershipRecord, home: &Home) -> Result<Option<Relaunch>, DaemonError> {
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
        if !joined.iter().any(|(name, _)| name == &member.name) {
            joined.push((member.name.clone(), record_key(home, record, &member.name)?));
        }
    }
    let joined = joined.into_iter().map(|(_, key)| key).collect();
    Ok(Some(Relaunch { history, joined, pending }))
}

/// The private key of the agent the record names `name`.
fn record_key(home: &Home, record: &MembershipRecord, name: &str) -> Result<Keypair, DaemonError> {
    let agent = record.get(name).ok_or_else(|| {
        DaemonError::Internal(format!("{name} of the committee is missing from {}", home.membership().display()))
    })?;
    agent_key(home, agent)
}

/// A registered validator's private key, from the home.
pub(super) fn agent_key(home: &Home, agent: &AgentRecord) -> Result<Keypair, DaemonError> {
    Keypair::read_pem_file(&home.root().join(&agent.key_file)).map_err(|e| DaemonError::Internal(e.to_string()))
}

/// Member names by agent id (the index), over every epoch.
fn member_names(history: &[Committee]) -> Vec<String> {
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

/// The key the daemon signs membership changes with: one per home, kept in
/// `keys/operator.pem`, so validators recovered from their logs accept the
/// changes of a daemon started again.
fn operator_key(home: &Home) -> Result<Keypair, DaemonError> {
    let path = home.keys_dir().join("operator.pem");
    if path.exists() {
        return Keypair::read_pem_file(&path).map_err(|e| DaemonError::Internal(e.to_string()));
    }
    let operator = Keypair::generate();
    let pem = operator.to_pkcs8_pem().map_err(|e| DaemonError::Internal(e.to_string()))?;
    write_private(&path, pem.as_bytes(), false)?;
    Ok(operator)
}
