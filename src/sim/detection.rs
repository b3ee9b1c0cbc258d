//! Detection in the simulation: every validator's verifier rejections and
//! evidence go to one [`Detector`], as they would to the detector actor; a
//! conviction of an agent that is not Byzantine in this run is a violation
//! (the false-positive rate must be 0).

use super::invariants::Violation;
use crate::detect::{report_output, report_rejection, DetectionRules, Detector, Report};
use crate::protocol::{AgentId, Committee, Micros, Output, Rejection, SignedMessage};
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

    /// `receiver`'s verifier refused `message`, handed over by `channel`.
    pub fn on_rejection(
        &mut self,
        now: Micros,
        receiver: AgentId,
        channel: AgentId,
        message: &Arc<SignedMessage>,
        rejection: &Rejection,
    ) {
        if let Some(report) = report_rejection(receiver, channel, message, rejection) {
            self.report(now, report);
        }
    }

    /// What `reporter`'s replica found: evidence, a double spend, a censorship strike.
    pub fn on_output(&mut self, now: Micros, reporter: AgentId, output: &Output, committee: &Committee) {
        if let Some(report) = report_output(reporter, output, committee) {
            self.report(now, report);
        }
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
