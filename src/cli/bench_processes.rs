//! `bftswarm bench --processes`: the same measurement with every validator in
//! a process of its own (`bftswarm node`), joined over loopback TCP to a hub
//! in the bench's process, which also runs the client.

use super::hub::{start, submit, HubSetup};
use super::CliError;
use crate::actors::{ClientRun, ValidatorStatus};
use crate::app::SignedTx;
use crate::config::SwarmConfig;
use crate::ledger::Ledger;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the node processes may take to connect.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// What one run saw, and the CPU time the node processes used.
pub struct ProcessRun {
    pub run: ClientRun,
    pub statuses: Vec<ValidatorStatus>,
    pub nodes_cpu: Duration,
}

/// Runs `transfers` against n = `cfg.validators()` node processes (write-ahead
/// logs without fsync, in a scratch directory removed afterwards).
pub fn run(cfg: &SwarmConfig, genesis: Ledger, transfers: Vec<SignedTx>) -> Result<ProcessRun, CliError> {
    let n = cfg.validators();
    let dir = std::env::temp_dir().join(format!("bftswarm-bench-{}-n{n}", std::process::id()));
    let _cleanup = RemoveOnDrop(dir.clone());
    let shape = super::testnet::Shape { validators: n, in_process: 0, standby: 0 };
    let testnet = super::testnet::write(&dir, shape, "127.0.0.1:0", true)?;
    let mut setup = HubSetup::load(&dir.join(&testnet.hub))?;
    setup.cfg = cfg.clone();
    let (spec, remote) = setup.spec(genesis)?;
    let binary = std::env::current_exe()?;
    let cpu_before = children_cpu_time();
    let (run, statuses) = actix::System::new().block_on(async {
        let hub = start(spec, setup.launch_options(remote), setup.hub_key.clone(), "127.0.0.1:0").await?;
        let address = hub.local_addr().to_string();
        let mut nodes = Nodes(Vec::new());
        for (_, home) in &testnet.nodes {
            nodes.0.push(spawn_node(&binary, &dir.join(home), &address)?);
        }
        hub.wait_for_nodes(n, CONNECT_WAIT).await.map_err(|connected| {
            CliError::TaskFailed(format!("only {connected} of {n} node processes connected within {CONNECT_WAIT:?}"))
        })?;
        let result = submit(&hub, transfers, cfg, Vec::new()).await.map(|(run, statuses, ..)| (run, statuses));
        drop(nodes);
        result
    })?;
    Ok(ProcessRun { run, statuses, nodes_cpu: children_cpu_time().saturating_sub(cpu_before) })
}

fn spawn_node(binary: &Path, home: &Path, hub: &str) -> Result<Child, CliError> {
    let child = Command::new(binary)
        .args(["node", "--no-fsync", "--hub", hub, "--home"])
        .arg(home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(child)
}

/// The node processes, killed and reaped (so their CPU time is counted) however the run ends.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// User plus system CPU time of every child process that has ended and been reaped.
fn children_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}
