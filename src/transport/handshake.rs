//! Mutual authentication when a node connects to the hub.
//!
//! ```text
//! node → hub   Hello { version, node key, node nonce }
//! hub  → node  Challenge { hub key, hub nonce, hub's signature over (node nonce, hub nonce, node key) }
//! node → hub   Proof { node's signature over (hub nonce, node nonce, hub key) }
//! hub  → node  Welcome { id, committees, params, genesis snapshot }   or   Refused { reason }
//! ```
//!
//! Both nonces are fresh, so neither signature can be replayed into another
//! connection; each side signs under its own domain tag, so one side's
//! signature is never valid as the other's. The node knows the hub's key from
//! its home (`hub.pub`); the hub admits only keys of its current committee.
//!
//! Until the other side has proved its key, each side accepts only frames of
//! [`HANDSHAKE_FRAME_BYTES`]: a stranger cannot make it buffer a large frame.
//! A node believes a `Refused` only from a peer that has proved the hub's key;
//! the hub therefore refuses (a wrong protocol version too) only after its Challenge.

use super::frame::{printable, Frame, Welcome, WireError, HANDSHAKE_FRAME_BYTES, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use crate::crypto::{Keypair, PublicKey, Signature, SigningBytes};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// How long each step of the handshake may take.
pub const HANDSHAKE_STEP: Duration = Duration::from_secs(10);

pub type Connection<S> = Framed<S, LengthDelimitedCodec>;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The hub refused this node; retrying does not help. The reason is printable.
    #[error("the hub refused this node: {0}")]
    Refused(String),
    /// A peer that has not proved the hub's key said it refuses this node:
    /// anyone can say that, so the node tries again. The reason is printable.
    #[error("a peer at the hub's address refused this node before proving it is the hub ({0}); not believed")]
    UnprovenRefusal(String),
    /// The peer at the hub's address is not the hub this node was configured with.
    #[error("the hub at this address has key {got}, not the expected {expected}; check hub.pub in the node's home")]
    WrongHub { expected: PublicKey, got: PublicKey },
    #[error("the {0}'s signature over the challenge does not verify")]
    BadSignature(&'static str),
}

impl HandshakeError {
    /// True when connecting again cannot succeed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, HandshakeError::Refused(_) | HandshakeError::WrongHub { .. } | HandshakeError::BadSignature(_))
    }
}

fn hub_says(node_nonce: &[u8; 32], hub_nonce: &[u8; 32], node_key: &PublicKey) -> Vec<u8> {
    SigningBytes::new("bftswarm/hub-auth").bytes32(node_nonce).bytes32(hub_nonce).bytes32(&node_key.0).finish()
}

fn node_says(hub_nonce: &[u8; 32], node_nonce: &[u8; 32], hub_key: &PublicKey) -> Vec<u8> {
    SigningBytes::new("bftswarm/node-auth").bytes32(hub_nonce).bytes32(node_nonce).bytes32(&hub_key.0).finish()
}

fn verifies(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    key.verifying_key().is_some_and(|key| signature.verify(&key, message))
}

/// Sends one frame and flushes it.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Connection<S>, frame: &Frame) -> Result<(), WireError> {
    conn.send(frame.encode()?).await?;
    Ok(())
}

/// Receives one frame, waiting at most `wait`.
pub async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    wait: Duration,
) -> Result<Frame, WireError> {
    match tokio::time::timeout(wait, conn.next()).await {
        Err(_) => Err(WireError::Timeout(wait)),
        Ok(None) => Err(WireError::Closed),
        Ok(Some(bytes)) => Frame::decode(&bytes?),
    }
}

/// The node's side: proves `keypair`, checks that the peer holds `hub_key`,
/// and returns what the hub welcomed it with.
pub async fn join_hub<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    keypair: &Keypair,
    hub_key: PublicKey,
) -> Result<Welcome, HandshakeError> {
    conn.codec_mut().set_max_frame_length(HANDSHAKE_FRAME_BYTES);
    let node_nonce = fresh_nonce();
    let public_key = keypair.public_key();
    send(conn, &Frame::Hello { version: PROTOCOL_VERSION, public_key, nonce: node_nonce }).await?;
    let hub_nonce = match receive(conn, HANDSHAKE_STEP).await? {
        Frame::Challenge { hub_key: got, nonce, signature } => {
            if got != hub_key {
                return Err(HandshakeError::WrongHub { expected: hub_key, got });
            }
            if !verifies(&hub_key, &hub_says(&node_nonce, &nonce, &public_key), &signature) {
                return Err(HandshakeError::BadSignature("hub"));
            }
            nonce
        }
        Frame::Refused { reason } => return Err(HandshakeError::UnprovenRefusal(printable(&reason))),
        other => return Err(WireError::Unexpected { expected: "challenge", got: other.kind() }.into()),
    };
    // The hub has proved its key: its welcome (the application's genesis) may be large.
    conn.codec_mut().set_max_frame_length(MAX_FRAME_BYTES);
    let signature = keypair.sign(&node_says(&hub_nonce, &node_nonce, &hub_key));
    send(conn, &Frame::Proof { signature }).await?;
    match receive(conn, HANDSHAKE_STEP).await? {
        Frame::Welcome(welcome) => Ok(*welcome),
        Frame::Refused { reason } => Err(HandshakeError::Refused(printable(&reason))),
        other => Err(WireError::Unexpected { expected: "welcome", got: other.kind() }.into()),
    }
}

/// The hub's side: proves `hub`, checks that the node holds the key it
/// claims, and asks `admit` whether that key may join. A refusal is sent to
/// the node with its reason before the error is returned.
pub async fn admit_node<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    hub: &Keypair,
    admit: impl FnOnce(PublicKey) -> Result<Welcome, String>,
) -> Result<Welcome, HandshakeError> {
    conn.codec_mut().set_max_frame_length(HANDSHAKE_FRAME_BYTES);
    let (version, node_key, node_nonce) = match receive(conn, HANDSHAKE_STEP).await? {
        Frame::Hello { version, public_key, nonce } => (version, public_key, nonce),
        other => return Err(WireError::Unexpected { expected: "hello", got: other.kind() }.into()),
    };
    let hub_nonce = fresh_nonce();
    let signature = hub.sign(&hub_says(&node_nonce, &hub_nonce, &node_key));
    send(conn, &Frame::Challenge { hub_key: hub.public_key(), nonce: hub_nonce, signature }).await?;
    match receive(conn, HANDSHAKE_STEP).await? {
        Frame::Proof { signature }
            if verifies(&node_key, &node_says(&hub_nonce, &node_nonce, &hub.public_key()), &signature) => {}
        Frame::Proof { .. } => {
            let reason = format!("the signature does not prove possession of the key {node_key}");
            return Err(refuse(conn, reason).await);
        }
        other => return Err(WireError::Unexpected { expected: "proof", got: other.kind() }.into()),
    }
    if version != PROTOCOL_VERSION {
        let reason = format!("this node speaks protocol version {version}, the hub {PROTOCOL_VERSION}; run the same bftswarm release on both");
        return Err(refuse(conn, reason).await);
    }
    match admit(node_key) {
        Ok(welcome) => {
            // A member's: from now on it may send what a running validator sends.
            conn.codec_mut().set_max_frame_length(MAX_FRAME_BYTES);
            send(conn, &Frame::Welcome(Box::new(welcome.clone()))).await?;
            Ok(welcome)
        }
        Err(reason) => Err(refuse(conn, reason).await),
    }
}

/// Tells the node why it is refused (best effort) and returns the error.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Connection<S>, reason: String) -> HandshakeError {
    let _ = send(conn, &Frame::Refused { reason: reason.clone() }).await;
    HandshakeError::Refused(reason)
}

/// 32 bytes of the kernel's randomness, for a challenge.
pub fn fresh_nonce() -> [u8; 32] {
    // A keypair's public key from fresh OS randomness is as unpredictable as the randomness itself.
    Keypair::generate().public_key().0
}
