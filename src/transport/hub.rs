//! The hub's listener: accepts validator processes for the members of a
//! running [`Swarm`] that it does not run itself, authenticates them
//! ([`super::handshake`]), and joins each to the supervisor through a
//! [`super::peer::RemoteValidator`] on a thread of its own.

use super::doorway::{Doorway, Evicted, Place, Throttle, HANDSHAKE_DEADLINE};
use super::frame::{codec, Welcome};
use super::gate::QuarantineGate;
use super::handshake::{admit_node, Connection, HandshakeError};
use super::link::tune;
use super::peer::{relay, Disconnected, HubSide, RemoteValidator};
use crate::actors::{HostedApp, Register, RemoteLink, Swarm};
use crate::app::SwarmApp;
use crate::crypto::{Keypair, PublicKey};
use crate::events::{EventKind, EventKinds};
use crate::hooks::Subscribe;
use crate::protocol::AgentId;
use actix::{Actor, Addr, Arbiter};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, FramedParts};

/// A listening hub. Dropping it does not close the listener; stopping the
/// actix System does.
pub struct Hub<A: HostedApp = SwarmApp> {
    shared: Arc<Shared<A>>,
    local_addr: SocketAddr,
}

pub(super) struct Shared<A: HostedApp> {
    pub(super) swarm: Arc<Swarm<A>>,
    key: Keypair,
    /// Keys refused whatever the committee says (quarantined agents), with why.
    refused: Mutex<BTreeMap<PublicKey, String>>,
    /// The live connection of each validator process. The newest wins: a
    /// restarted node must not wait for the hub to notice its old connection died.
    connections: Mutex<BTreeMap<AgentId, Addr<RemoteValidator>>>,
    /// Validators whose process said it runs with an injected fault (`bftswarm node --fault`).
    faulty: Arc<Mutex<BTreeSet<AgentId>>>,
    /// Refused keys may knock again and again: their warnings are throttled.
    refusals: Throttle,
}

impl<A: HostedApp> Hub<A> {
    /// Binds `listen` and accepts validator processes from now on. Must be
    /// called inside a running actix System.
    pub async fn listen(swarm: Arc<Swarm<A>>, key: Keypair, listen: &str) -> std::io::Result<Hub<A>> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            swarm,
            key,
            refused: Mutex::default(),
            connections: Mutex::default(),
            faulty: Arc::default(),
            refusals: Throttle::default(),
        });
        let gate = QuarantineGate(shared.clone()).start();
        let kinds = EventKinds::default().with(EventKind::AgentQuarantined);
        let subscribe = Subscribe { name: "hub-quarantine-gate".into(), kinds, recipient: gate.recipient() };
        shared.swarm.hub().do_send(subscribe);
        actix_rt::spawn(accept(listener, shared.clone()));
        Ok(Hub { shared, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn swarm(&self) -> &Arc<Swarm<A>> {
        &self.shared.swarm
    }

    /// Refuses `key` from now on, telling it `reason`, and hangs up on its
    /// validator process if it is connected. Quarantined agents are refused
    /// this way on their own (the hub hears `agent-quarantined`).
    pub fn refuse(&self, key: PublicKey, reason: String) {
        self.shared.refuse(key, reason);
    }

    /// The validators whose process said it runs with an injected fault:
    /// convicting them is no false positive.
    pub fn declared_faulty(&self) -> BTreeSet<AgentId> {
        lock(&self.shared.faulty).clone()
    }

    /// Closes validator `id`'s connection, if it has one (a removed validator).
    pub fn hang_up(&self, id: AgentId) {
        self.shared.hang_up(id);
    }

    /// Waits until `expected` validator processes are connected; on timeout,
    /// returns how many were.
    pub async fn wait_for_nodes(&self, expected: usize, max_wait: Duration) -> Result<(), usize> {
        let start = Instant::now();
        loop {
            let connected = self.shared.swarm.remote_connected();
            if connected >= expected {
                return Ok(());
            }
            if start.elapsed() >= max_wait {
                return Err(connected);
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl<A: HostedApp> Shared<A> {
    pub(super) fn refuse(&self, key: PublicKey, reason: String) {
        lock(&self.refused).insert(key, reason);
        let history = self.swarm.committee_history();
        if let Some(member) = history.iter().rev().flat_map(|c| c.members()).find(|m| m.public_key == key) {
            self.hang_up(member.id);
        }
    }

    fn hang_up(&self, id: AgentId) {
        if let Some(connection) = lock(&self.connections).remove(&id) {
            connection.do_send(Disconnected);
        }
    }
}

fn lock<T>(cell: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts until the System stops. A stranger's handshake runs here, within
/// the [`Doorway`]'s budget and deadline; only an admitted member's
/// connection gets a thread of its own.
async fn accept<A: HostedApp>(listener: TcpListener, shared: Arc<Shared<A>>) {
    let doorway = Arc::new(Doorway::default());
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (place, evicted) = doorway.enter(from.ip());
        actix_rt::spawn(greet(stream, from, place, evicted, shared.clone()));
        // Let the waiting handshakes run between arrivals: a member that has
        // spoken must be marked so before a burst of strangers can evict it.
        tokio::task::yield_now().await;
    }
}

/// Runs a stranger's handshake until it is admitted, refused, evicted or late.
async fn greet<A: HostedApp>(
    stream: TcpStream,
    from: SocketAddr,
    place: Place,
    evicted: Evicted,
    shared: Arc<Shared<A>>,
) {
    tune(&stream);
    let handshake = async {
        if stream.readable().await.is_ok() {
            place.spoke();
        }
        let mut conn = Framed::new(stream, codec());
        let admitted = admit_node(&mut conn, &shared.key, |key| admit(&shared, key)).await;
        admitted.map(|welcome| (conn, welcome))
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(HANDSHAKE_DEADLINE, handshake) => outcome,
        _ = evicted => return,
    };
    if outcome.is_err() {
        place.count_dropped();
    }
    drop(place);
    let (conn, welcome) = match outcome {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(HandshakeError::Refused(reason))) => {
            crate::observe::hub_refused_peer();
            if let Some(suppressed) = shared.refusals.allow() {
                tracing::warn!(%from, %reason, suppressed, "validator process refused");
            }
            return;
        }
        Ok(Err(error)) => {
            crate::observe::hub_refused_peer();
            tracing::debug!(%from, %error, "connection closed during the handshake");
            return;
        }
        Err(_) => {
            tracing::debug!(%from, "connection closed at the handshake deadline");
            return;
        }
    };
    // A socket belongs to the runtime that polls it: move it to the member's own thread.
    let parts = conn.into_parts();
    let (codec, read_buf, write_buf) = (parts.codec, parts.read_buf, parts.write_buf);
    let stream = match parts.io.into_std() {
        Ok(stream) => stream,
        Err(error) => return tracing::warn!(%error, %from, "cannot hand the connection over"),
    };
    Arbiter::new().spawn(async move {
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                let mut parts = FramedParts::new::<bytes::Bytes>(stream, codec);
                (parts.read_buf, parts.write_buf) = (read_buf, write_buf);
                serve(Framed::from_parts(parts), welcome, from, shared).await
            }
            Err(error) => tracing::warn!(%error, %from, "cannot use the connection"),
        }
        Arbiter::current().stop();
    });
}

/// Relays an admitted member's connection until it ends.
async fn serve<A: HostedApp>(conn: Connection<TcpStream>, welcome: Welcome, from: SocketAddr, shared: Arc<Shared<A>>) {
    let (id, name) = (welcome.id, welcome.name.clone());
    let public_key = welcome.committees.last().and_then(|c| c.member(id)).map(|m| m.public_key);
    let Some(public_key) = public_key else { return };
    tracing::info!(validator = %name, %from, "validator process joined");
    let _connected = crate::observe::HubPeerGauge::joined();
    let swarm = shared.swarm.clone();
    let registered = |peer: &Addr<RemoteValidator>| {
        if let Some(older) = lock(&shared.connections).insert(id, peer.clone()) {
            older.do_send(Disconnected);
        }
        let recipient = peer.clone().recipient();
        swarm.supervisor().do_send(Register { id, name: name.clone(), public_key, recipient });
        swarm.attach_remote(id, RemoteLink { status: peer.clone().recipient(), nonces: peer.clone().recipient() });
    };
    let faulty = shared.faulty.clone();
    let hub = HubSide { supervisor: swarm.supervisor().clone(), detector: swarm.detector(), faulty };
    let result = relay(conn, id, name.clone(), public_key, hub, registered).await;
    match result {
        Err(super::frame::WireError::Closed) | Ok(()) => tracing::info!(validator = %name, "validator process left"),
        Err(error) => tracing::warn!(validator = %name, %error, "validator connection ended"),
    }
}

/// Admits `key` if it belongs to a member of the current (or pending)
/// committee that this process does not run itself.
fn admit<A: HostedApp>(shared: &Shared<A>, key: PublicKey) -> Result<Welcome, String> {
    if let Some(reason) = lock(&shared.refused).get(&key) {
        return Err(format!("the key {key} is refused: {reason}"));
    }
    let swarm = &shared.swarm;
    let committees = swarm.committee_history();
    let Some(current) = committees.last() else { return Err("the hub has no committee".into()) };
    let Some(member) = current.members().iter().find(|m| m.public_key == key) else {
        let earlier = committees.iter().flat_map(|c| c.members()).find(|m| m.public_key == key);
        return Err(match earlier {
            Some(member) => format!(
                "{} (key {key}) was removed from the committee; epoch {} does not include it",
                member.name,
                current.epoch()
            ),
            None => format!(
                "the key {key} is not registered with this hub; add it to the hub's committee.toml or use a key `bftswarm testnet` wrote"
            ),
        });
    };
    if swarm.runs_in_process(member.id) {
        return Err(format!("{} runs inside the hub process; start no node for it", member.name));
    }
    Ok(Welcome {
        id: member.id,
        name: member.name.clone(),
        committees: committees.clone(),
        params: swarm.params().clone(),
        genesis: swarm.genesis().snapshot(),
    })
}
