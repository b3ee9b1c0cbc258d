//! The swarm daemon: a long-running process that owns one swarm's home, its
//! registered agents, the running PBFT swarm once enough validators joined,
//! the memory store and the tasks; the control API ([`crate::api`]) is its
//! only door.
//!
//! Life of a swarm: `swarm init` writes the home and starts the daemon
//! (status `initializing`); `agent spawn` registers validators; when
//! `max_agents` of them are registered the daemon launches the swarm (status
//! `active`); `swarm stop` ends the daemon; `swarm start` brings it back from
//! the home, and the swarm launches at once because its committee is known;
//! its validators rebuild from their write-ahead logs in the home (unless
//! `swarm init --in-memory`).

pub mod book;
pub mod health;
pub mod home;
pub mod membership;
pub mod process;
pub mod registry;
pub mod relaunch;
pub mod tasks;
pub mod view_log;

mod agent_types;
mod config_change;
mod detection;
mod faults;
mod launch;
mod observer;
mod ops;
mod quorum;
mod spawn;
mod state;
mod swarm_accounts;
mod swarm_memory;
mod task_run;

pub use agent_types::agent_types;
pub use config_change::{ConfigChange, ConfigChanged};
pub use detection::{QuarantineRequest, QuarantineStarted};
pub use faults::{check_probability, parse_fault_type, FaultInjected, FaultRequest};
pub use ops::{ByzantineStatus, LatencyRow, SwarmInfo};
pub use quorum::QuorumRequest;
pub use spawn::{AgentRow, SpawnRequest};
pub use state::{Daemon, DaemonError, SwarmMeta};
pub use swarm_accounts::{parse_account, AccountView, CertifiedAccountView, Submitted};
pub use swarm_memory::{tx_id, value_of, CertifiedView, EntryView, Stored, DEFAULT_NAMESPACE};

use home::Home;
use process::PidLock;

/// The daemon's main: takes the pid lock, loads the home, serves the control
/// API until `swarm stop` or a signal, then cleans up.
pub fn run(home_dir: &std::path::Path) -> Result<(), String> {
    let home = Home::at(home_dir);
    if !home.is_initialized() {
        return Err(format!("{} is not a swarm home; create one with `bftswarm swarm init`", home.root().display()));
    }
    let lock = PidLock::acquire(&home).map_err(|e| e.to_string())?;
    let daemon = std::sync::Arc::new(Daemon::load(home.clone()).map_err(|e| e.to_string())?);
    // A home whose committee is known launches the swarm before the API
    // answers: a swarm that cannot come back (a damaged key, a log another
    // process holds) ends the daemon here, and `swarm start` says why.
    let result = actix_web::rt::System::new().block_on(async {
        crate::observe::install();
        let launched = daemon.launch_if_ready().await;
        launched.map_err(|e| format!("the swarm cannot be launched from its home: {e}"))?;
        crate::api::serve(daemon.clone()).await.map_err(|e| format!("the control API failed: {e}"))
    });
    let _ = std::fs::remove_file(home.addr());
    // The validators' logs and the memory store close before the pid lock is
    // released: a `swarm start` that sees the lock free can open them.
    daemon.shut_down();
    drop(daemon);
    let _ = std::fs::remove_file(home.pid());
    drop(lock);
    result
}
