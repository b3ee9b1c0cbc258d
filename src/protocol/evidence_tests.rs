//! Equivocation evidence holds only for two messages of one kind for one slot:
//! two honest messages of different slots or kinds never convict their sender.

use super::*;
use crate::crypto::{Digest, Keypair};
use crate::protocol::{Epoch, Seq, View};

fn committee_and_key() -> (Committee, Keypair) {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    (Committee::numbered(Epoch(0), &public_keys, "v", None).unwrap(), keys[1].clone())
}

#[test]
fn only_two_digests_for_one_kind_view_and_sequence_are_equivocation() {
    let (committee, key) = committee_and_key();
    let signed = |message| Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(1), &key));
    let (a, b) = (Digest([1; 32]), Digest([2; 32]));
    let prepare = |view, seq, digest| signed(Message::Prepare { view: View(view), seq: Seq(seq), digest });
    let commit = |view, seq, digest| signed(Message::Commit { view: View(view), seq: Seq(seq), digest });
    let checkpoint = |seq, state_digest| signed(Message::Checkpoint { seq: Seq(seq), state_digest });
    let evidence = |first, second| Evidence::Equivocation { first, second };
    assert!(evidence(prepare(0, 1, a), prepare(0, 1, b)).verify(&committee));
    assert!(evidence(checkpoint(2, a), checkpoint(2, b)).verify(&committee));
    for (first, second) in [
        (prepare(0, 1, a), prepare(0, 2, b)),
        (prepare(0, 1, a), prepare(1, 1, b)),
        (prepare(0, 1, a), commit(0, 1, b)),
        (checkpoint(2, a), checkpoint(4, b)),
        (checkpoint(1, a), prepare(0, 1, b)),
    ] {
        let (m1, m2) = (first.message.clone(), second.message.clone());
        assert!(!evidence(first, second).verify(&committee), "{m1:?} and {m2:?} convicted their sender");
    }
}
