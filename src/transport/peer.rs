//! The hub's side of one connected validator process: a [`RemoteValidator`]
//! actor that the supervisor delivers to like any validator, and the reader
//! that turns the node's frames into [`Route`]s from that validator and its
//! own reports into [`Misbehaviour`] for the swarm's detector.

use super::frame::{Frame, NodeStatus, WireError};
use super::handshake::Connection;
use super::link::{write_frames, Outbox};
use crate::actors::{
    Deliver, Destination, GetNextNonces, GetStatus, Misbehaviour, Origin, Route, Supervisor, ValidatorStatus,
    AGENT_MAILBOX,
};
use crate::crypto::PublicKey;
use crate::detect::Report;
use crate::protocol::{AgentId, ReplicaStats};
use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient, ResponseFuture,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Stands in for a validator of another process: what the supervisor
/// delivers to it is queued for the node's socket.
pub struct RemoteValidator {
    id: AgentId,
    name: String,
    public_key: PublicKey,
    outbox: Outbox,
    /// Envelopes the outbox had no room for.
    dropped: Arc<AtomicU64>,
    /// Routes the supervisor's full mailbox refused.
    routes_dropped: Arc<AtomicU64>,
    /// Reports the node sent in another member's name, or the detector's full mailbox refused.
    reports_dropped: Arc<ReportsDropped>,
    latest: NodeStatus,
    /// Nonce queries sent to the node and not answered yet, by query number.
    asked: BTreeMap<u64, oneshot::Sender<Vec<u64>>>,
    next_query: u64,
}

/// How long the hub waits for a node to say its accounts' nonces.
const NONCES_WAIT: Duration = Duration::from_secs(5);

/// The node answered a nonce query.
#[derive(Message)]
#[rtype(result = "()")]
struct NoncesAnswered {
    query: u64,
    nonces: Vec<u64>,
}

/// The node's reports the hub did not hand to the detector, by why.
#[derive(Default)]
struct ReportsDropped {
    /// Named another member as reporter: a node speaks only for itself.
    not_its_own: AtomicU64,
    /// The detector's mailbox was full.
    detector_full: AtomicU64,
}

/// The node reported its state.
#[derive(Message)]
#[rtype(result = "()")]
struct StatusReport(NodeStatus);

/// The connection ended, or a newer one from the same validator replaced it:
/// the actor stops, its outbox closes, and the supervisor sees a closed recipient.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnected;

/// A peer that sends nothing for this long (a node reports its status ten
/// times a second, the hub sends a heartbeat every [`HEARTBEAT_EVERY`]) is
/// stopped or cut off: hang up; the node connects again when it can.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// How often the hub tells a node it is there, whatever the load.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

impl Actor for RemoteValidator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(AGENT_MAILBOX);
        // An empty delivery tells an idle node the hub is still there.
        ctx.run_interval(HEARTBEAT_EVERY, |peer, ctx| {
            if !peer.outbox.push(&Frame::Deliver { from: Origin::Operator, envelopes: Vec::new() }, 0) {
                ctx.stop();
            }
        });
    }
}

impl Handler<Deliver> for RemoteValidator {
    type Result = ();

    fn handle(&mut self, Deliver { from, envelopes }: Deliver, ctx: &mut Context<Self>) {
        let count = envelopes.len() as u64;
        if !self.outbox.push(&Frame::Deliver { from, envelopes }, count) {
            ctx.stop();
        }
    }
}

impl Handler<StatusReport> for RemoteValidator {
    type Result = ();

    fn handle(&mut self, StatusReport(status): StatusReport, _: &mut Context<Self>) {
        self.latest = status;
    }
}

impl Handler<GetNextNonces> for RemoteValidator {
    type Result = ResponseFuture<Vec<u64>>;

    /// Asks the node; a node that does not answer in time answers nothing.
    fn handle(&mut self, GetNextNonces(accounts): GetNextNonces, _: &mut Context<Self>) -> Self::Result {
        let (query, (answer, answered)) = (self.next_query, oneshot::channel());
        self.next_query += 1;
        // Answers to queries that timed out are never sent: forget them.
        self.asked.retain(|_, waiting| !waiting.is_closed());
        self.asked.insert(query, answer);
        self.outbox.push(&Frame::AskNonces { query, accounts: accounts.to_vec() }, 0);
        Box::pin(async move {
            tokio::time::timeout(NONCES_WAIT, answered).await.ok().and_then(Result::ok).unwrap_or_default()
        })
    }
}

impl Handler<NoncesAnswered> for RemoteValidator {
    type Result = ();

    fn handle(&mut self, NoncesAnswered { query, nonces }: NoncesAnswered, _: &mut Context<Self>) {
        if let Some(waiting) = self.asked.remove(&query) {
            let _ = waiting.send(nonces);
        }
    }
}

impl Handler<Disconnected> for RemoteValidator {
    type Result = ();

    fn handle(&mut self, _: Disconnected, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetStatus> for RemoteValidator {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let node = &self.latest;
        let mut inbound_rejected = BTreeMap::new();
        inbound_rejected.insert("rejected-by-node".to_string(), node.inbound_rejected);
        inbound_rejected.insert("dropped-hub-outbox-full".to_string(), self.dropped.load(Ordering::Relaxed));
        inbound_rejected.insert("dropped-supervisor-full".to_string(), self.routes_dropped.load(Ordering::Relaxed));
        let reports = &self.reports_dropped;
        inbound_rejected.insert("report-not-its-own".to_string(), reports.not_its_own.load(Ordering::Relaxed));
        inbound_rejected.insert("report-detector-full".to_string(), reports.detector_full.load(Ordering::Relaxed));
        let stats =
            ReplicaStats { txs_committed: node.txs_committed, txs_rejected: node.txs_rejected, ..Default::default() };
        MessageResult(ValidatorStatus {
            id: self.id,
            name: self.name.clone(),
            public_key: self.public_key,
            is_primary: node.is_primary,
            view: node.view,
            epoch: node.epoch,
            member: node.member,
            last_executed: node.last_executed,
            slots_in_flight: usize::try_from(node.slots_in_flight).unwrap_or(usize::MAX),
            stable_checkpoint: node.stable_checkpoint,
            stable_digest: node.stable_digest,
            ledger_digest: node.ledger_digest,
            balance_sum: node.balance_sum,
            total_supply: node.total_supply,
            ledger_totals: None,
            stats,
            inbound_rejected,
            outbound_dropped: node.outbound_dropped,
            injected_fault: node.injected_fault.clone(),
            view_history: node.view_history.clone(),
            recovery: None,
            logged_executed: None,
        })
    }
}

/// Where the hub hands what a node sends: its routes and its reports, and
/// where it notes the nodes that say they run with an injected fault.
pub struct HubSide {
    pub supervisor: Addr<Supervisor>,
    pub detector: Recipient<Misbehaviour>,
    pub faulty: Arc<Mutex<BTreeSet<AgentId>>>,
}

/// Runs the admitted node's connection until either side ends it: starts its
/// [`RemoteValidator`] (returned at once through `started`, so the caller can
/// register it) and relays frames both ways.
pub async fn relay(
    conn: Connection<TcpStream>,
    id: AgentId,
    name: String,
    public_key: PublicKey,
    hub: HubSide,
    started: impl FnOnce(&Addr<RemoteValidator>),
) -> Result<(), WireError> {
    let HubSide { supervisor, detector, faulty } = hub;
    let dropped = Arc::new(AtomicU64::new(0));
    let routes_dropped = Arc::new(AtomicU64::new(0));
    let reports_dropped = Arc::new(ReportsDropped::default());
    let (outbox, queued) = Outbox::bounded(dropped.clone());
    let peer = RemoteValidator {
        id,
        name,
        public_key,
        outbox,
        dropped,
        routes_dropped: routes_dropped.clone(),
        reports_dropped: reports_dropped.clone(),
        latest: NodeStatus { member: true, ..NodeStatus::default() },
        asked: BTreeMap::new(),
        next_query: 0,
    }
    .start();
    started(&peer);
    let (sink, mut frames) = conn.split();
    let read = async {
        while let Some(bytes) = next_within(&mut frames, SILENCE_LIMIT).await? {
            match Frame::decode(&bytes?)? {
                Frame::Route(items) => {
                    let items = items.into_iter().map(|(to, envelope)| (from_node(id, to), envelope)).collect();
                    if supervisor.try_send(Route { from: Origin::Validator(id), items }).is_err() {
                        routes_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Frame::Status(status) => {
                    if status.injected_fault.is_some() {
                        faulty.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id);
                    }
                    peer.do_send(StatusReport(*status))
                }
                Frame::Reports(reports) => hand_to_detector(id, reports, &detector, &reports_dropped),
                Frame::Nonces { query, nonces } => peer.do_send(NoncesAnswered { query, nonces }),
                other => {
                    return Err(WireError::Unexpected {
                        expected: "route, status, reports or nonces",
                        got: other.kind(),
                    })
                }
            }
        }
        Err(WireError::Closed)
    };
    let result = tokio::select! {
        result = read => result,
        result = write_frames(sink, queued) => result,
    };
    peer.do_send(Disconnected);
    result
}

/// Hands validator `id`'s own reports to the detector, as an in-process
/// validator's; a report in another member's name is dropped and counted.
fn hand_to_detector(id: AgentId, reports: Vec<Report>, detector: &Recipient<Misbehaviour>, dropped: &ReportsDropped) {
    let (own, foreign) = own_reports(id, reports);
    if foreign > 0 && dropped.not_its_own.fetch_add(foreign, Ordering::Relaxed) == 0 {
        tracing::warn!(validator = %id, "a validator process sent reports in another member's name; dropped");
    }
    if own.is_empty() {
        return;
    }
    let count = own.len() as u64;
    if detector.try_send(Misbehaviour { reports: own, sent_at: Instant::now() }).is_err() {
        dropped.detector_full.fetch_add(count, Ordering::Relaxed);
    }
}

/// The reports whose reporter is `id`, and how many named someone else.
pub(super) fn own_reports(id: AgentId, reports: Vec<Report>) -> (Vec<Report>, u64) {
    let total = reports.len();
    let own: Vec<Report> = reports.into_iter().filter(|report| report.reporter() == id).collect();
    let foreign = (total - own.len()) as u64;
    (own, foreign)
}

/// The next frame's bytes, none at the end of the stream, an error after `limit` of silence.
pub(super) async fn next_within<S: futures_util::Stream<Item = std::io::Result<bytes::BytesMut>> + Unpin>(
    frames: &mut S,
    limit: Duration,
) -> Result<Option<std::io::Result<bytes::BytesMut>>, WireError> {
    tokio::time::timeout(limit, frames.next()).await.map_err(|_| WireError::Timeout(limit))
}

/// A node may broadcast only as itself: whatever sender it names, its
/// broadcast skips its own validator, not another.
fn from_node(id: AgentId, destination: Destination) -> Destination {
    match destination {
        Destination::AllValidatorsExcept(_) => Destination::AllValidatorsExcept(id),
        other => other,
    }
}
