//! Validators in other processes, on this machine or others: a star of TCP
//! connections around the hub, carrying the same envelopes the supervisor
//! routes in one process.
//!
//! - [`frame`]: what travels (length-delimited postcard frames, bounded size).
//! - [`handshake`]: the node proves its committee key, the hub proves its own.
//! - [`hub`]: the hub's listener; [`peer`]: one connected validator, as the
//!   supervisor sees it.
//! - [`node`]: `bftswarm node`, a validator whose supervisor is a socket.
//!
//! The protocol does not know: a remote validator is registered with the
//! supervisor like a local one, and its frames become the same `Route`s.

pub mod frame;
mod gate;
pub mod handshake;
pub mod hub;
pub mod link;
pub mod node;
pub mod peer;

pub use frame::{Frame, NodeStatus, Welcome, WireError, MAX_FRAME_BYTES};
pub use hub::Hub;
pub use node::{run_node, NodeError, NodeOptions};

use crate::crypto::PublicKey;

/// Parses a public key written as 64 hex digits, with or without `0x`.
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not a public key (64 hex digits, optionally after 0x)", text.trim()));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(PublicKey(key))
}

#[cfg(test)]
mod tests;
