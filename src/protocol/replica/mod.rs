//! The replica's state and its single entry point, [`Replica::step`].

mod amnesia;
mod checkpoint;
mod epoch;
mod normal;
mod restore;
#[cfg(test)]
pub(crate) mod tests;
mod view_change;

use super::committee::Committee;
use super::evidence::Evidence;
use super::membership::{checkpoint_digest, MembershipState, SignedMembershipChange};
use super::message::{Batch, Message, PreparedCertificate, Reply, Request, SignedMessage};
use super::params::ProtocolParams;
use super::types::{AgentId, ClientId, Micros, Seq, View};
use crate::app::SignedTx;
use crate::app::{Application, Snapshot};
use crate::crypto::{Digest, Keypair};
use crate::ledger::{Execution, Ledger, TxId, TxOutcome};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

pub enum Input {
    /// Client requests whose signatures the caller has verified.
    Requests(Vec<Request>),
    /// A consensus message whose signature (and, for a pre-prepare, batch) the caller has verified.
    Message(Arc<SignedMessage>),
    /// Time passed: fire whatever timers are due.
    Tick,
    /// An operator suspects the primary: move to the next view now.
    ForceViewChange,
    /// A membership change whose operator signature the caller has verified:
    /// the primary orders it, every replica holds it in case the primary does not.
    Membership(Arc<SignedMembershipChange>),
    /// A message signed in an epoch the caller's verifier does not know (its
    /// signature unchecked): this replica may have missed the end of its
    /// epoch, and with it every message it could verify. It asks its peers
    /// (STATUS) at its next progress check, as when it sees votes beyond its
    /// window; anyone can send this, so it costs at most that one STATUS.
    LaterEpochHeard(crate::protocol::Epoch),
}

/// What the caller must do after a step, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Broadcast(Arc<SignedMessage>),
    SendTo(AgentId, Arc<SignedMessage>),
    Reply(Arc<Reply>),
    /// A batch was executed on the application.
    Executed(Executed),
    /// 2f+1 replicas signed the same state digest at `seq`; the log below it is
    /// gone. `state_digest` covers the application's digest (`ledger_digest`, named
    /// for the first application) and the membership.
    CheckpointStable {
        seq: Seq,
        state_digest: Digest,
        ledger_digest: Digest,
    },
    Evidence(Evidence),
    /// Two signed transactions on one nonce of one signer: `executed` was
    /// ordered and consumed it, `conflicting` waited in this replica's queue
    /// (sent to other validators than `executed` was) and is dropped.
    DoubleSpend {
        executed: Box<SignedTx>,
        conflicting: Box<SignedTx>,
    },
    /// This replica suspects the primary of `from` and asks for view `to`;
    /// `requests_waited` when a request it holds waited a whole timeout
    /// unordered in `from` (a censoring primary, or a silent one).
    ViewChangeStarted {
        from: View,
        to: View,
        requests_waited: bool,
    },
    /// A NEW-VIEW was installed: `view` runs with `primary`, after the
    /// VIEW-CHANGEs of `triggered_by`; `recovered` transfers in prepared
    /// batches kept their sequence numbers.
    ViewChanged {
        view: View,
        primary: AgentId,
        triggered_by: Vec<AgentId>,
        recovered: usize,
    },
    /// A membership change executed at `executed_at`; the swarm moves to
    /// `committee` when the checkpoint at `at` is stable. The caller's
    /// verifier should know `committee` from now on.
    EpochScheduled {
        executed_at: Seq,
        at: Seq,
        committee: Committee,
    },
    /// An ordered membership change that could not apply (it is a no-op everywhere).
    MembershipRefused {
        seq: Seq,
        reason: String,
    },
    /// This replica now runs in `committee`'s epoch; when it is no longer a
    /// member it stops taking part.
    EpochChanged {
        committee: Committee,
        member: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    pub seq: Seq,
    pub view: View,
    pub digest: Digest,
    pub batch: Arc<Batch>,
    /// One per request of the batch, in order.
    pub executions: Vec<Execution>,
}

/// Counters of everything the replica did or refused. Nothing is dropped silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaStats {
    pub requests_queued: u64,
    pub requests_dropped_queue_full: u64,
    pub requests_answered_again: u64,
    pub batches_proposed: u64,
    pub batches_executed: u64,
    pub txs_committed: u64,
    pub txs_rejected: u64,
    /// Transfers ordered again after they executed: answered with their first outcome, nothing changed.
    pub txs_replayed: u64,
    pub checkpoints_stable: u64,
    pub dropped_duplicate: u64,
    pub dropped_stale: u64,
    pub dropped_out_of_window: u64,
    pub dropped_wrong_view: u64,
    pub dropped_not_from_primary: u64,
    pub dropped_malformed: u64,
    pub status_sent: u64,
    pub status_answered: u64,
    pub status_rate_limited: u64,
    pub evidence_found: u64,
    /// Queued transfers whose nonce another transfer consumed: never ordered.
    pub double_spends_dropped: u64,
    pub checkpoint_disagreements: u64,
    pub snapshots_sent: u64,
    pub snapshots_installed: u64,
    pub dropped_view_changing: u64,
    pub view_changes_started: u64,
    pub views_installed: u64,
    pub dropped_wrong_epoch: u64,
    pub membership_changes_applied: u64,
    pub membership_changes_refused: u64,
    /// NEW-VIEW pre-prepares for a sequence number this replica executed
    /// with another batch: never prepared.
    pub dropped_conflicts_executed: u64,
    /// Passive after a lost log: times the bound past its old signatures was learned.
    pub passive_bound_learned: u64,
    /// Votes not signed because this replica may have signed that slot before its log was lost.
    pub votes_withheld_passive: u64,
}

/// One sequence number's pre-prepare and votes in the current view.
#[derive(Default)]
struct Slot {
    pre_prepare: Option<Arc<SignedMessage>>,
    digest: Option<Digest>,
    batch: Option<Arc<Batch>>,
    prepares: BTreeMap<AgentId, Arc<SignedMessage>>,
    commits: BTreeMap<AgentId, Arc<SignedMessage>>,
    prepared: bool,
    committed: bool,
    /// The highest-view prepared certificate of this slot; survives view changes.
    certificate: Option<PreparedCertificate>,
    /// The digest of the batch executed here; survives view changes, so no
    /// later view makes this replica prepare another batch at this slot.
    executed: Option<Digest>,
}

impl Slot {
    /// Forgets what belongs to the view being left; keeps the certificate
    /// and what was executed.
    fn reset_view(&mut self) {
        let (certificate, executed) = (self.certificate.take(), self.executed);
        *self = Slot { certificate, executed, ..Slot::default() };
    }
}

/// A view change in progress: waiting for the NEW-VIEW of `target` until `deadline`.
#[derive(Clone, Copy, Debug)]
struct Changing {
    target: View,
    deadline: Micros,
}

struct Queued {
    request: Request,
    arrived: Micros,
}

#[derive(Default)]
struct CheckpointVotes {
    own: Option<Digest>,
    votes: BTreeMap<AgentId, Arc<SignedMessage>>,
}

/// The replicated state at a checkpoint: what a peer that fell behind is sent.
#[derive(Clone, Debug)]
struct StateAt<A> {
    app: Arc<A>,
    app_digest: Digest,
    membership: Arc<MembershipState>,
    /// The application's chunks, encoded the first time a peer needs them.
    chunks: OnceLock<Arc<Snapshot>>,
}

impl<A: Application> StateAt<A> {
    fn new(app: Arc<A>, app_digest: Digest, membership: Arc<MembershipState>) -> StateAt<A> {
        StateAt { app, app_digest, membership, chunks: OnceLock::new() }
    }

    fn chunks(&self) -> Arc<Snapshot> {
        self.chunks.get_or_init(|| Arc::new(self.app.snapshot())).clone()
    }
}

/// The last stable checkpoint and the 2f+1 signed messages that prove it.
#[derive(Clone, Debug)]
pub struct StableCheckpoint {
    pub seq: Seq,
    pub state_digest: Digest,
    pub proof: Vec<Arc<SignedMessage>>,
}

#[derive(Default)]
struct Retransmit {
    next_check: Option<Micros>,
    progress_mark: (Seq, Seq),
    /// Saw a vote beyond its window, or a message of a later epoch: it may be behind.
    saw_ahead: bool,
    /// Consecutive checks without progress; the resend interval doubles with each, up to 16x.
    idle_checks: u32,
    answered_at: BTreeMap<AgentId, Micros>,
}

/// One validator's PBFT state machine over the application `A` it replicates.
pub struct Replica<A: Application = Ledger> {
    me: AgentId,
    keypair: Keypair,
    committee: Committee,
    /// The committee of the first epoch: the root from which the membership
    /// history in a snapshot is checked.
    genesis_committee: Committee,
    params: ProtocolParams,
    view: View,
    app: A,
    membership: MembershipState,
    /// A change from the operator not yet ordered, and whether a pre-prepare carries it.
    pending_change: Option<Arc<SignedMembershipChange>>,
    pending_change_ordered: bool,
    /// Messages of the next epoch that arrived before the switch (bounded).
    next_epoch_messages: Vec<Arc<SignedMessage>>,
    /// Removed from the committee: takes no further part.
    retired: bool,
    /// The time of the step in progress (time only enters as the step's input).
    now: Micros,
    log: BTreeMap<Seq, Slot>,
    checkpoints: BTreeMap<Seq, CheckpointVotes>,
    stable: StableCheckpoint,
    /// The state at the stable checkpoint, sent to peers that fell behind it.
    stable_state: StateAt<A>,
    /// Own states at checkpoints not yet stable.
    snapshots: BTreeMap<Seq, StateAt<A>>,
    last_executed: Seq,
    /// The primary's next sequence number to assign.
    next_seq: Seq,
    /// Requests waiting to be proposed, oldest first. Every replica keeps them
    /// (clients send to all), so a new primary can order them after a view change.
    queue: VecDeque<Queued>,
    /// Ids of the requests in `queue` still to be proposed; entries of the queue
    /// not in this set were ordered meanwhile and are skipped.
    queued_ids: HashSet<TxId>,
    /// The queued request holding each conflict key (the ledger's: account and
    /// nonce); entries whose request left the queue are dropped lazily. Finds
    /// the other half of a double spend.
    queued_spends: HashMap<A::ConflictKey, TxId>,
    /// Further queued requests spending an (account, nonce) already in
    /// `queued_spends`: the rare second half of a double spend that reached
    /// this replica too, so whichever half executes drops the other.
    queued_spend_rivals: HashMap<A::ConflictKey, Vec<TxId>>,
    /// Set while a view change starts because a queued request waited a timeout.
    requests_waited: bool,
    /// Ids of requests in an accepted pre-prepare, not yet executed.
    ordered_ids: HashSet<TxId>,
    /// Recent outcomes, to answer a client that did not get f+1 replies.
    outcomes: HashMap<TxId, (ClientId, TxOutcome)>,
    outcomes_by_seq: VecDeque<(Seq, Vec<TxId>)>,
    retransmit: Retransmit,
    changing: Option<Changing>,
    /// Each validator's latest VIEW-CHANGE (own included).
    view_changes: BTreeMap<AgentId, Arc<SignedMessage>>,
    /// The NEW-VIEW that started the current view, for peers that missed it.
    last_new_view: Option<Arc<SignedMessage>>,
    /// Views installed since execution last progressed; each doubles the stall timeout.
    failed_views: u32,
    /// Since when there has been work outstanding without execution progress.
    stall_since: Option<Micros>,
    /// Set when the record of what this replica signed was lost: it stays passive.
    amnesia: Option<amnesia::Amnesia>,
    stats: ReplicaStats,
}

impl<A: Application> Replica<A> {
    pub fn new(me: AgentId, keypair: Keypair, committee: Committee, params: ProtocolParams, genesis: A) -> Replica<A> {
        let membership = MembershipState::default();
        let app_digest = genesis.digest();
        let genesis_digest = checkpoint_digest(app_digest, &membership);
        Replica {
            me,
            keypair,
            genesis_committee: committee.clone(),
            committee,
            params,
            view: View(0),
            app: genesis.clone(),
            membership: membership.clone(),
            pending_change: None,
            pending_change_ordered: false,
            next_epoch_messages: Vec::new(),
            retired: false,
            now: Micros(0),
            log: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            stable: StableCheckpoint { seq: Seq(0), state_digest: genesis_digest, proof: Vec::new() },
            stable_state: StateAt::new(Arc::new(genesis), app_digest, Arc::new(membership)),
            snapshots: BTreeMap::new(),
            last_executed: Seq(0),
            next_seq: Seq(1),
            queue: VecDeque::new(),
            queued_ids: HashSet::new(),
            queued_spends: HashMap::new(),
            queued_spend_rivals: HashMap::new(),
            requests_waited: false,
            ordered_ids: HashSet::new(),
            outcomes: HashMap::new(),
            outcomes_by_seq: VecDeque::new(),
            retransmit: Retransmit::default(),
            changing: None,
            view_changes: BTreeMap::new(),
            last_new_view: None,
            failed_views: 0,
            stall_since: None,
            amnesia: None,
            stats: ReplicaStats::default(),
        }
    }

    /// A validator that joins in a later epoch: `committee` is the epoch it
    /// joins, `genesis_committee` the first one. It catches up by state transfer.
    pub fn joining(
        me: AgentId,
        keypair: Keypair,
        genesis_committee: Committee,
        committee: Committee,
        params: ProtocolParams,
        genesis: A,
    ) -> Replica<A> {
        let mut replica = Replica::new(me, keypair, committee, params, genesis);
        replica.genesis_committee = genesis_committee;
        replica
    }

    pub fn step(&mut self, now: Micros, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.now = now;
        if self.retired {
            return out;
        }
        let executed_before = self.last_executed;
        match input {
            Input::Requests(requests) => self.on_requests(now, requests, &mut out),
            Input::Message(message) => self.on_message(now, message, &mut out),
            Input::Tick => {}
            Input::ForceViewChange => {
                let target = self.changing.map_or(self.view, |changing| changing.target).next();
                self.start_view_change(target, now, &mut out);
            }
            Input::Membership(change) => self.on_membership_change(change, &mut out),
            Input::LaterEpochHeard(epoch) => {
                if epoch > self.committee.epoch() {
                    self.retransmit.saw_ahead = true;
                }
            }
        }
        self.propose_batches(now, &mut out);
        if self.last_executed != executed_before {
            self.stall_since = Some(now);
            self.failed_views = 0;
        }
        self.check_view_timers(now, &mut out);
        self.check_progress(now, &mut out);
        self.leave_amnesia_if_past();
        out
    }

    /// When the caller should tick next if nothing arrives before.
    pub fn next_deadline(&self) -> Option<Micros> {
        if self.retired {
            return None;
        }
        let batch_deadline = self
            .queue
            .front()
            .filter(|_| self.is_primary() && self.may_propose())
            .map(|front| front.arrived.plus(self.params.batch_delay_us));
        [batch_deadline, self.retransmit.next_check, self.view_deadline()].into_iter().flatten().min()
    }

    fn on_message(&mut self, now: Micros, signed: Arc<SignedMessage>, out: &mut Vec<Output>) {
        self.observe_for_amnesia(&signed);
        if signed.sender == self.me {
            self.stats.dropped_duplicate += 1;
            return;
        }
        if signed.epoch != self.committee.epoch() && !self.admit_other_epoch(&signed) {
            return;
        }
        match signed.message {
            Message::PrePrepare { view, seq, digest, ref batch } => {
                let batch = batch.clone();
                self.on_pre_prepare(signed.clone(), view, seq, digest, batch, out)
            }
            Message::Prepare { view, seq, digest } => {
                self.on_vote(Vote::Prepare, signed.clone(), view, seq, digest, out)
            }
            Message::Commit { view, seq, digest } => self.on_vote(Vote::Commit, signed.clone(), view, seq, digest, out),
            Message::Checkpoint { seq, state_digest } => self.on_checkpoint(signed.clone(), seq, state_digest, out),
            Message::Status { view, last_executed, low_water, .. } => {
                self.on_status(now, signed.sender, view, low_water, last_executed, out)
            }
            Message::StateSnapshot { seq, state_digest, ref state, ref membership, ref proof } => {
                let (state, membership, proof) = (state.clone(), membership.clone(), proof.clone());
                self.on_state_snapshot(seq, state_digest, state, membership, proof, out)
            }
            Message::ViewChange { new_view, .. } => self.on_view_change(signed.clone(), new_view, now, out),
            Message::NewView { view, ref view_changes, ref pre_prepares } => {
                let (view_changes, pre_prepares) = (view_changes.clone(), pre_prepares.clone());
                self.on_new_view(signed.clone(), view, &view_changes, pre_prepares, now, out)
            }
        }
    }

    fn sign(&self, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, self.committee.epoch(), self.me, &self.keypair))
    }

    fn report(&mut self, evidence: Evidence, out: &mut Vec<Output>) {
        self.stats.evidence_found += 1;
        out.push(Output::Evidence(evidence));
    }

    /// Counts a duplicate, reports a conflict; true when the vote is new.
    fn accept(&mut self, recorded: Recorded, out: &mut Vec<Output>) -> bool {
        match recorded {
            Recorded::New => true,
            Recorded::Duplicate => {
                self.stats.dropped_duplicate += 1;
                false
            }
            Recorded::Conflict(evidence) => {
                self.report(evidence, out);
                false
            }
        }
    }

    pub fn id(&self) -> AgentId {
        self.me
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn primary(&self) -> AgentId {
        self.committee.primary(self.view)
    }

    pub fn is_primary(&self) -> bool {
        self.primary() == self.me
    }

    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    pub fn params(&self) -> &ProtocolParams {
        &self.params
    }

    /// The application's state after the last executed batch.
    pub fn app(&self) -> &A {
        &self.app
    }

    pub fn last_executed(&self) -> Seq {
        self.last_executed
    }

    pub fn stable_checkpoint(&self) -> &StableCheckpoint {
        &self.stable
    }

    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    pub fn membership(&self) -> &MembershipState {
        &self.membership
    }

    /// Removed from the committee by a membership change.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    pub fn queued_requests(&self) -> usize {
        self.queued_ids.len()
    }

    /// The view being changed to, while a view change is in progress.
    pub fn changing_to(&self) -> Option<View> {
        self.changing.map(|changing| changing.target)
    }

    /// Sequence numbers with log state (bounded by the log window).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Sequence numbers above the last executed one that hold a batch or a
    /// prepared certificate: work that may still execute (after a restart,
    /// what was in flight when the process died). A slot a view change
    /// emptied does not count.
    pub fn slots_in_flight(&self) -> usize {
        let unfinished = |slot: &&Slot| slot.batch.is_some() || slot.certificate.is_some();
        self.log.range(self.last_executed.next()..).map(|(_, slot)| slot).filter(unfinished).count()
    }
}

impl Replica<Ledger> {
    /// The transfer ledger after the last executed batch.
    pub fn ledger(&self) -> &Ledger {
        &self.app
    }
}

impl Replica<crate::app::SwarmApp> {
    /// The transfer ledger after the last executed batch (the built-in application's).
    pub fn ledger(&self) -> &Ledger {
        self.app.ledger()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Vote {
    Prepare,
    Commit,
}

enum Recorded {
    New,
    Duplicate,
    /// The sender already voted for another digest in this slot: equivocation.
    Conflict(Evidence),
}

/// Records `signed` as its sender's vote for `digest`, keeping the first vote
/// of each sender.
fn record_vote(
    votes: &mut BTreeMap<AgentId, Arc<SignedMessage>>,
    signed: Arc<SignedMessage>,
    digest: Digest,
) -> Recorded {
    match votes.get(&signed.sender) {
        None => {
            votes.insert(signed.sender, signed);
            Recorded::New
        }
        Some(existing) if vote_digest(existing) == Some(digest) => Recorded::Duplicate,
        Some(existing) => Recorded::Conflict(Evidence::Equivocation { first: existing.clone(), second: signed }),
    }
}

/// The digest a prepare, commit or pre-prepare votes for.
fn vote_digest(signed: &SignedMessage) -> Option<Digest> {
    match signed.message {
        Message::PrePrepare { digest, .. } | Message::Prepare { digest, .. } | Message::Commit { digest, .. } => {
            Some(digest)
        }
        Message::Checkpoint { state_digest, .. } => Some(state_digest),
        Message::Status { .. }
        | Message::StateSnapshot { .. }
        | Message::ViewChange { .. }
        | Message::NewView { .. } => None,
    }
}
