//! What a replica hands a peer that is behind, and what it installs from
//! one (found by mutation testing, README "Mutation testing"): a STATUS is
//! answered with the stable checkpoint's proof only when the peer's low
//! water mark lies below it, and a snapshot whose membership history does
//! not check is dropped as malformed.

use crate::app::Application;
use crate::crypto::Keypair;
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::replica::tests::test_swarm::swarm;
use crate::protocol::{
    AgentId, Epoch, Input, Member, MembershipChange, MembershipState, Message, Output, Seq, SignedMembershipChange,
    View,
};
use std::sync::Arc;

/// The checkpoint messages replica 0 sends replica 1 in answer to its STATUS.
fn checkpoints_sent_for(low_water: u64, last_executed: u64) -> Vec<(AgentId, Seq)> {
    let mut s = swarm();
    s.submit(0..4);
    assert_eq!((s.replicas[0].last_executed(), s.replicas[0].stable_checkpoint().seq), (Seq(2), Seq(2)));
    let (low_water, last_executed) = (Seq(low_water), Seq(last_executed));
    let status = s.f.signed(1, Message::Status { view: View(0), low_water, last_executed, passive: false });
    let answer = s.step(0, Input::Message(status));
    assert_eq!(s.replicas[0].stats().status_answered, 1);
    answer
        .iter()
        .filter_map(|output| match output {
            Output::SendTo(AgentId(1), signed) => match signed.message {
                Message::Checkpoint { seq, .. } => Some((signed.sender, seq)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn a_status_from_a_peer_below_the_stable_checkpoint_is_answered_with_its_proof_and_one_at_it_is_not() {
    let proof = checkpoints_sent_for(0, 2);
    assert!(proof.len() >= 3 && proof.iter().all(|(_, seq)| *seq == Seq(2)), "{proof:?}");
    assert_eq!(
        checkpoints_sent_for(2, 2),
        Vec::new(),
        "the peer's low water mark is the checkpoint: it holds the proof"
    );
}

#[test]
fn a_snapshot_whose_membership_history_does_not_check_is_dropped_as_malformed() {
    let mut s = swarm();
    let mut moved = s.f.genesis.clone();
    moved.execute(&s.f.request(0).tx.tx);
    let state = Arc::new(moved.snapshot());
    let snapshot_with = |membership: MembershipState| {
        let state_digest = checkpoint_digest(state.root(), &membership);
        let proof = (0..3).map(|i| s.f.signed(i, Message::Checkpoint { seq: Seq(4), state_digest })).collect();
        let (state, membership) = (state.clone(), Arc::new(membership));
        s.f.signed(2, Message::StateSnapshot { seq: Seq(4), state_digest, state, membership, proof })
    };
    // A member added by a change the operator never signed.
    let stranger = Keypair::from_seed([61; 32]);
    let member = Member { id: AgentId(4), name: "a5".into(), public_key: stranger.public_key() };
    let change = MembershipChange { from_epoch: Epoch(0), add: vec![member], remove: Vec::new(), f: None };
    let forged = MembershipState {
        applied: vec![Arc::new(SignedMembershipChange::sign(change, &stranger))],
        boundaries: vec![Seq(2)],
        scheduled: None,
    };
    let (forged, honest) = (snapshot_with(forged), snapshot_with(MembershipState::default()));
    s.step(1, Input::Message(forged));
    let backup = &s.replicas[1];
    assert_eq!((backup.stats().dropped_malformed, backup.stats().snapshots_installed), (1, 0));
    assert_eq!((backup.last_executed(), backup.committee().epoch()), (Seq(0), Epoch(0)));
    s.step(1, Input::Message(honest));
    let backup = &s.replicas[1];
    assert_eq!((backup.stats().dropped_malformed, backup.stats().snapshots_installed), (1, 1));
    assert_eq!((backup.last_executed(), backup.ledger()), (Seq(4), &moved));
}
