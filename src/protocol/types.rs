//! Newtypes for the protocol's numbers, so a view is never mistaken for a sequence number.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! number {
    ($(#[$doc:meta])* $name:ident($inner:ty), $show:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($show, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

number!(
    /// A validator's identity in the swarm; stable across membership epochs.
    AgentId(u32), "agent#"
);
number!(
    /// A client's identity, used only to route replies.
    ClientId(u32), "client#"
);
number!(
    /// A PBFT view; its primary is `members[view mod n]`.
    View(u64), "v"
);
number!(
    /// A sequence number assigned by the primary to one batch.
    Seq(u64), "s"
);
number!(
    /// A membership epoch: which committee signs and counts.
    Epoch(u64), "e"
);
number!(
    /// Time in microseconds since an arbitrary origin. Time enters the protocol
    /// only as this input; the protocol never reads a clock.
    Micros(u64), "t"
);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl View {
    pub fn next(self) -> View {
        View(self.0 + 1)
    }
}

impl Micros {
    pub fn saturating_sub(self, earlier: Micros) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn plus(self, micros: u64) -> Micros {
        Micros(self.0.saturating_add(micros))
    }
}
