//! Keys, signatures and digests: Ed25519 (ed25519-dalek) and blake3.
//!
//! Everything that is signed is signed over a canonical byte string built by
//! [`SigningBytes`], which starts with a domain tag so a signature made for one
//! kind of message can never be replayed as another.

mod keys;

pub use keys::{KeyError, Keypair};

use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn short_hex(&self) -> String {
        hex(&self.0[..4])
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// An Ed25519 public key in its 32-byte compressed form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Decompresses the key; `None` for bytes that are not a curve point.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }

    /// `0x1a2b3c4d...`, the tutorial's way of showing a key.
    pub fn short_hex(&self) -> String {
        format!("0x{}...", hex(&self.0[..4]))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0[..4]))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex(&self.0))
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes")] pub [u8; 64]);

impl Signature {
    pub fn to_dalek(&self) -> DalekSignature {
        DalekSignature::from_bytes(&self.0)
    }

    /// Verifies with the strict rules (no malleable signatures, no small-order keys),
    /// so that one message has one valid signature per key.
    pub fn verify(&self, key: &VerifyingKey, message: &[u8]) -> bool {
        key.verify_strict(message, &self.to_dalek()).is_ok()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex(&self.0[..4]))
    }
}

/// Verifies many signatures at once; about twice as fast per signature as one by one.
/// On failure the caller learns only that some signature is bad.
pub fn verify_batch(messages: &[&[u8]], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    if messages.is_empty() {
        return true;
    }
    let signatures: Vec<DalekSignature> = signatures.iter().map(Signature::to_dalek).collect();
    ed25519_dalek::verify_batch(messages, &signatures, keys).is_ok()
}

/// Builds the canonical byte string that a signature covers: a domain tag, then
/// fixed-width little-endian fields. Fixed widths leave no ambiguity in how the
/// bytes split into fields.
pub struct SigningBytes(Vec<u8>);

impl SigningBytes {
    pub fn new(domain: &'static str) -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(domain.as_bytes());
        bytes.push(0);
        SigningBytes(bytes)
    }

    pub fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes32(mut self, value: &[u8; 32]) -> Self {
        self.0.extend_from_slice(value);
        self
    }

    /// A variable-length field, prefixed with its length.
    pub fn var_bytes(mut self, value: &[u8]) -> Self {
        self.0.extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.0.extend_from_slice(value);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The bytes of lowercase or uppercase hex text; none when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back_what_it_wrote_and_refuses_what_is_not_hex() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&hex(&bytes)), Some(bytes.to_vec()));
        for bad in ["abc", "zz", "+1", "é1"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn signature_over_one_domain_does_not_verify_in_another() {
        let keypair = Keypair::from_seed([7; 32]);
        let a = SigningBytes::new("bftswarm/a").u64(1).finish();
        let b = SigningBytes::new("bftswarm/b").u64(1).finish();
        let signature = keypair.sign(&a);
        let key = keypair.public_key().verifying_key().unwrap();
        assert!(signature.verify(&key, &a));
        assert!(!signature.verify(&key, &b));
    }

    #[test]
    fn batch_verification_rejects_one_bad_signature_among_many() {
        let keypairs: Vec<Keypair> = (0..16u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let messages: Vec<Vec<u8>> = (0..16u64).map(|i| SigningBytes::new("t").u64(i).finish()).collect();
        let mut signatures: Vec<Signature> = keypairs.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        let keys: Vec<VerifyingKey> = keypairs.iter().map(|k| k.public_key().verifying_key().unwrap()).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        assert!(verify_batch(&refs, &signatures, &keys));
        signatures[9].0[3] ^= 1;
        assert!(!verify_batch(&refs, &signatures, &keys));
    }

    #[test]
    fn digest_display_is_full_hex() {
        let digest = Digest::of(b"abc");
        assert_eq!(digest.to_string().len(), 64);
        assert_eq!(digest.short_hex(), digest.to_string()[..8]);
    }
}
