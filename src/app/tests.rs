//! The Merkle tree and the snapshot helpers every application relies on, and
//! the task board's rules.

use super::task_board::{TaskBoard, TaskState, ALREADY_DONE, CLAIMED_BY_ANOTHER, NO_SUCH_TASK};
use super::*;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, RejectReason, Transfer, TxId};
use crate::protocol::ClientId;

fn leaves(count: usize) -> Vec<Digest> {
    (0..count).map(|i| Digest::of(&(i as u64).to_le_bytes())).collect()
}

#[test]
fn every_leaf_of_every_tree_size_proves_against_the_root_and_no_other_leaf_does() {
    for count in 1..=9 {
        let leaves = leaves(count);
        let root = merkle_root(leaves.iter().copied());
        for (index, leaf) in leaves.iter().enumerate() {
            let path = merkle_path(&leaves, index).unwrap();
            assert!(verify_path(root, *leaf, &path), "leaf {index} of {count}");
            let other = leaves[(index + 1) % count];
            assert_eq!(verify_path(root, other, &path), count == 1 && other == *leaf, "leaf {index} of {count}");
        }
        assert_eq!(merkle_path(&leaves, count), None);
    }
}

#[test]
fn the_root_depends_on_every_leaf_its_order_and_their_number() {
    let four = leaves(4);
    let root = merkle_root(four.iter().copied());
    let mut swapped = four.clone();
    swapped.swap(1, 2);
    let mut changed = four.clone();
    changed[3] = Digest([9; 32]);
    for other in [swapped, changed, leaves(3), leaves(5), Vec::new()] {
        assert_ne!(merkle_root(other.iter().copied()), root, "{other:?}");
    }
    // A lone last leaf moves up unpaired: three leaves differ from four with the third repeated.
    let three = leaves(3);
    let padded = [three.clone(), vec![three[2]]].concat();
    assert_ne!(merkle_root(three), merkle_root(padded));
}

#[test]
fn a_snapshot_chunk_is_checked_alone_against_the_root() {
    let snapshot = Snapshot { chunks: (0..5u8).map(|i| Chunk(vec![i; 100])).collect() };
    let root = snapshot.root();
    let hashes: Vec<Digest> = snapshot.chunks.iter().map(Chunk::hash).collect();
    let path = merkle_path(&hashes, 3).unwrap();
    assert!(Snapshot::verify_chunk(root, &snapshot.chunks[3], &path));
    let mut tampered = snapshot.chunks[3].clone();
    tampered.0[0] ^= 1;
    assert!(!Snapshot::verify_chunk(root, &tampered, &path));
}

fn step(agent: &Keypair, task: u64, nonce: u64) -> Request {
    let from = AccountId(agent.public_key());
    let id = TxId([nonce as u8, agent.public_key().0[0], task as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let tx = Transfer { id, from, to: from, amount: task, nonce, memo: None }.sign(agent);
    Request { client: ClientId(1), tx }
}

fn outcomes(board: &mut TaskBoard, requests: &[Request]) -> Vec<TxOutcome> {
    board.execute(requests).into_iter().map(|execution| execution.outcome()).collect()
}

#[test]
fn a_task_is_claimed_once_and_completed_only_by_its_claimer() {
    let (alice, mallory) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
    let mut board = TaskBoard::with_tasks(2);
    let refused = |code| TxOutcome::Rejected(RejectReason::Refused { code });
    let got = outcomes(
        &mut board,
        &[step(&alice, 0, 0), step(&mallory, 0, 0), step(&mallory, 0, 1), step(&alice, 0, 1), step(&mallory, 7, 2)],
    );
    assert_eq!(
        got,
        [
            TxOutcome::Committed,
            refused(CLAIMED_BY_ANOTHER),
            refused(CLAIMED_BY_ANOTHER),
            TxOutcome::Committed,
            refused(NO_SUCH_TASK)
        ]
    );
    assert_eq!(board.task(0), Some(TaskState::Done(AccountId(alice.public_key()))));
    assert_eq!(outcomes(&mut board, &[step(&alice, 0, 2)]), [refused(ALREADY_DONE)]);
    assert_eq!(board.task(1), Some(TaskState::Open));
}

#[test]
fn a_replayed_step_changes_nothing_and_a_second_step_on_one_nonce_is_refused() {
    let alice = Keypair::from_seed([1; 32]);
    let mut board = TaskBoard::with_tasks(3);
    let claim = step(&alice, 0, 0);
    board.execute(std::slice::from_ref(&claim));
    let before = board.digest();
    assert_eq!(board.execute(std::slice::from_ref(&claim)), [Execution::Replayed(TxOutcome::Committed)]);
    assert_eq!(board.check(&claim), Err(Refusal::Executed));
    let rival = step(&alice, 1, 0);
    let consumed = TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 });
    assert_eq!(board.check(&rival), Err(Refusal::Rejected(consumed)));
    assert_eq!(TaskBoard::conflict_key(&rival), TaskBoard::conflict_key(&claim));
    assert_eq!(outcomes(&mut board, &[rival]), [consumed]);
    assert_eq!(board.digest(), before);
    assert_eq!(board.task(1), Some(TaskState::Open));
}

#[test]
fn a_board_restored_from_its_snapshot_is_the_same_board() {
    let (alice, bob) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
    let mut board = TaskBoard::with_tasks(4);
    board.execute(&[step(&alice, 0, 0), step(&bob, 1, 0), step(&bob, 1, 1), step(&bob, 0, 2)]);
    let snapshot = board.snapshot();
    assert_eq!(snapshot.root(), board.digest());
    let restored = TaskBoard::restore(&snapshot).unwrap();
    assert_eq!(restored, board);
    assert_ne!(TaskBoard::with_tasks(4).digest(), board.digest());
    let mut damaged = snapshot.clone();
    damaged.chunks[0].0.truncate(3);
    assert!(TaskBoard::restore(&damaged).is_err());
    assert!(TaskBoard::restore(&Snapshot::default()).is_err());
    let mut query = board.query(&1u64.to_le_bytes());
    assert_eq!(query.remove(0), 2, "task 1 is done");
    assert_eq!(query, bob.public_key().0);
    assert_eq!(board.query(&[1, 2]), Vec::<u8>::new());
}
