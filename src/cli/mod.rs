//! The command-line surface: `bftswarm <command> …`, mirroring the tutorial's
//! commands (one variant of [`Command`] each), and the mapping of errors to
//! one line on stderr and an exit code.

pub mod bench;
mod catch_up;
pub mod probe;
pub mod report;
pub mod run;

use crate::actors::SwarmError;
use crate::config::ConfigError;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "bftswarm", version, about = "An actor swarm whose validators agree under Byzantine faults (PBFT)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole scenario in the foreground: spawn the swarm, submit the
    /// workload, check integrity and print a report.
    Run(run::RunArgs),
    /// Measure throughput, latency and CPU per transfer for several committee
    /// sizes, beside the cost of Ed25519 verification and the tutorial's figures.
    Bench(bench::BenchArgs),
    /// The crash test's child process: a durable swarm from --home that
    /// prints every acknowledged transfer (see tests/crash.rs).
    #[command(hide = true)]
    DurabilityProbe(probe::ProbeArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A mistake in what the user asked for, with how to fix it.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    #[error("the swarm made no progress for {seconds} s ({completed} of {total} transfers completed; validators executed up to seq {executed}); it is stalled")]
    Stalled {
        seconds: u64,
        completed: u64,
        total: usize,
        /// Each validator's last executed sequence number, in committee order.
        executed: String,
    },
    #[error("system integrity violated: {0}")]
    Integrity(String),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// 2 for a mistake the user can fix in what they passed, 1 for a run that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Parses the arguments, runs the command, reports an error in one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match &cli.command {
        Command::Run(args) => run::execute(args),
        Command::Bench(args) => bench::execute(args),
        Command::DurabilityProbe(args) => probe::execute(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = error.to_string().replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr, quiet unless `RUST_LOG` asks, so stdout stays the report.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
