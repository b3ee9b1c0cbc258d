//! Hooks: who hears about [`LifecycleEvent`]s, and who may veto a task.
//!
//! The [`EventHub`] actor owns every hook. Validators and the swarm publish
//! to it through a `Recipient<Publish>` (one message per validator step,
//! carrying that step's events); it fans each event out to
//!
//! - **hook actors**: any actix actor that handles [`HookEvent`], registered
//!   for a set of [`EventKinds`] with [`Hooks::subscribe`] before launch or
//!   [`Subscribe`] after;
//! - **command hooks**: executables from the config's `[[hooks]]` entries,
//!   run with the event as one JSON line on stdin (see `hooks/README.md`).
//!
//! Delivery never waits: the hub `try_send`s to a hook actor, and a full
//! mailbox or a stopped (say, panicked) actor loses the event and bumps that
//! hook's counter ([`GetHookStats`]). Commands run on their own threads, at
//! most [`MAX_RUNS_IN_FLIGHT`] per hook, killed at their timeout. So a slow,
//! hanging or crashing hook costs events, never consensus progress. An actix
//! mailbox holds 16 messages by default; a hook that subscribes to per-batch
//! events (each validator publishes one per batch) should raise it with
//! `ctx.set_mailbox_capacity` in `started`.
//!
//! Before a task starts, whoever starts it asks the hub ([`RunTaskHooks`]
//! with a `pre-task` event): every `pre-task` veto actor ([`Hooks::pre_task`],
//! answering [`PreTask`]) and every `pre-task` command must agree. A veto, a
//! failing command, or no answer in time refuses the task with a [`Veto`].
//! After it, a `post-task` event goes the same way, so that its commands have
//! finished before, say, the CLI exits; their failures are only counted.
//!
//! ```no_run
//! use actix::{Actor, Context, Handler};
//! use bftswarm::events::{EventKind, EventKinds};
//! use bftswarm::hooks::{HookEvent, Hooks};
//!
//! struct PrintCommits;
//! impl Actor for PrintCommits {
//!     type Context = Context<Self>;
//! }
//! impl Handler<HookEvent> for PrintCommits {
//!     type Result = ();
//!     fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
//!         println!("{}", event.to_json_line());
//!     }
//! }
//!
//! # fn hooks() -> Hooks {
//! let kinds: EventKinds = [EventKind::TransactionCommitted].into_iter().collect();
//! Hooks::new().subscribe("print-commits", kinds, PrintCommits.start().recipient())
//! # }
//! // … then `Swarm::launch_with(spec, LaunchOptions { hooks, ..Default::default() })?`.
//! ```

mod command;
mod emit;
mod hub;

pub use command::{CommandHook, CommandHookStats, RunOutcome, MAX_RUNS_IN_FLIGHT};
pub use emit::launch_events;
pub(crate) use emit::EventEmitter;
pub use hub::{ActorHookStats, EventHub, HookStats, HUB_MAILBOX, MAX_HOOK_ACTORS};

use crate::config::HookEntry;
use crate::events::{EventKinds, LifecycleEvent, UnknownEvent};
use actix::{Message, Recipient};
use std::sync::Arc;
use std::time::Duration;

/// Events for the hub, in the order they happened: all of one validator step.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<LifecycleEvent>);

/// What a hook actor receives: one event, shared among all hooks.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct HookEvent(pub Arc<LifecycleEvent>);

/// Asks a `pre-task` veto actor whether the task may start.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<(), Veto>")]
pub struct PreTask(pub Arc<LifecycleEvent>);

/// A refusal to start a task, naming the hook that refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pre-task hook {hook} vetoed the task: {reason}")]
pub struct Veto {
    pub hook: String,
    pub reason: String,
}

/// A hook's handle, to unsubscribe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HookId(pub u64);

/// Registers a hook actor for `kinds` with a running hub.
#[derive(Message)]
#[rtype(result = "HookId")]
pub struct Subscribe {
    pub name: String,
    pub kinds: EventKinds,
    pub recipient: Recipient<HookEvent>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub HookId);

/// Registers a `pre-task` veto actor with a running hub.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterPreTask {
    pub name: String,
    pub recipient: Recipient<PreTask>,
}

/// Publishes a task event (`pre-task`, `post-task`) and waits for its
/// command hooks (each within its own timeout); for `pre-task`, first asks
/// every veto actor (each within `actor_timeout`).
#[derive(Message)]
#[rtype(result = "Result<(), Veto>")]
pub struct RunTaskHooks {
    pub event: LifecycleEvent,
    pub actor_timeout: Duration,
}

#[derive(Message)]
#[rtype(result = "HookStats")]
pub struct GetHookStats;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks[{index}].event: {source}")]
    UnknownEvent { index: usize, source: UnknownEvent },
}

/// The hooks a hub starts with, so that they hear `swarm-initialized` and
/// `agent-spawned`, which happen during launch.
#[derive(Default)]
pub struct Hooks {
    pub(crate) subscriptions: Vec<Subscribe>,
    pub(crate) pre_task: Vec<RegisterPreTask>,
    pub(crate) commands: Vec<CommandHook>,
}

impl Hooks {
    pub fn new() -> Hooks {
        Hooks::default()
    }

    pub fn subscribe(mut self, name: &str, kinds: EventKinds, recipient: Recipient<HookEvent>) -> Hooks {
        self.subscriptions.push(Subscribe { name: name.into(), kinds, recipient });
        self
    }

    pub fn pre_task(mut self, name: &str, recipient: Recipient<PreTask>) -> Hooks {
        self.pre_task.push(RegisterPreTask { name: name.into(), recipient });
        self
    }

    /// Adds the config's command hooks (already validated by the config; the
    /// event names are checked again so that this never trusts its caller).
    pub fn commands(mut self, entries: &[HookEntry]) -> Result<Hooks, HookError> {
        for (index, entry) in entries.iter().enumerate() {
            let event = entry.event.parse().map_err(|source| HookError::UnknownEvent { index, source })?;
            let timeout = Duration::from_millis(entry.timeout_ms.max(1));
            self.commands.push(CommandHook::new(event, entry.command.clone().into(), timeout));
        }
        Ok(self)
    }

    /// Command hooks run with `BFTSWARM_HOME` set to the swarm's `home`.
    pub fn home(mut self, home: &std::path::Path) -> Hooks {
        self.commands = self.commands.into_iter().map(|hook| hook.with_home(home)).collect();
        self
    }
}
