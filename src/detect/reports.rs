//! What a validator reports to the detector, from what its verifier refused
//! and what its replica found. One translation for the runtime's validator
//! actors and the simulation, so both feed the [`super::Detector`] alike.

use super::{AccusationReason, Proof, Report};
use crate::protocol::{AgentId, Committee, Output, Rejection, SignedMessage};
use std::sync::Arc;

/// `receiver`'s verifier refused `message`, handed over on `channel`'s
/// authenticated channel. A bad signature accuses the channel: a relayed
/// message may name an innocent signer. A pre-prepare carrying a forged
/// transfer is a proof against its signer, whoever relayed it.
pub fn report_rejection(
    receiver: AgentId,
    channel: AgentId,
    message: &Arc<SignedMessage>,
    rejection: &Rejection,
) -> Option<Report> {
    match rejection {
        Rejection::BadSignature(_) => {
            Some(Report::Accusation { accuser: receiver, accused: channel, reason: AccusationReason::BadSignature })
        }
        Rejection::InvalidClientSignature { index, .. } => Some(Report::Proof {
            reporter: receiver,
            proof: Proof::InvalidProposal { pre_prepare: message.clone(), index: *index },
        }),
        _ => None,
    }
}

/// What `reporter`'s replica output proves or suggests: evidence of
/// equivocation, two spends of one nonce, or a view change because requests
/// waited unordered under `committee`'s primary (a censorship strike).
pub fn report_output(reporter: AgentId, output: &Output, committee: &Committee) -> Option<Report> {
    match output {
        Output::Evidence(evidence) => Some(Report::Proof { reporter, proof: Proof::Equivocation(evidence.clone()) }),
        Output::DoubleSpend { executed, conflicting } => Some(Report::Proof {
            reporter,
            proof: Proof::DoubleSpend { first: executed.clone(), second: conflicting.clone() },
        }),
        Output::ViewChangeStarted { from, requests_waited: true, .. } => {
            Some(Report::CensorshipStrike { reporter, primary: committee.primary(*from), view: *from })
        }
        _ => None,
    }
}
