//! What the log records of one step, and a node restarted from its log
//! (found by mutation testing, README "Mutation testing"): each message
//! this validator signed, once; none of the messages of others it forwards;
//! an executed batch, with the batch itself only when no recorded
//! pre-prepare carries it; the rebuilt replica and log in the node's place.

use super::*;
use crate::crypto::Keypair;
use crate::ledger::AccountId;
use crate::node::Node;
use crate::protocol::{Committee, Epoch, Executed, ProtocolParams};

/// Four validators; the log is replica 0's (view 0's primary).
fn fixture() -> (Vec<Keypair>, Replica<Ledger>) {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 31; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "l", None).unwrap();
    let genesis = Ledger::with_genesis(&[(AccountId(keys[0].public_key()), 100)]).unwrap();
    let replica = Replica::new(AgentId(0), keys[0].clone(), committee, ProtocolParams::default(), genesis);
    (keys, replica)
}

fn signed(keys: &[Keypair], from: u32, message: Message) -> Arc<SignedMessage> {
    Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from), &keys[from as usize]))
}

fn checkpoint(keys: &[Keypair], from: u32) -> Arc<SignedMessage> {
    signed(keys, from, Message::Checkpoint { seq: Seq(2), state_digest: Digest([5; 32]) })
}

/// The primary's PRE-PREPARE of an empty batch at `seq`.
fn pre_prepare(keys: &[Keypair], seq: u64) -> Arc<SignedMessage> {
    let batch = Arc::new(Batch::default());
    signed(keys, 0, Message::PrePrepare { view: View(0), seq: Seq(seq), digest: batch.digest(), batch })
}

#[test]
fn the_messages_of_others_it_forwards_are_not_recorded_and_its_own_are_recorded_once() {
    let (keys, replica) = fixture();
    let mut mirror = LogMirror { state: RecoveredState::default() };
    // Answering a STATUS: the stable checkpoint's proof, signed by others.
    let forwarded: Vec<Output> = (1..4).map(|from| Output::SendTo(AgentId(3), checkpoint(&keys, from))).collect();
    assert_eq!(mirror.fold_step(&forwarded, &replica), (Vec::new(), false));
    let own = [Output::Broadcast(checkpoint(&keys, 0))];
    assert_eq!(mirror.fold_step(&own, &replica), (vec![WalRecord::Own(checkpoint(&keys, 0))], false));
    assert_eq!(mirror.fold_step(&own, &replica), (Vec::new(), false), "resent: recorded already");
    let proposed = [Output::Broadcast(pre_prepare(&keys, 1))];
    assert_eq!(mirror.fold_step(&proposed, &replica), (vec![WalRecord::PrePrepare(pre_prepare(&keys, 1))], false));
    assert_eq!(mirror.fold_step(&proposed, &replica), (Vec::new(), false), "resent: recorded already");
}

#[test]
fn an_executed_batch_is_recorded_with_its_batch_only_when_no_recorded_pre_prepare_carries_it() {
    let (keys, replica) = fixture();
    let mut mirror = LogMirror { state: RecoveredState::default() };
    let batch = Arc::new(Batch::default());
    let digest = batch.digest();
    let executed = |seq: u64| {
        let batch = batch.clone();
        [Output::Executed(Executed { seq: Seq(seq), view: View(0), digest, batch, executions: Vec::new() })]
    };
    mirror.fold_step(&[Output::Broadcast(pre_prepare(&keys, 1))], &replica);
    let (records, _) = mirror.fold_step(&executed(1), &replica);
    assert_eq!(records, vec![WalRecord::Executed { seq: Seq(1), digest, batch: None }]);
    // Seq 2's pre-prepare is not in the log (a passive replica records none: it signs no vote).
    let (records, _) = mirror.fold_step(&executed(2), &replica);
    assert_eq!(records, vec![WalRecord::Executed { seq: Seq(2), digest, batch: Some(batch.clone()) }]);
}

/// A crashed node back from its log: the replica and the log rebuilt from
/// it take the node's place, and the committees the node knew stay known.
#[test]
fn a_restarted_node_runs_the_replica_and_log_rebuilt_from_its_log_and_knows_its_committees() {
    let (keys, replica) = fixture();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let later = Committee::numbered(Epoch(1), &public_keys, "l", None).unwrap();
    let mut node = Node::logged(replica, RecoveredState::default()).with_known_committees(&[later]);
    let logged = RecoveredState { view: View(3), ..RecoveredState::default() };
    let rebuilt = fixture().1.restored(logged.clone(), crate::protocol::Micros(0));
    node.restart(Node::logged(rebuilt, logged.clone()));
    assert_eq!(node.replica().view(), View(3));
    assert_eq!(node.logged_state(), Some(&logged));
    assert!(node.committee(Epoch(1)).is_some(), "the committees it knew are forgotten");
}
