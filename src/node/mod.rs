//! One validator's pure core: the verifier, the replica, the history of
//! committees, the mirror of what its write-ahead log must hold, and the
//! detection reports, behind one entry point, [`Node::step`], that returns
//! everything a step produced as one [`Ready`] value (raft-rs's `Ready`,
//! malachite's effects). No actix, clock, disk or randomness: the validator
//! actor, the simulation and a user's custom validator all drive this type.
//!
//! A driver's loop: `let ready = node.step(now, arrival);` persist
//! `ready.write` (a node without a log has nothing to write), send
//! `ready.outbox` once the log's receipt opens it, hand `ready.reports` to the
//! detector, count `ready.refused`, and step again with [`Arrival::Tick`] at
//! `ready.deadline`.

mod log;
mod ready;
#[cfg(test)]
mod tests;

pub use log::{FoldError, Identity, WalRecord};
pub use ready::{rejection_name, LogWrite, Outbox, Ready, Receipt, Refused};

use crate::app::Application;
use crate::detect::{report_output, report_rejection};
use crate::ledger::Ledger;
use crate::protocol::{
    AgentId, Committee, Epoch, Input, Micros, Output, RecoveredState, Rejection, Replica, Request,
    SignedMembershipChange, SignedMessage, Verifier,
};
use log::LogMirror;
use std::sync::Arc;

/// What arrives at a node, unverified: the node verifies it before its replica sees it.
#[derive(Clone, Debug)]
pub enum Arrival {
    /// A consensus message, handed over on `channel`'s authenticated link
    /// when a peer validator relayed it (a bad signature then accuses the
    /// channel, since a relayed message may name an innocent signer).
    Message { channel: Option<AgentId>, message: Arc<SignedMessage> },
    /// Signed client requests.
    Requests(Vec<Request>),
    /// A membership change, to be signed by the operator.
    Membership(Arc<SignedMembershipChange>),
    /// Time passed: fire whatever timers are due.
    Tick,
    /// An operator suspects the primary: move to the next view now.
    ForceViewChange,
}

impl Arrival {
    /// A consensus message whose channel is unknown (no one to accuse for a forged signature).
    pub fn message(message: Arc<SignedMessage>) -> Arrival {
        Arrival::Message { channel: None, message }
    }
}

pub struct Node<A: Application = Ledger> {
    replica: Replica<A>,
    /// Also the history of committees: every epoch this node was told of or
    /// its replica scheduled, so the one place that knows who signs what.
    verifier: Verifier,
    /// What the log holds, for a node whose steps are logged.
    log: Option<LogMirror<A>>,
    /// The number of the newest write this node asked for (0: none yet).
    last_write: u64,
}

impl<A: Application> Node<A> {
    /// A node whose steps are not logged (nothing to persist: its outbox opens at once).
    pub fn new(replica: Replica<A>) -> Node<A> {
        let verifier = verifier_for(&replica, std::iter::empty());
        Node { replica, verifier, log: None, last_write: 0 }
    }

    /// A node whose verifier knows exactly `committees` (and learns later
    /// ones from its replica): a validator joining a later epoch, handed the
    /// committees as they were announced, before the checkpoints that start
    /// them were decided; it believes a start only when f+1 members vouch for it.
    pub fn handed(replica: Replica<A>, committees: &[Committee]) -> Node<A> {
        let max_batch_size = replica.params().max_batch_size;
        let mut verifier = Verifier::new(committees.first().unwrap_or(replica.committee()), max_batch_size);
        committees.iter().for_each(|committee| verifier.learn(committee));
        Node { replica, verifier, log: None, last_write: 0 }
    }

    /// Verifies messages of these committees too: a validator that joins in a
    /// later epoch must check the earlier epochs' checkpoint proofs.
    pub fn with_known_committees(mut self, committees: &[Committee]) -> Node<A> {
        committees.iter().for_each(|committee| self.verifier.learn(committee));
        self
    }

    pub fn replica(&self) -> &Replica<A> {
        &self.replica
    }

    /// The replica, once nothing will be stepped any more (a finished simulation's states).
    pub fn into_replica(self) -> Replica<A> {
        self.replica
    }

    /// The committee of `epoch`, if this node knows it.
    pub fn committee(&self, epoch: Epoch) -> Option<&Committee> {
        self.verifier.committee(epoch)
    }

    /// What the log holds after every write this node asked for; none for a node without a log.
    pub fn logged_state(&self) -> Option<&RecoveredState<A>> {
        self.log.as_ref().map(|log| &log.state)
    }

    /// Verifies what arrived, steps the replica with it, and returns everything the step produced.
    pub fn step(&mut self, now: Micros, arrival: Arrival) -> Ready<A> {
        let me = self.replica.id();
        let mut reports = Vec::new();
        let mut refused = Vec::new();
        let input = match arrival {
            Arrival::Message { channel, message } => match self.verifier.verify_message(&message) {
                Ok(()) => Some(Input::Message(message)),
                Err(rejection) => {
                    if let Some(channel) = channel {
                        reports.extend(report_rejection(me, channel, &message, &rejection));
                    }
                    let later = match rejection {
                        Rejection::WrongEpoch { expected, received } if received > expected => {
                            Some(Input::LaterEpochHeard(received))
                        }
                        _ => None,
                    };
                    refused.push(Refused::Message(rejection));
                    later
                }
            },
            Arrival::Requests(requests) => {
                let (valid, invalid) = self.verifier.verify_requests(requests);
                if !invalid.is_empty() {
                    refused.push(Refused::InvalidClientSignatures(invalid.len()));
                }
                Some(Input::Requests(valid))
            }
            Arrival::Membership(change) => {
                let signed = self.verifier.verify_membership(&change);
                if !signed {
                    refused.push(Refused::UnsignedMembershipChange);
                }
                signed.then_some(Input::Membership(change))
            }
            Arrival::Tick => Some(Input::Tick),
            Arrival::ForceViewChange => Some(Input::ForceViewChange),
        };
        let outputs = input.map(|input| self.replica.step(now, input)).unwrap_or_default();
        for output in &outputs {
            if let Output::EpochScheduled { committee, .. } | Output::EpochChanged { committee, .. } = output {
                self.verifier.learn(committee);
            }
            reports.extend(report_output(me, output, self.replica.committee()));
        }
        let write = self.write_for(&outputs);
        let waits_for = (self.last_write > 0).then_some(self.last_write);
        Ready {
            write,
            outbox: Outbox::new(outputs, waits_for),
            reports,
            refused,
            deadline: self.replica.next_deadline(),
        }
    }

    /// The records of one step, folded into the mirror; numbered when there are any.
    fn write_for(&mut self, outputs: &[Output]) -> LogWrite<A> {
        let Some(log) = &mut self.log else { return LogWrite::new(None, Vec::new(), false) };
        let (records, snapshot) = log.fold_step(outputs, &self.replica);
        if records.is_empty() && !snapshot {
            return LogWrite::new(None, records, false);
        }
        self.last_write += 1;
        LogWrite::new(Some(self.last_write), records, snapshot)
    }

    /// Puts a replica rebuilt after a crash in the old one's place. The
    /// committee history outlives it (it is the swarm's, not the log's); the
    /// verifier's caches do not.
    fn replace_replica(&mut self, replica: Replica<A>) {
        let known: Vec<Committee> = self.verifier.committees().cloned().collect();
        self.verifier = verifier_for(&replica, known.iter());
        self.replica = replica;
    }

    /// A node whose every step is logged, starting from `state`, what its
    /// log holds (its replica rebuilt from it, [`Replica::restored`]).
    pub fn logged(replica: Replica<A>, state: RecoveredState<A>) -> Node<A> {
        let mut node = Node::new(replica);
        node.log = Some(LogMirror { state });
        node
    }

    /// A crashed node back from its log: `rebuilt`'s replica and log (see
    /// [`Node::logged`]) take this node's place; the committees this node
    /// knows stay known (the committee history is the swarm's, not the log's).
    pub fn restart(&mut self, rebuilt: Node<A>) {
        let Node { replica, log, last_write, .. } = rebuilt;
        self.replace_replica(replica);
        self.log = log;
        self.last_write = last_write;
    }
}

/// A verifier of `replica`'s committee, the epochs its membership history
/// knows, and `known`.
fn verifier_for<'a, A: Application>(replica: &Replica<A>, known: impl Iterator<Item = &'a Committee>) -> Verifier {
    let mut verifier = Verifier::new(replica.committee(), replica.params().max_batch_size);
    known.for_each(|committee| verifier.learn(committee));
    replica.known_committees().iter().for_each(|committee| verifier.learn(committee));
    verifier
}
