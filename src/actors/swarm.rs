//! The embedding API: build a [`SwarmSpec`], [`Swarm::launch`] it inside a
//! running actix `System`, run clients against it, read its status, stop it.
//!
//! Threads: the supervisor, every validator and every client run on their own
//! `Arbiter`, so signature checks of different validators use different cores
//! and the caller's thread only waits.

use super::client::{Begin, Client, ClientRun};
use super::committees::Committees;
use super::detector::DetectorActor;
use super::durable::RecoveredValidator;
use super::journal::MembershipJournal;
use super::messages::{
    BatchExecuted, ForceViewChange, GetNextNonces, GetRoutingStats, GetStatus, InjectFault, ObserveExecutions,
    ReadReplica, Register, RegisterClient, Restart, RoutingStats, UnregisterClient, ValidatorStatus,
};
use super::quarantine::{
    DetectionRecord, GetDetectionLog, OperatorQuarantine, QuarantineManager, QuarantinePolicy, Reinstate,
    ReplacementSpawner,
};
use super::supervisor::Supervisor;
use super::validator::{HostedApp, Validator};
use crate::app::SignedTx;
use crate::app::SwarmApp;
use crate::config::SwarmConfig;
use crate::crypto::Keypair;
use crate::events::{timestamp_now, EventKinds, LifecycleEvent};
use crate::faults::{FaultSpec, FaultType};
use crate::hooks::{
    launch_events, EventHub, GetHookStats, HookEvent, HookId, HookStats, Hooks, Publish, RunTaskHooks, Subscribe, Veto,
};
use crate::ledger::{AccountId, GenesisError, Ledger};
use crate::protocol::{
    AgentId, ClientCore, ClientId, Committee, CommitteeError, Epoch, Member, ProtocolParams, Replica,
};
use crate::rng::SeededRng;
use crate::wal::{ReplicaSpec, WalError, WalOptions};
use actix::{Actor, Addr, Arbiter, Recipient, Supervisor as ActorSupervisor};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("invalid committee: {0}")]
    Committee(#[from] CommitteeError),
    #[error("{keys} validator keys for {members} committee members; give one key per member, in order")]
    KeyCount { keys: usize, members: usize },
    #[error("validator key {index} does not belong to committee member {id}")]
    KeyMismatch { index: usize, id: AgentId },
    #[error("the supervisor has stopped")]
    SupervisorStopped,
    #[error("client {0} stopped before it completed its transfers")]
    ClientStopped(ClientId),
    #[error(transparent)]
    Vetoed(#[from] Veto),
    #[error("the event hub has stopped")]
    HubStopped,
    #[error("the detector has stopped")]
    DetectorStopped,
    #[error("validator accounts cannot be opened: {0}")]
    Genesis(GenesisError),
    #[error("no validator {0} in this swarm; `bftswarm agent list` shows the agents")]
    UnknownAgent(AgentId),
    #[error("membership change refused: {0}")]
    Membership(#[from] crate::protocol::MembershipError),
    #[error("the membership change to epoch {epoch} did not take effect within {waited:?}")]
    MembershipTimeout { epoch: Epoch, waited: Duration },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("cannot relaunch the swarm in its last membership epoch: {0}")]
    Relaunch(String),
    #[error("cannot record the membership change: {0}")]
    Journal(String),
    #[error("the swarm made no progress for {seconds} s ({completed} of {total} transfers completed); it is stalled")]
    Stalled { seconds: u64, completed: u64, total: usize },
    #[error(transparent)]
    Recovery(#[from] crate::wal::RecoveryError),
}

/// Everything needed to start a swarm.
#[derive(Clone, Debug)]
pub struct SwarmSpec<A: HostedApp = SwarmApp> {
    pub committee: Committee,
    /// One per committee member, in the same order as `committee.members()`.
    pub validator_keys: Vec<Keypair>,
    pub params: ProtocolParams,
    /// The application's state at genesis (the built-in one: the ledger's
    /// accounts and an empty memory).
    pub genesis: A,
    /// Signs membership changes; without it the membership is fixed.
    pub operator: Option<Keypair>,
}

/// Mixed into the key seed so that validator keys never equal workload account
/// keys drawn from the same seed.
const VALIDATOR_KEYS_LABEL: u64 = 0x7661_6c69_6461_746f;

impl<A: HostedApp> SwarmSpec<A> {
    /// Checks that the keys belong to the committee's members, in order.
    pub fn new(
        committee: Committee,
        validator_keys: Vec<Keypair>,
        params: ProtocolParams,
        genesis: A,
    ) -> Result<SwarmSpec<A>, SwarmError> {
        let members = committee.members();
        if members.len() != validator_keys.len() {
            return Err(SwarmError::KeyCount { keys: validator_keys.len(), members: members.len() });
        }
        for (index, (member, key)) in members.iter().zip(&validator_keys).enumerate() {
            if member.public_key != key.public_key() {
                return Err(SwarmError::KeyMismatch { index, id: member.id });
            }
        }
        Ok(SwarmSpec { committee, validator_keys, params, genesis, operator: None })
    }

    /// Lets `operator` add and remove validators ([`Swarm::change_membership`]).
    pub fn with_operator(mut self, operator: Keypair) -> SwarmSpec<A> {
        self.committee = self.committee.with_operator(operator.public_key());
        self.operator = Some(operator);
        self
    }
}

impl SwarmSpec {
    /// Validators `AgentId(0..n)` named by the config, with keys derived from
    /// `key_seed`, so the same seed gives the same swarm.
    pub fn from_config(cfg: &SwarmConfig, genesis: Ledger, key_seed: u64) -> Result<SwarmSpec, SwarmError> {
        let mut rng = SeededRng::new(key_seed).fork(VALIDATOR_KEYS_LABEL);
        let keys: Vec<Keypair> = (0..cfg.validators()).map(|_| Keypair::from_seed(rng.bytes())).collect();
        let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
        let prefix = &cfg.swarm.agent_name_prefix;
        let committee = Committee::numbered(Epoch(0), &public_keys, prefix, Some(cfg.max_failures()))?;
        let operator = Keypair::from_seed(rng.bytes());
        let genesis = SwarmApp::new(with_validator_accounts(genesis, &keys, cfg.workload.validator_balance)?);
        Ok(SwarmSpec::new(committee, keys, params_from_config(cfg), genesis)?.with_operator(operator))
    }
}

/// Opens each validator's own account with `balance` (none when 0).
pub fn with_validator_accounts(mut genesis: Ledger, keys: &[Keypair], balance: u64) -> Result<Ledger, SwarmError> {
    if balance > 0 {
        let accounts: Vec<_> = keys.iter().map(|key| (AccountId(key.public_key()), balance)).collect();
        genesis.open_accounts(&accounts).map_err(SwarmError::Genesis)?;
    }
    Ok(genesis)
}

/// The protocol's tuning from the `[consensus]` section.
pub fn params_from_config(cfg: &SwarmConfig) -> ProtocolParams {
    let consensus = &cfg.consensus;
    ProtocolParams {
        checkpoint_interval: consensus.checkpoint_interval as u64,
        log_window: cfg.log_window() as u64,
        max_batch_size: consensus.max_batch_size,
        batch_delay_us: consensus.batch_delay_us,
        max_in_flight_batches: consensus.max_in_flight_batches as u64,
        retransmit_interval_us: consensus.retransmit_interval_ms.saturating_mul(1000),
        max_pending_requests: consensus.max_pending_requests,
        outcome_retention_checkpoints: 2,
        view_change_timeout_us: consensus.view_change_timeout_ms.saturating_mul(1000),
    }
}

/// How to launch a swarm beyond its [`SwarmSpec`].
pub struct LaunchOptions {
    /// Shown in the `swarm-initialized` event.
    pub name: String,
    /// Hooks registered before anything starts, so they hear the launch itself.
    pub hooks: Hooks,
    /// Validators' mailbox bound (from `agents/validator.toml`); unset means
    /// [`super::AGENT_MAILBOX`].
    pub validator_mailbox: Option<usize>,
    /// Members whose validator the caller runs itself — custom validator
    /// actors (`examples/custom_validator.rs`). They join like the built-in
    /// ones: `Register` with [`Swarm::supervisor`], `Route` what they send,
    /// handle `Deliver`.
    pub external_validators: BTreeSet<AgentId>,
    /// Where validators keep their write-ahead logs ([`WalOptions::under_home`]);
    /// unset keeps everything in memory. With logs, a swarm launched again
    /// from the same home recovers what it committed.
    pub wal: Option<WalOptions>,
    /// What a conviction leads to: by default it is only recorded; with
    /// `enforce`, the agent is quarantined and replaced through consensus.
    pub quarantine: QuarantinePolicy,
    /// A swarm launched again after membership changes ([`Relaunch`]); none for a new one.
    pub relaunch: Option<Relaunch>,
    /// Where membership changes and quarantines are written down before they
    /// are announced ([`MembershipJournal`]); none keeps them in memory only.
    pub journal: Option<Arc<dyn MembershipJournal>>,
}

/// What a swarm launched again from its logs after membership changes needs
/// besides its genesis: the committees since genesis (the first is the
/// spec's) and the keys of validators that joined later. Members of the
/// last committee are relaunched, each from its log; the others are not.
#[derive(Clone, Debug)]
pub struct Relaunch {
    pub history: Vec<Committee>,
    pub joined: Vec<Keypair>,
    /// The last committee of `history` was announced but not known to be in
    /// effect: the members of the one before are started too, and
    /// [`SwarmHandle::resume_change`] finishes the change.
    pub pending: bool,
}

impl Default for LaunchOptions {
    fn default() -> LaunchOptions {
        LaunchOptions {
            name: "bft-swarm".into(),
            hooks: Hooks::default(),
            validator_mailbox: None,
            external_validators: BTreeSet::new(),
            wal: None,
            quarantine: QuarantinePolicy::default(),
            relaunch: None,
            journal: None,
        }
    }
}

/// How long a `pre-task` veto actor may think before its silence vetoes.
pub const PRE_TASK_ACTOR_TIMEOUT: Duration = Duration::from_secs(2);

/// A running swarm: the supervisor, the event hub, the detector and the
/// validators, each on its own thread. Its API is [`SwarmHandle`]'s; dropping
/// or [`Swarm::stop`]ping it stops every thread.
pub struct Swarm<A: HostedApp = SwarmApp> {
    handle: Arc<SwarmHandle<A>>,
    /// The hub's, the supervisor's and the detection actors' threads.
    arbiters: Vec<Arbiter>,
}

impl<A: HostedApp> std::ops::Deref for Swarm<A> {
    type Target = SwarmHandle<A>;

    fn deref(&self) -> &SwarmHandle<A> {
        &self.handle
    }
}

/// What a running swarm is used through, shared with the actors that act on
/// it (the replacement spawner changes its membership).
///
/// Its methods take `&self`: a membership change may run while a client does
/// (futures on the caller's thread, or the daemon's API threads), so what
/// changes with the membership sits behind locks never held across an `.await`.
pub struct SwarmHandle<A: HostedApp = SwarmApp> {
    /// Every committee since genesis and which is in effect: a joining validator learns them.
    pub(super) committees: Mutex<Committees>,
    pub(super) params: ProtocolParams,
    pub(super) genesis: A,
    pub(super) operator: Option<Keypair>,
    /// Where the validators keep their logs, validators added later included; none in memory.
    pub(super) wal: Option<WalOptions>,
    pub(super) validator_mailbox: usize,
    pub(super) supervisor: Addr<Supervisor>,
    pub(super) hub: Addr<EventHub>,
    pub(super) validators: Mutex<Vec<ValidatorHandle<A>>>,
    /// Clients running now, told of each new committee.
    pub(super) clients: Mutex<BTreeMap<ClientId, Addr<Client>>>,
    pub(super) detector: Addr<DetectorActor>,
    pub(super) quarantine: Addr<QuarantineManager<A>>,
    /// Validators in other processes, by where their status is asked ([`super::remote`]).
    pub(super) remote: Mutex<BTreeMap<AgentId, super::remote::RemoteLink>>,
    pub(super) journal: Option<Arc<dyn MembershipJournal>>,
}

/// A validator actor and the thread it runs on.
pub(super) struct ValidatorHandle<A: HostedApp> {
    pub(super) id: AgentId,
    pub(super) addr: Addr<Validator<A>>,
    pub(super) arbiter: Arbiter,
}

impl<A: HostedApp> Swarm<A> {
    /// Starts the supervisor and one validator per member, without hooks.
    /// Must be called inside a running actix `System`.
    pub fn launch(spec: SwarmSpec<A>) -> Swarm<A> {
        let SwarmSpec { committee, validator_keys, params, genesis, operator } = spec;
        let seeds = committee
            .members()
            .iter()
            .zip(validator_keys)
            .map(|(member, keypair)| {
                (member.clone(), ValidatorSeed::in_memory(member, keypair, &committee, &params, &genesis))
            })
            .collect();
        let history = vec![committee.clone()];
        let spec = SwarmSpec { committee, validator_keys: Vec::new(), params, genesis, operator };
        Swarm::start(spec, history, seeds, LaunchOptions::default())
    }

    /// Starts the event hub with `options.hooks`, the supervisor and one
    /// validator per member, and publishes `swarm-initialized` and one
    /// `agent-spawned` per validator. Must be called inside a running actix `System`.
    ///
    /// With `options.wal`, every validator first rebuilds its replica from its
    /// write-ahead log; a damaged log is moved aside and that validator
    /// catches up from its peers. Fails only when a log cannot be opened at
    /// all (another process holds it, or its directory is unusable).
    ///
    /// With `options.relaunch` (and `wal`), the swarm comes back in its last
    /// membership epoch: the validators that joined later are relaunched from
    /// their logs too, and those removed meanwhile are not.
    pub fn launch_with(spec: SwarmSpec<A>, options: LaunchOptions) -> Result<Swarm<A>, SwarmError> {
        let SwarmSpec { committee, validator_keys, params, genesis, operator } = spec;
        let history = match &options.relaunch {
            Some(relaunch) => checked_history(&committee, relaunch, options.wal.is_some())?,
            None => vec![committee.clone()],
        };
        let latest = history.last().cloned().unwrap_or_else(|| committee.clone());
        // While a change is pending, the members it removes still hold their seats.
        let pending = options.relaunch.as_ref().is_some_and(|relaunch| relaunch.pending);
        let before_pending = if pending { history.iter().rev().nth(1).cloned() } else { None };
        let seated = |id: AgentId| latest.contains(id) || before_pending.as_ref().is_some_and(|c| c.contains(id));
        let mut seeds = Vec::with_capacity(validator_keys.len());
        for (member, keypair) in committee.members().iter().zip(validator_keys) {
            if options.external_validators.contains(&member.id) || !seated(member.id) {
                continue;
            }
            let seed = match &options.wal {
                Some(wal) => ValidatorSeed::durable(member, keypair, &committee, None, &params, &genesis, wal)?,
                None => ValidatorSeed::in_memory(member, keypair, &committee, &params, &genesis),
            };
            seeds.push((member.clone(), seed));
        }
        if let (Some(relaunch), Some(wal)) = (&options.relaunch, &options.wal) {
            let seats = latest.members().iter().chain(before_pending.iter().flat_map(|c| c.members()));
            let seats: Vec<&Member> = seats.collect();
            let mut started = BTreeSet::new();
            for keypair in &relaunch.joined {
                let joiner = seats.iter().find(|m| m.public_key == keypair.public_key());
                // A founder's key is relaunched above, once.
                let Some(member) = joiner.filter(|m| !committee.contains(m.id) && started.insert(m.id)) else {
                    continue;
                };
                let joined_in = history.iter().find(|c| c.contains(member.id));
                let keypair = keypair.clone();
                seeds.push((
                    (*member).clone(),
                    ValidatorSeed::durable(member, keypair, &committee, joined_in, &params, &genesis, wal)?,
                ));
            }
        }
        // Validators in other processes keep their own logs: with some, this
        // process cannot tell that every log is lost.
        if options.external_validators.is_empty() {
            let recoveries =
                seeds.iter().filter_map(|(member, seed)| seed.recovery().map(|r| (member.name.as_str(), r)));
            crate::wal::refuse_if_all_logs_lost(recoveries)?;
        }
        let spec = SwarmSpec { committee, validator_keys: Vec::new(), params, genesis, operator };
        Ok(Swarm::start(spec, history, seeds, options))
    }

    fn start(
        spec: SwarmSpec<A>,
        history: Vec<Committee>,
        seeds: Vec<(Member, ValidatorSeed<A>)>,
        options: LaunchOptions,
    ) -> Swarm<A> {
        let SwarmSpec { params, genesis, operator, .. } = spec;
        // The committee in effect: the one before a change still pending.
        let pending = options.relaunch.as_ref().is_some_and(|relaunch| relaunch.pending);
        let committees = Committees::new(if history.is_empty() { vec![spec.committee] } else { history }, pending);
        let committee = committees.current().clone();
        let LaunchOptions { name: swarm_name, hooks, validator_mailbox, quarantine, wal, journal, .. } = options;
        // Its own thread: fanning events out to hooks never delays routing.
        let hub_arbiter = Arbiter::new();
        let hub = EventHub::start_in_arbiter(&hub_arbiter.handle(), move |_| EventHub::new(hooks));
        // Before any validator exists, so hooks hear the launch before anything else.
        hub.do_send(Publish(launch_events(&swarm_name, &committee)));
        let supervisor_arbiter = Arbiter::new();
        let supervisor = Supervisor::start_in_arbiter(&supervisor_arbiter.handle(), |_| Supervisor::new());
        let detection_arbiter = Arbiter::new();
        let handle = Arc::new_cyclic(|swarm: &Weak<SwarmHandle<A>>| {
            let (events, detection) = (hub.clone().recipient(), detection_arbiter.handle());
            let (weak, max_wait) = (swarm.clone(), quarantine.max_wait);
            let spawner =
                ReplacementSpawner::start_in_arbiter(&detection, move |_| ReplacementSpawner::new(weak, max_wait));
            let weak = swarm.clone();
            let replace = spawner.clone().recipient();
            let manager = QuarantineManager::start_in_arbiter(&detection, move |_| {
                QuarantineManager::new(quarantine, weak, replace)
            });
            let convicted = manager.clone().recipient();
            let first = committee.clone();
            let detector =
                DetectorActor::start_in_arbiter(&detection, move |_| DetectorActor::new(first, events, convicted));
            SwarmHandle {
                committees: Mutex::new(committees),
                params,
                genesis,
                operator,
                wal,
                validator_mailbox: validator_mailbox.unwrap_or(super::AGENT_MAILBOX),
                supervisor,
                hub,
                validators: Mutex::new(Vec::new()),
                clients: Mutex::new(BTreeMap::new()),
                remote: Mutex::new(BTreeMap::new()),
                detector,
                quarantine: manager,
                journal,
            }
        });
        for (member, seed) in seeds {
            handle.spawn_seed(&member, seed);
        }
        Swarm { handle, arbiters: vec![hub_arbiter, supervisor_arbiter, detection_arbiter] }
    }

    /// Stops every validator and the supervisor, and waits until every
    /// thread but the event hub's has ended: the logs (and a memory store the
    /// detection actors write to) are closed when this returns, so a swarm
    /// may be launched again from the same home.
    pub fn stop(mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        // The hub holds no log; a slow command hook may keep its thread a while.
        let validators: Vec<ValidatorHandle<A>> = lock(&self.validators).drain(..).collect();
        for handle in &validators {
            handle.arbiter.stop();
        }
        for handle in validators {
            if handle.arbiter.join().is_err() {
                tracing::warn!("a validator thread panicked while stopping");
            }
        }
        // The detection actors may hold the memory store: closed when this returns.
        for arbiter in std::mem::take(&mut self.arbiters).into_iter().skip(1) {
            if arbiter.join().is_err() {
                tracing::warn!("a swarm thread panicked while stopping");
            }
        }
    }

    /// A handle on the running swarm, for actors and tasks that outlive a borrow.
    pub fn handle(&self) -> Arc<SwarmHandle<A>> {
        self.handle.clone()
    }
}

impl<A: HostedApp> SwarmHandle<A> {
    /// Starts one validator on its own thread, under an actix supervisor that
    /// restarts it from its log, and registers it with the hub (queued before
    /// anything routed later, so it is known by then).
    pub(super) fn spawn_seed(&self, member: &Member, seed: ValidatorSeed<A>) {
        let arbiter = Arbiter::new();
        let name = member.name.clone();
        let route = self.supervisor.clone().recipient();
        let events = self.hub.clone().recipient();
        let mailbox = self.validator_mailbox;
        let known = lock(&self.committees).history().to_vec();
        let detector = self.detector.clone().recipient();
        let addr = ActorSupervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            let validator = seed.grow(name, route).with_events(events).with_mailbox(mailbox);
            validator.with_known_committees(&known).with_detector(detector)
        });
        self.supervisor.do_send(Register {
            id: member.id,
            name: member.name.clone(),
            public_key: member.public_key,
            recipient: addr.clone().recipient(),
        });
        lock(&self.validators).push(ValidatorHandle { id: member.id, addr, arbiter });
    }

    /// The validators' addresses, in the order they joined.
    fn validator_addrs(&self) -> Vec<Addr<Validator<A>>> {
        lock(&self.validators).iter().map(|handle| handle.addr.clone()).collect()
    }

    /// The committee of the current membership epoch.
    pub fn committee(&self) -> Committee {
        lock(&self.committees).current().clone()
    }

    /// `agent` as a member of the latest committee that had it.
    pub fn member_in_any_epoch(&self, agent: AgentId) -> Option<Member> {
        lock(&self.committees).member_in_any_epoch(agent).cloned()
    }

    /// Enforces again a quarantine a relaunched swarm found in its record:
    /// nothing `agent` sends is routed, and with `replace` a fresh validator
    /// is asked to take its seat (without, a pending change already removes it).
    pub fn reinstate_quarantine(&self, agent: AgentId, replace: bool) {
        self.quarantine.do_send(Reinstate { agent, replace });
    }

    /// The hub, for agents that join the swarm from outside this module.
    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    pub fn validator(&self, id: AgentId) -> Option<Addr<Validator<A>>> {
        lock(&self.validators).iter().find(|handle| handle.id == id).map(|handle| handle.addr.clone())
    }

    /// Subscribes `observer` to every batch every validator executes.
    pub fn observe_executions(&self, observer: Recipient<BatchExecuted>) {
        for validator in self.validator_addrs() {
            validator.do_send(ObserveExecutions(observer.clone()));
        }
    }

    /// The event hub, to subscribe hooks after launch ([`crate::hooks`]).
    pub fn hub(&self) -> &Addr<EventHub> {
        &self.hub
    }

    /// Where agents outside this module publish lifecycle events.
    pub fn events(&self) -> Recipient<Publish> {
        self.hub.clone().recipient()
    }

    /// Joins a non-voting observer: it receives every batch every validator
    /// executes (so each batch once per validator; `BatchExecuted::agent` says
    /// whose) and, if `events` is given, the lifecycle events of those kinds.
    pub async fn add_observer(
        &self,
        name: &str,
        batches: Recipient<BatchExecuted>,
        events: Option<(EventKinds, Recipient<HookEvent>)>,
    ) -> Result<Option<HookId>, SwarmError> {
        self.observe_executions(batches);
        let Some((kinds, recipient)) = events else {
            return Ok(None);
        };
        let subscribe = Subscribe { name: name.into(), kinds, recipient };
        self.hub.send(subscribe).await.map(Some).map_err(|_| SwarmError::HubStopped)
    }

    /// Publishes `pre-task`, then asks every `pre-task` hook; a veto, a failing
    /// command or a silent hook refuses the task.
    pub async fn pre_task(&self, task: &str, description: &str, transfers: usize) -> Result<(), SwarmError> {
        let event = LifecycleEvent::PreTask {
            timestamp: timestamp_now(),
            task: task.into(),
            description: description.into(),
            transfers,
        };
        let check = RunTaskHooks { event, actor_timeout: PRE_TASK_ACTOR_TIMEOUT };
        self.hub.send(check).await.map_err(|_| SwarmError::HubStopped)??;
        Ok(())
    }

    /// Publishes `post-task` for a finished client run and waits for its
    /// command hooks (their failures are counted, not returned).
    pub async fn post_task(&self, task: &str, run: &ClientRun) -> Result<(), SwarmError> {
        let committed = run.completions.iter().filter(|c| c.outcome == crate::ledger::TxOutcome::Committed).count();
        let event = LifecycleEvent::PostTask {
            timestamp: timestamp_now(),
            task: task.into(),
            completed: run.completions.len(),
            committed,
            rejected: run.completions.len() - committed,
            elapsed_ms: run.elapsed.as_millis().min(u64::MAX as u128) as u64,
        };
        let hooks = RunTaskHooks { event, actor_timeout: PRE_TASK_ACTOR_TIMEOUT };
        self.hub.send(hooks).await.map_err(|_| SwarmError::HubStopped)??;
        Ok(())
    }

    pub async fn hook_stats(&self) -> Result<HookStats, SwarmError> {
        self.hub.send(GetHookStats).await.map_err(|_| SwarmError::HubStopped)
    }

    /// Submits `transfers` from one client on its own thread, `window` at a
    /// time, and waits until each has f+1 matching replies. `progress` counts
    /// completions as they happen.
    pub async fn run_client(
        &self,
        client: ClientId,
        transfers: Vec<SignedTx>,
        window: usize,
        retry_ms: u64,
        progress: Arc<AtomicU64>,
    ) -> Result<ClientRun, SwarmError> {
        let arbiter = StopOnDrop(Arbiter::new());
        let (result_tx, result_rx) = oneshot::channel();
        let committees = lock(&self.committees).history().to_vec();
        let route = self.supervisor.clone().recipient();
        let retry_us = retry_ms.saturating_mul(1000);
        let addr = Client::start_in_arbiter(&arbiter.0.handle(), move |_| {
            let mut core = ClientCore::new(client, committees[0].clone(), transfers, window, retry_us);
            committees.iter().for_each(|committee| core.learn_committee(committee));
            Client::new(client, core, route, progress, result_tx)
        });
        lock(&self.clients).insert(client, addr.clone());
        let register = RegisterClient { id: client, recipient: addr.clone().recipient() };
        self.supervisor.send(register).await.map_err(|_| SwarmError::SupervisorStopped)?;
        addr.do_send(Begin);
        let run = result_rx.await.map_err(|_| SwarmError::ClientStopped(client));
        lock(&self.clients).remove(&client);
        self.supervisor.do_send(UnregisterClient(client));
        run
    }

    /// [`SwarmHandle::run_client`], given up as [`SwarmError::Stalled`] when no
    /// transfer completes for `stall_limit` ([`SwarmConfig::stall_limit`]):
    /// the one way `run`, the hub and the daemon's tasks drive a workload.
    pub async fn run_client_until_stalled(
        &self,
        client: ClientId,
        transfers: Vec<SignedTx>,
        (window, retry_ms): (usize, u64),
        progress: Arc<AtomicU64>,
        stall_limit: Duration,
    ) -> Result<ClientRun, SwarmError> {
        let total = transfers.len();
        let run = std::pin::pin!(self.run_client(client, transfers, window, retry_ms, progress.clone()));
        let mut run = run;
        let mut last_change = (progress.load(Ordering::Relaxed), Instant::now());
        loop {
            tokio::select! {
                output = &mut run => return output,
                _ = actix_rt::time::sleep(Duration::from_millis(250)) => {
                    let completed = progress.load(Ordering::Relaxed);
                    if completed != last_change.0 {
                        last_change = (completed, Instant::now());
                    } else if last_change.1.elapsed() >= stall_limit {
                        return Err(SwarmError::Stalled { seconds: stall_limit.as_secs(), completed, total });
                    }
                }
            }
        }
    }

    /// Makes validator `agent` Byzantine (`inject-fault`): from `after` on it
    /// behaves as `fault_type` with `probability`. Only what it sends changes.
    pub fn inject_fault(
        &self,
        agent: AgentId,
        fault_type: FaultType,
        probability: f64,
        after: Duration,
    ) -> Result<(), SwarmError> {
        let validator = self.validator(agent).ok_or(SwarmError::UnknownAgent(agent))?;
        let after_us = super::now().0.saturating_add(after.as_micros().min(u64::MAX as u128) as u64);
        validator.do_send(InjectFault(FaultSpec { fault_type, probability: probability.clamp(0.0, 1.0), after_us }));
        Ok(())
    }

    /// Stops validator `agent` as a crash would; it starts again at once and
    /// rebuilds its replica from its write-ahead log (with no log, it keeps
    /// its memory), then catches up with its peers.
    pub fn restart(&self, agent: AgentId) -> Result<(), SwarmError> {
        self.validator(agent).ok_or(SwarmError::UnknownAgent(agent))?.do_send(Restart);
        Ok(())
    }

    /// The operator's `view-change --force`: every validator suspects the
    /// primary at once and the swarm moves to the next view.
    pub fn force_view_change(&self) {
        for validator in self.validator_addrs() {
            validator.do_send(ForceViewChange);
        }
    }

    /// Every validator's status, in the order they joined; a stopped one is left out.
    pub async fn status(&self) -> Vec<ValidatorStatus> {
        let validators = self.validator_addrs();
        let mut statuses = Vec::with_capacity(validators.len());
        for validator in validators {
            if let Ok(status) = validator.send(GetStatus).await {
                statuses.push(status);
            }
        }
        statuses.extend(self.remote_status().await);
        statuses
    }

    /// The nonce each account's next transfer must carry: the highest any
    /// in-process validator's ledger asks for (a recovered swarm's clients
    /// carry on from there instead of reusing spent nonces).
    pub async fn next_nonces(&self, accounts: Vec<AccountId>) -> Vec<u64> {
        let accounts = Arc::new(accounts);
        let local = self.validator_addrs().into_iter().map(|validator| validator.recipient());
        let mut answers = Vec::new();
        for validator in local.chain(self.remote_nonces()) {
            if let Ok(nonces) = validator.send(GetNextNonces(accounts.clone())).await {
                answers.push(nonces);
            }
        }
        vouched_nonces(&answers, accounts.len(), self.committee().f())
    }

    /// Reads every in-process validator's replica with `read`, in the order
    /// they joined; a stopped one is left out (validators of node processes
    /// are not asked: the hub reads them through its own frames).
    pub async fn read_replicas<R, F>(&self, read: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&Replica<A>) -> R + Clone + Send + 'static,
    {
        let mut answers = Vec::new();
        for validator in self.validator_addrs() {
            if let Ok(answer) = validator.send(ReadReplica(Box::new(read.clone()))).await {
                answers.push(answer);
            }
        }
        answers
    }

    /// Waits, at most `max_wait`, until every validator has executed the same
    /// sequence number (a client finishes on f+1 replies, the slowest
    /// validators may still be executing), then returns their statuses.
    pub async fn settled_status(&self, max_wait: Duration) -> Vec<ValidatorStatus> {
        let start = Instant::now();
        loop {
            let statuses = self.status().await;
            let members = || statuses.iter().filter(|s| s.member);
            let first = members().next().map(|s| s.last_executed);
            let settled = members().all(|s| Some(s.last_executed) == first);
            if settled || start.elapsed() >= max_wait {
                return statuses;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits, at most `max_wait`, until what the validators' logs held in
    /// flight has executed: every member (but those made Byzantine) at the
    /// same sequence number with nothing logged above it. A swarm relaunched after its process was
    /// killed finishes the work its logs recovered; reading the ledger only
    /// then gives the nonces a new task must carry. Says whether it settled.
    pub async fn drain_in_flight(&self, max_wait: Duration) -> bool {
        let start = Instant::now();
        loop {
            let statuses = self.status().await;
            // A validator made Byzantine may hold slots that never execute.
            let members: Vec<&ValidatorStatus> =
                statuses.iter().filter(|s| s.member && s.injected_fault.is_none()).collect();
            let first = members.first().map(|s| s.last_executed);
            if members.iter().all(|s| Some(s.last_executed) == first && s.slots_in_flight == 0) {
                return true;
            }
            if start.elapsed() >= max_wait {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The detection log: every conviction, its quarantine and replacement.
    pub async fn detection_log(&self) -> Result<Vec<DetectionRecord>, SwarmError> {
        self.quarantine.send(GetDetectionLog).await.map_err(|_| SwarmError::DetectorStopped)
    }

    /// The operator's `byzantine quarantine`: stops routing what `agent` sends
    /// and replaces it through consensus, as a conviction would.
    pub fn quarantine(&self, agent: AgentId, duration: Duration) -> Result<(), SwarmError> {
        if !self.committee().contains(agent) {
            return Err(SwarmError::UnknownAgent(agent));
        }
        self.quarantine.do_send(OperatorQuarantine { agent, duration });
        Ok(())
    }

    pub async fn routing_stats(&self) -> Result<RoutingStats, SwarmError> {
        self.supervisor.send(GetRoutingStats).await.map_err(|_| SwarmError::SupervisorStopped)
    }
}

impl<A: HostedApp> Drop for Swarm<A> {
    fn drop(&mut self) {
        for handle in lock(&self.validators).iter() {
            handle.arbiter.stop();
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Each account's next nonce as at least f+1 of the `answers` say it is (all
/// the answers when fewer came): f lying validators can neither push a nonce
/// past what the honest ones executed nor hold it back. After
/// [`SwarmHandle::drain_in_flight`] the honest answers agree.
fn vouched_nonces(answers: &[Vec<u64>], accounts: usize, f: usize) -> Vec<u64> {
    (0..accounts)
        .map(|account| {
            let mut said: Vec<u64> = answers.iter().filter_map(|nonces| nonces.get(account).copied()).collect();
            said.sort_unstable_by(|a, b| b.cmp(a));
            said.get(f.min(said.len().saturating_sub(1))).copied().unwrap_or(0)
        })
        .collect()
}

/// A relaunch's committees, once they are known to start at `genesis` and
/// to follow one another epoch by epoch; joined validators need their logs.
fn checked_history(genesis: &Committee, relaunch: &Relaunch, wal: bool) -> Result<Vec<Committee>, SwarmError> {
    let refused = |why: &str| SwarmError::Relaunch(why.to_owned());
    if !wal {
        return Err(refused("validators that joined later come back only from their write-ahead logs"));
    }
    let Some(first) = relaunch.history.first() else { return Err(refused("the committee history is empty")) };
    if first.epoch() != genesis.epoch() || first.members() != genesis.members() {
        return Err(refused("the committee history does not start with this swarm's genesis committee"));
    }
    if relaunch.pending && relaunch.history.len() < 2 {
        return Err(refused("a pending change needs the committee it starts from"));
    }
    if relaunch.history.windows(2).any(|pair| pair[1].epoch().0 != pair[0].epoch().0 + 1) {
        return Err(refused("the committee history skips an epoch"));
    }
    Ok(relaunch.history.clone())
}

/// The cell's value; a panic elsewhere while it was held does not make the
/// swarm's bookkeeping unusable.
pub(super) fn lock<T>(cell: &Mutex<T>) -> MutexGuard<'_, T> {
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops a client's thread however `run_client` ends, even when its caller
/// stops waiting.
struct StopOnDrop(Arbiter);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A validator before its actor starts: a new replica, or one rebuilt from its log.
pub(super) enum ValidatorSeed<A: HostedApp> {
    InMemory(Box<(Replica<A>, Keypair)>),
    Durable(Box<RecoveredValidator<A>>),
}

impl<A: HostedApp> ValidatorSeed<A> {
    /// A new replica of `member`, kept in memory only.
    fn in_memory(
        member: &Member,
        keypair: Keypair,
        committee: &Committee,
        params: &ProtocolParams,
        genesis: &A,
    ) -> ValidatorSeed<A> {
        let replica = Replica::new(member.id, keypair.clone(), committee.clone(), params.clone(), genesis.clone());
        ValidatorSeed::InMemory(Box::new((replica, keypair)))
    }

    /// A replica of `member` rebuilt from its write-ahead log under `wal`: a
    /// founder of `genesis_committee`, or a validator that joined in `joined_in`.
    pub(super) fn durable(
        member: &Member,
        keypair: Keypair,
        genesis_committee: &Committee,
        joined_in: Option<&Committee>,
        params: &ProtocolParams,
        genesis: &A,
        wal: &WalOptions,
    ) -> Result<ValidatorSeed<A>, WalError> {
        let spec = ReplicaSpec {
            name: member.name.clone(),
            keypair,
            committee: genesis_committee.clone(),
            params: params.clone(),
            genesis: genesis.clone(),
            joined_in: joined_in.cloned(),
        };
        Ok(ValidatorSeed::Durable(Box::new(RecoveredValidator::open(spec, wal.clone())?)))
    }

    /// How a durable validator came back from its log; none in memory.
    fn recovery(&self) -> Option<&crate::wal::Recovery> {
        match self {
            ValidatorSeed::InMemory(_) => None,
            ValidatorSeed::Durable(recovered) => Some(recovered.recovery()),
        }
    }

    fn grow(self, name: String, route: Recipient<super::messages::Route>) -> Validator<A> {
        match self {
            ValidatorSeed::InMemory(seed) => {
                let (replica, keypair) = *seed;
                Validator::new(name, replica, route).with_keypair(keypair)
            }
            ValidatorSeed::Durable(recovered) => Validator::recovered(*recovered, route),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vouched_nonces;

    #[test]
    fn a_nonce_is_what_f_plus_one_validators_vouch_for() {
        // f = 1: one liar saying more, or less, moves nothing.
        let answers = [vec![5, 9], vec![5, 9], vec![500, 0], vec![5, 9]];
        assert_eq!(vouched_nonces(&answers, 2, 1), [5, 9]);
        // Fewer answers than f+1: the lowest said; none at all: 0.
        assert_eq!(vouched_nonces(&[vec![4]], 1, 1), [4]);
        assert_eq!(vouched_nonces(&[], 1, 1), [0]);
        // A short answer counts for the accounts it has.
        assert_eq!(vouched_nonces(&[vec![2], vec![2, 3], vec![2, 3]], 2, 1), [2, 3]);
    }
}
