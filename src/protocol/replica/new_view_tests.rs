//! What the old view left unordered, the new primary orders: the requests of
//! a pre-prepare that never prepared, and a membership change it carried.
//! Written against mutants cargo-mutants left alive (README, "Mutation testing").

use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger, TxId};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{
    AgentId, Batch, ClientId, Committee, Epoch, Input, MembershipChange, MembershipState, Message, Micros, Output,
    ProtocolParams, Replica, Request, Seq, SignedMembershipChange, SignedMessage, View,
};
use std::sync::Arc;

#[test]
fn the_new_primary_orders_again_the_requests_and_the_membership_change_of_a_batch_that_never_prepared() {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap();
    let account = Keypair::from_seed([99; 32]);
    let genesis = Ledger::with_genesis(&[(AccountId(account.public_key()), 1_000)]).unwrap();
    let params = ProtocolParams { checkpoint_interval: 2, log_window: 4, ..ProtocolParams::default() };
    let signed =
        |from: usize, message| Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from as u32), &keys[from]));
    let from = AccountId(account.public_key());
    let transfer = Tx::transfer(TxId([1; 16]), from, from, 1, 0);
    let request = Request { client: ClientId(7), tx: transfer.sign(&account) };
    let change = MembershipChange { from_epoch: Epoch(0), add: Vec::new(), remove: vec![AgentId(3)], f: None };
    let change = Arc::new(SignedMembershipChange::sign(change, &Keypair::from_seed([50; 32])));

    // Validator 1, primary of view 1, holds the request and the change; primary 0 orders both at seq 1.
    let mut next = Replica::new(AgentId(1), keys[1].clone(), committee, params, genesis.clone());
    next.step(Micros(0), Input::Requests(vec![request.clone()]));
    next.step(Micros(0), Input::Membership(change.clone()));
    let batch = Arc::new(Batch { requests: vec![request.clone()], membership: Some(change.clone()) });
    let (view, seq, digest) = (View(0), Seq(1), batch.digest());
    next.step(Micros(1), Input::Message(signed(0, Message::PrePrepare { view, seq, digest, batch })));
    assert_eq!(next.queued_requests(), 0, "ordered by the pre-prepare");

    // It never prepares: view 1 starts from three VIEW-CHANGEs without a certificate.
    next.step(Micros(2), Input::ForceViewChange);
    let stable_digest = checkpoint_digest(genesis.state_digest(), &MembershipState::default());
    let mut outputs = Vec::new();
    for from in [2, 3] {
        let view_change = Message::ViewChange {
            new_view: View(1),
            stable_seq: Seq(0),
            stable_digest,
            checkpoint_proof: Vec::new(),
            prepared: Vec::new(),
            passive: false,
        };
        outputs.extend(next.step(Micros(3), Input::Message(signed(from, view_change))));
    }
    assert_eq!(next.view(), View(1));
    let proposed: Vec<&Batch> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => match &m.message {
                Message::PrePrepare { view: View(1), batch, .. } => Some(&**batch),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(
        matches!(proposed[..], [batch] if batch.requests == vec![request.clone()] && batch.membership == Some(change.clone())),
        "the new primary proposed {proposed:?}"
    );
}
