//! A replicated application of your own, on a real swarm: a task board where
//! agents claim and complete numbered tasks, ordered by PBFT among seven
//! validators (f = 2) that survive a Byzantine primary, a Byzantine agent, a
//! view change, a crash and a state transfer.
//!
//! The application is [`TaskBoard`] (`src/app/task_board.rs`): about 230
//! lines written against the public [`bftswarm::app::Application`] trait
//! only — validation before ordering, execution of an ordered batch with an
//! outcome per request, a digest, a snapshot in chunks, a query. It lives in
//! the library so that the deterministic simulation checks it too; yours can
//! live anywhere. Hosting it takes one more line, `impl HostedApp for
//! MyApp {}` (the built-in `Validator` actor's bound).
//!
//! The runtime is the swarm's own actors, each validator on its own thread:
//! the [`Supervisor`] routes, each [`Validator<TaskBoard>`] drives the pure
//! node and keeps a write-ahead log, the runtime's [`Client`] submits and
//! waits for f+1 matching signed replies. What is the example's own: the
//! [`Referee`], an actor that feeds what the validators report to the pure
//! [`Detector`] and quarantines whom it convicts, and the Byzantine agent.
//!
//! The story, in order:
//! 1. The primary (`board-1`) is Byzantine: it equivocates, proposing two
//!    batches for each sequence number. The honest validators prove it, the
//!    referee convicts and quarantines it, and the view changes.
//! 2. A Byzantine agent signs two claims with one nonce and sends each to
//!    half of the validators, forges a completion in an honest agent's name,
//!    and tries to complete a task it never claimed.
//! 3. `board-7` is cut off for the first half of the work, long enough that
//!    its peers' logs no longer hold what it missed: it catches up by state
//!    transfer, the board's chunks checked against the certified digest.
//! 4. `board-4` crashes in the second half and comes back from its log.
//!
//!     cargo run --example custom_app -- 24

use actix::{Actor, Addr, Arbiter, Context, Handler, Supervisor as ActorSupervisor};
use bftswarm::actors::{
    now, Begin, Client, ClientRun, Destination, Envelope, GetStatus, InjectFault, Misbehaviour, Origin, Quarantine,
    ReadReplica, RecoveredValidator, Register, RegisterClient, Restart, Route, Supervisor, Validator, ValidatorStatus,
};
use bftswarm::app::task_board::{BoardOp, TaskBoard, TaskState};
use bftswarm::app::{Application, SignedTx};
use bftswarm::crypto::Keypair;
use bftswarm::detect::{DetectionRules, Detector};
use bftswarm::faults::{FaultSpec, FaultType};
use bftswarm::ledger::{AccountId, TxId, TxOutcome};
use bftswarm::protocol::{AgentId, ClientCore, ClientId, Committee, Epoch, ProtocolParams, Request};
use bftswarm::wal::{Recovery, ReplicaSpec, WalOptions};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 7;
const HONEST_AGENTS: usize = 4;
/// The equivocating primary.
const BYZANTINE_PRIMARY: AgentId = AgentId(0);
/// Cut off for the first half, then caught up by state transfer.
const CUT_OFF: AgentId = AgentId(6);
/// Crashed in the second half, rebuilt from its write-ahead log.
const CRASHED: AgentId = AgentId(3);

/// What the run shows, read from the validators at the end.
#[derive(Clone, Debug, Default)]
pub struct BoardRun {
    /// Honest steps submitted, and those committed on f+1 matching replies.
    pub steps: usize,
    pub committed: usize,
    /// The board as every honest validator holds it (they agree, or this is empty).
    pub board: Vec<TaskState>,
    /// Honest validators whose board digest differs from the others'.
    pub disagreeing: Vec<String>,
    /// Validators the referee convicted, with the fault proven.
    pub convicted: Vec<(String, String)>,
    /// The lowest view an honest validator ended in.
    pub view: u64,
    pub snapshots_installed_by_cut_off: u64,
    /// The crashed validator came back from its write-ahead log (not from genesis).
    pub crashed_rebuilt_from_log: bool,
    /// Honest validators whose verifier refused the forged completion.
    pub forgery_refused_by: usize,
    pub highest_executed: u64,
    /// The Byzantine agent's account.
    pub byzantine: Option<AccountId>,
    pub honest: Vec<AccountId>,
}

/// The example's own agent: the detection pipeline. It feeds what every
/// validator's verifier refused and replica proved to the pure [`Detector`],
/// and has the supervisor drop every route of whom it convicts.
pub struct Referee {
    detector: Detector,
    supervisor: Addr<Supervisor>,
    convicted: Arc<Mutex<Vec<(String, String)>>>,
}

impl Actor for Referee {
    type Context = Context<Self>;
}

impl Handler<Misbehaviour> for Referee {
    type Result = ();

    fn handle(&mut self, misbehaviour: Misbehaviour, _: &mut Context<Self>) {
        for report in misbehaviour.reports {
            let Some(conviction) = self.detector.report(now(), report) else { continue };
            let name = self.detector.committee().member(conviction.detected_agent).map(|m| m.name.clone());
            self.supervisor.do_send(Quarantine(conviction.detected_agent));
            self.convicted.lock().unwrap().push((name.unwrap_or_default(), conviction.fault_type));
        }
    }
}

/// The agents' keys and how they sign a board step.
struct Agents {
    keys: Vec<Keypair>,
}

impl Agents {
    fn account(&self, agent: usize) -> AccountId {
        AccountId(self.keys[agent].public_key())
    }

    /// `agent`'s step, signed by `signer` (an honest agent signs its own).
    fn step(&self, agent: usize, signer: usize, op: BoardOp, nonce: u64) -> SignedTx {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&nonce.to_le_bytes());
        id[8] = agent as u8;
        id[9..].copy_from_slice(&op.encode()[..7]);
        op.tx(TxId(id), self.account(agent), nonce).sign(&self.keys[signer])
    }

    /// Every honest agent claims, then completes, its share of `tasks`.
    fn honest_steps(&self, tasks: std::ops::Range<u64>, first_nonce: u64) -> Vec<SignedTx> {
        let mut steps = Vec::new();
        for agent in 0..HONEST_AGENTS {
            let mine: Vec<u64> = tasks.clone().filter(|task| task % HONEST_AGENTS as u64 == agent as u64).collect();
            let ops = mine.iter().flat_map(|&task| [BoardOp::Claim(task), BoardOp::Complete(task)]);
            steps.extend(ops.enumerate().map(|(i, op)| self.step(agent, agent, op, first_nonce + i as u64)));
        }
        steps
    }
}

/// Runs the story on a board of `tasks` tasks (an even number, at least 8),
/// the validators' logs under `home`.
pub async fn run_task_board(tasks: u64, home: &Path) -> BoardRun {
    let keys: Vec<Keypair> = (0..VALIDATORS as u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "board-", None).expect("seven keys make a committee");
    // Small checkpoints and log window, so that a cut-off validator soon
    // needs a snapshot; a short view-change timeout, so the story is quick.
    let params = ProtocolParams {
        checkpoint_interval: 2,
        log_window: 4,
        max_batch_size: 4,
        retransmit_interval_us: 50_000,
        view_change_timeout_us: 400_000,
        ..ProtocolParams::default()
    };
    // Two more tasks than the honest agents take: the Byzantine agent's prizes.
    let genesis = TaskBoard::with_tasks(tasks + 2);
    let agents = Agents { keys: (0..=HONEST_AGENTS as u8).map(|i| Keypair::from_seed([100 + i; 32])).collect() };
    let byzantine = HONEST_AGENTS;

    let mut arbiters = vec![Arbiter::new()];
    let supervisor = Supervisor::start_in_arbiter(&arbiters[0].handle(), |_| Supervisor::new());
    let convicted = Arc::new(Mutex::new(Vec::new()));
    let referee = Referee {
        detector: Detector::new(committee.clone(), DetectionRules::default()),
        supervisor: supervisor.clone(),
        convicted: convicted.clone(),
    }
    .start();
    let wal = WalOptions::under_home(home, false);
    let mut validators = Vec::new();
    for (member, keypair) in committee.members().iter().zip(&keys) {
        let spec = ReplicaSpec {
            name: member.name.clone(),
            keypair: keypair.clone(),
            committee: committee.clone(),
            params: params.clone(),
            genesis: genesis.clone(),
            joined_in: None,
        };
        let recovered = RecoveredValidator::open(spec, wal.clone()).expect("a new log opens");
        let (route, detector) = (supervisor.clone().recipient(), referee.clone().recipient());
        // Restarted from its log by actix's supervisor when it stops.
        arbiters.push(Arbiter::new());
        let addr = ActorSupervisor::start_in_arbiter(&arbiters[arbiters.len() - 1].handle(), move |_| {
            Validator::<TaskBoard>::recovered(recovered, route).with_detector(detector)
        });
        if member.id != CUT_OFF {
            supervisor.send(register(member, &addr)).await.expect("the supervisor runs");
        }
        validators.push(addr);
    }
    let equivocate = FaultSpec { fault_type: FaultType::Equivocation, probability: 1.0, after_us: 0 };
    validators[BYZANTINE_PRIMARY.0 as usize].do_send(InjectFault(equivocate));

    // The Byzantine agent, before the honest work: two claims with one nonce,
    // each to half of the validators; only one can ever execute.
    let claims = [BoardOp::Claim(tasks), BoardOp::Claim(tasks + 1)].map(|op| agents.step(byzantine, byzantine, op, 0));
    let halves = [1..4, 4..VALIDATORS];
    let items = claims
        .into_iter()
        .zip(halves)
        .flat_map(|(claim, half)| {
            let request = Request { client: ClientId(99), tx: claim };
            half.map(move |v| (Destination::Validator(AgentId(v as u32)), requests(vec![request.clone()])))
        })
        .collect();
    supervisor.do_send(Route { from: Origin::Client(ClientId(99)), items });

    let half = tasks / 2;
    let first = run_client(&supervisor, &committee, ClientId(1), agents.honest_steps(0..half, 0)).await;

    // Once the others have moved on: a completion forged in agent 0's name,
    // and a completion of agent 0's task with the Byzantine agent's own key.
    let forged = agents.step(0, byzantine, BoardOp::Complete(0), 1_000);
    let stolen = agents.step(byzantine, byzantine, BoardOp::Complete(0), 1);
    let items = [forged, stolen]
        .into_iter()
        .map(|tx| (Destination::AllValidators, requests(vec![Request { client: ClientId(99), tx }])))
        .collect();
    supervisor.do_send(Route { from: Origin::Client(ClientId(99)), items });

    // The cut-off validator comes back; its peers' logs are long past what it missed.
    let cut_off = committee.member(CUT_OFF).expect("a member");
    supervisor.send(register(cut_off, &validators[CUT_OFF.0 as usize])).await.expect("the supervisor runs");
    validators[CRASHED.0 as usize].do_send(Restart);
    let second_steps = agents.honest_steps(half..tasks, (half / HONEST_AGENTS as u64) * 2);
    let second = run_client(&supervisor, &committee, ClientId(2), second_steps).await;

    let honest: Vec<_> = validators.iter().enumerate().filter(|(i, _)| *i != BYZANTINE_PRIMARY.0 as usize).collect();
    let statuses = settle(&honest.iter().map(|(_, addr)| (*addr).clone()).collect::<Vec<_>>()).await;
    let mut boards = Vec::new();
    for (_, addr) in &honest {
        let read =
            ReadReplica::<_, TaskBoard>(Box::new(|replica| (replica.app().tasks().to_vec(), replica.app().digest())));
        boards.push(addr.send(read).await.expect("a validator answers"));
    }
    let reference =
        boards.iter().map(|(_, digest)| *digest).max_by_key(|d| boards.iter().filter(|b| b.1 == *d).count());
    let disagreeing = statuses
        .iter()
        .zip(&boards)
        .filter(|(_, (_, digest))| Some(*digest) != reference)
        .map(|(status, _)| status.name.clone())
        .collect::<Vec<_>>();
    let run = BoardRun {
        steps: first.completions.len() + second.completions.len(),
        committed: [&first, &second]
            .iter()
            .flat_map(|run| &run.completions)
            .filter(|c| c.outcome == TxOutcome::Committed)
            .count(),
        board: if disagreeing.is_empty() { boards[0].0.clone() } else { Vec::new() },
        disagreeing,
        convicted: convicted.lock().unwrap().clone(),
        view: statuses.iter().map(|s| s.view.0).min().unwrap_or(0),
        snapshots_installed_by_cut_off: statuses
            .iter()
            .find(|s| s.id == CUT_OFF)
            .map_or(0, |s| s.stats.snapshots_installed),
        crashed_rebuilt_from_log: statuses
            .iter()
            .find(|s| s.id == CRASHED)
            .is_some_and(|s| matches!(s.recovery, Some(Recovery::Wal { .. }))),
        forgery_refused_by: statuses
            .iter()
            .filter(|s| s.inbound_rejected.contains_key("invalid-client-signature"))
            .count(),
        highest_executed: statuses.iter().map(|s| s.last_executed.0).max().unwrap_or(0),
        byzantine: Some(agents.account(byzantine)),
        honest: (0..HONEST_AGENTS).map(|agent| agents.account(agent)).collect(),
    };
    // Stops every validator: their logs are closed when the threads end.
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    run
}

fn register(member: &bftswarm::protocol::Member, addr: &Addr<Validator<TaskBoard>>) -> Register {
    Register {
        id: member.id,
        name: member.name.clone(),
        public_key: member.public_key,
        recipient: addr.clone().recipient(),
    }
}

fn requests(requests: Vec<Request>) -> Envelope {
    Envelope::Requests(Arc::new(requests))
}

/// The runtime's client: submits `steps`, one in flight per agent, each done
/// on f+1 matching signed replies.
async fn run_client(
    supervisor: &Addr<Supervisor>,
    committee: &Committee,
    id: ClientId,
    steps: Vec<SignedTx>,
) -> ClientRun {
    let (done, result) = tokio::sync::oneshot::channel();
    let core = ClientCore::new(id, committee.clone(), steps, 16, 300_000);
    let route = supervisor.clone().recipient();
    let client = Client::new(id, core, route, Arc::new(AtomicU64::new(0)), done).start();
    supervisor.send(RegisterClient { id, recipient: client.clone().recipient() }).await.expect("the supervisor runs");
    client.do_send(Begin);
    result.await.expect("the client reports its run")
}

/// The validators' statuses once all of them executed the same seq (or 20 s passed).
async fn settle(validators: &[Addr<Validator<TaskBoard>>]) -> Vec<ValidatorStatus> {
    let started = Instant::now();
    loop {
        let mut statuses = Vec::new();
        for addr in validators {
            statuses.push(addr.send(GetStatus).await.expect("a validator answers"));
        }
        let level = statuses.windows(2).all(|pair| pair[0].last_executed == pair[1].last_executed);
        if level || started.elapsed() > Duration::from_secs(20) {
            return statuses;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let tasks = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(24u64).max(8) / 2 * 2;
    let home = tempfile::tempdir().expect("a temporary directory for the validators' logs");
    let run = actix::System::new().block_on(run_task_board(tasks, home.path()));
    println!("{} of {} honest steps committed, up to seq {}", run.committed, run.steps, run.highest_executed);
    for (name, fault) in &run.convicted {
        println!("convicted and quarantined: {name} ({fault})");
    }
    println!("every honest validator ended in view {} or later", run.view);
    println!("board-7 caught up by installing {} snapshot(s)", run.snapshots_installed_by_cut_off);
    println!("board-4 came back from its write-ahead log: {}", run.crashed_rebuilt_from_log);
    println!("{} honest validators refused the forged completion", run.forgery_refused_by);
    let done = run.board.iter().filter(|state| matches!(state, TaskState::Done(_))).count();
    let byzantine = run.byzantine.expect("set by the run");
    let grabbed = run.board.iter().filter(|state| **state == TaskState::Claimed(byzantine)).count();
    println!("{done} tasks done by their claimers; the Byzantine agent holds {grabbed} task(s)");
    if !run.disagreeing.is_empty() {
        println!("validators on another board: {}", run.disagreeing.join(", "));
        std::process::exit(1);
    }
}
