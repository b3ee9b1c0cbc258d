//! Running a `task orchestrate` in the daemon: draw the transfers under the
//! lock, sign them off the API's threads, run the pre-task hooks, submit
//! through one client while the API reports progress, then post-task.
//! One task runs at a time.

use super::state::{Daemon, DaemonError};
use super::tasks::{sign, TaskEntry, TaskRequest, TaskView};
use crate::actors::Swarm;
use crate::protocol::ClientId;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Most transfers one task submits.
pub const MAX_TASK_COUNT: usize = 10_000_000;

/// What a task needs once it leaves the lock.
struct Launch {
    swarm: Arc<Swarm>,
    window: usize,
    retry_ms: u64,
    stall_limit: Duration,
}

impl Daemon {
    pub async fn start_task(self: &Arc<Self>, request: TaskRequest) -> Result<TaskView, DaemonError> {
        if !(1..=MAX_TASK_COUNT).contains(&request.count) {
            let count = request.count;
            return Err(DaemonError::BadRequest(format!("--count {count} is out of range; use 1 to {MAX_TASK_COUNT}")));
        }
        let mut state = self.state.lock().await;
        state.running()?;
        // Checked under the state's lock, so two concurrent starts cannot both pass.
        if let Some(busy) = self.tasks().values().find(|entry| !entry.view.is_finished()) {
            return Err(DaemonError::Conflict(format!(
                "task {} is still running ({} transfers); wait for it to finish",
                busy.view.task_id, busy.view.submitted
            )));
        }
        let cfg = state.config.clone();
        let Some(running) = state.running.as_mut() else {
            return Err(DaemonError::Internal("the swarm stopped".into()));
        };
        // A crashed daemon's last task may still be executing from the logs: its transfers consume nonces.
        // (After a restart that may take a view change; a quiet swarm answers at once.)
        let drain_limit = Duration::from_millis(cfg.consensus.view_change_timeout_ms.saturating_mul(4))
            .max(Duration::from_secs(10))
            .min(cfg.stall_limit());
        if !running.swarm.drain_in_flight(drain_limit).await {
            tracing::warn!("work recovered from the logs is still in flight; the task's first transfers may find their nonces consumed");
        }
        let next_nonces = running.swarm.next_nonces(running.workload.account_ids()).await;
        running.workload.carry_on_from(&next_nonces);
        let (unsigned, overdrafts) = running.workload.draw(request.count);
        let accounts = running.workload.accounts();
        let launch = Launch {
            swarm: running.swarm.clone(),
            window: cfg.client.max_concurrent_requests,
            retry_ms: cfg.client.request_retry_ms,
            stall_limit: cfg.stall_limit(),
        };
        let task_id = state.next_task_id;
        // Durable before the task's client exists: ids never repeat across restarts.
        let next = serde_json::Value::from(task_id + 1);
        self.memory()
            .store(super::state::NEXT_TASK_ID_KEY, &next, None)
            .map_err(|e| DaemonError::Internal(format!("cannot record the task counter: {e}")))?;
        state.next_task_id += 1;
        drop(state);
        let view = TaskView {
            task_id,
            task: request.task.clone(),
            strategy: request.strategy.clone(),
            priority: request.priority.clone(),
            consensus: "byzantine".into(),
            state: "signing".into(),
            submitted: request.count,
            expected_overdrafts: overdrafts,
            ..TaskView::default()
        };
        let progress = Arc::new(AtomicU64::new(0));
        self.tasks().insert(task_id, TaskEntry { view: view.clone(), progress: progress.clone() });
        let daemon = self.clone();
        actix_web::rt::spawn(async move {
            let signed = actix_web::rt::task::spawn_blocking(move || sign(&accounts, unsigned)).await;
            let result = match signed {
                Ok(transfers) => daemon.run_task(task_id, &request, transfers, launch, progress).await,
                Err(error) => Err(format!("signing the transfers failed: {error}")),
            };
            if let Err(error) = result {
                daemon.update_task(task_id, |view| {
                    view.state = "failed".into();
                    view.error = Some(error);
                });
            }
        });
        Ok(view)
    }

    async fn run_task(
        &self,
        task_id: u64,
        request: &TaskRequest,
        transfers: Vec<crate::app::SignedTx>,
        launch: Launch,
        progress: Arc<AtomicU64>,
    ) -> Result<(), String> {
        let name = format!("task-{task_id}");
        let description = format!("{} ({} priority, {} strategy)", request.task, request.priority, request.strategy);
        let swarm = launch.swarm;
        swarm.pre_task(&name, &description, transfers.len()).await.map_err(|e| e.to_string())?;
        self.update_task(task_id, |view| view.state = "running".into());
        // Each task its own client id: a reply to an earlier task never counts for this one.
        let client = ClientId(u32::try_from(task_id).unwrap_or(u32::MAX));
        let settings = (launch.window, launch.retry_ms);
        let run = swarm.run_client_until_stalled(client, transfers, settings, progress.clone(), launch.stall_limit);
        let run = run.await.map_err(|e| e.to_string())?;
        swarm.post_task(&name, &run).await.map_err(|e| e.to_string())?;
        self.update_task(task_id, |view| view.finish(&run));
        Ok(())
    }

    fn update_task(&self, task_id: u64, change: impl FnOnce(&mut TaskView)) {
        if let Some(entry) = self.tasks().get_mut(&task_id) {
            change(&mut entry.view);
        }
    }

    pub fn task(&self, task_id: u64) -> Result<TaskView, DaemonError> {
        let tasks = self.tasks();
        let entry = tasks.get(&task_id).ok_or_else(|| DaemonError::NotFound(format!("no task {task_id}")))?;
        Ok(entry.snapshot())
    }
}
