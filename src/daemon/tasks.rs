//! `task orchestrate` in the daemon: the accounts the swarm's genesis funds,
//! transfers drawn from them task after task (each account's nonces carry on
//! from the last task), and what a task reports while it runs and at its end.

use crate::actors::ClientRun;
use crate::app::{SignedTx, Tx};
use crate::config::SwarmConfig;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger, TxId, TxOutcome};
use crate::rng::SeededRng;
use crate::workload::{sign_in_parallel, Workload, WorkloadSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Mixed into the workload seed so that task transfers never repeat the ids
/// a `bftswarm run` with the same seed would draw.
const TASK_DRAWS_LABEL: u64 = 0x7461_736b_7300;

/// The funded accounts and the next nonce of each.
pub struct TaskWorkload {
    accounts: Arc<Vec<Keypair>>,
    ids: Vec<AccountId>,
    nonces: Vec<u64>,
    rng: SeededRng,
    max_amount: u64,
    overdraft_ratio: f64,
    supply: u64,
    next_sender: usize,
    /// Set once the transfer ids come from a stream of this process's own.
    resumed: bool,
}

impl TaskWorkload {
    /// The config's accounts (`[workload]`), and the genesis ledger funding them.
    pub fn new(cfg: &SwarmConfig) -> Result<(TaskWorkload, Ledger), String> {
        let w = &cfg.workload;
        let spec = WorkloadSpec {
            seed: w.seed,
            accounts: w.accounts,
            transactions: 0,
            initial_balance: w.initial_balance,
            max_amount: w.max_amount,
            overdraft_ratio: w.overdraft_ratio,
        };
        let funded = Workload::generate(&spec);
        let genesis = Ledger::with_genesis(&funded.genesis).map_err(|e| format!("the genesis is invalid: {e}"))?;
        let ids: Vec<AccountId> = funded.genesis.iter().map(|(id, _)| *id).collect();
        let workload = TaskWorkload {
            nonces: vec![0; ids.len()],
            supply: w.initial_balance.saturating_mul(ids.len() as u64),
            ids,
            accounts: Arc::new(funded.accounts),
            rng: SeededRng::new(w.seed).fork(TASK_DRAWS_LABEL),
            max_amount: w.max_amount.max(1),
            overdraft_ratio: w.overdraft_ratio,
            next_sender: 0,
            resumed: false,
        };
        Ok((workload, genesis))
    }

    /// The next `count` transfers, unsigned (cheap: done under the daemon's
    /// lock so nonces never interleave), and how many are overdrafts.
    pub fn draw(&mut self, count: usize) -> (Vec<(usize, Tx)>, usize) {
        let accounts = self.ids.len();
        let mut overdrafts = 0;
        let transfers = (0..count)
            .map(|_| {
                let from = self.next_sender;
                self.next_sender = (from + 1) % accounts;
                let to = (from + 1 + self.rng.below(accounts as u64 - 1) as usize) % accounts;
                let overdraft = self.rng.chance(self.overdraft_ratio);
                overdrafts += overdraft as usize;
                let amount =
                    if overdraft { self.supply.saturating_add(1) } else { self.rng.between(1, self.max_amount) };
                let nonce = self.nonces[from];
                self.nonces[from] += 1;
                let id = TxId(self.rng.bytes());
                (from, Tx::transfer(id, self.ids[from], self.ids[to], amount, nonce))
            })
            .collect();
        (transfers, overdrafts)
    }

    /// The accounts whose next nonces [`TaskWorkload::carry_on_from`] needs.
    pub fn account_ids(&self) -> Vec<AccountId> {
        self.ids.clone()
    }

    /// Takes each account's next nonce from the swarm's ledger (in
    /// [`TaskWorkload::account_ids`]'s order) before a task draws: never from
    /// this process's memory, which a task that stalled, or a daemon killed
    /// mid-task, left ahead of what executed. Transfer ids come from a fresh
    /// stream once per process, since the draws of before a restart are not
    /// known and an id must never be reused.
    pub fn carry_on_from(&mut self, next_nonces: &[u64]) {
        self.nonces.iter_mut().zip(next_nonces).for_each(|(nonce, next)| *nonce = *next);
        if !self.resumed && next_nonces.iter().any(|&next| next > 0) {
            self.rng = self.rng.fork(uuid::Uuid::new_v4().as_u64_pair().0);
        }
        self.resumed = true;
    }

    pub fn accounts(&self) -> Arc<Vec<Keypair>> {
        self.accounts.clone()
    }
}

/// Signs drawn transfers with their senders' keys, on every core.
pub fn sign(accounts: &[Keypair], unsigned: Vec<(usize, Tx)>) -> Vec<SignedTx> {
    sign_in_parallel(accounts, unsigned)
}

/// What `task orchestrate` asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub task: String,
    pub strategy: String,
    pub priority: String,
    pub count: usize,
}

/// A task as the API shows it, while it runs and after.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub task_id: u64,
    pub task: String,
    pub strategy: String,
    pub priority: String,
    pub consensus: String,
    /// signing, running, done or failed.
    pub state: String,
    pub submitted: usize,
    pub completed: u64,
    pub committed: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub expected_overdrafts: usize,
    pub elapsed_ms: f64,
    pub throughput_tx_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskView {
    pub fn is_finished(&self) -> bool {
        self.state == "done" || self.state == "failed"
    }

    /// Fills in the outcome of a finished client run.
    pub fn finish(&mut self, run: &ClientRun) {
        for completion in &run.completions {
            match completion.outcome {
                TxOutcome::Committed => self.committed += 1,
                TxOutcome::Rejected(reason) => {
                    self.rejected += 1;
                    *self.rejected_by_reason.entry(reason.name().to_string()).or_default() += 1;
                }
            }
        }
        self.completed = run.completions.len() as u64;
        let mut latencies: Vec<u64> = run.completions.iter().map(|c| c.latency_us).collect();
        latencies.sort_unstable();
        let seconds = run.elapsed.as_secs_f64();
        self.elapsed_ms = (seconds * 1e4).round() / 10.0;
        self.throughput_tx_per_s = if seconds > 0.0 { (latencies.len() as f64 / seconds).round() } else { 0.0 };
        self.latency_ms_p50 = percentile_ms(&latencies, 0.50);
        self.latency_ms_p99 = percentile_ms(&latencies, 0.99);
        self.state = "done".into();
    }
}

fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let index = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    (sorted_us[index.min(sorted_us.len() - 1)] as f64 / 100.0).round() / 10.0
}

/// One task and its live completion counter.
pub struct TaskEntry {
    pub view: TaskView,
    pub progress: Arc<AtomicU64>,
}

impl TaskEntry {
    /// The view with the live counter folded in.
    pub fn snapshot(&self) -> TaskView {
        let mut view = self.view.clone();
        if !view.is_finished() {
            view.completed = self.progress.load(Ordering::Relaxed);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SwarmConfig {
        SwarmConfig::from_toml_str("[workload]\naccounts = 3\ninitial_balance = 100\nmax_amount = 5\n").unwrap()
    }

    #[test]
    fn nonces_carry_on_from_one_task_to_the_next() {
        let (mut workload, genesis) = TaskWorkload::new(&config()).unwrap();
        assert_eq!(genesis.total_supply(), 300);
        let (first, _) = workload.draw(4);
        let (second, _) = workload.draw(3);
        let nonces: Vec<(usize, u64)> = first.iter().chain(&second).map(|(from, t)| (*from, t.nonce)).collect();
        assert_eq!(nonces, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]);
        let mut ledger = genesis;
        let signed = sign(&workload.accounts(), first.into_iter().chain(second).collect());
        for transfer in &signed {
            assert!(transfer.verify());
            assert_eq!(ledger.execute(&transfer.tx), TxOutcome::Committed);
        }
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        assert_eq!(percentile_ms(&[1_000, 2_000, 3_000], 0.5), 2.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
