//! Byzantine behaviour for the simulation. The adversary runs an honest
//! replica and rewrites what it sends, signing only with its own key — as a
//! real attacker could.

use crate::crypto::Keypair;
use crate::protocol::{AgentId, Batch, Committee, Message, Output, SignedMessage};
use crate::rng::SeededRng;
use std::sync::Arc;

/// What a Byzantine validator in the simulation does to its honest replica's outputs.
pub enum Adversary {
    Equivocate(Box<Equivocator>),
    /// Sends nothing from `after_us` on: a crash, as its peers see it.
    Silent {
        after_us: u64,
    },
}

impl Adversary {
    pub fn rewrite(
        &mut self,
        now: crate::protocol::Micros,
        outputs: Vec<Output>,
        committee: &Committee,
    ) -> Vec<Output> {
        match self {
            Adversary::Equivocate(equivocator) => equivocator.rewrite(outputs, committee),
            Adversary::Silent { after_us } if now.0 >= *after_us => Vec::new(),
            Adversary::Silent { .. } => outputs,
        }
    }
}

/// A primary that signs two batches for every sequence number, sends one to
/// some backups and the other to the rest, and commits to each group's batch.
pub struct Equivocator {
    me: AgentId,
    keypair: Keypair,
    rng: SeededRng,
}

impl Equivocator {
    pub fn new(me: AgentId, keypair: Keypair, rng: SeededRng) -> Equivocator {
        Equivocator { me, keypair, rng }
    }

    pub fn rewrite(&mut self, outputs: Vec<Output>, committee: &Committee) -> Vec<Output> {
        let mut rewritten = Vec::with_capacity(outputs.len());
        for output in outputs {
            match &output {
                Output::Broadcast(signed) if matches!(signed.message, Message::PrePrepare { .. }) => {
                    self.equivocate(signed, committee, &mut rewritten)
                }
                _ => rewritten.push(output),
            }
        }
        rewritten
    }

    fn equivocate(&mut self, original: &Arc<SignedMessage>, committee: &Committee, out: &mut Vec<Output>) {
        let Message::PrePrepare { view, seq, digest, batch } = &original.message else { return };
        let mut other_requests = batch.requests.clone();
        other_requests.pop();
        let other_batch = Arc::new(Batch { requests: other_requests });
        let other_digest = other_batch.digest();
        let mut peers: Vec<AgentId> = committee.members().iter().map(|m| m.id).filter(|id| *id != self.me).collect();
        let rotation = self.rng.below(peers.len() as u64) as usize;
        peers.rotate_left(rotation);
        let first_group = self.rng.between(1, peers.len() as u64 - 1) as usize;
        let epoch = committee.epoch();
        let sign = |message| Arc::new(SignedMessage::sign(message, epoch, self.me, &self.keypair));
        let other = sign(Message::PrePrepare { view: *view, seq: *seq, digest: other_digest, batch: other_batch });
        for (i, peer) in peers.into_iter().enumerate() {
            let (pre_prepare, digest) =
                if i < first_group { (original.clone(), *digest) } else { (other.clone(), other_digest) };
            out.push(Output::SendTo(peer, pre_prepare));
            out.push(Output::SendTo(peer, sign(Message::Commit { view: *view, seq: *seq, digest })));
        }
    }
}
