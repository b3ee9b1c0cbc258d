//! The daemon's control API: HTTP/1.1 with JSON bodies on loopback only,
//! routes under `/v1/`. Every mutating route, and memory reads, need
//! `Authorization: Bearer <token>` with the token `swarm init` wrote to the
//! home (0600). Errors are `{"error": "<one line>"}` with a status that says
//! whose fault it is (400, 401, 404, 409, 501, 500).
//!
//! [`client::ApiClient`] is the CLI's side: a small blocking client, because
//! each CLI command is one or a few requests to loopback and needs no runtime.

pub mod client;
mod routes;

use crate::daemon::{Daemon, DaemonError};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use std::sync::Arc;

/// Largest request body: a memory-store value is at most 1 MiB of JSON.
const MAX_BODY_BYTES: usize = 2 << 20;

/// Serves the API for `daemon` until `swarm stop` or a signal.
pub async fn serve(daemon: Arc<Daemon>) -> std::io::Result<()> {
    let data = web::Data::from(daemon.clone());
    let observed = web::Data::from(daemon.observed.clone());
    let server = HttpServer::new(move || {
        let json = web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|error, _| DaemonError::BadRequest(format!("bad request body: {error}")).into());
        let query =
            web::QueryConfig::default().error_handler(|error, _| DaemonError::BadRequest(error.to_string()).into());
        App::new()
            .app_data(data.clone())
            .app_data(observed.clone())
            .app_data(json)
            .app_data(query)
            .configure(crate::observe::http::configure)
            .configure(routes::configure)
    })
    .workers(2)
    // An event stream stays open until its client leaves: do not wait long for it at `swarm stop`.
    .shutdown_timeout(2)
    .bind(("127.0.0.1", 0))?;
    let addr = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("bound to no address"))?;
    let server = server.run();
    let _ = daemon.stop_handle.set(server.handle());
    daemon.observed.served_at(addr);
    crate::daemon::home::write_atomically(&daemon.home.addr(), addr.to_string().as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    eprintln!("bftswarm daemon {} listening on {addr} for {}", daemon.pid, daemon.home.root().display());
    server.await
}

impl ResponseError for DaemonError {
    fn status_code(&self) -> StatusCode {
        match self {
            DaemonError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DaemonError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DaemonError::NotFound(_) => StatusCode::NOT_FOUND,
            DaemonError::Conflict(_) => StatusCode::CONFLICT,
            DaemonError::NotBuilt(_) => StatusCode::NOT_IMPLEMENTED,
            DaemonError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let line = self.to_string().replace('\n', " ");
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": line }))
    }
}
