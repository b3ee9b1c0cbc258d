//! Membership epochs: adding and removing validators through the log.
//!
//! The operator signs a [`MembershipChange`] from one epoch to the next; the
//! primary orders it in a batch like any request; every replica executes it at
//! the same sequence number and schedules it for the next checkpoint boundary.
//! When that checkpoint is stable the replica switches committee: quorum, f,
//! primary rotation and the epoch in every signature change at once.
//!
//! The changes applied so far are part of the replicated state: they are
//! covered by the checkpoint digest and travel in state snapshots, so a replica
//! that missed a change learns it with the state, and verifies it by the
//! operator's signature, never by the word of the peer that sent it.

use super::committee::{Committee, CommitteeError, Member};
use super::types::{AgentId, Epoch, Seq};
use crate::crypto::{Digest, Keypair, PublicKey, Signature, SigningBytes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Validators to add and remove, moving the committee from `from_epoch` to the next epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub from_epoch: Epoch,
    pub add: Vec<Member>,
    pub remove: Vec<AgentId>,
    /// f of the new committee; unset keeps the current f when the new size
    /// allows it, else the most the new size tolerates.
    pub f: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("the change is for epoch {change}, but the committee is in epoch {current}")]
    WrongEpoch { current: Epoch, change: Epoch },
    #[error("validator {0} is not in the committee, so it cannot be removed")]
    NotAMember(AgentId),
    #[error("validator {0} is already in the committee")]
    AlreadyMember(AgentId),
    #[error("the key {0} belonged to a removed validator and is never reused")]
    RetiredKey(String),
    #[error("the change neither adds nor removes a validator")]
    Empty,
    #[error("another change is already scheduled for epoch {0}")]
    AlreadyScheduled(Epoch),
    #[error("the swarm has no operator key, so its membership cannot change")]
    NoOperator,
    #[error("the change is not signed by the operator")]
    BadSignature,
    #[error("the new committee would be invalid: {0}")]
    Committee(#[from] CommitteeError),
}

impl MembershipChange {
    /// The committee of the next epoch. Fails, with a reason, for a change that
    /// does not apply to `current` or would leave a committee that cannot
    /// tolerate a fault: membership never drops below a working quorum.
    pub fn apply(&self, current: &Committee) -> Result<Committee, MembershipError> {
        if self.from_epoch != current.epoch() {
            return Err(MembershipError::WrongEpoch { current: current.epoch(), change: self.from_epoch });
        }
        if self.add.is_empty() && self.remove.is_empty() {
            return Err(MembershipError::Empty);
        }
        let removed: BTreeSet<AgentId> = self.remove.iter().copied().collect();
        if let Some(missing) = removed.iter().find(|id| !current.contains(**id)) {
            return Err(MembershipError::NotAMember(*missing));
        }
        if let Some(present) = self.add.iter().find(|member| current.contains(member.id)) {
            return Err(MembershipError::AlreadyMember(present.id));
        }
        let mut members: Vec<Member> =
            current.members().iter().filter(|member| !removed.contains(&member.id)).cloned().collect();
        members.extend(self.add.iter().cloned());
        let n = members.len();
        let f = self.f.unwrap_or(if n > 3 * current.f() { current.f() } else { n.saturating_sub(1) / 3 });
        let next = Committee::new(Epoch(current.epoch().0 + 1), members, Some(f))?;
        Ok(next.inheriting(current))
    }

    fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = SigningBytes::new("bftswarm/membership/v1")
            .u64(self.from_epoch.0)
            .u64(self.f.map_or(u64::MAX, |f| f as u64))
            .u32(self.add.len() as u32);
        for member in &self.add {
            bytes = bytes.u32(member.id.0).bytes32(&member.public_key.0).var_bytes(member.name.as_bytes());
        }
        bytes = bytes.u32(self.remove.len() as u32);
        for id in &self.remove {
            bytes = bytes.u32(id.0);
        }
        bytes.finish()
    }
}

/// A change with the operator's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMembershipChange {
    pub change: MembershipChange,
    pub signature: Signature,
}

impl SignedMembershipChange {
    pub fn sign(change: MembershipChange, operator: &Keypair) -> SignedMembershipChange {
        let signature = operator.sign(&change.signing_bytes());
        SignedMembershipChange { change, signature }
    }

    pub fn verify(&self, operator: &PublicKey) -> bool {
        operator.verifying_key().is_some_and(|key| self.signature.verify(&key, &self.change.signing_bytes()))
    }

    pub fn digest(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.change.signing_bytes());
        hasher.update(&self.signature.0);
        Digest(*hasher.finalize().as_bytes())
    }
}

/// The membership part of the replicated state: every change applied since
/// genesis, and the one executed but waiting for its checkpoint boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipState {
    pub applied: Vec<Arc<SignedMembershipChange>>,
    /// The checkpoint at which each applied change took effect (one per
    /// change): the epoch it started is in force above it.
    #[serde(default)]
    pub boundaries: Vec<Seq>,
    pub scheduled: Option<(Seq, Arc<SignedMembershipChange>)>,
}

impl MembershipState {
    pub fn digest(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"bftswarm/membership-state/v1");
        hasher.update(&(self.applied.len() as u64).to_le_bytes());
        for change in &self.applied {
            hasher.update(&change.digest().0);
        }
        for boundary in &self.boundaries {
            hasher.update(&boundary.0.to_le_bytes());
        }
        if let Some((seq, change)) = &self.scheduled {
            hasher.update(&seq.0.to_le_bytes());
            hasher.update(&change.digest().0);
        }
        Digest(*hasher.finalize().as_bytes())
    }

    /// Every committee from `genesis` through the applied changes (and the
    /// scheduled one), each change checked against the operator's key, each
    /// knowing the checkpoint after which it is in force.
    pub fn committees(&self, genesis: &Committee) -> Result<Vec<Committee>, MembershipError> {
        let mut committees = vec![genesis.clone()];
        let applied = self.applied.iter().enumerate().map(|(i, change)| (self.boundaries.get(i).copied(), change));
        let scheduled = self.scheduled.iter().map(|(at, change)| (Some(*at), change));
        for (starts_after, change) in applied.chain(scheduled) {
            let operator = genesis.operator().ok_or(MembershipError::NoOperator)?;
            if !change.verify(&operator) {
                return Err(MembershipError::BadSignature);
            }
            let current = committees.last().unwrap_or(genesis);
            let next = change.change.apply(current)?;
            committees.push(next.starting_after(starts_after.unwrap_or_default()));
        }
        Ok(committees)
    }

    /// Keys that were members once and were removed: never reused.
    pub fn retired_keys(&self, genesis: &Committee) -> BTreeSet<PublicKey> {
        let mut ever: Vec<(AgentId, PublicKey)> = genesis.members().iter().map(|m| (m.id, m.public_key)).collect();
        let mut retired = BTreeSet::new();
        for change in &self.applied {
            for id in &change.change.remove {
                retired.extend(ever.iter().filter(|(member, _)| member == id).map(|(_, key)| *key));
            }
            ever.extend(change.change.add.iter().map(|m| (m.id, m.public_key)));
        }
        retired
    }
}

/// The digest a checkpoint signs: the application's and the membership's together.
pub fn checkpoint_digest(app_digest: Digest, membership: &MembershipState) -> Digest {
    checkpoint_digest_of(app_digest, membership.digest())
}

/// [`checkpoint_digest`] from the membership's digest alone (what a
/// certified answer carries instead of the whole membership history).
pub fn checkpoint_digest_of(app_digest: Digest, membership_digest: Digest) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bftswarm/checkpoint/v1");
    hasher.update(&app_digest.0);
    hasher.update(&membership_digest.0);
    Digest(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u32) -> Member {
        Member { id: AgentId(i), name: format!("v{i}"), public_key: Keypair::from_seed([i as u8 + 1; 32]).public_key() }
    }

    fn genesis(n: u32, operator: &Keypair) -> Committee {
        Committee::new(Epoch(0), (0..n).map(member).collect(), None).unwrap().with_operator(operator.public_key())
    }

    #[test]
    fn adding_and_removing_moves_to_the_next_epoch_with_a_new_quorum() {
        let operator = Keypair::from_seed([99; 32]);
        let committee = genesis(4, &operator);
        let add = MembershipChange {
            from_epoch: Epoch(0),
            add: vec![member(4), member(5), member(6)],
            remove: vec![],
            f: None,
        };
        let seven = add.apply(&committee).unwrap();
        assert_eq!((seven.epoch(), seven.n(), seven.f(), seven.quorum()), (Epoch(1), 7, 1, 5));
        assert_eq!(seven.operator(), Some(operator.public_key()));
        let remove = MembershipChange { from_epoch: Epoch(1), add: vec![], remove: vec![AgentId(0)], f: Some(1) };
        let six = remove.apply(&seven).unwrap();
        assert_eq!((six.epoch(), six.n(), six.quorum()), (Epoch(2), 6, 4));
        assert!(!six.contains(AgentId(0)));
        assert_eq!(six.primary(crate::protocol::View(0)), AgentId(1));
    }

    #[test]
    fn changes_that_break_the_committee_are_refused_with_a_reason() {
        let operator = Keypair::from_seed([99; 32]);
        let committee = genesis(4, &operator);
        let change = |from, add: Vec<Member>, remove: Vec<u32>| MembershipChange {
            from_epoch: Epoch(from),
            add,
            remove: remove.into_iter().map(AgentId).collect(),
            f: None,
        };
        assert_eq!(
            change(0, vec![], vec![3]).apply(&committee),
            Err(MembershipError::Committee(CommitteeError::NoFaultTolerance))
        );
        assert_eq!(
            change(1, vec![member(4)], vec![]).apply(&committee),
            Err(MembershipError::WrongEpoch { current: Epoch(0), change: Epoch(1) })
        );
        assert_eq!(change(0, vec![], vec![9]).apply(&committee), Err(MembershipError::NotAMember(AgentId(9))));
        assert_eq!(
            change(0, vec![member(2)], vec![]).apply(&committee),
            Err(MembershipError::AlreadyMember(AgentId(2)))
        );
        assert_eq!(change(0, vec![], vec![]).apply(&committee), Err(MembershipError::Empty));
    }

    #[test]
    fn the_history_is_checked_against_the_operator_key_and_remembers_retired_keys() {
        let operator = Keypair::from_seed([99; 32]);
        let committee = genesis(4, &operator);
        let add = MembershipChange { from_epoch: Epoch(0), add: vec![member(4)], remove: vec![AgentId(1)], f: None };
        let signed = Arc::new(SignedMembershipChange::sign(add.clone(), &operator));
        let state = MembershipState { applied: vec![signed.clone()], boundaries: vec![Seq(10)], scheduled: None };
        let committees = state.committees(&committee).unwrap();
        assert_eq!(committees.iter().map(Committee::epoch).collect::<Vec<_>>(), [Epoch(0), Epoch(1)]);
        assert!(state.retired_keys(&committee).contains(&member(1).public_key));

        let forged = Arc::new(SignedMembershipChange::sign(add, &Keypair::from_seed([7; 32])));
        let state = MembershipState { applied: vec![forged], boundaries: vec![Seq(10)], scheduled: None };
        assert_eq!(state.committees(&committee), Err(MembershipError::BadSignature));
        assert_ne!(
            MembershipState::default().digest(),
            MembershipState { applied: vec![signed], boundaries: vec![Seq(10)], scheduled: None }.digest()
        );
    }
}

#[cfg(test)]
mod verifier_tests {
    use super::*;
    use crate::app::Application;
    use crate::ledger::{AccountId, Ledger};
    use crate::protocol::message::{Message, SignedMessage};
    use crate::protocol::verify::{Rejection, Verifier};

    fn keys(n: u8) -> Vec<Keypair> {
        (1..=n).map(|i| Keypair::from_seed([i; 32])).collect()
    }

    fn member(i: usize, key: &Keypair) -> Member {
        Member { id: AgentId(i as u32), name: format!("v{}", i + 1), public_key: key.public_key() }
    }

    /// Epoch 0 is {0,1,2,3}; the operator removes 0 and adds 4 (epoch 1).
    fn setup() -> (Vec<Keypair>, Committee, Arc<SignedMembershipChange>, Committee) {
        let keys = keys(5);
        let operator = Keypair::from_seed([77; 32]);
        let genesis = Committee::new(Epoch(0), (0..4).map(|i| member(i, &keys[i])).collect(), None)
            .unwrap()
            .with_operator(operator.public_key());
        let change = MembershipChange {
            from_epoch: Epoch(0),
            add: vec![member(4, &keys[4])],
            remove: vec![AgentId(0)],
            f: None,
        };
        let next = change.apply(&genesis).unwrap();
        (keys, genesis, Arc::new(SignedMembershipChange::sign(change, &operator)), next)
    }

    #[test]
    fn a_removed_validator_is_refused_from_the_new_epoch_on() {
        let (keys, genesis, _, next) = setup();
        let mut verifier = Verifier::new(&genesis, 8);
        verifier.learn(&next);
        let status = |epoch: u64| {
            let message = Message::Status {
                view: crate::protocol::View(0),
                low_water: Seq(0),
                last_executed: Seq(0),
                passive: false,
            };
            SignedMessage::sign(message, Epoch(epoch), AgentId(0), &keys[0])
        };
        assert_eq!(verifier.verify_message(&status(0)), Ok(()), "its old-epoch messages still verify");
        assert_eq!(verifier.verify_message(&status(1)), Err(Rejection::UnknownSender(AgentId(0))));
        let unknown = SignedMessage::sign(
            Message::Status {
                view: crate::protocol::View(0),
                low_water: Seq(0),
                last_executed: Seq(0),
                passive: false,
            },
            Epoch(2),
            AgentId(1),
            &keys[1],
        );
        assert!(matches!(verifier.verify_message(&unknown), Err(Rejection::WrongEpoch { .. })));
    }

    /// A replica still in epoch 0 is sent a snapshot from epoch 1: the
    /// membership history it carries (operator-signed) tells it who signs
    /// there, and once f+1 members of epoch 1 vouch for where epoch 1 starts,
    /// the snapshot verifies; a forged history does not.
    #[test]
    fn a_snapshot_from_a_later_epoch_verifies_through_its_membership_history() {
        let (keys, genesis, change, _) = setup();
        let ledger = Arc::new(Ledger::with_genesis(&[(AccountId(keys[0].public_key()), 5)]).unwrap());
        let membership =
            Arc::new(MembershipState { applied: vec![change.clone()], boundaries: vec![Seq(5)], scheduled: None });
        let digest = checkpoint_digest(ledger.state_digest(), &membership);
        let vote = |i: usize| {
            Arc::new(SignedMessage::sign(
                Message::Checkpoint { seq: Seq(10), state_digest: digest },
                Epoch(1),
                AgentId(i as u32),
                &keys[i],
            ))
        };
        let snapshot = |membership: Arc<MembershipState>, sender: usize| {
            let proof = vec![vote(1), vote(2), vote(4)];
            let message = Message::StateSnapshot {
                seq: Seq(10),
                state_digest: digest,
                state: Arc::new(ledger.snapshot()),
                membership,
                proof,
            };
            SignedMessage::sign(message, Epoch(1), AgentId(sender as u32), &keys[sender])
        };
        let mut verifier = Verifier::new(&genesis, 8);
        let unvouched = verifier.verify_message(&snapshot(membership.clone(), 4));
        assert_eq!(unvouched, Err(Rejection::UnvouchedEpochStarts(AgentId(4))), "one member's word");
        assert_eq!(verifier.verify_message(&snapshot(membership, 1)), Ok(()));
        assert!(verifier.committee(Epoch(1)).is_some_and(|c| c.contains(AgentId(4))), "it learned epoch 1");

        let forged_change = SignedMembershipChange::sign(change.change.clone(), &Keypair::from_seed([5; 32]));
        let forged = Arc::new(MembershipState {
            applied: vec![Arc::new(forged_change)],
            boundaries: vec![Seq(5)],
            scheduled: None,
        });
        let mut fresh = Verifier::new(&genesis, 8);
        assert!(fresh.verify_message(&snapshot(forged.clone(), 4)).is_err());
        assert!(fresh.verify_message(&snapshot(forged, 1)).is_err());
        assert!(fresh.committee(Epoch(1)).is_none());
    }

    /// Epoch 0 ends at checkpoint 10, where validator 0 is retired. A quorum
    /// of epoch 0 (the retired key among it) signs a checkpoint far beyond
    /// that: neither a snapshot of a forged ledger nor a VIEW-CHANGE may use
    /// it; the same keys still prove the checkpoint at the boundary, and the
    /// new committee proves what follows.
    #[test]
    fn a_checkpoint_proof_must_come_from_the_committee_in_force_at_its_seq() {
        let (keys, genesis, change, next) = setup();
        let next = next.starting_after(Seq(10));
        let mut verifier = Verifier::new(&genesis, 8);
        verifier.learn(&next);
        let forged_ledger = Arc::new(Ledger::with_genesis(&[(AccountId(keys[0].public_key()), 1_000_000)]).unwrap());
        let no_history = Arc::new(MembershipState::default());
        let vote = |epoch: u64, i: usize, seq: u64, digest: Digest| {
            Arc::new(SignedMessage::sign(
                Message::Checkpoint { seq: Seq(seq), state_digest: digest },
                Epoch(epoch),
                AgentId(i as u32),
                &keys[i],
            ))
        };
        let snapshot = |epoch: u64, signers: [usize; 3], seq: u64, membership: Arc<MembershipState>| {
            let digest = checkpoint_digest(forged_ledger.state_digest(), &membership);
            let proof = signers.iter().map(|&i| vote(epoch, i, seq, digest)).collect();
            let message = Message::StateSnapshot {
                seq: Seq(seq),
                state_digest: digest,
                state: Arc::new(forged_ledger.snapshot()),
                membership,
                proof,
            };
            SignedMessage::sign(message, Epoch(epoch), AgentId(signers[0] as u32), &keys[signers[0]])
        };
        let stale = snapshot(0, [0, 1, 2], 50, no_history.clone());
        assert_eq!(verifier.verify_message(&stale), Err(Rejection::UnprovenSnapshot(AgentId(0))));
        assert_eq!(verifier.verify_message(&snapshot(0, [0, 1, 2], 10, no_history)), Ok(()), "the boundary itself");
        let history = Arc::new(MembershipState { applied: vec![change], boundaries: vec![Seq(10)], scheduled: None });
        assert_eq!(verifier.verify_message(&snapshot(1, [1, 2, 4], 20, history.clone())), Ok(()));
        let early = snapshot(1, [1, 2, 4], 10, history);
        assert_eq!(verifier.verify_message(&early), Err(Rejection::UnprovenSnapshot(AgentId(1))));

        let digest = Digest([9; 32]);
        let view_change = |proof: Vec<Arc<SignedMessage>>, seq: u64| {
            SignedMessage::sign(
                Message::ViewChange {
                    new_view: crate::protocol::View(1),
                    stable_seq: Seq(seq),
                    stable_digest: digest,
                    checkpoint_proof: proof,
                    prepared: vec![],
                    passive: false,
                },
                Epoch(1),
                AgentId(4),
                &keys[4],
            )
        };
        let retired_proof = vec![vote(0, 0, 50, digest), vote(0, 1, 50, digest), vote(0, 2, 50, digest)];
        let rejected = verifier.verify_message(&view_change(retired_proof, 50));
        assert_eq!(rejected, Err(Rejection::InvalidViewChange(AgentId(4))));
        let current_proof = vec![vote(1, 1, 50, digest), vote(1, 2, 50, digest), vote(1, 4, 50, digest)];
        assert_eq!(verifier.verify_message(&view_change(current_proof, 50)), Ok(()));
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod fault_tests;
