//! The event hub: fans published events out to hook actors and command hooks,
//! and gathers `pre-task` verdicts.

use super::command::{CommandHook, CommandHookStats, RunOutcome};
use super::{
    GetHookStats, HookEvent, HookId, Hooks, PreTask, Publish, RegisterPreTask, RunTaskHooks, Subscribe, Unsubscribe,
    Veto,
};
use crate::events::{EventKind, EventKinds, LifecycleEvent, OncePerSwarm};
use actix::dev::SendError;
use actix::{Actor, Context, Handler, MessageResult, Recipient, ResponseFuture};
use serde::Serialize;
use std::sync::Arc;

/// Mailbox bound of the hub, in [`Publish`] messages (each one validator step).
pub const HUB_MAILBOX: usize = 4096;

/// Hook actors a hub keeps; registering more is refused with a warning.
pub const MAX_HOOK_ACTORS: usize = 256;

struct ActorHook {
    id: HookId,
    kinds: EventKinds,
    recipient: Recipient<HookEvent>,
    stats: ActorHookStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActorHookStats {
    pub name: String,
    pub delivered: u64,
    /// Its mailbox was full: the event is lost to this hook.
    pub dropped_full: u64,
    /// It had stopped (or panicked); it gets nothing more.
    pub dropped_stopped: u64,
    pub stopped: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HookStats {
    pub published: u64,
    pub actors: Vec<ActorHookStats>,
    pub commands: Vec<CommandHookStats>,
}

pub struct EventHub {
    actors: Vec<ActorHook>,
    vetoers: Vec<RegisterPreTask>,
    commands: Vec<CommandHook>,
    next_id: u64,
    published: u64,
    /// Command hooks hear of each view change, checkpoint and batch once, not once per validator.
    once: OncePerSwarm,
}

impl EventHub {
    pub fn new(hooks: Hooks) -> EventHub {
        let mut hub = EventHub {
            actors: Vec::new(),
            vetoers: hooks.pre_task,
            commands: hooks.commands,
            next_id: 0,
            published: 0,
            once: OncePerSwarm::default(),
        };
        for subscribe in hooks.subscriptions {
            hub.subscribe(subscribe);
        }
        hub
    }

    fn subscribe(&mut self, Subscribe { name, kinds, recipient }: Subscribe) -> HookId {
        let id = HookId(self.next_id);
        self.next_id += 1;
        if self.actors.len() >= MAX_HOOK_ACTORS {
            tracing::warn!(hook = %name, "too many hook actors ({MAX_HOOK_ACTORS}); not registered");
            return id;
        }
        let stats = ActorHookStats { name, ..ActorHookStats::default() };
        self.actors.push(ActorHook { id, kinds, recipient, stats });
        id
    }

    /// Delivers `event` to its hook actors and, with `fire_commands`, starts
    /// its command hooks without waiting for them.
    fn publish(&mut self, event: LifecycleEvent, fire_commands: bool) {
        self.published += 1;
        let kind = event.kind();
        let event = Arc::new(event);
        for hook in self.actors.iter_mut().filter(|hook| hook.kinds.contains(kind)) {
            if hook.stats.stopped {
                hook.stats.dropped_stopped += 1;
                continue;
            }
            match hook.recipient.try_send(HookEvent(event.clone())) {
                Ok(()) => hook.stats.delivered += 1,
                Err(SendError::Full(_)) => hook.stats.dropped_full += 1,
                Err(SendError::Closed(_)) => {
                    tracing::warn!(hook = %hook.stats.name, "hook actor stopped; it gets no more events");
                    hook.stats.stopped = true;
                    hook.stats.dropped_stopped += 1;
                }
            }
        }
        if !fire_commands || self.commands.is_empty() || !self.once.first(&event) {
            return;
        }
        let mut json: Option<Arc<str>> = None;
        for command in self.commands.iter().filter(|command| command.event == kind) {
            let line = json.get_or_insert_with(|| event.to_json_line().into());
            command.fire(line.clone());
        }
    }
}

impl Actor for EventHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(HUB_MAILBOX);
    }
}

impl Handler<Publish> for EventHub {
    type Result = ();

    fn handle(&mut self, Publish(events): Publish, _: &mut Context<Self>) {
        for event in events {
            self.publish(event, true);
        }
    }
}

impl Handler<Subscribe> for EventHub {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, subscribe: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.subscribe(subscribe))
    }
}

impl Handler<Unsubscribe> for EventHub {
    type Result = ();

    fn handle(&mut self, Unsubscribe(id): Unsubscribe, _: &mut Context<Self>) {
        self.actors.retain(|hook| hook.id != id);
    }
}

impl Handler<RegisterPreTask> for EventHub {
    type Result = ();

    fn handle(&mut self, register: RegisterPreTask, _: &mut Context<Self>) {
        self.vetoers.push(register);
    }
}

impl Handler<RunTaskHooks> for EventHub {
    type Result = ResponseFuture<Result<(), Veto>>;

    /// Answers from a future, so the hub keeps fanning out events while
    /// task hooks run.
    fn handle(&mut self, check: RunTaskHooks, _: &mut Context<Self>) -> Self::Result {
        let kind = check.event.kind();
        self.publish(check.event.clone(), false);
        let event = Arc::new(check.event);
        let vetoers: Vec<(String, Recipient<PreTask>)> = match kind {
            EventKind::PreTask => self.vetoers.iter().map(|v| (v.name.clone(), v.recipient.clone())).collect(),
            _ => Vec::new(),
        };
        let commands: Vec<CommandHook> = self.commands.iter().filter(|c| c.event == kind).cloned().collect();
        let timeout = check.actor_timeout;
        Box::pin(async move {
            for (hook, recipient) in vetoers {
                match tokio::time::timeout(timeout, recipient.send(PreTask(event.clone()))).await {
                    Ok(Ok(verdict)) => verdict?,
                    Ok(Err(_)) => return Err(Veto { hook, reason: "it has stopped".into() }),
                    Err(_) => {
                        return Err(Veto { hook, reason: format!("no answer within {} ms", timeout.as_millis()) })
                    }
                }
            }
            let json: Arc<str> = event.to_json_line().into();
            for command in commands {
                let outcome = command.run(json.clone()).await;
                // Only a pre-task hook can refuse; others' failures are logged and counted.
                if outcome != RunOutcome::Succeeded && kind == EventKind::PreTask {
                    return Err(Veto { hook: command.command.display().to_string(), reason: outcome.reason() });
                }
            }
            Ok(())
        })
    }
}

impl Handler<GetHookStats> for EventHub {
    type Result = MessageResult<GetHookStats>;

    fn handle(&mut self, _: GetHookStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(HookStats {
            published: self.published,
            actors: self.actors.iter().map(|hook| hook.stats.clone()).collect(),
            commands: self.commands.iter().map(CommandHook::stats).collect(),
        })
    }
}
