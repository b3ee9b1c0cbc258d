//! The client as a pure state machine: sends signed transfers to every
//! validator and keeps a window of them in flight, at most one per account (so nonces arrive in order), resends what
//! goes unanswered, and accepts an outcome on f+1 matching signed replies.

use super::committee::Committee;
use super::message::{Reply, Request};
use super::types::{AgentId, ClientId, Epoch, Micros, Seq};
use super::verify::Verifier;
use crate::app::SignedTx;
use crate::ledger::{AccountId, TxId, TxOutcome};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

pub enum ClientInput {
    Reply(Arc<Reply>),
    Tick,
}

#[derive(Clone, Debug)]
pub enum ClientOutput {
    /// Send these requests to every validator: the primary orders them, the
    /// backups verify their signatures before the pre-prepare arrives (so it
    /// costs them a lookup) and learn of requests a faulty primary ignores.
    /// Unanswered requests are sent again the same way.
    Broadcast(Vec<Request>),
    Completed(Completion),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub tx_id: TxId,
    pub outcome: TxOutcome,
    pub latency_us: u64,
    /// The seq the completing reply names: the batch that executed it (for
    /// a request refused before ordering, the replica's last executed one).
    pub seq: Seq,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    pub submitted: u64,
    pub completed: u64,
    pub resent: u64,
    pub replies_bad_signature: u64,
    /// Replies for transfers already accepted (the n - (f+1) that arrive late) or never sent.
    pub replies_after_completion: u64,
}

struct InFlight {
    request: Request,
    first_sent: Micros,
    last_sent: Micros,
    /// Each replica's outcome, per epoch of the reply: f+1 must agree within one epoch.
    votes: BTreeMap<(Epoch, AgentId), TxOutcome>,
}

pub struct ClientCore {
    id: ClientId,
    verifier: Verifier,
    waiting: VecDeque<SignedTx>,
    window: usize,
    retry_us: u64,
    in_flight: BTreeMap<TxId, InFlight>,
    busy_accounts: HashSet<AccountId>,
    next_retry_check: Option<Micros>,
    stats: ClientStats,
}

impl ClientCore {
    pub fn new(
        id: ClientId,
        committee: Committee,
        transfers: Vec<SignedTx>,
        window: usize,
        retry_us: u64,
    ) -> ClientCore {
        let verifier = Verifier::new(&committee, 0);
        ClientCore {
            id,
            verifier,
            waiting: transfers.into(),
            window: window.max(1),
            retry_us: retry_us.max(1),
            in_flight: BTreeMap::new(),
            busy_accounts: HashSet::new(),
            next_retry_check: None,
            stats: ClientStats::default(),
        }
    }

    pub fn step(&mut self, now: Micros, input: ClientInput) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        match input {
            ClientInput::Reply(reply) => self.on_reply(now, &reply, &mut out),
            ClientInput::Tick => self.resend_overdue(now, &mut out),
        }
        self.fill_window(now, &mut out);
        out
    }

    /// Accepts replies signed by `committee` from now on (after a membership change).
    pub fn learn_committee(&mut self, committee: &Committee) {
        self.verifier.learn(committee);
    }

    pub fn is_done(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    pub fn next_deadline(&self) -> Option<Micros> {
        self.next_retry_check.filter(|_| !self.in_flight.is_empty())
    }

    fn on_reply(&mut self, now: Micros, reply: &Reply, out: &mut Vec<ClientOutput>) {
        // Most replies arrive after f+1 others settled their transfers: skip the signature check then.
        if !reply.outcomes.iter().any(|(tx_id, _)| self.in_flight.contains_key(tx_id)) {
            self.stats.replies_after_completion += reply.outcomes.len() as u64;
            return;
        }
        if reply.client != self.id || !self.verifier.verify_reply(reply) {
            self.stats.replies_bad_signature += 1;
            return;
        }
        // f+1 members of the epoch that signed the reply: a batch executes in
        // one epoch at every replica, and replies of other epochs (a removed
        // member's among them) must not complete another epoch's count.
        let epoch = reply.epoch;
        let needed = self.verifier.committee(reply.epoch).map_or(usize::MAX, Committee::reply_quorum);
        for (tx_id, outcome) in &reply.outcomes {
            let Some(entry) = self.in_flight.get_mut(tx_id) else {
                self.stats.replies_after_completion += 1;
                continue;
            };
            entry.votes.entry((epoch, reply.replica)).or_insert(*outcome);
            let matching = entry
                .votes
                .range((epoch, AgentId(0))..=(epoch, AgentId(u32::MAX)))
                .filter(|(_, vote)| *vote == outcome)
                .count();
            if matching >= needed {
                if let Some(done) = self.in_flight.remove(tx_id) {
                    self.busy_accounts.remove(&done.request.tx.from());
                    self.stats.completed += 1;
                    let latency_us = now.saturating_sub(done.first_sent);
                    let completion = Completion { tx_id: *tx_id, outcome: *outcome, latency_us, seq: reply.seq };
                    out.push(ClientOutput::Completed(completion));
                }
            }
        }
    }

    /// Takes transfers in order, skipping (for now) those whose account already
    /// has one in flight; the scan is bounded so a long queue costs little.
    fn fill_window(&mut self, now: Micros, out: &mut Vec<ClientOutput>) {
        let scan_limit = self.window.max(64);
        let mut skipped = Vec::new();
        let mut requests = Vec::new();
        while self.in_flight.len() < self.window && skipped.len() < scan_limit {
            let Some(tx) = self.waiting.pop_front() else {
                break;
            };
            if !self.busy_accounts.insert(tx.from()) {
                skipped.push(tx);
                continue;
            }
            let request = Request { client: self.id, tx };
            let entry = InFlight { request: request.clone(), first_sent: now, last_sent: now, votes: BTreeMap::new() };
            self.in_flight.insert(request.tx_id(), entry);
            requests.push(request);
        }
        for tx in skipped.into_iter().rev() {
            self.waiting.push_front(tx);
        }
        if self.next_retry_check.is_none() {
            self.next_retry_check = Some(now.plus(self.retry_us));
        }
        if !requests.is_empty() {
            self.stats.submitted += requests.len() as u64;
            out.push(ClientOutput::Broadcast(requests));
        }
    }

    fn resend_overdue(&mut self, now: Micros, out: &mut Vec<ClientOutput>) {
        let Some(check) = self.next_retry_check else {
            return;
        };
        if now < check {
            return;
        }
        // Checked four times per retry period: a request waits at most 1.25 retry periods.
        self.next_retry_check = Some(now.plus((self.retry_us / 4).max(1)));
        let mut overdue = Vec::new();
        for entry in self.in_flight.values_mut() {
            if now.saturating_sub(entry.last_sent) >= self.retry_us {
                entry.last_sent = now;
                overdue.push(entry.request.clone());
            }
        }
        if !overdue.is_empty() {
            self.stats.resent += overdue.len() as u64;
            out.push(ClientOutput::Broadcast(overdue));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Tx;
    use crate::crypto::Keypair;
    use crate::ledger::RejectReason;
    use crate::protocol::{Member, Seq, View};

    fn member(i: u32) -> (Member, Keypair) {
        let key = Keypair::from_seed([i as u8 + 1; 32]);
        (Member { id: AgentId(i), name: format!("v{i}"), public_key: key.public_key() }, key)
    }

    /// Epoch 0 is {0,1,2,3}; epoch 1 removed 0 and added 4 (f = 1 in both).
    /// The removed member's old reply and one current liar agree on a false
    /// outcome: two replies, but never f+1 of one epoch; the honest epoch-1
    /// replies decide.
    #[test]
    fn replies_count_per_epoch_from_members_of_that_epoch() {
        let keys: Vec<(Member, Keypair)> = (0..5).map(member).collect();
        let committee = |epoch: u64, ids: [usize; 4]| {
            Committee::new(Epoch(epoch), ids.iter().map(|&i| keys[i].0.clone()).collect(), None).unwrap()
        };
        let owner = Keypair::from_seed([50; 32]);
        let from = crate::ledger::AccountId(owner.public_key());
        let tx = Tx::transfer(TxId([1; 16]), from, from, 1, 0).sign(&owner);
        let mut client = ClientCore::new(ClientId(0), committee(0, [0, 1, 2, 3]), vec![tx.clone()], 1, 1_000_000);
        client.learn_committee(&committee(1, [1, 2, 3, 4]));
        client.step(Micros(0), ClientInput::Tick);
        let lie = TxOutcome::Rejected(RejectReason::ZeroAmount);
        let reply = |epoch: u64, replica: usize, outcome: TxOutcome| {
            let outcomes = vec![(tx.id(), outcome)];
            let signed = Reply::sign(
                Epoch(epoch),
                AgentId(replica as u32),
                View(0),
                Seq(1),
                ClientId(0),
                outcomes,
                &keys[replica].1,
            );
            ClientInput::Reply(Arc::new(signed))
        };
        let completed = |out: Vec<ClientOutput>| {
            out.into_iter().find_map(|output| match output {
                ClientOutput::Completed(done) => Some(done.outcome),
                ClientOutput::Broadcast(_) => None,
            })
        };
        assert_eq!(completed(client.step(Micros(1), reply(0, 0, lie))), None);
        assert_eq!(completed(client.step(Micros(2), reply(1, 4, lie))), None, "a retired reply completed the count");
        assert_eq!(completed(client.step(Micros(3), reply(1, 0, lie))), None, "0 is no member of epoch 1");
        assert_eq!(completed(client.step(Micros(4), reply(1, 1, TxOutcome::Committed))), None);
        assert_eq!(completed(client.step(Micros(5), reply(1, 2, TxOutcome::Committed))), Some(TxOutcome::Committed));
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod lifecycle_tests;
