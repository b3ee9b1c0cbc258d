//! Launching the PBFT swarm once the committee is complete: the registered
//! members' keys, the config's protocol parameters, the genesis that funds the
//! task accounts, command hooks from the config, and the view-change recorder.

use super::home::{read_json, write_json, write_private, Home};
use super::registry::RegisteredAgent;
use super::state::{DaemonError, Running, SwarmState};
use super::view_log::ViewChangeRecorder;
use crate::actors::{params_from_config, LaunchOptions, QuarantinePolicy, Relaunch, Swarm, SwarmSpec};
use crate::crypto::Keypair;
use crate::events::{timestamp_now, EventKind, EventKinds};
use crate::hooks::Hooks;
use crate::observe::stream::EventLogHook;
use crate::protocol::{AgentId, Committee, Epoch, Member};
use crate::store::MemoryStore;
use crate::wal::WalOptions;
use actix::{Actor, Arbiter};
use std::sync::{Arc, Mutex};

/// Launches the swarm if it is not running and `max_agents` members are registered.
pub(super) fn launch_if_ready(
    state: &mut SwarmState,
    home: &Home,
    memory: &Arc<Mutex<MemoryStore>>,
) -> Result<(), DaemonError> {
    if state.running.is_some() || state.registry.members().len() < state.config.validators() {
        return Ok(());
    }
    let internal = |message: String| DaemonError::Internal(message);
    let founders = genesis_committee(state, home)?;
    let config = &state.config;
    let mut members = Vec::new();
    let mut keys = Vec::new();
    for (index, name) in founders.iter().enumerate() {
        let agent = state.registry.get(name).ok_or_else(|| {
            internal(format!("{name} of the genesis committee (swarm.json) is missing from agents.json"))
        })?;
        let keypair = agent_key(home, agent)?;
        let id = AgentId(index as u32);
        members.push(Member { id, name: agent.name.clone(), public_key: keypair.public_key() });
        keys.push(keypair);
    }
    let committee = Committee::new(Epoch(0), members, Some(config.max_failures()))
        .map_err(|e| internal(format!("cannot form the committee: {e}")))?;
    let relaunch = if config.storage.wal { relaunch_after_changes(state, home, &founders)? } else { None };
    let names = member_names(relaunch.as_ref().map_or(std::slice::from_ref(&committee), |r| &r.history));
    let (workload, genesis) = super::tasks::TaskWorkload::new(config).map_err(internal)?;
    let genesis = crate::actors::with_validator_accounts(genesis, &keys, config.workload.validator_balance)
        .map_err(|e| internal(e.to_string()))?;
    let spec =
        SwarmSpec::new(committee, keys, params_from_config(config), genesis).map_err(|e| internal(e.to_string()))?;
    // The daemon is the operator: it signs the membership changes of `update-quorum`.
    let spec = spec.with_operator(operator_key(home)?);
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
    let hooks = Hooks::new().commands(&config.hooks).map_err(|e| internal(e.to_string()))?.subscribe(
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
        max_wait: std::time::Duration::from_secs(60),
        memory: Some(memory.clone()),
    };
    let name = state.meta.swarm_id.clone();
    let wal = config.storage.wal.then(|| WalOptions::under_home(home.root(), config.storage.fsync));
    let options =
        LaunchOptions { name, hooks, validator_mailbox, quarantine, wal, relaunch, ..LaunchOptions::default() };
    let swarm = Arc::new(Swarm::launch_with(spec, options).map_err(|e| internal(e.to_string()))?);
    tracing::info!(validators = names.len(), "swarm launched");
    state.observed.set_swarm(Some(swarm.clone()));
    state.faults.clear();
    let mut running = Running { swarm, workload, names, launched_at, agents_arbiter, observers: Vec::new() };
    super::observer::start_observers(&mut running, state.registry.agents.iter());
    state.running = Some(running);
    Ok(())
}

/// The members of the first launch, in committee order: recorded in
/// `swarm.json` then, and read back on every later launch, so validators
/// recover from their logs into the committee they were written for.
fn genesis_committee(state: &mut SwarmState, home: &Home) -> Result<Vec<String>, DaemonError> {
    if state.meta.genesis_committee.is_empty() {
        let mut meta = state.meta.clone();
        meta.genesis_committee = state.registry.members().iter().map(|agent| agent.name.clone()).collect();
        write_json(&home.swarm_meta(), &meta)?;
        state.meta = meta;
    }
    Ok(state.meta.genesis_committee.clone())
}

/// After `update-quorum` (which writes `committees.json`), the swarm comes
/// back in its last epoch: the members that joined later are relaunched
/// from their logs with their keys in the home.
fn relaunch_after_changes(
    state: &SwarmState,
    home: &Home,
    founders: &[String],
) -> Result<Option<Relaunch>, DaemonError> {
    let Some(history) = read_json::<Vec<Committee>>(&home.committees())? else { return Ok(None) };
    let joined_later = state.registry.members().into_iter().filter(|agent| !founders.contains(&agent.name));
    let joined = joined_later.map(|agent| agent_key(home, agent)).collect::<Result<_, _>>()?;
    Ok(Some(Relaunch { history, joined }))
}

/// A registered validator's private key, from the home.
pub(super) fn agent_key(home: &Home, agent: &RegisteredAgent) -> Result<Keypair, DaemonError> {
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
