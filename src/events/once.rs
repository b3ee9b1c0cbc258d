//! Once per swarm: every validator reports its own view change, checkpoint
//! and executed batch, but an operator (a command hook, the event stream)
//! wants to hear of each once. [`OncePerSwarm`] lets the first report of each
//! through and drops the copies.

use super::{EventKind, LifecycleEvent};
use std::collections::{BTreeSet, VecDeque};

/// Keys remembered; older ones are forgotten first ((epoch, view) pairs and
/// sequence numbers only grow, so a copy that late is long stale).
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub struct OncePerSwarm {
    seen: BTreeSet<(EventKind, u64, u64)>,
    /// `seen` in arrival order, oldest first.
    order: VecDeque<(EventKind, u64, u64)>,
}

impl OncePerSwarm {
    /// True for the first report of what `event` announces, false for a
    /// copy from another validator. Events that happen once anyway pass.
    pub fn first(&mut self, event: &LifecycleEvent) -> bool {
        // Views count within an epoch; sequence numbers across all of them.
        let (epoch, key) = match event {
            LifecycleEvent::ViewChangeStarted { epoch, to_view, .. } => (*epoch, *to_view),
            LifecycleEvent::ViewChanged { epoch, view, .. } => (*epoch, *view),
            LifecycleEvent::TransactionCommitted { seq, .. }
            | LifecycleEvent::TransactionRejected { seq, .. }
            | LifecycleEvent::CheckpointStable { seq, .. } => (0, *seq),
            _ => return true,
        };
        let entry = (event.kind(), epoch, key);
        if !self.seen.insert(entry) {
            return false;
        }
        self.order.push_back(entry);
        if self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AgentId;

    fn view_changed(agent: u32, view: u64) -> LifecycleEvent {
        view_changed_in(0, agent, view)
    }

    fn view_changed_in(epoch: u64, agent: u32, view: u64) -> LifecycleEvent {
        LifecycleEvent::ViewChanged { timestamp: "t".into(), agent: AgentId(agent), epoch, view, primary: AgentId(1) }
    }

    /// Every epoch starts in view 0: epoch 1's view 1 is news after epoch 0's.
    #[test]
    fn a_view_of_a_later_epoch_passes_though_its_number_was_seen() {
        let mut once = OncePerSwarm::default();
        let passed: Vec<bool> = [(0, 0, 1), (0, 1, 1), (1, 2, 1), (1, 0, 1)]
            .into_iter()
            .map(|(epoch, agent, view)| once.first(&view_changed_in(epoch, agent, view)))
            .collect();
        assert_eq!(passed, [true, false, true, false]);
    }

    #[test]
    fn each_validators_copy_of_a_view_change_after_the_first_is_dropped() {
        let mut once = OncePerSwarm::default();
        let passed: Vec<bool> = [(0, 1), (1, 1), (2, 1), (3, 1), (2, 2), (0, 2)]
            .into_iter()
            .map(|(agent, view)| once.first(&view_changed(agent, view)))
            .collect();
        assert_eq!(passed, [true, false, false, false, true, false]);
    }

    #[test]
    fn events_that_happen_once_always_pass() {
        let mut once = OncePerSwarm::default();
        let quarantined = LifecycleEvent::AgentQuarantined {
            timestamp: "t".into(),
            agent: AgentId(2),
            reason: "r".into(),
            quarantine_ms: 1,
        };
        assert!(once.first(&quarantined) && once.first(&quarantined));
    }
}
