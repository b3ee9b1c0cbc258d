//! What every observed process serves over HTTP: `/metrics` (Prometheus
//! text), and where a swarm runs (daemon, hub) `/dashboard`, its snapshot
//! `/v1/dashboard` and the live event stream `/v1/events`. The daemon adds
//! these to its control API; the hub and node processes serve them alone on
//! the address of their `--metrics-listen`.

use super::stream::EventLog;
use crate::actors::{Swarm, ValidatorStatus};
use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The page: plain HTML, CSS and JavaScript, built into the binary; it loads nothing else.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Events the dashboard's first look includes.
const SNAPSHOT_EVENTS: usize = 500;

/// What a process shows of its swarm.
pub struct Observed {
    /// "daemon", "hub" or "node".
    pub process: &'static str,
    pub events: Arc<EventLog>,
    swarm: Mutex<Option<Arc<Swarm>>>,
    /// `http://host:port` once the process serves HTTP.
    base_url: std::sync::OnceLock<String>,
}

impl Default for Observed {
    fn default() -> Observed {
        Observed::new("daemon")
    }
}

impl Observed {
    pub fn new(process: &'static str) -> Observed {
        Observed { process, events: Arc::new(EventLog::new()), swarm: Mutex::new(None), base_url: Default::default() }
    }

    /// Records where this process serves HTTP.
    pub fn served_at(&self, addr: SocketAddr) {
        let _ = self.base_url.set(format!("http://{addr}"));
    }

    /// The full URL of `path` here, once served.
    pub fn url(&self, path: &str) -> Option<String> {
        self.base_url.get().map(|base| format!("{base}{path}"))
    }

    /// The swarm the dashboard shows from now on (none before it launches).
    pub fn set_swarm(&self, swarm: Option<Arc<Swarm>>) {
        *self.swarm.lock().unwrap_or_else(PoisonError::into_inner) = swarm;
    }

    fn swarm(&self) -> Option<Arc<Swarm>> {
        self.swarm.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The committee with roles and statuses, the view history and the
    /// detection log, and the last events: the dashboard's first look.
    pub async fn snapshot(&self) -> Value {
        let recent = self.events.recent(SNAPSHOT_EVENTS);
        let Some(swarm) = self.swarm() else {
            return json!({ "process": self.process, "status": "initializing", "agents": [], "view_history": [], "detections": [], "events": recent });
        };
        let statuses = swarm.status().await;
        let detections = swarm.detection_log().await.unwrap_or_default();
        let quarantined = |id| detections.iter().any(|record| record.agent_id == id && record.active);
        let agents: Vec<Value> = statuses
            .iter()
            .map(|s| {
                let role = if !s.member {
                    "retired"
                } else if s.is_primary {
                    "primary"
                } else {
                    "backup"
                };
                let status = if quarantined(s.id) {
                    "quarantined"
                } else if s.injected_fault.is_some() {
                    "byzantine"
                } else {
                    "healthy"
                };
                json!({
                    "id": s.id.0, "name": s.name, "role": role, "status": status, "view": s.view.0,
                    "epoch": s.epoch.0, "last_executed": s.last_executed.0,
                    "committed": s.stats.txs_committed, "injected_fault": s.injected_fault,
                })
            })
            .collect();
        let name = |id: crate::protocol::AgentId| statuses.iter().find(|s| s.id == id).map(|s| s.name.clone());
        let history = longest_view_history(&statuses);
        let view_history: Vec<Value> = history
            .iter()
            .map(|record| {
                json!({
                    "view": record.view.0, "old_primary": name(record.old_primary), "new_primary": name(record.new_primary),
                    "duration_ms": record.duration_ms, "transactions_recovered": record.transactions_recovered,
                })
            })
            .collect();
        let primary = statuses.iter().find(|s| s.is_primary && s.member).map(|s| s.name.clone());
        json!({
            "process": self.process,
            "status": "active",
            "view": statuses.iter().filter(|s| s.member).map(|s| s.view.0).max(),
            "primary": primary,
            "last_executed": statuses.iter().map(|s| s.last_executed.0).max(),
            "agents": agents,
            "view_history": view_history,
            "detections": detections,
            "events": recent,
        })
    }
}

/// The view changes as the validator that saw most of them recorded them.
fn longest_view_history(statuses: &[ValidatorStatus]) -> Vec<crate::actors::ViewRecord> {
    statuses.iter().max_by_key(|s| s.view_history.len()).map(|s| s.view_history.clone()).unwrap_or_default()
}

/// Adds the observation routes; the app must hold `web::Data<Observed>`.
/// Register before any `/v1` scope, which would otherwise answer 404 for them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/dashboard", web::get().to(dashboard))
        .route("/v1/dashboard", web::get().to(snapshot))
        .route("/v1/events", web::get().to(events));
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(super::render())
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DASHBOARD)
}

async fn snapshot(observed: web::Data<Observed>) -> HttpResponse {
    HttpResponse::Ok().json(observed.snapshot().await)
}

/// Server-sent events; `Last-Event-ID` (the header, or `?last_event_id=` for
/// clients that cannot set it) resumes after that event.
async fn events(request: HttpRequest, observed: web::Data<Observed>) -> HttpResponse {
    let header = request.headers().get("last-event-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
        .ok()
        .and_then(|query| query.get("last_event_id").cloned());
    let last = header.or(query);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(observed.events.clone().sse(last.as_deref()))
}

/// Serves [`configure`]'s routes on `listen` (hub, node) inside the running
/// actix system; returns the address bound.
pub fn serve(listen: &str, observed: Arc<Observed>) -> std::io::Result<SocketAddr> {
    let data = web::Data::from(observed);
    let server = HttpServer::new(move || actix_web::App::new().app_data(data.clone()).configure(configure))
        .workers(1)
        .shutdown_timeout(1)
        .bind(listen)?;
    let addr = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("bound to no address"))?;
    actix::spawn(async move {
        if let Err(error) = server.run().await {
            tracing::warn!(%error, "the metrics server stopped");
        }
    });
    Ok(addr)
}
