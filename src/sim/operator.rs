//! The operator in the simulation: holds the operator key, proposes the
//! scenario's membership changes one epoch after another, and resends each to
//! every validator until the swarm has moved past it (the network loses
//! messages, so one send is not enough).

use crate::crypto::Keypair;
use crate::protocol::{AgentId, Committee, Epoch, Member, MembershipChange, SignedMembershipChange};
use crate::rng::SeededRng;
use std::sync::Arc;

/// One planned change: validators to add (their keys are the sim's) and how many to remove.
#[derive(Clone, Debug)]
pub struct PlannedChange {
    pub add: Vec<(Member, Keypair)>,
    pub remove: usize,
}

pub struct Operator {
    keypair: Keypair,
    plan: Vec<PlannedChange>,
    /// Earliest time the first change goes out.
    start_us: u64,
    resend_us: u64,
    rng: SeededRng,
    current: Option<Arc<SignedMembershipChange>>,
    pub proposed: usize,
    /// With `Some(n)`, removes the founders (ids below n) before later members.
    founders: Option<usize>,
}

impl Operator {
    pub fn new(keypair: Keypair, plan: Vec<PlannedChange>, start_us: u64, resend_us: u64, rng: SeededRng) -> Operator {
        Operator { keypair, plan, start_us, resend_us, rng, current: None, proposed: 0, founders: None }
    }

    /// With `Some(n)`, removes the first epoch's n members before any other.
    pub fn removing_founders_first(mut self, founders: Option<usize>) -> Operator {
        self.founders = founders;
        self
    }

    /// The key of a validator this operator will add, if `id` is one.
    pub fn key_of(&self, id: AgentId) -> Option<Keypair> {
        self.plan.iter().flat_map(|change| &change.add).find(|(member, _)| member.id == id).map(|(_, key)| key.clone())
    }

    /// All planned changes applied?
    pub fn finished(&self, epoch: Epoch) -> bool {
        epoch.0 as usize >= self.plan.len()
    }

    pub fn planned(&self) -> usize {
        self.plan.len()
    }

    /// What to send to every validator now, given the newest committee the
    /// honest validators have moved to; `None` when there is nothing to send.
    pub fn tick(&mut self, now_us: u64, newest: &Committee) -> Option<Arc<SignedMembershipChange>> {
        if now_us < self.start_us {
            return None;
        }
        let index = newest.epoch().0 as usize;
        let planned = self.plan.get(index)?.clone();
        if self.current.as_ref().is_none_or(|change| change.change.from_epoch != newest.epoch()) {
            let mut candidates: Vec<AgentId> = newest.members().iter().map(|m| m.id).collect();
            if let Some(founders) = self.founders {
                let first: Vec<AgentId> = candidates.iter().copied().filter(|id| (id.0 as usize) < founders).collect();
                if first.len() >= planned.remove {
                    candidates = first;
                }
            }
            let mut remove = Vec::new();
            // Never below four: the committee must keep tolerating a fault.
            for _ in 0..planned.remove.min(newest.n().saturating_sub(4)) {
                if candidates.is_empty() {
                    break;
                }
                remove.push(candidates.remove(self.rng.below(candidates.len() as u64) as usize));
            }
            let add = planned.add.iter().map(|(member, _)| member.clone()).collect();
            let change = MembershipChange { from_epoch: newest.epoch(), add, remove, f: None };
            self.current = Some(Arc::new(SignedMembershipChange::sign(change, &self.keypair)));
            self.proposed += 1;
        }
        self.current.clone()
    }

    pub fn resend_interval_us(&self) -> u64 {
        self.resend_us
    }
}
