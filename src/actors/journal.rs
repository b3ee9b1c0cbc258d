//! Where a swarm writes down who is in it before it acts: the daemon's
//! membership record ([`crate::daemon`]), or anything a program embedding a
//! swarm keeps. Every method is called before the fact it records is
//! announced (a change handed to the validators, a quarantine enforced), so a
//! process killed at any moment comes back knowing every seat it promised.
//! A swarm launched without a journal keeps its membership in memory only.

use crate::crypto::Keypair;
use crate::protocol::{AgentId, Committee, Member};
use std::time::SystemTime;

/// A validator a membership change adds, as the journal sees it.
pub struct JoinerEntry<'a> {
    pub member: &'a Member,
    /// Its key, when this process starts it (a fresh replacement): keep it, or
    /// its seat is lost with the process.
    pub keypair: Option<&'a Keypair>,
}

pub trait MembershipJournal: Send + Sync {
    /// Whether an agent of this name was ever admitted: names are never reused.
    fn name_taken(&self, name: &str) -> bool;

    /// `next` is about to be announced, adding `joiners` and removing
    /// `removed`. An error cancels the change before anything is sent.
    fn change_planned(&self, next: &Committee, joiners: &[JoinerEntry<'_>], removed: &[AgentId]) -> Result<(), String>;

    /// The change to `next` took effect (f+1 of the old committee run in its epoch).
    fn change_took_effect(&self, next: &Committee) -> Result<(), String>;

    /// `agent` is quarantined until `until` for `reason`; an error is logged,
    /// and the quarantine is enforced all the same (a liar is never let back in
    /// because a disk is full).
    fn quarantined(&self, agent: &Member, until: SystemTime, reason: &str) -> Result<(), String>;
}
