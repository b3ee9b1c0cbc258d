//! Checks everything that arrives from outside before the replica sees it:
//! consensus signatures against the committee, a pre-prepare's batch against its
//! digest, client signatures in batches (batch-verified), and replies.
//!
//! Pure computation, shared by the actor shell and the simulation, so both run
//! the same checks. Byzantine input is not an error path for the caller: a
//! [`Rejection`] is counted and, where it proves something, becomes evidence.

use super::committee::Committee;
use super::epoch_starts::StartVouches;
use super::membership::{checkpoint_digest, SignedMembershipChange};
use super::message::{Message, PreparedCertificate, Reply, Request, SignedMessage};
use super::types::{AgentId, Epoch, Seq, View};
use super::view_change::{enough_view_changes, plan_new_view};
use crate::crypto::Digest;
use crate::crypto::{verify_batch, Signature};
use crate::ledger::AccountId;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("message for epoch {received}, expected {expected}")]
    WrongEpoch { expected: Epoch, received: Epoch },
    #[error("sender {0} is not in the committee")]
    UnknownSender(AgentId),
    #[error("bad signature from {0}")]
    BadSignature(AgentId),
    #[error("pre-prepare from {0} carries a batch that does not match its digest")]
    BatchDigestMismatch(AgentId),
    #[error("pre-prepare from {sender} carries {size} requests, more than {max}")]
    BatchTooLarge { sender: AgentId, size: usize, max: usize },
    #[error("pre-prepare from {sender} carries a request with an invalid client signature (index {index})")]
    InvalidClientSignature { sender: AgentId, index: usize },
    #[error("state snapshot from {0} is not proven by a quorum of checkpoint signatures over its digest")]
    UnprovenSnapshot(AgentId),
    #[error("state snapshot from {0} is proven by an epoch whose start f+1 members of the newest epoch have not yet vouched for")]
    UnvouchedEpochStarts(AgentId),
    #[error("view-change from {0} carries an invalid checkpoint proof or prepared certificate")]
    InvalidViewChange(AgentId),
    #[error("new-view from {0} is not backed by a quorum of valid view-changes or does not match them")]
    InvalidNewView(AgentId),
    #[error("pre-prepare from {0} carries a membership change the operator did not sign")]
    UnsignedMembershipChange(AgentId),
}

/// Caches decompressed keys (decompression costs a third of a verification)
/// and remembers what it verified: a client request seen before its
/// pre-prepare, or a message retransmitted, costs a hash instead of signatures.
pub struct Verifier {
    /// The committee of every epoch this verifier knows, with decompressed keys.
    epochs: BTreeMap<Epoch, EpochKeys>,
    accounts: HashMap<AccountId, Option<VerifyingKey>>,
    max_batch_size: usize,
    verified: RecentDigests,
    /// Where epochs start, as peers vouch for it (a joiner is not told).
    starts: StartVouches,
}

#[derive(Clone)]
struct EpochKeys {
    committee: Committee,
    keys: BTreeMap<AgentId, VerifyingKey>,
}

impl EpochKeys {
    fn new(committee: &Committee) -> EpochKeys {
        let keys =
            committee.members().iter().filter_map(|m| m.public_key.verifying_key().map(|key| (m.id, key))).collect();
        EpochKeys { committee: committee.clone(), keys }
    }
}

type Epochs = BTreeMap<Epoch, EpochKeys>;

/// Bound of the account key cache; it is cleared when full (keys are cheap to redo).
const ACCOUNT_CACHE_LIMIT: usize = 1 << 20;

/// How many verified requests and messages are remembered: several windows of
/// the largest batches.
const VERIFIED_MEMORY: usize = 1 << 16;

/// A bounded set of digests that forgets the oldest first.
struct RecentDigests {
    seen: HashSet<Digest>,
    order: VecDeque<Digest>,
}

impl RecentDigests {
    fn contains(&self, digest: &Digest) -> bool {
        self.seen.contains(digest)
    }

    fn insert(&mut self, digest: Digest) {
        if self.seen.insert(digest) {
            self.order.push_back(digest);
        }
        while self.order.len() > VERIFIED_MEMORY {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
    }
}

/// Identifies a verified message: its signed bytes (type, epoch, sender, view,
/// sequence, digest) and its signature.
fn message_key(signed: &SignedMessage) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bftswarm/verified-message/v1");
    hasher.update(&signed.signing_bytes());
    hasher.update(&signed.signature.0);
    Digest(*hasher.finalize().as_bytes())
}

impl Verifier {
    pub fn new(committee: &Committee, max_batch_size: usize) -> Verifier {
        Verifier {
            epochs: BTreeMap::from([(committee.epoch(), EpochKeys::new(committee))]),
            accounts: HashMap::new(),
            max_batch_size,
            verified: RecentDigests { seen: HashSet::new(), order: VecDeque::new() },
            starts: StartVouches::default(),
        }
    }

    /// Knows `committee` from now on: messages of its epoch verify against it.
    /// The replica reports each committee it moves to; a joining validator is
    /// given the history.
    pub fn learn(&mut self, committee: &Committee) {
        let known = self.epochs.entry(committee.epoch()).or_insert_with(|| EpochKeys::new(committee));
        // The same committee learned again once its start is known (a joiner
        // may be handed a committee before the checkpoint that starts it).
        if known.committee.starts_after() == Seq(0) && committee.starts_after() != Seq(0) {
            *known = EpochKeys::new(committee);
        }
    }

    /// The committee of `epoch`, if known.
    pub fn committee(&self, epoch: Epoch) -> Option<&Committee> {
        self.epochs.get(&epoch).map(|known| &known.committee)
    }

    /// Every committee this verifier knows, oldest epoch first.
    pub fn committees(&self) -> impl Iterator<Item = &Committee> {
        self.epochs.values().map(|known| &known.committee)
    }

    /// The newest committee this verifier knows.
    pub fn latest_committee(&self) -> Option<&Committee> {
        self.epochs.values().next_back().map(|known| &known.committee)
    }

    /// A membership change signed by the operator of the newest known committee.
    pub fn verify_membership(&self, change: &SignedMembershipChange) -> bool {
        self.latest_committee().and_then(Committee::operator).is_some_and(|operator| change.verify(&operator))
    }

    pub fn verify_message(&mut self, signed: &SignedMessage) -> Result<(), Rejection> {
        // Only messages whose signature covers all they carry (a pre-prepare's
        // batch is re-checked below) are taken from memory. A snapshot's ledger, or
        // the batches inside a view change's certificates, are not signed by the
        // sender: those messages are always checked in full (they are rare).
        let cacheable = !matches!(
            signed.message,
            Message::StateSnapshot { .. } | Message::ViewChange { .. } | Message::NewView { .. }
        );
        let key = message_key(signed);
        if cacheable && self.verified.contains(&key) {
            // The signature covers a pre-prepare's digest, not its batch: check the batch again.
            return match &signed.message {
                Message::PrePrepare { digest, batch, .. } if batch.digest() != *digest => {
                    Err(Rejection::BatchDigestMismatch(signed.sender))
                }
                _ => Ok(()),
            };
        }
        self.verify_uncached(signed)?;
        if cacheable {
            self.verified.insert(key);
        }
        Ok(())
    }

    fn verify_uncached(&mut self, signed: &SignedMessage) -> Result<(), Rejection> {
        if matches!(signed.message, Message::StateSnapshot { .. }) {
            return self.verify_snapshot(signed);
        }
        check_signature(&self.epochs, signed)?;
        if let Message::PrePrepare { digest, batch, .. } = &signed.message {
            if batch.requests.len() > self.max_batch_size {
                let (size, max) = (batch.requests.len(), self.max_batch_size);
                return Err(Rejection::BatchTooLarge { sender: signed.sender, size, max });
            }
            if batch.digest() != *digest {
                return Err(Rejection::BatchDigestMismatch(signed.sender));
            }
            if let Some(index) = self.first_invalid_request(&batch.requests) {
                return Err(Rejection::InvalidClientSignature { sender: signed.sender, index });
            }
            let operator = self.committee(signed.epoch).and_then(Committee::operator);
            if let Some(change) = &batch.membership {
                if !operator.is_some_and(|operator| change.verify(&operator)) {
                    return Err(Rejection::UnsignedMembershipChange(signed.sender));
                }
            }
        }
        match &signed.message {
            Message::ViewChange { .. } if !valid_view_change_content(&self.epochs, signed) => {
                Err(Rejection::InvalidViewChange(signed.sender))
            }
            Message::NewView { view, view_changes, pre_prepares }
                if !valid_new_view(&self.epochs, signed, *view, view_changes, pre_prepares) =>
            {
                Err(Rejection::InvalidNewView(signed.sender))
            }
            _ => Ok(()),
        }
    }

    /// A snapshot may come from an epoch this verifier has not seen: its
    /// membership history, signed by the operator, says who signs there. Where
    /// those epochs start is only the sender's word, a vouch (see
    /// [`super::epoch_starts`]); the proof is checked against the starts this
    /// verifier knows or f+1 members of the newest epoch vouched for.
    fn verify_snapshot(&mut self, signed: &SignedMessage) -> Result<(), Rejection> {
        let Message::StateSnapshot { seq, state_digest, state, membership, proof } = &signed.message else {
            return Ok(());
        };
        let unproven = Rejection::UnprovenSnapshot(signed.sender);
        let Some(first) = self.epochs.values().next().map(|known| known.committee.clone()) else {
            return Err(unproven);
        };
        let presented = membership.committees(&first).unwrap_or_default();
        let mut shown = self.epochs.clone();
        for committee in &presented {
            shown.entry(committee.epoch()).or_insert_with(|| EpochKeys::new(&committee.clone().starting_after(Seq(0))));
        }
        check_signature(&shown, signed)?;
        if checkpoint_digest(state.root(), membership) != *state_digest {
            return Err(unproven);
        }
        // The sender signed the digest, which covers the starts of its history.
        let starts = presented.iter().skip(1).take_while(|c| c.epoch() <= signed.epoch).map(Committee::starts_after);
        self.starts.vouch(signed.sender, signed.epoch, starts.collect());
        let newest_known = self.epochs.keys().next_back().copied().unwrap_or_default();
        let vouched = self.starts.vouched(newest_known, |epoch| shown.get(&epoch).map(|known| &known.committee));
        if let Some((through, starts)) = vouched {
            for (committee, start) in presented.iter().skip(1).zip(starts).filter(|(c, _)| c.epoch() <= through) {
                let known = self.epochs.entry(committee.epoch()).or_insert_with(|| EpochKeys::new(committee));
                if known.committee.starts_after() == Seq(0) {
                    *known = EpochKeys::new(&committee.clone().starting_after(start));
                }
            }
        }
        if !proves_checkpoint(&self.epochs, *seq, *state_digest, proof) {
            let undecided = self.epochs.values().skip(1).any(|known| known.committee.starts_after() == Seq(0))
                || presented.last().is_some_and(|newest| !self.epochs.contains_key(&newest.epoch()));
            return Err(if undecided { Rejection::UnvouchedEpochStarts(signed.sender) } else { unproven });
        }
        // Proven by the committee in force at `seq`: its history, starts included, is the swarm's.
        presented.iter().for_each(|committee| self.learn(committee));
        Ok(())
    }

    /// Splits client requests into those with valid signatures and the rest,
    /// and remembers the valid ones for the pre-prepare that will carry them.
    pub fn verify_requests(&mut self, requests: Vec<Request>) -> (Vec<Request>, Vec<Request>) {
        if self.first_invalid_request(&requests).is_none() {
            return (requests, Vec::new());
        }
        let (valid, invalid): (Vec<Request>, Vec<Request>) =
            requests.into_iter().partition(|request| self.verify_one(request));
        for request in &valid {
            self.verified.insert(request.tx.digest());
        }
        (valid, invalid)
    }

    pub fn verify_reply(&self, reply: &Reply) -> bool {
        self.epochs
            .get(&reply.epoch)
            .and_then(|known| known.keys.get(&reply.replica))
            .is_some_and(|key| reply.signature.verify(key, &reply.signing_bytes()))
    }

    /// Batch-verifies the requests not verified before and remembers them when
    /// all are valid; only when the batch fails are signatures checked one by one.
    fn first_invalid_request(&mut self, requests: &[Request]) -> Option<usize> {
        let mut unverified = Vec::with_capacity(requests.len());
        let mut digests = Vec::with_capacity(requests.len());
        let mut keys = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            let digest = request.tx.digest();
            if self.verified.contains(&digest) {
                continue;
            }
            digests.push(digest);
            match self.account_key(&request.tx.from()) {
                Some(key) => keys.push(key),
                None => return Some(index),
            }
            unverified.push(index);
        }
        let messages: Vec<Vec<u8>> = unverified.iter().map(|&i| requests[i].tx.tx.signing_bytes()).collect();
        let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = unverified.iter().map(|&i| requests[i].tx.signature).collect();
        if verify_batch(&message_refs, &signatures, &keys) {
            for digest in digests {
                self.verified.insert(digest);
            }
            return None;
        }
        (0..unverified.len()).find(|&j| !signatures[j].verify(&keys[j], &messages[j])).map(|j| unverified[j])
    }

    fn verify_one(&mut self, request: &Request) -> bool {
        match self.account_key(&request.tx.from()) {
            Some(key) => request.tx.verify_with(&key),
            None => false,
        }
    }

    fn account_key(&mut self, account: &AccountId) -> Option<VerifyingKey> {
        if let Some(cached) = self.accounts.get(account) {
            return *cached;
        }
        if self.accounts.len() >= ACCOUNT_CACHE_LIMIT {
            self.accounts.clear();
        }
        let key = account.0.verifying_key();
        self.accounts.insert(*account, key);
        key
    }
}

/// The sender is a member of the message's epoch and signed it.
fn check_signature(epochs: &Epochs, signed: &SignedMessage) -> Result<(), Rejection> {
    let Some(known) = epochs.get(&signed.epoch) else {
        let expected = epochs.keys().next_back().copied().unwrap_or_default();
        return Err(Rejection::WrongEpoch { expected, received: signed.epoch });
    };
    let key = known.keys.get(&signed.sender).ok_or(Rejection::UnknownSender(signed.sender))?;
    if !signed.signature.verify(key, &signed.signing_bytes()) {
        return Err(Rejection::BadSignature(signed.sender));
    }
    Ok(())
}

fn signed_by_member(epochs: &Epochs, signed: &SignedMessage) -> bool {
    check_signature(epochs, signed).is_ok()
}

/// Whether `epoch`'s committee was the one in force at checkpoint `seq`: above
/// the checkpoint that started it and, once a later epoch is known, at or
/// below the checkpoint where the next one took over. An epoch whose end is
/// unknown while a later one exists proves nothing: its keys may be retired.
fn in_force_at(epochs: &Epochs, epoch: Epoch, seq: Seq) -> bool {
    let Some(known) = epochs.get(&epoch) else { return false };
    if seq <= known.committee.starts_after() {
        return false;
    }
    match epochs.range(Epoch(epoch.0.saturating_add(1))..).next() {
        None => true,
        Some((next_epoch, next)) => next_epoch.0 == epoch.0 + 1 && seq <= next.committee.starts_after(),
    }
}

/// A quorum of distinct members of the epoch in force at `seq` signed
/// CHECKPOINT(seq, digest) in that epoch. (The checkpoint where the membership
/// changes is proven by the old committee.)
fn proves_checkpoint(epochs: &Epochs, seq: Seq, digest: Digest, proof: &[Arc<SignedMessage>]) -> bool {
    let Some(epoch) = proof.first().map(|vote| vote.epoch) else { return false };
    let Some(known) = epochs.get(&epoch) else { return false };
    if !in_force_at(epochs, epoch, seq) {
        return false;
    }
    let mut signers = BTreeSet::new();
    for vote in proof {
        let matches =
            matches!(vote.message, Message::Checkpoint { seq: s, state_digest: d } if s == seq && d == digest);
        if !matches || vote.epoch != epoch || !signers.insert(vote.sender) || !signed_by_member(epochs, vote) {
            return false;
        }
    }
    signers.len() >= known.committee.quorum()
}

/// The checkpoint is proven (or is genesis) and every certificate is one that
/// a quorum of the view change's epoch really prepared, below the requested
/// view and above the checkpoint.
fn valid_view_change_content(epochs: &Epochs, signed: &SignedMessage) -> bool {
    let Message::ViewChange { new_view, stable_seq, stable_digest, checkpoint_proof, prepared, .. } = &signed.message
    else {
        return false;
    };
    let Some(known) = epochs.get(&signed.epoch) else { return false };
    let checkpoint_ok = if stable_seq.0 == 0 {
        checkpoint_proof.is_empty()
    } else {
        proves_checkpoint(epochs, *stable_seq, *stable_digest, checkpoint_proof)
    };
    let mut seqs = BTreeSet::new();
    checkpoint_ok
        && prepared.iter().all(|certificate| {
            certificate.slot().is_some_and(|(view, seq, ..)| view < *new_view && seq > *stable_seq && seqs.insert(seq))
                && valid_certificate(epochs, known, signed.epoch, certificate)
        })
}

/// A pre-prepare by the view's primary, its batch matching its digest, and
/// quorum-1 matching prepares from distinct backups, all signed in `epoch`.
fn valid_certificate(epochs: &Epochs, known: &EpochKeys, epoch: Epoch, certificate: &PreparedCertificate) -> bool {
    let Some((view, seq, digest, batch)) = certificate.slot() else { return false };
    let primary = known.committee.primary(view);
    let pre_prepare = &certificate.pre_prepare;
    if pre_prepare.sender != primary
        || pre_prepare.epoch != epoch
        || !signed_by_member(epochs, pre_prepare)
        || batch.digest() != digest
    {
        return false;
    }
    let mut backups = BTreeSet::new();
    for prepare in &certificate.prepares {
        let matches = matches!(prepare.message, Message::Prepare { view: v, seq: s, digest: d } if v == view && s == seq && d == digest);
        if !matches
            || prepare.epoch != epoch
            || prepare.sender == primary
            || !backups.insert(prepare.sender)
            || !signed_by_member(epochs, prepare)
        {
            return false;
        }
    }
    backups.len() + 1 >= known.committee.quorum()
}

/// From the view's primary, with a quorum of valid VIEW-CHANGEs for that view
/// from distinct validators of the same epoch, and exactly the pre-prepares they imply.
fn valid_new_view(
    epochs: &Epochs,
    signed: &SignedMessage,
    view: View,
    view_changes: &[Arc<SignedMessage>],
    pre_prepares: &[Arc<SignedMessage>],
) -> bool {
    let (sender, epoch) = (signed.sender, signed.epoch);
    let Some(known) = epochs.get(&epoch) else { return false };
    if sender != known.committee.primary(view) {
        return false;
    }
    let mut senders = BTreeSet::new();
    for view_change in view_changes {
        let for_this_view = matches!(view_change.message, Message::ViewChange { new_view, .. } if new_view == view);
        if !for_this_view
            || view_change.epoch != epoch
            || !senders.insert(view_change.sender)
            || !signed_by_member(epochs, view_change)
            || !valid_view_change_content(epochs, view_change)
        {
            return false;
        }
    }
    if !enough_view_changes(&known.committee, view_changes) {
        return false;
    }
    let plan = plan_new_view(view_changes);
    let mut proposed = BTreeMap::new();
    for pre_prepare in pre_prepares {
        let Message::PrePrepare { view: v, seq, digest, batch } = &pre_prepare.message else { return false };
        if *v != view
            || pre_prepare.sender != sender
            || pre_prepare.epoch != epoch
            || !signed_by_member(epochs, pre_prepare)
            || batch.digest() != *digest
            || proposed.insert(*seq, *digest).is_some()
        {
            return false;
        }
    }
    proposed.len() == plan.slots.len() && plan.slots.iter().all(|(seq, (digest, _))| proposed.get(seq) == Some(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Application;
    use crate::app::Tx;
    use crate::crypto::Keypair;
    use crate::ledger::{Ledger, TxId};
    use crate::protocol::{Batch, ClientId, View};

    fn committee(keys: &[Keypair]) -> Committee {
        let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
        Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap()
    }

    fn request(owner: &Keypair, nonce: u64) -> Request {
        let from = AccountId(owner.public_key());
        let transfer = Tx::transfer(TxId([nonce as u8; 16]), from, from, 1, nonce);
        Request { client: ClientId(0), tx: transfer.sign(owner) }
    }

    fn pre_prepare(keys: &[Keypair], requests: Vec<Request>) -> SignedMessage {
        let batch = Arc::new(Batch::of(requests));
        let digest = batch.digest();
        SignedMessage::sign(
            Message::PrePrepare { view: View(0), seq: Seq(1), digest, batch },
            Epoch(0),
            AgentId(0),
            &keys[0],
        )
    }

    #[test]
    fn every_kind_of_bad_message_is_rejected_with_its_reason() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let owner = Keypair::from_seed([50; 32]);
        let mut verifier = Verifier::new(&committee(&keys), 8);
        let good = pre_prepare(&keys, vec![request(&owner, 0), request(&owner, 1)]);
        assert_eq!(verifier.verify_message(&good), Ok(()));

        let mut bad_signature = good.clone();
        bad_signature.signature.0[0] ^= 1;
        let mut wrong_epoch = good.clone();
        wrong_epoch.epoch = Epoch(1);
        let mut unknown = good.clone();
        unknown.sender = AgentId(9);
        let mut swapped_batch = good.clone();
        if let Message::PrePrepare { batch, .. } = &mut swapped_batch.message {
            *batch = Arc::new(Batch::of(vec![request(&owner, 5)]));
        }
        let mut forged = request(&owner, 2);
        forged.tx.tx.as_transfer_mut().unwrap().amount = 1_000;
        let forged_client = pre_prepare(&keys, vec![request(&owner, 0), forged]);
        let too_large = pre_prepare(&keys, (0..9).map(|n| request(&owner, n)).collect());
        let cases = [
            (bad_signature, Rejection::BadSignature(AgentId(0))),
            (wrong_epoch, Rejection::WrongEpoch { expected: Epoch(0), received: Epoch(1) }),
            (unknown, Rejection::UnknownSender(AgentId(9))),
            (swapped_batch, Rejection::BatchDigestMismatch(AgentId(0))),
            (forged_client, Rejection::InvalidClientSignature { sender: AgentId(0), index: 1 }),
            (too_large, Rejection::BatchTooLarge { sender: AgentId(0), size: 9, max: 8 }),
        ];
        for (message, expected) in cases {
            assert_eq!(verifier.verify_message(&message), Err(expected));
        }
    }

    #[test]
    fn a_request_verified_before_its_pre_prepare_is_remembered_but_a_forgery_is_not() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let owner = Keypair::from_seed([50; 32]);
        let mut verifier = Verifier::new(&committee(&keys), 8);
        let (valid, _) = verifier.verify_requests(vec![request(&owner, 0)]);
        assert_eq!(valid.len(), 1);
        assert!(verifier.verified.contains(&request(&owner, 0).tx.digest()));
        let mut forged = request(&owner, 0);
        forged.tx.tx.as_transfer_mut().unwrap().amount = 2;
        let message = pre_prepare(&keys, vec![request(&owner, 0), forged]);
        let rejection = Rejection::InvalidClientSignature { sender: AgentId(0), index: 1 };
        assert_eq!(verifier.verify_message(&message), Err(rejection.clone()));
        // A rejected message is not remembered: a second copy is checked in full again.
        assert_eq!(verifier.verify_message(&message), Err(rejection));
    }

    #[test]
    fn a_remembered_pre_prepare_with_a_swapped_batch_is_still_rejected() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let owner = Keypair::from_seed([50; 32]);
        let mut verifier = Verifier::new(&committee(&keys), 8);
        let good = pre_prepare(&keys, vec![request(&owner, 0)]);
        assert_eq!(verifier.verify_message(&good), Ok(()));
        assert_eq!(verifier.verify_message(&good), Ok(()), "a resent copy is accepted from memory");
        let mut swapped = good.clone();
        if let Message::PrePrepare { batch, .. } = &mut swapped.message {
            *batch = Arc::new(Batch::of(vec![request(&owner, 1)]));
        }
        assert_eq!(verifier.verify_message(&swapped), Err(Rejection::BatchDigestMismatch(AgentId(0))));
    }

    #[test]
    fn a_new_view_that_drops_a_prepared_batch_or_lacks_a_quorum_is_rejected() {
        use crate::protocol::PreparedCertificate;
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let committee = committee(&keys);
        let owner = Keypair::from_seed([50; 32]);
        let mut verifier = Verifier::new(&committee, 8);
        let sign = |from: usize, message: Message| {
            Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from as u32), &keys[from]))
        };
        let batch = Arc::new(Batch::of(vec![request(&owner, 0)]));
        let digest = batch.digest();
        let pre_prepare = sign(0, Message::PrePrepare { view: View(0), seq: Seq(1), digest, batch: batch.clone() });
        let prepare = |from| sign(from, Message::Prepare { view: View(0), seq: Seq(1), digest });
        let certificate = PreparedCertificate { pre_prepare, prepares: vec![prepare(1), prepare(2)] };
        let view_change = |from: usize, prepared: Vec<PreparedCertificate>| {
            sign(
                from,
                Message::ViewChange {
                    new_view: View(1),
                    stable_seq: Seq(0),
                    stable_digest: Digest::default(),
                    checkpoint_proof: vec![],
                    prepared,
                    passive: false,
                },
            )
        };
        let view_changes =
            vec![view_change(1, vec![certificate.clone()]), view_change(2, vec![]), view_change(3, vec![])];
        let reproposed = sign(1, Message::PrePrepare { view: View(1), seq: Seq(1), digest, batch: batch.clone() });
        let good = sign(
            1,
            Message::NewView { view: View(1), view_changes: view_changes.clone(), pre_prepares: vec![reproposed] },
        );
        assert_eq!(verifier.verify_message(&good), Ok(()));

        let null = Arc::new(Batch::default());
        let dropped = sign(1, Message::PrePrepare { view: View(1), seq: Seq(1), digest: null.digest(), batch: null });
        let dropping = sign(
            1,
            Message::NewView { view: View(1), view_changes: view_changes.clone(), pre_prepares: vec![dropped] },
        );
        assert_eq!(verifier.verify_message(&dropping), Err(Rejection::InvalidNewView(AgentId(1))));
        let too_few =
            sign(1, Message::NewView { view: View(1), view_changes: view_changes[..2].to_vec(), pre_prepares: vec![] });
        assert_eq!(verifier.verify_message(&too_few), Err(Rejection::InvalidNewView(AgentId(1))));
        let mut thin = certificate.clone();
        thin.prepares.pop();
        assert_eq!(verifier.verify_message(&view_change(2, vec![thin])), Err(Rejection::InvalidViewChange(AgentId(2))));
    }

    #[test]
    fn client_requests_are_split_into_valid_and_forged() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let owner = Keypair::from_seed([50; 32]);
        let mut verifier = Verifier::new(&committee(&keys), 8);
        let mut forged = request(&owner, 1);
        forged.tx.tx.nonce = 7;
        let (valid, invalid) = verifier.verify_requests(vec![request(&owner, 0), forged.clone(), request(&owner, 2)]);
        assert_eq!(valid, vec![request(&owner, 0), request(&owner, 2)]);
        assert_eq!(invalid, vec![forged]);
    }

    #[test]
    fn a_snapshot_needs_a_quorum_of_checkpoint_signatures_over_the_ledger_digest() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let mut verifier = Verifier::new(&committee(&keys), 8);
        let ledger = Arc::new(Ledger::with_genesis(&[(AccountId(keys[0].public_key()), 5)]).unwrap());
        let membership = Arc::new(crate::protocol::MembershipState::default());
        let digest = checkpoint_digest(ledger.state_digest(), &membership);
        let vote = |i: usize, d: Digest| {
            Arc::new(SignedMessage::sign(
                Message::Checkpoint { seq: Seq(10), state_digest: d },
                Epoch(0),
                AgentId(i as u32),
                &keys[i],
            ))
        };
        let snapshot = |proof: Vec<Arc<SignedMessage>>, ledger: Arc<Ledger>| {
            let membership = membership.clone();
            let state = Arc::new(ledger.snapshot());
            let message = Message::StateSnapshot { seq: Seq(10), state_digest: digest, state, membership, proof };
            SignedMessage::sign(message, Epoch(0), AgentId(3), &keys[3])
        };
        let quorum = vec![vote(0, digest), vote(1, digest), vote(2, digest)];
        assert_eq!(verifier.verify_message(&snapshot(quorum.clone(), ledger.clone())), Ok(()));
        let too_few = vec![vote(0, digest), vote(1, digest)];
        let repeated = vec![vote(0, digest), vote(0, digest), vote(1, digest)];
        let other_digest = vec![vote(0, digest), vote(1, digest), vote(2, Digest([7; 32]))];
        let tampered = Arc::new(Ledger::with_genesis(&[(AccountId(keys[0].public_key()), 6)]).unwrap());
        for message in [
            snapshot(too_few, ledger.clone()),
            snapshot(repeated, ledger.clone()),
            snapshot(other_digest, ledger.clone()),
            snapshot(quorum, tampered),
        ] {
            assert_eq!(verifier.verify_message(&message), Err(Rejection::UnprovenSnapshot(AgentId(3))));
        }
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod rule_tests;
