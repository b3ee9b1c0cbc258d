//! `bftswarm task orchestrate`: submit N signed transfers through the daemon's
//! swarm, with a progress bar on a terminal and a summary at the end.

use super::connect::ConnectionArgs;
use super::output::{print_json, print_line, OutputArgs};
use super::CliError;
use crate::daemon::tasks::{TaskRequest, TaskView};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    #[command(subcommand)]
    pub command: TaskCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Submit signed transfers to the swarm and wait until each has f+1 matching replies.
    #[command(
        after_help = "Examples:\n  bftswarm task orchestrate --task \"Process financial transactions with BFT verification\" --strategy sequential --max-agents 7 --priority critical --count 1000 --consensus byzantine"
    )]
    Orchestrate(OrchestrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct OrchestrateArgs {
    /// What the task is, for hooks and the summary.
    #[arg(long, value_name = "TEXT")]
    pub task: String,
    /// Only sequential: PBFT puts every transfer into one order.
    #[arg(long, default_value = "sequential")]
    pub strategy: String,
    /// Validators taking part; every task runs on the whole committee, so this must be its size.
    #[arg(long, value_name = "N")]
    pub max_agents: Option<usize>,
    /// low, medium, high or critical (recorded; tasks run one at a time).
    #[arg(long, default_value = "medium")]
    pub priority: String,
    /// Transfers to submit [default: the config's workload.transactions].
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Only byzantine.
    #[arg(long, default_value = "byzantine")]
    pub consensus: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];

pub fn execute(args: &TaskArgs) -> Result<(), CliError> {
    let TaskCommand::Orchestrate(task) = &args.command;
    if task.strategy != "sequential" {
        return Err(CliError::Usage(format!(
            "--strategy {} is not supported: PBFT orders every transfer in one sequence, so the only strategy is sequential",
            task.strategy
        )));
    }
    if task.consensus != "byzantine" {
        return Err(CliError::Usage(format!("--consensus {} is not supported; only byzantine (PBFT)", task.consensus)));
    }
    if !PRIORITIES.contains(&task.priority.as_str()) {
        return Err(CliError::Usage(format!("--priority {} is not one of: {}", task.priority, PRIORITIES.join(", "))));
    }
    let client = args.connection.client()?;
    let info: Value = client.get("/v1/swarm")?;
    let committee = info["required_agents"].as_u64().unwrap_or(0) as usize;
    if let Some(max_agents) = task.max_agents.filter(|n| *n != committee) {
        return Err(CliError::Usage(format!(
            "--max-agents {max_agents}: every task runs on the whole committee of {committee} validators; pass {committee} or leave it out"
        )));
    }
    let count = match task.count {
        Some(count) => count,
        None => client.get::<Value>("/v1/config")?["workload"]["transactions"].as_u64().unwrap_or(1000) as usize,
    };
    let request = TaskRequest {
        task: task.task.clone(),
        strategy: task.strategy.clone(),
        priority: task.priority.clone(),
        count,
    };
    let started: TaskView = client.post("/v1/tasks", &request)?;
    let bar = progress_bar(count, task.output.json);
    let path = format!("/v1/tasks/{}", started.task_id);
    let mut completed = 0;
    let finished = loop {
        let view: TaskView = client.get(&path).map_err(|error| {
            CliError::TaskFailed(format!(
                "lost the daemon while task {} ran ({completed} of {count} transfers completed): {error}",
                started.task_id
            ))
        })?;
        completed = view.completed;
        if let Some(bar) = &bar {
            bar.set_position(view.completed);
        }
        if view.is_finished() {
            break view;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(error) = &finished.error {
        return Err(CliError::TaskFailed(format!("task {} failed: {error}", finished.task_id)));
    }
    if task.output.json_by_default() {
        return Ok(print_json(&finished)?);
    }
    let reasons: Vec<String> = finished.rejected_by_reason.iter().map(|(r, n)| format!("{n} {r}")).collect();
    print_line(&format!(
        "task {}: {} transfers, committed {}, rejected {}{}\nthroughput {:.0} tx/s over {:.0} ms; commit latency p50 {:.1} ms, p99 {:.1} ms",
        finished.task_id,
        finished.submitted,
        finished.committed,
        finished.rejected,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        finished.throughput_tx_per_s,
        finished.elapsed_ms,
        finished.latency_ms_p50,
        finished.latency_ms_p99,
    ))?;
    Ok(())
}

/// A bar on stderr when a person watches (stdout and stderr on a terminal, no --json).
fn progress_bar(total: usize, json: bool) -> Option<ProgressBar> {
    if json || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let style =
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} transfers ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    Some(ProgressBar::new(total as u64).with_style(style))
}
