use super::*;
use crate::crypto::Digest;
use crate::protocol::{Epoch, Seq, View};

fn setup() -> (Vec<Keypair>, Committee) {
    let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    (keys.clone(), Committee::numbered(Epoch(0), &public_keys, "a", None).unwrap())
}

fn adversary(keys: &[Keypair], fault_type: FaultType, probability: f64, after_us: u64) -> Adversary {
    Adversary::new(AgentId(0), keys[0].clone(), FaultSpec { fault_type, probability, after_us }, 9)
}

fn prepare(keys: &[Keypair]) -> Output {
    let message = Message::Prepare { view: View(0), seq: Seq(1), digest: Digest([1; 32]) };
    Output::Broadcast(Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &keys[0])))
}

#[test]
fn silent_sends_nothing_once_it_started_and_everything_before() {
    let (keys, committee) = setup();
    let mut silent = adversary(&keys, FaultType::Silent, 1.0, 100);
    assert_eq!(silent.rewrite(Micros(99), vec![prepare(&keys)], &committee).len(), 1);
    assert!(silent.rewrite(Micros(100), vec![prepare(&keys), prepare(&keys)], &committee).is_empty());
    // What it does locally is not sending: its own observers still hear of it.
    let local = Output::CheckpointStable { seq: Seq(2), state_digest: Digest([3; 32]), ledger_digest: Digest([4; 32]) };
    assert_eq!(silent.rewrite(Micros(101), vec![local], &committee).len(), 1);
}

#[test]
fn corrupted_signatures_no_longer_verify() {
    let (keys, committee) = setup();
    let mut corrupting = adversary(&keys, FaultType::SignatureCorruption, 1.0, 0);
    let out = corrupting.rewrite(Micros(0), vec![prepare(&keys)], &committee);
    let Output::Broadcast(signed) = &out[0] else { panic!("{out:?}") };
    let key = keys[0].public_key().verifying_key().unwrap();
    assert!(!signed.signature.verify(&key, &signed.signing_bytes()));
}

#[test]
fn equivocating_primary_sends_two_batches_to_two_groups() {
    let (keys, committee) = setup();
    let owner = Keypair::from_seed([50; 32]);
    let from = crate::ledger::AccountId(owner.public_key());
    let requests: Vec<Request> = (0..2u64)
        .map(|nonce| {
            let transfer = Tx::transfer(crate::ledger::TxId([nonce as u8; 16]), from, from, 1, nonce);
            Request { client: crate::protocol::ClientId(0), tx: transfer.sign(&owner) }
        })
        .collect();
    let batch = Arc::new(Batch::of(requests));
    let digest = batch.digest();
    let message = Message::PrePrepare { view: View(0), seq: Seq(1), digest, batch };
    let pre_prepare = Output::Broadcast(Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &keys[0])));
    let mut equivocating = adversary(&keys, FaultType::Equivocation, 1.0, 0);
    let out = equivocating.rewrite(Micros(0), vec![pre_prepare], &committee);
    let mut digests_per_peer = std::collections::BTreeMap::new();
    for output in &out {
        if let Output::SendTo(peer, signed) = output {
            if let Message::PrePrepare { digest, .. } = signed.message {
                digests_per_peer.insert(*peer, digest);
            }
        }
    }
    assert_eq!(digests_per_peer.len(), 3, "every backup gets one pre-prepare");
    let distinct: std::collections::BTreeSet<_> = digests_per_peer.values().collect();
    assert_eq!(distinct.len(), 2, "two different batches for one slot");
}

#[test]
fn censorship_drops_requests_before_the_replica_sees_them_and_other_faults_do_not() {
    let (keys, _) = setup();
    let owner = Keypair::from_seed([50; 32]);
    let from = crate::ledger::AccountId(owner.public_key());
    let transfer = Tx::transfer(crate::ledger::TxId([1; 16]), from, from, 1, 0);
    let request = Request { client: crate::protocol::ClientId(0), tx: transfer.sign(&owner) };
    let mut censoring = adversary(&keys, FaultType::Censorship, 1.0, 0);
    assert!(censoring.filter_requests(Micros(0), vec![request.clone()]).is_empty());
    let mut silent = adversary(&keys, FaultType::Silent, 1.0, 0);
    assert_eq!(silent.filter_requests(Micros(0), vec![request]).len(), 1);
}

#[test]
fn replay_re_sends_an_old_message_besides_the_new_ones() {
    let (keys, committee) = setup();
    let mut replaying = adversary(&keys, FaultType::Replay, 1.0, 0);
    let first = replaying.rewrite(Micros(0), vec![prepare(&keys)], &committee);
    assert_eq!(first.len(), 2, "the message and a replay of it");
    let second = replaying.rewrite(Micros(1), vec![], &committee);
    assert_eq!(second.len(), 1, "an old message re-sent with nothing new to send");
}

#[test]
fn fault_names_parse_and_unknown_ones_are_a_clear_error() {
    for fault in FaultType::ALL {
        assert_eq!(fault.name().parse::<FaultType>(), Ok(fault));
    }
    let error = "double-speak".parse::<FaultType>().unwrap_err();
    assert!(error.contains("double-speak") && error.contains("signature-corruption"), "{error}");
}

fn pre_prepare_of_one_transfer(keys: &[Keypair]) -> Output {
    let owner = Keypair::from_seed([50; 32]);
    let from = crate::ledger::AccountId(owner.public_key());
    let transfer = Tx::transfer(crate::ledger::TxId([1; 16]), from, from, 5, 0);
    let batch = Arc::new(Batch::of(vec![Request { client: crate::protocol::ClientId(0), tx: transfer.sign(&owner) }]));
    let message = Message::PrePrepare { view: View(0), seq: Seq(1), digest: batch.digest(), batch };
    Output::Broadcast(Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &keys[0])))
}

#[test]
fn an_invalid_proposal_is_signed_by_the_primary_but_carries_a_forged_transfer() {
    let (keys, committee) = setup();
    let mut forging = adversary(&keys, FaultType::InvalidProposal, 1.0, 0);
    let out = forging.rewrite(Micros(0), vec![pre_prepare_of_one_transfer(&keys)], &committee);
    let Output::Broadcast(signed) = &out[0] else { panic!("{out:?}") };
    let Message::PrePrepare { digest, batch, .. } = &signed.message else { panic!("{signed:?}") };
    let key = keys[0].public_key().verifying_key().unwrap();
    assert!(signed.signature.verify(&key, &signed.signing_bytes()), "the primary really signed it");
    assert_eq!(batch.digest(), *digest);
    assert!(!batch.requests[0].tx.verify(), "the client never signed what it carries");
    let mut verifier = crate::protocol::Verifier::new(&committee, 8);
    let rejection = crate::protocol::Rejection::InvalidClientSignature { sender: AgentId(0), index: 0 };
    assert_eq!(verifier.verify_message(signed), Err(rejection));
    let proof = crate::detect::Proof::InvalidProposal { pre_prepare: signed.clone(), index: 0 };
    assert!(proof.verify(&committee), "the backup that rejects it holds a proof against the primary");
}

#[test]
fn delay_holds_messages_until_due_and_releases_them_in_order() {
    let (keys, committee) = setup();
    let mut delaying = adversary(&keys, FaultType::Delay, 1.0, 0);
    assert!(delaying.rewrite(Micros(0), vec![prepare(&keys)], &committee).is_empty());
    assert!(delaying.rewrite(Micros(10), vec![prepare(&keys)], &committee).is_empty());
    assert_eq!(delaying.next_deadline(), Some(Micros(DELAY_US)));
    assert!(delaying.rewrite(Micros(DELAY_US - 1), vec![], &committee).is_empty());
    assert_eq!(delaying.rewrite(Micros(DELAY_US), vec![], &committee).len(), 1);
    assert_eq!(delaying.rewrite(Micros(DELAY_US + 10), vec![], &committee).len(), 1);
    assert_eq!(delaying.next_deadline(), None);
}
