//! Membership changes of a running swarm, the operator's side: sign the
//! change, start the validators it adds (empty: they catch up by state
//! transfer; with their write-ahead log when the swarm keeps logs), hand the change to every validator, and once f+1 of the old
//! committee report the new epoch, apply it to routing — stop and unregister
//! the removed validators, tell clients and hooks.

use super::detector::DetectorCommittee;
use super::journal::JoinerEntry;
use super::messages::{Destination, Envelope, LearnCommittee, Origin, Route, Unregister};
use super::swarm::{lock, SwarmError, SwarmHandle, ValidatorSeed};
use super::validator::HostedApp;
use crate::crypto::{Keypair, PublicKey};
use crate::events::{timestamp_now, LifecycleEvent};
use crate::hooks::Publish;
use crate::protocol::{AgentId, Committee, Member, MembershipChange, MembershipError, Replica, SignedMembershipChange};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the change is handed to the validators again while it has not taken effect.
const RESEND_EVERY: Duration = Duration::from_millis(500);

/// A membership change that took effect.
#[derive(Clone, Debug, Serialize)]
pub struct MembershipChanged {
    pub epoch: u64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub validators: usize,
    pub max_failures: usize,
    pub quorum: usize,
    /// From signing the change to f+1 validators running in the new epoch.
    pub elapsed_ms: f64,
}

impl<A: HostedApp> SwarmHandle<A> {
    /// Adds `add` validators with fresh keys and removes `remove`, through
    /// consensus: the change is ordered in the log and takes effect at the
    /// next checkpoint boundary. Waits at most `max_wait` for it.
    pub async fn change_membership(
        &self,
        add: usize,
        remove: &[AgentId],
        max_wait: Duration,
    ) -> Result<MembershipChanged, SwarmError> {
        let history = lock(&self.committees).history().to_vec();
        let prefix = name_prefix(&history);
        let used = |name: &str| {
            history.iter().flat_map(Committee::members).any(|m| m.name == name)
                || self.journal.as_ref().is_some_and(|journal| journal.name_taken(name))
        };
        // Named after their id where that name is free; never a name any agent had.
        let mut fresh: Vec<(String, Keypair)> = Vec::with_capacity(add);
        let mut k = next_free_id(&history) + 1;
        while fresh.len() < add {
            let name = format!("{prefix}{k}");
            if !used(&name) && !fresh.iter().any(|(taken, _)| *taken == name) {
                fresh.push((name, Keypair::generate()));
            }
            k += 1;
        }
        self.change_membership_with(fresh, remove, max_wait).await
    }

    /// [`Swarm::change_membership`] with the added validators' names and keys
    /// given (agents that were registered on standby).
    pub async fn change_membership_with(
        &self,
        add: Vec<(String, Keypair)>,
        remove: &[AgentId],
        max_wait: Duration,
    ) -> Result<MembershipChanged, SwarmError> {
        let joiners = add.into_iter().map(|(name, keypair)| Joiner::InProcess(name, Box::new(keypair))).collect();
        self.change_membership_of(joiners, remove, max_wait).await
    }

    /// [`Swarm::change_membership_with`], where added validators may also run
    /// in other processes ([`Joiner::Remote`]): those are not started here but
    /// admitted when they connect to the hub ([`crate::transport`]). In a
    /// swarm launched with write-ahead logs, an in-process joiner whose log
    /// cannot be opened fails the change before anything is scheduled.
    pub async fn change_membership_of(
        &self,
        add: Vec<Joiner>,
        remove: &[AgentId],
        max_wait: Duration,
    ) -> Result<MembershipChanged, SwarmError> {
        let add: Vec<(String, PublicKey, Option<Keypair>)> = add.into_iter().map(Joiner::into_parts).collect();
        let started = Instant::now();
        let operator = self.operator.clone().ok_or(MembershipError::NoOperator)?;
        let current = self.committee();
        let history = lock(&self.committees).history().to_vec();
        let retired = |key: &crate::crypto::PublicKey| {
            !current.members().iter().any(|m| m.public_key == *key)
                && history.iter().flat_map(|c| c.members()).any(|m| m.public_key == *key)
        };
        if let Some((name, _, _)) = add.iter().find(|(_, public_key, _)| retired(public_key)) {
            return Err(MembershipError::RetiredKey(format!("{name}'s key")).into());
        }
        let next_id = next_free_id(&history);
        let added: Vec<(Member, Option<Keypair>)> = add
            .into_iter()
            .zip(next_id..)
            .map(|((name, public_key, keypair), id)| (Member { id: AgentId(id), name, public_key }, keypair))
            .collect();
        let change = MembershipChange {
            from_epoch: current.epoch(),
            add: added.iter().map(|(member, _)| member.clone()).collect(),
            remove: remove.to_vec(),
            f: None,
        };
        let next = change.apply(&current)?;
        // Every joiner's log opens before anything is scheduled: a failure leaves the swarm as it was.
        let mut seeds = Vec::new();
        for (member, keypair) in added.iter().filter_map(|(member, keypair)| Some((member, keypair.as_ref()?))) {
            seeds.push((member, self.joiner_seed(member, keypair.clone(), &history[0], &next)?));
        }
        if let Some(journal) = &self.journal {
            let joiners: Vec<JoinerEntry<'_>> =
                added.iter().map(|(member, keypair)| JoinerEntry { member, keypair: keypair.as_ref() }).collect();
            journal.change_planned(&next, &joiners, remove).map_err(SwarmError::Journal)?;
        }
        let signed = Arc::new(SignedMembershipChange::sign(change, &operator));
        lock(&self.committees).announced(next.clone());
        for (member, seed) in seeds {
            self.spawn_seed(member, seed);
        }
        for client in lock(&self.clients).values() {
            client.do_send(LearnCommittee(next.clone()));
        }
        self.hub.do_send(Publish(added.iter().map(|(member, _)| spawned_event(member)).collect()));
        self.await_epoch(&signed, &current, &next, started, max_wait).await?;
        self.took_effect(&current, &next);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let name = |id: &AgentId| current.member(*id).map_or_else(|| id.to_string(), |m| m.name.clone());
        Ok(MembershipChanged {
            epoch: next.epoch().0,
            added: added.iter().map(|(member, _)| member.name.clone()).collect(),
            removed: remove.iter().map(name).collect(),
            validators: next.n(),
            max_failures: next.f(),
            quorum: next.quorum(),
            elapsed_ms,
        })
    }

    /// Finishes a change a relaunched swarm found pending in its record (the
    /// last committee it was launched with): hands it to the validators again
    /// (one already ordered is refused as a second change, identically
    /// everywhere) and waits until it is in effect. The joiners run already.
    pub async fn resume_change(&self, max_wait: Duration) -> Result<MembershipChanged, SwarmError> {
        let started = Instant::now();
        let operator = self.operator.clone().ok_or(MembershipError::NoOperator)?;
        let current = self.committee();
        let next = lock(&self.committees).pending().cloned();
        let Some(next) = next else { return Err(SwarmError::Relaunch("no membership change is pending".into())) };
        let add: Vec<Member> = next.members().iter().filter(|m| !current.contains(m.id)).cloned().collect();
        let remove: Vec<AgentId> = current.members().iter().map(|m| m.id).filter(|id| !next.contains(*id)).collect();
        let change =
            MembershipChange { from_epoch: current.epoch(), add: add.clone(), remove: remove.clone(), f: None };
        if change.apply(&current)? != next {
            return Err(SwarmError::Relaunch("the pending change does not lead to the recorded committee".into()));
        }
        let signed = Arc::new(SignedMembershipChange::sign(change, &operator));
        self.await_epoch(&signed, &current, &next, started, max_wait).await?;
        self.took_effect(&current, &next);
        let name = |id: &AgentId| current.member(*id).map_or_else(|| id.to_string(), |m| m.name.clone());
        Ok(MembershipChanged {
            epoch: next.epoch().0,
            added: add.iter().map(|member| member.name.clone()).collect(),
            removed: remove.iter().map(name).collect(),
            validators: next.n(),
            max_failures: next.f(),
            quorum: next.quorum(),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The change to `next` is in effect: the journal first, then routing and the detector.
    fn took_effect(&self, current: &Committee, next: &Committee) {
        if let Some(journal) = &self.journal {
            if let Err(error) = journal.change_took_effect(next) {
                tracing::error!(epoch = next.epoch().0, %error, "cannot record that the membership change took effect");
            }
        }
        self.apply_to_routing(current, next);
        self.detector.do_send(DetectorCommittee(next.clone()));
    }

    /// A validator joining in `joined`'s epoch, empty (it catches up by state
    /// transfer): with its write-ahead log when the swarm keeps logs, so that
    /// a restart rebuilds it from the log; in memory otherwise.
    fn joiner_seed(
        &self,
        member: &Member,
        keypair: Keypair,
        genesis_committee: &Committee,
        joined: &Committee,
    ) -> Result<ValidatorSeed<A>, SwarmError> {
        let Some(wal) = &self.wal else {
            let (first, joined, params, genesis) =
                (genesis_committee.clone(), joined.clone(), self.params.clone(), self.genesis.clone());
            let replica = Replica::joining(member.id, keypair.clone(), first, joined, params, genesis);
            return Ok(ValidatorSeed::InMemory(Box::new((replica, keypair))));
        };
        let durable =
            ValidatorSeed::durable(member, keypair, genesis_committee, Some(joined), &self.params, &self.genesis, wal)?;
        Ok(durable)
    }

    /// Hands the change to every validator until f+1 of the old committee run in the new epoch.
    async fn await_epoch(
        &self,
        signed: &Arc<SignedMembershipChange>,
        current: &Committee,
        next: &Committee,
        started: Instant,
        max_wait: Duration,
    ) -> Result<(), SwarmError> {
        let mut last_sent: Option<Instant> = None;
        loop {
            if last_sent.is_none_or(|sent| sent.elapsed() >= RESEND_EVERY) {
                let items = vec![(Destination::AllValidators, Envelope::Membership(signed.clone()))];
                self.supervisor.do_send(Route { from: Origin::Operator, items });
                last_sent = Some(Instant::now());
            }
            let moved = self
                .status()
                .await
                .iter()
                .filter(|status| current.contains(status.id) && status.epoch >= next.epoch())
                .count();
            if moved > current.f() {
                return Ok(());
            }
            if started.elapsed() >= max_wait {
                return Err(SwarmError::MembershipTimeout { epoch: next.epoch(), waited: max_wait });
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The supervisor stops routing to removed validators; their threads end.
    fn apply_to_routing(&self, current: &Committee, next: &Committee) {
        let removed: Vec<AgentId> = current.members().iter().map(|m| m.id).filter(|id| !next.contains(*id)).collect();
        lock(&self.validators).retain(|handle| {
            let keep = !removed.contains(&handle.id);
            if !keep {
                self.supervisor.do_send(Unregister(handle.id));
                handle.arbiter.stop();
            }
            keep
        });
        // Validators in other processes: no thread here to stop; the hub refuses them from now on.
        for id in &removed {
            if lock(&self.remote).remove(id).is_some() {
                self.supervisor.do_send(Unregister(*id));
            }
        }
        lock(&self.committees).took_effect(next);
        let timestamp = timestamp_now();
        let reason = format!("removed by the membership change to epoch {}", next.epoch());
        let mut events: Vec<LifecycleEvent> = removed
            .iter()
            .map(|agent| LifecycleEvent::AgentRemoved {
                timestamp: timestamp.clone(),
                agent: *agent,
                reason: reason.clone(),
            })
            .collect();
        events.push(LifecycleEvent::QuorumUpdated {
            timestamp,
            epoch: next.epoch().0,
            validators: next.n(),
            quorum: next.quorum(),
        });
        self.hub.do_send(Publish(events));
    }
}

/// A validator that a membership change adds.
pub enum Joiner {
    /// Started in this process, with its key.
    InProcess(String, Box<Keypair>),
    /// Runs in another process, which joins the hub with this key.
    Remote(String, PublicKey),
}

impl Joiner {
    fn into_parts(self) -> (String, PublicKey, Option<Keypair>) {
        match self {
            Joiner::InProcess(name, keypair) => (name, keypair.public_key(), Some(*keypair)),
            Joiner::Remote(name, public_key) => (name, public_key, None),
        }
    }
}

/// The id after the highest any epoch used: an id is never reused.
fn next_free_id(history: &[Committee]) -> u32 {
    history.iter().flat_map(|committee| committee.members()).map(|m| m.id.0 + 1).max().unwrap_or(0)
}

/// How the members are named, without their number (`bft-agent-`).
fn name_prefix(history: &[Committee]) -> String {
    let first = history.iter().flat_map(|committee| committee.members()).next();
    first.map_or_else(|| "validator-".into(), |m| m.name.trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
}

fn spawned_event(member: &Member) -> LifecycleEvent {
    LifecycleEvent::AgentSpawned {
        timestamp: timestamp_now(),
        agent: member.id,
        name: member.name.clone(),
        role: "validator".into(),
        public_key: member.public_key.to_string(),
    }
}
