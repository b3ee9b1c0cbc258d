//! A replica that cannot prove what it signed: its write-ahead log was lost,
//! truncated or corrupt. Signing again in a slot it may have signed before
//! would be equivocation (an honest validator convicted; with f+1 of them,
//! two quorums could commit different batches). So it rejoins passive, as
//! CometBFT's double-sign protection does: it signs no PRE-PREPARE, PREPARE,
//! COMMIT, CHECKPOINT or VIEW-CHANGE until it knows a bound past everything
//! it could have signed, then votes only beyond it.
//!
//! The bound comes from its peers. Every message a member signs tells where
//! that member is (its view, the sequence numbers it works on). Once a
//! quorum of the other members that kept their logs has spoken, the bound is
//! one view past the highest view heard of, and one log window past the
//! highest sequence number heard of. Why a quorum of others: the last
//! checkpoint this replica made stable carried a quorum of signatures, so at
//! least f other honest members executed it, and a quorum of the others
//! leaves out fewer than f of them: one is heard. This replica never voted
//! beyond its own high water mark (its stable checkpoint plus a window), nor
//! in a view no honest member has reached or is changing to. Its own
//! signatures coming back (in certificates, proofs, retransmissions) raise
//! the bound further. Passive peers say so (STATUS and VIEW-CHANGE carry a
//! `passive` flag): where they stand tells nothing of where they were, so
//! they are not counted and their position is not taken.
//!
//! More than f passive at once (several logs lost together) leaves no quorum
//! of members that kept their logs. Then the bound waits until every other
//! member has spoken, one at least with its log: the highest position of
//! all the intact members is past everything any of them signed, and past
//! what the lost logs signed as long as one intact member got as far as
//! they did. (If every member that reached a slot lost its log, what was
//! signed there is gone for good: no rule can tell it.) With its bound, a
//! passive replica asks for the first view past it
//! ([`Replica::first_view_it_may_ask_for`]) instead of the next one, so the
//! passive members, however many, meet in a view none of them was ever in;
//! the NEW-VIEW there waits for every member's VIEW-CHANGE when the intact
//! ones are fewer than a quorum ([`crate::protocol::view_change`]), so the
//! certificates of the intact logs carry every batch that may have committed
//! into the new view, and what they executed below it comes by state transfer.
//!
//! While passive it still executes what a quorum commits, installs
//! snapshots and makes checkpoints stable on its peers' signatures: it
//! catches up without voting. It votes again in any view above the bound,
//! and in the current view for sequence numbers above it; once its stable
//! checkpoint (or its view) passes the bound it is active for good.

use super::Replica;
use crate::app::Application;
use crate::protocol::message::{Message, SignedMessage};
use crate::protocol::recovered::Passive;
use crate::protocol::types::{AgentId, Seq, View};
use std::collections::BTreeMap;

/// Where a member was last seen.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    view: View,
    seq: Seq,
    /// It said it is passive, in its latest STATUS or VIEW-CHANGE.
    passive: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Amnesia {
    /// Each member that spoke: the highest position it was seen at, and whether it is passive.
    seen: BTreeMap<AgentId, Seen>,
    /// The highest of this replica's own signatures that came back.
    own: (View, Seq),
    /// Past everything this replica could have signed, once a quorum spoke.
    bound: Option<(View, Seq)>,
}

/// The view and the highest sequence number a message speaks for.
fn position(signed: &SignedMessage) -> (View, Seq) {
    match &signed.message {
        Message::PrePrepare { view, seq, .. }
        | Message::Prepare { view, seq, .. }
        | Message::Commit { view, seq, .. } => (*view, *seq),
        Message::Checkpoint { seq, .. } => (View(0), *seq),
        Message::Status { view, low_water, last_executed, .. } => (*view, (*low_water).max(*last_executed)),
        Message::StateSnapshot { seq, .. } => (View(0), *seq),
        Message::ViewChange { new_view, stable_seq, prepared, .. } => {
            let highest = prepared.iter().filter_map(|c| c.slot()).map(|(_, seq, ..)| seq).max();
            (*new_view, highest.unwrap_or(*stable_seq).max(*stable_seq))
        }
        Message::NewView { view, pre_prepares, .. } => {
            let highest = pre_prepares.iter().map(|p| position(p).1).max().unwrap_or_default();
            (*view, highest)
        }
    }
}

/// Whether the sender says it is passive (only STATUS and VIEW-CHANGE say).
fn says_passive(signed: &SignedMessage) -> Option<bool> {
    match signed.message {
        Message::Status { passive, .. } | Message::ViewChange { passive, .. } => Some(passive),
        _ => None,
    }
}

impl<A: Application> Replica<A> {
    /// This replica lost the record of what it signed: it stays passive
    /// until it learns a bound past all of it (see the module comment).
    pub fn forget_what_it_signed(mut self) -> Replica<A> {
        self.amnesia = Some(Amnesia::default());
        self
    }

    /// Passive: it signs no vote until it is past everything it may have signed before.
    pub fn is_passive(&self) -> bool {
        self.amnesia.is_some()
    }

    /// What the log must keep of the passive state (none once active).
    pub fn passive(&self) -> Option<Passive> {
        self.amnesia.as_ref().map(|amnesia| Passive { bound: amnesia.bound })
    }

    /// Passive again after a restart, with the bound the log kept.
    pub(super) fn resume_passive(&mut self, passive: Passive) {
        self.amnesia = Some(Amnesia { bound: passive.bound, ..Amnesia::default() });
    }

    /// Learns from a message where its signer is, and from this replica's
    /// own signatures coming back what it signed before.
    pub(super) fn observe_for_amnesia(&mut self, signed: &SignedMessage) {
        let (me, quorum, window) = (self.me, self.committee.quorum(), self.params.log_window);
        let Some(amnesia) = &mut self.amnesia else { return };
        let at = position(signed);
        if signed.sender == me {
            amnesia.own = amnesia.own.max(at);
        } else if self.committee.contains(signed.sender) {
            let known = amnesia.seen.entry(signed.sender).or_default();
            known.passive = says_passive(signed).unwrap_or(known.passive);
            if !known.passive {
                (known.view, known.seq) = (known.view.max(at.0), known.seq.max(at.1));
            }
        }
        let others = self.committee.n().saturating_sub(1);
        let intact = amnesia.seen.values().filter(|seen| !seen.passive).count();
        let everyone = amnesia.seen.len() >= others && intact > 0;
        if amnesia.bound.is_none() && (intact >= quorum.min(others) || everyone) {
            let intact = amnesia.seen.values().filter(|seen| !seen.passive);
            let view = intact.clone().map(|seen| seen.view).max().unwrap_or_default();
            let seq = intact.map(|seen| seen.seq).max().unwrap_or_default();
            amnesia.bound = Some((view.next(), Seq(seq.0.saturating_add(window))));
            self.stats.passive_bound_learned += 1;
        }
        if let Some((view, seq)) = &mut amnesia.bound {
            *view = (*view).max(amnesia.own.0);
            *seq = (*seq).max(amnesia.own.1);
        }
    }

    /// Whether this replica may sign a PRE-PREPARE, PREPARE or COMMIT for (view, seq).
    pub(super) fn may_vote(&self, view: View, seq: Seq) -> bool {
        match &self.amnesia {
            None => true,
            Some(amnesia) => amnesia.bound.is_some_and(|(bound_view, bound_seq)| view > bound_view || seq > bound_seq),
        }
    }

    /// Whether this replica may sign a CHECKPOINT for `seq`.
    pub(super) fn may_sign_checkpoint(&self, seq: Seq) -> bool {
        match &self.amnesia {
            None => true,
            Some(amnesia) => amnesia.bound.is_some_and(|(_, bound_seq)| seq > bound_seq),
        }
    }

    /// Passive with a bound: the first view it may ask for, one past the
    /// bound's view (none when active, or while it knows no bound).
    pub(super) fn first_view_it_may_ask_for(&self) -> Option<View> {
        let (bound_view, _) = self.amnesia.as_ref()?.bound?;
        Some(bound_view.next())
    }

    /// Whether this replica may sign a VIEW-CHANGE for `target`.
    pub(super) fn may_ask_for_view(&self, target: View) -> bool {
        match &self.amnesia {
            None => true,
            Some(amnesia) => amnesia.bound.is_some_and(|(bound_view, _)| target > bound_view),
        }
    }

    /// Ends the passive state once the stable checkpoint or the view is past the bound.
    pub(super) fn leave_amnesia_if_past(&mut self) {
        let past = self
            .amnesia
            .as_ref()
            .and_then(|amnesia| amnesia.bound)
            .is_some_and(|(view, seq)| self.stable.seq >= seq || self.view > view);
        if past {
            self.amnesia = None;
        }
    }
}

#[cfg(test)]
#[path = "amnesia_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "passive_vote_tests.rs"]
mod passive_vote_tests;
