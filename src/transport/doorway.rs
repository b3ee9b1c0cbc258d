//! The hub's budget for strangers: connections that have not yet proved a
//! committee key. They get a small number of places of their own, overall
//! and per source address, apart from admitted members, so that idle or slow
//! strangers can never keep a member out.
//!
//! A newcomer always gets a place. When its address, or the whole doorway,
//! is full, the stranger that has waited longest is dropped to make room,
//! silent ones (nothing sent yet) before those that spoke, and from the
//! address holding the most places. A member's node speaks at once (its
//! Hello) and finishes its handshake in a few round trips, so a flood of idle
//! connections only ever evicts itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Strangers waiting at once, from all addresses.
pub const MAX_STRANGERS: usize = 64;

/// Strangers waiting at once from one source address.
pub const MAX_STRANGERS_PER_ADDRESS: usize = 16;

/// How long a stranger has to complete the handshake, all steps together.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Warnings about dropped strangers are summed and written at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct Doorway {
    state: Mutex<Waiting>,
    /// A flood drops strangers by the thousand: one warning with the sum every [`WARN_EVERY`].
    dropped: Throttle,
}

#[derive(Default)]
struct Waiting {
    next_ticket: u64,
    /// By arrival: the smallest ticket has waited longest.
    strangers: BTreeMap<u64, Stranger>,
}

struct Stranger {
    address: IpAddr,
    spoke: bool,
    /// Dropping it tells the stranger's task it was evicted.
    _evict: oneshot::Sender<()>,
}

/// A stranger's place at the door; leaving (admitted or not) frees it.
pub(super) struct Place {
    doorway: Arc<Doorway>,
    ticket: u64,
}

/// Resolves when the stranger is evicted to make room for a newcomer.
pub(super) type Evicted = oneshot::Receiver<()>;

impl Doorway {
    /// A place for a stranger from `address`, evicting another if the budget is spent.
    pub(super) fn enter(self: &Arc<Self>, address: IpAddr) -> (Place, Evicted) {
        let mut waiting = lock(&self.state);
        let from_address = waiting.strangers.values().filter(|s| s.address == address).count();
        let crowded = if from_address >= MAX_STRANGERS_PER_ADDRESS {
            Some(address)
        } else if waiting.strangers.len() >= MAX_STRANGERS {
            waiting.busiest_address()
        } else {
            None
        };
        if let Some(crowded) = crowded {
            if let Some(victim) = waiting.longest_waiting(crowded) {
                waiting.strangers.remove(&victim);
                self.count_dropped();
            }
        }
        let ticket = waiting.next_ticket;
        waiting.next_ticket += 1;
        let (evict, evicted) = oneshot::channel();
        waiting.strangers.insert(ticket, Stranger { address, spoke: false, _evict: evict });
        (Place { doorway: self.clone(), ticket }, evicted)
    }

    /// Strangers waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.state).strangers.len()
    }

    /// Counts a stranger dropped (evicted or late); warns with the sum now and then.
    fn count_dropped(&self) {
        if let Some(held_back) = self.dropped.allow() {
            tracing::warn!(
                dropped = held_back + 1,
                "dropped connections that did not prove a committee key in time or were evicted by newer ones; \
                 at most {MAX_STRANGERS} may wait ({MAX_STRANGERS_PER_ADDRESS} per address)"
            );
        }
    }
}

impl Waiting {
    /// The address with the most strangers waiting (the lowest, on a tie, so the choice is stable).
    fn busiest_address(&self) -> Option<IpAddr> {
        let mut counts: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for stranger in self.strangers.values() {
            *counts.entry(stranger.address).or_default() += 1;
        }
        counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(address, _)| address)
    }

    /// From `address`: the silent stranger that has waited longest, or else the one that has.
    fn longest_waiting(&self, address: IpAddr) -> Option<u64> {
        let from = || self.strangers.iter().filter(move |(_, s)| s.address == address);
        from().find(|(_, s)| !s.spoke).or_else(|| from().next()).map(|(ticket, _)| *ticket)
    }
}

impl Place {
    /// Counts this stranger dropped at its deadline.
    pub(super) fn count_dropped(&self) {
        self.doorway.count_dropped();
    }

    /// The stranger sent its first bytes: it is evicted after the silent ones.
    pub(super) fn spoke(&self) {
        if let Some(stranger) = lock(&self.doorway.state).strangers.get_mut(&self.ticket) {
            stranger.spoke = true;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.doorway.state).strangers.remove(&self.ticket);
    }
}

fn lock<T>(cell: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lets a repeated warning through at most every [`WARN_EVERY`].
#[derive(Default)]
pub(super) struct Throttle(Mutex<(Option<Instant>, u64)>);

impl Throttle {
    /// Some(how many were held back since the last one) when a warning may be written now.
    pub(super) fn allow(&self) -> Option<u64> {
        let mut state = lock(&self.0);
        let (last, suppressed) = &mut *state;
        let now = Instant::now();
        if last.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            *last = Some(now);
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_full_address_evicts_its_own_longest_silent_stranger_first() {
        let doorway = Arc::new(Doorway::default());
        let mut places: Vec<_> = (0..MAX_STRANGERS_PER_ADDRESS).map(|_| doorway.enter(address(1))).collect();
        places[0].0.spoke();
        let _newcomer = doorway.enter(address(1));
        assert_eq!(doorway.waiting(), MAX_STRANGERS_PER_ADDRESS);
        // The first one spoke: the second, silent, went.
        assert_eq!(places[0].1.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(places[1].1.try_recv(), Err(oneshot::error::TryRecvError::Closed));
    }

    #[test]
    fn a_full_doorway_evicts_from_the_busiest_address() {
        let doorway = Arc::new(Doorway::default());
        let mut quiet = doorway.enter(address(1));
        let mut crowd: Vec<_> = (0..MAX_STRANGERS - 1).map(|i| doorway.enter(address(2 + (i % 4) as u8))).collect();
        let _newcomer = doorway.enter(address(9));
        assert_eq!(doorway.waiting(), MAX_STRANGERS);
        assert_eq!(quiet.1.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        let closed = crowd
            .iter_mut()
            .map(|(_, evicted)| evicted.try_recv())
            .filter(|r| *r == Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(closed.count(), 1);
    }
}
