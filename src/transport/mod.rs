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

mod doorway;
pub mod frame;
mod gate;
pub mod handshake;
pub mod hub;
pub mod link;
pub mod node;
pub mod peer;

pub use doorway::{HANDSHAKE_DEADLINE, MAX_STRANGERS, MAX_STRANGERS_PER_ADDRESS};
pub use frame::{printable, Frame, NodeStatus, Welcome, WireError, HANDSHAKE_FRAME_BYTES, MAX_FRAME_BYTES};
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

/// Checks that `text` has the form `HOST:PORT` (an IPv6 host in brackets),
/// without resolving the host: a typo is a usage error, not an endless retry.
pub fn check_address(text: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{text}` is not an address: {why}; write HOST:PORT, e.g. 127.0.0.1:7400"));
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = text.rsplit_once(':') else { return bad("no port") };
    if port.parse::<u16>().is_err() {
        return bad("the port is not a number from 0 to 65535");
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || !host.chars().all(name_ok) {
        return bad("the host is not a name or an IP address");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
