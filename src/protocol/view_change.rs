//! What a NEW-VIEW must contain, computed from a quorum of VIEW-CHANGEs. The
//! new primary builds its pre-prepares from this plan and every backup (its
//! verifier) recomputes it, so a faulty primary cannot drop or alter a batch
//! that may have committed.
//!
//! Which VIEW-CHANGEs are enough ([`enough_view_changes`]): a NEW-VIEW must
//! see every batch that may have committed, and a passive sender (its log
//! lost) may have lost the certificates it held. A quorum of senders that
//! kept their logs is enough, as in the paper: with at most f members
//! faulty or passive, it meets every prepared quorum in an honest member
//! that still holds its certificate. With more than f passive (several logs
//! lost at once, beyond what a quorum can mask) no such quorum exists; then
//! the NEW-VIEW waits for every member's VIEW-CHANGE, so every member that
//! kept its log, and so every certificate any of them holds, is heard.
//! (Nothing can recover a batch whose every certificate was in lost logs.)

use super::committee::Committee;
use super::message::{Batch, Message, PreparedCertificate, SignedMessage};
use super::types::{Seq, View};
use crate::crypto::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewViewPlan {
    /// The highest stable checkpoint among the VIEW-CHANGEs: the new view starts above it.
    pub min_seq: Seq,
    pub min_digest: Digest,
    /// The highest prepared sequence number; the new primary continues after it.
    pub max_seq: Seq,
    /// For every sequence number in (min_seq, max_seq]: the batch prepared in
    /// the highest view, or an empty (null) batch where none prepared.
    pub slots: BTreeMap<Seq, (Digest, Arc<Batch>)>,
}

/// Whether these VIEW-CHANGEs (verified, from distinct members of
/// `committee`, for one view) may start the view: a quorum of senders that
/// kept their logs, or every member (see the module comment).
pub fn enough_view_changes(committee: &Committee, view_changes: &[Arc<SignedMessage>]) -> bool {
    let intact = view_changes
        .iter()
        .filter(|signed| matches!(signed.message, Message::ViewChange { passive: false, .. }))
        .count();
    intact >= committee.quorum() || (view_changes.len() >= committee.n() && intact > 0)
}

/// Plans the new view from VIEW-CHANGE messages (already verified). Messages
/// of other kinds are ignored.
pub fn plan_new_view(view_changes: &[Arc<SignedMessage>]) -> NewViewPlan {
    let mut min_seq = Seq(0);
    let mut min_digest = Digest::default();
    let mut best: BTreeMap<Seq, (View, Digest, Arc<Batch>)> = BTreeMap::new();
    for signed in view_changes {
        let Message::ViewChange { stable_seq, stable_digest, prepared, .. } = &signed.message else { continue };
        if *stable_seq > min_seq {
            (min_seq, min_digest) = (*stable_seq, *stable_digest);
        }
        for (view, seq, digest, batch) in prepared.iter().filter_map(PreparedCertificate::slot) {
            if best.get(&seq).is_none_or(|(known, ..)| view > *known) {
                best.insert(seq, (view, digest, batch.clone()));
            }
        }
    }
    let max_seq = best.keys().next_back().copied().unwrap_or(min_seq).max(min_seq);
    let null = Arc::new(Batch::default());
    let null_digest = null.digest();
    let slots = (min_seq.0 + 1..=max_seq.0)
        .map(Seq)
        .map(|seq| match best.get(&seq) {
            Some((_, digest, batch)) => (seq, (*digest, batch.clone())),
            None => (seq, (null_digest, null.clone())),
        })
        .collect();
    NewViewPlan { min_seq, min_digest, max_seq, slots }
}

#[cfg(test)]
#[path = "view_change_tests.rs"]
mod tests;
