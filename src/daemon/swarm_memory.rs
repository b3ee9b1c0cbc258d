//! The swarm's replicated memory as the daemon serves it (`memory store`,
//! `retrieve`, `list`, `search`): a store is a memory put the daemon signs
//! with its writer key and submits through consensus like a task's transfer;
//! a read takes the answer f+1 validators agree on; a verified read hands out
//! a certified answer from the stable checkpoint, which the CLI checks
//! offline against the committee.
//!
//! Freshness of a verified read: certified answers come from the stable
//! checkpoint, every `checkpoint_interval` sequence numbers. When the key's
//! write lies above it and the swarm is idle, the daemon orders filler writes
//! (one key, `bftswarm/checkpoint-filler`, one batch each) up to the next
//! checkpoint boundary, then waits for that checkpoint to become stable. The
//! daemon is a client like any other here: it changes nothing in the replica.
//!
//! The writer key (`keys/memory-writer.pem`) is the daemon's own account: not
//! the operator key, so a leaked writer key cannot change the committee, and
//! not a validator's, so its memory nonces never mix with a validator's
//! transfers. Every entry records it as its writer.

use super::state::{Daemon, DaemonError};
use crate::actors::Swarm;
use crate::app::memory::{refusal_reason, Entry, MemoryQuery, MAX_LISTED};
use crate::app::{MemoryOp, Op, SignedTx, SwarmApp, Tx};
use crate::crypto::Keypair;
use crate::ledger::{AccountId, RejectReason, TxId, TxOutcome};
use crate::protocol::{verify_certified, CertifiedAnswer, ClientId, Committee, Completion, Replica, Seq};
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The namespace of a key given without `--namespace`.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Where the filler writes that advance an idle swarm to its next checkpoint go.
pub const FILLER_NAMESPACE: &str = "bftswarm";
pub const FILLER_KEY: &str = "checkpoint-filler";
const WRITER_KEY_FILE: &str = "memory-writer.pem";
/// The client id of the daemon's memory writes, halfway between the ids
/// tasks count up from 1 and the ids agents' own spends count down from
/// `u32::MAX` ([`crate::faults::spender_client`]): neither ever meets it.
const MEMORY_CLIENT: ClientId = ClientId(1 << 31);
/// How long a verified read waits for a checkpoint past the key's write.
const CERTIFY_WAIT: Duration = Duration::from_secs(20);

/// What a committed store answers.
#[derive(Clone, Debug, Serialize)]
pub struct Stored {
    pub namespace: String,
    pub key: String,
    pub stored: bool,
    /// Written through consensus (the daemon's local bookkeeping is not).
    pub replicated: bool,
    /// The sequence number whose batch wrote it.
    pub seq: u64,
    /// The sequence number at which it is gone, if it has a TTL.
    pub expires_at: Option<u64>,
    pub writer: String,
}

/// One agreed entry as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    pub namespace: String,
    pub key: String,
    pub value: serde_json::Value,
    pub seq: u64,
    pub expires_at: Option<u64>,
    pub writer: String,
}

/// A certified answer for the CLI to check offline.
#[derive(Clone, Debug, Serialize)]
pub struct CertifiedView {
    pub namespace: String,
    pub key: String,
    /// The stable checkpoint the answer is certified at.
    pub checkpoint_seq: u64,
    /// The [`CertifiedAnswer`], postcard-encoded, in hex.
    pub certificate: String,
}

impl EntryView {
    pub fn of(namespace: &str, key: &str, entry: &Entry) -> EntryView {
        EntryView {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value: value_of(&entry.value),
            seq: entry.written_at.0,
            expires_at: entry.expires_at.map(|at| at.0),
            writer: entry.writer.to_string(),
        }
    }
}

/// The JSON a value holds (the CLI stores JSON text); other bytes as a string.
pub fn value_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into()))
}

impl Daemon {
    pub(super) fn running_swarm(&self, state: &super::state::SwarmState) -> Result<Arc<Swarm>, DaemonError> {
        Ok(state.running()?.swarm.clone())
    }

    /// Orders a put of `value` (JSON text) under `namespace`/`key` and
    /// returns once f+1 validators replied that it committed.
    pub async fn memory_put(
        &self,
        namespace: &str,
        key: &str,
        value: &serde_json::Value,
        ttl_seqs: Option<u64>,
    ) -> Result<Stored, DaemonError> {
        let (swarm, settings) = {
            let state = self.state.lock().await;
            let cfg = &state.config;
            (self.running_swarm(&state)?, (cfg.client.request_retry_ms, cfg.stall_limit()))
        };
        let op = MemoryOp::Put {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value: value.to_string().into_bytes(),
            ttl: ttl_seqs,
        };
        let _one_writer = self.memory_writes.lock().await;
        let writer = self.memory_writer()?;
        let signed = self.sign_memory_ops(&swarm, &writer, vec![op]).await;
        let outcome = self.submit(&swarm, signed, settings).await?;
        if let TxOutcome::Rejected(reason) = outcome {
            return Err(DaemonError::BadRequest(format!("the swarm refused the write: {}", rejection(reason))));
        }
        let entry = agreed_entry(&swarm, namespace, key).await;
        let entry = entry.filter(|entry| entry.writer == AccountId(writer.public_key())).ok_or_else(|| {
            DaemonError::Internal("the write committed but f+1 validators do not agree on it yet".into())
        })?;
        Ok(Stored {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            stored: true,
            replicated: true,
            seq: entry.written_at.0,
            expires_at: entry.expires_at.map(|at| at.0),
            writer: entry.writer.to_string(),
        })
    }

    /// The entry f+1 validators agree on, if any.
    pub async fn memory_get(&self, namespace: &str, key: &str) -> Result<Option<EntryView>, DaemonError> {
        let swarm = self.running_swarm(&*self.state.lock().await)?;
        Ok(agreed_entry(&swarm, namespace, key).await.map(|entry| EntryView::of(namespace, key, &entry)))
    }

    /// Entries whose key starts with `prefix`, in `namespace` or (none) in
    /// every namespace, as f+1 validators agree on them; at most 1,000.
    pub async fn memory_list(&self, namespace: Option<&str>, prefix: &str) -> Result<Vec<EntryView>, DaemonError> {
        let swarm = self.running_swarm(&*self.state.lock().await)?;
        let (namespace, prefix) = (namespace.map(str::to_owned), prefix.to_owned());
        let listed = agreed(&swarm, move |replica| {
            let memory = replica.app().memory();
            let entries: Vec<(String, String, Entry)> = match &namespace {
                Some(ns) => memory.list(ns, &prefix).map(|(key, e)| (ns.clone(), key.to_owned(), e.clone())).collect(),
                None => memory
                    .entries()
                    .filter(|(_, key, _)| key.starts_with(prefix.as_str()))
                    .map(|(ns, key, e)| (ns.to_owned(), key.to_owned(), e.clone()))
                    .collect(),
            };
            entries.into_iter().take(MAX_LISTED).collect::<Vec<_>>()
        })
        .await;
        let listed = listed.unwrap_or_default();
        Ok(listed.iter().map(|(ns, key, entry)| EntryView::of(ns, key, entry)).collect())
    }

    /// A certified answer for `namespace`/`key` at a stable checkpoint at or
    /// past the key's agreed write, ordering filler writes on an idle swarm.
    pub async fn memory_certified(&self, namespace: &str, key: &str) -> Result<CertifiedView, DaemonError> {
        let (swarm, interval, settings) = {
            let state = self.state.lock().await;
            let cfg = &state.config;
            let settings = (cfg.client.request_retry_ms, cfg.stall_limit());
            (self.running_swarm(&state)?, (cfg.consensus.checkpoint_interval as u64).max(1), settings)
        };
        let wanted = agreed_entry(&swarm, namespace, key).await.map_or(Seq(0), |entry| entry.written_at);
        let query = SwarmApp::memory_query(&MemoryQuery::Get { namespace: namespace.to_owned(), key: key.to_owned() });
        let answer = self.certified_past(&swarm, &query, wanted, interval, settings).await?;
        let certificate = crate::crypto::hex(&postcard::to_allocvec(&answer).unwrap_or_default());
        Ok(CertifiedView {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            checkpoint_seq: answer.seq.0,
            certificate,
        })
    }

    /// A certified answer to `query` at a stable checkpoint at or past
    /// `wanted`, ordering filler writes up to the next boundary on an idle swarm.
    pub(super) async fn certified_past(
        &self,
        swarm: &Arc<Swarm>,
        query: &[u8],
        wanted: Seq,
        interval: u64,
        settings: (u64, Duration),
    ) -> Result<CertifiedAnswer, DaemonError> {
        let start = Instant::now();
        let mut filled = false;
        loop {
            if let Some(answer) = best_certified(swarm, query).await.filter(|answer| answer.seq >= wanted) {
                return Ok(answer);
            }
            if start.elapsed() >= CERTIFY_WAIT {
                return Err(DaemonError::Internal(format!(
                    "no checkpoint at or past seq {} became stable within {}s; try again",
                    wanted.0,
                    CERTIFY_WAIT.as_secs()
                )));
            }
            if !filled {
                self.fill_to_checkpoint(swarm, wanted, interval, settings).await?;
                filled = true;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Orders one filler write per sequence number from the last executed
    /// one up to the checkpoint boundary at or past `wanted` (an idle swarm
    /// makes one batch of each; a busy one gets there sooner).
    async fn fill_to_checkpoint(
        &self,
        swarm: &Arc<Swarm>,
        wanted: Seq,
        interval: u64,
        settings: (u64, Duration),
    ) -> Result<(), DaemonError> {
        let boundary = wanted.0.div_ceil(interval).max(1) * interval;
        let executed = swarm.read_replicas(|replica| replica.last_executed().0).await;
        let executed = executed.into_iter().max().unwrap_or(0);
        let fillers = boundary.saturating_sub(executed);
        if fillers == 0 {
            return Ok(());
        }
        let _one_writer = self.memory_writes.lock().await;
        let writer = self.memory_writer()?;
        let ops = (0..fillers).map(|n| MemoryOp::Put {
            namespace: FILLER_NAMESPACE.into(),
            key: FILLER_KEY.into(),
            value: (executed + n + 1).to_string().into_bytes(),
            ttl: None,
        });
        let signed = self.sign_memory_ops(swarm, &writer, ops.collect()).await;
        let (retry_ms, stall_limit) = settings;
        let progress = Arc::new(AtomicU64::new(0));
        let run = swarm.run_client_until_stalled(MEMORY_CLIENT, signed, (1, retry_ms), progress, stall_limit).await;
        run.map(|_| ()).map_err(|error| DaemonError::Internal(format!("ordering filler writes failed: {error}")))
    }

    /// Signs `ops` with consecutive nonces from the writer's next one, as f+1 validators know it.
    async fn sign_memory_ops(&self, swarm: &Arc<Swarm>, writer: &Keypair, ops: Vec<MemoryOp>) -> Vec<SignedTx> {
        let from = AccountId(writer.public_key());
        let mut nonces = swarm.read_replicas(move |replica| replica.app().memory().next_nonce(&from)).await;
        nonces.sort_unstable_by(|a, b| b.cmp(a));
        let f = swarm.committee().f();
        let first = nonces.get(f.min(nonces.len().saturating_sub(1))).copied().unwrap_or(0);
        ops.into_iter()
            .zip(first..)
            .map(|(op, nonce)| Tx { id: tx_id(&from, nonce), from, nonce, op: Op::Memory(op) }.sign(writer))
            .collect()
    }

    async fn submit(
        &self,
        swarm: &Arc<Swarm>,
        signed: Vec<SignedTx>,
        settings: (u64, Duration),
    ) -> Result<TxOutcome, DaemonError> {
        Ok(submit_as(MEMORY_CLIENT, swarm, signed, settings).await?.outcome)
    }

    /// The daemon's memory writer key, created on first use (0600, in `keys/`).
    fn memory_writer(&self) -> Result<Keypair, DaemonError> {
        let path = self.home.keys_dir().join(WRITER_KEY_FILE);
        if path.exists() {
            return Keypair::read_pem_file(&path).map_err(|e| DaemonError::Internal(e.to_string()));
        }
        let writer = Keypair::generate();
        let pem = writer.to_pkcs8_pem().map_err(|e| DaemonError::Internal(e.to_string()))?;
        super::home::write_private(&path, pem.as_bytes(), false)?;
        Ok(writer)
    }
}

/// Submits `signed` as `client` and returns the first completion: the
/// outcome f+1 validators replied alike, and the seq they named.
pub(super) async fn submit_as(
    client: ClientId,
    swarm: &Arc<Swarm>,
    signed: Vec<SignedTx>,
    (retry_ms, stall_limit): (u64, Duration),
) -> Result<Completion, DaemonError> {
    let progress = Arc::new(AtomicU64::new(0));
    let run = swarm.run_client_until_stalled(client, signed, (1, retry_ms), progress, stall_limit).await;
    let run = run.map_err(|error| DaemonError::Internal(format!("the request was not ordered: {error}")))?;
    run.completions.first().copied().ok_or_else(|| DaemonError::Internal("the request got no answer".into()))
}

/// A fresh id for the writer's write at `nonce`: unique even when a write
/// that was never ordered is signed again with its nonce.
pub fn tx_id(writer: &AccountId, nonce: u64) -> TxId {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let material = [&writer.0 .0[..], &nonce.to_le_bytes(), &now.as_nanos().to_le_bytes()].concat();
    let mut id = [0u8; 16];
    id.copy_from_slice(&crate::crypto::Digest::of(&material).0[..16]);
    TxId(id)
}

/// What a rejected write's reason means to its writer.
fn rejection(reason: RejectReason) -> String {
    match reason {
        RejectReason::Refused { code } => refusal_reason(code).to_owned(),
        other => other.name().to_owned(),
    }
}

/// The entry under `namespace`/`key` that f+1 validators agree on.
async fn agreed_entry(swarm: &Arc<Swarm>, namespace: &str, key: &str) -> Option<Entry> {
    let (namespace, key) = (namespace.to_owned(), key.to_owned());
    agreed(swarm, move |replica| replica.app().memory().get(&namespace, &key).cloned()).await.flatten()
}

/// What f+1 validators read alike with `read`; of several such answers, the
/// one read by the validator furthest ahead (a validator still executing
/// may hold an older answer, and f+1 of them may even agree on it).
pub(super) async fn agreed<R, F>(swarm: &Arc<Swarm>, read: F) -> Option<R>
where
    R: PartialEq + Send + 'static,
    F: Fn(&Replica<SwarmApp>) -> R + Clone + Send + 'static,
{
    let answers = swarm.read_replicas(move |replica| (replica.last_executed(), read(replica))).await;
    let vouched = swarm.committee().f() + 1;
    let backed = |answer: &R| answers.iter().filter(|(_, other)| other == answer).count() >= vouched;
    let best = (0..answers.len()).filter(|&i| backed(&answers[i].1)).max_by_key(|&i| answers[i].0)?;
    answers.into_iter().nth(best).map(|(_, answer)| answer)
}

/// The certified answer to `query` at the highest stable checkpoint any
/// validator holds, that checks against the committee of its epoch.
pub(super) async fn best_certified(swarm: &Arc<Swarm>, query: &[u8]) -> Option<CertifiedAnswer> {
    let query = query.to_vec();
    let answers = swarm.read_replicas(move |replica| replica.certified_query(&query)).await;
    let committees = swarm.committee_history();
    let checks = |answer: &CertifiedAnswer| {
        let epoch = answer.checkpoint.first().map(|vote| vote.epoch);
        let committee: Option<&Committee> = committees.iter().find(|c| Some(c.epoch()) == epoch);
        committee.is_some_and(|committee| verify_certified::<SwarmApp>(answer, committee).is_ok())
    };
    answers.into_iter().flatten().filter(checks).max_by_key(|answer| answer.seq)
}
