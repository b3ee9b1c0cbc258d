//! Membership epochs in the replica: holding the operator's change until it is
//! ordered, scheduling it when it executes, and switching committee when the
//! checkpoint at the boundary is stable.
//!
//! Why at a stable checkpoint: every replica switches after the same prefix of
//! the log, below which the old committee's proof covers the state (so a
//! replica that fell behind can still verify it), and above which nothing of
//! the old epoch is ever executed. Batches the old primary had pipelined past
//! the boundary are dropped and their requests queued again for the new one.

use super::{Output, Queued, Replica};
use crate::app::Application;
use crate::protocol::committee::Committee;
use crate::protocol::membership::{MembershipError, SignedMembershipChange};
use crate::protocol::message::{Batch, Message, SignedMessage};
use crate::protocol::types::{Seq, View};
use std::sync::Arc;

/// Most messages of the next epoch held while this replica has not switched yet.
const MAX_NEXT_EPOCH_MESSAGES: usize = 4096;

impl<A: Application> Replica<A> {
    pub(super) fn on_membership_change(&mut self, change: Arc<SignedMembershipChange>, _out: &mut Vec<Output>) {
        let digest = change.digest();
        let known = self.pending_change.as_ref().is_some_and(|pending| pending.digest() == digest)
            || self.membership.applied.iter().any(|applied| applied.digest() == digest);
        if known {
            self.stats.dropped_duplicate += 1;
        } else if change.change.from_epoch != self.committee.epoch() || self.membership.scheduled.is_some() {
            self.stats.dropped_stale += 1;
        } else {
            self.pending_change = Some(change);
            self.pending_change_ordered = false;
        }
    }

    /// The change the primary should put in its next batch, if any.
    pub(super) fn change_to_propose(&self) -> Option<Arc<SignedMembershipChange>> {
        self.pending_change.clone().filter(|_| !self.pending_change_ordered && self.membership.scheduled.is_none())
    }

    /// Whether sequence number `seq` lies past a scheduled switch: the old
    /// epoch neither assigns nor executes it.
    pub(super) fn beyond_epoch_boundary(&self, seq: Seq) -> bool {
        self.membership.scheduled.as_ref().is_some_and(|(at, _)| seq > *at)
    }

    /// Notes that an accepted pre-prepare carries the pending change.
    pub(super) fn note_ordered_change(&mut self, batch: &Batch) {
        if let (Some(pending), Some(ordered)) = (&self.pending_change, &batch.membership) {
            if pending.digest() == ordered.digest() {
                self.pending_change_ordered = true;
            }
        }
    }

    /// After a view change: the pending change counts as ordered only if a
    /// batch of the new view still carries it.
    pub(super) fn refresh_change_ordered(&mut self) {
        let Some(pending) = self.pending_change.as_ref().map(|change| change.digest()) else { return };
        self.pending_change_ordered = self.log.range(self.last_executed.next()..).any(|(_, slot)| {
            slot.batch.as_ref().and_then(|batch| batch.membership.as_ref()).is_some_and(|c| c.digest() == pending)
        });
    }

    /// Executes an ordered change: schedules it for the next checkpoint
    /// boundary, or refuses it (the same way on every replica).
    pub(super) fn execute_membership(&mut self, seq: Seq, change: &Arc<SignedMembershipChange>, out: &mut Vec<Output>) {
        if self.pending_change.as_ref().is_some_and(|pending| pending.digest() == change.digest()) {
            self.pending_change = None;
            self.pending_change_ordered = false;
        }
        match self.schedule(seq, change) {
            Ok((at, committee)) => out.push(Output::EpochScheduled { executed_at: seq, at, committee }),
            Err(error) => {
                self.stats.membership_changes_refused += 1;
                out.push(Output::MembershipRefused { seq, reason: error.to_string() });
            }
        }
    }

    fn schedule(
        &mut self,
        seq: Seq,
        change: &Arc<SignedMembershipChange>,
    ) -> Result<(Seq, Committee), MembershipError> {
        if self.membership.scheduled.is_some() {
            return Err(MembershipError::AlreadyScheduled(change.change.from_epoch));
        }
        let next = change.change.apply(&self.committee)?;
        let retired = self.membership.retired_keys(&self.genesis_committee);
        if let Some(reused) = change.change.add.iter().find(|member| retired.contains(&member.public_key)) {
            return Err(MembershipError::RetiredKey(reused.public_key.to_string()));
        }
        let interval = self.params.checkpoint_interval.max(1);
        let at = Seq(seq.0.div_ceil(interval) * interval);
        self.membership.scheduled = Some((at, change.clone()));
        Ok((at, next.starting_after(at)))
    }

    /// Called when the checkpoint at `stable` is stable: switches if a change was due there.
    pub(super) fn switch_epoch_if_due(&mut self, stable: Seq, out: &mut Vec<Output>) {
        let Some((at, change)) = self.membership.scheduled.clone() else { return };
        if at > stable {
            return;
        }
        self.membership.scheduled = None;
        match change.change.apply(&self.committee) {
            Ok(next) => {
                self.membership.applied.push(change);
                self.membership.boundaries.push(at);
                let next = next.starting_after(at);
                self.stats.membership_changes_applied += 1;
                self.enter_epoch(next, out);
                self.replay_next_epoch_messages(out);
            }
            Err(error) => {
                // Checked when scheduled; kept as a refusal rather than a panic.
                self.stats.membership_changes_refused += 1;
                out.push(Output::MembershipRefused { seq: at, reason: error.to_string() });
            }
        }
    }

    /// Runs in `committee` from now on. Everything of the old epoch above the
    /// last executed batch is dropped, its requests queued again; the view
    /// change state starts afresh, in the epoch's view 0 (every replica enters
    /// the epoch there, a validator that joins it too: no NEW-VIEW of the old
    /// epoch needs to be shown to anyone); timers restart.
    pub(super) fn enter_epoch(&mut self, committee: Committee, out: &mut Vec<Output>) {
        let now = self.now;
        let above = self.last_executed.next();
        let dropped = self.log.split_off(&above);
        for request in dropped.into_values().filter_map(|slot| slot.batch).flat_map(|batch| batch.requests.clone()) {
            let id = request.tx_id();
            if self.ordered_ids.remove(&id) && !self.outcomes.contains_key(&id) && self.queued_ids.insert(id) {
                self.queue.push_front(Queued { request, arrived: now });
            }
        }
        self.checkpoints = std::mem::take(&mut self.checkpoints).into_iter().filter(|(seq, _)| *seq < above).collect();
        self.snapshots = std::mem::take(&mut self.snapshots).into_iter().filter(|(seq, _)| *seq < above).collect();
        self.committee = committee;
        self.view = View(0);
        self.view_changes.clear();
        self.changing = None;
        self.last_new_view = None;
        self.failed_views = 0;
        self.stall_since = Some(now);
        self.next_seq = self.last_executed.max(self.stable.seq).next();
        if self.pending_change.as_ref().is_some_and(|change| change.change.from_epoch != self.committee.epoch()) {
            self.pending_change = None;
        }
        self.pending_change_ordered = false;
        for queued in &mut self.queue {
            queued.arrived = now;
        }
        let member = self.committee.contains(self.me);
        self.retired = !member;
        out.push(Output::EpochChanged { committee: self.committee.clone(), member });
    }

    /// Processes the messages of the (now current) epoch that arrived early.
    pub(super) fn replay_next_epoch_messages(&mut self, out: &mut Vec<Output>) {
        let epoch = self.committee.epoch();
        for signed in std::mem::take(&mut self.next_epoch_messages) {
            if !self.retired && signed.epoch == epoch {
                self.on_message(self.now, signed, out);
            }
        }
    }

    /// A validator that joined in a later epoch holds neither the state nor
    /// the history that led there until a snapshot brings them: it must ask,
    /// even when the swarm is idle.
    pub(super) fn lacks_membership_history(&self) -> bool {
        let applied = self.membership.applied.len() as u64;
        self.genesis_committee.epoch().0 + applied < self.committee.epoch().0
    }

    /// Every committee from the first epoch to the current one (and the
    /// scheduled next one): what a verifier guarding this replica must know.
    pub fn known_committees(&self) -> Vec<Committee> {
        let mut committees = self.membership.committees(&self.genesis_committee).unwrap_or_default();
        if committees.is_empty() {
            committees.push(self.genesis_committee.clone());
        }
        if committees.iter().all(|known| known.epoch() != self.committee.epoch()) {
            committees.push(self.committee.clone());
        }
        committees
    }

    /// The committee `membership`'s applied changes lead to from the first
    /// epoch (the scheduled one not yet); none for a history that does not check.
    pub(super) fn committee_after(&self, membership: &crate::protocol::MembershipState) -> Option<Committee> {
        let committees = membership.committees(&self.genesis_committee).ok()?;
        committees.get(membership.applied.len()).cloned()
    }

    /// Takes `membership` (a checkpoint's, checked by whoever produced it) as
    /// this replica's and runs in the epoch it leads to.
    pub(super) fn adopt_membership(&mut self, membership: &crate::protocol::MembershipState) {
        let Some(current) = self.committee_after(membership) else { return };
        self.membership = membership.clone();
        if current.epoch() != self.committee.epoch() {
            self.retired = !current.contains(self.me);
            self.committee = current;
        }
    }

    /// Whether a message of another epoch is taken: a snapshot (it carries its
    /// own membership history), a STATUS from a peer left in an older epoch
    /// (it needs this replica's help). Messages of the next epoch are held
    /// until the switch; the rest is dropped. A message of a later epoch means
    /// this replica may have missed the end of its own: it asks its peers
    /// where they are at its next progress check.
    pub(super) fn admit_other_epoch(&mut self, signed: &Arc<SignedMessage>) -> bool {
        let epoch = self.committee.epoch();
        if signed.epoch > epoch {
            self.retransmit.saw_ahead = true;
        }
        match signed.message {
            Message::StateSnapshot { .. } => true,
            Message::Status { .. } if signed.epoch < epoch => true,
            _ if signed.epoch.0 == epoch.0 + 1 && self.membership.scheduled.is_some() => {
                if self.next_epoch_messages.len() < MAX_NEXT_EPOCH_MESSAGES {
                    self.next_epoch_messages.push(signed.clone());
                } else {
                    self.stats.dropped_wrong_epoch += 1;
                }
                false
            }
            _ => {
                self.stats.dropped_wrong_epoch += 1;
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod edge_tests;
