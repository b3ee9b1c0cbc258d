//! Validators of this swarm that run in other processes ([`crate::transport`]).
//!
//! Such a validator is a member the swarm was launched without
//! ([`super::LaunchOptions::external_validators`]); the hub registers a
//! connection actor for it with the supervisor, and attaches it here so that
//! [`SwarmHandle::status`] — and so settling, reports and membership changes —
//! counts it like an in-process one.

use super::detector::Misbehaviour;
use super::messages::{GetNextNonces, GetStatus, ValidatorStatus};
use super::swarm::{lock, SwarmHandle};
use super::validator::HostedApp;
use crate::protocol::{AgentId, Committee, ProtocolParams};
use actix::Recipient;

/// Where a validator in another process is asked what the swarm asks its own validators.
#[derive(Clone)]
pub struct RemoteLink {
    pub status: Recipient<GetStatus>,
    pub nonces: Recipient<GetNextNonces>,
}

impl<A: HostedApp> SwarmHandle<A> {
    /// Counts validator `id`, running elsewhere, in [`SwarmHandle::status`]; replaces an earlier connection's.
    pub fn attach_remote(&self, id: AgentId, link: RemoteLink) {
        lock(&self.remote).insert(id, link);
    }

    /// Where a validator in another process hands its reports, as an in-process one does.
    pub fn detector(&self) -> Recipient<Misbehaviour> {
        self.detector.clone().recipient()
    }

    /// How many validators in other processes are attached and still connected.
    pub fn remote_connected(&self) -> usize {
        lock(&self.remote).values().filter(|link| link.status.connected()).count()
    }

    /// True when validator `id` runs inside this process.
    pub fn runs_in_process(&self, id: AgentId) -> bool {
        self.validator(id).is_some()
    }

    /// Every committee since launch, oldest first.
    pub fn committee_history(&self) -> Vec<Committee> {
        lock(&self.committees).history().to_vec()
    }

    pub fn params(&self) -> &ProtocolParams {
        &self.params
    }

    /// The application's state at genesis: every validator starts from it.
    pub fn genesis(&self) -> &A {
        &self.genesis
    }

    /// The statuses of the attached validators that answer.
    pub(super) async fn remote_status(&self) -> Vec<ValidatorStatus> {
        let remote: Vec<Recipient<GetStatus>> = lock(&self.remote).values().map(|link| link.status.clone()).collect();
        let mut statuses = Vec::with_capacity(remote.len());
        for recipient in remote {
            if let Ok(status) = recipient.send(GetStatus).await {
                statuses.push(status);
            }
        }
        statuses
    }

    /// Where the attached validators are asked for their accounts' nonces.
    pub(super) fn remote_nonces(&self) -> Vec<Recipient<GetNextNonces>> {
        lock(&self.remote).values().map(|link| link.nonces.clone()).collect()
    }
}
