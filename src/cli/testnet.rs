//! `bftswarm testnet --validators N --output DIR`: everything a swarm of
//! separate processes needs, one directory per process, so that spreading the
//! swarm over machines is copying directories.
//!
//! ```text
//! DIR/hub/config.toml        the swarm config (n, f, tuning, workload)
//! DIR/hub/committee.toml     the validators' names and public keys, in order; which run inside the hub
//! DIR/hub/hub-key.pem        the hub's identity (it signs handshakes and membership changes)
//! DIR/hub/keys/              keys of the validators that run inside the hub (--in-process)
//! DIR/<agent>/keys/<agent>-key.pem   one validator process's key
//! DIR/<agent>/hub.pub        the hub's public key, which the node checks
//! DIR/start.sh               starts the hub and every node on this machine
//! ```

use super::CliError;
use crate::config::MAX_VALIDATORS;
use crate::crypto::Keypair;
use crate::daemon::home::write_private;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  bftswarm testnet --validators 4 --output testnet\n  sh testnet/start.sh\n  bftswarm testnet --validators 7 --in-process 2 --listen 0.0.0.0:7400 --output testnet-7"
)]
pub struct TestnetArgs {
    /// n, the number of validators (at least 4).
    #[arg(long, value_name = "N")]
    pub validators: usize,
    /// Where to write the homes.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// How many of them (the last ones) run inside the hub process instead of their own.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub in_process: usize,
    /// The address the hub listens on; loopback unless you spread the swarm over machines.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Validators to keep on standby: their homes are written and the hub knows
    /// their keys, but they join only through a membership change (`[[membership]] add`).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub standby: usize,
    /// Replace key files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// `hub/committee.toml`: who the hub admits, in committee order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HubCommittee {
    /// Where the hub listens unless `bftswarm hub --listen` says otherwise.
    pub listen: String,
    pub validators: Vec<CommitteeEntry>,
    /// Validators a membership change may add, in order; each runs in its own process.
    #[serde(default)]
    pub standby: Vec<CommitteeEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitteeEntry {
    pub name: String,
    /// 0x and 64 hex digits.
    pub public_key: String,
    /// Runs inside the hub process, with its key in `hub/keys/<name>-key.pem`.
    #[serde(default)]
    pub in_process: bool,
}

pub fn execute(args: &TestnetArgs) -> Result<(), CliError> {
    crate::transport::check_address(&args.listen).map_err(|e| CliError::Usage(format!("--listen: {e}")))?;
    let shape = Shape { validators: args.validators, in_process: args.in_process, standby: args.standby };
    let written = write(&args.output, shape, &args.listen, args.force)?;
    eprintln!(
        "wrote a testnet of {} validators ({} in their own process) to {}",
        args.validators,
        written.nodes.len(),
        args.output.display()
    );
    println!("{}", start_script(&written, &args.listen));
    Ok(())
}

/// How many validators, how many of them inside the hub, how many on standby.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub validators: usize,
    pub in_process: usize,
    pub standby: usize,
}

/// What [`write`] wrote: the hub's home and each node's (name, home), relative to the output.
pub struct Testnet {
    pub hub: PathBuf,
    pub nodes: Vec<(String, PathBuf)>,
    pub standby: Vec<(String, PathBuf)>,
}

/// Writes the homes of a testnet: the last `in_process` validators run inside the hub.
pub fn write(out: &Path, shape: Shape, listen: &str, force: bool) -> Result<Testnet, CliError> {
    let Shape { validators, in_process, standby } = shape;
    if validators < 4 || in_process > validators {
        return Err(CliError::Usage(format!(
            "a testnet needs --validators of at least 4 and --in-process of at most that (got {validators} and {in_process})"
        )));
    }
    if validators.saturating_add(standby) > MAX_VALIDATORS {
        return Err(CliError::Usage(format!(
            "--validators {validators} and --standby {standby} make more than {MAX_VALIDATORS} validators, the most a swarm may have"
        )));
    }
    let mkdir = |dir: &Path| {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))
    };
    let hub_dir = out.join("hub");
    mkdir(&hub_dir.join("keys"))?;
    let mut cfg = crate::config::SwarmConfig::load(None)?;
    cfg.swarm.max_agents = validators;
    let hub_key = Keypair::generate();
    write_key(&hub_dir.join("hub-key.pem"), &hub_key, force)?;
    let mut entries = Vec::with_capacity(validators);
    let mut nodes = Vec::new();
    for (index, name) in cfg.agent_names().into_iter().enumerate() {
        let keypair = Keypair::generate();
        let runs_in_hub = index >= validators - in_process;
        if runs_in_hub {
            write_key(&hub_dir.join("keys").join(format!("{name}-key.pem")), &keypair, force)?;
        } else {
            write_node_home(&out.join(&name), &name, &keypair, &hub_key, force)?;
            nodes.push((name.clone(), PathBuf::from(&name)));
        }
        let public_key = keypair.public_key().to_string();
        entries.push(CommitteeEntry { name, public_key, in_process: runs_in_hub });
    }
    let mut standby_entries = Vec::with_capacity(standby);
    let mut standby_nodes = Vec::with_capacity(standby);
    for number in validators + 1..=validators + standby {
        let name = format!("{}{number}", cfg.swarm.agent_name_prefix);
        let keypair = Keypair::generate();
        write_node_home(&out.join(&name), &name, &keypair, &hub_key, force)?;
        standby_entries.push(CommitteeEntry {
            name: name.clone(),
            public_key: keypair.public_key().to_string(),
            in_process: false,
        });
        standby_nodes.push((name.clone(), PathBuf::from(name)));
    }
    let committee = HubCommittee { listen: listen.to_string(), validators: entries, standby: standby_entries };
    let committee = toml::to_string_pretty(&committee).map_err(|e| CliError::Usage(e.to_string()))?;
    write_text(&hub_dir.join("committee.toml"), &format!("# Validators in committee order.\n{committee}"))?;
    let config = format!(
        "# The swarm config of this testnet; keys it omits come from the defaults (config/default.toml).\n[swarm]\nmax_agents = {validators}\n"
    );
    write_text(&hub_dir.join("config.toml"), &config)?;
    let testnet = Testnet { hub: PathBuf::from("hub"), nodes, standby: standby_nodes };
    write_text(&out.join("start.sh"), &start_script(&testnet, listen))?;
    Ok(testnet)
}

/// A node's home: its key and the hub's public key.
fn write_node_home(home: &Path, name: &str, keypair: &Keypair, hub_key: &Keypair, force: bool) -> Result<(), CliError> {
    let keys = home.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", keys.display())))?;
    write_text(&home.join("hub.pub"), &format!("{}\n", hub_key.public_key()))?;
    write_key(&keys.join(format!("{name}-key.pem")), keypair, force)
}

fn write_key(path: &Path, keypair: &Keypair, force: bool) -> Result<(), CliError> {
    let pem = keypair.to_pkcs8_pem().map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(write_private(path, pem.as_bytes(), force)?)
}

fn write_text(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

/// A shell script that starts the hub and every node on this machine; its
/// lines are the commands to run on each machine when the swarm is spread.
/// It runs the binary that wrote it unless `BFTSWARM` names another (or that
/// one is gone, then `bftswarm` on PATH), and Ctrl-C (or SIGTERM) stops every
/// process it started: background jobs of a script ignore SIGINT otherwise.
fn start_script(testnet: &Testnet, listen: &str) -> String {
    let writer = std::env::current_exe().ok().map(|exe| exe.display().to_string()).unwrap_or_default();
    let mut script = String::from(
        "#!/bin/sh\n# Starts the hub and every validator process of this testnet; Ctrl-C stops them all.\n\
         # Across machines: copy hub/ to the hub's machine and run its line there with --listen 0.0.0.0:PORT;\n\
         # copy each validator's directory to its machine and run its line with HUB=<hub-host>:PORT.\n\
         cd \"$(dirname \"$0\")\"\n",
    );
    script.push_str(&format!("BFTSWARM=${{BFTSWARM:-{}}}\n", shell_quoted(&writer)));
    script.push_str(
        "if [ ! -x \"$BFTSWARM\" ]; then\n  BFTSWARM=$(command -v bftswarm) || {\n    \
         echo \"start.sh: no bftswarm binary; set BFTSWARM=/path/to/bftswarm or put it on PATH\" >&2; exit 127; }\nfi\n",
    );
    script.push_str(&format!("HUB=${{HUB:-{listen}}}\npids=\n"));
    script.push_str("trap 'trap - INT TERM; kill $pids 2>/dev/null; wait; exit 130' INT TERM\n");
    script.push_str(&format!(
        "\"$BFTSWARM\" hub --home {} --listen \"$HUB\" &\npids=\"$pids $!\"\n",
        testnet.hub.display()
    ));
    for (name, home) in &testnet.nodes {
        let home = home.display();
        script.push_str(&format!(
            "\"$BFTSWARM\" node --home {home} --hub \"$HUB\" --keypair {home}/keys/{name}-key.pem &\npids=\"$pids $!\"\n"
        ));
    }
    for (name, home) in &testnet.standby {
        let home = home.display();
        script.push_str(&format!(
            "# on standby: start once a membership change added it\n# \"$BFTSWARM\" node --home {home} --hub \"$HUB\" --keypair {home}/keys/{name}-key.pem &\n"
        ));
    }
    script.push_str("wait\n");
    script
}

/// `text` in single quotes for sh (a quote inside closes, escapes and reopens).
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
