//! `byzantine generate-keypair` and `byzantine distribute-pubkeys`: the
//! agents' Ed25519 identities as PKCS#8 PEM files (the form `openssl pkey`
//! reads), and announcing their public keys to the swarm.

use super::connect::ConnectionArgs;
use super::output::{print_json, print_line};
use super::CliError;
use crate::crypto::Keypair;
use crate::daemon::home::write_private;
use crate::daemon::registry::check_name;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  bftswarm byzantine generate-keypair --agent-name bft-agent-1 --output keys/bft-agent-1-key.pem\n  for i in $(seq 1 7); do bftswarm byzantine generate-keypair --agent-name bft-agent-$i; done"
)]
pub struct GenerateKeypairArgs {
    /// The agent the key is for, e.g. bft-agent-1.
    #[arg(long, value_name = "NAME")]
    pub agent_name: String,
    /// Where to write the private key [default: keys/<NAME>-key.pem].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  bftswarm byzantine distribute-pubkeys --key-directory keys/ --all-agents")]
pub struct DistributePubkeysArgs {
    /// A directory of PEM private keys named <agent>-key.pem (or <agent>.pem).
    #[arg(long, value_name = "DIR")]
    pub key_directory: PathBuf,
    /// Announce the keys to every agent: the hub's registry is the swarm's PKI (required: the only mode).
    #[arg(long)]
    pub all_agents: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn generate_keypair(args: &GenerateKeypairArgs) -> Result<(), CliError> {
    check_name(&args.agent_name).map_err(CliError::Usage)?;
    let path = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("keys/{}-key.pem", args.agent_name)));
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Usage(format!("cannot create the directory {}: {e}", dir.display())))?;
    }
    let keypair = Keypair::generate();
    let pem = keypair.to_pkcs8_pem().map_err(|e| CliError::Usage(e.to_string()))?;
    write_private(&path, pem.as_bytes(), args.force)?;
    let public = keypair.public_key().to_string();
    if args.json {
        let shown = json!({ "agent": args.agent_name, "public_key": public, "private_key_file": path });
        return Ok(print_json(&shown)?);
    }
    Ok(print_line(&format!("  {}: Public={public} Private={}", args.agent_name, path.display()))?)
}

pub fn distribute_pubkeys(args: &DistributePubkeysArgs, connection: &ConnectionArgs) -> Result<(), CliError> {
    if !args.all_agents {
        return Err(CliError::Usage(
            "say --all-agents: public keys go to every agent through the hub's registry (the only mode)".into(),
        ));
    }
    let keys = read_public_keys(&args.key_directory)?;
    let answer: Value = connection.client()?.post("/v1/pubkeys", &json!({ "keys": keys }))?;
    if args.json {
        return Ok(print_json(&json!({ "public_keys": keys, "distributed": answer["distributed"] }))?);
    }
    for (name, key) in &keys {
        print_line(&format!("  {name}: Public={key}"))?;
    }
    Ok(print_line(&format!("distributed {} public keys to every agent of the swarm", keys.len()))?)
}

/// Agent name → public key for every `*.pem` in `dir`.
fn read_public_keys(dir: &Path) -> Result<BTreeMap<String, String>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::Usage(format!("cannot read the key directory {}: {e}", dir.display())))?;
    let mut keys = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "pem") {
            continue;
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = stem.strip_suffix("-key").unwrap_or(&stem).to_string();
        check_name(&name).map_err(CliError::Usage)?;
        let keypair = Keypair::read_pem_file(&path).map_err(|e| CliError::Usage(e.to_string()))?;
        keys.insert(name, keypair.public_key().to_string());
    }
    if keys.is_empty() {
        return Err(CliError::Usage(format!(
            "no *.pem key files in {}; create them with `bftswarm byzantine generate-keypair`",
            dir.display()
        )));
    }
    Ok(keys)
}
