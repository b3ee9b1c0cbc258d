//! A restored replica executes its batches again and keeps the state at each
//! checkpoint boundary, so a checkpoint that becomes stable only after the
//! restart carries the ledger of that checkpoint (the one a log or a lagging
//! peer is then given). Written against a mutant cargo-mutants left alive
//! (README, "Mutation testing").

use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger, TxId};
use crate::protocol::membership::checkpoint_digest;
use crate::protocol::{
    AgentId, Batch, ClientId, Committee, Epoch, Input, MembershipState, Message, Micros, ProtocolParams,
    RecoveredState, Replica, Request, Seq, SignedMessage,
};
use std::sync::Arc;

#[test]
fn a_checkpoint_made_stable_after_a_restart_holds_the_ledger_at_that_checkpoint() {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap();
    let account = Keypair::from_seed([99; 32]);
    let from = AccountId(account.public_key());
    let genesis = Ledger::with_genesis(&[(from, 1_000)]).unwrap();
    let params = ProtocolParams { checkpoint_interval: 2, log_window: 4, ..ProtocolParams::default() };
    let to = AccountId(keys[0].public_key());
    let batch = |nonce: u64| {
        let transfer = Tx::transfer(TxId([nonce as u8 + 1; 16]), from, to, 10, nonce);
        Arc::new(Batch::of(vec![Request { client: ClientId(7), tx: transfer.sign(&account) }]))
    };
    // Before the crash: seqs 1 and 2 executed, its own CHECKPOINT of 2 signed, no quorum yet.
    let mut at_checkpoint = genesis.clone();
    for nonce in 0..2 {
        at_checkpoint.execute(&batch(nonce).requests[0].tx.tx);
    }
    let state_digest = checkpoint_digest(at_checkpoint.state_digest(), &MembershipState::default());
    let checkpoint = |from: usize| {
        let message = Message::Checkpoint { seq: Seq(2), state_digest };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from as u32), &keys[from]))
    };
    let mut state = RecoveredState::default();
    state.executed.extend([(Seq(1), batch(0)), (Seq(2), batch(1))]);
    state.checkpoints.insert(Seq(2), checkpoint(1));
    let mut replica = Replica::restore(AgentId(1), keys[1].clone(), committee, params, genesis, state, Micros(0));
    assert_eq!(replica.last_executed(), Seq(2));

    for from in [0, 2] {
        replica.step(Micros(1), Input::Message(checkpoint(from)));
    }
    assert_eq!(replica.stable_checkpoint().seq, Seq(2));
    assert_eq!(replica.stable_app().state_digest(), at_checkpoint.state_digest(), "the stable ledger is not seq 2's");
}
