//! The ledger from outside (`account show`, `tx submit`): an account's
//! balance and next nonce as f+1 validators agree on them, a certified answer
//! for the CLI to check offline, and a user's own signed transfer ordered
//! through consensus. The daemon checks the signature and relays; it never
//! holds the user's key.
//!
//! Freshness of a certified balance: the stable checkpoint's answer is
//! handed out when it equals what f+1 validators agree on now; otherwise the
//! daemon waits (ordering filler writes on an idle swarm, as the memory does)
//! for a checkpoint past the seq they have executed.

use super::state::{Daemon, DaemonError};
use super::swarm_memory::{agreed, best_certified, submit_as};
use crate::actors::Swarm;
use crate::app::{Op, SignedTx, SwarmApp};
use crate::ledger::{AccountId, TxId, TxOutcome};
use crate::protocol::{AgentId, ClientId, Seq};
use serde::Serialize;
use std::sync::Arc;

/// The client id of users' transfers: past the memory writer's (`1 << 31`),
/// far from the ids tasks count up from 1 and agents' spends count down from `u32::MAX`.
const OUTSIDE_CLIENT: ClientId = ClientId((1 << 31) + 1);

/// An account as f+1 validators agree on it.
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub account: String,
    /// The validator whose account it is, if any.
    pub name: Option<String>,
    pub balance: u64,
    pub next_nonce: u64,
    /// The highest seq among the validators that agree on it.
    pub executed_seq: u64,
}

/// A certified account answer for the CLI to check offline.
#[derive(Clone, Debug, Serialize)]
pub struct CertifiedAccountView {
    pub account: String,
    pub checkpoint_seq: u64,
    /// The [`crate::protocol::CertifiedAnswer`], postcard-encoded, in hex.
    pub certificate: String,
}

/// What a submitted transfer came to.
#[derive(Clone, Debug, Serialize)]
pub struct Submitted {
    pub tx_id: String,
    pub from: String,
    pub nonce: u64,
    /// "committed" or "rejected".
    pub outcome: &'static str,
    /// Why it was rejected (e.g. nonce-consumed, insufficient-funds).
    pub reason: Option<String>,
    /// The seq f+1 validators' replies named: the batch that executed it
    /// (refused before ordering: the seq they had executed).
    pub seq: u64,
    /// The validators whose ledger holds it as done (it, or a transfer
    /// before it, consumed its nonce), read after f+1 replied alike.
    pub validators: Vec<String>,
}

impl Daemon {
    /// `text` as an account: a validator's name, or a 64-hex-digit public key (`0x` optional).
    pub async fn resolve_account(&self, text: &str) -> Result<AccountId, DaemonError> {
        let swarm = self.running_swarm(&*self.state.lock().await)?;
        let members = swarm.committee_history();
        let named = members.iter().flat_map(|c| c.members()).find(|member| member.name == text);
        if let Some(member) = named {
            return Ok(AccountId(member.public_key));
        }
        parse_account(text).ok_or_else(|| {
            DaemonError::BadRequest(format!("{text} is neither a validator's name nor a 64-hex-digit public key"))
        })
    }

    /// Balance and next nonce of `account` as f+1 validators agree on them.
    pub async fn account_agreed(&self, account: AccountId) -> Result<AccountView, DaemonError> {
        let swarm = self.running_swarm(&*self.state.lock().await)?;
        let (seq, balance, next_nonce) = agreed_account(&swarm, account).await?;
        let name = swarm
            .committee()
            .members()
            .iter()
            .find(|member| member.public_key == account.0)
            .map(|member| member.name.clone());
        Ok(AccountView { account: account.to_string(), name, balance, next_nonce, executed_seq: seq.0 })
    }

    /// A certified answer for `account` that is as recent as what f+1 validators agree on.
    pub async fn account_certified(&self, account: AccountId) -> Result<CertifiedAccountView, DaemonError> {
        let (swarm, interval, settings) = {
            let state = self.state.lock().await;
            let cfg = &state.config;
            let settings = (cfg.client.request_retry_ms, cfg.stall_limit());
            (self.running_swarm(&state)?, (cfg.consensus.checkpoint_interval as u64).max(1), settings)
        };
        let query = SwarmApp::ledger_query(&account);
        let (seq, balance, next_nonce) = agreed_account(&swarm, account).await?;
        let current = best_certified(&swarm, &query).await.is_some_and(|answer| {
            crate::ledger::decode_balance(&answer.answer) == Some((balance, next_nonce)) && answer.seq <= seq
        });
        let wanted = if current { Seq(0) } else { seq };
        let answer = self.certified_past(&swarm, &query, wanted, interval, settings).await?;
        let certificate = crate::crypto::hex(&postcard::to_allocvec(&answer).unwrap_or_default());
        Ok(CertifiedAccountView { account: account.to_string(), checkpoint_seq: answer.seq.0, certificate })
    }

    /// Orders a user's signed transfer and returns what f+1 validators replied.
    pub async fn submit_transfer(&self, signed: SignedTx) -> Result<Submitted, DaemonError> {
        if !matches!(signed.tx.op, Op::Transfer(_)) {
            return Err(DaemonError::BadRequest("only ledger transfers can be submitted here".into()));
        }
        if !signed.verify() {
            return Err(DaemonError::BadRequest(format!(
                "the transfer's signature does not verify against its sender {}",
                signed.from()
            )));
        }
        let (swarm, settings) = {
            let state = self.state.lock().await;
            let cfg = &state.config;
            (self.running_swarm(&state)?, (cfg.client.request_retry_ms, cfg.stall_limit()))
        };
        let (id, from, nonce) = (signed.id(), signed.from(), signed.nonce());
        let completion = submit_as(OUTSIDE_CLIENT, &swarm, vec![signed], settings).await?;
        let (outcome, reason) = match completion.outcome {
            TxOutcome::Committed => ("committed", None),
            TxOutcome::Rejected(reason) => ("rejected", Some(reason.name().to_owned())),
        };
        Ok(Submitted {
            tx_id: crate::crypto::hex(&id.0),
            from: from.to_string(),
            nonce,
            outcome,
            reason,
            seq: completion.seq.0,
            validators: holding(&swarm, from, id, nonce).await,
        })
    }
}

/// The validators whose ledger now holds the transfer `id` at `nonce` as
/// done: it is `from`'s last transfer, or (refused before ordering) that
/// nonce was already consumed.
async fn holding(swarm: &Arc<Swarm>, from: AccountId, id: TxId, nonce: u64) -> Vec<String> {
    let members: Vec<(AgentId, String)> =
        swarm.committee().members().iter().map(|member| (member.id, member.name.clone())).collect();
    let done = swarm
        .read_replicas(move |replica| {
            let account = replica.app().ledger().account(&from);
            let last = account.last.is_some_and(|last| last.id == id);
            (replica.id(), last || account.next_nonce > nonce)
        })
        .await;
    let mut agents: Vec<AgentId> = done.into_iter().filter(|(_, done)| *done).map(|(agent, _)| agent).collect();
    agents.sort();
    let name = |agent: AgentId| members.iter().find(|(id, _)| *id == agent).map_or(agent.to_string(), |m| m.1.clone());
    agents.into_iter().map(name).collect()
}

/// A 64-hex-digit public key, `0x` optional.
pub fn parse_account(text: &str) -> Option<AccountId> {
    let bytes = crate::crypto::from_hex(text.strip_prefix("0x").unwrap_or(text))?;
    Some(AccountId(crate::crypto::PublicKey(bytes.try_into().ok()?)))
}

/// (seq, balance, next nonce) of `account` that f+1 validators agree on.
async fn agreed_account(swarm: &Arc<Swarm>, account: AccountId) -> Result<(Seq, u64, u64), DaemonError> {
    let read = move |replica: &crate::protocol::Replica<SwarmApp>| {
        let state = replica.app().ledger().account(&account);
        (state.balance, state.next_nonce)
    };
    let (balance, next_nonce) =
        agreed(swarm, read).await.ok_or_else(|| DaemonError::Internal("f+1 validators do not agree yet".into()))?;
    let seqs = swarm.read_replicas(|replica| replica.last_executed()).await;
    Ok((seqs.into_iter().max().unwrap_or(Seq(0)), balance, next_nonce))
}
