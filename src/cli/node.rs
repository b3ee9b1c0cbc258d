//! `bftswarm node --home DIR --hub HOST:PORT --keypair FILE`: one validator
//! in its own process, joined to a hub over TCP ([`crate::transport::node`]).

use super::CliError;
use crate::crypto::Keypair;
use crate::transport::{parse_public_key, run_node, NodeError, NodeOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  bftswarm node --home testnet/bft-agent-1 --hub 127.0.0.1:7400 --keypair testnet/bft-agent-1/keys/bft-agent-1-key.pem"
)]
pub struct NodeArgs {
    /// The node's home: hub.pub, keys/, and the write-ahead log (wal/).
    #[arg(long, value_name = "DIR")]
    pub home: PathBuf,
    /// The hub's address.
    #[arg(long, value_name = "HOST:PORT")]
    pub hub: String,
    /// The validator's private key (PKCS#8 PEM) [default: the one *.pem in DIR/keys].
    #[arg(long, value_name = "FILE")]
    pub keypair: Option<PathBuf>,
    /// The hub's public key (0x + 64 hex digits) [default: the contents of DIR/hub.pub].
    #[arg(long, value_name = "KEY")]
    pub hub_key: Option<String>,
    /// Do not wait for the disk on each write-ahead log commit (a machine crash may lose the last ones).
    #[arg(long)]
    pub no_fsync: bool,
}

pub fn execute(args: &NodeArgs) -> Result<(), CliError> {
    let key_file = match &args.keypair {
        Some(path) => path.clone(),
        None => only_key_in(&args.home.join("keys"))?,
    };
    let keypair = Keypair::read_pem_file(&key_file).map_err(|e| CliError::Usage(e.to_string()))?;
    let hub_key = match &args.hub_key {
        Some(text) => parse_public_key(text).map_err(|e| CliError::Usage(format!("--hub-key: {e}")))?,
        None => {
            let path = args.home.join("hub.pub");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read {} ({e}); pass --hub-key or copy hub.pub from the testnet",
                    path.display()
                ))
            })?;
            parse_public_key(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
        }
    };
    let options =
        NodeOptions { home: args.home.clone(), hub: args.hub.clone(), keypair, hub_key, fsync: !args.no_fsync };
    eprintln!("validator {} connecting to the hub at {}", options.keypair.public_key(), args.hub);
    let result = actix::System::new().block_on(run_node(options));
    result.map_err(|error| match error {
        NodeError::Handshake(error) => CliError::Usage(error.to_string()),
        other => CliError::Daemon(other.to_string()),
    })
}

/// The single `*.pem` file in `dir`.
fn only_key_in(dir: &Path) -> Result<PathBuf, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::Usage(format!("cannot read {} ({e}); pass --keypair", dir.display())))?;
    let keys: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|ext| ext == "pem")).collect();
    match keys.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(CliError::Usage(format!("{} holds {} key files; pass --keypair", dir.display(), keys.len()))),
    }
}
