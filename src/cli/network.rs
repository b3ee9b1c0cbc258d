//! `bftswarm network latency`: round trips from the daemon to each validator.
//! Every agent runs in the daemon's process behind the supervisor hub, so the
//! figure is an actor-mailbox round trip; TCP between processes is issue 8.

use super::connect::ConnectionArgs;
use super::output::{print_json, print_line, scalar, table};
use super::CliError;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Round-trip time to each validator (in-process mailboxes today).
    #[command(
        after_help = "Examples:\n  bftswarm network latency --all-agents\n  bftswarm network latency --agent bft-agent-3 --samples 20"
    )]
    Latency {
        #[arg(long, conflicts_with = "agent")]
        all_agents: bool,
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
        /// Round trips per agent (1 to 1000).
        #[arg(long, default_value_t = 5, value_name = "N")]
        samples: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn execute(args: &NetworkArgs) -> Result<(), CliError> {
    let NetworkCommand::Latency { all_agents, agent, samples, json } = &args.command;
    if !all_agents && agent.is_none() {
        return Err(CliError::Usage("say --all-agents or --agent NAME".into()));
    }
    if !(1..=1000).contains(samples) {
        return Err(CliError::Usage(format!("--samples {samples} is out of range; use 1 to 1000")));
    }
    let rows: Vec<Value> = args.connection.client()?.get(&format!("/v1/network/latency?samples={samples}"))?;
    let rows: Vec<Value> = rows.into_iter().filter(|row| agent.as_ref().is_none_or(|a| row["agent"] == **a)).collect();
    if let Some(name) = agent.as_ref().filter(|_| rows.is_empty()) {
        return Err(CliError::Usage(format!("no agent {name} in this swarm; `bftswarm agent list` shows the agents")));
    }
    if *json {
        return Ok(print_json(&rows)?);
    }
    let mut shown = table(&["agent", "round trip min µs", "round trip avg µs", "samples"]);
    for row in &rows {
        shown.add_row([
            scalar(&row["agent"]),
            scalar(&row["round_trip_us_min"]),
            scalar(&row["round_trip_us_avg"]),
            scalar(&row["samples"]),
        ]);
    }
    print_line(&shown.to_string())?;
    Ok(print_line("(daemon → validator actor mailbox, in process; every agent runs in the daemon)")?)
}
