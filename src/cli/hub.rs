//! `bftswarm hub --home DIR`: the supervisor of a swarm whose validators run
//! as separate processes (`bftswarm node`), listening for them over TCP. It
//! runs the validators its committee marks `in_process` itself (with the
//! config's `[[faults]]`), waits for the others to connect, optionally submits
//! a workload and reports like `run`, detections and replacements included.

use super::hub_record::HubRecord;
use super::report::{RunFacts, RunReport};
use super::run::{injected_agents, quarantine_policy, replacements_done, MEMBERSHIP_WAIT};
use super::testnet::HubCommittee;
use super::CliError;
use crate::actors::{ClientRun, DetectionRecord, LaunchOptions, MembershipChanged, Swarm, SwarmSpec, ValidatorStatus};
use crate::app::SignedTx;
use crate::config::SwarmConfig;
use crate::crypto::{Keypair, PublicKey};
use crate::daemon::relaunch::carry_on;
use crate::daemon::tasks::TaskWorkload;
use crate::faults::FaultType;
use crate::ledger::Ledger;
use crate::protocol::{AgentId, ClientId, Committee, Epoch, Member};
use crate::transport::{parse_public_key, Hub};
use crate::wal::WalOptions;
use actix::Actor;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  bftswarm hub --home testnet/hub\n  bftswarm hub --home testnet/hub --listen 0.0.0.0:7400 --transactions 10000 --exit-when-done --json"
)]
pub struct HubArgs {
    /// The hub's home, as `bftswarm testnet` writes it (config.toml, committee.toml, hub-key.pem).
    #[arg(long, value_name = "DIR")]
    pub home: PathBuf,
    /// Where to listen for validator processes [default: committee.toml's `listen`].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Once every validator process is connected, submit this many transfers and report.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub transactions: usize,
    /// Requests the client keeps in flight [default: the config's client.max_concurrent_requests].
    #[arg(long, value_name = "W")]
    pub window: Option<usize>,
    /// Seconds to wait for every validator process to connect.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub wait_secs: u64,
    /// Exit after the workload's report instead of serving until interrupted.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Serve /metrics (Prometheus), the dashboard (/dashboard) and the event stream (/v1/events) on this address, e.g. 127.0.0.1:9464 (port 0 picks one).
    #[arg(long, env = "BFTSWARM_HUB_METRICS_LISTEN", value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// How long validators may take to catch up with the f+1 that answered the client.
const SETTLE_WAIT: Duration = Duration::from_secs(20);

/// A hub home, loaded: the swarm to launch and who runs where.
pub struct HubSetup {
    pub cfg: SwarmConfig,
    pub committee: HubCommittee,
    pub hub_key: Keypair,
    /// Keys of the validators that run inside the hub, by committee index.
    local_keys: Vec<(usize, Keypair)>,
}

impl HubSetup {
    pub fn load(home: &Path) -> Result<HubSetup, CliError> {
        let config = home.join("config.toml");
        if !config.is_file() {
            return Err(CliError::Usage(format!(
                "{} is not a hub's home (no config.toml); write one with `bftswarm testnet --validators N --output DIR` and pass DIR/hub",
                home.display()
            )));
        }
        let cfg = SwarmConfig::load(Some(&config))?;
        let path = home.join("committee.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| usage(&path, e))?;
        let committee: HubCommittee = toml::from_str(&text).map_err(|e| usage(&path, e))?;
        if committee.validators.len() != cfg.validators() {
            return Err(CliError::Usage(format!(
                "{} names {} validators but config.toml says swarm.max_agents = {}; make them agree",
                path.display(),
                committee.validators.len(),
                cfg.validators()
            )));
        }
        let key = |path: PathBuf| Keypair::read_pem_file(&path).map_err(|e| CliError::Usage(e.to_string()));
        let hub_key = key(home.join("hub-key.pem"))?;
        let mut local_keys = Vec::new();
        for (index, entry) in committee.validators.iter().enumerate().filter(|(_, e)| e.in_process) {
            local_keys.push((index, key(home.join("keys").join(format!("{}-key.pem", entry.name)))?));
        }
        Ok(HubSetup { cfg, committee, hub_key, local_keys })
    }

    /// The standby validators' names and keys, in order.
    pub fn standby(&self) -> Result<Vec<(String, PublicKey)>, CliError> {
        let parse = |entry: &super::testnet::CommitteeEntry| {
            let key = parse_public_key(&entry.public_key)
                .map_err(|e| CliError::Usage(format!("committee.toml, standby {}: {e}", entry.name)))?;
            Ok((entry.name.clone(), key))
        };
        self.committee.standby.iter().map(parse).collect()
    }

    /// The swarm to launch, and the members that run in their own processes.
    pub fn spec(&self, genesis: Ledger) -> Result<(SwarmSpec, BTreeSet<AgentId>), CliError> {
        let mut members = Vec::new();
        let mut keys = Vec::new();
        let mut remote = BTreeSet::new();
        for (index, entry) in self.committee.validators.iter().enumerate() {
            let public_key = parse_public_key(&entry.public_key)
                .map_err(|e| CliError::Usage(format!("committee.toml, validator {}: {e}", entry.name)))?;
            let id = AgentId(index as u32);
            members.push(Member { id, name: entry.name.clone(), public_key });
            match self.local_keys.iter().find(|(i, _)| *i == index) {
                Some((_, keypair)) if keypair.public_key() == public_key => keys.push(keypair.clone()),
                Some(_) => {
                    return Err(CliError::Usage(format!("{}'s key file does not match committee.toml", entry.name)))
                }
                // Never used: the launch skips members that run elsewhere.
                None => {
                    remote.insert(id);
                    keys.push(Keypair::generate());
                }
            }
        }
        let committee = Committee::new(Epoch(0), members, Some(self.cfg.max_failures()))
            .map_err(crate::actors::SwarmError::from)?;
        let committee = committee.with_operator(self.hub_key.public_key());
        let params = crate::actors::params_from_config(&self.cfg);
        let genesis = crate::app::SwarmApp::new(genesis);
        let spec = SwarmSpec { committee, validator_keys: keys, params, genesis, operator: Some(self.hub_key.clone()) };
        Ok((spec, remote))
    }
}

impl HubSetup {
    /// How to launch the swarm's in-process part: `remote` members connect as
    /// node processes; a conviction leads to what `[detection]` says.
    pub fn launch_options(&self, remote: BTreeSet<AgentId>) -> LaunchOptions {
        let (name, quarantine) = (self.cfg.swarm.name.clone(), quarantine_policy(&self.cfg));
        LaunchOptions { name, external_validators: remote, quarantine, ..LaunchOptions::default() }
    }

    /// The config's `[[faults]]`, resolved to the validators that run inside
    /// the hub; a fault of a node process is refused (it belongs on its command line).
    pub fn in_process_faults(&self) -> Result<Vec<(AgentId, FaultType, f64, Duration)>, CliError> {
        let validators = &self.committee.validators;
        let resolve = |fault: &crate::config::FaultEntry| {
            let index = validators.iter().position(|entry| entry.name == fault.agent);
            let index =
                index.ok_or_else(|| CliError::Usage(format!("no validator {} in committee.toml", fault.agent)))?;
            if !validators[index].in_process {
                return Err(CliError::Usage(format!(
                    "{} runs as a node process; give its fault to that node (`bftswarm node … --fault {}`) instead of config.toml",
                    fault.agent, fault.fault_type
                )));
            }
            let fault_type = fault.fault_type.parse::<FaultType>().map_err(CliError::Usage)?;
            Ok((AgentId(index as u32), fault_type, fault.probability, Duration::from_millis(fault.after_ms)))
        };
        self.cfg.faults.iter().map(resolve).collect()
    }
}

fn usage(path: &Path, error: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("cannot read {}: {error}", path.display()))
}

pub fn execute(args: &HubArgs) -> Result<(), CliError> {
    let mut setup = HubSetup::load(&args.home)?;
    if args.transactions > 0 {
        setup.cfg.workload.transactions = super::run::transfers_to_submit("--transactions", args.transactions)?;
    }
    if let Some(window) = args.window {
        setup.cfg.client.max_concurrent_requests = window;
    }
    setup.cfg.validate()?;
    let (mut workload, genesis) = TaskWorkload::new(&setup.cfg).map_err(CliError::Usage)?;
    let (spec, remote) = setup.spec(genesis)?;
    let record = HubRecord::open(&args.home, &setup, &spec.committee)?;
    if record.changed_membership() && !setup.cfg.membership.is_empty() {
        // The plan counts transfers of one run; a hub started again does not make its changes twice.
        eprintln!(
            "this swarm's membership changed already (epoch {}): config.toml's [[membership]] changes are not made again",
            record.record.committees.len().saturating_sub(1)
        );
        setup.cfg.membership.clear();
    }
    let faults = setup.in_process_faults()?;
    let mut options = setup.launch_options(remote);
    // Like a node, the hub keeps a log for each validator it runs, so that it comes back whole.
    // A validator of a hub started again whose log is gone cannot prove what it signed: it rejoins passive.
    let wal = WalOptions::under_home(&args.home, setup.cfg.storage.fsync).of_a_swarm_that_ran(record.relaunched);
    options.wal = Some(wal);
    options.relaunch = record.relaunch(&args.home)?;
    options.journal = Some(record.book.clone());
    let pending = options.relaunch.as_ref().is_some_and(|relaunch| relaunch.pending);
    let listen = args.listen.clone().unwrap_or_else(|| setup.committee.listen.clone());
    let system = actix::System::new();
    let result = system.block_on(async {
        let hub = start(spec, options, setup.hub_key.clone(), &listen).await?;
        let swarm = hub.swarm();
        carry_on(swarm, &record.record, pending, MEMBERSHIP_WAIT);
        record.refused().into_iter().for_each(|(key, reason)| hub.refuse(key, reason));
        if let Some(listen) = &args.metrics_listen {
            serve_observation(&hub, listen, &args.home)?;
        }
        // A validator replaced since the config was written runs no more: its fault went with it.
        for (agent, fault_type, probability, after) in faults.into_iter().filter(|f| swarm.committee().contains(f.0)) {
            swarm.inject_fault(agent, fault_type, probability, after)?;
        }
        let addr_file = args.home.join("hub.addr");
        std::fs::write(&addr_file, hub.local_addr().to_string()).map_err(|e| usage(&addr_file, e))?;
        let nodes = record.nodes_to_wait_for().len();
        let epoch = swarm.committee().epoch().0;
        eprintln!("hub listening on {}; waiting for {nodes} validator processes (epoch {epoch})", hub.local_addr());
        let wait = Duration::from_secs(args.wait_secs);
        hub.wait_for_nodes(nodes, wait).await.map_err(|connected| {
            CliError::Usage(format!(
                "only {connected} of {nodes} validator processes connected within {} s; start them with `bftswarm node` (see start.sh)",
                args.wait_secs
            ))
        })?;
        eprintln!("all {nodes} validator processes connected");
        if args.transactions > 0 {
            let (transfers, overdrafts) = carry_on_workload(swarm, &mut workload, args.transactions, &setup.cfg).await;
            eprintln!("workload started: {} transfers", transfers.len());
            let committee = swarm.committee();
            let facts = RunFacts {
                swarm_name: setup.cfg.swarm.name.clone(),
                validators: committee.n(),
                max_failures: committee.f(),
                quorum: committee.quorum(),
                transfers_submitted: transfers.len(),
                expected_overdrafts: overdrafts,
                only_overdrafts_invalid: false,
            };
            let standby = record.standby(&setup)?;
            let (run, statuses, changes, detections) = submit(&hub, transfers, &setup.cfg, standby).await?;
            // After membership changes, the committee that ran last is the one to judge.
            let facts = match changes.last() {
                Some(last) => RunFacts { validators: last.validators, max_failures: last.max_failures, quorum: last.quorum, ..facts },
                None => facts,
            };
            let mut report = RunReport::build(&run, &statuses, &facts);
            report.membership_changes = changes;
            report.add_detections(detections, &byzantine_agents(&hub, &setup.cfg));
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?);
            } else {
                print!("{}", report.to_text());
            }
            if let Some(reason) = report.system_integrity.strip_prefix("violated: ") {
                return Err(CliError::Integrity(reason.to_string()));
            }
        }
        if !args.exit_when_done {
            eprintln!("serving; Ctrl-C stops the hub");
            tokio::signal::ctrl_c().await?;
        }
        Ok(())
    });
    // A stale address must not send nodes to a hub that is gone (best effort).
    let _ = std::fs::remove_file(args.home.join("hub.addr"));
    let _ = std::fs::remove_file(args.home.join("hub.http"));
    result
}

/// `count` transfers drawn from the funded accounts, each account's nonces
/// carrying on from the ledger (a hub started again finds them consumed up
/// to where its swarm got, once what its logs hold has executed); and how
/// many of them are overdrafts.
async fn carry_on_workload(
    swarm: &Swarm,
    workload: &mut TaskWorkload,
    count: usize,
    cfg: &SwarmConfig,
) -> (Vec<SignedTx>, usize) {
    let drain_limit = Duration::from_millis(cfg.consensus.view_change_timeout_ms.saturating_mul(4))
        .max(Duration::from_secs(10))
        .min(cfg.stall_limit());
    if !swarm.drain_in_flight(drain_limit).await {
        tracing::warn!(
            "work recovered from the logs is still in flight; the first transfers may find their nonces consumed"
        );
    }
    workload.carry_on_from(&swarm.next_nonces(workload.account_ids()).await);
    let (unsigned, overdrafts) = workload.draw(count);
    (crate::daemon::tasks::sign(&workload.accounts(), unsigned), overdrafts)
}

/// Serves the hub's metrics, dashboard and event stream on `listen`; writes
/// the address to `home/hub.http` for scripts and tests.
fn serve_observation(hub: &Hub, listen: &str, home: &Path) -> Result<(), CliError> {
    crate::observe::install();
    let observed = Arc::new(crate::observe::http::Observed::new("hub"));
    observed.set_swarm(Some(hub.swarm().clone()));
    let events = observed.events.clone();
    let stream = crate::observe::stream::EventLogHook(events).start();
    let kinds = crate::events::EventKinds::all();
    let subscribe = crate::hooks::Subscribe { name: "event-stream".into(), kinds, recipient: stream.recipient() };
    hub.swarm().hub().do_send(subscribe);
    let addr = crate::observe::http::serve(listen, observed).map_err(|e| {
        CliError::Usage(format!("cannot serve metrics on {listen}: {e}; pass another --metrics-listen"))
    })?;
    let file = home.join("hub.http");
    std::fs::write(&file, addr.to_string()).map_err(|e| usage(&file, e))?;
    eprintln!("hub metrics on http://{addr}/metrics, dashboard on http://{addr}/dashboard");
    Ok(())
}

/// The agents the config makes Byzantine and those whose node process says it runs with a fault.
fn byzantine_agents(hub: &Hub, cfg: &SwarmConfig) -> Vec<String> {
    let history = hub.swarm().committee_history();
    let name = |id: AgentId| history.iter().find_map(|committee| committee.member(id).map(|m| m.name.clone()));
    let declared = hub.declared_faulty().into_iter().filter_map(name);
    injected_agents(cfg).into_iter().chain(declared).collect()
}

/// Launches the swarm's in-process part and listens for the rest. Must run inside an actix System.
pub async fn start(spec: SwarmSpec, options: LaunchOptions, hub_key: Keypair, listen: &str) -> Result<Hub, CliError> {
    let swarm = Arc::new(Swarm::launch_with(spec, options)?);
    Hub::listen(swarm, hub_key, listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {listen}: {e}; pass another --listen")))
}

/// What a workload through the hub saw: the client's run, the validators'
/// settled statuses, the membership changes made meanwhile, the detection log.
pub type Submitted = (ClientRun, Vec<ValidatorStatus>, Vec<MembershipChanged>, Vec<DetectionRecord>);

/// Submits `transfers` through one client, makes the config's `[[membership]]`
/// changes meanwhile (adding `standby` validators first), waits for every
/// convicted agent's replacement, then for every validator to settle.
pub async fn submit(
    hub: &Hub,
    transfers: Vec<SignedTx>,
    cfg: &SwarmConfig,
    standby: Vec<(String, PublicKey)>,
) -> Result<Submitted, CliError> {
    let swarm = hub.swarm();
    let progress = Arc::new(AtomicU64::new(0));
    let (window, retry_ms) = (cfg.client.max_concurrent_requests, cfg.client.request_retry_ms);
    let stall_limit = cfg.stall_limit();
    let client =
        swarm.run_client_until_stalled(ClientId(0), transfers, (window, retry_ms), progress.clone(), stall_limit);
    let operator = super::hub_membership::operate(hub, &cfg.membership, standby, &progress);
    let (run, changes) = tokio::join!(client, operator);
    let (run, changes) = (super::run::stalled_as_cli_error(run)??, changes?);
    let detections = replacements_done(swarm, MEMBERSHIP_WAIT).await;
    Ok((run, swarm.settled_status(SETTLE_WAIT).await, changes, detections))
}
