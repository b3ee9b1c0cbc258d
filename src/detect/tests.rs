use super::*;
use crate::app::{SignedTx, Tx};
use crate::crypto::Keypair;
use crate::ledger::{AccountId, TxId};
use crate::protocol::{Batch, ClientId, Epoch, Evidence, Member, Message, Request, Seq, SignedMessage};
use std::sync::Arc;

/// n = 4, f = 1: members 0..4 with keys seeded 1..=4.
fn setup() -> (Vec<Keypair>, Committee) {
    let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, key)| Member { id: AgentId(i as u32), name: format!("a{i}"), public_key: key.public_key() })
        .collect();
    (keys, Committee::new(Epoch(0), members, None).unwrap())
}

fn spend(owner: &Keypair, to: u8, nonce: u64, id: u8) -> crate::app::SignedTx {
    let from = AccountId(owner.public_key());
    let to = AccountId(Keypair::from_seed([to; 32]).public_key());
    Tx::transfer(TxId([id; 16]), from, to, 10, nonce).sign(owner)
}

fn pre_prepare(keys: &[Keypair], sender: usize, requests: Vec<Request>) -> Arc<SignedMessage> {
    let batch = Arc::new(Batch::of(requests));
    let message = Message::PrePrepare { view: crate::protocol::View(0), seq: Seq(1), digest: batch.digest(), batch };
    Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(sender as u32), &keys[sender]))
}

fn accuse(detector: &mut Detector, accuser: u32, accused: u32) -> Option<Conviction> {
    let (accuser, accused) = (AgentId(accuser), AgentId(accused));
    detector.report(Micros(0), Report::Accusation { accuser, accused, reason: AccusationReason::BadSignature })
}

#[test]
fn an_equivocation_proof_convicts_alone_and_a_forged_one_does_not() {
    let (keys, committee) = setup();
    let vote = |digest: u8| {
        let message = Message::Prepare {
            view: crate::protocol::View(0),
            seq: Seq(3),
            digest: crate::crypto::Digest([digest; 32]),
        };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(2), &keys[2]))
    };
    let proof = Proof::Equivocation(Evidence::Equivocation { first: vote(1), second: vote(2) });
    let mut forged_second = (*vote(2)).clone();
    forged_second.signature.0[5] ^= 1;
    let forged = Proof::Equivocation(Evidence::Equivocation { first: vote(1), second: Arc::new(forged_second) });

    let mut detector = Detector::new(committee.clone(), DetectionRules::default());
    assert_eq!(detector.report(Micros(1), Report::Proof { reporter: AgentId(0), proof: forged }), None);
    assert_eq!(detector.stats().proofs_rejected, 1);
    let conviction = detector.report(Micros(2), Report::Proof { reporter: AgentId(0), proof: proof.clone() }).unwrap();
    assert_eq!(conviction.detected_agent, AgentId(2));
    assert_eq!(conviction.fault_type, "equivocation");
    assert_eq!(conviction.detection_method, DetectionMethod::SelfVerifyingEvidence);
    assert!(proof.verify(&committee), "anyone can re-check it");
    assert!(detector.report(Micros(3), Report::Proof { reporter: AgentId(1), proof }).is_none(), "convicted once");
}

fn memory_write(owner: &Keypair, nonce: u64) -> SignedTx {
    let op = crate::app::MemoryOp::Put { namespace: "ns".into(), key: "k".into(), value: b"1".to_vec(), ttl: None };
    let tx = crate::app::Tx {
        id: TxId([9; 16]),
        from: AccountId(owner.public_key()),
        nonce,
        op: crate::app::Op::Memory(op),
    };
    tx.sign(owner)
}

#[test]
fn two_spends_with_one_nonce_from_an_agents_account_convict_it() {
    let (keys, committee) = setup();
    let first = spend(&keys[3], 50, 7, 1);
    let second = spend(&keys[3], 51, 7, 2);
    let proof = Proof::DoubleSpend { first: Box::new(first.clone()), second: Box::new(second.clone()) };
    assert!(proof.verify(&committee));
    assert_eq!(proof.accused(&committee), Some(AgentId(3)));
    for not_a_proof in [
        Proof::DoubleSpend { first: Box::new(first.clone()), second: Box::new(first.clone()) },
        Proof::DoubleSpend { first: Box::new(first.clone()), second: Box::new(spend(&keys[3], 51, 8, 2)) },
        // A memory write sharing the transfer's nonce: another nonce space, both honest.
        Proof::DoubleSpend { first: Box::new(first.clone()), second: Box::new(memory_write(&keys[3], 7)) },
        // An outsider's account: nobody in the committee to convict.
        Proof::DoubleSpend {
            first: Box::new(spend(&Keypair::from_seed([60; 32]), 1, 0, 1)),
            second: Box::new(spend(&Keypair::from_seed([60; 32]), 2, 0, 2)),
        },
    ] {
        assert!(!not_a_proof.verify(&committee), "{not_a_proof:?}");
    }
    let mut detector = Detector::new(committee, DetectionRules::default());
    let conviction = detector.report(Micros(5), Report::Proof { reporter: AgentId(1), proof }).unwrap();
    assert_eq!((conviction.detected_agent, conviction.fault_type.as_str()), (AgentId(3), "double-spend"));
    assert_eq!(conviction.evidence["nonce"], 7);
}

#[test]
fn a_primary_signed_pre_prepare_with_a_forged_transfer_convicts_the_primary() {
    let (keys, committee) = setup();
    let owner = Keypair::from_seed([70; 32]);
    let honest = Request { client: ClientId(0), tx: spend(&owner, 1, 0, 1) };
    let mut forged = Request { client: ClientId(0), tx: spend(&owner, 1, 1, 2) };
    forged.tx.tx.as_transfer_mut().unwrap().amount = 1_000_000;
    let proof =
        Proof::InvalidProposal { pre_prepare: pre_prepare(&keys, 0, vec![honest.clone(), forged.clone()]), index: 1 };
    assert!(proof.verify(&committee));
    let wrong_index =
        Proof::InvalidProposal { pre_prepare: pre_prepare(&keys, 0, vec![honest.clone(), forged.clone()]), index: 0 };
    let not_the_primary = Proof::InvalidProposal { pre_prepare: pre_prepare(&keys, 1, vec![forged]), index: 0 };
    assert!(!wrong_index.verify(&committee));
    assert!(!not_the_primary.verify(&committee));
    let mut detector = Detector::new(committee, DetectionRules::default());
    let conviction = detector.report(Micros(0), Report::Proof { reporter: AgentId(2), proof }).unwrap();
    assert_eq!((conviction.detected_agent, conviction.fault_type.as_str()), (AgentId(0), "invalid-proposal"));
}

#[test]
fn accusations_convict_at_f_plus_one_distinct_accusers_only() {
    let (_, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    assert!(accuse(&mut detector, 0, 3).is_none());
    assert!(accuse(&mut detector, 0, 3).is_none(), "one accuser counts once, however often it reports");
    let conviction = accuse(&mut detector, 1, 3).expect("f+1 = 2 distinct accusers");
    assert_eq!(conviction.detection_method, DetectionMethod::FPlusOneAccusations);
    assert_eq!(conviction.votes_against, 2);
    assert!(detector.is_convicted(AgentId(3)));
}

#[test]
fn a_convicted_agent_accuses_no_one() {
    let (_, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    assert!(accuse(&mut detector, 3, 0).is_none());
    assert!(accuse(&mut detector, 1, 3).is_none());
    assert!(accuse(&mut detector, 2, 3).is_some(), "3 is convicted");
    // 3's earlier accusation of 0 no longer counts, nor do new ones: one more accuser is not enough.
    assert!(accuse(&mut detector, 3, 0).is_none());
    assert_eq!(detector.stats().reports_from_convicted, 1);
    assert!(accuse(&mut detector, 1, 0).is_none(), "only one counting accuser of 0");
    assert!(!detector.is_convicted(AgentId(0)));
}

/// Epoch 0 is {0,1,2,3}; epoch 1 removed 3 and added 4. The liar 3 accused 0
/// in epoch 0, the liar 4 accuses it in epoch 1: one liar per epoch, never
/// f+1 accusers of one committee, so 0 stays free. A proof still convicts at
/// once after the change.
#[test]
fn accusations_of_different_epochs_never_add_up() {
    let (keys, committee) = setup();
    let mut detector = Detector::new(committee.clone(), DetectionRules::default());
    assert!(accuse(&mut detector, 3, 0).is_none());
    let mut members = committee.members()[..3].to_vec();
    members.push(Member { id: AgentId(4), name: "a4".into(), public_key: Keypair::from_seed([5; 32]).public_key() });
    let next = Committee::new(Epoch(1), members, None).unwrap();
    detector.update_committee(next.clone());
    assert!(accuse(&mut detector, 4, 0).is_none(), "liars of two epochs added up");
    assert!(!detector.is_convicted(AgentId(0)));
    assert!(accuse(&mut detector, 1, 0).is_some(), "f+1 accusers of one epoch still convict");

    let vote = |digest: u8| {
        let message = Message::Commit {
            view: crate::protocol::View(2),
            seq: Seq(3),
            digest: crate::crypto::Digest([digest; 32]),
        };
        Arc::new(SignedMessage::sign(message, Epoch(1), AgentId(2), &keys[2]))
    };
    let proof = Proof::Equivocation(Evidence::Equivocation { first: vote(1), second: vote(2) });
    assert!(detector.report(Micros(1), Report::Proof { reporter: AgentId(4), proof }).is_some());
}

/// Accusations and strikes expire: honest slips far apart never convict,
/// the same reports close together do.
#[test]
fn old_accusations_and_strikes_are_forgotten() {
    let (_, committee) = setup();
    let rules = DetectionRules { report_max_age_us: 1_000, ..DetectionRules::default() };
    let mut detector = Detector::new(committee.clone(), rules.clone());
    let accusation = |accuser: u32| Report::Accusation {
        accuser: AgentId(accuser),
        accused: AgentId(0),
        reason: AccusationReason::Flood,
    };
    assert!(detector.report(Micros(0), accusation(3)).is_none());
    assert!(detector.report(Micros(1_001), accusation(2)).is_none(), "an expired accusation counted");
    assert!(detector.report(Micros(1_500), accusation(1)).is_some(), "two fresh accusers convict");

    let strike = |reporter: u32, view: u64| Report::CensorshipStrike {
        reporter: AgentId(reporter),
        primary: AgentId(1),
        view: crate::protocol::View(view),
    };
    let mut spread = Detector::new(committee.clone(), rules.clone());
    let mut close = Detector::new(committee, rules);
    for (i, view) in [1u64, 5, 9].into_iter().enumerate() {
        for reporter in [2, 3] {
            assert!(spread.report(Micros(i as u64 * 2_000), strike(reporter, view)).is_none());
            let verdict = close.report(Micros(i as u64 * 100), strike(reporter, view));
            assert_eq!(verdict.is_some(), view == 9 && reporter == 3);
        }
    }
    assert!(!spread.is_convicted(AgentId(1)), "three slow views far apart convicted an honest primary");
}

#[test]
fn censorship_strikes_need_f_plus_one_reporters_per_view_and_repeat_to_convict() {
    let (_, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    let strike = |detector: &mut Detector, reporter: u32, view: u64| {
        let report = Report::CensorshipStrike {
            reporter: AgentId(reporter),
            primary: AgentId(0),
            view: crate::protocol::View(view),
        };
        detector.report(Micros(view), report)
    };
    for view in [0, 4, 8] {
        assert!(strike(&mut detector, 1, view).is_none(), "one reporter in view {view} is no strike");
    }
    assert!(strike(&mut detector, 2, 0).is_none());
    assert!(strike(&mut detector, 2, 4).is_none());
    let conviction = strike(&mut detector, 2, 8).expect("three confirmed strikes");
    assert_eq!(
        (conviction.fault_type.as_str(), conviction.detection_method),
        ("censorship", DetectionMethod::RepeatedCensorship)
    );
}

#[test]
fn a_strike_counts_only_against_the_primary_of_its_view() {
    let (_, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    // Agent 1 leads views 1, 5, 9; strikes naming it for views 0, 4, 8 (agent 0's) count for nothing.
    for view in [0, 4, 8] {
        for reporter in [2, 3] {
            let report = Report::CensorshipStrike {
                reporter: AgentId(reporter),
                primary: AgentId(1),
                view: crate::protocol::View(view),
            };
            assert!(detector.report(Micros(view), report).is_none());
        }
    }
    assert!(!detector.is_convicted(AgentId(1)));
    assert_eq!(detector.stats().strikes_not_against_primary, 6);
}

#[test]
fn a_double_spend_a_replica_found_is_reported_as_proof_against_both_transfers() {
    let (_, committee) = setup();
    let owner = Keypair::from_seed([60; 32]);
    let (executed, conflicting) = (Box::new(spend(&owner, 7, 0, 1)), Box::new(spend(&owner, 8, 0, 2)));
    let output = crate::protocol::Output::DoubleSpend { executed: executed.clone(), conflicting: conflicting.clone() };
    let proof = Proof::DoubleSpend { first: executed, second: conflicting };
    assert_eq!(report_output(AgentId(2), &output, &committee), Some(Report::Proof { reporter: AgentId(2), proof }));
}

// What reports the detector ignores and counts, and what a rejection reports.
#[path = "report_tests.rs"]
mod report_tests;
