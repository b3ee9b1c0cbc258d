//! `bftswarm agent spawn|list`: registering validators with the daemon and
//! the tutorial's agent table.

use super::connect::ConnectionArgs;
use super::output::{paint_status, print_json, print_line, table};
use super::CliError;
use crate::crypto::Keypair;
use crate::daemon::{AgentRow, SpawnRequest};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Register validators; the swarm becomes active when max-agents of them joined.
    #[command(
        after_help = "Examples:\n  bftswarm agent spawn --type validator --name bft-agent-1 --capabilities transaction-validation,signature-verification,consensus --keypair keys/bft-agent-1-key.pem\n  bftswarm agent spawn --count 7 --type validator   # generated names and keys"
    )]
    Spawn(SpawnArgs),
    /// The agents: id, type, status, public key, role.
    #[command(after_help = "Examples:\n  bftswarm agent list --filter active\n  bftswarm agent list --json")]
    List {
        /// Only agents with this status: active, pending, faulty, unresponsive, standby (or all).
        #[arg(long, default_value = "all", value_name = "STATUS")]
        filter: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SpawnArgs {
    /// An agent type defined in agents/*.toml, e.g. validator.
    #[arg(long = "type", value_name = "TYPE")]
    pub agent_type: String,
    /// The agent's name [default: the type's name prefix and the next free number].
    #[arg(long, value_name = "NAME", conflicts_with = "count")]
    pub name: Option<String>,
    /// Comma-separated; each must be one of the type's capabilities [default: all of them].
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub capabilities: Option<Vec<String>>,
    /// The agent's PKCS#8 PEM private key [default: a fresh key kept in the home].
    #[arg(long, value_name = "FILE", conflicts_with = "count")]
    pub keypair: Option<PathBuf>,
    /// Spawn N agents with generated names and keys.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

const FILTERS: [&str; 9] =
    ["all", "active", "pending", "faulty", "unresponsive", "quarantined", "standby", "replaced", "removed"];

pub fn execute(args: &AgentArgs) -> Result<(), CliError> {
    let client = args.connection.client()?;
    match &args.command {
        AgentCommand::Spawn(spawn) => {
            let keypair = match &spawn.keypair {
                Some(path) => {
                    // Checked here so a wrong path is named as the user wrote it.
                    Keypair::read_pem_file(path).map_err(|e| CliError::Usage(e.to_string()))?;
                    Some(std::path::absolute(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?)
                }
                None => None,
            };
            let request = SpawnRequest {
                agent_type: spawn.agent_type.clone(),
                name: spawn.name.clone(),
                capabilities: spawn.capabilities.clone(),
                keypair,
                count: spawn.count,
            };
            let answer: Value = client.post("/v1/agents", &request)?;
            if spawn.json {
                return Ok(print_json(&answer)?);
            }
            let spawned: Vec<AgentRow> = serde_json::from_value(answer["spawned"].clone()).unwrap_or_default();
            for agent in &spawned {
                print_line(&format!(
                    "spawned {} ({}, {}) {}",
                    agent.id, agent.agent_type, agent.status, agent.public_key
                ))?;
            }
            let status = answer["swarm_status"].as_str().unwrap_or("unknown");
            Ok(print_line(&format!(
                "swarm {}: {} validators registered",
                paint_status(status),
                answer["registered_validators"]
            ))?)
        }
        AgentCommand::List { filter, json } => {
            if !FILTERS.contains(&filter.as_str()) {
                return Err(CliError::Usage(format!(
                    "--filter {filter} is not a status; use one of: {}",
                    FILTERS.join(", ")
                )));
            }
            let agents: Vec<AgentRow> = client.get("/v1/agents")?;
            let shown: Vec<&AgentRow> = agents.iter().filter(|a| filter == "all" || a.status == *filter).collect();
            if *json {
                return Ok(print_json(&shown)?);
            }
            let mut rows = table(&["Agent ID", "Type", "Status", "Public Key", "Role"]);
            for agent in shown {
                let short_key = match agent.public_key.len() > 10 {
                    true => format!("{}...", agent.public_key.chars().take(10).collect::<String>()),
                    false => agent.public_key.clone(),
                };
                rows.add_row([
                    agent.id.clone(),
                    agent.agent_type.clone(),
                    agent.status.clone(),
                    short_key,
                    agent.role.clone(),
                ]);
            }
            Ok(print_line(&rows.to_string())?)
        }
    }
}
