//! The coalition of retired members in [`super::Scenario::RetiredCoalition`]:
//! it holds the keys of every founder, all of them removed by the operator,
//! and once they are retired it forges in the checkpoint and state-transfer
//! planes. Its keys were a quorum once; they prove nothing new.
//!
//! It strikes once the last planned change is made: that change adds a
//! validator after the founders retired, a joiner handed the committees
//! without knowing where they start. Each attempt sends every validator, on a
//! retired member's channel:
//! - a STATE-SNAPSHOT of a forged ledger (the coalition rich) at a future
//!   checkpoint, proven by a quorum of the first epoch's keys and carrying
//!   either a history in which no change ever happened, or the real changes
//!   with every epoch moved to start after that checkpoint (so that, going
//!   by the snapshot's word, the first epoch is still in force there);
//! - the forged CHECKPOINT votes themselves, and a VIEW-CHANGE of the first
//!   epoch carrying them as its checkpoint proof;
//! - the same VIEW-CHANGE signed in the current epoch by its accomplices, the
//!   f view-change liars among the members that stay (a coalition of f
//!   current and every retired member), who also lie in the view changes the
//!   operator forces (see [`super::view_change_liar`]).
//!
//! A validator that installed the forged ledger would break agreement and
//! conserve no supply: the invariants catch it.

use crate::app::Application;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{AgentId, Committee, Epoch, MembershipState, Message, Seq, SignedMessage, View};
use std::sync::Arc;

pub struct RetiredCoalition {
    /// The first epoch's committee and its members' keys.
    genesis_committee: Committee,
    keys: Vec<Keypair>,
    genesis_balances: Vec<(AccountId, u64)>,
    checkpoint_interval: u64,
    /// The epoch from which it strikes.
    strikes_from: Epoch,
    /// Current members in the coalition (the liars among the joiners), with their keys.
    accomplices: Vec<(AgentId, Keypair)>,
    attempts: u32,
}

/// Attempts per run, spread over its retransmit-paced ticks.
const MAX_ATTEMPTS: u32 = 6;

impl RetiredCoalition {
    pub fn new(
        genesis_committee: Committee,
        keys: Vec<Keypair>,
        genesis_balances: Vec<(AccountId, u64)>,
        checkpoint_interval: u64,
        strikes_from: Epoch,
        accomplices: Vec<(AgentId, Keypair)>,
    ) -> RetiredCoalition {
        RetiredCoalition {
            genesis_committee,
            keys,
            genesis_balances,
            checkpoint_interval,
            strikes_from,
            accomplices,
            attempts: 0,
        }
    }

    /// All attempts made.
    pub fn done(&self) -> bool {
        self.attempts >= MAX_ATTEMPTS
    }

    /// The founders retired in `newest`, with their keys.
    fn retired<'a>(&'a self, newest: &'a Committee) -> impl Iterator<Item = (AgentId, &'a Keypair)> + 'a {
        let members = self.genesis_committee.members().iter();
        members.zip(&self.keys).filter(|(m, _)| !newest.contains(m.id)).map(|(m, key)| (m.id, key))
    }

    /// The forged messages of one attempt, once a quorum of the first epoch
    /// is retired and the epoch it strikes from is announced; none before, or
    /// after the last attempt. `real` is the most advanced validator's
    /// membership, whose operator-signed changes the forgery may carry.
    pub fn forge(
        &mut self,
        newest: &Committee,
        highest_executed: Seq,
        real: &MembershipState,
    ) -> Vec<(AgentId, Arc<SignedMessage>)> {
        let retired = self.retired(newest).count();
        let striking = newest.epoch() >= self.strikes_from;
        if retired < self.genesis_committee.quorum() || !striking || self.attempts >= MAX_ATTEMPTS {
            return Vec::new();
        }
        self.attempts += 1;
        let retired: Vec<(AgentId, &Keypair)> = self.retired(newest).collect();
        let interval = self.checkpoint_interval.max(1);
        let seq = Seq((highest_executed.0 / interval + u64::from(self.attempts)) * interval);
        let mut balances = self.genesis_balances.clone();
        if let Some((_, balance)) = balances.first_mut() {
            *balance += 1_000_000;
        }
        let Ok(ledger) = Ledger::with_genesis(&balances) else { return Vec::new() };
        let state = Arc::new(ledger.snapshot());
        let membership = Arc::new(if self.attempts % 2 == 1 {
            moved_starts(real, seq, interval)
        } else {
            MembershipState::default()
        });
        let state_digest = checkpoint_digest(state.root(), &membership);
        let sign = |message: Message, (id, key): (AgentId, &Keypair)| {
            Arc::new(SignedMessage::sign(message, Epoch(0), id, key))
        };
        let proof: Vec<Arc<SignedMessage>> = retired
            .iter()
            .take(self.genesis_committee.quorum())
            .map(|signer| sign(Message::Checkpoint { seq, state_digest }, *signer))
            .collect();
        let sender = retired[0];
        let snapshot = Message::StateSnapshot { seq, state_digest, state, membership, proof: proof.clone() };
        let view_change = Message::ViewChange {
            new_view: View(u64::from(self.attempts)),
            stable_seq: seq,
            stable_digest: state_digest,
            checkpoint_proof: proof.clone(),
            prepared: Vec::new(),
            passive: false,
        };
        let mut forged = vec![(sender.0, sign(snapshot, sender))];
        // The accomplices sign the same VIEW-CHANGE in the current epoch: a
        // member's signature does not make the retired keys' proof count.
        for (id, key) in self.accomplices.iter().filter(|(id, _)| newest.contains(*id)) {
            forged.push((*id, Arc::new(SignedMessage::sign(view_change.clone(), newest.epoch(), *id, key))));
        }
        forged.push((sender.0, sign(view_change, sender)));
        forged.extend(proof.into_iter().map(|vote| (vote.sender, vote)));
        forged
    }
}

/// The real changes (the scheduled one as applied), every epoch starting one
/// interval after the other past `seq`.
fn moved_starts(real: &MembershipState, seq: Seq, interval: u64) -> MembershipState {
    let applied: Vec<_> = real.applied.iter().chain(real.scheduled.iter().map(|(_, change)| change)).cloned().collect();
    let boundaries = (1..=applied.len() as u64).map(|k| Seq(seq.0 + k * interval)).collect();
    MembershipState { applied, boundaries, scheduled: None }
}
