//! A passive replica (its log lost) signs no vote for a (view, seq) it may
//! have signed before: not in its bound's view, only in a later view or past
//! its bound's sequence number. Written against a mutant cargo-mutants left
//! alive (README, "Mutation testing").

use crate::crypto::Keypair;
use crate::ledger::Ledger;
use crate::protocol::{
    AgentId, Batch, Committee, Epoch, Input, Message, Micros, Output, Passive, ProtocolParams, Replica, Seq,
    SignedMessage, View,
};
use std::sync::Arc;

/// Member 3 lost its log; its three peers, intact, say they are in view 0 with
/// nothing executed: its bound is view 1, seq 4 (one window). Then a NEW-VIEW
/// of `view` proposes seq 1: whether it prepares, and whether it is still passive.
fn prepares_in(view: u64) -> (bool, bool) {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap();
    let params = ProtocolParams { checkpoint_interval: 2, log_window: 4, ..ProtocolParams::default() };
    let genesis = Ledger::with_genesis(&[]).unwrap();
    let signed =
        |from: u32, message| Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from), &keys[from as usize]));
    let mut passive = Replica::new(AgentId(3), keys[3].clone(), committee, params, genesis).forget_what_it_signed();
    for peer in 0..3 {
        let status = Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(0), passive: false };
        passive.step(Micros(0), Input::Message(signed(peer, status)));
    }
    assert_eq!(passive.passive(), Some(Passive { bound: Some((View(1), Seq(4))) }));
    let primary = (view % 4) as u32;
    let batch = Arc::new(Batch::of(Vec::new()));
    let pre_prepare = Message::PrePrepare { view: View(view), seq: Seq(1), digest: batch.digest(), batch };
    let new_view = Message::NewView {
        view: View(view),
        view_changes: Vec::new(),
        pre_prepares: vec![signed(primary, pre_prepare)],
    };
    let out = passive.step(Micros(1), Input::Message(signed(primary, new_view)));
    assert_eq!(passive.view(), View(view));
    let prepared =
        out.iter().any(|o| matches!(o, Output::Broadcast(m) if matches!(m.message, Message::Prepare { .. })));
    (prepared, passive.is_passive())
}

#[test]
fn a_passive_replica_stays_passive_through_its_bounds_view_and_votes_in_the_next() {
    assert_eq!(prepares_in(1), (false, true), "it may have prepared seq 1 in view 1 before its log was lost");
    assert_eq!(prepares_in(2), (true, false), "past its bound it votes, and is passive no more");
}
