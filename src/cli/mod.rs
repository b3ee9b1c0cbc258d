//! The command-line surface: `bftswarm <command> …`, mirroring the tutorial's
//! commands (one variant of [`Command`] each), and the mapping of errors to
//! one line on stderr and an exit code.

pub mod account;
pub mod agent;
pub mod bench;
mod bench_processes;
pub mod byzantine;
mod catch_up;
pub mod connect;
pub mod hub;
mod hub_membership;
mod hub_record;
pub mod keys;
pub mod memory;
pub mod network;
pub mod node;
pub mod output;
pub mod probe;
pub mod report;
pub mod run;
pub mod swarm;
pub mod task;
pub mod testnet;
mod watch;

use crate::actors::SwarmError;
use crate::api::client::ClientError;
use crate::config::ConfigError;
use crate::daemon::home::HomeError;
use crate::daemon::process::ProcessError;
use crate::daemon::DaemonError;
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "bftswarm",
    version,
    about = "An actor swarm whose validators agree under Byzantine faults (PBFT)",
    after_help = "Examples:\n  bftswarm run --config config/byzantine-7.toml          # a whole scenario in the foreground\n  bftswarm swarm init --topology star --consensus byzantine --max-agents 7 --max-failures 2\n  bftswarm agent spawn --count 7 --type validator        # the swarm becomes active\n  bftswarm task orchestrate --task payments --count 1000 --consensus byzantine\n  bftswarm byzantine consensus-health\n  bftswarm swarm stop\n  bftswarm testnet --validators 4 --output testnet && sh testnet/start.sh   # validators as separate processes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr as text (colour only on a terminal) or one JSON object each.
    #[arg(long, global = true, value_enum, env = "BFTSWARM_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::observe::logging::LogFormat,
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
    /// The swarm daemon: init, status, stop, start.
    Swarm(swarm::SwarmArgs),
    /// Byzantine fault tolerance: parameters, keys, faults, health, view changes.
    Byzantine(byzantine::ByzantineArgs),
    /// Spawn and list agents.
    Agent(agent::AgentArgs),
    /// Submit transfers through the swarm.
    Task(task::TaskArgs),
    /// The swarm's persistent memory store.
    Memory(memory::MemoryArgs),
    /// An account's balance and next nonce, optionally certified.
    Account(account::AccountArgs),
    /// Submit your own signed transfer.
    Tx(account::TxArgs),
    /// Latency to the agents.
    Network(network::NetworkArgs),
    /// The hub of a swarm whose validators run as separate processes: listens for `bftswarm node`.
    Hub(hub::HubArgs),
    /// One validator in its own process, joined to a hub over TCP.
    Node(node::NodeArgs),
    /// Write the homes, keys and start script of a swarm of separate processes.
    Testnet(testnet::TestnetArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  bftswarm completions bash > /etc/bash_completion.d/bftswarm\n  bftswarm completions zsh > ~/.zfunc/_bftswarm"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the daemon in the foreground (what `swarm init` and `swarm start` start).
    #[command(hide = true)]
    Daemon {
        #[arg(long, value_name = "DIR")]
        home: std::path::PathBuf,
    },
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
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{0}")]
    NotRunning(String),
    /// A part of the runtime the command needs is not built yet.
    #[error("{0}")]
    NotBuilt(String),
    #[error("{0}")]
    TaskFailed(String),
    #[error("{0}")]
    Daemon(String),
}

impl From<DaemonError> for CliError {
    fn from(error: DaemonError) -> CliError {
        match error {
            DaemonError::NotBuilt(message) => CliError::NotBuilt(message),
            DaemonError::BadRequest(message) | DaemonError::NotFound(message) => CliError::Usage(message),
            other => CliError::Daemon(other.to_string()),
        }
    }
}

impl CliError {
    /// 2 for a mistake the user can fix in what they passed, 1 for a run that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Home(HomeError::Exists { .. } | HomeError::Symlink { .. }) => 2,
            CliError::Process(ProcessError::AlreadyRunning { .. }) => 2,
            CliError::Api(error) => error.exit_code(),
            _ => 1,
        }
    }
}

/// Parses the arguments, runs the command, reports an error in one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let result = match &cli.command {
        Command::Run(args) => run::execute(args),
        Command::Bench(args) => bench::execute(args),
        Command::DurabilityProbe(args) => probe::execute(args),
        Command::Swarm(args) => swarm::execute(args),
        Command::Byzantine(args) => byzantine::execute(args),
        Command::Agent(args) => agent::execute(args),
        Command::Task(args) => task::execute(args),
        Command::Memory(args) => memory::execute(args),
        Command::Account(args) => account::execute_account(args),
        Command::Tx(args) => account::execute_tx(args),
        Command::Network(args) => network::execute(args),
        Command::Hub(args) => hub::execute(args),
        Command::Node(args) => node::execute(args),
        Command::Testnet(args) => testnet::execute(args),
        Command::Completions { shell } => print_completions(*shell),
        Command::Daemon { home } => crate::daemon::run(home).map_err(CliError::Daemon),
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

/// Prints the completion script; a reader that closes the pipe early
/// (`completions zsh | head`) has what it wanted: no error.
fn print_completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "bftswarm", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(error)),
        _ => Ok(()),
    }
}

/// Logs go to stderr, so stdout stays the report: the long-running processes
/// (daemon, hub, node) say what happens (`info`), the others only warnings,
/// unless `RUST_LOG` asks otherwise.
fn init_tracing(cli: &Cli) {
    let level = match cli.command {
        Command::Daemon { .. } | Command::Hub(_) | Command::Node(_) => "info",
        _ => "warn",
    };
    crate::observe::logging::init(cli.log_format, level);
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_tutorials_commands_parse_with_its_flags() {
        for line in [
            "swarm init --topology star --consensus byzantine --max-agents 7 --max-failures 2",
            "byzantine config --malicious-detection true --detection-strategy signature-mismatch --quarantine-duration 3600000",
            "byzantine update-quorum --remove bft-agent-5,bft-agent-6 --add bft-agent-8,bft-agent-9",
            "byzantine quarantine --agent bft-agent-5 --duration 3600000",
            "byzantine sync-clocks --ntp-server pool.ntp.org",
            "byzantine config --signature-tolerance 5000",
            "byzantine config --fast-view-change true",
            "agent spawn --count 2 --type validator",
            "network latency --all-agents",
        ] {
            let args = std::iter::once("bftswarm").chain(line.split(' '));
            if let Err(error) = Cli::try_parse_from(args) {
                panic!("`{line}` does not parse: {error}");
            }
        }
    }
}
