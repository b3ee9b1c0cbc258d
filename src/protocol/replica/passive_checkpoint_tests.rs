//! A passive replica (its log lost) in a working swarm: it executes what its
//! peers commit, signs no checkpoint and no vote up to its bound (it may
//! have signed them before), and once a checkpoint at its bound is stable on
//! its peers' signatures it is active again (found by mutation testing,
//! README "Mutation testing").

use crate::protocol::replica::tests::params;
use crate::protocol::replica::tests::test_swarm::swarm;
use crate::protocol::{AgentId, Input, Message, Passive, Replica, Seq, View};

#[test]
fn a_passive_replica_signs_nothing_up_to_its_bound_and_is_active_past_it() {
    let mut s = swarm();
    let keypair = s.f.keys[3].clone();
    let lost_its_log = Replica::new(AgentId(3), keypair, s.committee.clone(), params(), s.f.genesis.clone());
    s.replicas[3] = lost_its_log.forget_what_it_signed();
    // Its three peers, intact, say nothing executed in view 0: its bound is view 1, seq 4 (one window).
    for peer in 0..3 {
        let status = Message::Status { view: View(0), low_water: Seq(0), last_executed: Seq(0), passive: false };
        let signed = s.f.signed(peer, status);
        s.step(3, Input::Message(signed));
    }
    assert_eq!(s.replicas[3].passive(), Some(Passive { bound: Some((View(1), Seq(4))) }));
    // Six batches of two (at most ten requests wait at once).
    s.submit(0..8);
    s.submit(8..12);
    let replica = &s.replicas[3];
    assert_eq!((replica.last_executed(), replica.stable_checkpoint().seq), (Seq(6), Seq(6)));
    assert!(!replica.is_passive(), "its stable checkpoint reached its bound");
    let sent = s.sent_since(0, 3);
    let checkpoints: Vec<Seq> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Checkpoint { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(checkpoints, vec![Seq(6)], "it signed a checkpoint at or below its bound");
    let mut voted: Vec<Seq> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Prepare { seq, .. } | Message::Commit { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    voted.sort();
    voted.dedup();
    assert_eq!(voted, vec![Seq(5), Seq(6)], "it voted at or below its bound");
}
