//! A joiner is handed the committees without their starts: it believes a
//! start only when f+1 members of the newest epoch vouch for it, never on the
//! word of the snapshot it is offered.

use crate::app::Application;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{
    AgentId, Committee, Epoch, Member, MembershipChange, MembershipState, Message, Rejection, Seq,
    SignedMembershipChange, SignedMessage, Verifier,
};
use std::sync::Arc;

struct History {
    keys: Vec<Keypair>,
    genesis: Committee,
    changes: Vec<Arc<SignedMembershipChange>>,
    /// Epochs 0, 1 and 2 as the operator announced them: no starts.
    announced: Vec<Committee>,
}

fn member(i: usize, key: &Keypair) -> Member {
    Member { id: AgentId(i as u32), name: format!("v{}", i + 1), public_key: key.public_key() }
}

/// Epoch 0 is {0,1,2,3}. Epoch 1 retires founders 0, 1 and 2 (a quorum of
/// epoch 0) and adds 4, 5, 6; epoch 2 retires 3 and adds the joiner, 7.
fn history() -> History {
    let keys: Vec<Keypair> = (1..=8).map(|i| Keypair::from_seed([i; 32])).collect();
    let operator = Keypair::from_seed([77; 32]);
    let genesis = Committee::new(Epoch(0), (0..4).map(|i| member(i, &keys[i])).collect(), None)
        .unwrap()
        .with_operator(operator.public_key());
    let plan = [(0, vec![4, 5, 6], vec![0, 1, 2]), (1, vec![7], vec![3])];
    let mut announced = vec![genesis.clone()];
    let mut changes = Vec::new();
    for (from, add, remove) in plan {
        let change = MembershipChange {
            from_epoch: Epoch(from),
            add: add.iter().map(|&i| member(i, &keys[i])).collect(),
            remove: remove.iter().map(|&i| AgentId(i)).collect(),
            f: None,
        };
        announced.push(change.apply(announced.last().unwrap()).unwrap());
        changes.push(Arc::new(SignedMembershipChange::sign(change, &operator)));
    }
    History { keys, genesis, changes, announced }
}

impl History {
    /// The joiner's verifier: every committee, no start.
    fn joiner(&self) -> Verifier {
        let mut verifier = Verifier::new(&self.genesis, 8);
        self.announced.iter().for_each(|committee| verifier.learn(committee));
        verifier
    }

    /// A snapshot at `seq` whose history says the epochs start after
    /// `boundaries`, proven in `proof_epoch` by `signers` and sent by `sender`
    /// signing in `sender_epoch`.
    fn snapshot(
        &self,
        seq: u64,
        boundaries: [u64; 2],
        (proof_epoch, signers): (u64, [usize; 3]),
        (sender_epoch, sender): (u64, usize),
        rich: u64,
    ) -> SignedMessage {
        let ledger = Ledger::with_genesis(&[(AccountId(self.keys[0].public_key()), rich)]).unwrap();
        let state = Arc::new(ledger.snapshot());
        let membership = Arc::new(MembershipState {
            applied: self.changes.clone(),
            boundaries: boundaries.iter().map(|&b| Seq(b)).collect(),
            scheduled: None,
        });
        let state_digest = checkpoint_digest(state.root(), &membership);
        let vote = |i: usize| {
            let message = Message::Checkpoint { seq: Seq(seq), state_digest };
            Arc::new(SignedMessage::sign(message, Epoch(proof_epoch), AgentId(i as u32), &self.keys[i]))
        };
        let proof = signers.iter().map(|&i| vote(i)).collect();
        let message = Message::StateSnapshot { seq: Seq(seq), state_digest, state, membership, proof };
        SignedMessage::sign(message, Epoch(sender_epoch), AgentId(sender as u32), &self.keys[sender])
    }
}

/// The real history: epoch 1 starts after checkpoint 10, epoch 2 after 20.
/// The retired founders sign a checkpoint at 100 in epoch 0, in a snapshot of
/// a forged ledger whose history moves both starts past it.
#[test]
fn retired_founders_cannot_move_the_epoch_starts_a_joiner_was_not_told() {
    let history = history();
    let mut joiner = history.joiner();
    let forged = history.snapshot(100, [200, 300], (0, [0, 1, 2]), (0, 0), 1_000_000);
    assert_eq!(joiner.verify_message(&forged), Err(Rejection::UnvouchedEpochStarts(AgentId(0))));
    for sender in [1, 2] {
        // Retired, they vouch in vain: only members of the newest epoch count.
        let again = history.snapshot(100, [200, 300], (0, [0, 1, 2]), (0, sender), 1_000_000);
        assert!(joiner.verify_message(&again).is_err(), "a retired founder's vouch counted");
    }
    assert_eq!(joiner.committee(Epoch(2)).map(Committee::starts_after), Some(Seq(0)), "no start was taken");
}

/// The honest snapshot at the boundary (checkpoint 20, proven by epoch 1):
/// one member of epoch 2 is not enough to settle the starts (it could be the
/// one liar); a second one is. Then the forgery stays refused.
#[test]
fn a_joiner_takes_the_starts_that_f_plus_one_members_of_the_newest_epoch_vouch_for() {
    let history = history();
    let mut joiner = history.joiner();
    let honest = |sender: usize| history.snapshot(20, [10, 20], (1, [3, 4, 5]), (2, sender), 5);
    assert_eq!(joiner.verify_message(&honest(4)), Err(Rejection::UnvouchedEpochStarts(AgentId(4))));
    // The one liar of epoch 2 vouching for other starts does not make two.
    let lie = history.snapshot(100, [200, 300], (0, [0, 1, 2]), (0, 0), 1_000_000);
    let liar = history.snapshot(20, [15, 20], (1, [3, 4, 5]), (2, 6), 5);
    assert!(joiner.verify_message(&liar).is_err());
    assert!(joiner.verify_message(&lie).is_err());
    assert_eq!(joiner.verify_message(&honest(5)), Ok(()));
    assert_eq!(joiner.committee(Epoch(1)).map(Committee::starts_after), Some(Seq(10)));
    assert_eq!(joiner.committee(Epoch(2)).map(Committee::starts_after), Some(Seq(20)));
    assert_eq!(joiner.verify_message(&lie), Err(Rejection::UnprovenSnapshot(AgentId(0))));
}
