//! Tuning of the protocol, apart from who takes part (the committee).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolParams {
    /// Sequence numbers between checkpoints.
    pub checkpoint_interval: u64,
    /// L: sequence numbers may be assigned in (h, h+L], h the last stable checkpoint.
    pub log_window: u64,
    /// Most requests in one batch.
    pub max_batch_size: usize,
    /// Longest a request waits for its batch to fill while other batches are in flight.
    pub batch_delay_us: u64,
    /// Most batches the primary has proposed but not yet executed (pipelining depth).
    pub max_in_flight_batches: u64,
    /// How often a replica that made no progress asks its peers to resend.
    pub retransmit_interval_us: u64,
    /// Bound of the primary's queue of requests not yet in a batch.
    pub max_pending_requests: usize,
    /// How many checkpoint intervals of executed outcomes are kept to answer retransmitted requests.
    pub outcome_retention_checkpoints: u64,
    /// How long outstanding work may wait without progress (or a request
    /// without being ordered) before the primary is suspected; doubles per
    /// failed view change.
    pub view_change_timeout_us: u64,
}

impl Default for ProtocolParams {
    fn default() -> Self {
        ProtocolParams {
            checkpoint_interval: 100,
            log_window: 200,
            max_batch_size: 512,
            batch_delay_us: 500,
            max_in_flight_batches: 8,
            retransmit_interval_us: 200_000,
            max_pending_requests: 200_000,
            outcome_retention_checkpoints: 2,
            view_change_timeout_us: 5_000_000,
        }
    }
}
