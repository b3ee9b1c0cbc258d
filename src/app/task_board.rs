//! A second application behind the same interface as the ledger: a board of
//! numbered tasks that agents claim and complete. A task is claimed once;
//! only its claimer completes it. The simulation runs it under Byzantine
//! agents (see `sim::task_board`).
//!
//! A request is a signed [`Tx`] whose operation is the board's own
//! ([`BoardOp`], carried as [`Op::App`] bytes): `from` is the agent. Any other
//! operation is rejected as unsupported. Nonces give replay protection
//! exactly as the ledger's do.

use super::{merkle_root, Application, Chunk, Op, Refusal, RestoreError, Snapshot, Tx};
use crate::crypto::{Digest, PublicKey};
use crate::ledger::{AccountId, Execution, RejectReason, TxId, TxOutcome};
use crate::protocol::{Request, Seq};
use std::collections::BTreeMap;

/// Why the board refused a step ([`RejectReason::Refused`]'s code).
pub const NO_SUCH_TASK: u64 = 1;
pub const CLAIMED_BY_ANOTHER: u64 = 2;
pub const ALREADY_DONE: u64 = 3;
/// Completing a task nobody claimed.
pub const NOT_CLAIMED: u64 = 4;
/// Claiming a task one already holds.
pub const ALREADY_CLAIMED: u64 = 5;
/// App bytes that are not a [`BoardOp`].
pub const MALFORMED_OP: u64 = 6;

/// The board's operation: a tag byte (1 claim, 2 complete), then the task
/// number (8 bytes, little endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardOp {
    Claim(u64),
    Complete(u64),
}

impl BoardOp {
    pub fn encode(self) -> Vec<u8> {
        let (tag, task) = match self {
            BoardOp::Claim(task) => (1u8, task),
            BoardOp::Complete(task) => (2, task),
        };
        [&[tag][..], &task.to_le_bytes()].concat()
    }

    pub fn decode(bytes: &[u8]) -> Option<BoardOp> {
        let (&tag, task) = bytes.split_first()?;
        let task = u64::from_le_bytes(task.try_into().ok()?);
        match tag {
            1 => Some(BoardOp::Claim(task)),
            2 => Some(BoardOp::Complete(task)),
            _ => None,
        }
    }

    /// An id for `agent`'s step at `nonce` (`agent` numbers the agents of a
    /// run): unique per agent, nonce and step.
    pub fn step_id(self, agent: u8, nonce: u64) -> TxId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&nonce.to_le_bytes());
        id[8] = agent;
        id[9..].copy_from_slice(&self.encode()[..7]);
        TxId(id)
    }

    /// The unsigned transaction carrying this step.
    pub fn tx(self, id: TxId, agent: AccountId, nonce: u64) -> Tx {
        Tx { id, from: agent, nonce, op: Op::App(self.encode()) }
    }
}

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

    fn step(&mut self, agent: AccountId, op: &Op) -> TxOutcome {
        let refused = |code| TxOutcome::Rejected(RejectReason::Refused { code });
        let Op::App(bytes) = op else { return TxOutcome::Rejected(RejectReason::UnsupportedOp) };
        let Some(op) = BoardOp::decode(bytes) else { return refused(MALFORMED_OP) };
        let (BoardOp::Claim(task) | BoardOp::Complete(task)) = op;
        let Some(state) = self.tasks.get_mut(task as usize) else { return refused(NO_SUCH_TASK) };
        match (op, *state) {
            (BoardOp::Claim(_), TaskState::Open) => *state = TaskState::Claimed(agent),
            (BoardOp::Complete(_), TaskState::Claimed(claimer)) if claimer == agent => *state = TaskState::Done(agent),
            (BoardOp::Claim(_), TaskState::Claimed(claimer)) if claimer == agent => return refused(ALREADY_CLAIMED),
            (_, TaskState::Claimed(_)) => return refused(CLAIMED_BY_ANOTHER),
            (BoardOp::Complete(_), TaskState::Open) => return refused(NOT_CLAIMED),
            (_, TaskState::Done(_)) => return refused(ALREADY_DONE),
        }
        TxOutcome::Committed
    }

    fn apply(&mut self, request: &Request) -> Execution {
        let op = &request.tx.tx;
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
        let outcome = self.step(op.from, &op.op);
        self.agents.insert(op.from, Agent { next_nonce: op.nonce + 1, last: Some((digest, outcome)) });
        Execution::Applied(outcome)
    }
}

impl Application for TaskBoard {
    type ConflictKey = (AccountId, u64);

    fn check(&self, request: &Request) -> Result<(), Refusal> {
        let op = &request.tx.tx;
        let agent = self.agents.get(&op.from).copied().unwrap_or_default();
        if op.nonce >= agent.next_nonce {
            return Ok(());
        }
        match agent.last.is_some_and(|(digest, _)| digest == request.tx.digest() && op.nonce + 1 == agent.next_nonce) {
            true => Err(Refusal::Executed),
            false => Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::NonceConsumed { received: op.nonce }))),
        }
    }

    /// The board has no notion of time.
    fn execute(&mut self, _seq: Seq, requests: &[Request]) -> Vec<Execution> {
        requests.iter().map(|request| self.apply(request)).collect()
    }

    fn conflict_key(request: &Request) -> Option<(AccountId, u64)> {
        Some((request.tx.from(), request.tx.nonce()))
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
