//! A hand-driven swarm of pure replicas for the replica's tests: four
//! founders whose committee has an operator (so membership can change),
//! whoever joins later, in-order delivery with messages lost, withheld from
//! one replica or cut off on request, and every output kept for assertions.

use crate::crypto::Keypair;
use crate::protocol::replica::tests::{fixture, params, Fixture};
use crate::protocol::ProtocolParams;
use crate::protocol::{
    AgentId, Committee, Epoch, Input, MembershipChange, Message, Micros, Output, Replica, SignedMembershipChange,
    SignedMessage,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// `params()`'s retransmit interval and view-change timeout.
pub(super) const RETRANSMIT_US: u64 = 10_000;
pub(super) const VIEW_CHANGE_TIMEOUT_US: u64 = 50_000;

/// Picks the messages a rule applies to (withheld, lost).
pub(super) type Picks = fn(&SignedMessage) -> bool;

/// Four founders (ids 0 to 3) whose committee has an operator, and whoever
/// joins later; messages are delivered in order, none lost unless cut off.
pub(super) struct Swarm {
    pub(super) f: Fixture,
    pub(super) operator: Keypair,
    pub(super) committee: Committee,
    pub(super) replicas: Vec<Replica>,
    /// (from, message, addressee or everyone)
    pub(super) in_flight: VecDeque<(usize, Arc<SignedMessage>, Option<AgentId>)>,
    /// Replicas that receive nothing while set.
    pub(super) cut_off: Vec<bool>,
    /// Every output of every step, by replica.
    pub(super) outputs: Vec<(usize, Output)>,
    /// A replica and the messages it is not given until [`Swarm::release`].
    pub(super) withhold: Option<(usize, Picks)>,
    pub(super) withheld: Vec<Arc<SignedMessage>>,
    /// Messages lost on the way to everyone while set.
    pub(super) lose: Option<Picks>,
    pub(super) now: u64,
}

pub(super) fn swarm() -> Swarm {
    swarm_with(params())
}

pub(super) fn swarm_with(params: ProtocolParams) -> Swarm {
    let f = fixture();
    let operator = Keypair::from_seed([50; 32]);
    let committee = f.committee.clone().with_operator(operator.public_key());
    let replicas: Vec<Replica> = (0..4u32)
        .map(|i| {
            Replica::new(AgentId(i), f.keys[i as usize].clone(), committee.clone(), params.clone(), f.genesis.clone())
        })
        .collect();
    Swarm {
        f,
        operator,
        committee,
        replicas,
        in_flight: VecDeque::new(),
        cut_off: vec![false; 4],
        outputs: Vec::new(),
        withhold: None,
        withheld: Vec::new(),
        lose: None,
        now: 0,
    }
}

impl Swarm {
    pub(super) fn sign(&self, change: MembershipChange) -> Arc<SignedMembershipChange> {
        Arc::new(SignedMembershipChange::sign(change, &self.operator))
    }

    pub(super) fn step(&mut self, i: usize, input: Input) -> Vec<Output> {
        self.now += 10;
        let out = self.replicas[i].step(Micros(self.now), input);
        for output in &out {
            match output {
                Output::Broadcast(m) => self.in_flight.push_back((i, m.clone(), None)),
                Output::SendTo(to, m) => self.in_flight.push_back((i, m.clone(), Some(*to))),
                _ => {}
            }
            self.outputs.push((i, output.clone()));
        }
        out
    }

    pub(super) fn deliver_all(&mut self) {
        while let Some((from, message, to)) = self.in_flight.pop_front() {
            for i in 0..self.replicas.len() {
                let addressed = to.is_none_or(|to| to.0 as usize == i);
                if i == from || !addressed || self.cut_off[i] || self.lose.is_some_and(|lost| lost(&message)) {
                    continue;
                }
                match self.withhold {
                    Some((held, withheld)) if held == i && withheld(&message) => self.withheld.push(message.clone()),
                    _ => {
                        self.step(i, Input::Message(message.clone()));
                    }
                }
            }
        }
    }

    /// Hands the requests of `nonces` to every replica and runs to quiescence.
    pub(super) fn submit(&mut self, nonces: std::ops::Range<u64>) {
        let requests: Vec<_> = nonces.map(|nonce| self.f.request(nonce)).collect();
        for i in 0..self.replicas.len() {
            self.step(i, Input::Requests(requests.clone()));
        }
        self.deliver_all();
    }

    pub(super) fn hand_in(&mut self, change: &Arc<SignedMembershipChange>) {
        for i in 0..self.replicas.len() {
            self.step(i, Input::Membership(change.clone()));
        }
        self.deliver_all();
    }

    /// Gives the withheld replica what it was not given, and runs on.
    pub(super) fn release(&mut self) {
        let Some((i, _)) = self.withhold.take() else { return };
        for message in std::mem::take(&mut self.withheld) {
            self.step(i, Input::Message(message));
        }
        self.deliver_all();
    }

    /// Lets `micros` pass, every replica ticking once.
    pub(super) fn tick(&mut self, micros: u64) {
        self.now += micros;
        for i in 0..self.replicas.len() {
            self.step(i, Input::Tick);
        }
        self.deliver_all();
    }

    /// Adds a replica that joins in `committee` (a later epoch) and hears everything from now on.
    pub(super) fn join(&mut self, keypair: Keypair, committee: Committee) {
        let id = AgentId(self.replicas.len() as u32);
        let genesis = self.f.genesis.clone();
        self.replicas.push(Replica::joining(id, keypair, self.committee.clone(), committee, params(), genesis));
        self.cut_off.push(false);
    }

    pub(super) fn epochs(&self) -> Vec<Epoch> {
        self.replicas.iter().map(|replica| replica.committee().epoch()).collect()
    }

    /// What replica `i` sent (broadcast or to one peer) since output `mark`.
    pub(super) fn sent_since(&self, mark: usize, i: usize) -> Vec<(Option<AgentId>, Message)> {
        let sent = self.outputs[mark..].iter().filter(|(from, _)| *from == i);
        sent.filter_map(|(_, output)| match output {
            Output::Broadcast(m) => Some((None, m.message.clone())),
            Output::SendTo(to, m) => Some((Some(*to), m.message.clone())),
            _ => None,
        })
        .collect()
    }

    /// The outputs of replica `i` that `select` picks.
    pub(super) fn of<T>(&self, i: usize, select: impl Fn(&Output) -> Option<T>) -> Vec<T> {
        self.outputs.iter().filter(|(from, _)| *from == i).filter_map(|(_, o)| select(o)).collect()
    }
}
