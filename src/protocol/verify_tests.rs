//! The verifier's quorum, certificate, checkpoint-proof and epoch rules, one
//! rule per case. Each bad vote, prepare, VIEW-CHANGE or pre-prepare is added
//! to (or swapped into) an otherwise valid message, so a check that is skipped
//! or weakened lets it through. Written against the mutants cargo-mutants
//! left alive (README, "Mutation testing").

use super::*;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::TxId;
use crate::protocol::{Batch, ClientId};

/// Four validators, ids 0..4, with keys from seeds `first..first + 4`.
fn keys(first: u8) -> Vec<Keypair> {
    (first..first + 4).map(|i| Keypair::from_seed([i; 32])).collect()
}

fn committee(epoch: u64, keys: &[Keypair], starts_after: u64) -> Committee {
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    Committee::numbered(Epoch(epoch), &public_keys, "a", None).unwrap().starting_after(Seq(starts_after))
}

fn epochs(committees: &[Committee]) -> Epochs {
    committees.iter().map(|committee| (committee.epoch(), EpochKeys::new(committee))).collect()
}

/// Genesis (epoch 0, keys 1..=4) and epoch 1: the same ids with new keys
/// (11..=14), in force after checkpoint 10.
fn two_epochs() -> (Vec<Keypair>, Vec<Keypair>, Epochs) {
    let (old, new) = (keys(1), keys(11));
    let known = epochs(&[committee(0, &old, 0), committee(1, &new, 10)]);
    (old, new, known)
}

fn sign(keys: &[Keypair], epoch: u64, from: u32, message: Message) -> Arc<SignedMessage> {
    Arc::new(SignedMessage::sign(message, Epoch(epoch), AgentId(from), &keys[from as usize]))
}

fn forged(signed: &Arc<SignedMessage>) -> Arc<SignedMessage> {
    let mut forged = (**signed).clone();
    forged.signature.0[0] ^= 1;
    Arc::new(forged)
}

fn checkpoint(keys: &[Keypair], epoch: u64, from: u32, seq: u64, digest: Digest) -> Arc<SignedMessage> {
    sign(keys, epoch, from, Message::Checkpoint { seq: Seq(seq), state_digest: digest })
}

/// A batch of one request; `nonce` tells batches apart.
fn batch(nonce: u64) -> Arc<Batch> {
    let owner = Keypair::from_seed([50; 32]);
    let from = crate::ledger::AccountId(owner.public_key());
    let transfer = Tx::transfer(TxId([nonce as u8; 16]), from, from, 1, nonce);
    Arc::new(Batch::of(vec![Request { client: ClientId(0), tx: transfer.sign(&owner) }]))
}

fn pre_prepare(keys: &[Keypair], epoch: u64, from: u32, view: u64, seq: u64, batch: &Arc<Batch>) -> Arc<SignedMessage> {
    let message = Message::PrePrepare { view: View(view), seq: Seq(seq), digest: batch.digest(), batch: batch.clone() };
    sign(keys, epoch, from, message)
}

fn prepare(keys: &[Keypair], epoch: u64, from: u32, view: u64, seq: u64, digest: Digest) -> Arc<SignedMessage> {
    sign(keys, epoch, from, Message::Prepare { view: View(view), seq: Seq(seq), digest })
}

/// The view's primary's pre-prepare of `batch` at `seq` with prepares from `backups`, in epoch 0.
fn certificate(keys: &[Keypair], view: u64, seq: u64, batch: &Arc<Batch>, backups: &[u32]) -> PreparedCertificate {
    let primary = (view % 4) as u32;
    let prepares = backups.iter().map(|&from| prepare(keys, 0, from, view, seq, batch.digest())).collect();
    PreparedCertificate { pre_prepare: pre_prepare(keys, 0, primary, view, seq, batch), prepares }
}

#[test]
fn an_epoch_proves_only_checkpoints_between_its_start_and_the_next_epochs_start() {
    let (genesis, second, third) =
        (committee(0, &keys(1), 0), committee(1, &keys(11), 10), committee(2, &keys(21), 20));
    let only_genesis = epochs(std::slice::from_ref(&genesis));
    let all = epochs(&[genesis.clone(), second, third.clone()]);
    // Epoch 1 is unknown: where epoch 0 ended is unknown, so it proves nothing.
    let with_a_gap = epochs(&[genesis, third]);
    let cases = [
        (&only_genesis, 0, 0, false),
        (&only_genesis, 0, 1, true),
        (&only_genesis, 0, 1_000_000, true),
        (&only_genesis, 1, 20, false),
        (&all, 0, 1, true),
        (&all, 0, 10, true),
        (&all, 0, 11, false),
        (&all, 1, 10, false),
        (&all, 1, 11, true),
        (&all, 1, 20, true),
        (&all, 1, 21, false),
        (&all, 2, 20, false),
        (&all, 2, 21, true),
        (&all, 2, 1_000_000, true),
        (&with_a_gap, 0, 5, false),
        (&with_a_gap, 2, 21, true),
    ];
    for (known, epoch, seq, expected) in cases {
        assert_eq!(in_force_at(known, Epoch(epoch), Seq(seq)), expected, "epoch {epoch} at seq {seq}");
    }
}

#[test]
fn a_checkpoint_proof_is_a_quorum_of_the_epoch_in_force_and_one_bad_vote_spoils_it() {
    let (old, new, known) = two_epochs();
    let digest = Digest([3; 32]);
    let vote = |from| checkpoint(&old, 0, from, 10, digest);
    let quorum = vec![vote(0), vote(1), vote(2)];
    assert!(proves_checkpoint(&known, Seq(10), digest, &quorum));
    assert!(proves_checkpoint(&known, Seq(10), digest, &[vote(0), vote(1), vote(2), vote(3)]));
    assert!(!proves_checkpoint(&known, Seq(10), digest, &quorum[..2]), "two of four are not a quorum");
    assert!(!proves_checkpoint(&known, Seq(10), digest, &[]));
    assert!(!proves_checkpoint(&known, Seq(10), Digest([4; 32]), &quorum), "proves another digest");
    // Retired keys: epoch 0 is not in force after checkpoint 10.
    let late: Vec<_> = (0..3).map(|from| checkpoint(&old, 0, from, 12, digest)).collect();
    assert!(!proves_checkpoint(&known, Seq(12), digest, &late));
    let unknown_epoch: Vec<_> = (0..3).map(|from| checkpoint(&old, 5, from, 10, digest)).collect();
    assert!(!proves_checkpoint(&known, Seq(10), digest, &unknown_epoch));

    let stranger = Keypair::from_seed([60; 32]);
    let bad_votes = [
        ("for another digest", checkpoint(&old, 0, 3, 10, Digest([7; 32]))),
        ("for another seq", checkpoint(&old, 0, 3, 8, digest)),
        ("not a checkpoint", prepare(&old, 0, 3, 0, 10, digest)),
        ("signed in another epoch", checkpoint(&new, 1, 3, 10, digest)),
        ("from a repeated signer", vote(0)),
        ("with a bad signature", forged(&vote(3))),
        (
            "from a stranger",
            Arc::new(SignedMessage::sign(
                Message::Checkpoint { seq: Seq(10), state_digest: digest },
                Epoch(0),
                AgentId(9),
                &stranger,
            )),
        ),
    ];
    for (what, bad) in bad_votes {
        let mut proof = quorum.clone();
        proof.push(bad);
        assert!(!proves_checkpoint(&known, Seq(10), digest, &proof), "a proof with a vote {what} was accepted");
    }
}

#[test]
fn a_prepared_certificate_needs_the_primarys_pre_prepare_and_a_quorum_of_matching_backups() {
    let (old, new, known) = two_epochs();
    let genesis = &known[&Epoch(0)];
    let valid = |certificate: &PreparedCertificate| valid_certificate(&known, genesis, Epoch(0), certificate);
    let (b, other) = (batch(1), batch(2));
    let good = certificate(&old, 0, 5, &b, &[1, 2]);
    assert!(valid(&good));
    assert!(valid(&certificate(&old, 0, 5, &b, &[1, 2, 3])));
    assert!(valid(&certificate(&old, 1, 5, &b, &[0, 2])), "view 1's primary is validator 1");
    assert!(!valid(&certificate(&old, 0, 5, &b, &[1])), "one backup and the primary are not a quorum");

    let with_pre_prepare = |pre_prepare: Arc<SignedMessage>| PreparedCertificate { pre_prepare, ..good.clone() };
    let mut mismatched = (*pre_prepare(&old, 0, 0, 0, 5, &b)).clone();
    if let Message::PrePrepare { batch, .. } = &mut mismatched.message {
        *batch = other.clone();
    }
    let bad_pre_prepares = [
        ("from a backup", pre_prepare(&old, 0, 3, 0, 5, &b)),
        ("signed in another epoch", pre_prepare(&new, 1, 0, 0, 5, &b)),
        ("with a bad signature", forged(&pre_prepare(&old, 0, 0, 0, 5, &b))),
        ("whose batch does not match its digest", Arc::new(mismatched)),
        ("that is not a pre-prepare", prepare(&old, 0, 0, 0, 5, b.digest())),
    ];
    for (what, bad) in bad_pre_prepares {
        assert!(!valid(&with_pre_prepare(bad)), "a certificate with a pre-prepare {what} was accepted");
    }

    let bad_prepares = [
        ("for another digest", prepare(&old, 0, 3, 0, 5, other.digest())),
        ("for another view", prepare(&old, 0, 3, 1, 5, b.digest())),
        ("for another seq", prepare(&old, 0, 3, 0, 6, b.digest())),
        ("that is not a prepare", sign(&old, 0, 3, Message::Commit { view: View(0), seq: Seq(5), digest: b.digest() })),
        ("signed in another epoch", prepare(&new, 1, 3, 0, 5, b.digest())),
        ("from the primary", prepare(&old, 0, 0, 0, 5, b.digest())),
        ("from a repeated backup", prepare(&old, 0, 1, 0, 5, b.digest())),
        ("with a bad signature", forged(&prepare(&old, 0, 3, 0, 5, b.digest()))),
    ];
    for (what, bad) in bad_prepares {
        let mut certificate = good.clone();
        certificate.prepares.push(bad);
        assert!(!valid(&certificate), "a certificate with a prepare {what} was accepted");
    }
}

/// A VIEW-CHANGE for view 1 from validator 2 of epoch 0.
fn view_change(
    old: &[Keypair],
    stable: (u64, Digest),
    checkpoint_proof: Vec<Arc<SignedMessage>>,
    prepared: Vec<PreparedCertificate>,
) -> Arc<SignedMessage> {
    let (stable_seq, stable_digest) = (Seq(stable.0), stable.1);
    sign(
        old,
        0,
        2,
        Message::ViewChange {
            new_view: View(1),
            stable_seq,
            stable_digest,
            checkpoint_proof,
            prepared,
            passive: false,
        },
    )
}

#[test]
fn a_view_change_carries_a_proven_checkpoint_and_valid_certificates_between_it_and_the_new_view() {
    let (old, new, known) = two_epochs();
    let valid = |signed: &Arc<SignedMessage>| valid_view_change_content(&known, signed);
    let genesis = (0, Digest::default());
    let stable = (4, Digest([4; 32]));
    let proof: Vec<_> = (0..3).map(|from| checkpoint(&old, 0, from, 4, stable.1)).collect();
    let (b, other) = (batch(1), batch(2));
    let at = |seq| certificate(&old, 0, seq, &b, &[1, 3]);

    assert!(valid(&view_change(&old, genesis, vec![], vec![])));
    assert!(valid(&view_change(&old, genesis, vec![], vec![at(1), at(4)])));
    assert!(valid(&view_change(&old, stable, proof.clone(), vec![])));
    assert!(valid(&view_change(&old, stable, proof.clone(), vec![at(5), at(6)])));
    assert!(valid(&sign(&new, 1, 2, view_change(&old, genesis, vec![], vec![]).message.clone())));

    let mut thin = at(5);
    thin.prepares.pop();
    let other_proof: Vec<_> = (0..3).map(|from| checkpoint(&old, 0, from, 4, Digest([5; 32]))).collect();
    let invalid = [
        ("a proof at genesis", view_change(&old, genesis, proof.clone(), vec![])),
        ("no proof of its checkpoint", view_change(&old, stable, vec![], vec![])),
        ("no proof of its checkpoint, with a certificate", view_change(&old, stable, vec![], vec![at(5)])),
        ("a proof of another digest", view_change(&old, stable, other_proof, vec![])),
        ("a certificate at its checkpoint", view_change(&old, stable, proof.clone(), vec![at(4)])),
        ("a certificate below its checkpoint", view_change(&old, stable, proof.clone(), vec![at(3)])),
        (
            "a certificate of the new view",
            view_change(&old, genesis, vec![], vec![certificate(&old, 1, 1, &b, &[0, 2])]),
        ),
        (
            "a certificate above the new view",
            view_change(&old, genesis, vec![], vec![certificate(&old, 2, 1, &b, &[0, 1])]),
        ),
        ("two certificates for one seq", view_change(&old, genesis, vec![], vec![at(1), at(1)])),
        (
            "two certificates for one seq with different batches",
            view_change(&old, genesis, vec![], vec![certificate(&old, 0, 1, &other, &[1, 3]), at(1)]),
        ),
        ("a certificate short of a quorum", view_change(&old, stable, proof.clone(), vec![thin])),
        ("no view change at all", checkpoint(&old, 0, 2, 4, stable.1)),
        ("an unknown epoch", sign(&old, 7, 2, view_change(&old, genesis, vec![], vec![]).message.clone())),
    ];
    for (what, signed) in invalid {
        assert!(!valid(&signed), "a view change with {what} was accepted");
    }
}

/// Validators 1, 2, 3 ask for view 1; validator 2 prepared `b` at seq 1 in view 0.
struct NewViewCase {
    old: Vec<Keypair>,
    new: Vec<Keypair>,
    known: Epochs,
    b: Arc<Batch>,
    view_changes: Vec<Arc<SignedMessage>>,
}

fn new_view_case() -> NewViewCase {
    let (old, new, known) = two_epochs();
    let b = batch(1);
    let ask = |from: u32, prepared: Vec<PreparedCertificate>| {
        let message = Message::ViewChange {
            new_view: View(1),
            stable_seq: Seq(0),
            stable_digest: Digest::default(),
            checkpoint_proof: vec![],
            prepared,
            passive: false,
        };
        sign(&old, 0, from, message)
    };
    let view_changes = vec![ask(1, vec![]), ask(2, vec![certificate(&old, 0, 1, &b, &[1, 3])]), ask(3, vec![])];
    NewViewCase { old, new, known, b, view_changes }
}

impl NewViewCase {
    fn valid(&self, from: u32, view_changes: &[Arc<SignedMessage>], pre_prepares: &[Arc<SignedMessage>]) -> bool {
        let message = Message::NewView {
            view: View(1),
            view_changes: view_changes.to_vec(),
            pre_prepares: pre_prepares.to_vec(),
        };
        let signed = sign(&self.old, 0, from, message);
        valid_new_view(&self.known, &signed, View(1), view_changes, pre_prepares)
    }

    fn ask(&self, from: u32, new_view: u64, checkpoint_proof: Vec<Arc<SignedMessage>>) -> Arc<SignedMessage> {
        let message = Message::ViewChange {
            new_view: View(new_view),
            stable_seq: Seq(0),
            stable_digest: Digest::default(),
            checkpoint_proof,
            prepared: vec![],
            passive: false,
        };
        sign(&self.old, 0, from, message)
    }
}

#[test]
fn a_new_view_needs_a_quorum_of_valid_view_changes_from_distinct_members_of_its_epoch() {
    let case = new_view_case();
    let reproposed = vec![pre_prepare(&case.old, 0, 1, 1, 1, &case.b)];
    let vcs = &case.view_changes;
    assert!(case.valid(1, vcs, &reproposed));
    let mut all_four = vcs.clone();
    all_four.push(case.ask(0, 1, vec![]));
    assert!(case.valid(1, &all_four, &reproposed));
    assert!(!case.valid(2, vcs, &reproposed), "only view 1's primary may send its NEW-VIEW");
    // The plan of two VIEW-CHANGEs is the same, but two are not a quorum.
    assert!(!case.valid(1, &vcs[..2], &reproposed));

    let in_epoch_one = sign(&case.new, 1, 0, case.ask(0, 1, vec![]).message.clone());
    let bad_view_changes = [
        ("for another view", case.ask(0, 2, vec![])),
        ("signed in another epoch", in_epoch_one),
        ("from a repeated sender", vcs[2].clone()),
        ("with a bad signature", forged(&case.ask(0, 1, vec![]))),
        ("with an invalid checkpoint proof", case.ask(0, 1, vec![checkpoint(&case.old, 0, 0, 1, Digest([1; 32]))])),
    ];
    for (what, bad) in bad_view_changes {
        let mut view_changes = vcs.clone();
        view_changes.push(bad);
        assert!(!case.valid(1, &view_changes, &reproposed), "a NEW-VIEW with a view change {what} was accepted");
    }
}

#[test]
fn a_new_view_carries_exactly_the_planned_pre_prepares_from_its_primary() {
    let case = new_view_case();
    let (old, b, vcs) = (&case.old, &case.b, &case.view_changes);
    let good = pre_prepare(old, 0, 1, 1, 1, b);
    assert!(case.valid(1, vcs, std::slice::from_ref(&good)));

    let mut mismatched = (*good).clone();
    if let Message::PrePrepare { batch: carried, .. } = &mut mismatched.message {
        *carried = batch(2);
    }
    let null = Arc::new(Batch::default());
    let wrong = [
        ("none", vec![]),
        ("a null batch in place of the prepared one", vec![pre_prepare(old, 0, 1, 1, 1, &null)]),
        ("another batch in place of the prepared one", vec![pre_prepare(old, 0, 1, 1, 1, &batch(2))]),
        ("one more than planned", vec![good.clone(), pre_prepare(old, 0, 1, 1, 2, &null)]),
        ("the planned one twice", vec![good.clone(), good.clone()]),
        ("one of another view", vec![pre_prepare(old, 0, 1, 2, 1, b)]),
        ("one from another sender", vec![pre_prepare(old, 0, 2, 1, 1, b)]),
        ("one signed in another epoch", vec![pre_prepare(&case.new, 1, 1, 1, 1, b)]),
        ("one with a bad signature", vec![forged(&good)]),
        ("one whose batch does not match its digest", vec![Arc::new(mismatched)]),
        ("a prepare", vec![prepare(old, 0, 1, 1, 1, b.digest())]),
    ];
    for (what, pre_prepares) in wrong {
        assert!(!case.valid(1, vcs, &pre_prepares), "a NEW-VIEW with {what} was accepted");
    }
}

#[test]
fn the_verifier_accepts_a_valid_view_change_and_refuses_an_invalid_one() {
    let old = keys(1);
    let mut verifier = Verifier::new(&committee(0, &old, 0), 8);
    let b = batch(1);
    let good = view_change(&old, (0, Digest::default()), vec![], vec![certificate(&old, 0, 1, &b, &[1, 3])]);
    assert_eq!(verifier.verify_message(&good), Ok(()));
    let bad = view_change(&old, (0, Digest::default()), vec![], vec![certificate(&old, 0, 1, &b, &[1])]);
    assert_eq!(verifier.verify_message(&bad), Err(Rejection::InvalidViewChange(AgentId(2))));
}

/// The new view starts above the highest checkpoint among its VIEW-CHANGEs:
/// slots at or below it are not re-proposed (not even as null batches), and
/// a certificate above it is kept. Found by mutation testing (a sample of
/// the rest of the core): `>` turned to `<` in `plan_new_view` survived.
#[test]
fn a_new_view_plan_starts_above_the_highest_checkpoint_it_was_shown() {
    let old = keys(1);
    let (b, at_four) = (batch(1), Digest([4; 32]));
    let ask = |from: u32, stable_seq: u64, stable_digest: Digest, prepared: Vec<PreparedCertificate>| {
        let stable_seq = Seq(stable_seq);
        let message = Message::ViewChange {
            new_view: View(1),
            stable_seq,
            stable_digest,
            checkpoint_proof: vec![],
            prepared,
            passive: false,
        };
        sign(&old, 0, from, message)
    };
    let view_changes = vec![
        ask(1, 0, Digest::default(), vec![certificate(&old, 0, 3, &b, &[1, 2]), certificate(&old, 0, 6, &b, &[1, 2])]),
        ask(2, 4, at_four, vec![]),
        ask(3, 0, Digest::default(), vec![]),
    ];
    let plan = plan_new_view(&view_changes);
    assert_eq!((plan.min_seq, plan.min_digest, plan.max_seq), (Seq(4), at_four, Seq(6)));
    let null = Batch::default().digest();
    let slots: Vec<(Seq, Digest)> = plan.slots.iter().map(|(seq, (digest, _))| (*seq, *digest)).collect();
    assert_eq!(slots, vec![(Seq(5), null), (Seq(6), b.digest())]);
}

#[test]
fn a_membership_change_counts_only_signed_by_the_operator_of_the_newest_committee() {
    let (old_operator, new_operator) = (Keypair::from_seed([40; 32]), Keypair::from_seed([41; 32]));
    let genesis = committee(0, &keys(1), 0).with_operator(old_operator.public_key());
    let change = |from_epoch: u64, operator: &Keypair| {
        let change = crate::protocol::MembershipChange {
            from_epoch: Epoch(from_epoch),
            add: Vec::new(),
            remove: vec![AgentId(3)],
            f: None,
        };
        crate::protocol::SignedMembershipChange::sign(change, operator)
    };
    let mut verifier = Verifier::new(&genesis, 8);
    assert!(verifier.verify_membership(&change(0, &old_operator)));
    assert!(!verifier.verify_membership(&change(0, &new_operator)));
    verifier.learn(&committee(1, &keys(11), 10).with_operator(new_operator.public_key()));
    assert!(verifier.verify_membership(&change(1, &new_operator)));
    assert!(!verifier.verify_membership(&change(1, &old_operator)), "the old operator still counts");
}

/// The memory of verified messages holds the newest `VERIFIED_MEMORY`
/// digests, no fewer (a resent message is verified again) and no more.
#[test]
fn the_verified_digests_are_remembered_up_to_their_bound_and_the_oldest_forgotten_first() {
    let digest = |i: usize| Digest(*blake3::hash(&i.to_le_bytes()).as_bytes());
    let mut recent = RecentDigests { seen: HashSet::new(), order: VecDeque::new() };
    for i in 0..VERIFIED_MEMORY {
        recent.insert(digest(i));
    }
    recent.insert(digest(0));
    assert!(recent.contains(&digest(0)) && recent.contains(&digest(VERIFIED_MEMORY - 1)), "full, none forgotten");
    recent.insert(digest(VERIFIED_MEMORY));
    assert!(!recent.contains(&digest(0)), "the oldest is forgotten first");
    assert!(recent.contains(&digest(1)) && recent.contains(&digest(VERIFIED_MEMORY)));
    assert_eq!((recent.seen.len(), recent.order.len()), (VERIFIED_MEMORY, VERIFIED_MEMORY));
}
