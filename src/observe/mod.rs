//! Observability: Prometheus metrics ([`metrics`]), log output ([`logging`]),
//! the live event stream ([`stream`]) and what the daemon, hub and node
//! processes serve of them over HTTP, the dashboard included ([`http`]).
//!
//! Metric names (all prefixed `bftswarm_`) are listed in [`metrics`] and in
//! the README; the actors count through the functions re-exported here, one
//! call where they already handle what is counted.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod stream;

pub use metrics::{
    client_completion, convicted, hub_refused_peer, install, mailbox_dropped, message_dropped, name_in, outbox_dropped,
    quarantined, render, replaced, set_enabled, signatures_verified, validator_output, validator_started, HubPeerGauge,
    WalCommitTimer,
};
