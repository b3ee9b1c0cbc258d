//! Byzantine behaviour injected into one validator (DESIGN §6). A fault changes
//! only what that agent sends and which client requests it lets its replica
//! see — as a real attacker could. It signs only with the agent's own key and
//! never touches another agent's keys or state.
//!
//! Pure, like the protocol: the actix validator and the simulation run the same
//! [`Adversary`] around an honest [`crate::protocol::Replica`].

use crate::app::{Op, Tx};
use crate::crypto::Keypair;
use crate::ledger::{AccountId, TxId};
use crate::protocol::{AgentId, Batch, ClientId, Committee, Member, Message, Micros, Output, Request, SignedMessage};
use crate::rng::SeededRng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultType {
    /// Sends messages whose signature is corrupted, each with probability p.
    SignatureCorruption,
    /// As primary, signs two batches for each sequence number and sends one to
    /// some backups, the other to the rest, committing to both (with probability p).
    Equivocation,
    /// As primary, drops client requests (each with probability p) so they are never ordered.
    Censorship,
    /// Sends nothing (each message and reply dropped with probability p; 1.0
    /// looks like a crash to its peers, though it keeps executing locally).
    Silent,
    /// Re-sends old signed messages (one with probability p per step).
    Replay,
    /// As primary, alters a client's transfer in its pre-prepare (so the
    /// client's signature no longer verifies) and signs that, with probability p.
    InvalidProposal,
    /// Holds each message (with probability p) for [`DELAY_US`] before sending it.
    Delay,
    /// As an account holder, signs two transfers from its own account with one
    /// nonce and sends each to a different group of validators (an attempt
    /// with probability p each time client requests reach it, one per nonce).
    DoubleSpend,
}

impl FaultType {
    pub const ALL: [FaultType; 8] = [
        FaultType::SignatureCorruption,
        FaultType::Equivocation,
        FaultType::Censorship,
        FaultType::Silent,
        FaultType::Replay,
        FaultType::InvalidProposal,
        FaultType::Delay,
        FaultType::DoubleSpend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultType::SignatureCorruption => "signature-corruption",
            FaultType::Equivocation => "equivocation",
            FaultType::Censorship => "censorship",
            FaultType::Silent => "silent",
            FaultType::Replay => "replay",
            FaultType::InvalidProposal => "invalid-proposal",
            FaultType::Delay => "delay",
            FaultType::DoubleSpend => "double-spend",
        }
    }
}

impl std::str::FromStr for FaultType {
    type Err = String;

    fn from_str(name: &str) -> Result<FaultType, String> {
        FaultType::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
            let known: Vec<&str> = FaultType::ALL.iter().map(|t| t.name()).collect();
            format!("unknown fault type `{name}`; use one of: {}", known.join(", "))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub fault_type: FaultType,
    /// 0.0..=1.0
    pub probability: f64,
    /// The fault starts this long after the agent started (time as the protocol sees it).
    pub after_us: u64,
}

/// How many of its own sent messages a replaying agent remembers.
const REPLAY_MEMORY: usize = 256;

/// How long a delaying agent holds a message: at least this long, and until
/// its next step (the caller steps it at [`Adversary::next_deadline`]).
pub const DELAY_US: u64 = 100_000;

pub struct Adversary {
    me: AgentId,
    keypair: Keypair,
    spec: FaultSpec,
    rng: SeededRng,
    sent: VecDeque<Arc<SignedMessage>>,
    /// Messages a delaying agent holds, with the time each may leave.
    held: VecDeque<(Micros, Output)>,
    /// The nonce of the last double-spend attempt: one attempt per nonce.
    spent_nonce: Option<u64>,
}

impl Adversary {
    pub fn new(me: AgentId, keypair: Keypair, spec: FaultSpec, seed: u64) -> Adversary {
        Adversary {
            me,
            keypair,
            spec,
            rng: SeededRng::new(seed),
            sent: VecDeque::new(),
            held: VecDeque::new(),
            spent_nonce: None,
        }
    }

    pub fn spec(&self) -> FaultSpec {
        self.spec
    }

    /// When held messages are due, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Micros> {
        self.held.front().map(|(due, _)| *due)
    }

    fn active(&self, now: Micros) -> bool {
        now.0 >= self.spec.after_us
    }

    /// Censorship acts on what the replica sees: dropped requests are never proposed.
    pub fn filter_requests(&mut self, now: Micros, requests: Vec<Request>) -> Vec<Request> {
        if self.spec.fault_type != FaultType::Censorship || !self.active(now) {
            return requests;
        }
        let p = self.spec.probability;
        requests.into_iter().filter(|_| !self.rng.chance(p)).collect()
    }

    /// A double-spend attempt, when one is due: two transfers of `amount` from
    /// the agent's own account with its `next_nonce`, to two other members,
    /// each addressed to one group of peers (the agent's replica sees neither).
    /// The caller sends each request to its peers as a client would.
    pub fn double_spend(
        &mut self,
        now: Micros,
        next_nonce: u64,
        amount: u64,
        committee: &Committee,
    ) -> Vec<(AgentId, Request)> {
        let due = self.spec.fault_type == FaultType::DoubleSpend
            && self.active(now)
            && self.spent_nonce.is_none_or(|spent| next_nonce > spent);
        if !due {
            return Vec::new();
        }
        let mut peers: Vec<&Member> = committee.members().iter().filter(|m| m.id != self.me).collect();
        if peers.len() < 2 || !self.rng.chance(self.spec.probability) {
            return Vec::new();
        }
        self.spent_nonce = Some(next_nonce);
        let rotation = self.rng.below(peers.len() as u64) as usize;
        peers.rotate_left(rotation);
        let split = self.rng.between(1, peers.len() as u64 - 1) as usize;
        let from = AccountId(self.keypair.public_key());
        let spend = |to: &Member, id: [u8; 16]| Request {
            client: spender_client(self.me),
            tx: Tx::transfer(TxId(id), from, AccountId(to.public_key), amount, next_nonce).sign(&self.keypair),
        };
        let first = spend(peers[0], self.rng.bytes::<16>());
        let second = spend(peers[split], self.rng.bytes::<16>());
        peers
            .iter()
            .enumerate()
            .map(|(i, peer)| (peer.id, if i < split { first.clone() } else { second.clone() }))
            .collect()
    }

    /// Rewrites what the honest replica would send.
    pub fn rewrite(&mut self, now: Micros, outputs: Vec<Output>, committee: &Committee) -> Vec<Output> {
        if !self.active(now) {
            return outputs;
        }
        let p = self.spec.probability;
        let mut rewritten = Vec::with_capacity(outputs.len());
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            rewritten.extend(self.held.pop_front().map(|(_, output)| output));
        }
        for output in outputs {
            match (self.spec.fault_type, output) {
                (FaultType::Silent, output @ (Output::Broadcast(_) | Output::SendTo(..) | Output::Reply(_))) => {
                    if !self.rng.chance(p) {
                        rewritten.push(output);
                    }
                }
                (FaultType::SignatureCorruption, Output::Broadcast(signed)) => {
                    rewritten.push(Output::Broadcast(self.maybe_corrupt(signed)))
                }
                (FaultType::SignatureCorruption, Output::SendTo(to, signed)) => {
                    rewritten.push(Output::SendTo(to, self.maybe_corrupt(signed)))
                }
                (FaultType::Equivocation, Output::Broadcast(signed))
                    if matches!(signed.message, Message::PrePrepare { .. }) && self.rng.chance(p) =>
                {
                    self.equivocate(&signed, committee, &mut rewritten)
                }
                (FaultType::InvalidProposal, Output::Broadcast(signed))
                    if matches!(&signed.message, Message::PrePrepare { batch, .. } if !batch.requests.is_empty())
                        && self.rng.chance(p) =>
                {
                    rewritten.push(Output::Broadcast(self.forge_proposal(&signed, committee)))
                }
                (FaultType::Delay, output @ (Output::Broadcast(_) | Output::SendTo(..) | Output::Reply(_)))
                    if self.rng.chance(p) =>
                {
                    self.held.push_back((now.plus(DELAY_US), output))
                }
                (FaultType::Replay, output) => {
                    if let Output::Broadcast(signed) | Output::SendTo(_, signed) = &output {
                        self.remember(signed.clone());
                    }
                    rewritten.push(output);
                }
                (_, output) => rewritten.push(output),
            }
        }
        if self.spec.fault_type == FaultType::Replay && !self.sent.is_empty() && self.rng.chance(p) {
            let old = self.rng.below(self.sent.len() as u64) as usize;
            rewritten.extend(self.sent.get(old).map(|signed| Output::Broadcast(signed.clone())));
        }
        rewritten
    }

    fn maybe_corrupt(&mut self, signed: Arc<SignedMessage>) -> Arc<SignedMessage> {
        if !self.rng.chance(self.spec.probability) {
            return signed;
        }
        let mut corrupted = (*signed).clone();
        let byte = self.rng.below(64) as usize;
        corrupted.signature.0[byte] ^= 0x5A;
        Arc::new(corrupted)
    }

    /// The same pre-prepare with its first transfer's amount (another
    /// operation's nonce) raised by one:
    /// the client's signature no longer covers it, the primary's does.
    fn forge_proposal(&self, original: &Arc<SignedMessage>, committee: &Committee) -> Arc<SignedMessage> {
        let Message::PrePrepare { view, seq, batch, .. } = &original.message else { return original.clone() };
        let mut forged = (**batch).clone();
        if let Some(first) = forged.requests.first_mut() {
            match &mut first.tx.tx.op {
                Op::Transfer(transfer) => transfer.amount = transfer.amount.wrapping_add(1),
                _ => first.tx.tx.nonce = first.tx.tx.nonce.wrapping_add(1),
            }
        }
        let forged = Arc::new(forged);
        let message = Message::PrePrepare { view: *view, seq: *seq, digest: forged.digest(), batch: forged };
        Arc::new(SignedMessage::sign(message, committee.epoch(), self.me, &self.keypair))
    }

    fn remember(&mut self, signed: Arc<SignedMessage>) {
        self.sent.push_back(signed);
        if self.sent.len() > REPLAY_MEMORY {
            self.sent.pop_front();
        }
    }

    /// Signs a second batch (the first without its last request) for the same
    /// slot, sends each to one group of backups, and commits to each group's.
    fn equivocate(&mut self, original: &Arc<SignedMessage>, committee: &Committee, out: &mut Vec<Output>) {
        let Message::PrePrepare { view, seq, digest, batch } = &original.message else { return };
        let mut peers: Vec<AgentId> = committee.members().iter().map(|m| m.id).filter(|id| *id != self.me).collect();
        if peers.len() < 2 {
            out.push(Output::Broadcast(original.clone()));
            return;
        }
        let mut other_requests = batch.requests.clone();
        other_requests.pop();
        let other_batch = Arc::new(Batch::of(other_requests));
        let other_digest = other_batch.digest();
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

/// The client id an agent's own spends carry: above every real client's.
pub fn spender_client(agent: AgentId) -> ClientId {
    ClientId(u32::MAX - agent.0)
}

#[cfg(test)]
mod tests;
