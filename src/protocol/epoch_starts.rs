//! Where each membership epoch starts, as far as a verifier may believe it.
//!
//! A checkpoint proof counts only when it comes from the committee in force at
//! its sequence number, so the boundaries between epochs decide which keys
//! prove what. A boundary is decided when a change executes, after the
//! operator announced it: a validator that joins by state transfer is handed
//! the committees but not where they start. It must not take the starts from
//! the snapshot it is offered either: a quorum of retired keys could sign one
//! whose history ends their own epoch far in the future and proves a forged
//! ledger there.
//!
//! So a start a verifier did not compute itself is believed only when f+1
//! members of the newest epoch it knows (or of a later one, announced in the
//! operator-signed history) vouch for the same list of starts: at most f of
//! them lie, so one honest member vouches. Every honest member vouches the
//! same way: a snapshot it sends carries its membership state, and its
//! signature over the state digest covers the starts.
//!
//! The limit is the one every reconfigurable BFT system has (weak
//! subjectivity): a validator that missed a whole epoch, whose members have
//! since retired and turned, cannot tell that epoch from the newest one.

use super::committee::Committee;
use super::types::{AgentId, Epoch, Seq};
use std::collections::BTreeMap;

/// What each sender last vouched for: its epoch and the starts of every epoch
/// after the first, up to its own.
#[derive(Default)]
pub(super) struct StartVouches {
    by_sender: BTreeMap<AgentId, (Epoch, Vec<Seq>)>,
}

impl StartVouches {
    /// `sender`, a member of `epoch` whose signature was checked, vouches that
    /// the epochs after the first start after `starts` (in order, through
    /// `epoch`). Nothing about the list is checked: a list that more than f
    /// members of one epoch vouch for is an honest member's, complete through
    /// its epoch with every start decided; a liar's list wins nothing alone.
    pub(super) fn vouch(&mut self, sender: AgentId, epoch: Epoch, starts: Vec<Seq>) {
        self.by_sender.insert(sender, (epoch, starts));
    }

    /// The starts that more than f members of one epoch at or after
    /// `at_least` vouch for (the newest such epoch), with that epoch.
    /// `committee` gives each epoch's committee.
    pub(super) fn vouched<'a>(
        &self,
        at_least: Epoch,
        committee: impl Fn(Epoch) -> Option<&'a Committee>,
    ) -> Option<(Epoch, Vec<Seq>)> {
        let mut candidates: Vec<&(Epoch, Vec<Seq>)> =
            self.by_sender.values().filter(|(epoch, _)| *epoch >= at_least).collect();
        candidates.sort_by_key(|vouch| std::cmp::Reverse(vouch.0));
        candidates.into_iter().find_map(|(epoch, starts)| {
            let committee = committee(*epoch)?;
            let vouchers = self
                .by_sender
                .iter()
                .filter(|(sender, vouch)| committee.contains(**sender) && vouch.0 == *epoch && vouch.1 == *starts)
                .count();
            (vouchers > committee.f()).then(|| (*epoch, starts.clone()))
        })
    }
}

#[cfg(test)]
#[path = "epoch_starts_tests.rs"]
mod tests;
