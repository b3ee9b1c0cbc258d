//! A replica rebuilt from what its validator persisted ([`RecoveredState`]),
//! and the read-only views of its state that the validator persists.
//!
//! A restored replica holds, for every slot above its stable checkpoint, the
//! pre-prepare and the votes it signed before the crash: a conflicting
//! pre-prepare is then evidence, not a reason to vote again, and a vote it
//! already sent is never signed with other content. Executed batches are
//! executed again on the checkpoint's state, so the application, the outcomes
//! (for clients that retry) and the water marks are those of before the crash.

use super::{Changing, Replica, Slot, StableCheckpoint, StateAt};
use crate::app::Application;
use crate::crypto::Keypair;
use crate::ledger::TxOutcome;
use crate::protocol::committee::Committee;
use crate::protocol::message::{Batch, PreparedCertificate, SignedMessage};
use crate::protocol::params::ProtocolParams;
use crate::protocol::recovered::{slot_of, RecoveredState};
use crate::protocol::types::{AgentId, Micros, Seq};
use crate::protocol::Message;
use std::sync::Arc;

impl<A: Application> Replica<A> {
    /// The replica as it was when `state` was persisted: a founder of the
    /// first epoch, `committee` being that epoch's and `genesis` the state
    /// when `state` holds no stable checkpoint. See [`Replica::restored`].
    pub fn restore(
        me: AgentId,
        keypair: Keypair,
        committee: Committee,
        params: ProtocolParams,
        genesis: A,
        state: RecoveredState<A>,
        now: Micros,
    ) -> Replica<A> {
        Replica::new(me, keypair, committee, params, genesis).restored(state, now)
    }

    /// This new replica ([`Replica::new`] for a founder, [`Replica::joining`]
    /// for a validator that joined later) brought to where it was when `state`
    /// was persisted. The stable checkpoint's state replaces the genesis one,
    /// and its membership history says which epoch the replica is in — past
    /// a change due at that very checkpoint, as the replica was when it made
    /// the checkpoint stable. `now` starts the timer of a view change that
    /// was in progress, and its first progress check: a STATUS to its peers.
    pub fn restored(self, state: RecoveredState<A>, now: Micros) -> Replica<A> {
        let mut replica = self;
        let me = replica.me;
        if let Some(stable) = &state.stable {
            replica.app = (*stable.app).clone();
            replica.stable =
                StableCheckpoint { seq: stable.seq, state_digest: stable.state_digest, proof: stable.proof.clone() };
            let app_digest = stable.app.digest();
            let membership = stable.membership.clone();
            replica.stable_state = StateAt::new(stable.app.clone(), app_digest, membership);
            replica.last_executed = stable.seq;
            replica.adopt_membership(&stable.membership);
            // Silent: the epoch change went out before the crash.
            replica.switch_epoch_if_due(stable.seq, &mut Vec::new());
        }
        // A view of an epoch that ended (its NEW-VIEW says which) is left with
        // it: every epoch starts in view 0.
        let current = replica.committee.epoch();
        if state.new_view.as_ref().is_none_or(|new_view| new_view.epoch == current) {
            replica.view = state.view;
            replica.last_new_view = state.new_view.clone();
        }
        let last = state.last_executed();
        for (seq, batch) in state.executed.range(..=last) {
            replica.execute_again(*seq, batch);
        }
        replica.restore_slots(&state);
        for (seq, own) in state.checkpoints.range(replica.stable.seq.next()..) {
            if let Message::Checkpoint { state_digest, .. } = own.message {
                let entry = replica.checkpoints.entry(*seq).or_default();
                entry.own = Some(state_digest);
                entry.votes.insert(me, own.clone());
            }
        }
        if let Some(view_change) = state.view_change.filter(|vc| vc.sender == me && vc.epoch == current) {
            if let Message::ViewChange { new_view, .. } = view_change.message {
                if new_view > replica.view {
                    let deadline = now.plus(replica.params.view_change_timeout_us);
                    replica.changing = Some(Changing { target: new_view, deadline });
                    replica.view_changes.insert(me, view_change);
                }
            }
        }
        if let Some(passive) = state.passive {
            replica.resume_passive(passive);
        }
        replica.stall_since = Some(now);
        replica.now = now;
        // Its peers may have moved on while it was down, and what it was
        // voting on may wait for votes that only its peers' memory holds:
        // it asks them where they are at once, as a stuck replica does.
        replica.retransmit.next_check = Some(now);
        replica.retransmit.progress_mark = (replica.last_executed, replica.stable.seq);
        replica.retransmit.saw_ahead = true;
        replica
    }

    /// Executes a batch that was executed before the crash: the same ledger
    /// changes and remembered outcomes as the first time, no messages.
    fn execute_again(&mut self, seq: Seq, batch: &Arc<Batch>) {
        let mut ids = Vec::with_capacity(batch.requests.len());
        if let Some(change) = &batch.membership {
            // Scheduling again is silent: the outputs went out before the crash.
            self.execute_membership(seq, change, &mut Vec::new());
        }
        let executions = self.app.execute(seq, &batch.requests);
        for (request, execution) in batch.requests.iter().zip(executions) {
            let outcome = execution.outcome();
            match outcome {
                TxOutcome::Committed => self.stats.txs_committed += 1,
                TxOutcome::Rejected(_) => self.stats.txs_rejected += 1,
            }
            let id = request.tx_id();
            self.outcomes.insert(id, (request.client, outcome));
            ids.push(id);
        }
        self.outcomes_by_seq.push_back((seq, ids));
        self.last_executed = seq;
        self.stats.batches_executed += 1;
        if seq.0 % self.params.checkpoint_interval == 0 {
            let app_digest = self.app.digest();
            let app = Arc::new(self.app.clone());
            let membership = Arc::new(self.membership.clone());
            self.snapshots.insert(seq, StateAt::new(app, app_digest, membership));
        }
    }

    /// Puts back the pre-prepares and own votes of the current view, every
    /// prepared certificate, and the primary's next sequence number.
    fn restore_slots(&mut self, state: &RecoveredState<A>) {
        let (me, view) = (self.me, self.view);
        let mut highest_assigned = self.last_executed.max(self.stable.seq);
        for (seq, recovered) in state.slots.range(self.stable.seq.next()..) {
            let executed = state.executed.get(seq).map(|batch| batch.digest());
            let mut slot = Slot { certificate: recovered.certificate.clone(), executed, ..Slot::default() };
            let current = |signed: &Option<Arc<SignedMessage>>| {
                signed.clone().filter(|s| slot_of(s).is_some_and(|(v, ..)| v == view))
            };
            if let Some(pre_prepare) = current(&recovered.pre_prepare) {
                if let Message::PrePrepare { digest, ref batch, .. } = pre_prepare.message {
                    slot.digest = Some(digest);
                    slot.batch = Some(batch.clone());
                    if *seq > self.last_executed {
                        for request in &batch.requests {
                            self.ordered_ids.insert(request.tx_id());
                        }
                    }
                }
                slot.pre_prepare = Some(pre_prepare);
                highest_assigned = highest_assigned.max(*seq);
                if let Some(prepare) = current(&recovered.prepare) {
                    slot.prepares.insert(me, prepare);
                }
                if let Some(commit) = current(&recovered.commit) {
                    slot.commits.insert(me, commit);
                    slot.prepared = true;
                }
            }
            slot.committed = *seq <= self.last_executed;
            self.log.insert(*seq, slot);
        }
        self.next_seq = highest_assigned.next();
    }

    /// The pre-prepare this replica holds for `seq` in the current view.
    pub fn pre_prepare_at(&self, seq: Seq) -> Option<&Arc<SignedMessage>> {
        self.log.get(&seq)?.pre_prepare.as_ref()
    }

    /// The highest prepared certificate this replica holds for `seq`.
    pub fn certificate_at(&self, seq: Seq) -> Option<&PreparedCertificate> {
        self.log.get(&seq)?.certificate.as_ref()
    }

    /// The NEW-VIEW that started the current view.
    pub fn last_new_view(&self) -> Option<&Arc<SignedMessage>> {
        self.last_new_view.as_ref()
    }

    /// The application's state at the stable checkpoint.
    pub fn stable_app(&self) -> &Arc<A> {
        &self.stable_state.app
    }

    /// The membership history at the stable checkpoint.
    pub fn stable_membership(&self) -> &Arc<crate::protocol::MembershipState> {
        &self.stable_state.membership
    }
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
