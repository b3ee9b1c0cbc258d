//! The deterministic simulation: the real replica, verifier, ledger and client
//! on a seeded simulated network that drops, duplicates, delays and reorders
//! messages, with Byzantine agents. Every invariant is checked after every event.
//!
//! One seed is one reproducible run: a failing seed prints the command that
//! replays it.

mod app_run;
mod byzantine;
mod delivered;
mod detection;
mod forger;
mod invariants;
pub mod memory;
mod network;
mod operator;
mod restart;
pub mod task_board;
mod view_change_liar;

pub use byzantine::{ByzantineAgent, FalseAccusation};
pub use invariants::Violation;

use crate::crypto::Keypair;
use crate::detect::DetectionRules;
use crate::faults::{Adversary, FaultSpec, FaultType};
use crate::ledger::{AccountId, Ledger};
use crate::node::{Arrival, Node as ValidatorNode, Receipt, Refused};
use crate::protocol::{
    AgentId, ClientCore, ClientId, ClientInput, ClientOutput, Committee, Epoch, Member, Micros, Output, Passive,
    ProtocolParams, RecoveredState, Replica,
};
use crate::rng::SeededRng;
use crate::workload::{Workload, WorkloadSpec};
use byzantine::FalseAccuser;
use delivered::DeliveredEquivocations;
use detection::SimDetection;
use invariants::Invariants;
use network::{Network, NetworkFaults, Node, Payload};
use operator::{Operator, PlannedChange};
use std::collections::BTreeMap;

/// What each validator's own account holds at genesis.
const VALIDATOR_BALANCE: u64 = 1_000;

/// What goes wrong in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Honest validators on a network that loses, duplicates and reorders
    /// messages until it heals; every transfer must then commit.
    LossyNetwork,
    /// The primary signs different batches for different backups and votes
    /// for both, in every view it leads. Safety must hold, and the view changes
    /// that replace it must let every transfer commit.
    EquivocatingPrimary,
    /// The primary crashes (sends nothing) at a random moment, on a lossy
    /// network; a view change must replace it and every transfer commit.
    SilentPrimary,
    /// The validators split into two sides that cannot reach each other (the
    /// primary on either side), then the partition heals; every transfer commits.
    Partition,
    /// f validators, chosen at random, each with a random fault of
    /// [`crate::faults`] and probability; safety holds and every transfer commits.
    MixedFaults,
    /// Under load on a lossy network, the operator adds one to three
    /// validators, then removes one or two (perhaps the primary). Both epochs
    /// take effect, the new validators catch up by state transfer, and every
    /// transfer commits.
    Reconfiguration,
    /// One validator hears nothing until the others are ten checkpoints
    /// ahead; then it must catch up (state transfer) while load goes on.
    LaggingValidator,
    /// Everything the primary sends arrives late (but arrives): a slow
    /// primary must be replaced, not only a silent one.
    SlowPrimary,
    /// Honest validators on a lossy network; now and then one crashes and
    /// restarts from what its write-ahead log holds. None ever signs two
    /// different messages for one slot, and every transfer commits.
    CrashRestart,
    /// f Byzantine agents on a lossy network, each with one or two faults of
    /// [`crate::faults`], or running as twins (two instances, one key), or
    /// falsely accusing an honest agent (see [`byzantine`]). Safety holds,
    /// every delivered equivocation convicts, no honest agent is convicted,
    /// and every transfer commits.
    ByzantineAgents,
    /// The operator adds as many validators as there are founders, then
    /// removes every founder, then adds one more (a joiner told no epoch
    /// starts). The retired founders, a quorum of the first epoch, forge
    /// checkpoint proofs, a snapshot of a forged ledger and view changes (see
    /// [`forger`]), with f of the added validators as accomplices that also
    /// lie in the view changes the operator forces. Nobody installs the
    /// forgery, no honest agent is convicted, and every transfer commits.
    RetiredCoalition,
    /// [`Scenario::CrashRestart`] with more crashes, some of which find the
    /// write-ahead log damaged or missing: that validator restarts passive
    /// from genesis. None ever signs two different messages for one slot,
    /// none is convicted, and every transfer commits.
    DamagedLogs,
    /// f+1 to n-1 validators lose their write-ahead logs at one moment (a
    /// machine crash under several of them): more than f passive at once, so
    /// no quorum of active voters is left. The most advanced validator keeps
    /// its log (without it the history only the others held would be lost for
    /// good, whatever the protocol). None signs two different messages for one
    /// slot, none is convicted, and every transfer commits.
    LostLogsBeyondF,
    /// f Byzantine agents lie in the view-change plane (see
    /// [`view_change_liar`]): fabricated or withheld certificates in their
    /// VIEW-CHANGEs, NEW-VIEWs with a wrong plan, pre-prepares beyond the
    /// high water mark, replayed stale CHECKPOINTs. Safety holds, no honest
    /// agent is convicted, and every transfer commits.
    ViewChangeLiars,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::LossyNetwork => "lossy-network",
            Scenario::EquivocatingPrimary => "equivocating-primary",
            Scenario::SilentPrimary => "silent-primary",
            Scenario::Partition => "partition",
            Scenario::MixedFaults => "mixed-faults",
            Scenario::Reconfiguration => "reconfiguration",
            Scenario::LaggingValidator => "lagging-validator",
            Scenario::SlowPrimary => "slow-primary",
            Scenario::CrashRestart => "crash-restart",
            Scenario::ByzantineAgents => "byzantine-agents",
            Scenario::RetiredCoalition => "retired-coalition",
            Scenario::DamagedLogs => "damaged-logs",
            Scenario::LostLogsBeyondF => "lost-logs-beyond-f",
            Scenario::ViewChangeLiars => "view-change-liars",
        }
    }

    pub const ALL: [Scenario; 14] = [
        Scenario::LossyNetwork,
        Scenario::EquivocatingPrimary,
        Scenario::SilentPrimary,
        Scenario::Partition,
        Scenario::MixedFaults,
        Scenario::Reconfiguration,
        Scenario::LaggingValidator,
        Scenario::SlowPrimary,
        Scenario::CrashRestart,
        Scenario::ByzantineAgents,
        Scenario::RetiredCoalition,
        Scenario::DamagedLogs,
        Scenario::LostLogsBeyondF,
        Scenario::ViewChangeLiars,
    ];

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub scenario: Scenario,
    pub validators: usize,
    pub transactions: usize,
    pub accounts: usize,
    pub params: ProtocolParams,
    pub faults: NetworkFaults,
    pub client_window: usize,
    pub client_retry_us: u64,
    /// Simulated time after which the run stops; liveness is judged then.
    pub time_limit_us: u64,
    /// Membership changes the operator makes during the run.
    pub reconfiguration: Option<ReconfigurationPlan>,
    /// The Byzantine agents of [`Scenario::ByzantineAgents`] (drawn from the seed).
    pub byzantine: Vec<ByzantineAgent>,
}

impl SimConfig {
    /// Draws the committee size, batching, checkpointing and network faults from the seed.
    pub fn from_seed(seed: u64, scenario: Scenario) -> SimConfig {
        let mut rng = SeededRng::new(seed ^ 0x0005_EED0_FB75);
        let validators = [4, 4, 5, 7][rng.below(4) as usize];
        let lagging = scenario == Scenario::LaggingValidator;
        let checkpoint_interval = if lagging { 2 } else { rng.between(2, 6) };
        let max_batch_size = rng.between(1, 8) as usize;
        let params = ProtocolParams {
            checkpoint_interval,
            log_window: checkpoint_interval * rng.between(2, 3),
            max_batch_size: if lagging { max_batch_size.min(2) } else { max_batch_size },
            batch_delay_us: rng.between(0, 2_000),
            max_in_flight_batches: rng.between(1, 4),
            retransmit_interval_us: 20_000,
            max_pending_requests: 1_000,
            outcome_retention_checkpoints: 2,
            view_change_timeout_us: rng.between(150_000, 400_000),
        };
        let lossy = scenario != Scenario::EquivocatingPrimary;
        let faults = NetworkFaults {
            drop_probability: if lossy { rng.below(25) as f64 / 100.0 } else { 0.0 },
            duplicate_probability: rng.below(10) as f64 / 100.0,
            min_delay_us: 50,
            max_delay_us: rng.between(200, 5_000),
            faulty_until_us: rng.between(0, 400_000),
            partition: (scenario == Scenario::Partition).then(|| {
                let from_us = rng.between(0, 50_000);
                let side_of = (0..validators).map(|_| rng.chance(0.5)).collect();
                network::Partition { from_us, until_us: from_us + rng.between(100_000, 1_500_000), side_of }
            }),
            isolated: lagging.then(|| rng.below(validators as u64) as usize),
            // The primary's messages all arrive, but later than the view-change
            // timeout: it orders requests, too slowly to keep its post.
            slow: (scenario == Scenario::SlowPrimary)
                .then(|| (0, params.view_change_timeout_us * rng.between(120, 200) / 100)),
        };
        let transactions = if lagging { rng.between(60, 90) } else { rng.between(10, 40) } as usize;
        let reconfiguration = match scenario {
            Scenario::Reconfiguration => Some(ReconfigurationPlan {
                add: rng.between(1, 3) as usize,
                remove: rng.between(1, 2) as usize,
                start_us: rng.between(0, 100_000),
                founders_first: false,
                late_joiner: false,
            }),
            Scenario::RetiredCoalition => Some(ReconfigurationPlan {
                add: validators,
                remove: validators,
                start_us: rng.between(0, 100_000),
                founders_first: true,
                late_joiner: true,
            }),
            _ => None,
        };
        SimConfig {
            seed,
            scenario,
            validators,
            transactions,
            accounts: rng.between(3, 12) as usize,
            params,
            faults,
            client_window: rng.between(1, 16) as usize,
            client_retry_us: 60_000,
            time_limit_us: 30_000_000,
            reconfiguration,
            byzantine: match scenario {
                Scenario::ByzantineAgents => byzantine::draw_agents(&mut SeededRng::new(seed ^ 0xB1_2A57), validators),
                Scenario::ViewChangeLiars => byzantine::liars(&mut SeededRng::new(seed ^ 0x71E5), validators),
                Scenario::RetiredCoalition => byzantine::joining_liars(&mut SeededRng::new(seed ^ 0x2E71), validators),
                _ => Vec::new(),
            },
        }
    }

    /// Replaces the Byzantine agents by f false accusers of one honest agent,
    /// the first of them running as twins when `twin`.
    pub fn with_false_accusers(mut self, twin: bool) -> SimConfig {
        self.byzantine = byzantine::false_accusers(&mut SeededRng::new(self.seed ^ 0xAC_C05E), self.validators, twin);
        self
    }

    fn detection_rules(&self) -> DetectionRules {
        DetectionRules::default()
    }
}

/// The operator's two changes in [`Scenario::Reconfiguration`].
#[derive(Clone, Copy, Debug)]
pub struct ReconfigurationPlan {
    pub add: usize,
    pub remove: usize,
    pub start_us: u64,
    /// Removes founders before validators added later.
    pub founders_first: bool,
    /// A third change adds one validator once the second is made: a joiner
    /// that comes after the founders retired.
    pub late_joiner: bool,
}

#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub scenario: Scenario,
    pub validators: usize,
    pub violations: Vec<Violation>,
    pub transactions: usize,
    pub completed: usize,
    pub events: u64,
    pub sim_time_us: u64,
    pub evidence: usize,
    /// Conflicting signed messages of one agent for one slot that reached an honest replica's log.
    pub delivered_equivocations: usize,
    /// The most views in which f+1 validators reported one honest primary for censorship.
    pub honest_primary_strikes: usize,
    pub highest_executed: u64,
    /// Agents the detector convicted, in order.
    pub convicted: Vec<AgentId>,
    /// Restarts that found the log damaged (the validator came back passive).
    pub damaged_restarts: usize,
    /// Messages the retired coalition forged and sent.
    pub forged_messages: usize,
    /// Lies the view-change liars told, and of those in VIEW-CHANGEs and NEW-VIEWs.
    pub lies_told: usize,
    pub lies_in_view_changes: usize,
    /// The newest membership epoch honest validators moved to.
    pub epoch: u64,
    /// Each validator at the end: where it stands, for reading a failing seed.
    pub replicas: Vec<ReplicaSummary>,
}

#[derive(Clone, Debug)]
pub struct ReplicaSummary {
    pub id: AgentId,
    pub view: u64,
    pub changing_to: Option<u64>,
    pub epoch: u64,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    pub queued_requests: usize,
    pub log_len: usize,
    pub stats: crate::protocol::ReplicaStats,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one line that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "BFTSWARM_SIM_SEED={} BFTSWARM_SIM_SCENARIO={} cargo test --test simulation replay_one_seed -- --nocapture",
            self.seed,
            self.scenario.name()
        )
    }
}

/// Which validators are Byzantine in this run, and how.
fn byzantine_agents(
    config: &SimConfig,
    committee: &Committee,
    rng: &mut SeededRng,
) -> BTreeMap<AgentId, ByzantineAgent> {
    if matches!(config.scenario, Scenario::ByzantineAgents | Scenario::ViewChangeLiars | Scenario::RetiredCoalition) {
        return config.byzantine.iter().map(|agent| (agent.id, agent.clone())).collect();
    }
    let faulty = |(id, spec)| (id, ByzantineAgent { id, faults: vec![spec], twin: false, accuses: None });
    assign_faults(config, committee, rng).into_iter().map(faulty).collect()
}

/// Which validators are faulty in the scenarios of one fault each.
fn assign_faults(config: &SimConfig, committee: &Committee, rng: &mut SeededRng) -> BTreeMap<AgentId, FaultSpec> {
    let primary = committee.primary(crate::protocol::View(0));
    let spec = |fault_type, probability, after_us| FaultSpec { fault_type, probability, after_us };
    match config.scenario {
        Scenario::LossyNetwork
        | Scenario::Partition
        | Scenario::Reconfiguration
        | Scenario::LaggingValidator
        | Scenario::SlowPrimary
        | Scenario::CrashRestart
        | Scenario::DamagedLogs
        | Scenario::LostLogsBeyondF
        | Scenario::ViewChangeLiars
        | Scenario::RetiredCoalition
        | Scenario::ByzantineAgents => BTreeMap::new(),
        Scenario::EquivocatingPrimary => BTreeMap::from([(primary, spec(FaultType::Equivocation, 1.0, 0))]),
        Scenario::SilentPrimary => BTreeMap::from([(primary, spec(FaultType::Silent, 1.0, rng.between(0, 30_000)))]),
        Scenario::MixedFaults => {
            let mut ids: Vec<AgentId> = committee.members().iter().map(|m| m.id).collect();
            let mut chosen = BTreeMap::new();
            while chosen.len() < committee.f() {
                let id = ids.remove(rng.below(ids.len() as u64) as usize);
                let fault_type = FaultType::ALL[rng.below(FaultType::ALL.len() as u64) as usize];
                let probability = rng.between(30, 100) as f64 / 100.0;
                chosen.insert(id, spec(fault_type, probability, rng.between(0, 50_000)));
            }
            chosen
        }
    }
}

/// A validator in the simulation: an honest node, or one whose outputs
/// adversaries rewrite (one after the other), or that lies to the detector.
struct SimValidator {
    /// Logged, for a validator that may crash and restart: its log is the
    /// node's own mirror of what a write-ahead log would hold (only the disk is left out).
    node: ValidatorNode,
    /// The newest write its log took: every write is durable as soon as it is asked for.
    receipt: Receipt,
    adversaries: Vec<Adversary>,
    accuser: Option<FalseAccuser>,
    /// Lies in the view-change plane (a Byzantine agent of [`Scenario::ViewChangeLiars`]).
    liar: Option<view_change_liar::ViewChangeLiar>,
}

impl SimValidator {
    fn replica(&self) -> &Replica {
        self.node.replica()
    }
}

pub fn run(config: &SimConfig) -> SimReport {
    let mut rng = SeededRng::new(config.seed);
    let workload = Workload::generate(&WorkloadSpec {
        seed: rng.next_u64(),
        accounts: config.accounts,
        transactions: config.transactions,
        initial_balance: 10_000,
        max_amount: 100,
        overdraft_ratio: 0.1,
    });
    let keys: Vec<Keypair> = (0..config.validators).map(|_| Keypair::from_seed(rng.bytes())).collect();
    // Validators hold accounts too: a double-spending agent spends its own.
    let mut balances = workload.genesis.clone();
    balances.extend(keys.iter().map(|key| (AccountId(key.public_key()), VALIDATOR_BALANCE)));
    let genesis = Ledger::with_genesis(&balances).unwrap_or_default();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let operator_key = Keypair::from_seed(rng.bytes());
    let committee = match Committee::numbered(Epoch(0), &public_keys, "sim-", None) {
        Ok(committee) => committee.with_operator(operator_key.public_key()),
        Err(error) => panic!("simulation config builds an invalid committee: {error}"),
    };
    let faults = byzantine_agents(config, &committee, &mut rng);
    let new_validator = |id: AgentId, key: &Keypair, rng: &mut SeededRng| {
        let agent = faults.get(&id);
        let specs = agent.map_or(&[][..], |agent| &agent.faults[..]);
        let replica = Replica::new(id, key.clone(), committee.clone(), config.params.clone(), genesis.clone());
        let logged =
            matches!(config.scenario, Scenario::CrashRestart | Scenario::DamagedLogs | Scenario::LostLogsBeyondF);
        SimValidator {
            node: match logged {
                true => ValidatorNode::logged(replica, RecoveredState::default()),
                false => ValidatorNode::new(replica),
            },
            receipt: Receipt::default(),
            adversaries: specs.iter().map(|spec| Adversary::new(id, key.clone(), *spec, rng.next_u64())).collect(),
            accuser: agent.and_then(|agent| agent.accuses).map(FalseAccuser::new),
            liar: (config.scenario == Scenario::ViewChangeLiars && agent.is_some())
                .then(|| view_change_liar::ViewChangeLiar::new(id, key.clone(), &config.params, rng.next_u64())),
        }
    };
    let mut validators: Vec<SimValidator> =
        keys.iter().enumerate().map(|(i, key)| new_validator(AgentId(i as u32), key, &mut rng)).collect();
    // A twin's second instance; the two swap places in `validators` while the second steps.
    let mut twins: BTreeMap<usize, SimValidator> = BTreeMap::new();
    let mut twin_rng = SeededRng::new(0);
    if faults.values().any(|agent| agent.twin) {
        twin_rng = rng.fork(0x7717);
        for agent in faults.values().filter(|agent| agent.twin) {
            let index = agent.id.0 as usize;
            twins.insert(index, new_validator(agent.id, &keys[index], &mut twin_rng));
        }
    }
    let mut operator = config.reconfiguration.map(|plan| {
        let mut added = config.validators as u32;
        let mut add_members = |count: usize, rng: &mut SeededRng| {
            (0..count)
                .map(|_| {
                    let key = Keypair::from_seed(rng.bytes());
                    let id = AgentId(added);
                    added += 1;
                    (Member { id, name: format!("sim-{}", id.0 + 1), public_key: key.public_key() }, key)
                })
                .collect()
        };
        let mut changes = vec![
            PlannedChange { add: add_members(plan.add, &mut rng), remove: 0 },
            PlannedChange { add: Vec::new(), remove: plan.remove },
        ];
        if plan.late_joiner {
            changes.push(PlannedChange { add: add_members(1, &mut rng), remove: 0 });
        }
        let founders = plan.founders_first.then_some(config.validators);
        Operator::new(operator_key.clone(), changes, plan.start_us, 50_000, rng.fork(7))
            .removing_founders_first(founders)
    });
    let mut coalition = (config.scenario == Scenario::RetiredCoalition).then(|| {
        forger::RetiredCoalition::new(
            committee.clone(),
            keys.clone(),
            balances.clone(),
            config.params.checkpoint_interval,
            Epoch(operator.as_ref().map_or(0, |operator| operator.planned() as u64)),
            faults.keys().filter_map(|id| Some((*id, operator.as_ref()?.key_of(*id)?))).collect(),
        )
    });
    let client_id = ClientId(0);
    let mut client = ClientCore::new(
        client_id,
        committee.clone(),
        workload.transfers.clone(),
        config.client_window,
        config.client_retry_us,
    );
    let mut invariants = Invariants::new(&workload, &genesis, faults.keys().copied().collect());
    let mut detection =
        SimDetection::new(committee.clone(), faults.keys().copied().collect(), config.detection_rules());
    let mut delivered = DeliveredEquivocations::new(config.faults.faulty_until_us);
    let mut network = Network::new(config.faults.clone(), rng.fork(0xAE7));
    // The newest committee honest validators moved to, and every committee so far.
    let mut committees: BTreeMap<Epoch, Committee> = BTreeMap::from([(committee.epoch(), committee.clone())]);

    network.schedule_tick(Node::Client, Micros(0));
    if operator.is_some() {
        network.schedule_tick(Node::Operator, Micros(0));
    }
    for i in 0..config.validators {
        network.schedule_tick(Node::Validator(i), Micros(0));
    }
    let mut crashes = match config.scenario {
        Scenario::CrashRestart => restart::crash_schedule(&mut rng.fork(0xC4A5), config.validators, 6, 600_000),
        Scenario::DamagedLogs => restart::crash_schedule(&mut rng.fork(0xC4A5), config.validators, 12, 1_200_000),
        _ => Vec::new(),
    };
    let mut damage_rng = rng.fork(0xDA3A6E);
    // When more than f validators lose their logs at once (one moment per run).
    let mut mass_loss =
        (config.scenario == Scenario::LostLogsBeyondF).then(|| Micros(damage_rng.between(5_000, 250_000)));
    // When the operator forces a view change, so that the liars lead views and lie in them.
    let mut forced_view_changes: Vec<Micros> = match config.scenario {
        Scenario::ViewChangeLiars => {
            let mut at: Vec<Micros> = (0..rng.between(3, 7)).map(|_| Micros(rng.between(10_000, 1_500_000))).collect();
            at.sort();
            at
        }
        // The liars among the joiners lead views only after the founders retired.
        Scenario::RetiredCoalition => {
            let mut at: Vec<Micros> = (0..rng.between(2, 5)).map(|_| Micros(rng.between(150_000, 600_000))).collect();
            at.sort();
            at
        }
        _ => Vec::new(),
    };
    let mut signed_slots = restart::SignedSlots::default();
    let mut damaged_restarts = 0usize;
    let mut forged_messages = 0usize;
    let mut equivocations = Vec::new();
    let mut events = 0u64;
    let mut done_at: Option<Micros> = None;
    let mut settled_at: Option<Micros> = None;
    // A crashed validator as it comes back from what its log holds.
    let restored = |victim: usize, state: RecoveredState, now: Micros| {
        let (id, key, params) = (AgentId(victim as u32), keys[victim].clone(), config.params.clone());
        let replica = Replica::restore(id, key, committee.clone(), params, genesis.clone(), state.clone(), now);
        ValidatorNode::logged(replica, state)
    };
    while let Some((now, node, payload)) = network.next_event() {
        let reconfigured = operator
            .as_ref()
            .is_none_or(|operator| operator.finished(committees.keys().next_back().copied().unwrap_or_default()));
        // Settled once the workload is done and the last change is made; a
        // validator that joined last gets as long to catch up as the rest, and
        // one left behind gets past the longest back-off between its STATUS
        // (16 retransmit intervals).
        if reconfigured && done_at.is_some() && settled_at.is_none() {
            settled_at = Some(now);
        }
        let tail = config.params.retransmit_interval_us.saturating_mul(20).max(200_000);
        if now.0 > config.time_limit_us || settled_at.is_some_and(|t| now.0 > t.0 + tail) {
            break;
        }
        events += 1;
        while let Some(&(_, victim)) = crashes.first().filter(|(at, _)| *at <= now) {
            crashes.remove(0);
            let Some(mut state) = validators[victim].node.logged_state().cloned() else { continue };
            // A damaged or missing log (cut mid-record, corrupt): the validator
            // starts passive from genesis. At most one is passive at a time, so a
            // quorum of active validators remains to learn its bound from.
            let damaged = config.scenario == Scenario::DamagedLogs
                && damage_rng.chance(0.6)
                && !validators.iter().any(|v| v.replica().is_passive());
            if damaged {
                state = RecoveredState { passive: Some(Passive::default()), ..RecoveredState::default() };
                damaged_restarts += 1;
                invariants.lost_its_state(AgentId(victim as u32));
            }
            validators[victim].node.restart(restored(victim, state, now));
            validators[victim].receipt = Receipt::default();
            delivered.forget(AgentId(victim as u32));
            network.schedule_tick(Node::Validator(victim), now);
        }
        while forced_view_changes.first().is_some_and(|at| *at <= now) {
            forced_view_changes.remove(0);
            for i in 0..validators.len() {
                network.send(now, Node::Operator, Node::Validator(i), Payload::ForceViewChange);
            }
        }
        if mass_loss.is_some_and(|at| at <= now) {
            let victims = restart::beyond_f_victims(&validators, &mut damage_rng);
            if !victims.is_empty() {
                mass_loss = None;
            }
            for victim in victims {
                let state = RecoveredState { passive: Some(Passive::default()), ..RecoveredState::default() };
                damaged_restarts += 1;
                invariants.lost_its_state(AgentId(victim as u32));
                validators[victim].node.restart(restored(victim, state, now));
                validators[victim].receipt = Receipt::default();
                delivered.forget(AgentId(victim as u32));
                network.schedule_tick(Node::Validator(victim), now);
            }
        }
        match node {
            Node::Operator => {
                let Some(operator) = operator.as_mut() else { continue };
                let newest = committees.values().next_back().cloned().unwrap_or_else(|| committee.clone());
                if let Some(change) = operator.tick(now.0, &newest) {
                    for i in 0..validators.len() {
                        network.send(now, Node::Operator, Node::Validator(i), Payload::Membership(change.clone()));
                    }
                }
                let ahead = validators.iter().max_by_key(|v| v.replica().last_executed()).map(SimValidator::replica);
                let forged = match (coalition.as_mut(), ahead) {
                    (Some(coalition), Some(ahead)) => {
                        coalition.forge(&newest, ahead.last_executed(), ahead.membership())
                    }
                    _ => Vec::new(),
                };
                forged_messages += forged.len();
                for (channel, message) in forged {
                    for i in 0..validators.len() {
                        let payload = Payload::Consensus(channel, message.clone());
                        network.send(now, Node::Operator, Node::Validator(i), payload);
                    }
                }
                let forging = coalition.as_ref().is_some_and(|c| !c.done());
                if !operator.finished(newest.epoch()) || forging {
                    network.schedule_tick(Node::Operator, now.plus(operator.resend_interval_us()));
                }
            }
            Node::Client => {
                let input = match payload {
                    Payload::Reply(reply) => ClientInput::Reply(reply),
                    _ => ClientInput::Tick,
                };
                for output in client.step(now, input) {
                    match output {
                        ClientOutput::Broadcast(requests) => {
                            for i in 0..validators.len() {
                                network.send(
                                    now,
                                    Node::Client,
                                    Node::Validator(i),
                                    Payload::Requests(requests.clone()),
                                );
                            }
                        }
                        ClientOutput::Completed(completion) => invariants.on_completion(&completion),
                    }
                }
                if let Some(deadline) = client.next_deadline() {
                    network.schedule_tick(Node::Client, deadline);
                }
                if client.is_done() && done_at.is_none() {
                    done_at = Some(now);
                }
            }
            Node::Validator(index) => {
                let instances: &[bool] = match (twins.contains_key(&index), &payload) {
                    (false, _) => &[false],
                    (true, Payload::Tick) => &[false, true],
                    (true, _) => byzantine::twin_recipients(&mut twin_rng),
                };
                for &second in instances {
                    let payload = payload.clone();
                    if second {
                        swap_twin(&mut validators, &mut twins, index);
                    }
                    'step: {
                        let Some(validator) = validators.get_mut(index) else { break 'step };
                        let me = AgentId(index as u32);
                        if let Some(lie) = validator.accuser.as_mut().and_then(|accuser| accuser.report(now, me)) {
                            detection.report(now, lie);
                        }
                        let mut delivery = None;
                        let arrival = match payload {
                            Payload::Tick => Arrival::Tick,
                            Payload::Requests(mut requests) => {
                                // Only first members are faulty; those added later hold no account.
                                let account = keys.get(index).map(|key| AccountId(key.public_key()));
                                let ledger = validator.replica().ledger();
                                let nonce = account.map_or(0, |account| ledger.account(&account).next_nonce);
                                for adversary in &mut validator.adversaries {
                                    let committee = validator.node.replica().committee();
                                    for (peer, spend) in adversary.double_spend(now, nonce, 1, committee) {
                                        let to = Node::Validator(peer.0 as usize);
                                        network.send(now, Node::Validator(index), to, Payload::Requests(vec![spend]));
                                    }
                                    requests = adversary.filter_requests(now, requests);
                                }
                                Arrival::Requests(requests)
                            }
                            Payload::Consensus(channel, message) => {
                                if !faults.contains_key(&me) {
                                    delivery = delivered.candidate(me, &message, validator.replica());
                                }
                                Arrival::Message { channel: Some(channel), message }
                            }
                            Payload::Membership(change) => Arrival::Membership(change),
                            Payload::ForceViewChange => Arrival::ForceViewChange,
                            Payload::Reply(_) => break 'step,
                        };
                        let ready = validator.node.step(now, arrival);
                        for report in ready.reports {
                            detection.report(now, report);
                        }
                        // A refused message the replica never saw changes nothing (one of a
                        // later epoch makes it ask its peers).
                        if ready.refused.iter().any(Refused::kept_from_replica) {
                            break 'step;
                        }
                        if ready.refused.is_empty() {
                            delivered.on_delivery(delivery);
                        }
                        // The log is the node's own mirror: each write is durable at once.
                        validator.receipt = validator.receipt.and(ready.write.written_at_once());
                        let Ok(mut outputs) = ready.outbox.release(&validator.receipt) else {
                            unreachable!("the receipt of the newest write opens every outbox")
                        };
                        for adversary in &mut validator.adversaries {
                            outputs = adversary.rewrite(now, outputs, validator.node.replica().committee());
                        }
                        if let Some(liar) = &mut validator.liar {
                            outputs = liar.rewrite(outputs, validator.node.replica().committee());
                        }
                        let mut joined = Vec::new();
                        for output in outputs {
                            invariants.on_output(me, &output, validator.node.replica());
                            let lie = validator
                                .accuser
                                .as_ref()
                                .and_then(|a| a.strike(me, &output, validator.node.replica().committee()));
                            if let Some(lie) = lie {
                                detection.report(now, lie);
                            }
                            if !faults.contains_key(&me) {
                                equivocations.extend(signed_slots.check(me, &output));
                            }
                            match output {
                                Output::Broadcast(message) => {
                                    for peer in 0..validators_len(&committees, config.validators) {
                                        if peer != index {
                                            network.send(
                                                now,
                                                Node::Validator(index),
                                                Node::Validator(peer),
                                                Payload::Consensus(me, message.clone()),
                                            );
                                        }
                                    }
                                }
                                Output::SendTo(peer, message) => network.send(
                                    now,
                                    Node::Validator(index),
                                    Node::Validator(peer.0 as usize),
                                    Payload::Consensus(me, message),
                                ),
                                Output::Reply(reply) => {
                                    network.send(now, Node::Validator(index), Node::Client, Payload::Reply(reply))
                                }
                                Output::EpochScheduled { committee: next, .. }
                                | Output::EpochChanged { committee: next, .. } => {
                                    if !faults.contains_key(&me) && !committees.contains_key(&next.epoch()) {
                                        client.learn_committee(&next);
                                        joined.extend(next.members().iter().map(|m| m.id));
                                        detection.on_committee(&next);
                                        committees.insert(next.epoch(), next);
                                    }
                                }
                                Output::Executed(_)
                                | Output::Evidence(_)
                                | Output::DoubleSpend { .. }
                                | Output::CheckpointStable { .. }
                                | Output::ViewChangeStarted { .. }
                                | Output::ViewChanged { .. }
                                | Output::MembershipRefused { .. } => {}
                            }
                        }
                        let held = validator.adversaries.iter().filter_map(Adversary::next_deadline);
                        let lie = validator.accuser.as_ref().and_then(FalseAccuser::next_deadline);
                        if let Some(deadline) = ready.deadline.into_iter().chain(held).chain(lie).min() {
                            network.schedule_tick(Node::Validator(index), deadline);
                        }
                        // Validators added by a change start (empty) as soon as it is scheduled; they catch up by state transfer.
                        for id in joined {
                            let index = id.0 as usize;
                            if index < validators.len() {
                                continue;
                            }
                            let Some(key) = operator.as_ref().and_then(|o| o.key_of(id)) else { continue };
                            let Some(joined_committee) = committees.values().find(|c| c.contains(id)).cloned() else {
                                continue;
                            };
                            // Handed the committees as the swarm handle hands them: announced
                            // before the checkpoints that start them are decided.
                            let announced: Vec<Committee> = std::iter::once(committee.clone())
                                .chain(committees.values().map(|c| c.clone().starting_after(crate::protocol::Seq(0))))
                                .collect();
                            let replica = Replica::joining(
                                id,
                                key.clone(),
                                committee.clone(),
                                joined_committee,
                                config.params.clone(),
                                genesis.clone(),
                            );
                            validators.push(SimValidator {
                                node: ValidatorNode::handed(replica, &announced),
                                receipt: Receipt::default(),
                                adversaries: Vec::new(),
                                accuser: None,
                                liar: faults.contains_key(&id).then(|| {
                                    let seed = config.seed ^ u64::from(id.0);
                                    view_change_liar::ViewChangeLiar::new(id, key.clone(), &config.params, seed)
                                }),
                            });
                            network.schedule_tick(Node::Validator(index), now);
                            // A retired coalition strikes at once, before the joiner learns anything.
                            if coalition.is_some() {
                                network.schedule_tick(Node::Operator, now);
                            }
                        }
                        if let Some(lagging) = config.faults.isolated {
                            let interval = config.params.checkpoint_interval;
                            let ahead = validators
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| *i != lagging)
                                .map(|(_, v)| v.replica().stable_checkpoint().seq.0)
                                .min()
                                .unwrap_or(0);
                            if ahead >= 10 * interval || client.is_done() {
                                network.end_isolation();
                            }
                        }
                    }
                    if second {
                        swap_twin(&mut validators, &mut twins, index);
                    }
                }
                delivered.check(now, highest_honest_view(&validators, &faults), &detection.convicted_set);
            }
        }
    }
    let convicted = detection.convicted.clone();
    let delivered_equivocations = delivered.delivered;
    let honest_primary_strikes = detection.most_strikes_against_honest();
    let mut violations = invariants.into_violations();
    violations.extend(delivered.into_violations(&detection.convicted_set));
    violations.extend(detection.into_violations());
    if let Some(operator) = &operator {
        let reached = committees.keys().next_back().copied().unwrap_or_default();
        if !operator.finished(reached) {
            violations.push(Violation::ReconfigurationIncomplete { reached: reached.0, planned: operator.planned() });
        }
    }
    // A validator that was isolated, or added, ends within a checkpoint interval of the others.
    let highest = validators.iter().map(|v| v.replica().last_executed().0).max().unwrap_or(0);
    for (index, validator) in validators.iter().enumerate() {
        let byzantine = faults.contains_key(&AgentId(index as u32));
        let watched = !byzantine && (config.faults.isolated == Some(index) || index >= config.validators);
        let executed = validator.replica().last_executed().0;
        if watched && !validator.replica().is_retired() && executed + config.params.checkpoint_interval < highest {
            violations.push(Violation::NeverCaughtUp { replica: AgentId(index as u32), executed, highest });
        }
    }
    violations.extend(equivocations);
    if !client.is_done() {
        violations
            .push(Violation::Liveness { completed: client.stats().completed as usize, expected: config.transactions });
    }
    SimReport {
        seed: config.seed,
        scenario: config.scenario,
        validators: config.validators,
        violations,
        transactions: config.transactions,
        completed: client.stats().completed as usize,
        events,
        sim_time_us: network.now().0,
        evidence: validators.iter().map(|v| v.replica().stats().evidence_found as usize).sum(),
        delivered_equivocations,
        honest_primary_strikes,
        highest_executed: validators.iter().map(|v| v.replica().last_executed().0).max().unwrap_or(0),
        convicted,
        damaged_restarts,
        forged_messages,
        lies_told: validators.iter().filter_map(|v| v.liar.as_ref()).map(|liar| liar.told).sum(),
        lies_in_view_changes: validators.iter().filter_map(|v| v.liar.as_ref()).map(|l| l.told_in_view_changes).sum(),
        epoch: committees.keys().next_back().map_or(0, |epoch| epoch.0),
        replicas: validators
            .iter()
            .map(|v| ReplicaSummary {
                id: v.replica().id(),
                view: v.replica().view().0,
                changing_to: v.replica().changing_to().map(|view| view.0),
                epoch: v.replica().committee().epoch().0,
                last_executed: v.replica().last_executed().0,
                stable_checkpoint: v.replica().stable_checkpoint().seq.0,
                queued_requests: v.replica().queued_requests(),
                log_len: v.replica().log_len(),
                stats: v.replica().stats().clone(),
            })
            .collect(),
    }
}

/// Puts a twin's other instance in its place (and back).
fn swap_twin(validators: &mut [SimValidator], twins: &mut BTreeMap<usize, SimValidator>, index: usize) {
    if let (Some(first), Some(second)) = (validators.get_mut(index), twins.get_mut(&index)) {
        std::mem::swap(first, second);
    }
}

fn highest_honest_view(validators: &[SimValidator], byzantine: &BTreeMap<AgentId, ByzantineAgent>) -> u64 {
    let honest = validators.iter().filter(|v| !byzantine.contains_key(&v.replica().id()));
    honest.map(|v| v.replica().view().0).max().unwrap_or(0)
}

/// How many validator nodes exist so far: the first committee's, plus those added since.
fn validators_len(committees: &BTreeMap<Epoch, Committee>, initial: usize) -> usize {
    committees.values().flat_map(|c| c.members().iter().map(|m| m.id.0 as usize + 1)).max().unwrap_or(0).max(initial)
}
