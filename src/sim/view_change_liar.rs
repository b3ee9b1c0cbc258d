//! A Byzantine agent in the view-change plane ([`super::Scenario::ViewChangeLiars`]):
//! it runs the honest replica and lies in what that replica signs there.
//!
//! - Its VIEW-CHANGE carries a fabricated certificate (a pre-prepare signed
//!   by a member that is not that view's primary, PREPAREs forged under
//!   other members' names, or PREPAREs for another digest), or withholds
//!   every certificate, or claims a stable checkpoint its proof does not prove.
//! - As a new primary, its NEW-VIEW has a wrong plan: a prepared batch
//!   omitted, another digest re-proposed at a planned sequence number, a
//!   pre-prepare at the checkpoint (an executed slot) or beyond the high
//!   water mark, or fewer VIEW-CHANGEs than may start the view. The honest
//!   NEW-VIEW is never sent: the view must fail and the next one start.
//! - As primary it withholds some pre-prepares (so that view changes
//!   happen) and sends others also far beyond every high water mark; with
//!   each new CHECKPOINT it replays a stale one of its own.
//!
//! Each lie must meet a rejection the verifier or the replica already has;
//! the invariants catch any that gets through.

use crate::crypto::Keypair;
use crate::protocol::{
    AgentId, Batch, Committee, Message, Output, PreparedCertificate, ProtocolParams, Seq, SignedMessage, View,
};
use crate::rng::SeededRng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How far beyond its own sequence number a lying primary pre-prepares: past any window a run reaches.
const BEYOND_EVERY_WINDOW: u64 = 1_000;

pub struct ViewChangeLiar {
    me: AgentId,
    key: Keypair,
    rng: SeededRng,
    log_window: u64,
    /// The slots it pre-prepared, and whether it withholds each.
    slots: BTreeMap<(View, Seq), bool>,
    /// Its own CHECKPOINTs, for replaying stale ones.
    checkpoints: Vec<Arc<SignedMessage>>,
    /// Lies told: for the scenario's coverage assertions.
    pub told: usize,
    /// Of which VIEW-CHANGEs and NEW-VIEWs.
    pub told_in_view_changes: usize,
}

impl ViewChangeLiar {
    pub fn new(me: AgentId, key: Keypair, params: &ProtocolParams, seed: u64) -> ViewChangeLiar {
        ViewChangeLiar {
            me,
            key,
            rng: SeededRng::new(seed),
            log_window: params.log_window,
            slots: BTreeMap::new(),
            checkpoints: Vec::new(),
            told: 0,
            told_in_view_changes: 0,
        }
    }

    /// What it sends instead of what its replica produced.
    pub fn rewrite(&mut self, outputs: Vec<Output>, committee: &Committee) -> Vec<Output> {
        let mut rewritten = Vec::with_capacity(outputs.len());
        for output in outputs {
            let Output::Broadcast(signed) = &output else {
                rewritten.push(output);
                continue;
            };
            if signed.sender != self.me {
                rewritten.push(output);
                continue;
            }
            match &signed.message {
                Message::ViewChange { .. } if self.rng.chance(0.7) => {
                    rewritten.push(Output::Broadcast(self.lying_view_change(signed, committee)));
                }
                Message::NewView { .. } => rewritten.push(Output::Broadcast(self.wrong_new_view(signed))),
                // Withheld for good (retransmissions too): the backups must
                // suspect it, so view changes (and their lies) happen.
                Message::PrePrepare { view, seq, .. } if self.withholds(*view, *seq) => {}
                Message::PrePrepare { view, seq, digest, batch } if self.rng.chance(0.3) => {
                    let far = Seq(seq.0 + BEYOND_EVERY_WINDOW + self.rng.below(self.log_window));
                    let beyond = Message::PrePrepare { view: *view, seq: far, digest: *digest, batch: batch.clone() };
                    rewritten.push(output.clone());
                    rewritten.push(Output::Broadcast(self.sign(signed, beyond)));
                    self.told += 1;
                }
                Message::Checkpoint { .. } => {
                    if !self.checkpoints.is_empty() && self.rng.chance(0.5) {
                        let stale = self.rng.below(self.checkpoints.len() as u64) as usize;
                        rewritten.push(Output::Broadcast(self.checkpoints[stale].clone()));
                        self.told += 1;
                    }
                    self.checkpoints.push(signed.clone());
                    rewritten.push(output);
                }
                _ => rewritten.push(output),
            }
        }
        rewritten
    }

    /// Whether it withholds its pre-prepare for (view, seq): decided once per slot.
    fn withholds(&mut self, view: View, seq: Seq) -> bool {
        let rng = &mut self.rng;
        *self.slots.entry((view, seq)).or_insert_with(|| rng.chance(0.2))
    }

    fn sign(&self, like: &SignedMessage, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, like.epoch, self.me, &self.key))
    }

    /// Signed under `sender`'s name with this agent's key: a forgery.
    fn forge(&self, like: &SignedMessage, sender: AgentId, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, like.epoch, sender, &self.key))
    }

    fn lying_view_change(&mut self, signed: &SignedMessage, committee: &Committee) -> Arc<SignedMessage> {
        let Message::ViewChange { new_view, stable_seq, stable_digest, checkpoint_proof, prepared, passive } =
            signed.message.clone()
        else {
            return Arc::new(signed.clone());
        };
        self.told += 1;
        self.told_in_view_changes += 1;
        let (mut stable_seq, mut prepared) = (stable_seq, prepared);
        let seq = stable_seq.next();
        let view = View(new_view.0.saturating_sub(1));
        let batch = Arc::new(Batch::default());
        let digest = batch.digest();
        let other = crate::crypto::Digest([0xEE; 32]);
        let primary = committee.primary(view);
        let backups: Vec<AgentId> =
            committee.members().iter().map(|m| m.id).filter(|id| *id != primary).take(committee.quorum() - 1).collect();
        let pre_prepare = |liar: &Self, sender| {
            let message = Message::PrePrepare { view, seq, digest, batch: batch.clone() };
            liar.forge(signed, sender, message)
        };
        match self.rng.below(5) {
            // A pre-prepare of another primary: signed with this agent's key under the primary's name.
            0 => {
                let prepares = backups.iter().map(|id| self.forge(signed, *id, Message::Prepare { view, seq, digest }));
                let certificate =
                    PreparedCertificate { pre_prepare: pre_prepare(self, primary), prepares: prepares.collect() };
                prepared.push(certificate);
            }
            // Its own pre-prepare, and PREPAREs for another digest.
            1 => {
                let prepares =
                    backups.iter().map(|id| self.forge(signed, *id, Message::Prepare { view, seq, digest: other }));
                let certificate =
                    PreparedCertificate { pre_prepare: pre_prepare(self, self.me), prepares: prepares.collect() };
                prepared.push(certificate);
            }
            // Withholds every certificate it holds: a valid message, and no batch may get lost for it.
            2 => prepared.clear(),
            // A stable checkpoint its proof does not prove.
            3 => stable_seq = Seq(stable_seq.0 + 1),
            // A certificate beyond its high water mark (forged: no real one can exist).
            _ => {
                let far = Seq(stable_seq.0 + self.log_window + 1);
                let message = Message::PrePrepare { view, seq: far, digest, batch: batch.clone() };
                let pre_prepare = self.forge(signed, primary, message);
                let prepares =
                    backups.iter().map(|id| self.forge(signed, *id, Message::Prepare { view, seq: far, digest }));
                prepared.push(PreparedCertificate { pre_prepare, prepares: prepares.collect() });
            }
        }
        let message = Message::ViewChange { new_view, stable_seq, stable_digest, checkpoint_proof, prepared, passive };
        self.sign(signed, message)
    }

    fn wrong_new_view(&mut self, signed: &SignedMessage) -> Arc<SignedMessage> {
        let Message::NewView { view, mut view_changes, mut pre_prepares } = signed.message.clone() else {
            return Arc::new(signed.clone());
        };
        self.told += 1;
        self.told_in_view_changes += 1;
        let lowest = pre_prepares.iter().find_map(|p| match p.message {
            Message::PrePrepare { seq, .. } => Some(seq),
            _ => None,
        });
        let first_free = pre_prepares
            .iter()
            .filter_map(|p| match p.message {
                Message::PrePrepare { seq, .. } => Some(seq),
                _ => None,
            })
            .max()
            .map_or(Seq(1), Seq::next);
        let pre_prepare_at = |liar: &Self, seq: Seq, batch: Arc<Batch>| {
            liar.sign(signed, Message::PrePrepare { view, seq, digest: batch.digest(), batch })
        };
        match self.rng.below(5) {
            // A prepared batch (or null) left out of the plan.
            0 if !pre_prepares.is_empty() => {
                pre_prepares.remove(self.rng.below(pre_prepares.len() as u64) as usize);
            }
            // Another digest re-proposed at a planned sequence number: a
            // prepared batch where the plan has a null one, or the reverse.
            1 if !pre_prepares.is_empty() => {
                let at = self.rng.below(pre_prepares.len() as u64) as usize;
                let batch_of = |p: &Arc<SignedMessage>| match &p.message {
                    Message::PrePrepare { batch, .. } => Some(batch.clone()),
                    _ => None,
                };
                let prepared = pre_prepares.iter().filter_map(batch_of).find(|batch| !batch.requests.is_empty());
                if let (Message::PrePrepare { seq, batch, .. }, Some(prepared)) = (&pre_prepares[at].message, prepared)
                {
                    let other = if batch.requests.is_empty() { prepared } else { Arc::new(Batch::default()) };
                    pre_prepares[at] = pre_prepare_at(self, *seq, other);
                }
            }
            // A pre-prepare at or below the checkpoint the plan starts above: an executed slot (min-s wrong).
            2 => {
                let seq = lowest.map_or(first_free, |seq| Seq(seq.0.saturating_sub(1)));
                pre_prepares.insert(0, pre_prepare_at(self, seq, Arc::new(Batch::default())));
            }
            // A pre-prepare beyond the high water mark (max-s wrong).
            3 => {
                pre_prepares.push(pre_prepare_at(self, Seq(first_free.0 + self.log_window), Arc::new(Batch::default())))
            }
            // Fewer VIEW-CHANGEs than may start the view.
            _ => {
                view_changes.pop();
            }
        }
        self.sign(signed, Message::NewView { view, view_changes, pre_prepares })
    }
}
