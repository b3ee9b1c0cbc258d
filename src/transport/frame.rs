//! What travels between the hub and a validator process: one [`Frame`] per
//! length-delimited TCP frame, encoded with postcard.
//!
//! Every byte that arrives is untrusted: [`Frame::decode`] returns an error
//! for anything that is not a whole, well-formed frame, and the codec refuses
//! frames longer than [`MAX_FRAME_BYTES`] before it buffers them.

use crate::actors::{Destination, Envelope, Origin, ViewRecord};
use crate::app::Snapshot;
use crate::crypto::{Digest, PublicKey, Signature};
use crate::detect::Report;
use crate::ledger::AccountId;
use crate::protocol::{AgentId, Committee, Epoch, ProtocolParams, Seq, View};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame either side accepts: a state snapshot of a large ledger
/// fits, a hostile length prefix cannot make a peer buffer gigabytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// The largest frame either side accepts before the other has proved its
/// key: a handshake frame is under 200 bytes, and a stranger must not make
/// the hub buffer more than this per connection.
pub const HANDSHAKE_FRAME_BYTES: usize = 4 * 1024;

/// Bumped when frames change incompatibly; a node of another version is refused.
/// 6: validators run the built-in application (ledger and memory): digests differ from 5's.
pub const PROTOCOL_VERSION: u16 = 7;

/// Length-prefixed frames (4-byte big-endian length), bounded by [`MAX_FRAME_BYTES`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME_BYTES).new_codec()
}

/// `text` from the network as it may be printed: control characters (terminal
/// escapes, newlines) escaped, and at most [`PRINTABLE_CHARS`] of it.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == PRINTABLE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How much of a peer's text is printed.
pub const PRINTABLE_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("undecodable frame ({0})")]
    Decode(#[from] postcard::Error),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("the peer sent {got} where {expected} was expected")]
    Unexpected { expected: &'static str, got: &'static str },
    #[error("the peer took longer than {0:?} to answer")]
    Timeout(std::time::Duration),
}

/// One message between hub and node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Frame {
    /// Node → hub, first: who I claim to be, and a fresh challenge for the hub.
    Hello { version: u16, public_key: PublicKey, nonce: [u8; 32] },
    /// Hub → node: the hub's signature over the node's challenge, and a fresh challenge for the node.
    Challenge { hub_key: PublicKey, nonce: [u8; 32], signature: Signature },
    /// Node → hub: the node's signature over the hub's challenge.
    Proof { signature: Signature },
    /// Hub → node: accepted; what the validator needs to start.
    Welcome(Box<Welcome>),
    /// Hub → node: refused, and why; the hub closes the connection after it.
    Refused { reason: String },
    /// Hub → node: what the supervisor delivers to this validator, and who
    /// handed it to the hub (the channel a bad signature accuses). Empty: a heartbeat.
    Deliver { from: Origin, envelopes: Vec<Envelope> },
    /// Node → hub: what the validator sends, as a route.
    Route(Vec<(Destination, Envelope)>),
    /// Node → hub: a summary of the validator's state, sent periodically.
    Status(Box<NodeStatus>),
    /// Node → hub: what the validator's verifier refused and its replica
    /// proved, for the swarm's detector; the hub keeps only the node's own.
    Reports(Vec<Report>),
    /// Hub → node: the next nonce of each of these accounts in the node's
    /// ledger (a workload carries on from them); `query` pairs the answer.
    AskNonces { query: u64, accounts: Vec<AccountId> },
    /// Node → hub: the answer to [`Frame::AskNonces`], in its accounts' order.
    Nonces { query: u64, nonces: Vec<u64> },
}

/// What a node needs to run its validator: who it is, every committee so
/// far (the first is the genesis committee), the tuning and the genesis ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Welcome {
    pub id: AgentId,
    pub name: String,
    pub committees: Vec<Committee>,
    pub params: ProtocolParams,
    /// The application's state at genesis, as its snapshot chunks: the node
    /// restores it as its own application (a node of another application
    /// cannot decode it).
    pub genesis: Snapshot,
}

/// The part of a validator's status the hub reports and settles on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub is_primary: bool,
    pub view: View,
    pub epoch: Epoch,
    pub member: bool,
    pub last_executed: Seq,
    /// Slots prepared or committed but not executed yet (work a restart recovered).
    pub slots_in_flight: u64,
    pub stable_checkpoint: Seq,
    pub stable_digest: Digest,
    pub ledger_digest: Digest,
    pub balance_sum: u128,
    pub total_supply: u64,
    pub txs_committed: u64,
    pub txs_rejected: u64,
    pub inbound_rejected: u64,
    pub outbound_dropped: u64,
    /// The views installed after the first, oldest first (the validator keeps the last 64).
    pub view_history: Vec<ViewRecord>,
    /// The fault the node was started with (`bftswarm node --fault`), for the hub's report.
    pub injected_fault: Option<String>,
}

impl Frame {
    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Challenge { .. } => "challenge",
            Frame::Proof { .. } => "proof",
            Frame::Welcome(_) => "welcome",
            Frame::Refused { .. } => "refused",
            Frame::Deliver { .. } => "deliver",
            Frame::Route(_) => "route",
            Frame::Status(_) => "status",
            Frame::Reports(_) => "reports",
            Frame::AskNonces { .. } => "ask-nonces",
            Frame::Nonces { .. } => "nonces",
        }
    }

    pub fn encode(&self) -> Result<Bytes, WireError> {
        Ok(Bytes::from(postcard::to_stdvec(self)?))
    }

    /// Decodes one frame's bytes; trailing bytes are an error too.
    pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
        let (frame, rest) = postcard::take_from_bytes::<Frame>(bytes)?;
        if rest.is_empty() {
            Ok(frame)
        } else {
            Err(WireError::Decode(postcard::Error::DeserializeBadEncoding))
        }
    }
}
