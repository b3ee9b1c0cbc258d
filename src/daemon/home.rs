//! The swarm's home directory (`.bftswarm/`): where every file of one swarm
//! lives, and the small file helpers that keep secrets private and writes whole.
//!
//! ```text
//! config.toml   the swarm config (`swarm init` flags, `byzantine config`)
//! swarm.json    swarm id and creation time
//! membership.json  who is in the swarm: every agent ever admitted, its status,
//!               and the committee of every membership epoch (one record)
//! wal/          each validator's write-ahead log
//! pubkeys.json  public keys announced with `byzantine distribute-pubkeys`
//! keys/         the validators' private keys (0600)
//! token         the control API's bearer token (0600)
//! daemon.pid    the daemon's pid, locked while it runs
//! daemon.addr   the control API's address (loopback)
//! daemon.log    the daemon's stdout and stderr
//! swarm.redb    the memory store
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The directory a swarm lives in when neither `--home` nor `BFTSWARM_HOME` says otherwise.
pub const DEFAULT_HOME: &str = ".bftswarm";

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is damaged ({reason}); fix or remove it", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{} is a symbolic link; a key is not written through one (remove the link or choose another path)", path.display())]
    Symlink { path: PathBuf },
}

impl HomeError {
    pub fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HomeError + 'a {
        move |source| HomeError::Io { action, path: path.to_path_buf(), source }
    }
}

#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`, made absolute so that a daemon started from it
    /// finds it whatever its working directory.
    pub fn at(root: &Path) -> Home {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Home { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn swarm_meta(&self) -> PathBuf {
        self.root.join("swarm.json")
    }
    pub fn membership(&self) -> PathBuf {
        self.root.join("membership.json")
    }
    pub fn pubkeys(&self) -> PathBuf {
        self.root.join("pubkeys.json")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn token(&self) -> PathBuf {
        self.root.join("token")
    }
    pub fn pid(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    pub fn addr(&self) -> PathBuf {
        self.root.join("daemon.addr")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// Whether `swarm init` already ran here.
    pub fn is_initialized(&self) -> bool {
        self.config().is_file()
    }

    /// Creates the home and its `keys/` (0700: they hold private keys).
    pub fn create_dirs(&self) -> Result<(), HomeError> {
        for dir in [self.root.clone(), self.keys_dir()] {
            std::fs::create_dir_all(&dir).map_err(HomeError::io("create", &dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(HomeError::io("restrict", &dir))?;
        }
        Ok(())
    }

    pub fn read_token(&self) -> Result<String, HomeError> {
        let path = self.token();
        let text = std::fs::read_to_string(&path).map_err(HomeError::io("read", &path))?;
        Ok(text.trim().to_string())
    }
}

/// Writes `contents` to a new file readable by its owner only; an existing
/// file is an error unless `replace`. A symbolic link is never followed: a
/// key written over a link could overwrite whatever file it points to.
pub fn write_private(path: &Path, contents: &[u8], replace: bool) -> Result<(), HomeError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => HomeError::Exists { path: path.to_path_buf() },
        _ if source.raw_os_error() == Some(libc::ELOOP) => HomeError::Symlink { path: path.to_path_buf() },
        _ => HomeError::Io { action: "write", path: path.to_path_buf(), source },
    })?;
    // `mode` applies only to new files: a replaced file is narrowed too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(HomeError::io("restrict", path))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(HomeError::io("write", path))
}

/// Replaces `path` whole (write a sibling, then rename), so a crash never
/// leaves half a file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(HomeError::io("write", &tmp))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(HomeError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(HomeError::io("replace", path))
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), HomeError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| HomeError::Damaged { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomically(path, &text)
}

/// Reads a JSON file; a missing file is `None`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, HomeError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HomeError::Io { action: "read", path: path.to_path_buf(), source }),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| HomeError::Damaged { path: path.to_path_buf(), reason: e.to_string() })
}

/// A fresh bearer token: 32 random bytes in hex.
pub fn new_token() -> String {
    crate::crypto::hex(&crate::crypto::Keypair::generate().secret_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_never_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_private(&path, b"one", false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(write_private(&path, b"two", false), Err(HomeError::Exists { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_private(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn damaged_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = read_json::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(error.contains("agents.json") && error.contains("damaged"), "{error}");
        assert!(read_json::<serde_json::Value>(&dir.path().join("none.json")).unwrap().is_none());
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
