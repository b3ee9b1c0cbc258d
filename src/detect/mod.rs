//! Detection (DESIGN §7) as pure rules: reports go in, convictions come out.
//!
//! - **Self-verifying evidence** ([`Proof`]) convicts on its own once it
//!   verifies against the committee; anyone can re-check it.
//! - **Accusations** (a bad signature or a flood seen on an authenticated
//!   channel) convict only when f+1 distinct members accuse the same agent, so
//!   at least one accuser is honest. An accusation from a convicted agent no
//!   longer counts, and one agent counts once however many instances of it
//!   (twins sharing a key) report.
//! - **Censorship** cannot be proven: a primary voted out while requests
//!   waited earns a strike when f+1 members report it for a view it led (so
//!   one honest member saw requests wait); three strikes in distinct views
//!   convict. An honest primary behind a lossy, partitioned or slow link
//!   earns a strike now and then — at most one per run in the simulation's
//!   scenarios, even with f liars co-signing every view change — never three.
//! - **Accusations and strikes forget**: they count within one membership
//!   epoch and for [`DetectionRules::report_max_age_us`], so liars of
//!   different epochs, or honest slips far apart, never add up. Proofs need
//!   no count and convict at once in any epoch.
//!
//! No actix, clock or randomness: the detector actor and the simulation run
//! the same [`Detector`], so the simulation can check that no honest agent is
//! ever convicted.

mod proof;
mod reports;
#[cfg(test)]
mod tests;

pub use proof::{Proof, ProvenFault};
pub use reports::{report_output, report_rejection};

use crate::protocol::{AgentId, Committee, Micros, View};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccusationReason {
    BadSignature,
    Flood,
}

/// Serializable: a validator in another process sends its reports to the hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Proof {
        reporter: AgentId,
        proof: Proof,
    },
    Accusation {
        accuser: AgentId,
        accused: AgentId,
        reason: AccusationReason,
    },
    /// `reporter` voted `primary` out of `view` because requests waited unordered.
    CensorshipStrike {
        reporter: AgentId,
        primary: AgentId,
        view: View,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectionMethod {
    SelfVerifyingEvidence,
    FPlusOneAccusations,
    RepeatedCensorship,
    /// The operator quarantined the agent (`byzantine quarantine`); no proof.
    OperatorDecision,
}

impl DetectionMethod {
    pub fn name(self) -> &'static str {
        match self {
            DetectionMethod::SelfVerifyingEvidence => "self-verifying-evidence",
            DetectionMethod::FPlusOneAccusations => "f-plus-one-accusations",
            DetectionMethod::RepeatedCensorship => "repeated-censorship",
            DetectionMethod::OperatorDecision => "operator-decision",
        }
    }
}

impl Report {
    /// The member whose report this is.
    pub fn reporter(&self) -> AgentId {
        match self {
            Report::Proof { reporter, .. } => *reporter,
            Report::Accusation { accuser, .. } => *accuser,
            Report::CensorshipStrike { reporter, .. } => *reporter,
        }
    }
}

/// A conviction, in the shape of the tutorial's detection-log record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conviction {
    pub detected_agent: AgentId,
    pub fault_type: String,
    pub detection_method: DetectionMethod,
    pub evidence: serde_json::Value,
    /// Distinct members whose reports led to the conviction.
    pub votes_against: usize,
    pub at: Micros,
}

#[derive(Clone, Debug)]
pub struct DetectionRules {
    /// Censorship strikes (in distinct views) that convict.
    pub strikes_to_convict: usize,
    /// How long an accusation or a strike counts: honest slips (a slow view,
    /// a lossy link) months apart never add up to a conviction.
    pub report_max_age_us: u64,
}

/// Ten minutes: far longer than a burst of attacks, far shorter than a swarm's life.
pub const DEFAULT_REPORT_MAX_AGE_US: u64 = 600_000_000;

/// Views with strikes remembered per primary; the oldest is forgotten first.
const MAX_STRUCK_VIEWS: usize = 64;

impl Default for DetectionRules {
    fn default() -> DetectionRules {
        DetectionRules { strikes_to_convict: 3, report_max_age_us: DEFAULT_REPORT_MAX_AGE_US }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    pub proofs_rejected: u64,
    pub reports_from_non_members: u64,
    pub reports_from_convicted: u64,
    pub reports_about_convicted: u64,
    pub strikes_not_against_primary: u64,
}

pub struct Detector {
    committee: Committee,
    rules: DetectionRules,
    convicted: BTreeMap<AgentId, Conviction>,
    /// Accused -> the members accusing it in this epoch, and when each last did.
    accusers: BTreeMap<AgentId, BTreeMap<AgentId, Micros>>,
    /// Primary -> view -> when the first strike there came, and the members
    /// that reported one, in this epoch.
    strikes: BTreeMap<AgentId, BTreeMap<View, (Micros, BTreeSet<AgentId>)>>,
    stats: DetectorStats,
}

impl Detector {
    pub fn new(committee: Committee, rules: DetectionRules) -> Detector {
        Detector {
            committee,
            rules,
            convicted: BTreeMap::new(),
            accusers: BTreeMap::new(),
            strikes: BTreeMap::new(),
            stats: DetectorStats::default(),
        }
    }

    /// The committee accusations are weighed against.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// A new membership epoch: proofs and reports are judged against it from
    /// now on; convictions stay. Accusations and strikes of the old epoch are
    /// forgotten: f+1 counts within one committee, and f liars of one epoch
    /// plus f of the next must not add up against an honest agent.
    pub fn update_committee(&mut self, committee: Committee) {
        if committee.epoch() != self.committee.epoch() {
            self.accusers.clear();
            self.strikes.clear();
        }
        self.committee = committee;
    }

    /// Drops accusations and strikes older than the rules allow.
    fn forget_old_reports(&mut self, now: Micros) {
        let max_age = self.rules.report_max_age_us;
        let fresh = |at: &Micros| now.saturating_sub(*at) <= max_age;
        for accusers in self.accusers.values_mut() {
            accusers.retain(|_, at| fresh(at));
        }
        self.accusers.retain(|_, accusers| !accusers.is_empty());
        for views in self.strikes.values_mut() {
            views.retain(|_, (at, _)| fresh(at));
        }
        self.strikes.retain(|_, views| !views.is_empty());
    }

    pub fn is_convicted(&self, agent: AgentId) -> bool {
        self.convicted.contains_key(&agent)
    }

    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    /// Takes one report; returns the conviction it completes, if any.
    pub fn report(&mut self, now: Micros, report: Report) -> Option<Conviction> {
        let reporter = report.reporter();
        if !self.committee.contains(reporter) {
            self.stats.reports_from_non_members += 1;
            return None;
        }
        if self.is_convicted(reporter) {
            self.stats.reports_from_convicted += 1;
            return None;
        }
        self.forget_old_reports(now);
        let conviction = match report {
            Report::Proof { proof, .. } => self.on_proof(now, proof),
            Report::Accusation { accuser, accused, reason } => self.on_accusation(now, accuser, accused, reason),
            Report::CensorshipStrike { reporter, primary, view } => self.on_strike(now, reporter, primary, view),
        }?;
        self.convict(conviction.clone());
        Some(conviction)
    }

    fn on_proof(&mut self, now: Micros, proof: Proof) -> Option<Conviction> {
        let accused = proof.accused(&self.committee);
        let Some(accused) = accused.filter(|_| proof.verify(&self.committee)) else {
            self.stats.proofs_rejected += 1;
            return None;
        };
        if self.is_convicted(accused) {
            self.stats.reports_about_convicted += 1;
            return None;
        }
        Some(Conviction {
            detected_agent: accused,
            fault_type: proof.fault().name().into(),
            detection_method: DetectionMethod::SelfVerifyingEvidence,
            evidence: proof.describe(),
            votes_against: 1,
            at: now,
        })
    }

    fn on_accusation(
        &mut self,
        now: Micros,
        accuser: AgentId,
        accused: AgentId,
        reason: AccusationReason,
    ) -> Option<Conviction> {
        if !self.committee.contains(accused) || accuser == accused {
            self.stats.reports_from_non_members += 1;
            return None;
        }
        if self.is_convicted(accused) {
            self.stats.reports_about_convicted += 1;
            return None;
        }
        let accusers = self.accusers.entry(accused).or_default();
        accusers.insert(accuser, now);
        let votes = accusers.len();
        let needed = self.committee.f() + 1;
        (votes >= needed).then(|| Conviction {
            detected_agent: accused,
            fault_type: match reason {
                AccusationReason::BadSignature => "signature-corruption".into(),
                AccusationReason::Flood => "flood".into(),
            },
            detection_method: DetectionMethod::FPlusOneAccusations,
            evidence: serde_json::json!({
                "reason": reason,
                "accusers": accusers.keys().map(|id| id.0).collect::<Vec<_>>(),
            }),
            votes_against: votes,
            at: now,
        })
    }

    fn on_strike(&mut self, now: Micros, reporter: AgentId, primary: AgentId, view: View) -> Option<Conviction> {
        // Only a view's own primary can be struck for it: a liar naming
        // another agent would otherwise need just one honest report there.
        if self.committee.primary(view) != primary {
            self.stats.strikes_not_against_primary += 1;
            return None;
        }
        if !self.committee.contains(primary) || self.is_convicted(primary) {
            self.stats.reports_about_convicted += 1;
            return None;
        }
        let views = self.strikes.entry(primary).or_default();
        views.entry(view).or_insert_with(|| (now, BTreeSet::new())).1.insert(reporter);
        while views.len() > MAX_STRUCK_VIEWS {
            views.pop_first();
        }
        let needed = self.committee.f() + 1;
        let confirmed: Vec<View> =
            views.iter().filter(|(_, (_, reporters))| reporters.len() >= needed).map(|(view, _)| *view).collect();
        (confirmed.len() >= self.rules.strikes_to_convict).then(|| Conviction {
            detected_agent: primary,
            fault_type: "censorship".into(),
            detection_method: DetectionMethod::RepeatedCensorship,
            evidence: serde_json::json!({ "views_voted_out": confirmed.iter().map(|v| v.0).collect::<Vec<_>>() }),
            votes_against: needed,
            at: now,
        })
    }

    /// Records the conviction; the convicted agent's own accusations and
    /// strikes stop counting against anyone.
    fn convict(&mut self, conviction: Conviction) {
        let agent = conviction.detected_agent;
        self.convicted.insert(agent, conviction);
        for accusers in self.accusers.values_mut() {
            accusers.remove(&agent);
        }
        for views in self.strikes.values_mut() {
            for (_, reporters) in views.values_mut() {
                reporters.remove(&agent);
            }
        }
    }
}
