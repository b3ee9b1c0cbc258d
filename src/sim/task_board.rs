//! The simulation's second application: the same replica, verifier and client
//! running the [`TaskBoard`] instead of the ledger, on the same seeded lossy
//! network, with one validator cut off until it must catch up by state
//! transfer (the board's chunks), and a Byzantine agent that steals claims,
//! completes other agents' tasks and signs two steps with one nonce.
//!
//! What it checks holds for any application: every seq executes one batch
//! everywhere, and every stable checkpoint and every final state carries one
//! application digest, the one a fresh board gets by executing the agreed
//! batches. On top, the board's own rules, read from the agreed outcomes
//! (not from the board's code): a task is claimed once, only its claimer
//! completes it.

use super::network::{Network, NetworkFaults, Node, Payload};
use crate::app::task_board::{BoardOp, TaskBoard};
use crate::app::SignedTx;
use crate::app::{Application, Op};
use crate::crypto::{Digest, Keypair};
use crate::ledger::{AccountId, Execution, TxId, TxOutcome};
use crate::protocol::{
    AgentId, Batch, ClientCore, ClientId, ClientInput, ClientOutput, Committee, Epoch, Input, Micros, Output,
    ProtocolParams, Replica, Request, Seq, Verifier,
};
use crate::rng::SeededRng;
use std::collections::BTreeMap;
use std::sync::Arc;

const HONEST_AGENTS: usize = 4;
const TIME_LIMIT_US: u64 = 30_000_000;

#[derive(Clone, Debug)]
pub struct TaskBoardReport {
    pub seed: u64,
    pub validators: usize,
    pub violations: Vec<String>,
    /// Steps the client submitted, and those it got f+1 matching outcomes for.
    pub steps: usize,
    pub completed: usize,
    pub highest_executed: u64,
    /// Snapshots the cut-off validator installed.
    pub snapshots_installed: u64,
    /// Tasks done, by agent index (the Byzantine agent last).
    pub done_by: Vec<usize>,
}

impl TaskBoardReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

struct Agents {
    keys: Vec<Keypair>,
    tasks: u64,
}

impl Agents {
    fn step(&self, agent: usize, op: BoardOp, nonce: u64) -> SignedTx {
        let key = &self.keys[agent];
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&nonce.to_le_bytes());
        id[8] = agent as u8;
        id[9..].copy_from_slice(&op.encode()[..7]);
        op.tx(TxId(id), AccountId(key.public_key()), nonce).sign(key)
    }

    fn index_of(&self, account: &AccountId) -> Option<usize> {
        self.keys.iter().position(|key| key.public_key() == account.0)
    }

    /// Each honest agent claims and completes three tasks of its own, then
    /// races the others for the shared one; the Byzantine agent (last) tries
    /// to steal claims and to complete tasks that are not its own.
    fn workload(&self) -> Vec<SignedTx> {
        let shared = self.tasks - 1;
        let byzantine = HONEST_AGENTS;
        let mut steps = Vec::new();
        for round in 0..8u64 {
            for agent in 0..HONEST_AGENTS {
                let task = match round {
                    0..=5 => (agent + HONEST_AGENTS * (round as usize / 2)) as u64,
                    _ => shared,
                };
                let op = if round % 2 == 0 { BoardOp::Claim(task) } else { BoardOp::Complete(task) };
                steps.push(self.step(agent, op, round));
            }
        }
        let attacks = [BoardOp::Complete(0), BoardOp::Claim(1), BoardOp::Claim(shared), BoardOp::Complete(2)];
        for (nonce, op) in attacks.into_iter().enumerate() {
            steps.insert(nonce * 3, self.step(byzantine, op, nonce as u64));
        }
        steps
    }
}

struct Validator {
    replica: Replica<TaskBoard>,
    verifier: Verifier,
}

/// What the honest replicas executed, and the violations of agreement.
#[derive(Default)]
struct Agreement {
    batches: BTreeMap<Seq, (Digest, Arc<Batch>, Vec<Execution>)>,
    checkpoints: BTreeMap<Seq, Digest>,
    violations: Vec<String>,
}

impl Agreement {
    fn on_output(&mut self, me: AgentId, output: &Output) {
        match output {
            Output::Executed(executed) => {
                let entry = (executed.digest, executed.batch.clone(), executed.executions.clone());
                let first = self.batches.entry(executed.seq).or_insert(entry);
                if first.0 != executed.digest || first.2 != executed.executions {
                    self.violations.push(format!("{me} executed another batch or outcome at {}", executed.seq));
                }
            }
            Output::CheckpointStable { seq, ledger_digest: app_digest, .. }
                if *self.checkpoints.entry(*seq).or_insert(*app_digest) != *app_digest =>
            {
                self.violations.push(format!("{me} holds another application digest at checkpoint {seq}"));
            }
            _ => {}
        }
    }

    /// The board's rules over the agreed outcomes, in order: a committed
    /// claim takes an open task, a committed completion must come from the
    /// claimer of a task not yet done. Returns who completed what.
    fn check_rules(&mut self, agents: &Agents) -> Vec<usize> {
        let mut tasks: BTreeMap<u64, (AccountId, bool)> = BTreeMap::new();
        let mut done_by = vec![0; agents.keys.len()];
        let mut expected = Seq(1);
        for (seq, (_, batch, executions)) in &self.batches {
            if *seq != expected {
                self.violations.push(format!("no batch agreed at {expected}"));
                return done_by;
            }
            expected = seq.next();
            for (request, execution) in batch.requests.iter().zip(executions) {
                if *execution != Execution::Applied(TxOutcome::Committed) {
                    continue;
                }
                let agent = request.tx.from();
                let op = match &request.tx.tx.op {
                    Op::App(bytes) => BoardOp::decode(bytes),
                    _ => None,
                };
                let Some(op) = op else {
                    self.violations.push(format!("a request that is no board step committed at {seq}"));
                    continue;
                };
                let (BoardOp::Claim(task) | BoardOp::Complete(task)) = op;
                match (op, tasks.get_mut(&task)) {
                    _ if task >= agents.tasks => self.violations.push(format!("task {task} does not exist")),
                    (BoardOp::Claim(_), None) => {
                        tasks.insert(task, (agent, false));
                    }
                    (BoardOp::Claim(_), Some(_)) => self.violations.push(format!("task {task} claimed twice")),
                    (BoardOp::Complete(_), Some((claimer, done @ false))) if *claimer == agent => {
                        *done = true;
                        done_by[agents.index_of(&agent).unwrap_or(0)] += 1;
                    }
                    (BoardOp::Complete(_), None) => self.violations.push(format!("task {task} completed unclaimed")),
                    (BoardOp::Complete(_), Some((_, false))) => {
                        self.violations.push(format!("task {task} completed by another agent"))
                    }
                    (BoardOp::Complete(_), Some((_, true))) => {
                        self.violations.push(format!("task {task} completed after it was done"))
                    }
                }
            }
        }
        done_by
    }
}

pub fn run(seed: u64) -> TaskBoardReport {
    let mut rng = SeededRng::new(seed ^ 0x7A5C_B0A2D);
    let validators = [4, 5, 7][rng.below(3) as usize];
    let params = ProtocolParams {
        checkpoint_interval: 2,
        log_window: 2 * rng.between(2, 3),
        max_batch_size: rng.between(1, 3) as usize,
        batch_delay_us: rng.between(0, 2_000),
        max_in_flight_batches: rng.between(1, 3),
        retransmit_interval_us: 20_000,
        max_pending_requests: 1_000,
        outcome_retention_checkpoints: 2,
        view_change_timeout_us: rng.between(150_000, 400_000),
    };
    let lagging = rng.between(1, validators as u64 - 1) as usize;
    let faults = NetworkFaults {
        drop_probability: rng.below(20) as f64 / 100.0,
        duplicate_probability: rng.below(10) as f64 / 100.0,
        min_delay_us: 50,
        max_delay_us: rng.between(200, 3_000),
        faulty_until_us: rng.between(0, 300_000),
        partition: None,
        isolated: Some(lagging),
        slow: None,
    };
    let keys: Vec<Keypair> = (0..validators).map(|_| Keypair::from_seed(rng.bytes())).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let Ok(committee) = Committee::numbered(Epoch(0), &public_keys, "board-", None) else {
        panic!("{validators} validators make a valid committee");
    };
    let agents = Agents {
        keys: (0..=HONEST_AGENTS).map(|_| Keypair::from_seed(rng.bytes())).collect(),
        tasks: 3 * HONEST_AGENTS as u64 + 1,
    };
    let genesis = TaskBoard::with_tasks(agents.tasks);
    let mut nodes: Vec<Validator> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| Validator {
            replica: Replica::new(AgentId(i as u32), key.clone(), committee.clone(), params.clone(), genesis.clone()),
            verifier: Verifier::new(&committee, params.max_batch_size),
        })
        .collect();
    let workload = agents.workload();
    let steps = workload.len();
    let mut client = ClientCore::new(ClientId(0), committee.clone(), workload, rng.between(1, 4) as usize, 60_000);
    let mut network = Network::new(faults, rng.fork(0xB0A2D));
    // The Byzantine agent signs two different steps with one nonce and hands
    // each to half of the validators.
    let byzantine = HONEST_AGENTS;
    let twice = [agents.step(byzantine, BoardOp::Claim(3), 4), agents.step(byzantine, BoardOp::Claim(5), 4)];
    for i in 0..validators {
        let request = Request { client: ClientId(1), tx: twice[i % 2].clone() };
        network.send(Micros(0), Node::Operator, Node::Validator(i), Payload::Requests(vec![request]));
    }
    network.schedule_tick(Node::Client, Micros(0));
    for i in 0..validators {
        network.schedule_tick(Node::Validator(i), Micros(0));
    }
    let mut agreement = Agreement::default();
    let mut completed = 0;
    let mut done_at: Option<Micros> = None;
    let mut isolated = true;
    while let Some((now, node, payload)) = network.next_event() {
        let highest = nodes.iter().map(|v| v.replica.last_executed()).max().unwrap_or_default();
        let level = nodes.iter().all(|v| v.replica.last_executed() == highest);
        if now.0 > TIME_LIMIT_US || (level && done_at.is_some_and(|t| now.0 > t.0 + 300_000)) {
            break;
        }
        // Cut off until the others are three checkpoints past it: the log it
        // needs is collected by then, so only the board's snapshot helps.
        if isolated && highest.0 >= 3 * params.checkpoint_interval {
            network.end_isolation();
            isolated = false;
        }
        match node {
            Node::Client => {
                let input = match payload {
                    Payload::Reply(reply) => ClientInput::Reply(reply),
                    _ => ClientInput::Tick,
                };
                for output in client.step(now, input) {
                    match output {
                        ClientOutput::Broadcast(requests) => {
                            for i in 0..validators {
                                network.send(
                                    now,
                                    Node::Client,
                                    Node::Validator(i),
                                    Payload::Requests(requests.clone()),
                                );
                            }
                        }
                        ClientOutput::Completed(_) => completed += 1,
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
                let validator = &mut nodes[index];
                let input = match payload {
                    Payload::Tick => Some(Input::Tick),
                    Payload::Requests(requests) => {
                        Some(Input::Requests(validator.verifier.verify_requests(requests).0))
                    }
                    Payload::Consensus(_, message) => {
                        validator.verifier.verify_message(&message).is_ok().then_some(Input::Message(message))
                    }
                    _ => None,
                };
                let Some(input) = input else { continue };
                let me = AgentId(index as u32);
                for output in validator.replica.step(now, input) {
                    agreement.on_output(me, &output);
                    match output {
                        Output::Broadcast(message) => {
                            for peer in (0..validators).filter(|peer| *peer != index) {
                                let payload = Payload::Consensus(me, message.clone());
                                network.send(now, node, Node::Validator(peer), payload);
                            }
                        }
                        Output::SendTo(peer, message) => {
                            network.send(now, node, Node::Validator(peer.0 as usize), Payload::Consensus(me, message))
                        }
                        Output::Reply(reply) => network.send(now, node, Node::Client, Payload::Reply(reply)),
                        _ => {}
                    }
                }
                if let Some(deadline) = validator.replica.next_deadline() {
                    network.schedule_tick(node, deadline);
                }
            }
            Node::Operator => {}
        }
    }
    let done_by = agreement.check_rules(&agents);
    let mut violations = std::mem::take(&mut agreement.violations);
    if !client.is_done() {
        violations.push(format!("{} of {steps} steps got no outcome", steps - completed));
    }
    // Every replica ends on the state a fresh board reaches by executing the agreed batches.
    let mut reference = genesis;
    for (seq, (_, batch, _)) in &agreement.batches {
        reference.execute(*seq, &batch.requests);
    }
    for (index, validator) in nodes.iter().enumerate() {
        let replica = &validator.replica;
        if replica.app().digest() != reference.digest() {
            violations.push(format!("validator {index} ends on another board (executed {})", replica.last_executed()));
        }
    }
    TaskBoardReport {
        seed,
        validators,
        violations,
        steps,
        completed,
        highest_executed: nodes.iter().map(|v| v.replica.last_executed().0).max().unwrap_or(0),
        snapshots_installed: nodes[lagging].replica.stats().snapshots_installed,
        done_by,
    }
}
