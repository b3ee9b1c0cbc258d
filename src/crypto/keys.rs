//! Ed25519 keypairs: generation from a seed, signing, and PKCS#8 v1 PEM files
//! (the form OpenSSL reads).

use super::{PublicKey, Signature};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{Signer, SigningKey};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path} could not be read: {source}; check the path passed to --keypair")]
    Read { path: String, source: std::io::Error },
    #[error("key file {path} is not an Ed25519 PKCS#8 PEM private key ({reason}); generate one with `bftswarm byzantine generate-keypair`")]
    Parse { path: String, reason: String },
    #[error("key file {path} is {what}, not a key file of at most {MAX_KEY_FILE_BYTES} bytes; check the path passed to --keypair")]
    NotAKeyFile { path: String, what: String },
    #[error("could not encode the private key as PEM: {0}")]
    Encode(String),
}

/// The largest key file read: a PKCS#8 PEM Ed25519 key is about 120 bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// An agent's or account's signing key with its public key.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({:?})", self.public)
    }
}

impl Keypair {
    /// Derives the keypair from 32 secret bytes. Deterministic: the simulation
    /// and the workload generator draw the bytes from a seeded generator.
    pub fn from_seed(secret: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&secret);
        let public = PublicKey(signing.verifying_key().to_bytes());
        Keypair { signing, public }
    }

    /// A fresh keypair from the operating system's randomness.
    pub fn generate() -> Self {
        Self::from_seed(os_random_seed())
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// PKCS#8 v1 PEM (no embedded public key): the version OpenSSL reads for Ed25519.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let bytes = KeypairBytes { secret_key: self.signing.to_bytes(), public_key: None };
        bytes.to_pkcs8_pem(Default::default()).map(|pem| pem.to_string()).map_err(|e| KeyError::Encode(e.to_string()))
    }

    pub fn from_pkcs8_pem(pem: &str, path_for_errors: &str) -> Result<Self, KeyError> {
        let parse_error = |reason: String| KeyError::Parse { path: path_for_errors.to_string(), reason };
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|e| parse_error(e.to_string()))?;
        Ok(Self::from_seed(signing.to_bytes()))
    }

    /// Reads a PEM key file: a regular file of at most [`MAX_KEY_FILE_BYTES`],
    /// so that a device (`/dev/zero`), a pipe or a huge file is refused, not read until memory runs out.
    pub fn read_pem_file(path: &Path) -> Result<Self, KeyError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_error = |source| KeyError::Read { path: shown.clone(), source };
        let not_a_key = |what: String| KeyError::NotAKeyFile { path: shown.clone(), what };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(not_a_key("not a regular file (a device, pipe or directory)".into()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(not_a_key(format!("{} bytes long", metadata.len())));
        }
        let pem = String::from_utf8(bytes).map_err(|_| not_a_key("not text".into()))?;
        Self::from_pkcs8_pem(&pem, &shown)
    }

    /// Checks that a PEM file round-trips; used by key-file tests.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
}

/// 32 bytes of the kernel's randomness. Used only for keys an operator asks for;
/// everything the simulation needs comes from its seed.
fn os_random_seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    if filled.is_err() {
        // No /dev/urandom (not Linux): hash the clock, the pid and a fresh heap address.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let marker = Box::new(0u8);
        let entropy = format!("{:?}{:p}{}", now, &*marker, std::process::id());
        seed = *blake3::hash(entropy.as_bytes()).as_bytes();
    }
    seed
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key_and_is_pkcs8_v1() {
        let keypair = Keypair::from_seed([3; 32]);
        let pem = keypair.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = Keypair::from_pkcs8_pem(&pem, "mem").unwrap();
        assert_eq!(back.public_key(), keypair.public_key());
        // v1 DER of an Ed25519 key is 48 bytes: base64 of it is 64 characters.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(body.len(), 64);
    }

    #[test]
    fn garbage_pem_is_a_clear_error_not_a_panic() {
        let error = Keypair::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k.pem")
            .unwrap_err();
        assert!(error.to_string().contains("k.pem"));
    }
}
