//! What a replica must remember across a crash, as plain data: its view and
//! view change, the messages it signed above its stable checkpoint (so it never
//! signs a different one for the same slot), its prepared certificates, the
//! batches it executed since the checkpoint, and the checkpoint itself with
//! its application state and quorum proof.
//!
//! The caller (the validator's write-ahead log) folds what each step did into
//! a [`RecoveredState`] with the methods below and hands the result to
//! [`crate::protocol::Replica::restore`]. Folding is idempotent: recording the
//! same message twice changes nothing.

use super::message::{Batch, Message, PreparedCertificate, SignedMessage};
use super::types::{AgentId, Seq, View};
use crate::app::Application;
use crate::crypto::Digest;
use crate::ledger::Ledger;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RecoveredState<A: Application = Ledger> {
    pub view: View,
    /// This replica's own VIEW-CHANGE, while it asks for a view above `view`.
    pub view_change: Option<Arc<SignedMessage>>,
    /// The NEW-VIEW that started `view` (none for view 0).
    pub new_view: Option<Arc<SignedMessage>>,
    /// The last stable checkpoint; none means the genesis state.
    pub stable: Option<RecoveredCheckpoint<A>>,
    /// Slots above the stable checkpoint.
    pub slots: BTreeMap<Seq, RecoveredSlot>,
    /// Batches executed above the stable checkpoint, to execute again on restore.
    pub executed: BTreeMap<Seq, Arc<Batch>>,
    /// Own CHECKPOINT messages above the stable checkpoint.
    pub checkpoints: BTreeMap<Seq, Arc<SignedMessage>>,
    /// Set while the replica is passive because an earlier log was lost: a
    /// restart must not forget that it cannot prove what it signed then.
    #[serde(default)]
    pub passive: Option<Passive>,
}

/// A passive replica's bound: it votes only for views or sequence numbers
/// above it (none until a quorum of peers was heard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passive {
    pub bound: Option<(View, Seq)>,
}

impl<A: Application> Default for RecoveredState<A> {
    fn default() -> Self {
        RecoveredState {
            view: View::default(),
            view_change: None,
            new_view: None,
            stable: None,
            slots: BTreeMap::new(),
            executed: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            passive: None,
        }
    }
}

/// A stable checkpoint: the application's state at `seq` and the quorum of
/// signed CHECKPOINTs that proves its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RecoveredCheckpoint<A: Application = Ledger> {
    pub seq: Seq,
    pub state_digest: Digest,
    pub proof: Vec<Arc<SignedMessage>>,
    /// Kept as the application's own snapshot chunks, so any application can
    /// be logged, and one that does not decode is refused as a damaged log.
    #[serde(with = "as_snapshot")]
    pub app: Arc<A>,
    /// The membership history at `seq` (part of the checkpointed state).
    #[serde(default)]
    pub membership: Arc<crate::protocol::MembershipState>,
}

/// One slot: the pre-prepare this replica accepted in the latest view it
/// voted in, its own votes of that view, and its highest prepared certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredSlot {
    pub pre_prepare: Option<Arc<SignedMessage>>,
    pub prepare: Option<Arc<SignedMessage>>,
    pub commit: Option<Arc<SignedMessage>>,
    pub certificate: Option<PreparedCertificate>,
}

/// (view, seq, digest) of a pre-prepare, prepare or commit.
pub fn slot_of(signed: &SignedMessage) -> Option<(View, Seq, Digest)> {
    match signed.message {
        Message::PrePrepare { view, seq, digest, .. }
        | Message::Prepare { view, seq, digest }
        | Message::Commit { view, seq, digest } => Some((view, seq, digest)),
        _ => None,
    }
}

/// The same signed message: a deterministic signature over the same content.
fn same(a: &Option<Arc<SignedMessage>>, b: &SignedMessage) -> bool {
    a.as_ref().is_some_and(|a| a.sender == b.sender && a.signature == b.signature)
}

fn view_of(signed: &Option<Arc<SignedMessage>>) -> Option<View> {
    signed.as_deref().and_then(slot_of).map(|(view, ..)| view)
}

/// An application written as its snapshot and read back with `restore`.
mod as_snapshot {
    use crate::app::{Application, Snapshot};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<A: Application, S: Serializer>(app: &Arc<A>, serializer: S) -> Result<S::Ok, S::Error> {
        app.snapshot().serialize(serializer)
    }

    pub fn deserialize<'de, A: Application, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<A>, D::Error> {
        let snapshot = Snapshot::deserialize(deserializer)?;
        A::restore(&snapshot).map(Arc::new).map_err(D::Error::custom)
    }
}

impl<A: Application> RecoveredState<A> {
    pub fn stable_seq(&self) -> Seq {
        self.stable.as_ref().map_or(Seq(0), |stable| stable.seq)
    }

    /// The highest sequence number executed: the last of `executed` if it
    /// continues the checkpoint without a hole, else the checkpoint.
    pub fn last_executed(&self) -> Seq {
        let mut last = self.stable_seq();
        for seq in self.executed.keys() {
            if *seq != last.next() {
                break;
            }
            last = *seq;
        }
        last
    }

    /// Whether `signed` (a pre-prepare) is already the pre-prepare of its slot.
    pub fn holds_pre_prepare(&self, signed: &SignedMessage) -> bool {
        slot_of(signed).is_some_and(|(_, seq, _)| self.slots.get(&seq).is_some_and(|s| same(&s.pre_prepare, signed)))
    }

    /// Whether this own message is already recorded.
    pub fn holds_own(&self, signed: &SignedMessage) -> bool {
        match signed.message {
            Message::PrePrepare { .. } => self.holds_pre_prepare(signed),
            Message::Prepare { seq, .. } => self.slots.get(&seq).is_some_and(|slot| same(&slot.prepare, signed)),
            Message::Commit { seq, .. } => self.slots.get(&seq).is_some_and(|slot| same(&slot.commit, signed)),
            Message::Checkpoint { seq, .. } => same(&self.checkpoints.get(&seq).cloned(), signed),
            Message::ViewChange { .. } => same(&self.view_change, signed),
            _ => false,
        }
    }

    /// Whether the certificate of `seq` is this one.
    pub fn holds_certificate(&self, seq: Seq, certificate: &PreparedCertificate) -> bool {
        self.slots.get(&seq).and_then(|slot| slot.certificate.as_ref()).is_some_and(|known| {
            known.pre_prepare.signature == certificate.pre_prepare.signature
                && known.prepares.len() == certificate.prepares.len()
        })
    }

    /// The pre-prepare a replica accepted (or, as primary, signed). A newer
    /// view replaces an older one, and with it the votes of the older view.
    pub fn accept_pre_prepare(&mut self, signed: Arc<SignedMessage>) {
        let Some((view, seq, _)) = slot_of(&signed) else { return };
        if seq <= self.stable_seq() {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        if view_of(&slot.pre_prepare).is_some_and(|known| known > view) {
            return;
        }
        if view_of(&slot.pre_prepare) != Some(view) {
            slot.prepare = None;
            slot.commit = None;
        }
        slot.pre_prepare = Some(signed);
    }

    /// A message this replica signed: a PREPARE, COMMIT, CHECKPOINT or VIEW-CHANGE.
    pub fn record_own(&mut self, signed: Arc<SignedMessage>) {
        let stable = self.stable_seq();
        match signed.message {
            Message::PrePrepare { .. } => self.accept_pre_prepare(signed),
            Message::Prepare { seq, .. } | Message::Commit { seq, .. } if seq > stable => {
                let is_prepare = matches!(signed.message, Message::Prepare { .. });
                let slot = self.slots.entry(seq).or_default();
                if is_prepare {
                    slot.prepare = Some(signed);
                } else {
                    slot.commit = Some(signed);
                }
            }
            Message::Checkpoint { seq, .. } if seq > stable => {
                self.checkpoints.insert(seq, signed);
            }
            Message::ViewChange { new_view, .. } if new_view > self.view => self.view_change = Some(signed),
            _ => {}
        }
    }

    /// The prepared certificate of `(view, seq)`: the recorded pre-prepare of
    /// that view and the given prepares. False if that pre-prepare is unknown.
    pub fn record_prepared(&mut self, view: View, seq: Seq, prepares: Vec<Arc<SignedMessage>>) -> bool {
        let Some(slot) = self.slots.get_mut(&seq) else { return false };
        let Some(pre_prepare) = slot.pre_prepare.clone().filter(|pp| slot_of(pp).is_some_and(|(v, ..)| v == view))
        else {
            return false;
        };
        slot.certificate = Some(PreparedCertificate { pre_prepare, prepares });
        true
    }

    /// `view` started (with `new_view`, none for the first view): the view
    /// change is over — even one that asked for a higher view, as the replica
    /// itself leaves it — and the NEW-VIEW's pre-prepares are the slots'
    /// pre-prepares of the new view. Views count within an epoch (each starts
    /// in view 0): a NEW-VIEW of a later epoch than the one held starts a
    /// view of that epoch, whatever its number; one of an earlier epoch is
    /// of a view that ended with its epoch.
    pub fn enter_view(&mut self, view: View, new_view: Option<Arc<SignedMessage>>) {
        let epoch_of = |signed: &Option<Arc<SignedMessage>>| signed.as_ref().map(|signed| signed.epoch);
        match (epoch_of(&new_view), epoch_of(&self.new_view)) {
            (Some(new), Some(held)) if new < held => return,
            (Some(new), Some(held)) if new > held => self.view = view,
            _ => self.view = self.view.max(view),
        }
        self.view_change = None;
        if let Some(Message::NewView { pre_prepares, .. }) = new_view.as_deref().map(|nv| &nv.message) {
            for pre_prepare in pre_prepares {
                self.accept_pre_prepare(pre_prepare.clone());
            }
        }
        if new_view.is_some() {
            self.new_view = new_view;
        }
    }

    /// The batch with `digest` at `seq`, if a recorded pre-prepare carries it.
    pub fn batch_for(&self, seq: Seq, digest: Digest) -> Option<Arc<Batch>> {
        match self.slots.get(&seq)?.pre_prepare.as_deref().map(|pp| &pp.message) {
            Some(Message::PrePrepare { digest: known, batch, .. }) if *known == digest => Some(batch.clone()),
            _ => None,
        }
    }

    pub fn record_executed(&mut self, seq: Seq, batch: Arc<Batch>) {
        if seq > self.stable_seq() {
            self.executed.insert(seq, batch);
        }
    }

    /// A checkpoint became stable: everything at or below it is covered by its state.
    pub fn make_stable(&mut self, checkpoint: RecoveredCheckpoint<A>) {
        if checkpoint.seq <= self.stable_seq() {
            return;
        }
        let above = checkpoint.seq.next();
        self.slots = self.slots.split_off(&above);
        self.executed = self.executed.split_off(&above);
        self.checkpoints = self.checkpoints.split_off(&above);
        self.stable = Some(checkpoint);
    }

    /// Every message this replica signed that the state holds, for audits:
    /// a restarted replica must never have signed two different ones for the
    /// same (kind, view, seq).
    pub fn own_messages(&self, me: AgentId) -> Vec<Arc<SignedMessage>> {
        let mut out: Vec<Arc<SignedMessage>> = Vec::new();
        for slot in self.slots.values() {
            out.extend(slot.pre_prepare.iter().filter(|pp| pp.sender == me).cloned());
            out.extend(slot.prepare.iter().chain(&slot.commit).cloned());
        }
        out.extend(self.checkpoints.values().cloned());
        out.extend(self.view_change.iter().cloned());
        out
    }

    /// The application after the executed batches: the checkpoint's (or
    /// `genesis`) with every executed batch above it executed in order.
    pub fn app(&self, genesis: &A) -> A {
        let mut app = self.stable.as_ref().map_or_else(|| genesis.clone(), |stable| (*stable.app).clone());
        let last = self.last_executed();
        for (seq, batch) in self.executed.range(..=last) {
            app.execute(*seq, &batch.requests);
        }
        app
    }
}

#[cfg(test)]
#[path = "recovered_tests.rs"]
mod tests;
