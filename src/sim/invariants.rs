//! The safety invariants, checked on every output of every honest replica and
//! on every result the client accepts.

use crate::crypto::Digest;
use crate::ledger::{Execution, Ledger, TxId, TxOutcome};
use crate::protocol::{AgentId, Completion, Message, Output, Replica};
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
    /// A replica went back to an earlier view (of its epoch, or to an earlier epoch).
    ViewWentBack { replica: AgentId, from: u64, to: u64 },
    /// An honest replica voted, in a later view, for another batch at a
    /// sequence number whose batch already executed: a view change lost a
    /// committed batch.
    CommittedBatchReplaced { replica: AgentId, seq: u64, view: u64, executed: Digest, voted: Digest },
    /// The detector convicted an agent that is not Byzantine in this run.
    FalseConviction { agent: AgentId, fault_type: String },
    /// A replica's stable checkpoint moved backwards.
    CheckpointWentBack { replica: AgentId, from: u64, to: u64 },
    /// Two honest replicas moved to different committees for one epoch.
    CommitteeMismatch { epoch: u64, first: AgentId, second: AgentId },
    /// A committee that cannot tolerate a fault or has no working quorum.
    CommitteeBelowQuorum { epoch: u64, n: usize, f: usize },
    /// The operator's membership changes did not all take effect.
    ReconfigurationIncomplete { reached: u64, planned: usize },
    /// A validator left behind never caught up after it could hear again.
    NeverCaughtUp { replica: AgentId, executed: u64, highest: u64 },
    /// An honest replica was handed two conflicting signed messages of `signer`
    /// for one slot (see [`super::delivered`]), yet `signer` stayed free two views on.
    EquivocationNotConvicted { signer: AgentId, receiver: AgentId, view: u64, seq: u64 },
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
    /// Each replica's (epoch, view).
    views: BTreeMap<AgentId, (u64, u64)>,
    stable: BTreeMap<AgentId, u64>,
    /// (epoch, seq) -> the batch honest replicas executed there, and the view it committed in.
    executed: HashMap<(u64, u64), (Digest, u64)>,
    committees: BTreeMap<u64, (AgentId, crate::protocol::Committee)>,
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
            stable: BTreeMap::new(),
            executed: HashMap::new(),
            committees: BTreeMap::new(),
            committed: BTreeMap::new(),
            first_outcome: HashMap::new(),
            violations: Vec::new(),
        }
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    /// `replica` lost its log and starts again from genesis: its own history
    /// (what it executed, its view, its checkpoint) begins anew; what every
    /// replica executed at each sequence number still binds it.
    pub fn lost_its_state(&mut self, replica: AgentId) {
        self.last_executed.remove(&replica);
        self.views.remove(&replica);
        self.stable.remove(&replica);
        self.committed.remove(&replica);
    }

    pub fn on_output(&mut self, replica: AgentId, output: &Output, state: &Replica) {
        if self.byzantine.contains(&replica) {
            return;
        }
        // Views count within an epoch (each starts in view 0): the pair never goes back.
        let position = (state.committee().epoch().0, state.view().0);
        let previous = self.views.insert(replica, position).unwrap_or_default();
        if position < previous {
            let (from, to) = (previous.1, position.1);
            self.violations.push(Violation::ViewWentBack { replica, from, to });
        }
        match output {
            Output::Broadcast(signed) => {
                if let Message::Prepare { view, seq, digest } | Message::Commit { view, seq, digest } = signed.message {
                    // In the view it committed in, an equivocating primary may still
                    // get an honest vote for its other batch; in a later view, never.
                    let executed = self.executed.get(&(signed.epoch.0, seq.0)).copied();
                    let replaced = executed.filter(|(executed, in_view)| *executed != digest && view.0 > *in_view);
                    if let Some((executed, _)) = replaced {
                        let (seq, view) = (seq.0, view.0);
                        let violation =
                            Violation::CommittedBatchReplaced { replica, seq, view, executed, voted: digest };
                        self.violations.push(violation);
                    }
                }
            }
            Output::Executed(executed) => {
                let seq = executed.seq.0;
                let key = (state.committee().epoch().0, seq);
                let in_view = self.executed.get(&key).map_or(executed.view.0, |(_, view)| (*view).min(executed.view.0));
                self.executed.insert(key, (executed.digest, in_view));
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
                    // The workload's, or an agent's spend of its own account (a double spender's).
                    if !self.genuine.contains(&request.tx.digest()) && !request.tx.verify() {
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
            Output::CheckpointStable { seq, state_digest, .. } => {
                // A state transfer moves a replica past batches it never executed.
                let last = self.last_executed.entry(replica).or_insert(0);
                *last = (*last).max(seq.0);
                let previous = self.stable.insert(replica, seq.0).unwrap_or(0);
                if seq.0 < previous {
                    self.violations.push(Violation::CheckpointWentBack { replica, from: previous, to: seq.0 });
                }
                let first = *self.checkpoints.entry(seq.0).or_insert((replica, *state_digest));
                if first.1 != *state_digest {
                    let second = (replica, *state_digest);
                    self.violations.push(Violation::CheckpointMismatch { seq: seq.0, first, second });
                }
            }
            Output::EpochChanged { committee, .. } => {
                let epoch = committee.epoch().0;
                let (n, f) = (committee.n(), committee.f());
                if f == 0 || n < 3 * f + 1 || committee.quorum() > n - f {
                    self.violations.push(Violation::CommitteeBelowQuorum { epoch, n, f });
                }
                let (first, known) = self.committees.entry(epoch).or_insert((replica, committee.clone()));
                if known != committee {
                    let first = *first;
                    self.violations.push(Violation::CommitteeMismatch { epoch, first, second: replica });
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
