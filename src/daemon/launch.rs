//! Launching the PBFT swarm once the committee is complete: the registered
//! members' keys, the config's protocol parameters, the genesis that funds the
//! task accounts, command hooks from the config, and the view-change recorder.

use super::home::{write_private, Home};
use super::relaunch::{agent_key, carry_on, member_names, record_key, relaunch_from};
use super::state::{DaemonError, Running, SwarmState};
use super::view_log::ViewChangeRecorder;
use crate::actors::{params_from_config, LaunchOptions, MembershipJournal, QuarantinePolicy, Swarm, SwarmSpec};
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
                let public_key = agent_key(home, agent).map_err(internal)?.public_key();
                members.push(Member { id: AgentId(index as u32), name: agent.name.clone(), public_key });
            }
            Committee::new(Epoch(0), members, Some(config.max_failures()))
                .map_err(|e| internal(format!("cannot form the committee: {e}")))?
        }
    };
    let keys = genesis_committee
        .members()
        .iter()
        .map(|member| record_key(home, &record, &member.name).map_err(internal))
        .collect::<Result<Vec<_>, _>>()?;
    let (workload, genesis) = super::tasks::TaskWorkload::new(config).map_err(internal)?;
    let genesis = crate::actors::with_validator_accounts(genesis, &keys, config.workload.validator_balance)
        .map_err(|e| internal(e.to_string()))?;
    let genesis = crate::app::SwarmApp::new(genesis);
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
    let relaunch = if config.storage.wal { relaunch_from(&record, home).map_err(internal)? } else { None };
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
        // The home is one swarm: started again, it carries on with its convictions.
        resume: true,
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
    carry_on(&swarm, &record, pending, MEMBERSHIP_WAIT);
    state.observed.set_swarm(Some(swarm.clone()));
    let mut running = Running { swarm, workload, names, launched_at, agents_arbiter, observers: Vec::new() };
    super::observer::start_observers(&mut running, record.agents.iter());
    state.running = Some(running);
    Ok(())
}

/// How long a membership change may take to take effect.
pub(super) const MEMBERSHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

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
