//! One simulated run of a replicated application other than the ledger: the
//! same replica, verifier and client on the seeded lossy network, one
//! validator cut off until it must catch up by the application's snapshot,
//! and requests an adversary hands straight to validators. The task board
//! and the memory scenarios drive it; each checks its own rules on what it
//! returns.
//!
//! What it checks holds for any application: every seq executes one batch
//! everywhere (no gap), every stable checkpoint carries one application
//! digest, every final state is the one a fresh application reaches by
//! executing the agreed batches at their seqs, and every request of the
//! workload gets f+1 matching outcomes.

use super::network::{Network, NetworkFaults, Node, Payload};
use crate::app::{Application, SignedTx};
use crate::crypto::{Digest, Keypair};
use crate::ledger::Execution;
use crate::node::{Arrival, Node as ValidatorNode, Refused};
use crate::protocol::{
    AgentId, Batch, ClientCore, ClientId, ClientInput, ClientOutput, Committee, Epoch, Micros, Output, ProtocolParams,
    Replica, Request, Seq,
};
use crate::rng::SeededRng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a run may take in simulated time.
const TIME_LIMIT_US: u64 = 30_000_000;

/// What every application scenario draws alike: the committee's keys, the
/// protocol's parameters, the lossy network and the validator cut off.
pub(super) struct Setting {
    pub params: ProtocolParams,
    pub faults: NetworkFaults,
    /// The validator cut off (its isolation in `faults`) until the others are
    /// three checkpoints past it.
    pub lagging: usize,
    pub keys: Vec<Keypair>,
}

impl Setting {
    /// 4, 5 or 7 validators, checkpoints every 2 seqs, small batches and
    /// windows, up to 20 % loss and 10 % duplicates early in the run.
    pub fn draw(rng: &mut SeededRng) -> Setting {
        let validators = [4, 5, 7][rng.below(3) as usize];
        let params = ProtocolParams {
            checkpoint_interval: 2,
            log_window: 2 * rng.between(2, 3),
            max_batch_size: rng.between(1, 3) as usize,
            batch_delay_us: rng.between(0, 2_000),
            max_in_flight_batches: rng.between(1, 3),
            retransmit_interval_us: 20_000,
            max_pending_requests: 1_000,
            outcome_retention_checkpoints: 2,
            view_change_timeout_us: rng.between(150_000, 400_000),
        };
        let lagging = rng.between(1, validators as u64 - 1) as usize;
        let faults = NetworkFaults {
            drop_probability: rng.below(20) as f64 / 100.0,
            duplicate_probability: rng.below(10) as f64 / 100.0,
            min_delay_us: 50,
            max_delay_us: rng.between(200, 3_000),
            faulty_until_us: rng.between(0, 300_000),
            partition: None,
            isolated: Some(lagging),
            slow: None,
        };
        let keys = (0..validators).map(|_| Keypair::from_seed(rng.bytes())).collect();
        Setting { params, faults, lagging, keys }
    }
}

pub(super) struct AppScenario<A> {
    pub setting: Setting,
    pub genesis: A,
    pub workload: Vec<SignedTx>,
    pub window: usize,
    /// Requests handed at time 0 to one validator each (validator, request).
    pub injected: Vec<(usize, Request)>,
    /// Requests handed to one validator each (validator, request) once one
    /// validator executed this seq.
    pub later: Option<(Seq, Vec<(usize, Request)>)>,
}

pub(super) struct AppRun<A: Application> {
    pub committee: Committee,
    pub replicas: Vec<Replica<A>>,
    /// The agreed batch and outcomes at each seq.
    pub batches: BTreeMap<Seq, (Digest, Arc<Batch>, Vec<Execution>)>,
    pub violations: Vec<String>,
    pub steps: usize,
    pub completed: usize,
    /// Snapshots the cut-off validator installed.
    pub snapshots_installed: u64,
}

impl<A: Application> AppRun<A> {
    pub fn highest_executed(&self) -> Seq {
        self.replicas.iter().map(Replica::last_executed).max().unwrap_or_default()
    }
}

/// What the honest replicas executed, and the violations of agreement.
#[derive(Default)]
struct Agreement {
    batches: BTreeMap<Seq, (Digest, Arc<Batch>, Vec<Execution>)>,
    checkpoints: BTreeMap<Seq, Digest>,
    violations: Vec<String>,
}

impl Agreement {
    fn on_output(&mut self, me: AgentId, output: &Output) {
        match output {
            Output::Executed(executed) => {
                let entry = (executed.digest, executed.batch.clone(), executed.executions.clone());
                let first = self.batches.entry(executed.seq).or_insert(entry);
                if first.0 != executed.digest || first.2 != executed.executions {
                    self.violations.push(format!("{me} executed another batch or outcome at {}", executed.seq));
                }
            }
            Output::CheckpointStable { seq, ledger_digest: app_digest, .. }
                if *self.checkpoints.entry(*seq).or_insert(*app_digest) != *app_digest =>
            {
                self.violations.push(format!("{me} holds another application digest at checkpoint {seq}"));
            }
            _ => {}
        }
    }
}

pub(super) fn run<A: Application>(scenario: AppScenario<A>, mut rng: SeededRng) -> AppRun<A> {
    let AppScenario { setting, genesis, workload, window, injected, mut later } = scenario;
    let Setting { params, faults, lagging, keys } = setting;
    let validators = keys.len();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let Ok(committee) = Committee::numbered(Epoch(0), &public_keys, "app-", None) else {
        panic!("{validators} validators make a valid committee");
    };
    let mut nodes: Vec<ValidatorNode<A>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let id = AgentId(i as u32);
            ValidatorNode::new(Replica::new(id, key.clone(), committee.clone(), params.clone(), genesis.clone()))
        })
        .collect();
    let steps = workload.len();
    let mut client = ClientCore::new(ClientId(0), committee.clone(), workload, window, 60_000);
    let mut network = Network::new(faults, rng.fork(0xB0A2D));
    for (to, request) in injected {
        network.send(Micros(0), Node::Operator, Node::Validator(to), Payload::Requests(vec![request]));
    }
    network.schedule_tick(Node::Client, Micros(0));
    for i in 0..validators {
        network.schedule_tick(Node::Validator(i), Micros(0));
    }
    let mut agreement = Agreement::default();
    let mut completed = 0;
    let mut done_at: Option<Micros> = None;
    let mut isolated = true;
    while let Some((now, node, payload)) = network.next_event() {
        let highest = nodes.iter().map(|v| v.replica().last_executed()).max().unwrap_or_default();
        let level = nodes.iter().all(|v| v.replica().last_executed() == highest);
        if now.0 > TIME_LIMIT_US || (level && done_at.is_some_and(|t| now.0 > t.0 + 300_000)) {
            break;
        }
        // Cut off until the others are three checkpoints past it: the log it
        // needs is collected by then, so only the application's snapshot helps.
        if isolated && highest.0 >= 3 * params.checkpoint_interval {
            network.end_isolation();
            isolated = false;
        }
        if let Some((_, requests)) = later.take_if(|(at, _)| highest >= *at) {
            for (to, request) in requests {
                network.send(now, Node::Operator, Node::Validator(to), Payload::Requests(vec![request]));
            }
        }
        match node {
            Node::Client => {
                let input = match payload {
                    Payload::Reply(reply) => ClientInput::Reply(reply),
                    _ => ClientInput::Tick,
                };
                for output in client.step(now, input) {
                    match output {
                        ClientOutput::Broadcast(requests) => {
                            for i in 0..validators {
                                let payload = Payload::Requests(requests.clone());
                                network.send(now, Node::Client, Node::Validator(i), payload);
                            }
                        }
                        ClientOutput::Completed(_) => completed += 1,
                    }
                }
                if let Some(deadline) = client.next_deadline() {
                    network.schedule_tick(Node::Client, deadline);
                }
                if client.is_done() && done_at.is_none() {
                    done_at = Some(now);
                }
            }
            Node::Validator(index) => {
                let validator = &mut nodes[index];
                let arrival = match payload {
                    Payload::Tick => Arrival::Tick,
                    Payload::Requests(requests) => Arrival::Requests(requests),
                    Payload::Consensus(_, message) => Arrival::message(message),
                    _ => continue,
                };
                let ready = validator.step(now, arrival);
                if ready.refused.iter().any(Refused::kept_from_replica) {
                    continue;
                }
                let me = AgentId(index as u32);
                // Nothing is logged: the outbox opens at once.
                for output in ready.outbox.send_now().unwrap_or_default() {
                    agreement.on_output(me, &output);
                    match output {
                        Output::Broadcast(message) => {
                            for peer in (0..validators).filter(|peer| *peer != index) {
                                let payload = Payload::Consensus(me, message.clone());
                                network.send(now, node, Node::Validator(peer), payload);
                            }
                        }
                        Output::SendTo(peer, message) => {
                            network.send(now, node, Node::Validator(peer.0 as usize), Payload::Consensus(me, message))
                        }
                        Output::Reply(reply) => network.send(now, node, Node::Client, Payload::Reply(reply)),
                        _ => {}
                    }
                }
                if let Some(deadline) = ready.deadline {
                    network.schedule_tick(node, deadline);
                }
            }
            Node::Operator => {}
        }
    }
    let mut violations = std::mem::take(&mut agreement.violations);
    if let Some(gap) = (1..).map(Seq).zip(agreement.batches.keys()).find(|(expected, seq)| expected != *seq) {
        violations.push(format!("no batch agreed at {}", gap.0));
    }
    if !client.is_done() {
        violations.push(format!("{} of {steps} requests got no outcome", steps - completed));
    }
    // Every replica ends on the state a fresh application reaches by executing the agreed batches.
    let mut reference = genesis;
    for (seq, (_, batch, _)) in &agreement.batches {
        reference.execute(*seq, &batch.requests);
    }
    for (index, validator) in nodes.iter().enumerate() {
        let replica = validator.replica();
        if replica.app().digest() != reference.digest() {
            let executed = replica.last_executed();
            violations.push(format!("validator {index} ends on another state (executed {executed})"));
        }
    }
    AppRun {
        committee,
        snapshots_installed: nodes[lagging].replica().stats().snapshots_installed,
        replicas: nodes.into_iter().map(ValidatorNode::into_replica).collect(),
        batches: agreement.batches,
        violations,
        steps,
        completed,
    }
}
