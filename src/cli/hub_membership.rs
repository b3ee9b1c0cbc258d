//! The hub's operator: the config's `[[membership]]` changes, made while the
//! workload runs. Added validators come from the standby list first (node
//! processes that join once the change names them), then fresh keys run inside the hub.

use super::CliError;
use crate::actors::{Joiner, MembershipChanged};
use crate::config::MembershipEntry;
use crate::crypto::PublicKey;
use crate::transport::Hub;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How long one membership change may take to take effect.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn operate(
    hub: &Hub,
    plan: &[MembershipEntry],
    standby: Vec<(String, PublicKey)>,
    progress: &AtomicU64,
) -> Result<Vec<MembershipChanged>, CliError> {
    let swarm = hub.swarm();
    let mut standby: VecDeque<(String, PublicKey)> = standby.into();
    let mut done = Vec::with_capacity(plan.len());
    for change in plan {
        let remove = super::run::when_due(swarm, progress, change.after_transfers, &change.remove).await?;
        let changed = if standby.len() >= change.add {
            let joiners = standby.drain(..change.add).map(|(name, key)| Joiner::Remote(name, key)).collect();
            swarm.change_membership_of(joiners, &remove, MEMBERSHIP_WAIT).await?
        } else {
            swarm.change_membership(change.add, &remove, MEMBERSHIP_WAIT).await?
        };
        // A removed node process hears it at once: it reconnects, is refused, and exits saying why.
        remove.iter().for_each(|id| hub.hang_up(*id));
        eprintln!(
            "membership changed to epoch {}: added [{}], removed [{}]",
            changed.epoch,
            changed.added.join(", "),
            changed.removed.join(", ")
        );
        done.push(changed);
    }
    Ok(done)
}
