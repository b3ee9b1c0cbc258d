//! The `/v1/` routes: each one checks the token where it must, calls one
//! [`Daemon`] method, and answers JSON.

use crate::daemon::tasks::TaskRequest;
use crate::daemon::{ConfigChange, Daemon, DaemonError, SpawnRequest};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

type Result<T = HttpResponse> = std::result::Result<T, DaemonError>;
type State = web::Data<Daemon>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/health", web::get().to(alive))
            .route("/swarm", web::get().to(swarm_info))
            .route("/swarm/stop", web::post().to(stop))
            .route("/config", web::get().to(config))
            .route("/config", web::post().to(change_config))
            .route("/agents", web::get().to(list_agents))
            .route("/agents", web::post().to(spawn))
            .route("/pubkeys", web::post().to(distribute_pubkeys))
            .route("/tasks", web::post().to(start_task))
            .route("/tasks/{id}", web::get().to(task))
            .route("/byzantine/status", web::get().to(byzantine_status))
            .route("/byzantine/consensus-health", web::get().to(consensus_health))
            .route("/byzantine/health", web::get().to(health))
            .route("/byzantine/detection-log", web::get().to(detection_log))
            .route("/byzantine/faults", web::post().to(inject_fault))
            .route("/byzantine/view-change", web::post().to(view_change))
            .route("/byzantine/update-quorum", web::post().to(update_quorum))
            .route("/byzantine/quarantine", web::post().to(quarantine))
            .route("/network/latency", web::get().to(latency))
            .route("/memory", web::get().to(memory_retrieve))
            .route("/memory", web::post().to(memory_store))
            .route("/memory/certified", web::get().to(memory_certified))
            .route("/memory/list", web::get().to(memory_list))
            .route("/accounts/{account}", web::get().to(account_show))
            .route("/accounts/{account}/certified", web::get().to(account_certified))
            .route("/tx", web::post().to(tx_submit)),
    );
}

/// A request that carries the home's token. Listed first among a handler's
/// arguments, it is checked before the body is read or parsed: a stranger
/// learns nothing about a route's schema, only that it needs the token.
struct Authorized;

impl FromRequest for Authorized {
    type Error = DaemonError;
    type Future = std::future::Ready<Result<Authorized>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = match request.app_data::<State>() {
            Some(daemon) => authorize(request, daemon),
            None => Err(DaemonError::Internal("the control API runs without its daemon".into())),
        };
        std::future::ready(checked.map(|()| Authorized))
    }
}

/// Refuses a request whose `Authorization` is not `Bearer <the home's token>`.
fn authorize(request: &HttpRequest, daemon: &Daemon) -> Result<()> {
    let given = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    let token = given.and_then(|value| value.strip_prefix("Bearer ")).unwrap_or("");
    if constant_time_eq(token.as_bytes(), daemon.token.as_bytes()) {
        return Ok(());
    }
    let why = if given.is_none() { "no bearer token was sent" } else { "the bearer token is wrong" };
    Err(DaemonError::Unauthorized(format!("{why}; the token is in the swarm home's `token` file")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn ok(value: impl serde::Serialize) -> Result {
    Ok(HttpResponse::Ok().json(value))
}

async fn alive(daemon: State) -> Result {
    ok(json!({ "status": "ok", "pid": daemon.pid }))
}

async fn swarm_info(daemon: State) -> Result {
    ok(daemon.info().await)
}

async fn stop(_: Authorized, daemon: State) -> Result {
    let info = daemon.info().await;
    if let Some(handle) = daemon.stop_handle.get().cloned() {
        // After this response is written: stop accepting, finish what runs.
        let events = daemon.observed.events.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            events.close();
            handle.stop(true).await;
        });
    }
    ok(json!({ "swarm_id": info.swarm_id, "status": "stopping", "pid": info.pid }))
}

async fn config(daemon: State) -> Result {
    ok(daemon.config().await)
}

async fn change_config(_: Authorized, daemon: State, change: web::Json<ConfigChange>) -> Result {
    ok(daemon.change_config(change.into_inner()).await?)
}

async fn list_agents(daemon: State) -> Result {
    ok(daemon.list_agents().await)
}

async fn spawn(_: Authorized, daemon: State, spawn: web::Json<SpawnRequest>) -> Result {
    let spawned = daemon.spawn(spawn.into_inner()).await?;
    let info = daemon.info().await;
    ok(json!({ "spawned": spawned, "swarm_status": info.status, "registered_validators": info.registered_validators }))
}

#[derive(Deserialize)]
struct Pubkeys {
    keys: BTreeMap<String, String>,
}

async fn distribute_pubkeys(_: Authorized, daemon: State, body: web::Json<Pubkeys>) -> Result {
    let distributed = body.keys.len();
    let known = daemon.distribute_pubkeys(body.into_inner().keys).await?;
    ok(json!({ "distributed": distributed, "known_public_keys": known }))
}

async fn start_task(_: Authorized, daemon: State, task: web::Json<TaskRequest>) -> Result {
    ok(daemon.into_inner().start_task(task.into_inner()).await?)
}

async fn task(daemon: State, id: web::Path<u64>) -> Result {
    ok(daemon.task(id.into_inner())?)
}

async fn byzantine_status(daemon: State) -> Result {
    ok(daemon.byzantine_status().await?)
}

async fn consensus_health(daemon: State) -> Result {
    ok(daemon.consensus_health().await?)
}

async fn health(daemon: State) -> Result {
    ok(daemon.health().await?)
}

#[derive(Deserialize)]
struct Tail {
    tail: Option<usize>,
}

async fn detection_log(daemon: State, query: web::Query<Tail>) -> Result {
    ok(daemon.detection_log(query.tail.unwrap_or(usize::MAX))?)
}

async fn inject_fault(_: Authorized, daemon: State, fault: web::Json<crate::daemon::FaultRequest>) -> Result {
    ok(daemon.inject_fault(fault.into_inner()).await?)
}

async fn update_quorum(_: Authorized, daemon: State, change: web::Json<crate::daemon::QuorumRequest>) -> Result {
    ok(daemon.update_quorum(change.into_inner()).await?)
}

async fn quarantine(_: Authorized, daemon: State, body: web::Json<crate::daemon::QuarantineRequest>) -> Result {
    ok(daemon.quarantine(body.into_inner()).await?)
}

async fn view_change(_: Authorized, daemon: State) -> Result {
    ok(daemon.force_view_change().await?)
}

#[derive(Deserialize)]
struct Samples {
    samples: Option<usize>,
}

async fn latency(daemon: State, query: web::Query<Samples>) -> Result {
    ok(daemon.latency(query.samples.unwrap_or(5).clamp(1, 1000)).await?)
}

#[derive(Deserialize)]
struct MemoryQuery {
    key: String,
    namespace: Option<String>,
}

/// The agreed entry; a key never written through consensus and asked for
/// without a namespace falls back to the daemon's own records (the view
/// changes and detections it keeps in its local store).
async fn memory_retrieve(_: Authorized, daemon: State, query: web::Query<MemoryQuery>) -> Result {
    let namespace = query.namespace.as_deref().unwrap_or(crate::daemon::DEFAULT_NAMESPACE);
    if let Some(entry) = daemon.memory_get(namespace, &query.key).await? {
        let mut answer = serde_json::to_value(entry).map_err(|e| DaemonError::Internal(e.to_string()))?;
        answer["replicated"] = Value::Bool(true);
        return ok(answer);
    }
    if query.namespace.is_none() {
        if let Ok(value) = daemon.memory_retrieve(&query.key) {
            return ok(json!({ "key": query.key, "value": value, "replicated": false }));
        }
    }
    Err(DaemonError::NotFound(format!("nothing is stored under {} in namespace {namespace}", query.key)))
}

async fn memory_certified(_: Authorized, daemon: State, query: web::Query<MemoryQuery>) -> Result {
    let namespace = query.namespace.as_deref().unwrap_or(crate::daemon::DEFAULT_NAMESPACE);
    ok(daemon.memory_certified(namespace, &query.key).await?)
}

#[derive(Deserialize)]
struct MemoryListQuery {
    namespace: Option<String>,
    #[serde(default)]
    prefix: String,
}

/// Keys by prefix in one namespace (`memory list`), or in all (`memory search`).
async fn memory_list(_: Authorized, daemon: State, query: web::Query<MemoryListQuery>) -> Result {
    let entries = daemon.memory_list(query.namespace.as_deref(), &query.prefix).await?;
    ok(json!({ "count": entries.len(), "entries": entries }))
}

#[derive(Deserialize)]
struct MemoryPut {
    key: String,
    value: Value,
    namespace: Option<String>,
    /// Sequence numbers (consensus time) until the value expires.
    ttl: Option<u64>,
}

/// Orders the write through consensus; answers once it committed.
async fn memory_store(_: Authorized, daemon: State, put: web::Json<MemoryPut>) -> Result {
    let namespace = put.namespace.as_deref().unwrap_or(crate::daemon::DEFAULT_NAMESPACE);
    ok(daemon.memory_put(namespace, &put.key, &put.value, put.ttl).await?)
}

/// An account (a validator's name or a public key) as f+1 validators agree on it.
async fn account_show(_: Authorized, daemon: State, account: web::Path<String>) -> Result {
    let account = daemon.resolve_account(&account).await?;
    ok(daemon.account_agreed(account).await?)
}

/// A certified answer for an account, as recent as what f+1 validators agree on.
async fn account_certified(_: Authorized, daemon: State, account: web::Path<String>) -> Result {
    let account = daemon.resolve_account(&account).await?;
    ok(daemon.account_certified(account).await?)
}

#[derive(Deserialize)]
struct TxSubmit {
    /// A signed transaction, postcard-encoded, in hex.
    signed: String,
}

/// A user's signed transfer: its signature is checked, then it is ordered.
async fn tx_submit(_: Authorized, daemon: State, body: web::Json<TxSubmit>) -> Result {
    let bad = |why: &str| DaemonError::BadRequest(format!("the signed transaction {why}"));
    let bytes = crate::crypto::from_hex(&body.signed).ok_or_else(|| bad("is not hex"))?;
    let signed: crate::app::SignedTx = postcard::from_bytes(&bytes).map_err(|_| bad("does not decode"))?;
    ok(daemon.submit_transfer(signed).await?)
}
