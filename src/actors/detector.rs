//! The detector actor: a thin shell around the pure [`Detector`]. Validators
//! send it what their verifiers refused and what their replicas proved
//! ([`Misbehaviour`]); each conviction is published as `malicious-detected`
//! and handed to the [`super::QuarantineManager`].

use super::quarantine::Convicted;
use crate::detect::{DetectionRules, Detector, Report};
use crate::events::{timestamp_now, LifecycleEvent};
use crate::hooks::Publish;
use crate::protocol::Committee;
use actix::{Actor, Context, Handler, Message, Recipient};
use std::time::Instant;

/// Reports of one validator's step, stamped when they were made.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Misbehaviour {
    pub reports: Vec<Report>,
    pub sent_at: Instant,
}

/// The swarm moved to a new membership epoch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DetectorCommittee(pub Committee);

pub struct DetectorActor {
    detector: Detector,
    events: Recipient<Publish>,
    quarantine: Recipient<Convicted>,
}

impl DetectorActor {
    pub fn new(committee: Committee, events: Recipient<Publish>, quarantine: Recipient<Convicted>) -> DetectorActor {
        DetectorActor { detector: Detector::new(committee, DetectionRules::default()), events, quarantine }
    }
}

impl Actor for DetectorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Every validator reports here; a burst of accusations must not be lost.
        ctx.set_mailbox_capacity(super::SUPERVISOR_MAILBOX);
    }
}

impl Handler<Misbehaviour> for DetectorActor {
    type Result = ();

    fn handle(&mut self, Misbehaviour { reports, sent_at }: Misbehaviour, _: &mut Context<Self>) {
        for report in reports {
            let reporter = report.reporter();
            let Some(conviction) = self.detector.report(super::now(), report) else { continue };
            let latency = sent_at.elapsed();
            let event = LifecycleEvent::MaliciousDetected {
                timestamp: timestamp_now(),
                reporter,
                accused: conviction.detected_agent,
                fault_type: conviction.fault_type.clone(),
                detection_method: conviction.detection_method.name().into(),
                evidence: conviction.evidence.to_string(),
                votes_against: conviction.votes_against,
            };
            let _ = self.events.try_send(Publish(vec![event]));
            let agent = crate::observe::name_in(self.detector.committee(), conviction.detected_agent);
            tracing::warn!(%agent, fault = %conviction.fault_type, method = conviction.detection_method.name(), "malicious agent convicted");
            crate::observe::convicted(&conviction.fault_type);
            let _ = self.quarantine.try_send(Convicted { conviction, latency, at: Instant::now() });
        }
    }
}

impl Handler<DetectorCommittee> for DetectorActor {
    type Result = ();

    fn handle(&mut self, DetectorCommittee(committee): DetectorCommittee, _: &mut Context<Self>) {
        self.detector.update_committee(committee);
    }
}
