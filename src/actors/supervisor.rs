//! The supervisor: hub of the star. It owns the registry of agents and clients
//! and routes every message between them.
//!
//! It routes but cannot forge: it holds no signing key, and every consensus
//! message, request and reply is verified by its receiver against the
//! sender's key. What a faulty hub can do is drop or delay messages, and that
//! is a liveness problem, not a safety one: the replicas' retransmission and
//! the client's retries recover what is lost, and no certificate can be made
//! from messages that were never signed.

use super::messages::{
    Deliver, DeliverReply, Destination, Envelope, GetRoutingStats, Origin, Quarantine, Register, RegisterClient, Route,
    RoutingStats, Unregister, UnregisterClient,
};
use super::SUPERVISOR_MAILBOX;
use crate::crypto::PublicKey;
use crate::protocol::{AgentId, ClientId, Reply};
use actix::dev::SendError;
use actix::{Actor, Context, Handler, Recipient};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One registered agent. The recipient is kept (not cloned per send) so that
/// actix's per-sender back-pressure state persists between sends.
pub struct AgentEntry {
    pub name: String,
    pub public_key: PublicKey,
    pub recipient: Recipient<Deliver>,
}

#[derive(Default)]
pub struct Supervisor {
    agents: BTreeMap<AgentId, AgentEntry>,
    clients: BTreeMap<ClientId, Recipient<DeliverReply>>,
    /// Convicted validators whose routes are dropped.
    quarantined: BTreeSet<AgentId>,
    stats: RoutingStats,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    pub fn agents(&self) -> &BTreeMap<AgentId, AgentEntry> {
        &self.agents
    }

    pub fn stats(&self) -> &RoutingStats {
        &self.stats
    }

    /// Sorts one route's envelopes by recipient, so each recipient gets one
    /// actor message per route however many envelopes it carries.
    fn route(&mut self, from: Origin, items: Vec<(Destination, Envelope)>) {
        let mut to_agents: BTreeMap<AgentId, Vec<Envelope>> = BTreeMap::new();
        let mut to_clients: BTreeMap<ClientId, Vec<Arc<Reply>>> = BTreeMap::new();
        for (destination, envelope) in items {
            match (destination, envelope) {
                (Destination::Client(id), Envelope::Reply(reply)) => {
                    if self.clients.contains_key(&id) {
                        to_clients.entry(id).or_default().push(reply);
                    } else {
                        self.stats.undeliverable += 1;
                    }
                }
                (Destination::Client(_), _) | (_, Envelope::Reply(_)) => {
                    self.stats.misaddressed += 1;
                }
                (Destination::Validator(id), envelope) => {
                    if self.agents.contains_key(&id) {
                        to_agents.entry(id).or_default().push(envelope);
                    } else {
                        self.stats.undeliverable += 1;
                    }
                }
                (Destination::AllValidators, envelope) => {
                    for id in self.agents.keys() {
                        to_agents.entry(*id).or_default().push(envelope.clone());
                    }
                }
                (Destination::AllValidatorsExcept(sender), envelope) => {
                    for id in self.agents.keys().filter(|id| **id != sender) {
                        to_agents.entry(*id).or_default().push(envelope.clone());
                    }
                }
            }
        }
        for (id, envelopes) in to_agents {
            if let Some(entry) = self.agents.get(&id) {
                let count = envelopes.len() as u64;
                let result = entry.recipient.try_send(Deliver { from, envelopes });
                self.count(result.map_err(drop_payload), count);
            }
        }
        for (id, replies) in to_clients {
            if let Some(recipient) = self.clients.get(&id) {
                let count = replies.len() as u64;
                let result = recipient.try_send(DeliverReply(replies));
                self.count(result.map_err(drop_payload), count);
            }
        }
    }

    fn count(&mut self, result: Result<(), SendError<()>>, envelopes: u64) {
        match result {
            Ok(()) => self.stats.delivered += envelopes,
            Err(SendError::Full(())) => {
                self.stats.dropped_mailbox_full += envelopes;
                crate::observe::mailbox_dropped(envelopes);
                tracing::debug!(envelopes, "recipient mailbox full; dropped");
            }
            Err(SendError::Closed(())) => self.stats.undeliverable += envelopes,
        }
    }
}

/// Keeps why a send failed, not the message that failed.
fn drop_payload<M>(error: SendError<M>) -> SendError<()> {
    match error {
        SendError::Full(_) => SendError::Full(()),
        SendError::Closed(_) => SendError::Closed(()),
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(SUPERVISOR_MAILBOX);
    }
}

impl Handler<Route> for Supervisor {
    type Result = ();

    fn handle(&mut self, route: Route, _: &mut Context<Self>) {
        self.stats.routes += 1;
        if matches!(route.from, Origin::Validator(id) if self.quarantined.contains(&id)) {
            self.stats.dropped_quarantined += route.items.len() as u64;
            return;
        }
        self.route(route.from, route.items);
    }
}

impl Handler<Quarantine> for Supervisor {
    type Result = ();

    fn handle(&mut self, Quarantine(agent): Quarantine, _: &mut Context<Self>) {
        self.quarantined.insert(agent);
    }
}

impl Handler<Register> for Supervisor {
    type Result = ();

    fn handle(&mut self, register: Register, _: &mut Context<Self>) {
        let entry = AgentEntry { name: register.name, public_key: register.public_key, recipient: register.recipient };
        self.agents.insert(register.id, entry);
    }
}

impl Handler<Unregister> for Supervisor {
    type Result = ();

    fn handle(&mut self, Unregister(id): Unregister, _: &mut Context<Self>) {
        self.agents.remove(&id);
    }
}

impl Handler<RegisterClient> for Supervisor {
    type Result = ();

    fn handle(&mut self, register: RegisterClient, _: &mut Context<Self>) {
        self.clients.insert(register.id, register.recipient);
    }
}

impl Handler<UnregisterClient> for Supervisor {
    type Result = ();

    fn handle(&mut self, UnregisterClient(id): UnregisterClient, _: &mut Context<Self>) {
        self.clients.remove(&id);
    }
}

impl Handler<GetRoutingStats> for Supervisor {
    type Result = RoutingStats;

    fn handle(&mut self, _: GetRoutingStats, _: &mut Context<Self>) -> RoutingStats {
        self.stats.clone()
    }
}
