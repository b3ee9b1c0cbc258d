//! The Byzantine agents of [`super::Scenario::ByzantineAgents`]: who they are
//! and the two roles that live in the simulation rather than in
//! [`crate::faults`] — twins and false accusers.
//!
//! - A **twin** is one agent (one key, one [`AgentId`]) running as two
//!   instances, each an honest replica (Diem's Twins): the network hands each
//!   message for it to one instance or both, and both send. Their views of the
//!   swarm drift apart, so they sign conflicting messages for one slot.
//! - A **false accuser** is a lying validator: it tells the detector it saw a
//!   bad signature or a flood from an honest agent. The coalition accuses one
//!   victim together, the strongest lie f agents can tell; each instance of a
//!   twin accuser reports on its own. It also reports a censorship strike
//!   against the primary of every view it leaves, requests waiting or not, so
//!   one honest strike report in a view is enough to confirm a strike there.

use crate::detect::{AccusationReason, Report};
use crate::faults::{FaultSpec, FaultType};
use crate::protocol::{AgentId, Committee, Micros, Output};
use crate::rng::SeededRng;

/// One Byzantine agent; its faults and roles combine.
#[derive(Clone, Debug, PartialEq)]
pub struct ByzantineAgent {
    pub id: AgentId,
    /// Faults of [`crate::faults`], applied one after the other to what it sends.
    pub faults: Vec<FaultSpec>,
    /// Runs as two instances sharing its key.
    pub twin: bool,
    /// Honest agents it falsely accuses, and when.
    pub accuses: Option<FalseAccusation>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FalseAccusation {
    pub victim: AgentId,
    pub reason: AccusationReason,
    pub at_us: u64,
}

/// The f Byzantine agents of one run (f of the first committee, `validators`
/// members); twins count as one agent. The first may be the view-0 primary,
/// where twins and a faulty primary do the most harm.
pub fn draw_agents(rng: &mut SeededRng, validators: usize) -> Vec<ByzantineAgent> {
    let f = (validators - 1) / 3;
    let mut candidates: Vec<AgentId> = (0..validators as u32).map(AgentId).collect();
    let first = if rng.chance(0.5) { 0 } else { rng.below(validators as u64) as usize };
    let mut ids = vec![candidates.remove(first)];
    while ids.len() < f {
        ids.push(candidates.remove(rng.below(candidates.len() as u64) as usize));
    }
    let victim = candidates[rng.below(candidates.len() as u64) as usize];
    ids.into_iter()
        .map(|id| {
            let twin = rng.chance(0.35);
            let accuses = rng.chance(0.4).then(|| accusation(rng, victim, 300_000));
            let fault_count = match (twin, accuses.is_some()) {
                (true, _) => 0,
                (false, true) => rng.below(3),
                (false, false) => rng.between(1, 2),
            };
            let mut types = FaultType::ALL.to_vec();
            let faults = (0..fault_count)
                .map(|_| {
                    let fault_type = types.remove(rng.below(types.len() as u64) as usize);
                    FaultSpec {
                        fault_type,
                        probability: rng.between(30, 100) as f64 / 100.0,
                        after_us: rng.between(0, 50_000),
                    }
                })
                .collect();
            ByzantineAgent { id, faults, twin, accuses }
        })
        .collect()
}

/// The f liars of [`super::Scenario::ViewChangeLiars`], drawn at random, the
/// first in half the runs the view-0 primary (whose withheld pre-prepares
/// start the view changes it lies in); they have no fault of [`crate::faults`].
pub fn liars(rng: &mut SeededRng, validators: usize) -> Vec<ByzantineAgent> {
    let f = (validators - 1) / 3;
    let mut candidates: Vec<AgentId> = (0..validators as u32).map(AgentId).collect();
    let first = if rng.chance(0.5) { 0 } else { rng.below(validators as u64) as usize };
    let mut ids = vec![candidates.remove(first)];
    while ids.len() < f {
        ids.push(candidates.remove(rng.below(candidates.len() as u64) as usize));
    }
    ids.into_iter().map(|id| ByzantineAgent { id, faults: Vec::new(), twin: false, accuses: None }).collect()
}

/// The view-change liars of [`super::Scenario::RetiredCoalition`]: f of the
/// `founders` validators the operator adds (ids `founders..2 * founders`),
/// who stay when the founders retire and conspire with them.
pub fn joining_liars(rng: &mut SeededRng, founders: usize) -> Vec<ByzantineAgent> {
    let mut candidates: Vec<u32> = (founders as u32..2 * founders as u32).collect();
    (0..(founders - 1) / 3)
        .map(|_| candidates.remove(rng.below(candidates.len() as u64) as usize))
        .map(|id| ByzantineAgent { id: AgentId(id), faults: Vec::new(), twin: false, accuses: None })
        .collect()
}

/// A coalition of f false accusers (agents 1..=f: not the first primary, whose
/// twins would be convicted of equivocation before they lie) against one
/// honest victim, early in the run; with `twin`, the first runs as twins.
pub fn false_accusers(rng: &mut SeededRng, validators: usize, twin: bool) -> Vec<ByzantineAgent> {
    let f = (validators - 1) / 3;
    let mut honest: Vec<u32> = (0..validators as u32).filter(|i| *i == 0 || *i > f as u32).collect();
    let victim = AgentId(honest.remove(rng.below(honest.len() as u64) as usize));
    (1..=f as u32)
        .map(|i| ByzantineAgent {
            id: AgentId(i),
            faults: Vec::new(),
            twin: twin && i == 1,
            accuses: Some(accusation(rng, victim, 100_000)),
        })
        .collect()
}

fn accusation(rng: &mut SeededRng, victim: AgentId, within_us: u64) -> FalseAccusation {
    let reason = if rng.chance(0.5) { AccusationReason::BadSignature } else { AccusationReason::Flood };
    FalseAccusation { victim, reason, at_us: rng.between(0, within_us) }
}

/// One instance's lie: told once, at its first step at or after the chosen time.
#[derive(Clone, Debug)]
pub struct FalseAccuser {
    accusation: FalseAccusation,
    told: bool,
}

impl FalseAccuser {
    pub fn new(accusation: FalseAccusation) -> FalseAccuser {
        FalseAccuser { accusation, told: false }
    }

    /// The report to hand the detector now, if it is due.
    pub fn report(&mut self, now: Micros, me: AgentId) -> Option<Report> {
        if self.told || now.0 < self.accusation.at_us {
            return None;
        }
        self.told = true;
        let FalseAccusation { victim, reason, .. } = self.accusation;
        Some(Report::Accusation { accuser: me, accused: victim, reason })
    }

    /// The strike it reports, whatever happened, when its replica leaves a view.
    pub fn strike(&self, me: AgentId, output: &Output, committee: &Committee) -> Option<Report> {
        let Output::ViewChangeStarted { from, requests_waited: false, .. } = output else { return None };
        Some(Report::CensorshipStrike { reporter: me, primary: committee.primary(*from), view: *from })
    }

    /// When the caller should step the accuser, if it has not lied yet.
    pub fn next_deadline(&self) -> Option<Micros> {
        (!self.told).then_some(Micros(self.accusation.at_us))
    }
}

/// Which instances of a twin get one delivery: the first, the second, or both.
pub fn twin_recipients(rng: &mut SeededRng) -> &'static [bool] {
    match rng.below(3) {
        0 => &[false],
        1 => &[true],
        _ => &[false, true],
    }
}
