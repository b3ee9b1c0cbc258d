//! The hub's door for quarantined agents: subscribed to `agent-quarantined`,
//! it refuses the quarantined validator's key from then on and hangs up on its
//! process, whichever detector or operator decided.

use super::hub::Shared;
use crate::actors::HostedApp;
use crate::events::LifecycleEvent;
use crate::hooks::HookEvent;
use actix::{Actor, Context, Handler};
use std::sync::Arc;

pub(super) struct QuarantineGate<A: HostedApp>(pub(super) Arc<Shared<A>>);

impl<A: HostedApp> Actor for QuarantineGate<A> {
    type Context = Context<Self>;
}

impl<A: HostedApp> Handler<HookEvent> for QuarantineGate<A> {
    type Result = ();

    fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
        let LifecycleEvent::AgentQuarantined { agent, reason, .. } = &*event else { return };
        let history = self.0.swarm.committee_history();
        if let Some(member) = history.iter().rev().flat_map(|c| c.members()).find(|m| m.id == *agent) {
            self.0.refuse(member.public_key, format!("{} is quarantined ({reason})", member.name));
        }
    }
}
