//! `bftswarm swarm init|status|stop|start`: the daemon's life.

use super::connect::{not_running, ConnectionArgs};
use super::output::{object_table, paint_status, print_json, print_line, OutputArgs};
use super::CliError;
use crate::api::client::ApiClient;
use crate::config::SwarmConfig;
use crate::daemon::home::{new_token, write_atomically, write_json, write_private, Home};
use crate::daemon::process::{self, ProcessError};
use crate::daemon::{SwarmInfo, SwarmMeta};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How long `swarm init` and `swarm start` wait for the daemon's API.
const START_LIMIT: Duration = Duration::from_secs(15);
const STOP_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct SwarmArgs {
    #[command(subcommand)]
    pub command: SwarmCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum SwarmCommand {
    /// Create the swarm's home and start its daemon in the background.
    #[command(
        after_help = "Examples:\n  bftswarm swarm init --topology star --consensus byzantine --max-agents 7 --max-failures 2\n  bftswarm swarm init --home /tmp/swarm-a --config config/byzantine-7.toml"
    )]
    Init(InitArgs),
    /// Show the swarm: id, topology, status (initializing until the committee is complete, then active).
    #[command(after_help = "Examples:\n  bftswarm swarm status\n  bftswarm swarm status --verbose --json")]
    Status {
        /// Add the agents, the config and the daemon's address.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Stop the daemon cleanly (the home stays; `swarm start` brings it back).
    #[command(after_help = "Examples:\n  bftswarm swarm stop\n  bftswarm swarm stop --home /srv/swarm-a")]
    Stop {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Start the daemon again from its home.
    #[command(after_help = "Examples:\n  bftswarm swarm start\n  BFTSWARM_HOME=/srv/swarm-a bftswarm swarm start")]
    Start {
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Message topology; only star (every message goes through the supervisor hub).
    #[arg(long, default_value = "star")]
    pub topology: String,
    /// Agreement protocol; only byzantine (PBFT).
    #[arg(long, default_value = "byzantine")]
    pub consensus: String,
    /// n, the number of validators in the committee [default: from the config, 4].
    #[arg(long, value_name = "N")]
    pub max_agents: Option<usize>,
    /// f, the Byzantine validators tolerated (n >= 3f+1) [default: floor((n-1)/3)].
    #[arg(long, value_name = "F")]
    pub max_failures: Option<usize>,
    /// A swarm config file (TOML) to start from; the flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep the validators' state in memory only: `swarm start` then begins
    /// again from genesis. By default each validator keeps a write-ahead log
    /// in the home (`wal/`), so a stopped swarm comes back with its ledger.
    #[arg(long)]
    pub in_memory: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn execute(args: &SwarmArgs) -> Result<(), CliError> {
    let connection = &args.connection;
    match &args.command {
        SwarmCommand::Init(init) => {
            let info = initialize(init, &connection.home())?;
            show(&info_value(&info)?, init.output)
        }
        SwarmCommand::Status { verbose, output } => {
            let client = connection.client()?;
            let mut info: Value = client.get("/v1/swarm")?;
            if *verbose {
                let agents: Value = client.get("/v1/agents")?;
                let config: Value = client.get("/v1/config")?;
                if let Value::Object(fields) = &mut info {
                    fields.insert("addr".into(), Value::String(client_addr(connection)));
                    fields.insert("agents".into(), agents);
                    fields.insert("config".into(), config);
                }
            }
            show(&info, *output)
        }
        SwarmCommand::Stop { output } => {
            let home = connection.home();
            let client = connection.client()?;
            let answer: Value = client.post("/v1/swarm/stop", &serde_json::json!({}))?;
            let pid = answer["pid"].as_u64().unwrap_or(0) as u32;
            if connection.addr.is_none() {
                process::wait_until_stopped(&home, pid, STOP_LIMIT)?;
            }
            let stopped = serde_json::json!({ "swarm_id": answer["swarm_id"], "status": "stopped", "pid": pid });
            show(&stopped, *output)
        }
        SwarmCommand::Start { output } => {
            let home = connection.home();
            if !home.is_initialized() {
                return Err(CliError::Usage(format!(
                    "no swarm home at {}; create one with `bftswarm swarm init`",
                    home.root().display()
                )));
            }
            let info = start_daemon(&home)?;
            show(&info_value(&info)?, *output)
        }
    }
}

fn client_addr(connection: &ConnectionArgs) -> String {
    connection.addr.clone().unwrap_or_else(|| {
        std::fs::read_to_string(connection.home().addr()).map(|a| a.trim().to_string()).unwrap_or_default()
    })
}

fn info_value(info: &SwarmInfo) -> Result<Value, CliError> {
    serde_json::to_value(info).map_err(|e| CliError::Usage(e.to_string()))
}

fn show(value: &Value, output: OutputArgs) -> Result<(), CliError> {
    if output.json_by_default() {
        return Ok(print_json(value)?);
    }
    let mut shown = value.clone();
    if let Some(status) = value["status"].as_str() {
        shown["status"] = Value::String(paint_status(status));
    }
    Ok(print_line(&object_table(&shown).to_string())?)
}

/// Writes the home (config, identity, token) and starts the daemon.
fn initialize(args: &InitArgs, home: &Home) -> Result<SwarmInfo, CliError> {
    if let Some(pid) = process::running_pid(home) {
        let home = home.root().display().to_string();
        return Err(ProcessError::AlreadyRunning { home, pid }.into());
    }
    if home.is_initialized() {
        return Err(CliError::Usage(format!(
            "a swarm was already initialized in {}; bring it back with `bftswarm swarm start`, or remove that directory to start over",
            home.root().display()
        )));
    }
    let mut config = SwarmConfig::load(args.config.as_deref())?;
    config.swarm.topology = args.topology.clone();
    config.swarm.consensus = args.consensus.clone();
    if let Some(n) = args.max_agents {
        config.swarm.max_agents = n;
    }
    if args.max_failures.is_some() {
        config.swarm.max_failures = args.max_failures;
    }
    config.storage.wal = !args.in_memory;
    config.validate()?;
    let text = toml::to_string(&config).map_err(|e| CliError::Usage(format!("cannot write the config: {e}")))?;
    home.create_dirs()?;
    let swarm_id = format!("swarm-bft-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let meta = SwarmMeta { swarm_id, created_at: crate::events::timestamp_now() };
    write_private(&home.token(), new_token().as_bytes(), true)?;
    write_json(&home.swarm_meta(), &meta)?;
    // Last: a home counts as initialized once its config exists.
    write_atomically(&home.config(), text.as_bytes())?;
    start_daemon(home)
}

/// Starts the daemon of an initialized home and waits for its API.
fn start_daemon(home: &Home) -> Result<SwarmInfo, CliError> {
    if let Some(pid) = process::running_pid(home) {
        return Err(ProcessError::AlreadyRunning { home: home.root().display().to_string(), pid }.into());
    }
    let _ = std::fs::remove_file(home.addr());
    let pid = process::spawn_daemon(home)?;
    let token = home.read_token().ok();
    let answering = || {
        let Ok(addr) = std::fs::read_to_string(home.addr()) else { return None };
        let addr = addr.trim().parse().ok()?;
        let client = ApiClient::new(addr, token.clone()).with_timeout(Duration::from_secs(2));
        let alive: Value = client.get("/v1/health").ok()?;
        (alive["pid"].as_u64() == Some(pid as u64)).then_some(client)
    };
    process::wait_until_ready(home, pid, START_LIMIT, || answering().is_some())?;
    let client = answering().ok_or_else(|| not_running(home))?;
    Ok(client.get("/v1/swarm")?)
}
