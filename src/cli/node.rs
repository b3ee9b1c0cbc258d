//! `bftswarm node --home DIR --hub HOST:PORT --keypair FILE`: one validator
//! in its own process, joined to a hub over TCP ([`crate::transport::node`]).

use super::CliError;
use crate::crypto::Keypair;
use crate::faults::{FaultSpec, FaultType};
use crate::transport::{check_address, parse_public_key, run_node, NodeError, NodeOptions};
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
    /// Make this validator Byzantine, for demonstrations (signature-corruption, equivocation,
    /// censorship, silent, replay, invalid-proposal, delay, double-spend); its peers report it to the hub.
    #[arg(long, value_name = "TYPE")]
    pub fault: Option<String>,
    /// How often the fault strikes (0.0 to 1.0).
    #[arg(long, value_name = "P", default_value_t = 0.5, requires = "fault")]
    pub fault_probability: f64,
    /// Serve /metrics (Prometheus) on this address, e.g. 127.0.0.1:9464 (port 0 picks one).
    #[arg(long, env = "BFTSWARM_NODE_METRICS_LISTEN", value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
}

pub fn execute(args: &NodeArgs) -> Result<(), CliError> {
    check_address(&args.hub).map_err(|e| CliError::Usage(format!("--hub: {e}")))?;
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
    let fault = match &args.fault {
        Some(name) => Some(fault_spec(name, args.fault_probability)?),
        None => None,
    };
    let (home, hub, fsync) = (args.home.clone(), args.hub.clone(), !args.no_fsync);
    let options = NodeOptions { home, hub, keypair, hub_key, fsync, fault };
    eprintln!("validator {} connecting to the hub at {}", options.keypair.public_key(), args.hub);
    let metrics_listen = args.metrics_listen.clone();
    let result = actix::System::new().block_on(async move {
        if let Some(listen) = metrics_listen {
            crate::observe::install();
            let observed = std::sync::Arc::new(crate::observe::http::Observed::new("node"));
            let addr = crate::observe::http::serve(&listen, observed).map_err(|e| {
                CliError::Usage(format!("cannot serve metrics on {listen}: {e}; pass another --metrics-listen"))
            })?;
            eprintln!("node metrics on http://{addr}/metrics");
        }
        Ok::<_, CliError>(run_node::<crate::app::SwarmApp>(options).await)
    })?;
    result.map_err(|error| match error {
        NodeError::Handshake(error) => CliError::Usage(error.to_string()),
        other => CliError::Daemon(other.to_string()),
    })
}

/// A fault from the moment the validator starts.
fn fault_spec(name: &str, probability: f64) -> Result<FaultSpec, CliError> {
    let fault_type = name.parse::<FaultType>().map_err(|e| CliError::Usage(format!("--fault: {e}")))?;
    if !(0.0..=1.0).contains(&probability) {
        return Err(CliError::Usage(format!("--fault-probability {probability} must be between 0.0 and 1.0")));
    }
    Ok(FaultSpec { fault_type, probability, after_us: 0 })
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
