//! A second application behind the same interface as the ledger: a board of
//! numbered tasks that agents claim and complete. A task is claimed once;
//! only its claimer completes it. The simulation runs it under Byzantine
//! agents (see `sim::task_board`).
//!
//! A request is the swarm's signed operation read the board's way:
//! `from` is the agent, `amount` the task number, and the operation is the
//! task's next step for that agent (claim an open task, complete one's own
//! claim). Nonces give replay protection exactly as the ledger's do.

use super::{merkle_root, Application, Chunk, Refusal, RestoreError, Snapshot};
use crate::crypto::{Digest, PublicKey};
use crate::ledger::{AccountId, Execution, RejectReason, TxOutcome};
use crate::protocol::Request;
use std::collections::BTreeMap;

/// Why the board refused a step ([`RejectReason::Refused`]'s code).
pub const NO_SUCH_TASK: u64 = 1;
pub const CLAIMED_BY_ANOTHER: u64 = 2;
pub const ALREADY_DONE: u64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Open,
    Claimed(AccountId),
    Done(AccountId),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Agent {
    next_nonce: u64,
    /// The digest of the request that consumed the last nonce, and its outcome.
    last: Option<(Digest, TxOutcome)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskBoard {
    tasks: Vec<TaskState>,
    agents: BTreeMap<AccountId, Agent>,
}

impl TaskBoard {
    pub fn with_tasks(count: u64) -> TaskBoard {
        TaskBoard { tasks: vec![TaskState::Open; count as usize], agents: BTreeMap::new() }
    }

    pub fn task(&self, task: u64) -> Option<TaskState> {
        self.tasks.get(task as usize).copied()
    }

    pub fn tasks(&self) -> &[TaskState] {
        &self.tasks
    }

    fn step(&mut self, agent: AccountId, task: u64) -> TxOutcome {
        let refused = |code| TxOutcome::Rejected(RejectReason::Refused { code });
        let Some(state) = self.tasks.get_mut(task as usize) else { return refused(NO_SUCH_TASK) };
        match *state {
            TaskState::Open => *state = TaskState::Claimed(agent),
            TaskState::Claimed(claimer) if claimer == agent => *state = TaskState::Done(agent),
            TaskState::Claimed(_) => return refused(CLAIMED_BY_ANOTHER),
            TaskState::Done(_) => return refused(ALREADY_DONE),
        }
        TxOutcome::Committed
    }

    fn apply(&mut self, request: &Request) -> Execution {
        let op = &request.tx.transfer;
        let digest = request.tx.digest();
        let agent = self.agents.get(&op.from).copied().unwrap_or_default();
        if let Some((last, outcome)) = agent.last {
            if last == digest && op.nonce + 1 == agent.next_nonce {
                return Execution::Replayed(outcome);
            }
        }
        if op.nonce != agent.next_nonce {
            let (expected, received) = (agent.next_nonce, op.nonce);
            let reason = match received < expected {
                true => RejectReason::NonceConsumed { received },
                false => RejectReason::WrongNonce { expected, received },
            };
            return Execution::Applied(TxOutcome::Rejected(reason));
        }
        let outcome = self.step(op.from, op.amount);
        self.agents.insert(op.from, Agent { next_nonce: op.nonce + 1, last: Some((digest, outcome)) });
        Execution::Applied(outcome)
    }
}

impl Application for TaskBoard {
    type ConflictKey = (AccountId, u64);

    fn check(&self, request: &Request) -> Result<(), Refusal> {
        let op = &request.tx.transfer;
        let agent = self.agents.get(&op.from).copied().unwrap_or_default();
        if op.nonce >= agent.next_nonce {
            return Ok(());
        }
        match agent.last.is_some_and(|(digest, _)| digest == request.tx.digest() && op.nonce + 1 == agent.next_nonce) {
            true => Err(Refusal::Executed),
            false => Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::NonceConsumed { received: op.nonce }))),
        }
    }

    fn execute(&mut self, requests: &[Request]) -> Vec<Execution> {
        requests.iter().map(|request| self.apply(request)).collect()
    }

    fn conflict_key(request: &Request) -> Option<(AccountId, u64)> {
        Some((request.tx.transfer.from, request.tx.transfer.nonce))
    }

    fn digest(&self) -> Digest {
        merkle_root(self.snapshot().chunks.iter().map(Chunk::hash))
    }

    /// Two chunks: the tasks, then the agents; postcard-encoded (the board is small).
    fn snapshot(&self) -> Snapshot {
        let tasks: Vec<(u8, Option<[u8; 32]>)> = self.tasks.iter().map(encode_task).collect();
        let agents: EncodedAgents = self
            .agents
            .iter()
            .map(|(id, agent)| {
                let last = agent.last.map(|(digest, outcome)| (digest.0, postcard_bytes(&outcome)));
                (id.0 .0, agent.next_nonce, last)
            })
            .collect();
        Snapshot { chunks: vec![Chunk(postcard_bytes(&tasks)), Chunk(postcard_bytes(&agents))] }
    }

    fn restore(snapshot: &Snapshot) -> Result<TaskBoard, RestoreError> {
        let fail = |chunk, reason| RestoreError { chunk, reason };
        let [tasks, agents] = snapshot.chunks.as_slice() else { return Err(fail(0, "a board has two chunks")) };
        let tasks: Vec<(u8, Option<[u8; 32]>)> = postcard::from_bytes(&tasks.0).map_err(|_| fail(0, "tasks"))?;
        let tasks = tasks.into_iter().map(decode_task).collect::<Option<Vec<_>>>().ok_or(fail(0, "bad task"))?;
        let agents: EncodedAgents = postcard::from_bytes(&agents.0).map_err(|_| fail(1, "agents"))?;
        let mut board = TaskBoard { tasks, agents: BTreeMap::new() };
        for (id, next_nonce, last) in agents {
            let last = match last {
                None => None,
                Some((digest, outcome)) => {
                    let outcome = postcard::from_bytes(&outcome).map_err(|_| fail(1, "outcome"))?;
                    Some((Digest(digest), outcome))
                }
            };
            board.agents.insert(AccountId(PublicKey(id)), Agent { next_nonce, last });
        }
        Ok(board)
    }

    /// A task number (8 bytes, little endian) → 0 open, 1 claimed, 2 done,
    /// then the agent's key; anything else → nothing.
    fn query(&self, query: &[u8]) -> Vec<u8> {
        let Ok(task) = <[u8; 8]>::try_from(query) else { return Vec::new() };
        match self.task(u64::from_le_bytes(task)).map(|state| encode_task(&state)) {
            None => Vec::new(),
            Some((tag, None)) => vec![tag],
            Some((tag, Some(agent))) => [&[tag][..], &agent].concat(),
        }
    }
}

/// Each agent's key, next nonce, and last step (its digest, its encoded outcome).
type EncodedAgents = Vec<([u8; 32], u64, Option<([u8; 32], Vec<u8>)>)>;

fn encode_task(state: &TaskState) -> (u8, Option<[u8; 32]>) {
    match state {
        TaskState::Open => (0, None),
        TaskState::Claimed(agent) => (1, Some(agent.0 .0)),
        TaskState::Done(agent) => (2, Some(agent.0 .0)),
    }
}

fn decode_task(encoded: (u8, Option<[u8; 32]>)) -> Option<TaskState> {
    match encoded {
        (0, None) => Some(TaskState::Open),
        (1, Some(agent)) => Some(TaskState::Claimed(AccountId(PublicKey(agent)))),
        (2, Some(agent)) => Some(TaskState::Done(AccountId(PublicKey(agent)))),
        _ => None,
    }
}

fn postcard_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain vectors, tuples and enums of this module: encoding cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}
