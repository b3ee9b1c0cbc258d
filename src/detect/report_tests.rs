//! The detector's bookkeeping at its edges (found by mutation testing,
//! README "Mutation testing"): what a verifier's rejection reports, each
//! ignored report counted by its reason, and the bound on the views with
//! strikes remembered per primary.

use super::{accuse, pre_prepare, setup};
use crate::detect::*;
use crate::protocol::{AgentId, Epoch, Evidence, Message, Micros, Rejection, Seq, SignedMessage, View};
use std::sync::Arc;

#[test]
fn a_rejection_accuses_the_channel_for_a_bad_signature_proves_a_forged_transfer_and_reports_nothing_else() {
    let (keys, _) = setup();
    let message = pre_prepare(&keys, 0, Vec::new());
    let (receiver, channel) = (AgentId(1), AgentId(2));
    assert_eq!(
        report_rejection(receiver, channel, &message, &Rejection::BadSignature(AgentId(0))),
        Some(Report::Accusation { accuser: receiver, accused: channel, reason: AccusationReason::BadSignature }),
        "a relayed message may name an innocent signer: the channel is accused"
    );
    let forged = Rejection::InvalidClientSignature { sender: AgentId(0), index: 3 };
    assert_eq!(
        report_rejection(receiver, channel, &message, &forged),
        Some(Report::Proof {
            reporter: receiver,
            proof: Proof::InvalidProposal { pre_prepare: message.clone(), index: 3 }
        })
    );
    for unproven in [
        Rejection::WrongEpoch { expected: Epoch(1), received: Epoch(0) },
        Rejection::UnknownSender(AgentId(9)),
        Rejection::BatchDigestMismatch(AgentId(0)),
        Rejection::InvalidViewChange(AgentId(0)),
    ] {
        assert_eq!(report_rejection(receiver, channel, &message, &unproven), None, "{unproven}");
    }
}

#[test]
fn reports_from_outsiders_about_outsiders_and_around_convicted_agents_are_ignored_and_counted() {
    let (keys, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    assert!(accuse(&mut detector, 9, 0).is_none(), "an outsider accuses");
    assert!(accuse(&mut detector, 0, 9).is_none(), "an outsider is accused");
    assert!(accuse(&mut detector, 2, 2).is_none(), "a member accuses itself");
    assert_eq!(detector.stats().reports_from_non_members, 3);
    assert!(accuse(&mut detector, 0, 3).is_none());
    assert!(accuse(&mut detector, 1, 3).is_some());
    // About 3, convicted: an accusation, a strike (3 leads view 3), a proof.
    assert!(accuse(&mut detector, 2, 3).is_none());
    let strike = Report::CensorshipStrike { reporter: AgentId(0), primary: AgentId(3), view: View(3) };
    assert!(detector.report(Micros(1), strike).is_none());
    let vote = |digest: u8| {
        let message = Message::Prepare { view: View(0), seq: Seq(1), digest: crate::crypto::Digest([digest; 32]) };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(3), &keys[3]))
    };
    let proof = Proof::Equivocation(Evidence::Equivocation { first: vote(1), second: vote(2) });
    assert!(detector.report(Micros(2), Report::Proof { reporter: AgentId(1), proof }).is_none());
    // By 3, convicted.
    assert!(accuse(&mut detector, 3, 0).is_none());
    let expected = DetectorStats {
        proofs_rejected: 0,
        reports_from_non_members: 3,
        reports_from_convicted: 1,
        reports_about_convicted: 3,
        strikes_not_against_primary: 0,
    };
    assert_eq!(detector.stats(), &expected);
}

/// Agent 0 leads views 0, 4, 8, …: two confirmed strikes (views 0 and 4),
/// `fillers` views with a single report each, then a third confirmed view.
/// Whether that third one convicts: only while the first is still remembered.
fn convicted_after_fillers(fillers: u64) -> bool {
    let (_, committee) = setup();
    let mut detector = Detector::new(committee, DetectionRules::default());
    let mut strike = |reporter: u32, view: u64| {
        let report = Report::CensorshipStrike { reporter: AgentId(reporter), primary: AgentId(0), view: View(view) };
        detector.report(Micros(0), report)
    };
    for view in [0, 4] {
        assert!(strike(1, view).is_none() && strike(2, view).is_none());
    }
    for filler in 0..fillers {
        assert!(strike(1, 8 + 4 * filler).is_none());
    }
    let third = 8 + 4 * fillers;
    strike(1, third);
    strike(2, third).is_some()
}

#[test]
fn at_most_64_views_with_strikes_are_remembered_per_primary_the_oldest_forgotten_first() {
    assert!(convicted_after_fillers(61), "64 views remembered: the first strike still counts");
    assert!(!convicted_after_fillers(62), "a 65th view forgets the first");
}
