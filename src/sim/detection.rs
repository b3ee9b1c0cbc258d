//! Detection in the simulation: every validator's verifier rejections and
//! evidence go to one [`Detector`], as they would to the detector actor; a
//! conviction of an agent that is not Byzantine in this run is a violation
//! (the false-positive rate must be 0).

use super::invariants::Violation;
use crate::detect::{AccusationReason, DetectionRules, Detector, Proof, Report};
use crate::protocol::{AgentId, Committee, Evidence, Micros, Rejection, SignedMessage};
use std::collections::BTreeSet;
use std::sync::Arc;

pub struct SimDetection {
    detector: Detector,
    byzantine: BTreeSet<AgentId>,
    pub convicted: Vec<AgentId>,
    violations: Vec<Violation>,
}

impl SimDetection {
    pub fn new(committee: Committee, byzantine: BTreeSet<AgentId>) -> SimDetection {
        let detector = Detector::new(committee, DetectionRules::default());
        SimDetection { detector, byzantine, convicted: Vec::new(), violations: Vec::new() }
    }

    /// A new membership epoch: reports are judged against it from now on.
    pub fn on_committee(&mut self, committee: &Committee) {
        self.detector.update_committee(committee.clone());
    }

    /// `receiver`'s verifier refused `message`, handed over by `channel`: a bad
    /// signature accuses the channel (a relayed message may name an innocent
    /// signer); a pre-prepare carrying a forged transfer is a proof against
    /// its signer, whoever relayed it.
    pub fn on_rejection(
        &mut self,
        now: Micros,
        receiver: AgentId,
        channel: AgentId,
        message: &Arc<SignedMessage>,
        rejection: &Rejection,
    ) {
        let report = match rejection {
            Rejection::BadSignature(_) => {
                Report::Accusation { accuser: receiver, accused: channel, reason: AccusationReason::BadSignature }
            }
            Rejection::InvalidClientSignature { index, .. } => Report::Proof {
                reporter: receiver,
                proof: Proof::InvalidProposal { pre_prepare: message.clone(), index: *index },
            },
            _ => return,
        };
        self.report(now, report);
    }

    pub fn on_evidence(&mut self, now: Micros, reporter: AgentId, evidence: &Evidence) {
        self.report(now, Report::Proof { reporter, proof: Proof::Equivocation(evidence.clone()) });
    }

    fn report(&mut self, now: Micros, report: Report) {
        let Some(conviction) = self.detector.report(now, report) else { return };
        let agent = conviction.detected_agent;
        if !self.byzantine.contains(&agent) {
            self.violations.push(Violation::FalseConviction { agent, fault_type: conviction.fault_type });
        }
        self.convicted.push(agent);
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }
}
