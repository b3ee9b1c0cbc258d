//! One pending timer per actor, armed for the earliest deadline its state
//! machine asked for. The protocol says when it next needs a tick; the actor
//! sleeps until then instead of polling on a fixed interval.

use crate::protocol::Micros;
use actix::{Actor, AsyncContext, Context, SpawnHandle};
use std::time::Duration;

/// Shortest sleep, so a deadline that is already due cannot spin the thread.
const MIN_DELAY_US: u64 = 50;

#[derive(Default)]
pub struct DeadlineTimer {
    armed: Option<(Micros, SpawnHandle)>,
}

impl DeadlineTimer {
    /// Arms a timer for `deadline` unless one fires at or before it already;
    /// a later one is cancelled, so at most one is pending.
    pub fn arm<A>(
        &mut self,
        ctx: &mut Context<A>,
        now: Micros,
        deadline: Option<Micros>,
        fire: fn(&mut A, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        let Some(deadline) = deadline else {
            return;
        };
        if let Some((armed_at, handle)) = self.armed {
            if armed_at <= deadline {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay_us = deadline.saturating_sub(now).max(MIN_DELAY_US);
        let handle = ctx.run_later(Duration::from_micros(delay_us), fire);
        self.armed = Some((deadline, handle));
    }

    /// Called first thing when the timer fires: nothing is pending any more.
    pub fn fired(&mut self) {
        self.armed = None;
    }
}
