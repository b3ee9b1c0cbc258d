//! The passive replica's rules when more than f members lost their logs:
//! whom it learns its bound from, which view it asks for, and which
//! VIEW-CHANGEs may start a view.

use super::super::Replica;
use crate::app::Tx;
use crate::crypto::Keypair;
use crate::ledger::{AccountId, Ledger, TxId};
use crate::protocol::message::{Message, SignedMessage};
use crate::protocol::view_change::enough_view_changes;
use crate::protocol::{
    AgentId, ClientId, Committee, Epoch, Input, Micros, Output, Passive, ProtocolParams, Request, Seq, View,
};
use std::sync::Arc;

const WINDOW: u64 = 4;

struct Swarm {
    keys: Vec<Keypair>,
    committee: Committee,
    account: Keypair,
}

fn swarm() -> Swarm {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 11; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "p", None).unwrap();
    Swarm { keys, committee, account: Keypair::from_seed([77; 32]) }
}

fn params() -> ProtocolParams {
    ProtocolParams {
        checkpoint_interval: 2,
        log_window: WINDOW,
        max_batch_size: 2,
        batch_delay_us: 1_000,
        max_in_flight_batches: 2,
        retransmit_interval_us: 10_000,
        max_pending_requests: 10,
        outcome_retention_checkpoints: 1,
        view_change_timeout_us: 50_000,
    }
}

impl Swarm {
    /// Member 3, its log lost: passive from genesis.
    fn passive_replica(&self) -> Replica {
        let genesis = Ledger::with_genesis(&[(AccountId(self.account.public_key()), 1_000)]).unwrap();
        Replica::new(AgentId(3), self.keys[3].clone(), self.committee.clone(), params(), genesis)
            .forget_what_it_signed()
    }

    fn signed(&self, from: u32, message: Message) -> Arc<SignedMessage> {
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from), &self.keys[from as usize]))
    }

    fn status(&self, from: u32, view: u64, executed: u64, passive: bool) -> Input {
        let message = Message::Status { view: View(view), low_water: Seq(0), last_executed: Seq(executed), passive };
        Input::Message(self.signed(from, message))
    }

    fn view_change(&self, from: u32, passive: bool) -> Arc<SignedMessage> {
        let message = Message::ViewChange {
            new_view: View(9),
            stable_seq: Seq(0),
            stable_digest: Default::default(),
            checkpoint_proof: vec![],
            prepared: vec![],
            passive,
        };
        self.signed(from, message)
    }

    fn request(&self) -> Request {
        let transfer = Tx::transfer(
            TxId([1; 16]),
            AccountId(self.account.public_key()),
            AccountId(self.keys[0].public_key()),
            10,
            0,
        );
        Request { client: ClientId(7), tx: transfer.sign(&self.account) }
    }
}

#[test]
fn a_passive_peer_counts_for_no_quorum_and_its_position_is_not_taken() {
    let s = swarm();
    let mut replica = s.passive_replica();
    // Two passive peers and one intact peer: no quorum of intact members,
    // and a passive peer's view 40 tells nothing of where the swarm was.
    replica.step(Micros(0), s.status(1, 40, 0, true));
    replica.step(Micros(0), s.status(0, 5, 10, false));
    assert_eq!(replica.passive(), Some(Passive { bound: None }), "two of three others heard");
    // Every other member has spoken, one of them intact: its position bounds all.
    replica.step(Micros(0), s.status(2, 40, 0, true));
    assert_eq!(replica.passive(), Some(Passive { bound: Some((View(6), Seq(10 + WINDOW))) }));
}

#[test]
fn with_every_other_member_passive_no_bound_is_learned() {
    let s = swarm();
    let mut replica = s.passive_replica();
    for peer in 0..3 {
        replica.step(Micros(0), s.status(peer, 2, 3, true));
    }
    assert_eq!(replica.passive(), Some(Passive { bound: None }));
}

#[test]
fn a_passive_replica_past_its_bound_asks_for_the_first_view_beyond_it_and_says_it_is_passive() {
    let s = swarm();
    let mut replica = s.passive_replica();
    for (peer, passive) in [(0, false), (1, true), (2, true)] {
        replica.step(Micros(0), s.status(peer, 5, 10, passive));
    }
    replica.step(Micros(0), Input::Requests(vec![s.request()]));
    let out = replica.step(Micros(1_000_000), Input::Tick);
    let mut asked: Vec<_> = out
        .iter()
        .filter_map(|output| match output {
            Output::Broadcast(signed) => match signed.message {
                Message::ViewChange { new_view, passive, .. } => Some((new_view, passive)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    asked.dedup();
    // Its bound is view 6: view 1 (the next) or 6 it may have asked for before its log was lost.
    assert_eq!(asked, vec![(View(7), true)]);
    assert_eq!(replica.changing_to(), Some(View(7)));
}

#[test]
fn a_new_view_needs_a_quorum_of_intact_senders_or_every_member() {
    let s = swarm();
    let intact = |ids: &[u32]| ids.iter().map(|&id| s.view_change(id, false)).collect::<Vec<_>>();
    let passive = |ids: &[u32]| ids.iter().map(|&id| s.view_change(id, true)).collect::<Vec<_>>();
    assert!(enough_view_changes(&s.committee, &intact(&[0, 1, 2])));
    // A quorum, but two senders lost the certificates they held: the fourth may hold the only one.
    assert!(!enough_view_changes(&s.committee, &[intact(&[0]), passive(&[1, 2])].concat()));
    assert!(enough_view_changes(&s.committee, &[intact(&[0]), passive(&[1, 2, 3])].concat()));
    assert!(!enough_view_changes(&s.committee, &passive(&[0, 1, 2, 3])));
}

#[test]
fn the_bound_is_learned_once_and_counted_once() {
    let s = swarm();
    let mut replica = s.passive_replica();
    replica.step(Micros(0), s.status(0, 5, 10, false));
    replica.step(Micros(0), s.status(1, 5, 10, false));
    assert_eq!((replica.passive(), replica.stats().passive_bound_learned), (Some(Passive { bound: None }), 0));
    replica.step(Micros(0), s.status(2, 5, 10, false));
    let learned = Some(Passive { bound: Some((View(6), Seq(10 + WINDOW))) });
    assert_eq!((replica.passive(), replica.stats().passive_bound_learned), (learned, 1));
    // Heard again, further on: the bound stands, and is not learned again.
    replica.step(Micros(0), s.status(0, 8, 30, false));
    assert_eq!((replica.passive(), replica.stats().passive_bound_learned), (learned, 1));
}
