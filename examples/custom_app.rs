//! A replicated application of your own on a real swarm: a task board where
//! agents claim and complete numbered tasks, ordered by PBFT among seven
//! validators (f = 2) that survive a Byzantine primary, a Byzantine agent, a
//! view change, a crash and a state transfer, and replace whom they convict.
//!
//! The application is [`TaskBoard`] (`src/app/task_board.rs`): about 230
//! lines written against the public [`bftswarm::app::Application`] trait
//! only — validation before ordering, execution of an ordered batch with an
//! outcome per request, a digest, a snapshot in chunks, a query. It lives in
//! the library so that the deterministic simulation checks it too; yours can
//! live anywhere. Hosting it takes one more line, `impl HostedApp for
//! MyApp {}`, and then `Swarm::<MyApp>::launch_with` runs it as it runs the
//! built-in ledger: validators on their own threads with write-ahead logs,
//! detection, quarantine and replacement, and validators in other processes
//! over TCP through a [`Hub`] and [`run_node`].
//!
//! The story, in order:
//! 1. The primary (`board-1`) is Byzantine: it equivocates, proposing two
//!    batches for each sequence number. The honest validators prove it; the
//!    swarm convicts and quarantines it, the view changes, and a fresh
//!    validator (`board-8`) takes its seat through a membership epoch,
//!    catching up by state transfer.
//! 2. A Byzantine agent signs two claims with one nonce and sends each to
//!    half of the validators, forges a completion in an honest agent's name,
//!    and tries to complete a task it never claimed.
//! 3. `board-7` is cut off for the first half of the work, long enough that
//!    its peers' logs no longer hold what it missed: it catches up by state
//!    transfer, the board's chunks checked against the certified digest.
//! 4. `board-4` crashes in the second half and comes back from its log.
//!
//! With `--tcp`, `board-3` and `board-6` run as node processes' validators
//! (here: threads with an actix System each) joined to the swarm's hub over
//! loopback TCP.
//!
//!     cargo run --example custom_app -- 24 [--tcp]

use bftswarm::actors::{
    Destination, Envelope, LaunchOptions, Origin, QuarantinePolicy, Register, Route, Swarm, SwarmSpec, Unregister,
    ValidatorStatus,
};
use bftswarm::app::task_board::{BoardOp, TaskBoard, TaskState};
use bftswarm::app::{Application, SignedTx};
use bftswarm::crypto::Keypair;
use bftswarm::faults::FaultType;
use bftswarm::ledger::{AccountId, TxOutcome};
use bftswarm::protocol::{AgentId, ClientId, Committee, Epoch, ProtocolParams, Request};
use bftswarm::transport::{run_node, Hub, NodeOptions};
use bftswarm::wal::{Recovery, WalOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALIDATORS: usize = 7;
const HONEST_AGENTS: usize = 4;
/// The equivocating primary.
const BYZANTINE_PRIMARY: AgentId = AgentId(0);
/// Cut off for the first half, then caught up by state transfer.
const CUT_OFF: AgentId = AgentId(6);
/// Crashed in the second half, rebuilt from its write-ahead log.
const CRASHED: AgentId = AgentId(3);
/// With `--tcp`: validators in node processes, joined over loopback.
const REMOTE: [AgentId; 2] = [AgentId(2), AgentId(5)];

/// What the run shows, read from the swarm at the end.
#[derive(Clone, Debug, Default)]
pub struct BoardRun {
    /// Honest steps submitted, and those committed on f+1 matching replies.
    pub steps: usize,
    pub committed: usize,
    /// The board the in-process validators of the final committee hold (they
    /// agree, or this is empty).
    pub board: Vec<TaskState>,
    /// Validators of the final committee whose board digest differs from the
    /// others' (those in node processes included).
    pub disagreeing: Vec<String>,
    /// Validators of the final committee whose status was read.
    pub members: Vec<String>,
    /// Who was convicted of what, and who took the seat.
    pub convicted: Vec<(String, String, Option<String>)>,
    /// The most new views any validator installed (view changes completed).
    pub views_installed: u64,
    pub snapshots_installed_by_cut_off: u64,
    /// The crashed validator came back from its write-ahead log (not from genesis).
    pub crashed_rebuilt_from_log: bool,
    /// Honest validators in this process whose verifier refused the forged completion.
    pub forgery_refused_by: usize,
    pub highest_executed: u64,
    /// Validators that ran in node processes, over TCP.
    pub remote: Vec<String>,
    /// The Byzantine agent's account, and the honest agents'.
    pub byzantine: Option<AccountId>,
    pub honest: Vec<AccountId>,
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
        op.tx(op.step_id(agent as u8, nonce), self.account(agent), nonce).sign(&self.keys[signer])
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

/// Runs the story on a board of `tasks` tasks (a multiple of 8), the
/// validators' logs under `home`; with `tcp`, [`REMOTE`] run as node
/// processes' validators over loopback. Must run inside an actix System.
pub async fn run_task_board(tasks: u64, home: &Path, tcp: bool) -> BoardRun {
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
    let operator = Keypair::from_seed([99; 32]);
    let spec = SwarmSpec::new(committee, keys.clone(), params, genesis)
        .expect("the keys are the committee's")
        .with_operator(operator.clone());
    let remote: BTreeSet<AgentId> = if tcp { REMOTE.into() } else { BTreeSet::new() };
    let options = LaunchOptions {
        name: "task-board".into(),
        wal: Some(WalOptions::under_home(home, false)),
        quarantine: QuarantinePolicy { enforce: true, ..QuarantinePolicy::default() },
        external_validators: remote.clone(),
        ..LaunchOptions::default()
    };
    let swarm = Arc::new(Swarm::<TaskBoard>::launch_with(spec, options).expect("new logs open"));
    let nodes = match tcp {
        true => {
            let hub = Hub::listen(swarm.clone(), operator.clone(), "127.0.0.1:0").await.expect("a loopback port");
            let nodes = remote.iter().map(|id| Node::start(home, &hub, &keys[id.0 as usize], &operator)).collect();
            hub.wait_for_nodes(remote.len(), Duration::from_secs(20)).await.expect("the nodes join the hub");
            nodes
        }
        false => Vec::new(),
    };
    let agents = Agents { keys: (0..=HONEST_AGENTS as u8).map(|i| Keypair::from_seed([100 + i; 32])).collect() };
    let byzantine = HONEST_AGENTS;

    swarm.inject_fault(BYZANTINE_PRIMARY, FaultType::Equivocation, 1.0, Duration::ZERO).expect("a member");
    swarm.supervisor().send(Unregister(CUT_OFF)).await.expect("the supervisor runs");

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
    swarm.supervisor().do_send(Route { from: Origin::Client(ClientId(99)), items });

    let half = tasks / 2;
    let progress = Arc::new(AtomicU64::new(0));
    let first = agents.honest_steps(0..half, 0);
    let first = swarm.run_client(ClientId(1), first, 16, 300, progress.clone()).await.expect("the client runs");

    // Once the others have moved on: a completion forged in agent 0's name,
    // and a completion of agent 0's task with the Byzantine agent's own key.
    let forged = agents.step(0, byzantine, BoardOp::Complete(0), 1_000);
    let stolen = agents.step(byzantine, byzantine, BoardOp::Complete(0), 1);
    let items = [forged, stolen]
        .into_iter()
        .map(|tx| (Destination::AllValidators, requests(vec![Request { client: ClientId(99), tx }])))
        .collect();
    swarm.supervisor().do_send(Route { from: Origin::Client(ClientId(99)), items });

    // The cut-off validator comes back; its peers' logs are long past what it missed.
    let cut_off = swarm.member_in_any_epoch(CUT_OFF).expect("a member");
    let recipient = swarm.validator(CUT_OFF).expect("runs in this process").recipient();
    let register = Register { id: CUT_OFF, name: cut_off.name, public_key: cut_off.public_key, recipient };
    swarm.supervisor().send(register).await.expect("the supervisor runs");
    swarm.restart(CRASHED).expect("runs in this process");
    let second = agents.honest_steps(half..tasks, (half / HONEST_AGENTS as u64) * 2);
    let second = swarm.run_client(ClientId(2), second, 16, 300, progress).await.expect("the client runs");

    // Until the replacement has taken the convicted primary's seat and every member caught up.
    let started = Instant::now();
    let (log, statuses) = loop {
        let log = swarm.detection_log().await.unwrap_or_default();
        let statuses = swarm.settled_status(Duration::from_secs(5)).await;
        let replaced = log.iter().any(|record| record.replaced_by.is_some());
        let members: Vec<&ValidatorStatus> = statuses.iter().filter(|s| s.member).collect();
        let level = members.windows(2).all(|pair| pair[0].last_executed == pair[1].last_executed);
        if (replaced && level) || started.elapsed() > Duration::from_secs(30) {
            break (log, statuses);
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let members: Vec<&ValidatorStatus> = statuses.iter().filter(|s| s.member).collect();
    let digests = members.iter().map(|s| s.ledger_digest).collect::<Vec<_>>();
    let reference = digests.iter().max_by_key(|d| digests.iter().filter(|other| other == d).count()).copied();
    let boards = swarm.read_replicas(|replica| (replica.app().tasks().to_vec(), replica.app().digest())).await;
    let board = boards.iter().find(|(_, digest)| Some(*digest) == reference).map(|(board, _)| board.clone());
    let committed = first.completions.iter().chain(&second.completions);
    let run = BoardRun {
        steps: first.completions.len() + second.completions.len(),
        committed: committed.filter(|c| c.outcome == TxOutcome::Committed).count(),
        board: board.unwrap_or_default(),
        disagreeing: members.iter().filter(|s| Some(s.ledger_digest) != reference).map(|s| s.name.clone()).collect(),
        members: members.iter().map(|s| s.name.clone()).collect(),
        convicted: log
            .iter()
            .map(|r| (r.detected_agent.clone(), r.fault_type.clone(), r.replaced_by.clone()))
            .collect(),
        views_installed: statuses.iter().map(|s| s.stats.views_installed).max().unwrap_or(0),
        snapshots_installed_by_cut_off: status_of(&statuses, CUT_OFF).map_or(0, |s| s.stats.snapshots_installed),
        crashed_rebuilt_from_log: status_of(&statuses, CRASHED)
            .is_some_and(|s| matches!(s.recovery, Some(Recovery::Wal { .. }))),
        forgery_refused_by: statuses
            .iter()
            .filter(|s| s.id != BYZANTINE_PRIMARY && s.inbound_rejected.contains_key("invalid-client-signature"))
            .count(),
        highest_executed: statuses.iter().map(|s| s.last_executed.0).max().unwrap_or(0),
        remote: remote.iter().filter_map(|id| swarm.member_in_any_epoch(*id)).map(|m| m.name).collect(),
        byzantine: Some(agents.account(byzantine)),
        honest: (0..HONEST_AGENTS).map(|agent| agents.account(agent)).collect(),
    };
    nodes.into_iter().for_each(Node::stop);
    if let Ok(swarm) = Arc::try_unwrap(swarm) {
        swarm.stop();
    }
    run
}

fn status_of(statuses: &[ValidatorStatus], id: AgentId) -> Option<&ValidatorStatus> {
    statuses.iter().find(|s| s.id == id)
}

fn requests(requests: Vec<Request>) -> Envelope {
    Envelope::Requests(Arc::new(requests))
}

/// A node process's validator: its own thread and actix System, its own
/// home (and log), joined to the hub over TCP by [`run_node`].
struct Node {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Node {
    fn start(home: &Path, hub: &Hub<TaskBoard>, keypair: &Keypair, hub_key: &Keypair) -> Node {
        let options = NodeOptions {
            home: home.join(format!("node-{}", keypair.public_key())),
            hub: hub.local_addr().to_string(),
            keypair: keypair.clone(),
            hub_key: hub_key.public_key(),
            fsync: false,
            fault: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                tokio::select! {
                    ended = run_node::<TaskBoard>(options) => eprintln!("node ended: {ended:?}"),
                    _ = stopped => {}
                }
            })
        });
        Node { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tasks = args.next().and_then(|n| n.parse().ok()).unwrap_or(24u64).max(8) / 8 * 8;
    let tcp = std::env::args().any(|arg| arg == "--tcp");
    let home = tempfile::tempdir().expect("a temporary directory for the validators' logs");
    let run = actix::System::new().block_on(run_task_board(tasks, home.path(), tcp));
    println!("{} of {} honest steps committed, up to seq {}", run.committed, run.steps, run.highest_executed);
    for (name, fault, replaced_by) in &run.convicted {
        let replacement = replaced_by.as_deref().unwrap_or("nobody yet");
        println!("convicted and quarantined: {name} ({fault}); its seat went to {replacement}");
    }
    if !run.remote.is_empty() {
        println!("over TCP: {}", run.remote.join(", "));
    }
    println!("view changes: {}; the final committee: {}", run.views_installed, run.members.join(", "));
    println!("board-7 caught up by installing {} snapshot(s)", run.snapshots_installed_by_cut_off);
    println!("board-4 came back from its write-ahead log: {}", run.crashed_rebuilt_from_log);
    println!("{} honest validators here refused the forged completion", run.forgery_refused_by);
    let done = run.board.iter().filter(|state| matches!(state, TaskState::Done(_))).count();
    let byzantine = run.byzantine.expect("set by the run");
    let grabbed = run.board.iter().filter(|state| **state == TaskState::Claimed(byzantine)).count();
    println!("{done} tasks done by their claimers; the Byzantine agent holds {grabbed} task(s)");
    if !run.disagreeing.is_empty() || run.board.is_empty() {
        println!("members on another board: {}", run.disagreeing.join(", "));
        std::process::exit(1);
    }
}
