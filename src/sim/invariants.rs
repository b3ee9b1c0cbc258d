//! The safety invariants, checked on every output of every honest replica and
//! on every result the client accepts.

use crate::crypto::Digest;
use crate::ledger::{Execution, Ledger, TxId, TxOutcome};
use crate::protocol::{AgentId, Completion, Output, Replica};
use crate::workload::Workload;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest replicas executed different batches at one sequence number.
    Agreement { seq: u64, first: (AgentId, Digest), second: (AgentId, Digest) },
    /// Two honest replicas made different checkpoints stable at one sequence number.
    CheckpointMismatch { seq: u64, first: (AgentId, Digest), second: (AgentId, Digest) },
    /// A replica executed out of sequence order.
    OutOfOrder { replica: AgentId, expected: u64, executed: u64 },
    /// A transfer committed twice on one replica.
    DoubleExecution { replica: AgentId, tx: TxId },
    /// A transfer committed that its account owner never signed.
    Validity { replica: AgentId, tx: TxId },
    /// Balances no longer add up to the genesis supply.
    SupplyChanged { replica: AgentId, expected: u64, actual: u128 },
    /// The client accepted an outcome no honest replica produced.
    WrongOutcome { tx: TxId, accepted: TxOutcome, honest: Option<TxOutcome> },
    /// The network healed, yet not every transfer completed in time.
    Liveness { completed: usize, expected: usize },
    /// A replica went back to an earlier view.
    ViewWentBack { replica: AgentId, from: u64, to: u64 },
    /// An honest replica signed two different messages of one kind for one slot.
    Equivocation { replica: AgentId, kind: crate::protocol::MessageKind, view: u64, seq: u64 },
}

pub struct Invariants {
    byzantine: std::collections::BTreeSet<AgentId>,
    genuine: HashSet<Digest>,
    total_supply: u64,
    batches: BTreeMap<u64, (AgentId, Digest)>,
    checkpoints: BTreeMap<u64, (AgentId, Digest)>,
    last_executed: BTreeMap<AgentId, u64>,
    views: BTreeMap<AgentId, u64>,
    committed: BTreeMap<AgentId, HashSet<TxId>>,
    first_outcome: HashMap<TxId, TxOutcome>,
    violations: Vec<Violation>,
}

impl Invariants {
    pub fn new(workload: &Workload, genesis: &Ledger, byzantine: std::collections::BTreeSet<AgentId>) -> Invariants {
        Invariants {
            byzantine,
            genuine: workload.transfers.iter().map(|t| t.digest()).collect(),
            total_supply: genesis.total_supply(),
            batches: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            last_executed: BTreeMap::new(),
            views: BTreeMap::new(),
            committed: BTreeMap::new(),
            first_outcome: HashMap::new(),
            violations: Vec::new(),
        }
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    pub fn on_output(&mut self, replica: AgentId, output: &Output, state: &Replica) {
        if self.byzantine.contains(&replica) {
            return;
        }
        let view = state.view().0;
        let previous = self.views.insert(replica, view).unwrap_or(0);
        if view < previous {
            self.violations.push(Violation::ViewWentBack { replica, from: previous, to: view });
        }
        match output {
            Output::Executed(executed) => {
                let seq = executed.seq.0;
                let previous = self.last_executed.insert(replica, seq).unwrap_or(0);
                if seq != previous + 1 {
                    self.violations.push(Violation::OutOfOrder { replica, expected: previous + 1, executed: seq });
                }
                let first = *self.batches.entry(seq).or_insert((replica, executed.digest));
                if first.1 != executed.digest {
                    let second = (replica, executed.digest);
                    self.violations.push(Violation::Agreement { seq, first, second });
                }
                let committed = self.committed.entry(replica).or_default();
                for (request, execution) in executed.batch.requests.iter().zip(&executed.executions) {
                    let tx = request.tx_id();
                    self.first_outcome.entry(tx).or_insert(execution.outcome());
                    if *execution != Execution::Applied(TxOutcome::Committed) {
                        continue;
                    }
                    if !self.genuine.contains(&request.tx.digest()) {
                        self.violations.push(Violation::Validity { replica, tx });
                    }
                    if !committed.insert(tx) {
                        self.violations.push(Violation::DoubleExecution { replica, tx });
                    }
                }
                let actual = state.ledger().balance_sum();
                if actual != self.total_supply as u128 {
                    let expected = self.total_supply;
                    self.violations.push(Violation::SupplyChanged { replica, expected, actual });
                }
            }
            Output::CheckpointStable { seq, state_digest } => {
                // A state transfer moves a replica past batches it never executed.
                let last = self.last_executed.entry(replica).or_insert(0);
                *last = (*last).max(seq.0);
                let first = *self.checkpoints.entry(seq.0).or_insert((replica, *state_digest));
                if first.1 != *state_digest {
                    let second = (replica, *state_digest);
                    self.violations.push(Violation::CheckpointMismatch { seq: seq.0, first, second });
                }
            }
            _ => {}
        }
    }

    pub fn on_completion(&mut self, completion: &Completion) {
        let honest = self.first_outcome.get(&completion.tx_id).copied();
        if honest != Some(completion.outcome) {
            self.violations.push(Violation::WrongOutcome {
                tx: completion.tx_id,
                accepted: completion.outcome,
                honest,
            });
        }
    }
}
