//! The simulated network: one ordered queue of timed events, with seeded
//! drops, duplicates and delays (and so reordering) until it heals.

use crate::protocol::{Micros, Reply, Request, SignedMessage};
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
}

pub enum Payload {
    Tick,
    Requests(Vec<Request>),
    Consensus(Arc<SignedMessage>),
    Reply(Arc<Reply>),
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        match self {
            Payload::Tick => Payload::Tick,
            Payload::Requests(requests) => Payload::Requests(requests.clone()),
            Payload::Consensus(message) => Payload::Consensus(message.clone()),
            Payload::Reply(reply) => Payload::Reply(reply.clone()),
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
    /// The earliest tick still queued per node (validators, then the client).
    pending_tick: Vec<Option<u64>>,
}

impl Network {
    pub fn new(faults: NetworkFaults, rng: SeededRng, validators: usize) -> Network {
        Network {
            faults,
            rng,
            queue: BTreeMap::new(),
            inserted: 0,
            now: Micros(0),
            pending_tick: vec![None; validators + 1],
        }
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    pub fn send(&mut self, now: Micros, from: Node, to: Node, payload: Payload) {
        if self.separated(now, from, to) {
            return;
        }
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
            (Node::Validator(a), Node::Validator(b)) => active && partition.side_of[a] != partition.side_of[b],
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
        let slot = self.tick_slot(node);
        if self.pending_tick[slot].is_some_and(|queued| queued <= at) {
            return;
        }
        self.pending_tick[slot] = Some(at);
        self.push(at, node, Payload::Tick);
    }

    pub fn next_event(&mut self) -> Option<(Micros, Node, Payload)> {
        let ((time, _), (node, payload)) = self.queue.pop_first()?;
        self.now = Micros(time);
        if matches!(payload, Payload::Tick) {
            let slot = self.tick_slot(node);
            if self.pending_tick[slot] == Some(time) {
                self.pending_tick[slot] = None;
            }
        }
        Some((self.now, node, payload))
    }

    fn push(&mut self, time: u64, to: Node, payload: Payload) {
        self.inserted += 1;
        self.queue.insert((time, self.inserted), (to, payload));
    }

    fn tick_slot(&self, node: Node) -> usize {
        match node {
            Node::Validator(index) => index,
            Node::Client => self.pending_tick.len() - 1,
        }
    }
}
