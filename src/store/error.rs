//! The one error type of the storage layer. Every message fits on one line and
//! says what to do, because the CLI prints it as is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb holds an exclusive file lock for as long as a `Database` is open.
    #[error("memory store at {} is locked by another process; stop the running swarm or pass another --home", path.display())]
    Locked { path: PathBuf },

    #[error("WAL record {index} of {log} is corrupt ({reason}); the validator will recover from its peers")]
    Corrupt { log: String, index: u64, reason: &'static str },

    #[error("memory store key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    #[error("WAL name {name:?} is invalid: {reason}")]
    InvalidLogName { name: String, reason: &'static str },

    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, size: usize, limit: usize },

    #[error("value under {key:?} is not JSON ({detail}); delete it and store it again")]
    NotJson { key: String, detail: String },

    #[error("memory store value under {key:?} is damaged (shorter than its header); delete it and store it again")]
    BadEntry { key: String },

    #[error("cannot use home directory {}: {source}", path.display())]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An existing memory store that cannot be opened: refused, never replaced by an empty one.
    #[error("memory store {} cannot be read ({detail}); it was left as it is: if it is damaged, move it aside to start with an empty store, or restore it from a backup", path.display())]
    Unreadable { path: PathBuf, detail: String },

    #[error("database {} failed: {detail}", path.display())]
    Database { path: PathBuf, detail: String },
}
