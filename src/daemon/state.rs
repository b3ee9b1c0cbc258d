//! The daemon's state: what it loaded from the home, the running swarm (once
//! launched), the tasks, and the error every operation answers with.

use super::book::MembershipBook;
use super::home::{read_json, Home, HomeError};
use super::tasks::{TaskEntry, TaskWorkload};
use crate::actors::{Swarm, ValidatorStatus};
use crate::config::SwarmConfig;
use crate::store::{MemoryStore, RedbOptions};
use actix::Arbiter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One line for the API's caller, and what kind of failure it is.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The request is wrong (a bad flag value, a missing key file).
    #[error("{0}")]
    BadRequest(String),
    /// A mutating request without the right bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// It names an agent, key or task that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It does not fit the swarm's state (not active yet, a task running, a name taken).
    #[error("{0}")]
    Conflict(String),
    /// The runtime part it needs is not built yet.
    #[error("{0}")]
    NotBuilt(String),
    #[error("{0}")]
    Internal(String),
}

impl From<HomeError> for DaemonError {
    fn from(error: HomeError) -> DaemonError {
        DaemonError::Internal(error.to_string())
    }
}

/// Who the swarm is (`swarm.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwarmMeta {
    pub swarm_id: String,
    pub created_at: String,
}

/// A launched swarm and what belongs to its life.
pub(super) struct Running {
    pub swarm: Arc<Swarm>,
    pub workload: TaskWorkload,
    /// Committee member names, in committee order (index = AgentId).
    pub names: Vec<String>,
    pub launched_at: String,
    /// Holds the view-change recorder and the observers; stopped with the swarm.
    pub agents_arbiter: Arbiter,
    /// Running observer agents, by name.
    pub observers: Vec<(String, super::observer::ObserverAddr)>,
}

impl Running {
    /// Stops the agents and the swarm and waits for their threads, so the
    /// validators' logs and the memory store are closed when it returns.
    pub fn stop(self) {
        let Running { swarm, agents_arbiter, observers, .. } = self;
        drop(observers);
        agents_arbiter.stop();
        if agents_arbiter.join().is_err() {
            tracing::warn!("the daemon's agents' thread panicked while stopping");
        }
        match Arc::try_unwrap(swarm) {
            Ok(swarm) => swarm.stop(),
            Err(_) => tracing::warn!("the swarm is still in use as the daemon stops: its threads end with the process"),
        }
    }
}

pub(super) struct SwarmState {
    pub config: SwarmConfig,
    pub meta: SwarmMeta,
    /// Who is in the swarm: the one record, shared with the running swarm.
    pub book: Arc<MembershipBook>,
    /// Names and public keys announced with `distribute-pubkeys`.
    pub pubkeys: BTreeMap<String, String>,
    pub running: Option<Running>,
    pub next_task_id: u64,
    /// The event stream and dashboard; told of each launched swarm.
    pub observed: Arc<crate::observe::http::Observed>,
}

/// Where the daemon keeps the id its next task takes, in the memory store.
pub(super) const NEXT_TASK_ID_KEY: &str = "daemon/next-task-id";

/// Everything the control API's handlers share.
pub struct Daemon {
    pub home: Home,
    pub token: String,
    pub pid: u32,
    pub started_at: String,
    /// What `/metrics`, `/dashboard` and `/v1/events` show.
    pub observed: Arc<crate::observe::http::Observed>,
    pub(super) state: tokio::sync::Mutex<SwarmState>,
    pub(super) memory: Arc<Mutex<MemoryStore>>,
    pub(super) tasks: Mutex<BTreeMap<u64, TaskEntry>>,
    /// Held while the daemon signs and orders replicated memory writes: one
    /// writer key, so one nonce sequence, written by one writer at a time.
    pub(super) memory_writes: tokio::sync::Mutex<()>,
    /// Stops the control API's server (`swarm stop`); set once it runs.
    pub stop_handle: std::sync::OnceLock<actix_web::dev::ServerHandle>,
}

impl Daemon {
    /// Reads the home: config, identity, agents, public keys, token and memory store.
    pub fn load(home: Home) -> Result<Daemon, DaemonError> {
        let config = SwarmConfig::load(Some(&home.config())).map_err(|e| DaemonError::Internal(e.to_string()))?;
        let meta: SwarmMeta = read_json(&home.swarm_meta())?
            .ok_or_else(|| DaemonError::Internal(format!("{} is missing", home.swarm_meta().display())))?;
        let book = Arc::new(MembershipBook::open(&home)?);
        let pubkeys = read_json(&home.pubkeys())?.unwrap_or_default();
        let token = home.read_token()?;
        if token.len() < 32 {
            return Err(DaemonError::Internal(format!("{} holds no usable token", home.token().display())));
        }
        let memory = MemoryStore::open(home.root(), RedbOptions::default())
            .map_err(|e| DaemonError::Internal(format!("cannot open the memory store: {e}")))?;
        // Task ids (and so the clients' ids) go on from the last daemon's: a
        // reply to a task of before a restart never counts for a new one.
        let next_task_id = match memory.retrieve(NEXT_TASK_ID_KEY) {
            Ok(value) => value.and_then(|value| value.as_u64()).unwrap_or(1).max(1),
            Err(error) => return Err(DaemonError::Internal(format!("cannot read the task counter: {error}"))),
        };
        let observed = Arc::new(crate::observe::http::Observed::new("daemon"));
        let state = SwarmState { config, meta, book, pubkeys, running: None, next_task_id, observed: observed.clone() };
        Ok(Daemon {
            home,
            token,
            pid: std::process::id(),
            started_at: crate::events::timestamp_now(),
            observed,
            state: tokio::sync::Mutex::new(state),
            memory: Arc::new(Mutex::new(memory)),
            tasks: Mutex::new(BTreeMap::new()),
            memory_writes: tokio::sync::Mutex::new(()),
            stop_handle: std::sync::OnceLock::new(),
        })
    }

    /// Stops the running swarm, once the control API has stopped serving.
    /// Call it outside the actix system.
    pub fn shut_down(&self) {
        // The dashboard's hold on the swarm goes first: the swarm stops only when it is the last.
        self.observed.set_swarm(None);
        let running = self.state.blocking_lock().running.take();
        if let Some(running) = running {
            running.stop();
        }
    }

    pub(super) fn memory(&self) -> MutexGuard<'_, MemoryStore> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn tasks(&self) -> MutexGuard<'_, BTreeMap<u64, TaskEntry>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Launches the swarm now if the home already names a whole committee
    /// (`swarm start` of a swarm that was active).
    pub async fn launch_if_ready(&self) -> Result<(), DaemonError> {
        let mut state = self.state.lock().await;
        super::launch::launch_if_ready(&mut state, &self.home, &self.memory)
    }
}

impl SwarmState {
    pub fn is_active(&self) -> bool {
        self.running.is_some()
    }

    /// The running swarm, or the error that says why there is none yet.
    pub fn running(&self) -> Result<&Running, DaemonError> {
        self.running.as_ref().ok_or_else(|| {
            let (joined, needed) = (self.book.read().members().len(), self.config.validators());
            DaemonError::Conflict(format!(
                "the swarm is still initializing: {joined} of {needed} validators have joined; spawn the rest with `bftswarm agent spawn --type validator`"
            ))
        })
    }

    /// The committee id of the member named `name`, or what became of it.
    pub fn member_id(&self, name: &str) -> Result<crate::protocol::AgentId, DaemonError> {
        let running = self.running()?;
        if let Some(member) = running.swarm.committee().members().iter().find(|member| member.name == name) {
            return Ok(member.id);
        }
        Err(not_a_member(&self.book.read(), name))
    }
}

/// Why `name` is not in the committee, from the record: quarantined and
/// replaced by whom in which epoch, removed, on standby, or never admitted.
pub(super) fn not_a_member(record: &super::membership::MembershipRecord, name: &str) -> DaemonError {
    match record.get(name) {
        Some(agent) => DaemonError::Conflict(format!(
            "{}; it is not in the committee (`bftswarm agent list` shows who is)",
            agent.departure()
        )),
        None => DaemonError::NotFound(format!("no agent {name} in this swarm; `bftswarm agent list` shows the agents")),
    }
}

/// The statuses of a running swarm, without holding the state's lock while waiting.
pub(super) async fn statuses(swarm: Arc<Swarm>) -> Vec<ValidatorStatus> {
    swarm.status().await
}
