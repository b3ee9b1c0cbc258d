//! Observer agents spawned through the daemon (`agent spawn --type observer`,
//! `agents/observer.toml`): non-voting agents that receive every batch every
//! validator executes. They never sign, so they cannot sway consensus; each
//! counts what it saw, which `agent list` shows.

use super::membership::AgentRecord;
use super::state::Running;
use crate::actors::BatchExecuted;
use actix::{Actor, Addr, Context, Handler, Message};

/// Mailbox of an observer whose type names none: room for n copies of many batches.
const DEFAULT_MAILBOX: usize = 1024;

pub struct ExecutionObserver {
    mailbox: usize,
    /// One per validator per batch (each validator reports its own execution).
    batches_seen: u64,
}

impl Actor for ExecutionObserver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<BatchExecuted> for ExecutionObserver {
    type Result = ();

    fn handle(&mut self, _: BatchExecuted, _: &mut Context<Self>) {
        self.batches_seen += 1;
    }
}

/// Asks an observer how many executed batches it has seen.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct BatchesSeen;

impl Handler<BatchesSeen> for ExecutionObserver {
    type Result = u64;

    fn handle(&mut self, _: BatchesSeen, _: &mut Context<Self>) -> u64 {
        self.batches_seen
    }
}

/// Starts each registered observer that does not run yet and subscribes it to the validators' executions.
pub(super) fn start_observers<'a>(running: &mut Running, agents: impl Iterator<Item = &'a AgentRecord>) {
    let types = super::agent_types().ok();
    for agent in agents.filter(|agent| agent.is_observer()) {
        if running.observers.iter().any(|(name, _)| *name == agent.name) {
            continue;
        }
        let mailbox = types
            .as_ref()
            .and_then(|types| types.resolve(&agent.agent_type).ok())
            .and_then(|definition| definition.mailbox)
            .unwrap_or(DEFAULT_MAILBOX);
        let observer = ExecutionObserver::start_in_arbiter(&running.agents_arbiter.handle(), move |_| {
            ExecutionObserver { mailbox, batches_seen: 0 }
        });
        running.swarm.observe_executions(observer.clone().recipient());
        running.observers.push((agent.name.clone(), observer));
    }
}

pub(super) type ObserverAddr = Addr<ExecutionObserver>;
