//! What both ends of a running connection share: a bounded outbox whose
//! overflow is dropped and counted (PBFT's retransmission recovers what is
//! lost), and the writer that drains it with one flush per burst.

use super::frame::{Frame, WireError};
use super::handshake::Connection;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames waiting for the socket, per connection. A peer that reads slower
/// than this loses frames instead of slowing the sender.
pub const OUTBOX_FRAMES: usize = 4096;

/// The sending half of a connection's outbox.
#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// An outbox and the receiver its writer drains.
    pub fn bounded(dropped: Arc<AtomicU64>) -> (Outbox, mpsc::Receiver<Bytes>) {
        let (frames, receiver) = mpsc::channel(OUTBOX_FRAMES);
        (Outbox { frames, dropped }, receiver)
    }

    /// Queues `frame`; `envelopes` are counted as dropped when the queue is
    /// full. False once the connection is gone.
    pub fn push(&self, frame: &Frame, envelopes: u64) -> bool {
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "cannot encode a frame; dropped");
                self.dropped.fetch_add(envelopes, Ordering::Relaxed);
                return true;
            }
        };
        match self.frames.try_send(bytes) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(envelopes, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Writes queued frames until the outbox closes or the socket fails; frames
/// queued together go out with one flush.
pub async fn write_frames(
    mut sink: SplitSink<Connection<TcpStream>, Bytes>,
    mut outbox: mpsc::Receiver<Bytes>,
) -> Result<(), WireError> {
    while let Some(frame) = outbox.recv().await {
        sink.feed(frame).await?;
        while let Ok(frame) = outbox.try_recv() {
            sink.feed(frame).await?;
        }
        sink.flush().await?;
    }
    Ok(())
}

/// Latency over throughput: protocol messages are small and answered at once.
pub fn tune(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}
