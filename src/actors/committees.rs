//! The swarm handle's one copy of its membership: every committee announced
//! since genesis, oldest first, and how many of them took effect. The
//! committee in effect and a change still pending are both read from it, so
//! they can never disagree.

use crate::protocol::{AgentId, Committee, Member};

#[derive(Debug)]
pub(super) struct Committees {
    history: Vec<Committee>,
    /// How many of `history` took effect (at least the genesis).
    in_effect: usize,
}

impl Committees {
    /// `history` (never empty), whose last committee is still pending when `pending`.
    pub(super) fn new(history: Vec<Committee>, pending: bool) -> Committees {
        let in_effect = history.len().saturating_sub(pending as usize).max(1);
        Committees { history, in_effect }
    }

    /// The committee of the current membership epoch.
    pub(super) fn current(&self) -> &Committee {
        &self.history[self.in_effect - 1]
    }

    /// The committee announced and not yet in effect, if any.
    pub(super) fn pending(&self) -> Option<&Committee> {
        self.history.get(self.in_effect)
    }

    /// Every committee announced, oldest first.
    pub(super) fn history(&self) -> &[Committee] {
        &self.history
    }

    /// `agent` as a member of the latest committee that had it.
    pub(super) fn member_in_any_epoch(&self, agent: AgentId) -> Option<&Member> {
        self.history.iter().rev().find_map(|committee| committee.member(agent))
    }

    /// `next` was announced to the validators.
    pub(super) fn announced(&mut self, next: Committee) {
        self.history.push(next);
    }

    /// `next`, announced before, is in effect.
    pub(super) fn took_effect(&mut self, next: &Committee) {
        if let Some(index) = self.history.iter().position(|committee| committee.epoch() == next.epoch()) {
            self.in_effect = self.in_effect.max(index + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{Epoch, MembershipChange};

    fn genesis() -> Committee {
        let members = (0..4)
            .map(|i| Member {
                id: AgentId(i),
                name: format!("v{i}"),
                public_key: Keypair::from_seed([i as u8; 32]).public_key(),
            })
            .collect();
        Committee::new(Epoch(0), members, None).unwrap()
    }

    #[test]
    fn a_change_is_pending_until_it_takes_effect() {
        let genesis = genesis();
        let joiner = Member { id: AgentId(4), name: "v4".into(), public_key: Keypair::from_seed([4; 32]).public_key() };
        let next = MembershipChange { from_epoch: Epoch(0), add: vec![joiner], remove: vec![AgentId(3)], f: None }
            .apply(&genesis)
            .unwrap();
        let mut committees = Committees::new(vec![genesis.clone()], false);
        committees.announced(next.clone());
        assert_eq!((committees.current(), committees.pending()), (&genesis, Some(&next)));
        assert_eq!(committees.member_in_any_epoch(AgentId(3)).map(|m| m.name.as_str()), Some("v3"));
        committees.took_effect(&next);
        assert_eq!((committees.current(), committees.pending()), (&next, None));
        // A relaunch with the change still pending starts in the epoch before it.
        let relaunched = Committees::new(vec![genesis.clone(), next.clone()], true);
        assert_eq!((relaunched.current(), relaunched.pending()), (&genesis, Some(&next)));
        assert_eq!(relaunched.history().len(), 2);
    }
}
