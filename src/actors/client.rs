//! The client actor: one [`ClientCore`] that submits a list of signed
//! transfers, and the I/O around it. It reports progress through a shared
//! counter and its result through a oneshot channel, then stops.

use super::messages::{DeliverReply, Destination, Envelope, LearnCommittee, Origin, Route};
use super::timer::DeadlineTimer;
use super::{now, AGENT_MAILBOX};
use crate::protocol::{ClientCore, ClientId, ClientInput, ClientOutput, ClientStats, Completion};
use actix::{Actor, ActorContext, Context, Handler, Message, Recipient};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a client's run produced.
#[derive(Clone, Debug)]
pub struct ClientRun {
    /// One per transfer, each accepted on f+1 matching signed replies.
    pub completions: Vec<Completion>,
    pub stats: ClientStats,
    /// From the first submission to the last completion.
    pub elapsed: Duration,
}

/// Starts submitting. Separate from `started` so the caller can register the
/// client with the supervisor before the first reply can come back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Begin;

pub struct Client {
    id: ClientId,
    core: ClientCore,
    route: Recipient<Route>,
    progress: Arc<AtomicU64>,
    completions: Vec<Completion>,
    began: Option<Instant>,
    result: Option<oneshot::Sender<ClientRun>>,
    timer: DeadlineTimer,
    /// Submissions the supervisor's full mailbox refused; the core resends them.
    outbound_dropped: u64,
}

impl Client {
    pub fn new(
        id: ClientId,
        core: ClientCore,
        route: Recipient<Route>,
        progress: Arc<AtomicU64>,
        result: oneshot::Sender<ClientRun>,
    ) -> Client {
        Client {
            id,
            core,
            route,
            progress,
            completions: Vec::new(),
            began: None,
            result: Some(result),
            timer: DeadlineTimer::default(),
            outbound_dropped: 0,
        }
    }

    fn step(&mut self, inputs: impl IntoIterator<Item = ClientInput>, ctx: &mut Context<Self>) {
        let mut outputs = Vec::new();
        for input in inputs {
            outputs.extend(self.core.step(now(), input));
        }
        self.carry_out(outputs);
        if self.core.is_done() {
            self.finish(ctx);
        } else {
            self.timer.arm(ctx, now(), self.core.next_deadline(), Client::on_timer);
        }
    }

    /// Merges the outputs of several steps into one broadcast route.
    fn carry_out(&mut self, outputs: Vec<ClientOutput>) {
        let mut broadcast = Vec::new();
        let mut completed = 0;
        for output in outputs {
            match output {
                ClientOutput::Broadcast(requests) => broadcast.extend(requests),
                ClientOutput::Completed(completion) => {
                    crate::observe::client_completion(&completion);
                    self.completions.push(completion);
                    completed += 1;
                }
            }
        }
        if completed > 0 {
            self.progress.fetch_add(completed, Ordering::Relaxed);
        }
        if broadcast.is_empty() {
            return;
        }
        let items = vec![(Destination::AllValidators, Envelope::Requests(Arc::new(broadcast)))];
        let route = Route { from: Origin::Client(self.id), items };
        if self.route.try_send(route).is_err() {
            self.outbound_dropped += 1;
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        if let Some(result) = self.result.take() {
            let run = ClientRun {
                completions: std::mem::take(&mut self.completions),
                stats: self.core.stats().clone(),
                elapsed: self.began.map(|t| t.elapsed()).unwrap_or_default(),
            };
            // The caller may have given up waiting; then nobody needs the result.
            let _ = result.send(run);
        }
        if self.outbound_dropped > 0 {
            tracing::debug!(dropped = self.outbound_dropped, "client routes refused by a full supervisor mailbox");
        }
        ctx.stop();
    }

    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        self.timer.fired();
        self.step([ClientInput::Tick], ctx);
    }
}

impl Actor for Client {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(AGENT_MAILBOX);
    }
}

impl Handler<Begin> for Client {
    type Result = ();

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) {
        if self.began.is_none() {
            self.began = Some(Instant::now());
            self.step([ClientInput::Tick], ctx);
        }
    }
}

impl Handler<DeliverReply> for Client {
    type Result = ();

    fn handle(&mut self, DeliverReply(replies): DeliverReply, ctx: &mut Context<Self>) {
        if self.began.is_none() {
            return;
        }
        self.step(replies.into_iter().map(ClientInput::Reply), ctx);
    }
}

impl Handler<LearnCommittee> for Client {
    type Result = ();

    fn handle(&mut self, LearnCommittee(committee): LearnCommittee, _: &mut Context<Self>) {
        self.core.learn_committee(&committee);
    }
}
