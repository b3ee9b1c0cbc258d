//! Launching the PBFT swarm once the committee is complete: the registered
//! members' keys, the config's protocol parameters, the genesis that funds the
//! task accounts, command hooks from the config, and the view-change recorder.

use super::home::Home;
use super::state::{DaemonError, Running, SwarmState};
use super::view_log::ViewChangeRecorder;
use crate::actors::{params_from_config, LaunchOptions, QuarantinePolicy, Swarm, SwarmSpec};
use crate::crypto::Keypair;
use crate::events::{timestamp_now, EventKind, EventKinds};
use crate::hooks::Hooks;
use crate::protocol::{AgentId, Committee, Epoch, Member};
use crate::store::MemoryStore;
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
    let config = &state.config;
    let internal = |message: String| DaemonError::Internal(message);
    let mut members = Vec::new();
    let mut keys = Vec::new();
    for (index, agent) in state.registry.members().into_iter().enumerate() {
        let keypair =
            Keypair::read_pem_file(&home.root().join(&agent.key_file)).map_err(|e| internal(e.to_string()))?;
        let id = AgentId(index as u32);
        members.push(Member { id, name: agent.name.clone(), public_key: keypair.public_key() });
        keys.push(keypair);
    }
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let committee = Committee::new(Epoch(0), members, Some(config.max_failures()))
        .map_err(|e| internal(format!("cannot form the committee: {e}")))?;
    let (workload, genesis) = super::tasks::TaskWorkload::new(config).map_err(internal)?;
    let genesis = crate::actors::with_validator_accounts(genesis, &keys, config.workload.validator_balance)
        .map_err(|e| internal(e.to_string()))?;
    let spec =
        SwarmSpec::new(committee, keys, params_from_config(config), genesis).map_err(|e| internal(e.to_string()))?;
    // The daemon is the operator: it signs the membership changes of `update-quorum`.
    let spec = spec.with_operator(crate::crypto::Keypair::generate());
    let launched_at = timestamp_now();
    let agents_arbiter = Arbiter::new();
    let recorder = {
        let (names, launched_at, memory) = (names.clone(), launched_at.clone(), memory.clone());
        ViewChangeRecorder::start_in_arbiter(&agents_arbiter.handle(), move |_| {
            ViewChangeRecorder::new(names, launched_at, memory)
        })
    };
    let hooks = Hooks::new().commands(&config.hooks).map_err(|e| internal(e.to_string()))?.subscribe(
        "view-change-recorder",
        EventKinds::default().with(EventKind::ViewChanged),
        recorder.recipient(),
    );
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
    let options = LaunchOptions { name, hooks, validator_mailbox, quarantine, ..LaunchOptions::default() };
    let swarm = Arc::new(Swarm::launch_with(spec, options).map_err(|e| internal(e.to_string()))?);
    tracing::info!(validators = names.len(), "swarm launched");
    state.faults.clear();
    let mut running = Running { swarm, workload, names, launched_at, agents_arbiter, observers: Vec::new() };
    super::observer::start_observers(&mut running, state.registry.agents.iter());
    state.running = Some(running);
    Ok(())
}
