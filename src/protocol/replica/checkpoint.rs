//! Checkpoints (stable at a quorum, then the log below them is collected and
//! the water marks move) and retransmission for replicas that stopped progressing.

use super::{record_vote, vote_digest, Output, Replica, StableCheckpoint, StateAt};
use crate::app::{Application, Snapshot};
use crate::crypto::Digest;
use crate::protocol::certified::CertifiedAnswer;
use crate::protocol::membership::{checkpoint_digest, MembershipState};
use crate::protocol::message::{Message, SignedMessage};
use crate::protocol::types::{AgentId, Micros, Seq, View};
use std::sync::Arc;

impl<A: Application> Replica<A> {
    /// `query` answered on the state at the stable checkpoint, with the chunk
    /// that holds the answer, its Merkle path and the checkpoint's quorum
    /// proof ([`crate::protocol::verify_certified`] checks it offline). None
    /// before the first stable checkpoint (genesis is certified by nobody),
    /// or when the application proves no single chunk answers this query.
    pub fn certified_query(&self, query: &[u8]) -> Option<CertifiedAnswer> {
        if self.stable.proof.is_empty() {
            return None;
        }
        let state = &self.stable_state;
        let membership = state.membership.digest();
        CertifiedAnswer::build(
            &*state.app,
            &state.chunks(),
            query,
            membership,
            self.stable.seq,
            self.stable.proof.clone(),
        )
    }

    pub(super) fn take_checkpoint(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let app_digest = self.app.digest();
        let state_digest = checkpoint_digest(app_digest, &self.membership);
        let state = StateAt::new(Arc::new(self.app.clone()), app_digest, Arc::new(self.membership.clone()));
        self.snapshots.insert(seq, state);
        if !self.may_sign_checkpoint(seq) {
            // Passive: the checkpoint still becomes stable on a quorum of its peers' signatures.
            self.stats.votes_withheld_passive += 1;
            self.checkpoints.entry(seq).or_default().own = Some(state_digest);
            self.try_stabilize(seq, out);
            return;
        }
        let signed = self.sign(Message::Checkpoint { seq, state_digest });
        let entry = self.checkpoints.entry(seq).or_default();
        entry.own = Some(state_digest);
        entry.votes.insert(self.me, signed.clone());
        out.push(Output::Broadcast(signed));
        self.try_stabilize(seq, out);
    }

    pub(super) fn on_checkpoint(
        &mut self,
        signed: Arc<SignedMessage>,
        seq: Seq,
        state_digest: Digest,
        out: &mut Vec<Output>,
    ) {
        if seq <= self.stable.seq {
            self.stats.dropped_stale += 1;
            return;
        }
        if seq.0 % self.params.checkpoint_interval != 0 {
            self.stats.dropped_malformed += 1;
            return;
        }
        if seq.0 > self.stable.seq.0 + self.params.log_window {
            self.stats.dropped_out_of_window += 1;
            self.retransmit.saw_ahead = true;
            return;
        }
        let recorded = record_vote(&mut self.checkpoints.entry(seq).or_default().votes, signed, state_digest);
        if self.accept(recorded, out) {
            self.try_stabilize(seq, out);
        }
    }

    /// A checkpoint becomes stable once this replica has executed up to it and
    /// a quorum (itself included) signed the same digest.
    fn try_stabilize(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let quorum = self.committee.quorum();
        let Some(entry) = self.checkpoints.get(&seq) else {
            return;
        };
        let Some(own) = entry.own else { return };
        let proof: Vec<Arc<SignedMessage>> =
            entry.votes.values().filter(|vote| vote_digest(vote) == Some(own)).cloned().collect();
        if proof.len() < quorum {
            let others = entry.votes.len() - proof.len();
            if others >= quorum {
                // A quorum signed another state: this replica's ledger diverged.
                self.stats.checkpoint_disagreements += 1;
            }
            return;
        }
        if let Some(state) = self.snapshots.remove(&seq) {
            self.stable_state = state;
        }
        self.make_stable(StableCheckpoint { seq, state_digest: own, proof }, out);
    }

    /// Moves the low water mark to `stable` and collects everything below it.
    fn make_stable(&mut self, stable: StableCheckpoint, out: &mut Vec<Output>) {
        let (seq, state_digest) = (stable.seq, stable.state_digest);
        self.stable = stable;
        let above = seq.next();
        let kept = self.log.split_off(&above);
        for slot in std::mem::replace(&mut self.log, kept).into_values() {
            // Executed here or (after a state transfer) elsewhere: no longer queued.
            for request in slot.batch.iter().flat_map(|batch| batch.requests.iter()) {
                self.queued_ids.remove(&request.tx_id());
                self.ordered_ids.remove(&request.tx_id());
            }
        }
        self.checkpoints = self.checkpoints.split_off(&above);
        self.snapshots = self.snapshots.split_off(&above);
        self.forget_old_outcomes(seq);
        self.stats.checkpoints_stable += 1;
        let ledger_digest = self.stable_state.app_digest;
        out.push(Output::CheckpointStable { seq, state_digest, ledger_digest });
        self.switch_epoch_if_due(seq, out);
    }

    /// Installs a verified snapshot of a stable checkpoint this replica has not
    /// reached. The caller's verifier checked the quorum proof and that the
    /// chunks hash to the proven digest; the application decodes them.
    ///
    /// The membership history comes with the state: a replica that missed a
    /// change moves to the epoch the state is in (the verifier checked each
    /// change against the operator's key).
    pub(super) fn on_state_snapshot(
        &mut self,
        seq: Seq,
        state_digest: Digest,
        chunks: Arc<Snapshot>,
        membership: Arc<MembershipState>,
        proof: Vec<Arc<SignedMessage>>,
        out: &mut Vec<Output>,
    ) {
        // Every peer answers a STATUS with a snapshot: most arrive stale, and
        // cost nothing more than this check.
        if seq <= self.last_executed {
            self.stats.dropped_stale += 1;
            return;
        }
        let Some(current) = self.committee_after(&membership) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        // The chunks are proven; an application that cannot decode them, or
        // decodes them into another state, is told nothing it can use.
        let app_digest = chunks.root();
        let Some(app) = A::restore(&chunks).ok().filter(|app| app.digest() == app_digest) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let state = StateAt { app: Arc::new(app), app_digest, membership, chunks: chunks.into() };
        self.app = (*state.app).clone();
        self.membership = (*state.membership).clone();
        self.stable_state = state;
        self.last_executed = seq;
        self.next_seq = self.next_seq.max(seq.next());
        self.stats.snapshots_installed += 1;
        if current.epoch() != self.committee.epoch() {
            self.enter_epoch(current, out);
        }
        self.make_stable(StableCheckpoint { seq, state_digest, proof }, out);
        self.drop_queued_executed_elsewhere();
        self.replay_next_epoch_messages(out);
        self.execute_ready(out);
    }

    /// After a state transfer, queued requests the installed state already
    /// executed or refuses (the ledger: their nonce is consumed) can never be ordered again (the other replicas answered
    /// them): waiting for them would only make this replica suspect the primary.
    fn drop_queued_executed_elsewhere(&mut self) {
        for queued in &self.queue {
            if self.app.check(&queued.request).is_err() {
                self.queued_ids.remove(&queued.request.tx_id());
            }
        }
    }

    fn forget_old_outcomes(&mut self, stable: Seq) {
        let retained = self.params.outcome_retention_checkpoints * self.params.checkpoint_interval;
        let keep_from = stable.0.saturating_sub(retained);
        while let Some((seq, _)) = self.outcomes_by_seq.front() {
            if seq.0 > keep_from {
                break;
            }
            if let Some((_, ids)) = self.outcomes_by_seq.pop_front() {
                for id in ids {
                    self.outcomes.remove(&id);
                }
            }
        }
    }

    /// Every retransmit interval: a replica that has work pending but made no
    /// progress since the last check broadcasts a STATUS; its peers answer with
    /// what it lacks. Messages lost in the network are recovered this way.
    pub(super) fn check_progress(&mut self, now: Micros, out: &mut Vec<Output>) {
        let Some(next_check) = self.retransmit.next_check else {
            self.retransmit.next_check = Some(now.plus(self.params.retransmit_interval_us));
            return;
        };
        if now < next_check {
            return;
        }
        let mark = (self.last_executed, self.stable.seq);
        let progressed = mark != self.retransmit.progress_mark;
        self.retransmit.progress_mark = mark;
        let waiting = self.log.range(self.last_executed.next()..).next().is_some()
            || !self.queued_ids.is_empty()
            || self.changing.is_some()
            || self.checkpoints.values().any(|entry| entry.own.is_some())
            || self.retransmit.saw_ahead
            || self.lacks_membership_history()
            || self.is_passive();
        self.retransmit.saw_ahead = false;
        // Back off while stuck so a stalled swarm does not flood itself; reset on progress.
        self.retransmit.idle_checks = if progressed || !waiting { 0 } else { self.retransmit.idle_checks + 1 };
        let backoff = 1u64 << self.retransmit.idle_checks.saturating_sub(1).min(4);
        self.retransmit.next_check = Some(now.plus(self.params.retransmit_interval_us * backoff));
        if !progressed && waiting {
            self.resend_unfinished(out);
        }
    }

    /// A stuck replica pulls (STATUS: peers answer with what it lacks) and pushes
    /// its own pre-prepare and votes for the slot that blocks execution, which
    /// peers that do not know they miss it would never ask for. Only that slot:
    /// execution is in order, and an overloaded replica must not resend a window
    /// of batches for every slow interval.
    fn resend_unfinished(&mut self, out: &mut Vec<Output>) {
        let status = Message::Status {
            view: self.view,
            low_water: self.stable.seq,
            last_executed: self.last_executed,
            passive: self.is_passive(),
        };
        let signed = self.sign(status);
        self.stats.status_sent += 1;
        out.push(Output::Broadcast(signed));
        let me = self.me;
        if self.changing.is_some() {
            out.extend(self.view_changes.get(&me).map(|own| Output::Broadcast(own.clone())));
        }
        if let Some(slot) = self.log.get(&self.last_executed.next()) {
            let own_pre_prepare = slot.pre_prepare.iter().filter(|signed| signed.sender == me);
            let own_votes = slot.prepares.get(&me).into_iter().chain(slot.commits.get(&me));
            for signed in own_pre_prepare.chain(own_votes) {
                out.push(Output::Broadcast(signed.clone()));
            }
        }
        for entry in self.checkpoints.values() {
            out.extend(entry.votes.get(&me).map(|signed| Output::Broadcast(signed.clone())));
        }
    }

    /// Resends to a stuck peer the pre-prepares and own votes of the slots it has
    /// not executed, and the checkpoint votes it lacks. At most once per peer per
    /// retransmit interval, and never more than the log window holds.
    pub(super) fn on_status(
        &mut self,
        now: Micros,
        peer: AgentId,
        peer_view: View,
        peer_low_water: Seq,
        peer_last_executed: Seq,
        out: &mut Vec<Output>,
    ) {
        // A peer that executed further: this replica is behind, and asks at its next check.
        if peer_last_executed > self.last_executed {
            self.retransmit.saw_ahead = true;
        }
        if !self.answer_allowed(now, peer) {
            return;
        }
        self.stats.status_answered += 1;
        let me = self.me;
        let mut resend = Vec::new();
        if peer_view < self.view {
            resend.extend(self.last_new_view.iter().cloned());
        }
        for slot in self.log.range(peer_last_executed.next()..).map(|(_, slot)| slot) {
            resend.extend(slot.pre_prepare.iter().cloned());
            resend.extend(slot.prepares.get(&me).cloned());
            resend.extend(slot.commits.get(&me).cloned());
        }
        for entry in self.checkpoints.range(peer_low_water.next()..).map(|(_, entry)| entry) {
            resend.extend(entry.votes.get(&me).cloned());
        }
        if self.stable.seq > peer_low_water {
            resend.extend(self.stable.proof.iter().cloned());
        }
        if peer_last_executed < self.stable.seq && !self.stable.proof.is_empty() {
            // The log the peer needs is collected: send the state instead.
            self.stats.snapshots_sent += 1;
            resend.push(self.sign(Message::StateSnapshot {
                seq: self.stable.seq,
                state_digest: self.stable.state_digest,
                state: self.stable_state.chunks(),
                membership: self.stable_state.membership.clone(),
                proof: self.stable.proof.clone(),
            }));
        }
        out.extend(resend.into_iter().map(|signed| Output::SendTo(peer, signed)));
    }
}
