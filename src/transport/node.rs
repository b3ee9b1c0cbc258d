//! One validator in its own process (`bftswarm node`): a real [`Validator`]
//! with its write-ahead log under the node's home, whose routes go to the
//! hub over TCP instead of to a supervisor in the same process.
//!
//! The connection is re-established with backoff whenever it drops; the
//! validator keeps running meanwhile (what it sends is dropped and counted,
//! and PBFT's retransmission recovers it once the link is back).

use super::frame::{codec, printable, Frame, NodeStatus, Welcome, WireError};
use super::handshake::{join_hub, HandshakeError};
use super::link::{tune, write_frames, Outbox};
use super::peer::{next_within, SILENCE_LIMIT};
use crate::actors::HostedApp;
use crate::actors::{
    Deliver, GetNextNonces, GetStatus, InjectFault, Misbehaviour, RecoveredValidator, ReportMisbehaviourTo, Route,
    Validator, ValidatorStatus, SUPERVISOR_MAILBOX,
};
use crate::app::RestoreError;
use crate::crypto::{Keypair, PublicKey};
use crate::faults::FaultSpec;
use crate::wal::{Recovery, ReplicaSpec, WalError, WalOptions};
use actix::{Actor, Addr, Context, Handler, Message, Recipient, Supervisor as ActorSupervisor};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How often the node tells the hub where its validator is.
const STATUS_EVERY: Duration = Duration::from_millis(100);
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

pub struct NodeOptions {
    /// The node's home: its write-ahead log goes to `<home>/wal`.
    pub home: PathBuf,
    /// The hub's address, `HOST:PORT`.
    pub hub: String,
    pub keypair: Keypair,
    /// The key the hub must prove it holds.
    pub hub_key: PublicKey,
    pub fsync: bool,
    /// Injected Byzantine behaviour, for demonstrations: the hub should convict this node.
    pub fault: Option<FaultSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("cannot open the write-ahead log: {0}")]
    Wal(#[from] WalError),
    #[error("the hub's welcome carries no committee")]
    NoCommittee,
    #[error("the hub's genesis is not a state of this node's application ({0}); run the hub's application")]
    OtherApplication(RestoreError),
    #[error("the hub welcomed this node as {got}, but it runs {running}; the hub's committee changed under it")]
    IdentityChanged { running: String, got: String },
}

/// Connects, runs the validator, and reconnects forever; returns only when
/// the hub refuses this node or cannot be trusted. Must run inside an actix System.
pub async fn run_node<A: HostedApp>(options: NodeOptions) -> Result<(), NodeError> {
    let dropped = Arc::new(AtomicU64::new(0));
    let link = HubLink { outbox: None, dropped: dropped.clone() }.start();
    let mut running: Option<(String, Addr<Validator<A>>)> = None;
    let mut retry = FIRST_RETRY;
    loop {
        match connect(&options).await {
            Ok((conn, welcome)) => {
                retry = FIRST_RETRY;
                let validator = match &running {
                    Some((name, _)) if *name != welcome.name => {
                        return Err(NodeError::IdentityChanged { running: name.clone(), got: welcome.name });
                    }
                    Some((_, validator)) => validator.clone(),
                    None => {
                        let validator = start_validator(&options, &welcome, link.clone().recipient())?;
                        // Queued before any delivery: nothing the validator finds goes unreported.
                        validator.do_send(ReportMisbehaviourTo(link.clone().recipient()));
                        if let Some(fault) = options.fault {
                            validator.do_send(InjectFault(fault));
                        }
                        running = Some((welcome.name.clone(), validator.clone()));
                        validator
                    }
                };
                eprintln!("{} joined the hub at {}", printable(&welcome.name), options.hub);
                let ended = relay(conn, &validator, &link, dropped.clone()).await;
                eprintln!("lost the hub at {} ({}); reconnecting", options.hub, describe(&ended));
            }
            Err(NodeError::Handshake(error)) if !error.is_fatal() => {
                // Once per outage on stderr; every attempt in the log.
                if retry == FIRST_RETRY {
                    eprintln!("cannot reach the hub at {} ({error}); retrying", options.hub);
                }
                tracing::info!(hub = %options.hub, %error, "cannot reach the hub; retrying");
            }
            Err(error) => return Err(error),
        }
        actix_rt::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

fn describe(ended: &Result<(), WireError>) -> String {
    match ended {
        Ok(()) => "closed".into(),
        Err(error) => error.to_string(),
    }
}

async fn connect(options: &NodeOptions) -> Result<(super::handshake::Connection<TcpStream>, Welcome), NodeError> {
    let stream = TcpStream::connect(&options.hub).await.map_err(|e| HandshakeError::Wire(e.into()))?;
    tune(&stream);
    let mut conn = Framed::new(stream, codec());
    let welcome = join_hub(&mut conn, &options.keypair, options.hub_key).await?;
    Ok((conn, welcome))
}

/// Starts the validator, rebuilt from its write-ahead log: a member of the
/// genesis committee, or a validator that joined through a membership change
/// (its log belongs to the first committee of the hub's history that holds
/// it). A new one catches up by state transfer. It shares the connection's
/// thread: the process has nothing else to do, and a delivery then reaches
/// it without waking another thread.
fn start_validator<A: HostedApp>(
    options: &NodeOptions,
    welcome: &Welcome,
    route: Recipient<Route>,
) -> Result<Addr<Validator<A>>, NodeError> {
    let Welcome { id, name, committees, params, genesis } = welcome.clone();
    let keypair = options.keypair.clone();
    let Some(genesis_committee) = committees.first().cloned() else { return Err(NodeError::NoCommittee) };
    let first_with_id = committees.iter().find(|committee| committee.contains(id));
    let joined_in = first_with_id.filter(|committee| committee.epoch() != genesis_committee.epoch()).cloned();
    let genesis = A::restore(&genesis).map_err(NodeError::OtherApplication)?;
    let spec = ReplicaSpec { name, keypair, committee: genesis_committee, params, genesis, joined_in };
    let recovered = RecoveredValidator::open(spec, WalOptions::under_home(&options.home, options.fsync))?;
    eprintln!("{}: {}", printable(&welcome.name), describe_recovery(recovered.recovery()));
    Ok(ActorSupervisor::start(move |_| Validator::recovered(recovered, route).with_known_committees(&committees)))
}

fn describe_recovery(recovery: &Recovery) -> String {
    match recovery {
        Recovery::Fresh => "a new write-ahead log".into(),
        Recovery::Wal { records, last_executed, .. } => {
            format!("rebuilt from its write-ahead log ({records} records, executed up to seq {last_executed})")
        }
        Recovery::Discarded { error, moved_to } => {
            format!(
                "its write-ahead log was unusable ({error}), moved to {}; passive, catching up from peers",
                moved_to.display()
            )
        }
        Recovery::Missing => "its write-ahead log is missing; passive, catching up from peers".into(),
        Recovery::Unclean { records, last_executed, .. } => format!(
            "rebuilt from its write-ahead log ({records} records, executed up to seq {last_executed}), which was \
             not closed cleanly without fsync; passive, catching up from peers"
        ),
    }
}

/// Relays frames until the connection ends: deliveries to the validator,
/// its routes (through [`HubLink`]) and periodic status reports to the hub.
async fn relay<A: HostedApp>(
    conn: super::handshake::Connection<TcpStream>,
    validator: &Addr<Validator<A>>,
    link: &Addr<HubLink>,
    dropped: Arc<AtomicU64>,
) -> Result<(), WireError> {
    let (outbox, queued) = Outbox::bounded(dropped.clone());
    // The first status goes ahead of anything the validator sends: the hub
    // learns of a fault injected into it before peers can convict it for that
    // fault (a restarted validator speaks at once), so the conviction is not
    // counted against an honest agent.
    if let Ok(status) = validator.send(GetStatus).await {
        outbox.push(&Frame::Status(Box::new(summary(&status, dropped.load(Ordering::Relaxed)))), 0);
    }
    link.do_send(Connected(Some(outbox.clone())));
    let (sink, mut frames) = conn.split();
    let read = async {
        while let Some(bytes) = next_within(&mut frames, SILENCE_LIMIT).await? {
            match Frame::decode(&bytes?)? {
                // The hub's heartbeat.
                Frame::Deliver { envelopes, .. } if envelopes.is_empty() => {}
                // A full mailbox drops the delivery; retransmission recovers it.
                Frame::Deliver { from, envelopes } => drop(validator.try_send(Deliver { from, envelopes })),
                Frame::AskNonces { query, accounts } => {
                    let (validator, outbox) = (validator.clone(), outbox.clone());
                    actix_rt::spawn(async move {
                        if let Ok(nonces) = validator.send(GetNextNonces(Arc::new(accounts))).await {
                            outbox.push(&Frame::Nonces { query, nonces }, 0);
                        }
                    });
                }
                other => return Err(WireError::Unexpected { expected: "deliver or ask-nonces", got: other.kind() }),
            }
        }
        Err(WireError::Closed)
    };
    let report = async {
        let mut every = actix_rt::time::interval(STATUS_EVERY);
        loop {
            every.tick().await;
            if let Ok(status) = validator.send(GetStatus).await {
                let link_dropped = dropped.load(Ordering::Relaxed);
                outbox.push(&Frame::Status(Box::new(summary(&status, link_dropped))), 0);
            }
        }
    };
    let result = tokio::select! {
        result = read => result,
        result = write_frames(sink, queued) => result,
        () = report => Ok(()),
    };
    link.do_send(Connected(None));
    result
}

/// What the hub hears of the validator; `link_dropped` counts the routes the
/// connection had no room for (or that came while it was down).
fn summary(status: &ValidatorStatus, link_dropped: u64) -> NodeStatus {
    NodeStatus {
        is_primary: status.is_primary,
        view: status.view,
        epoch: status.epoch,
        member: status.member,
        last_executed: status.last_executed,
        slots_in_flight: status.slots_in_flight as u64,
        stable_checkpoint: status.stable_checkpoint,
        stable_digest: status.stable_digest,
        ledger_digest: status.ledger_digest,
        balance_sum: status.balance_sum,
        total_supply: status.total_supply,
        txs_committed: status.stats.txs_committed,
        txs_rejected: status.stats.txs_rejected,
        inbound_rejected: status.inbound_rejected.values().sum(),
        outbound_dropped: status.outbound_dropped + link_dropped,
        view_history: status.view_history.clone(),
        injected_fault: status.injected_fault.clone(),
    }
}

/// The validator's supervisor and detector, as seen from the node: routes and
/// reports go to the hub's socket while connected, and are dropped and
/// counted (as outbound) while not.
struct HubLink {
    outbox: Option<Outbox>,
    dropped: Arc<AtomicU64>,
}

impl HubLink {
    /// Queues `frame` (of `count` items) for the hub, or counts it dropped while disconnected.
    fn forward(&mut self, frame: &Frame, count: u64) {
        match &self.outbox {
            Some(outbox) if outbox.push(frame, count) => {}
            Some(_) => self.outbox = None,
            None => {
                self.dropped.fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Connected(Option<Outbox>);

impl Actor for HubLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(SUPERVISOR_MAILBOX);
    }
}

impl Handler<Connected> for HubLink {
    type Result = ();

    fn handle(&mut self, Connected(outbox): Connected, _: &mut Context<Self>) {
        self.outbox = outbox;
    }
}

impl Handler<Route> for HubLink {
    type Result = ();

    fn handle(&mut self, route: Route, _: &mut Context<Self>) {
        let count = route.items.len() as u64;
        self.forward(&Frame::Route(route.items), count);
    }
}

impl Handler<Misbehaviour> for HubLink {
    type Result = ();

    fn handle(&mut self, Misbehaviour { reports, .. }: Misbehaviour, _: &mut Context<Self>) {
        let count = reports.len() as u64;
        self.forward(&Frame::Reports(reports), count);
    }
}
