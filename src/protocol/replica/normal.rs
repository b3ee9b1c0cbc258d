//! The normal case: requests, batching, PRE-PREPARE → PREPARE → COMMIT, execution.

use super::{record_vote, vote_digest, Executed, Output, Queued, Replica, Vote};
use crate::app::Application;
use crate::app::Refusal;
use crate::crypto::Digest;
use crate::ledger::{Execution, TxId, TxOutcome};
use crate::protocol::evidence::Evidence;
use crate::protocol::message::{Batch, Message, PreparedCertificate, Reply, Request, SignedMessage};
use crate::protocol::types::{AgentId, ClientId, Micros, Seq, View};
use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

impl<A: Application> Replica<A> {
    pub(super) fn on_requests(&mut self, now: Micros, requests: Vec<Request>, out: &mut Vec<Output>) {
        let mut answered_again: BTreeMap<ClientId, Vec<(TxId, TxOutcome)>> = BTreeMap::new();
        for request in requests {
            let id = request.tx_id();
            if let Some(&(client, outcome)) = self.outcomes.get(&id) {
                if client == request.client {
                    answered_again.entry(client).or_default().push((id, outcome));
                }
                continue;
            }
            if self.queued_ids.contains(&id) || self.ordered_ids.contains(&id) {
                self.stats.dropped_duplicate += 1;
            } else if let Err(Refusal::Rejected(outcome)) = self.app.check(&request) {
                // Never ordered, but answered: the agreed state refuses it
                // (the ledger: another transfer consumed the nonce), so f+1
                // replicas saying so is the truth, and a client (one
                // restarted, or a double spender's victim) learns the outcome
                // instead of waiting for ever.
                self.stats.double_spends_dropped += 1;
                answered_again.entry(request.client).or_default().push((id, outcome));
            } else if self.queue.len() >= self.params.max_pending_requests {
                self.stats.requests_dropped_queue_full += 1;
            } else {
                self.queued_ids.insert(id);
                if let Some(key) = A::conflict_key(&request) {
                    self.note_conflict_key(key, id);
                }
                self.queue.push_back(Queued { request, arrived: now });
                self.stats.requests_queued += 1;
            }
        }
        for (client, outcomes) in answered_again {
            self.stats.requests_answered_again += outcomes.len() as u64;
            let reply = self.sign_reply(self.last_executed, client, outcomes);
            out.push(Output::Reply(reply));
        }
    }

    /// Remembers which queued request holds `key`, and any rival holding it too.
    fn note_conflict_key(&mut self, key: A::ConflictKey, id: TxId) {
        match self.queued_spends.entry(key) {
            Entry::Occupied(first) if self.queued_ids.contains(first.get()) => {
                self.queued_spend_rivals.entry(key).or_default().push(id);
            }
            Entry::Occupied(mut left_the_queue) => {
                left_the_queue.insert(id);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(id);
            }
        }
        if self.queued_spends.len() > 2 * self.params.max_pending_requests + 64 {
            let queued_ids = &self.queued_ids;
            self.queued_spends.retain(|_, id| queued_ids.contains(id));
            self.queued_spend_rivals.retain(|_, ids| {
                ids.retain(|id| queued_ids.contains(id));
                !ids.is_empty()
            });
        }
    }

    /// Whether the primary may assign another sequence number now.
    pub(super) fn may_propose(&self) -> bool {
        let in_flight = self.next_seq.0.saturating_sub(self.last_executed.0 + 1);
        in_flight < self.params.max_in_flight_batches
            && self.next_seq.0 <= self.stable.seq.0 + self.params.log_window
            && !self.beyond_epoch_boundary(self.next_seq)
    }

    /// Cuts batches: when one is full, when its oldest request has waited
    /// `batch_delay`, or at once when nothing is in flight (so a light load
    /// is not delayed and a heavy one fills batches while others commit).
    pub(super) fn propose_batches(&mut self, now: Micros, out: &mut Vec<Output>) {
        if !self.is_primary() || self.changing.is_some() {
            return;
        }
        loop {
            if !self.may_vote(self.view, self.next_seq) {
                break;
            }
            self.prune_queue();
            let membership = self.change_to_propose();
            // A scheduled change takes effect at a checkpoint: reach it even without load.
            let to_boundary = self.membership.scheduled.is_some();
            let urgent = membership.is_some() || to_boundary;
            let Some(oldest) = self.queue.front().map(|front| front.arrived).or(urgent.then_some(now)) else {
                break;
            };
            if !self.may_propose() {
                break;
            }
            let idle = self.next_seq.0 == self.last_executed.0 + 1;
            let full = self.queued_ids.len() >= self.params.max_batch_size;
            let waited = now.saturating_sub(oldest) >= self.params.batch_delay_us;
            if !(full || waited || idle || urgent) {
                break;
            }
            let mut requests = Vec::with_capacity(self.params.max_batch_size.min(self.queued_ids.len()));
            while requests.len() < self.params.max_batch_size {
                let Some(queued) = self.queue.pop_front() else { break };
                if self.queued_ids.contains(&queued.request.tx_id()) {
                    requests.push(queued.request);
                }
            }
            let batch = Arc::new(Batch { requests, membership });
            let digest = batch.digest();
            let seq = self.next_seq;
            self.next_seq = seq.next();
            let pre_prepare = self.sign(Message::PrePrepare { view: self.view, seq, digest, batch: batch.clone() });
            self.stats.batches_proposed += 1;
            out.push(Output::Broadcast(pre_prepare.clone()));
            self.accept_pre_prepare(pre_prepare, seq, digest, batch, out);
        }
    }

    /// Drops requests at the front of the queue that were ordered meanwhile.
    pub(super) fn prune_queue(&mut self) {
        while let Some(front) = self.queue.front() {
            if self.queued_ids.contains(&front.request.tx_id()) {
                break;
            }
            self.queue.pop_front();
        }
    }

    /// Admits a message for (view, seq) only inside the current view and the water marks.
    ///
    /// Slots executed here but above the stable checkpoint are still admitted:
    /// after a view change, peers that did not execute them need this replica's votes.
    ///
    /// While a view change is in progress, messages of the current view are
    /// still taken in, passively: the replica sends no vote after its
    /// VIEW-CHANGE, but a batch the others commit it may execute (a quorum of
    /// commits survives any view change), so a replica that fell behind is
    /// not stuck behind its own suspicion.
    fn admit(&mut self, view: View, seq: Seq) -> bool {
        if self.changing.is_some() && view != self.view {
            self.stats.dropped_view_changing += 1;
            false
        } else if view != self.view {
            self.stats.dropped_wrong_view += 1;
            false
        } else if seq <= self.stable.seq {
            self.stats.dropped_stale += 1;
            false
        } else if seq.0 > self.stable.seq.0 + self.params.log_window {
            self.stats.dropped_out_of_window += 1;
            self.retransmit.saw_ahead = true;
            false
        } else {
            true
        }
    }

    pub(super) fn on_pre_prepare(
        &mut self,
        signed: Arc<SignedMessage>,
        view: View,
        seq: Seq,
        digest: Digest,
        batch: Arc<Batch>,
        out: &mut Vec<Output>,
    ) {
        if signed.sender != self.committee.primary(view) {
            self.stats.dropped_not_from_primary += 1;
            return;
        }
        if !self.admit(view, seq) {
            return;
        }
        let slot = self.log.entry(seq).or_default();
        if let Some(existing) = &slot.pre_prepare {
            if slot.digest == Some(digest) {
                self.stats.dropped_duplicate += 1;
            } else {
                let evidence = Evidence::Equivocation { first: existing.clone(), second: signed };
                self.report(evidence, out);
            }
            return;
        }
        self.accept_pre_prepare(signed, seq, digest, batch, out);
    }

    /// Takes a pre-prepare of the current view into its slot (from the primary,
    /// from this replica as primary, or from a NEW-VIEW); a backup answers with
    /// its PREPARE.
    pub(super) fn accept_pre_prepare(
        &mut self,
        signed: Arc<SignedMessage>,
        seq: Seq,
        digest: Digest,
        batch: Arc<Batch>,
        out: &mut Vec<Output>,
    ) {
        if seq > self.last_executed {
            for request in &batch.requests {
                let id = request.tx_id();
                self.queued_ids.remove(&id);
                self.ordered_ids.insert(id);
            }
        }
        self.note_ordered_change(&batch);
        let slot = self.log.entry(seq).or_default();
        slot.pre_prepare = Some(signed);
        slot.digest = Some(digest);
        slot.batch = Some(batch);
        if !self.is_primary() && self.changing.is_none() && !self.may_vote(self.view, seq) {
            self.stats.votes_withheld_passive += 1;
        } else if !self.is_primary() && self.changing.is_none() {
            let prepare = self.sign(Message::Prepare { view: self.view, seq, digest });
            if let Some(slot) = self.log.get_mut(&seq) {
                slot.prepares.insert(self.me, prepare.clone());
            }
            out.push(Output::Broadcast(prepare));
        }
        self.advance(seq, out);
    }

    pub(super) fn on_vote(
        &mut self,
        vote: Vote,
        signed: Arc<SignedMessage>,
        view: View,
        seq: Seq,
        digest: Digest,
        out: &mut Vec<Output>,
    ) {
        // The primary's vote is its pre-prepare; a prepare from it counts for nothing.
        if vote == Vote::Prepare && signed.sender == self.committee.primary(view) {
            self.stats.dropped_malformed += 1;
            return;
        }
        if !self.admit(view, seq) {
            return;
        }
        let slot = self.log.entry(seq).or_default();
        let votes = match vote {
            Vote::Prepare => &mut slot.prepares,
            Vote::Commit => &mut slot.commits,
        };
        let recorded = record_vote(votes, signed, digest);
        if self.accept(recorded, out) {
            self.advance(seq, out);
        }
    }

    /// Moves a slot on: prepared with the pre-prepare and quorum-1 matching
    /// prepares from backups; committed with a quorum of matching commits.
    pub(super) fn advance(&mut self, seq: Seq, out: &mut Vec<Output>) {
        let quorum = self.committee.quorum();
        let primary = self.committee.primary(self.view);
        let view = self.view;
        let may_vote = self.may_vote(view, seq);
        let Some(slot) = self.log.get(&seq) else {
            return;
        };
        let Some(digest) = slot.digest else { return };
        if !slot.prepared && self.changing.is_none() && may_vote {
            let prepares: Vec<Arc<SignedMessage>> = slot
                .prepares
                .iter()
                .filter(|(sender, vote)| **sender != primary && vote_digest(vote) == Some(digest))
                .map(|(_, vote)| vote.clone())
                .take(quorum.saturating_sub(1))
                .collect();
            if prepares.len() + 1 < quorum {
                return;
            }
            let Some(pre_prepare) = slot.pre_prepare.clone() else { return };
            let commit = self.sign(Message::Commit { view, seq, digest });
            let Some(slot) = self.log.get_mut(&seq) else {
                return;
            };
            slot.prepared = true;
            slot.certificate = Some(PreparedCertificate { pre_prepare, prepares });
            slot.commits.insert(self.me, commit.clone());
            out.push(Output::Broadcast(commit));
        }
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        if !slot.committed && count_matching(&slot.commits, digest, None) >= quorum {
            slot.committed = true;
            // A quorum committed in this view: the primary is making progress,
            // even if this replica cannot execute yet.
            self.stall_since = Some(self.now);
            self.execute_ready(out);
        }
    }

    /// Executes committed batches strictly in sequence order.
    pub(super) fn execute_ready(&mut self, out: &mut Vec<Output>) {
        loop {
            let seq = self.last_executed.next();
            if self.beyond_epoch_boundary(seq) {
                return;
            }
            let Some(slot) = self.log.get(&seq) else {
                return;
            };
            let (Some(batch), Some(digest), true) = (slot.batch.clone(), slot.digest, slot.committed) else {
                return;
            };
            if let Some(slot) = self.log.get_mut(&seq) {
                slot.executed = Some(digest);
            }
            let executions = self.app.execute(seq, &batch.requests);
            self.last_executed = seq;
            self.drop_conflicting_spends(&batch, out);
            self.record_outcomes(seq, &batch, &executions, out);
            if let Some(change) = &batch.membership {
                self.execute_membership(seq, change, out);
            }
            self.stats.batches_executed += 1;
            out.push(Output::Executed(Executed { seq, view: self.view, digest, batch, executions }));
            if seq.0 % self.params.checkpoint_interval == 0 {
                self.take_checkpoint(seq, out);
            }
        }
    }

    /// A queued request with the conflict key of an executed one (the ledger:
    /// a transfer spending a nonce an executed one just consumed) can never commit: it is dropped (so nobody waits for it to be ordered) and
    /// the two signed spends are reported as proof of a double spend.
    fn drop_conflicting_spends(&mut self, batch: &Batch, out: &mut Vec<Output>) {
        if self.queued_spends.is_empty() {
            return;
        }
        for request in &batch.requests {
            let executed = &request.tx;
            let Some(key) = A::conflict_key(request) else { continue };
            let Some(first) = self.queued_spends.remove(&key) else { continue };
            // Almost always empty: no need to hash the key again.
            let rivals = if self.queued_spend_rivals.is_empty() {
                Vec::new()
            } else {
                self.queued_spend_rivals.remove(&key).unwrap_or_default()
            };
            for queued in std::iter::once(first).chain(rivals) {
                if queued == executed.tx.id || !self.queued_ids.remove(&queued) {
                    continue;
                }
                self.stats.double_spends_dropped += 1;
                let conflicting = self.queue.iter().find(|q| q.request.tx_id() == queued).map(|q| q.request.tx.clone());
                if let Some(conflicting) = conflicting.filter(|c| c.digest() != executed.digest()) {
                    out.push(Output::DoubleSpend {
                        executed: Box::new(executed.clone()),
                        conflicting: Box::new(conflicting),
                    });
                }
            }
        }
    }

    /// Remembers outcomes for resent requests and signs one reply per client.
    fn record_outcomes(&mut self, seq: Seq, batch: &Batch, executions: &[Execution], out: &mut Vec<Output>) {
        let mut per_client: BTreeMap<ClientId, Vec<(TxId, TxOutcome)>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(batch.requests.len());
        for (request, execution) in batch.requests.iter().zip(executions) {
            let id = request.tx_id();
            match execution {
                Execution::Applied(TxOutcome::Committed) => self.stats.txs_committed += 1,
                Execution::Applied(TxOutcome::Rejected(_)) => self.stats.txs_rejected += 1,
                Execution::Replayed(_) => self.stats.txs_replayed += 1,
            }
            self.queued_ids.remove(&id);
            self.ordered_ids.remove(&id);
            let outcome = execution.outcome();
            self.outcomes.insert(id, (request.client, outcome));
            ids.push(id);
            per_client.entry(request.client).or_default().push((id, outcome));
        }
        self.outcomes_by_seq.push_back((seq, ids));
        for (client, outcomes) in per_client {
            let reply = self.sign_reply(seq, client, outcomes);
            out.push(Output::Reply(reply));
        }
    }

    fn sign_reply(&self, seq: Seq, client: ClientId, outcomes: Vec<(TxId, TxOutcome)>) -> Arc<Reply> {
        let epoch = self.committee.epoch();
        Arc::new(Reply::sign(epoch, self.me, self.view, seq, client, outcomes, &self.keypair))
    }
}

fn count_matching(votes: &BTreeMap<AgentId, Arc<SignedMessage>>, digest: Digest, excluding: Option<AgentId>) -> usize {
    votes.iter().filter(|(sender, vote)| Some(**sender) != excluding && vote_digest(vote) == Some(digest)).count()
}
