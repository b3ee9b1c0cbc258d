//! The Merkle tree and the snapshot helpers every application relies on, and
//! the task board's rules.

use super::task_board::{
    BoardOp, TaskBoard, TaskState, ALREADY_CLAIMED, ALREADY_DONE, CLAIMED_BY_ANOTHER, MALFORMED_OP, NOT_CLAIMED,
    NO_SUCH_TASK,
};
use super::*;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, RejectReason, TxId};
use crate::protocol::{ClientId, Seq};

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

fn step(agent: &Keypair, op: BoardOp, nonce: u64) -> Request {
    let from = AccountId(agent.public_key());
    let task = match op {
        BoardOp::Claim(task) | BoardOp::Complete(task) => task,
    };
    let id = TxId([nonce as u8, agent.public_key().0[0], task as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    Request { client: ClientId(1), tx: op.tx(id, from, nonce).sign(agent) }
}

fn claim(agent: &Keypair, task: u64, nonce: u64) -> Request {
    step(agent, BoardOp::Claim(task), nonce)
}

fn complete(agent: &Keypair, task: u64, nonce: u64) -> Request {
    step(agent, BoardOp::Complete(task), nonce)
}

fn outcomes(board: &mut TaskBoard, requests: &[Request]) -> Vec<TxOutcome> {
    board.execute(Seq(1), requests).into_iter().map(|execution| execution.outcome()).collect()
}

#[test]
fn a_task_is_claimed_once_and_completed_only_by_its_claimer() {
    let (alice, mallory) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
    let mut board = TaskBoard::with_tasks(2);
    let refused = |code| TxOutcome::Rejected(RejectReason::Refused { code });
    let got = outcomes(
        &mut board,
        &[
            complete(&alice, 0, 0),
            claim(&alice, 0, 1),
            claim(&alice, 0, 2),
            claim(&mallory, 0, 0),
            complete(&mallory, 0, 1),
            complete(&alice, 0, 3),
            claim(&mallory, 7, 2),
        ],
    );
    assert_eq!(
        got,
        [
            refused(NOT_CLAIMED),
            TxOutcome::Committed,
            refused(ALREADY_CLAIMED),
            refused(CLAIMED_BY_ANOTHER),
            refused(CLAIMED_BY_ANOTHER),
            TxOutcome::Committed,
            refused(NO_SUCH_TASK)
        ]
    );
    assert_eq!(board.task(0), Some(TaskState::Done(AccountId(alice.public_key()))));
    assert_eq!(outcomes(&mut board, &[claim(&alice, 0, 4), complete(&alice, 0, 5)]), [refused(ALREADY_DONE); 2]);
    assert_eq!(board.task(1), Some(TaskState::Open));
}

#[test]
fn a_replayed_step_changes_nothing_and_a_second_step_on_one_nonce_is_refused() {
    let alice = Keypair::from_seed([1; 32]);
    let mut board = TaskBoard::with_tasks(3);
    let claim = claim(&alice, 0, 0);
    board.execute(Seq(1), std::slice::from_ref(&claim));
    let before = board.digest();
    assert_eq!(board.execute(Seq(2), std::slice::from_ref(&claim)), [Execution::Replayed(TxOutcome::Committed)]);
    assert_eq!(board.check(&claim), Err(Refusal::Executed));
    let rival = step(&alice, BoardOp::Claim(1), 0);
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
    board.execute(Seq(1), &[claim(&alice, 0, 0), claim(&bob, 1, 0), complete(&bob, 1, 1), claim(&bob, 0, 2)]);
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

#[test]
fn the_board_reads_only_its_own_operation_and_refuses_bytes_it_cannot_decode() {
    let alice = Keypair::from_seed([1; 32]);
    let from = AccountId(alice.public_key());
    let mut board = TaskBoard::with_tasks(2);
    let transfer = Tx::transfer(TxId([1; 16]), from, from, 0, 0);
    let garbage = Tx { id: TxId([2; 16]), from, nonce: 1, op: Op::App(vec![9, 0]) };
    let requests: Vec<Request> =
        [transfer, garbage].into_iter().map(|tx| Request { client: ClientId(1), tx: tx.sign(&alice) }).collect();
    let refused = TxOutcome::Rejected(RejectReason::Refused { code: MALFORMED_OP });
    assert_eq!(outcomes(&mut board, &requests), [TxOutcome::Rejected(RejectReason::UnsupportedOp), refused]);
    assert_eq!(board.tasks(), [TaskState::Open; 2]);
    assert_eq!(BoardOp::decode(&BoardOp::Complete(7).encode()), Some(BoardOp::Complete(7)));
}
