//! The records of a validator's write-ahead log: their format, how the node
//! derives them from one replica step, and how they fold back into a
//! [`RecoveredState`]. Pure: the node decides what to persist, the
//! [`crate::wal`] writes it.
//!
//! Records are derived from what the replica emits — the messages it signed,
//! the views it entered, the batches it executed, the checkpoints that became
//! stable — plus the prepared certificate and accepted pre-prepare behind
//! each vote, read from the replica after the step. A record that would not
//! change the state (a resent vote) is not written.

use crate::app::Application;
use crate::crypto::{Digest, PublicKey};
use crate::ledger::Ledger;
use crate::protocol::{
    slot_of, AgentId, Batch, Message, Output, Passive, RecoveredCheckpoint, RecoveredState, Replica, Seq,
    SignedMessage, View,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// First byte of every encoded record; a record of another format is refused.
/// 2: requests carry a signed `Tx` with an operation (1 carried a transfer).
/// 3: a snapshot record holds the application's snapshot chunks (the swarm's
/// built-in application: the ledger and the memory), not a serialized ledger.
pub(crate) const FORMAT: u8 = 3;

/// Whose log this is: a log of another validator or another genesis is never replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub agent: AgentId,
    pub public_key: PublicKey,
    pub genesis: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum WalRecord<A: Application = Ledger> {
    /// The first record of a new log.
    Identity(Identity),
    /// The pre-prepare this validator signed as primary or accepted as backup.
    PrePrepare(Arc<SignedMessage>),
    /// A PREPARE, COMMIT, CHECKPOINT or VIEW-CHANGE this validator signed.
    Own(Arc<SignedMessage>),
    /// The prepares of the certificate behind this validator's COMMIT of (view, seq).
    Prepared { view: View, seq: Seq, prepares: Vec<Arc<SignedMessage>> },
    /// A view started, with its NEW-VIEW.
    EnteredView { view: View, new_view: Option<Arc<SignedMessage>> },
    /// A batch was executed; the batch itself only when no recorded pre-prepare carries it.
    Executed { seq: Seq, digest: Digest, batch: Option<Arc<Batch>> },
    /// Everything that still matters at a stable checkpoint; the records before it are dropped.
    Snapshot { identity: Identity, state: RecoveredState<A> },
    /// The validator is passive (an earlier log was lost), or no longer (none).
    Passive(Option<Passive>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    #[error("it is not a record of this format ({0})")]
    Undecodable(String),
    #[error("it was written by another bftswarm release (record format {found}, this release reads {FORMAT})")]
    OtherFormat { found: u8 },
    #[error("it executes batch {seq} that no earlier record holds")]
    MissingBatch { seq: Seq },
}

impl<A: Application> WalRecord<A> {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![FORMAT];
        // Encoding plain data into a Vec cannot fail; an empty record would be refused when read.
        postcard::to_io(self, &mut bytes).ok();
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<WalRecord<A>, FoldError> {
        match bytes.split_first() {
            Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| FoldError::Undecodable(e.to_string())),
            Some((&found, _)) => Err(FoldError::OtherFormat { found }),
            None => Err(FoldError::Undecodable("empty".into())),
        }
    }

    /// Applies this record to `state` (the identity records are the caller's).
    pub fn fold_into(self, state: &mut RecoveredState<A>) -> Result<(), FoldError> {
        match self {
            WalRecord::Identity(_) => {}
            WalRecord::PrePrepare(signed) => state.accept_pre_prepare(signed),
            WalRecord::Own(signed) => state.record_own(signed),
            WalRecord::Prepared { view, seq, prepares } => {
                state.record_prepared(view, seq, prepares);
            }
            WalRecord::EnteredView { view, new_view } => state.enter_view(view, new_view),
            WalRecord::Executed { seq, digest, batch } => {
                let batch = batch.or_else(|| state.batch_for(seq, digest)).ok_or(FoldError::MissingBatch { seq })?;
                state.record_executed(seq, batch);
            }
            WalRecord::Snapshot { state: snapshot, .. } => *state = snapshot,
            WalRecord::Passive(passive) => state.passive = passive,
        }
        Ok(())
    }
}

/// Derives the records of one step from its outputs, folding each into
/// `mirror` (the state the log holds) as it goes, so nothing is written twice.
struct Recorder<'a, A: Application> {
    mirror: &'a mut RecoveredState<A>,
    replica: &'a Replica<A>,
    records: Vec<WalRecord<A>>,
    stable: bool,
}

impl<'a, A: Application> Recorder<'a, A> {
    fn observe(&mut self, output: &Output) {
        match output {
            Output::Broadcast(signed) | Output::SendTo(_, signed) if signed.sender == self.replica.id() => {
                self.own(signed)
            }
            Output::ViewChanged { view, .. } => {
                let new_view = self.replica.last_new_view().cloned();
                self.push(WalRecord::EnteredView { view: *view, new_view });
            }
            Output::Executed(executed) => {
                let (seq, digest) = (executed.seq, executed.digest);
                let known = self.mirror.batch_for(seq, digest).is_some();
                let batch = (!known).then(|| executed.batch.clone());
                self.push(WalRecord::Executed { seq, digest, batch });
            }
            Output::CheckpointStable { .. } => self.stable = true,
            _ => {}
        }
    }

    fn own(&mut self, signed: &Arc<SignedMessage>) {
        match signed.message {
            Message::PrePrepare { .. } => {
                if !self.mirror.holds_pre_prepare(signed) {
                    self.push(WalRecord::PrePrepare(signed.clone()));
                }
                return;
            }
            Message::Prepare { view, seq, digest } => {
                let accepted = self.replica.pre_prepare_at(seq).cloned();
                self.ensure_pre_prepare(accepted, (view, seq, digest));
            }
            Message::Commit { view, seq, digest } => {
                let certificate = self
                    .replica
                    .certificate_at(seq)
                    .filter(|c| c.slot().is_some_and(|(v, s, d, _)| (v, s, d) == (view, seq, digest)));
                if let Some(certificate) = certificate.cloned() {
                    self.ensure_pre_prepare(Some(certificate.pre_prepare.clone()), (view, seq, digest));
                    if !self.mirror.holds_certificate(seq, &certificate) {
                        self.push(WalRecord::Prepared { view, seq, prepares: certificate.prepares });
                    }
                }
            }
            Message::Checkpoint { .. } | Message::ViewChange { .. } => {}
            Message::Status { .. } | Message::StateSnapshot { .. } | Message::NewView { .. } => return,
        }
        if !self.mirror.holds_own(signed) {
            self.push(WalRecord::Own(signed.clone()));
        }
    }

    /// Records the pre-prepare behind a vote for `slot`, unless it is recorded.
    fn ensure_pre_prepare(&mut self, pre_prepare: Option<Arc<SignedMessage>>, slot: (View, Seq, Digest)) {
        let Some(pre_prepare) = pre_prepare.filter(|pp| slot_of(pp) == Some(slot)) else { return };
        if !self.mirror.holds_pre_prepare(&pre_prepare) {
            self.push(WalRecord::PrePrepare(pre_prepare));
        }
    }

    fn push(&mut self, record: WalRecord<A>) {
        // Folding what the replica just produced cannot miss a batch: the
        // record carries it unless the mirror holds it.
        let _ = record.clone().fold_into(self.mirror);
        self.records.push(record);
    }
}

/// What a node's log holds: the state a restart rebuilds the replica from,
/// kept in step with every step's records.
pub(crate) struct LogMirror<A: Application> {
    pub(crate) state: RecoveredState<A>,
}

impl<A: Application> LogMirror<A> {
    /// Folds one step into the mirror and returns its records, and whether a
    /// checkpoint became stable (the mirror is then cut at it, and a log
    /// writes one snapshot of the mirror instead of the records).
    pub(crate) fn fold_step(&mut self, outputs: &[Output], replica: &Replica<A>) -> (Vec<WalRecord<A>>, bool) {
        let mut recorder = Recorder { mirror: &mut self.state, replica, records: Vec::new(), stable: false };
        // Before the votes it allows: a passive replica's new bound is durable
        // before any vote that relies on it leaves.
        if recorder.mirror.passive != replica.passive() {
            recorder.push(WalRecord::Passive(replica.passive()));
        }
        for output in outputs {
            recorder.observe(output);
        }
        let (records, stable) = (recorder.records, recorder.stable);
        if stable {
            self.state.make_stable(stable_checkpoint(replica));
        }
        (records, stable)
    }
}

/// The stable checkpoint a replica holds now, as the log keeps it.
fn stable_checkpoint<A: Application>(replica: &Replica<A>) -> RecoveredCheckpoint<A> {
    let stable = replica.stable_checkpoint();
    RecoveredCheckpoint {
        seq: stable.seq,
        state_digest: stable.state_digest,
        proof: stable.proof.clone(),
        app: replica.stable_app().clone(),
        membership: replica.stable_membership().clone(),
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
