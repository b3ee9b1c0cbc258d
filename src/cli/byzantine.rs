//! `bftswarm byzantine …`: the tutorial's Byzantine group. Commands whose
//! runtime part is not built yet parse the tutorial's flags and say what is
//! missing in one line.

use super::connect::ConnectionArgs;
use super::keys::{self, DistributePubkeysArgs, GenerateKeypairArgs};
use super::output::{object_table, paint_status, print_json, print_line, table, OutputArgs};
use super::CliError;
use crate::daemon::{check_probability, parse_fault_type, ConfigChange};
use clap::ArgAction;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ByzantineArgs {
    #[command(subcommand)]
    pub command: ByzantineCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ByzantineCommand {
    /// Show or change the Byzantine parameters (live where safe; before the committee forms, all of them).
    #[command(
        after_help = "Examples:\n  bftswarm byzantine config --signature-algorithm ed25519 --verification-threshold 0.71 --view-change-timeout 5000 --checkpoint-interval 100 --max-concurrent-requests 50\n  bftswarm byzantine config --malicious-detection true --detection-strategy signature-mismatch --quarantine-duration 3600000\n  bftswarm byzantine config --json"
    )]
    Config(Box<ConfigArgs>),
    /// Write a fresh Ed25519 keypair as a PKCS#8 PEM file (mode 0600).
    GenerateKeypair(GenerateKeypairArgs),
    /// Announce the public keys of a key directory to every agent.
    DistributePubkeys(DistributePubkeysArgs),
    /// Consensus progress: view, primary, executed sequence, committed transfers, view changes.
    #[command(
        after_help = "Examples:\n  bftswarm byzantine status\n  bftswarm byzantine status --watch   # until Ctrl-C"
    )]
    Status {
        /// Keep printing changes until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// With --watch, at most one status line per this many milliseconds (it follows the event stream).
        #[arg(long, default_value_t = 500, value_name = "MS")]
        interval_ms: u64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Make a validator Byzantine (at most f of them).
    #[command(
        after_help = "Examples:\n  bftswarm byzantine inject-fault --agent bft-agent-5 --fault-type signature-corruption --probability 0.5\n  bftswarm byzantine inject-fault --agent bft-agent-1 --fault-type censorship --probability 1.0"
    )]
    InjectFault {
        #[arg(long, value_name = "NAME")]
        agent: String,
        /// signature-corruption, equivocation, censorship, silent or replay.
        #[arg(long, value_name = "TYPE")]
        fault_type: String,
        /// 0.0 to 1.0.
        #[arg(long, default_value_t = 1.0, value_name = "P")]
        probability: f64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The detector's convictions (one JSON line each); --watch follows the event stream for new ones,
    /// across daemon restarts.
    #[command(after_help = "Examples:\n  bftswarm byzantine detect-malicious --watch")]
    DetectMalicious {
        #[arg(long)]
        watch: bool,
        /// Ignored: --watch follows the event stream (kept so older scripts still parse).
        #[arg(long, default_value_t = 500, value_name = "MS", hide = true)]
        interval_ms: u64,
    },
    /// The detection log, newest last (JSON, the tutorial's shape).
    #[command(after_help = "Examples:\n  bftswarm byzantine detection-log --tail 20")]
    DetectionLog {
        /// Only the last N records.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// The tutorial's consensus-health object.
    #[command(
        after_help = "Examples:\n  bftswarm byzantine consensus-health\n  bftswarm byzantine consensus-health --json | jq .system_integrity"
    )]
    ConsensusHealth {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Which agents are healthy (`--json` has healthy_agents).
    #[command(after_help = "Examples:\n  HEALTHY=$(bftswarm byzantine health --json | jq '.healthy_agents')")]
    Health {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Change the committee's membership (not built yet: issue 3).
    #[command(
        after_help = "Examples:\n  bftswarm byzantine update-quorum --remove bft-agent-5,bft-agent-6 --add bft-agent-8,bft-agent-9"
    )]
    UpdateQuorum {
        /// Agents to remove, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        remove: Vec<String>,
        /// Agents to add, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "C,D")]
        add: Vec<String>,
    },
    /// Replace the primary now.
    #[command(after_help = "Examples:\n  bftswarm byzantine view-change --force")]
    ViewChange {
        /// Required: every validator suspects the primary at once.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Quarantine an agent now: the hub stops routing what it sends and a fresh validator replaces it.
    #[command(after_help = "Examples:\n  bftswarm byzantine quarantine --agent bft-agent-5 --duration 3600000")]
    Quarantine {
        #[arg(long, value_name = "NAME")]
        agent: String,
        /// Milliseconds.
        #[arg(long, value_name = "MS")]
        duration: u64,
    },
    /// The tutorial's clock synchronisation: not applicable (no wall clock in consensus).
    #[command(
        after_help = "Examples:\n  bftswarm byzantine sync-clocks --ntp-server pool.ntp.org   # explains why it does not apply"
    )]
    SyncClocks {
        #[arg(long, value_name = "HOST")]
        ntp_server: Option<String>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// Only ed25519.
    #[arg(long, value_name = "ALGORITHM")]
    pub signature_algorithm: Option<String>,
    /// Fraction of the validators that must agree, at least quorum/n (0.71 for 5 of 7).
    #[arg(long, value_name = "FRACTION")]
    pub verification_threshold: Option<f64>,
    /// Milliseconds a backup waits on a pending request before it asks for a new primary.
    #[arg(long, value_name = "MS")]
    pub view_change_timeout: Option<u64>,
    /// Sequence numbers between checkpoints.
    #[arg(long, value_name = "N")]
    pub checkpoint_interval: Option<usize>,
    /// Requests a task keeps outstanding at once (applied live, from the next task on).
    #[arg(long, value_name = "N")]
    pub max_concurrent_requests: Option<usize>,
    #[arg(long, action = ArgAction::Set, value_name = "true|false")]
    pub malicious_detection: Option<bool>,
    /// signature-mismatch, quorum-verification or transaction-log-verification.
    #[arg(long, value_name = "STRATEGY")]
    pub detection_strategy: Option<String>,
    /// Milliseconds a convicted agent stays quarantined.
    #[arg(long, value_name = "MS")]
    pub quarantine_duration: Option<u64>,
    /// Not applicable: Ed25519 signatures carry no timestamp.
    #[arg(long, value_name = "MS")]
    pub signature_tolerance: Option<u64>,
    /// Not applicable: PBFT's view change is the only one.
    #[arg(long, action = ArgAction::Set, value_name = "true|false")]
    pub fast_view_change: Option<bool>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn execute(args: &ByzantineArgs) -> Result<(), CliError> {
    let connection = &args.connection;
    match &args.command {
        ByzantineCommand::Config(config) => change_config(config, connection),
        ByzantineCommand::GenerateKeypair(generate) => keys::generate_keypair(generate),
        ByzantineCommand::DistributePubkeys(distribute) => keys::distribute_pubkeys(distribute, connection),
        ByzantineCommand::Status { watch: true, interval_ms, output } => super::watch::status(connection, *interval_ms, *output),
        ByzantineCommand::Status { watch: false, output, .. } => {
            show(&connection.client()?.get("/v1/byzantine/status")?, *output)
        }
        ByzantineCommand::InjectFault { agent, fault_type, probability, output } => {
            parse_fault_type(fault_type)?;
            check_probability(*probability)?;
            let request = json!({ "agent": agent, "fault_type": fault_type, "probability": probability });
            show(&connection.client()?.post("/v1/byzantine/faults", &request)?, *output)
        }
        ByzantineCommand::DetectMalicious { watch, .. } => detect_malicious(connection, *watch),
        ByzantineCommand::DetectionLog { tail } => {
            let path = format!("/v1/byzantine/detection-log?tail={}", tail.unwrap_or(usize::MAX));
            let log: Value = connection.client()?.get(&path)?;
            if log.as_array().is_some_and(Vec::is_empty) {
                eprintln!("note: nothing detected so far");
            }
            Ok(print_json(&log)?)
        }
        ByzantineCommand::ConsensusHealth { output } => {
            show(&connection.client()?.get("/v1/byzantine/consensus-health")?, *output)
        }
        ByzantineCommand::Health { output } => health(&connection.client()?.get("/v1/byzantine/health")?, *output),
        ByzantineCommand::UpdateQuorum { remove, add } => {
            if remove.is_empty() && add.is_empty() {
                return Err(CliError::Usage("say which agents to --remove and/or --add".into()));
            }
            // Ordered through consensus, effective at the next checkpoint: give it time.
            let client = connection.client()?.with_timeout(Duration::from_secs(90));
            let changed: Value = client.post("/v1/byzantine/update-quorum", &json!({ "remove": remove, "add": add }))?;
            Ok(print_json(&changed)?)
        }
        ByzantineCommand::ViewChange { force, output } => {
            if !force {
                return Err(CliError::Usage("say --force: a view change replaces the primary now".into()));
            }
            let client = connection.client()?.with_timeout(Duration::from_secs(120));
            show(&client.post("/v1/byzantine/view-change", &json!({}))?, *output)
        }
        ByzantineCommand::Quarantine { agent, duration } => {
            let most = crate::config::MAX_QUARANTINE_MS;
            if *duration > most {
                return Err(CliError::Usage(format!("--duration {duration} is longer than a year ({most} ms)")));
            }
            let request = json!({ "agent": agent, "duration_ms": duration });
            let started: Value = connection.client()?.post("/v1/byzantine/quarantine", &request)?;
            Ok(print_json(&started)?)
        }
        ByzantineCommand::SyncClocks { .. } => Err(CliError::Usage(
            "byzantine sync-clocks does not apply: consensus reads no wall clock (timeouts are local durations, signatures carry no timestamp), so there is nothing to synchronise and --ntp-server is not used".into(),
        )),
    }
}

/// Prints each detection once, as a JSON line; with `watch`, follows the event stream for new ones.
fn detect_malicious(connection: &ConnectionArgs, watch: bool) -> Result<(), CliError> {
    if watch {
        return super::watch::detections(connection);
    }
    let log: Value = connection.client()?.get("/v1/byzantine/detection-log")?;
    let records = log.as_array().cloned().unwrap_or_default();
    for record in &records {
        println!("{record}");
    }
    if records.is_empty() {
        eprintln!("note: nothing detected so far");
    }
    Ok(())
}

fn change_config(args: &ConfigArgs, connection: &ConnectionArgs) -> Result<(), CliError> {
    if args.signature_tolerance.is_some() {
        return Err(CliError::Usage(
            "--signature-tolerance does not apply: Ed25519 signatures carry no timestamp, so there is no clock skew to tolerate; nothing was changed".into(),
        ));
    }
    if args.fast_view_change.is_some() {
        return Err(CliError::Usage(
            "--fast-view-change does not apply: bftswarm runs PBFT's view change only; lower --view-change-timeout for a faster one; nothing was changed".into(),
        ));
    }
    let change = ConfigChange {
        signature_algorithm: args.signature_algorithm.clone(),
        verification_threshold: args.verification_threshold,
        view_change_timeout: args.view_change_timeout,
        checkpoint_interval: args.checkpoint_interval,
        max_concurrent_requests: args.max_concurrent_requests,
        malicious_detection: args.malicious_detection,
        detection_strategy: args.detection_strategy.clone(),
        quarantine_duration: args.quarantine_duration,
    };
    let client = connection.client()?;
    let unchanged =
        serde_json::to_value(&change).is_ok_and(|v| v.as_object().is_some_and(|o| o.values().all(Value::is_null)));
    let answer: Value = if unchanged {
        json!({ "config": client.get::<Value>("/v1/config")? })
    } else {
        client.post("/v1/config", &change)?
    };
    if args.output.json_by_default() {
        return Ok(print_json(&answer)?);
    }
    if let Some(changed) = answer["changed"].as_array() {
        let names: Vec<String> = changed.iter().map(super::output::scalar).collect();
        print_line(&format!("changed: {}", if names.is_empty() { "nothing".into() } else { names.join(", ") }))?;
    }
    for section in ["consensus", "client", "detection"] {
        print_line(&format!("[{section}]\n{}", object_table(&answer["config"][section])))?;
    }
    Ok(())
}

pub(super) fn show(value: &Value, output: OutputArgs) -> Result<(), CliError> {
    if output.json_by_default() {
        return Ok(print_json(value)?);
    }
    let mut shown = value.clone();
    for key in ["status", "system_integrity"] {
        if let Some(word) = value[key].as_str() {
            shown[key] = Value::String(paint_status(word));
        }
    }
    Ok(print_line(&object_table(&shown).to_string())?)
}

fn health(value: &Value, output: OutputArgs) -> Result<(), CliError> {
    if output.json_by_default() {
        return Ok(print_json(value)?);
    }
    let mut agents = table(&["agent", "healthy", "role", "view", "last executed", "injected fault"]);
    for agent in value["agents"].as_array().into_iter().flatten() {
        agents.add_row([
            super::output::scalar(&agent["name"]),
            super::output::scalar(&agent["healthy"]),
            super::output::scalar(&agent["role"]),
            super::output::scalar(&agent["view"]),
            super::output::scalar(&agent["last_executed"]),
            super::output::scalar(&agent["injected_fault"]),
        ]);
    }
    print_line(&agents.to_string())?;
    let status = paint_status(value["status"].as_str().unwrap_or("unknown"));
    Ok(print_line(&format!(
        "{status}: {} of {} agents healthy, quorum {} {}",
        value["healthy_agents"],
        value["total_agents"],
        value["quorum_threshold"],
        if value["quorum_met"] == Value::Bool(true) { "met" } else { "NOT met" }
    ))?)
}
