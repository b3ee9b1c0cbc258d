//! A custom validator: your own actix actor takes a seat in the committee.
//!
//! It joins exactly as the built-in validators do: it registers with the
//! supervisor and drives the protocol's pure `Node` (which verifies what
//! arrives, steps the replica, learns new committees and says what to send
//! and when to wake up), routing what the node says to send back through the
//! hub. Its own behaviour is a few lines on top: a compliance officer that
//! flags every transfer above a limit it executes. Its votes are as good as
//! anyone's; it signs with its own key only. It keeps no write-ahead log, so
//! its node has nothing to persist and its outbox opens at once (the
//! built-in `Validator` shows the durable variant).
//!
//!     cargo run --example custom_validator -- 400

use actix::{Actor, Context, Handler};
use bftswarm::actors::{
    now, DeadlineTimer, Deliver, Envelope, LaunchOptions, Origin, Register, Route, Swarm, SwarmSpec,
};
use bftswarm::app::{Application, SwarmApp};
use bftswarm::config::SwarmConfig;
use bftswarm::ledger::{Execution, Ledger, TxOutcome};
use bftswarm::node::{Arrival, Node, Refused};
use bftswarm::protocol::{AgentId, ClientId, Executed, Output, Replica};
use bftswarm::workload::{Workload, WorkloadSpec};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the compliance validator saw.
#[derive(Clone, Debug, Default)]
pub struct ComplianceReport {
    /// Committed transfers above the limit, in execution order.
    pub flagged: Vec<u64>,
    pub last_executed: u64,
    pub ledger_digest: String,
    pub rejected_inbound: u64,
}

pub struct ComplianceValidator {
    node: Node<SwarmApp>,
    hub: actix::Recipient<Route>,
    timer: DeadlineTimer,
    limit: u64,
    report: Arc<Mutex<ComplianceReport>>,
}

impl ComplianceValidator {
    /// Its own behaviour: flag the committed transfers above the limit.
    fn audit(&self, executed: &Executed) {
        let mut report = self.report.lock().unwrap();
        for (request, execution) in executed.batch.requests.iter().zip(&executed.executions) {
            let amount = request.tx.tx.as_transfer().map_or(0, |t| t.amount);
            if *execution == Execution::Applied(TxOutcome::Committed) && amount > self.limit {
                report.flagged.push(amount);
            }
        }
        report.last_executed = executed.seq.0;
        report.ledger_digest = self.node.replica().app().digest().to_string();
    }

    /// The loop every validator runs: step the node, send what it says, wake up when it asks.
    fn step(&mut self, arrival: Arrival, ctx: &mut Context<Self>) {
        let ready = self.node.step(now(), arrival);
        self.report.lock().unwrap().rejected_inbound += ready.refused.iter().map(Refused::count).sum::<u64>();
        let me = self.node.replica().id();
        let mut items = Vec::new();
        // No log: nothing to wait for before sending.
        for output in ready.outbox.send_now().unwrap_or_default() {
            match Route::item(me, output) {
                Ok(item) => items.push(item),
                Err(Output::Executed(executed)) => self.audit(&executed),
                // Checkpoints, view changes, evidence: left to the built-in tooling.
                Err(_) => {}
            }
        }
        if !items.is_empty() {
            // A full hub drops the route; the protocol's retransmission recovers it.
            let _ = self.hub.try_send(Route { from: Origin::Validator(me), items });
        }
        self.timer.arm(ctx, now(), ready.deadline, |validator, ctx| {
            validator.timer.fired();
            validator.step(Arrival::Tick, ctx)
        });
    }
}

impl Actor for ComplianceValidator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.step(Arrival::Tick, ctx);
    }
}

impl Handler<Deliver> for ComplianceValidator {
    type Result = ();

    fn handle(&mut self, Deliver { from, envelopes }: Deliver, ctx: &mut Context<Self>) {
        for envelope in envelopes {
            let arrival = match envelope {
                Envelope::Consensus(message) => {
                    let channel = if let Origin::Validator(peer) = from { Some(peer) } else { None };
                    Arrival::Message { channel, message }
                }
                Envelope::Requests(requests) => Arrival::Requests(Arc::unwrap_or_clone(requests)),
                Envelope::Membership(change) => Arrival::Membership(change),
                Envelope::Reply(_) => {
                    self.report.lock().unwrap().rejected_inbound += 1;
                    continue;
                }
            };
            self.step(arrival, ctx);
        }
    }
}

/// Four validators, the fourth (`bft-agent-4`) being the compliance officer;
/// `count` transfers of up to 1,000, flagging those above `limit`. Returns the
/// officer's report, the built-in validators' statuses' digests and the
/// amounts the client saw committed.
pub async fn run_with_compliance(count: usize, limit: u64) -> (ComplianceReport, Vec<String>, Vec<u64>) {
    let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
    let workload = Workload::generate(&WorkloadSpec {
        seed: 21,
        accounts: 40,
        transactions: count,
        initial_balance: 1_000_000,
        max_amount: 1_000,
        overdraft_ratio: 0.0,
    });
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let spec = SwarmSpec::from_config(&config, genesis, 21).unwrap();
    // The swarm's genesis: the workload's accounts and the validators' own, and an empty memory.
    let genesis = spec.genesis.clone();
    let me = AgentId(3);
    let member = spec.committee.member(me).unwrap().clone();
    let keypair = spec.validator_keys[3].clone();
    let (committee, params) = (spec.committee.clone(), spec.params.clone());
    let options = LaunchOptions { external_validators: BTreeSet::from([me]), ..LaunchOptions::default() };
    let swarm = Swarm::launch_with(spec, options).expect("an in-memory swarm always launches");

    let report = Arc::new(Mutex::new(ComplianceReport::default()));
    let officer = ComplianceValidator {
        node: Node::new(Replica::new(me, keypair, committee, params, genesis)),
        hub: swarm.supervisor().clone().recipient(),
        timer: DeadlineTimer::default(),
        limit,
        report: report.clone(),
    }
    .start();
    let register =
        Register { id: me, name: member.name, public_key: member.public_key, recipient: officer.recipient() };
    swarm.supervisor().send(register).await.unwrap();

    let amounts: std::collections::HashMap<_, _> =
        workload.transfers.iter().map(|tx| (tx.id(), tx.tx.as_transfer().map_or(0, |t| t.amount))).collect();
    let progress = Arc::new(AtomicU64::new(0));
    let run = swarm.run_client(ClientId(1), workload.transfers, 40, 2_000, progress).await.unwrap();
    let committed: Vec<u64> =
        run.completions.iter().filter(|c| c.outcome == TxOutcome::Committed).map(|c| amounts[&c.tx_id]).collect();
    let statuses = swarm.settled_status(Duration::from_secs(5)).await;
    let target = statuses.iter().map(|s| s.last_executed.0).max().unwrap_or(0);
    let start = std::time::Instant::now();
    while report.lock().unwrap().last_executed < target && start.elapsed() < Duration::from_secs(5) {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    let digests = statuses.iter().map(|s| s.ledger_digest.to_string()).collect();
    swarm.stop();
    let report = report.lock().unwrap().clone();
    (report, digests, committed)
}

fn main() {
    let count = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(400);
    let (report, digests, committed) = actix::System::new().block_on(run_with_compliance(count, 900));
    println!(
        "{} of {count} transfers committed; the compliance validator executed up to seq {} and flagged {} above 900",
        committed.len(),
        report.last_executed,
        report.flagged.len()
    );
    let agrees = digests.iter().all(|digest| *digest == report.ledger_digest);
    println!("its ledger matches the built-in validators': {agrees}");
    if !agrees {
        std::process::exit(1);
    }
}
