//! Detection in the simulation: every validator's node's reports (what its
//! verifier refused, what its replica proved) go to one [`Detector`], as they would to the detector actor; a
//! conviction of an agent that is not Byzantine in this run is a violation
//! (the false-positive rate must be 0).

use super::invariants::Violation;
use crate::detect::{DetectionRules, Detector, Report};
use crate::protocol::{AgentId, Committee, Micros, View};
use std::collections::{BTreeMap, BTreeSet};

pub struct SimDetection {
    detector: Detector,
    byzantine: BTreeSet<AgentId>,
    pub convicted: Vec<AgentId>,
    pub convicted_set: BTreeSet<AgentId>,
    /// (primary, view) -> who reported a censorship strike there, to measure
    /// how close honest primaries come to a conviction.
    strike_reporters: BTreeMap<(AgentId, View), BTreeSet<AgentId>>,
    /// Primary -> views in which f+1 members reported it.
    confirmed_strikes: BTreeMap<AgentId, usize>,
    f: usize,
    violations: Vec<Violation>,
}

impl SimDetection {
    pub fn new(committee: Committee, byzantine: BTreeSet<AgentId>, rules: DetectionRules) -> SimDetection {
        let f = committee.f();
        let detector = Detector::new(committee, rules);
        let (convicted, convicted_set) = (Vec::new(), BTreeSet::new());
        let (strike_reporters, confirmed_strikes) = (BTreeMap::new(), BTreeMap::new());
        let violations = Vec::new();
        SimDetection {
            detector,
            byzantine,
            convicted,
            convicted_set,
            strike_reporters,
            confirmed_strikes,
            f,
            violations,
        }
    }

    /// A new membership epoch: reports are judged against it from now on.
    pub fn on_committee(&mut self, committee: &Committee) {
        self.f = committee.f();
        self.detector.update_committee(committee.clone());
    }

    /// A report as it reaches the detector: a validator's own, or a lie.
    pub fn report(&mut self, now: Micros, report: Report) {
        if let Report::CensorshipStrike { reporter, primary, view } = report {
            let reporters = self.strike_reporters.entry((primary, view)).or_default();
            if reporters.insert(reporter) && reporters.len() == self.f + 1 {
                *self.confirmed_strikes.entry(primary).or_default() += 1;
            }
        }
        let Some(conviction) = self.detector.report(now, report) else { return };
        let agent = conviction.detected_agent;
        if !self.byzantine.contains(&agent) {
            self.violations.push(Violation::FalseConviction { agent, fault_type: conviction.fault_type });
        }
        self.convicted.push(agent);
        self.convicted_set.insert(agent);
    }

    /// The most views in which f+1 members reported one honest primary for
    /// censorship: strikes that would convict it at the strike threshold.
    pub fn most_strikes_against_honest(&self) -> usize {
        let honest = self.confirmed_strikes.iter().filter(|(primary, _)| !self.byzantine.contains(primary));
        honest.map(|(_, strikes)| *strikes).max().unwrap_or(0)
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }
}
