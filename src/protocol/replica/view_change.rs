//! View change (Castro & Liskov §4.4): suspecting the primary, VIEW-CHANGE,
//! NEW-VIEW, and entering the new view with every batch that may have
//! committed kept at its sequence number.

use super::{Changing, Output, Queued, Replica};
use crate::app::Application;
use crate::crypto::Digest;
use crate::protocol::message::{Message, SignedMessage};
use crate::protocol::types::{AgentId, Micros, Seq, View};
use crate::protocol::view_change::{enough_view_changes, plan_new_view, NewViewPlan};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Timeouts double per failed view change, up to 2^6 times the configured one.
const MAX_TIMEOUT_DOUBLINGS: u32 = 6;

impl<A: Application> Replica<A> {
    /// How long outstanding work may wait: doubles for each view installed
    /// since execution last progressed.
    fn view_change_timeout(&self) -> u64 {
        self.params.view_change_timeout_us << self.failed_views.min(MAX_TIMEOUT_DOUBLINGS)
    }

    /// How long to wait for the NEW-VIEW of `target`: doubles with each view
    /// skipped past the current one. It depends only on the views, never on
    /// local history, so replicas that fell out of step wait longer the
    /// further ahead they are, and the others catch up with them.
    fn new_view_timeout(&self, target: View) -> u64 {
        let skipped = target.0.saturating_sub(self.view.0 + 1).min(u64::from(MAX_TIMEOUT_DOUBLINGS));
        self.params.view_change_timeout_us << skipped
    }

    /// When the primary is suspected if nothing changes: the view change in
    /// progress times out; or work has been outstanding without any execution
    /// (a silent or equivocating primary); or the oldest queued request was
    /// not ordered (a slow or censoring primary, which may well order others).
    pub(super) fn view_deadline(&self) -> Option<Micros> {
        if let Some(changing) = self.changing {
            return Some(changing.deadline);
        }
        let timeout = self.view_change_timeout();
        let stalled = self.stall_since.map(|since| since.plus(timeout));
        let censored = self.queue.front().map(|oldest| oldest.arrived.plus(timeout));
        stalled.into_iter().chain(censored).min()
    }

    pub(super) fn check_view_timers(&mut self, now: Micros, out: &mut Vec<Output>) {
        self.prune_queue();
        // A membership change held and not yet executed is work too: a primary
        // that leaves it out of every batch is suspected like one that drops requests.
        let outstanding = !self.queued_ids.is_empty() || !self.ordered_ids.is_empty() || self.pending_change.is_some();
        if !outstanding {
            self.stall_since = None;
        } else if self.stall_since.is_none() {
            self.stall_since = Some(now);
        }
        let Some(deadline) = self.view_deadline() else { return };
        if now < deadline {
            return;
        }
        let target = self.changing.map_or(self.view, |changing| changing.target).next();
        let timeout = self.view_change_timeout();
        self.requests_waited =
            self.changing.is_none() && self.queue.front().is_some_and(|oldest| oldest.arrived.plus(timeout) <= now);
        self.start_view_change(target, now, out);
        self.requests_waited = false;
    }

    /// Stops accepting messages of the current view and asks for `target`,
    /// with the stable checkpoint's proof and every prepared certificate above it.
    pub(super) fn start_view_change(&mut self, target: View, now: Micros, out: &mut Vec<Output>) {
        if target <= self.view || self.changing.is_some_and(|changing| target <= changing.target) {
            return;
        }
        // Passive: it may have asked for this view before its log was lost.
        // Past its bound it asks for the first view it may (beyond every view
        // its peers were in), so that more than f passive members can still
        // move the swarm to a view in which they all vote.
        let target = self.first_view_it_may_ask_for().map_or(target, |first| target.max(first));
        if target <= self.view || self.changing.is_some_and(|changing| target <= changing.target) {
            return;
        }
        if !self.may_ask_for_view(target) {
            // No bound yet: its timers restart, so it waits instead of spinning.
            self.stats.votes_withheld_passive += 1;
            self.stall_since = Some(now);
            for queued in &mut self.queue {
                queued.arrived = now;
            }
            if let Some(changing) = &mut self.changing {
                changing.deadline = now.plus(self.params.view_change_timeout_us);
            }
            return;
        }
        self.changing = Some(Changing { target, deadline: now.plus(self.new_view_timeout(target)) });
        let prepared =
            self.log.range(self.stable.seq.next()..).filter_map(|(_, slot)| slot.certificate.clone()).collect();
        let view_change = self.sign(Message::ViewChange {
            new_view: target,
            stable_seq: self.stable.seq,
            stable_digest: self.stable.state_digest,
            checkpoint_proof: self.stable.proof.clone(),
            prepared,
            passive: self.is_passive(),
        });
        self.view_changes.insert(self.me, view_change.clone());
        self.stats.view_changes_started += 1;
        out.push(Output::ViewChangeStarted { from: self.view, to: target, requests_waited: self.requests_waited });
        out.push(Output::Broadcast(view_change));
        self.try_new_view(target, now, out);
    }

    pub(super) fn on_view_change(
        &mut self,
        signed: Arc<SignedMessage>,
        new_view: View,
        now: Micros,
        out: &mut Vec<Output>,
    ) {
        let sender = signed.sender;
        if new_view <= self.view {
            // A peer still asking for a view that already started missed its NEW-VIEW.
            self.stats.dropped_stale += 1;
            if new_view == self.view && self.changing.is_none() && self.answer_allowed(now, sender) {
                out.extend(self.last_new_view.iter().map(|nv| Output::SendTo(sender, nv.clone())));
            }
            return;
        }
        if self.view_changes.get(&sender).and_then(|known| view_change_target(known)).is_some_and(|v| v >= new_view) {
            self.stats.dropped_duplicate += 1;
            return;
        }
        if !within_its_water_marks(&signed, self.params.log_window) {
            self.stats.dropped_out_of_window += 1;
            return;
        }
        self.view_changes.insert(sender, signed);
        // f+1 replicas asking for higher views include an honest one: join the
        // highest view that f+1 of them ask for at least.
        let current = self.changing.map_or(self.view, |changing| changing.target);
        let mut higher: Vec<View> = self
            .view_changes
            .iter()
            .filter(|(id, _)| **id != self.me)
            .filter_map(|(_, vc)| view_change_target(vc))
            .filter(|view| *view > current)
            .collect();
        let f = self.committee.f();
        if higher.len() > f {
            higher.sort_unstable_by(|a, b| b.cmp(a));
            self.start_view_change(higher[f], now, out);
        }
        self.try_new_view(new_view, now, out);
    }

    /// The new primary starts the view once a quorum asked for it.
    fn try_new_view(&mut self, target: View, now: Micros, out: &mut Vec<Output>) {
        if self.committee.primary(target) != self.me || self.changing.map(|c| c.target) != Some(target) {
            return;
        }
        let view_changes: Vec<Arc<SignedMessage>> =
            self.view_changes.values().filter(|vc| view_change_target(vc) == Some(target)).cloned().collect();
        if !enough_view_changes(&self.committee, &view_changes) {
            return;
        }
        let plan = plan_new_view(&view_changes);
        let pre_prepares: Vec<Arc<SignedMessage>> = plan
            .slots
            .iter()
            .map(|(seq, (digest, batch))| {
                self.sign(Message::PrePrepare { view: target, seq: *seq, digest: *digest, batch: batch.clone() })
            })
            .collect();
        let triggered_by = view_changes.iter().map(|vc| vc.sender).collect();
        let new_view = self.sign(Message::NewView { view: target, view_changes, pre_prepares: pre_prepares.clone() });
        out.push(Output::Broadcast(new_view.clone()));
        self.last_new_view = Some(new_view);
        self.enter_view(target, &plan, pre_prepares, triggered_by, now, out);
    }

    /// A NEW-VIEW whose plan the verifier recomputed and found equal.
    pub(super) fn on_new_view(
        &mut self,
        signed: Arc<SignedMessage>,
        view: View,
        view_changes: &[Arc<SignedMessage>],
        pre_prepares: Vec<Arc<SignedMessage>>,
        now: Micros,
        out: &mut Vec<Output>,
    ) {
        if view < self.view || (view == self.view && self.changing.is_none()) {
            self.stats.dropped_stale += 1;
            return;
        }
        // The verifier checked the plan against the VIEW-CHANGEs; the water
        // marks it cannot know: certificates a sender could not have formed
        // (beyond its own window) make the whole NEW-VIEW invalid.
        let window = self.params.log_window;
        if !view_changes.iter().all(|vc| within_its_water_marks(vc, window)) {
            self.stats.dropped_out_of_window += 1;
            return;
        }
        let plan = plan_new_view(view_changes);
        self.last_new_view = Some(signed);
        let triggered_by = view_changes.iter().map(|vc| vc.sender).collect();
        self.enter_view(view, &plan, pre_prepares, triggered_by, now, out);
    }

    fn enter_view(
        &mut self,
        view: View,
        plan: &NewViewPlan,
        pre_prepares: Vec<Arc<SignedMessage>>,
        triggered_by: Vec<AgentId>,
        now: Micros,
        out: &mut Vec<Output>,
    ) {
        // Batches the new view does not carry go back to the queue, so the new primary orders their requests.
        let kept: BTreeMap<_, _> = plan.slots.iter().map(|(seq, (digest, _))| (*seq, *digest)).collect();
        // What this replica executed above its checkpoint: it never prepares
        // another batch there, whatever a NEW-VIEW says.
        let executed: BTreeMap<Seq, Digest> =
            self.log.range(..=self.last_executed).filter_map(|(seq, slot)| slot.executed.map(|d| (*seq, d))).collect();
        let mut requeue = Vec::new();
        for (seq, slot) in self.log.range(self.last_executed.next()..) {
            if let (Some(batch), Some(digest)) = (&slot.batch, slot.digest) {
                if kept.get(seq) != Some(&digest) {
                    requeue.extend(batch.requests.iter().cloned());
                }
            }
        }
        self.view = view;
        self.changing = None;
        // Reset in `step` if the new view executes anything.
        self.failed_views += 1;
        for slot in self.log.values_mut() {
            slot.reset_view();
        }
        self.view_changes.retain(|_, vc| view_change_target(vc).is_some_and(|v| v > view));
        for request in requeue.into_iter().rev() {
            let id = request.tx_id();
            if self.ordered_ids.remove(&id) && !self.outcomes.contains_key(&id) && self.queued_ids.insert(id) {
                self.queue.push_front(Queued { request, arrived: now });
            }
        }
        // Request timers restart with the new primary.
        for queued in &mut self.queue {
            queued.arrived = now;
        }
        let high_water = self.stable.seq.max(plan.min_seq).0 + self.params.log_window;
        for signed in pre_prepares {
            if let Message::PrePrepare { seq, digest, ref batch, .. } = signed.message {
                if seq <= self.stable.seq {
                    continue;
                }
                if seq.0 > high_water {
                    self.stats.dropped_out_of_window += 1;
                } else if seq <= self.last_executed && executed.get(&seq) != Some(&digest) {
                    self.stats.dropped_conflicts_executed += 1;
                } else {
                    let batch = batch.clone();
                    self.accept_pre_prepare(signed.clone(), seq, digest, batch, out);
                }
            }
        }
        self.refresh_change_ordered();
        self.next_seq = plan.max_seq.max(self.last_executed).max(self.stable.seq).next();
        self.stall_since = Some(now);
        self.stats.views_installed += 1;
        let recovered = plan.slots.values().map(|(_, batch)| batch.requests.len()).sum();
        out.push(Output::ViewChanged { view, primary: self.primary(), triggered_by, recovered });
    }

    /// At most one answer per peer per retransmit interval.
    pub(super) fn answer_allowed(&mut self, now: Micros, peer: AgentId) -> bool {
        if let Some(answered) = self.retransmit.answered_at.get(&peer) {
            if now < answered.plus(self.params.retransmit_interval_us) {
                self.stats.status_rate_limited += 1;
                return false;
            }
        }
        self.retransmit.answered_at.insert(peer, now);
        true
    }
}

/// A VIEW-CHANGE's certificates lie in its sender's window (stable, stable + L]:
/// a replica never prepares beyond its high water mark.
fn within_its_water_marks(signed: &SignedMessage, log_window: u64) -> bool {
    let Message::ViewChange { stable_seq, ref prepared, .. } = signed.message else { return false };
    let high_water = stable_seq.0.saturating_add(log_window);
    prepared.iter().filter_map(|certificate| certificate.slot()).all(|(_, seq, ..)| seq.0 <= high_water)
}

fn view_change_target(signed: &SignedMessage) -> Option<View> {
    match signed.message {
        Message::ViewChange { new_view, .. } => Some(new_view),
        _ => None,
    }
}

#[cfg(test)]
#[path = "drop_tests.rs"]
mod drop_tests;

#[cfg(test)]
#[path = "new_view_tests.rs"]
mod new_view_tests;
