//! The simulated network: one ordered queue of timed events, with seeded
//! drops, duplicates and delays (and so reordering) until it heals.

use crate::protocol::{AgentId, Micros, Reply, Request, SignedMembershipChange, SignedMessage};
use crate::rng::SeededRng;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct NetworkFaults {
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    pub min_delay_us: u64,
    pub max_delay_us: u64,
    /// Drops and duplicates happen only before this time; delays always.
    pub faulty_until_us: u64,
    /// Between these times validators on different sides cannot reach each other.
    pub partition: Option<Partition>,
    /// A validator that neither sends nor receives until the run ends its isolation.
    pub isolated: Option<usize>,
    /// A validator whose every message takes this many more microseconds.
    pub slow: Option<(usize, u64)>,
}

#[derive(Clone, Debug)]
pub struct Partition {
    pub from_us: u64,
    pub until_us: u64,
    /// The side of each validator; the client reaches both sides.
    pub side_of: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Validator(usize),
    Client,
    /// Whoever holds the operator key: proposes membership changes.
    Operator,
}

pub enum Payload {
    Tick,
    Requests(Vec<Request>),
    /// A signed message and the validator that handed it over (its
    /// authenticated channel: not always the signer, who may be relayed).
    Consensus(AgentId, Arc<SignedMessage>),
    Reply(Arc<Reply>),
    Membership(Arc<SignedMembershipChange>),
    /// An operator suspects the primary: move to the next view now.
    ForceViewChange,
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        match self {
            Payload::Tick => Payload::Tick,
            Payload::Requests(requests) => Payload::Requests(requests.clone()),
            Payload::Consensus(from, message) => Payload::Consensus(*from, message.clone()),
            Payload::Reply(reply) => Payload::Reply(reply.clone()),
            Payload::Membership(change) => Payload::Membership(change.clone()),
            Payload::ForceViewChange => Payload::ForceViewChange,
        }
    }
}

pub struct Network {
    faults: NetworkFaults,
    rng: SeededRng,
    /// (time, insertion order) keeps equal-time events in a fixed order.
    queue: BTreeMap<(u64, u64), (Node, Payload)>,
    inserted: u64,
    now: Micros,
    /// The earliest tick still queued per node.
    pending_tick: BTreeMap<TickSlot, u64>,
}

/// A node's key for its pending tick: validators by index, then the others.
type TickSlot = (u8, usize);

impl Network {
    pub fn new(faults: NetworkFaults, rng: SeededRng) -> Network {
        Network { faults, rng, queue: BTreeMap::new(), inserted: 0, now: Micros(0), pending_tick: BTreeMap::new() }
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    /// The isolated validator hears and is heard again.
    pub fn end_isolation(&mut self) {
        self.faults.isolated = None;
    }

    pub fn send(&mut self, now: Micros, from: Node, to: Node, payload: Payload) {
        if self.separated(now, from, to) {
            return;
        }
        let isolated = |node: Node| matches!(node, Node::Validator(index) if Some(index) == self.faults.isolated);
        if (isolated(from) || isolated(to)) && from != to {
            return;
        }
        let now = match (self.faults.slow, from) {
            (Some((slow, extra)), Node::Validator(index)) if index == slow => now.plus(extra),
            _ => now,
        };
        let faulty = now.0 < self.faults.faulty_until_us;
        if faulty && self.rng.chance(self.faults.drop_probability) {
            return;
        }
        if faulty && self.rng.chance(self.faults.duplicate_probability) {
            self.push_delayed(now, to, payload.clone());
        }
        self.push_delayed(now, to, payload);
    }

    fn separated(&self, now: Micros, from: Node, to: Node) -> bool {
        let Some(partition) = &self.faults.partition else { return false };
        let active = (partition.from_us..partition.until_us).contains(&now.0);
        match (from, to) {
            (Node::Validator(a), Node::Validator(b)) => {
                // Validators that joined later stand on the first side.
                let side = |index: usize| partition.side_of.get(index).copied().unwrap_or(false);
                active && side(a) != side(b)
            }
            _ => false,
        }
    }

    fn push_delayed(&mut self, now: Micros, to: Node, payload: Payload) {
        let delay = self.rng.between(self.faults.min_delay_us, self.faults.max_delay_us.max(self.faults.min_delay_us));
        self.push(now.0 + delay, to, payload);
    }

    /// Schedules a tick, never in the past, and not when an earlier one is queued.
    pub fn schedule_tick(&mut self, node: Node, at: Micros) {
        let at = at.0.max(self.now.0 + 1);
        let slot = tick_slot(node);
        if self.pending_tick.get(&slot).is_some_and(|queued| *queued <= at) {
            return;
        }
        self.pending_tick.insert(slot, at);
        self.push(at, node, Payload::Tick);
    }

    pub fn next_event(&mut self) -> Option<(Micros, Node, Payload)> {
        let ((time, _), (node, payload)) = self.queue.pop_first()?;
        self.now = Micros(time);
        if matches!(payload, Payload::Tick) {
            let slot = tick_slot(node);
            if self.pending_tick.get(&slot) == Some(&time) {
                self.pending_tick.remove(&slot);
            }
        }
        Some((self.now, node, payload))
    }

    fn push(&mut self, time: u64, to: Node, payload: Payload) {
        self.inserted += 1;
        self.queue.insert((time, self.inserted), (to, payload));
    }
}

fn tick_slot(node: Node) -> TickSlot {
    match node {
        Node::Validator(index) => (0, index),
        Node::Client => (1, 0),
        Node::Operator => (2, 0),
    }
}
