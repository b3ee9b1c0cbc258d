//! The simulation's second application: the same replica, verifier and client
//! running the [`TaskBoard`] instead of the ledger (through
//! [`super::app_run`], which checks agreement on every batch and on the
//! board's digest, with one validator catching up by the board's chunks),
//! and a Byzantine agent that steals claims, completes other agents' tasks
//! and signs two steps with one nonce.
//!
//! On top, the board's own rules, read from the agreed outcomes (not from
//! the board's code): a task is claimed once, only its claimer completes it.

use super::app_run::{self, AppScenario, Setting};
use crate::app::task_board::{BoardOp, TaskBoard};
use crate::app::{Op, SignedTx};
use crate::crypto::{Digest, Keypair};
use crate::ledger::{AccountId, Execution, TxOutcome};
use crate::protocol::{Batch, ClientId, Request, Seq};
use crate::rng::SeededRng;
use std::collections::BTreeMap;
use std::sync::Arc;

const HONEST_AGENTS: usize = 4;

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
        op.tx(op.step_id(agent as u8, nonce), AccountId(key.public_key()), nonce).sign(key)
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

/// The board's rules over the agreed outcomes, in order: a committed
/// claim takes an open task, a committed completion must come from the
/// claimer of a task not yet done. Returns who completed what.
fn check_rules(
    batches: &BTreeMap<Seq, (Digest, Arc<Batch>, Vec<Execution>)>,
    agents: &Agents,
    violations: &mut Vec<String>,
) -> Vec<usize> {
    let mut tasks: BTreeMap<u64, (AccountId, bool)> = BTreeMap::new();
    let mut done_by = vec![0; agents.keys.len()];
    for (seq, (_, batch, executions)) in batches {
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
                violations.push(format!("a request that is no board step committed at {seq}"));
                continue;
            };
            let (BoardOp::Claim(task) | BoardOp::Complete(task)) = op;
            match (op, tasks.get_mut(&task)) {
                _ if task >= agents.tasks => violations.push(format!("task {task} does not exist")),
                (BoardOp::Claim(_), None) => {
                    tasks.insert(task, (agent, false));
                }
                (BoardOp::Claim(_), Some(_)) => violations.push(format!("task {task} claimed twice")),
                (BoardOp::Complete(_), Some((claimer, done @ false))) if *claimer == agent => {
                    *done = true;
                    done_by[agents.index_of(&agent).unwrap_or(0)] += 1;
                }
                (BoardOp::Complete(_), None) => violations.push(format!("task {task} completed unclaimed")),
                (BoardOp::Complete(_), Some((_, false))) => {
                    violations.push(format!("task {task} completed by another agent"))
                }
                (BoardOp::Complete(_), Some((_, true))) => {
                    violations.push(format!("task {task} completed after it was done"))
                }
            }
        }
    }
    done_by
}

pub fn run(seed: u64) -> TaskBoardReport {
    let mut rng = SeededRng::new(seed ^ 0x7A5C_B0A2D);
    let setting = Setting::draw(&mut rng);
    let validators = setting.keys.len();
    let agents = Agents {
        keys: (0..=HONEST_AGENTS).map(|_| Keypair::from_seed(rng.bytes())).collect(),
        tasks: 3 * HONEST_AGENTS as u64 + 1,
    };
    // The Byzantine agent signs two different steps with one nonce and hands
    // each to half of the validators.
    let byzantine = HONEST_AGENTS;
    let twice = [agents.step(byzantine, BoardOp::Claim(3), 4), agents.step(byzantine, BoardOp::Claim(5), 4)];
    let injected = (0..validators).map(|i| (i, Request { client: ClientId(1), tx: twice[i % 2].clone() })).collect();
    let scenario = AppScenario {
        setting,
        genesis: TaskBoard::with_tasks(agents.tasks),
        workload: agents.workload(),
        window: rng.between(1, 4) as usize,
        injected,
        later: None,
    };
    let mut run = app_run::run(scenario, rng);
    let done_by = check_rules(&run.batches, &agents, &mut run.violations);
    TaskBoardReport {
        seed,
        validators,
        highest_executed: run.highest_executed().0,
        violations: run.violations,
        steps: run.steps,
        completed: run.completed,
        snapshots_installed: run.snapshots_installed,
        done_by,
    }
}
