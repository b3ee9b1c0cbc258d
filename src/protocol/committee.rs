//! Who takes part: the validators of one membership epoch, their keys, f and the quorum.

use super::types::{AgentId, Epoch, Seq, View};
use crate::crypto::PublicKey;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: AgentId,
    pub name: String,
    pub public_key: PublicKey,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommitteeError {
    #[error("a committee of {n} validators cannot tolerate {f} Byzantine ones: it needs n >= 3f+1 = {}", 3 * f + 1)]
    TooSmall { n: usize, f: usize },
    #[error("a committee must tolerate at least one fault (n >= 4)")]
    NoFaultTolerance,
    #[error("validator {0} appears twice in the committee")]
    DuplicateId(AgentId),
    #[error("two validators share the public key {0}")]
    DuplicateKey(String),
}

/// The validators of one epoch. Quorums are computed for any n >= 3f+1:
/// quorum = ceil((n+f+1)/2), so two quorums share at least f+1 members and
/// therefore at least one honest one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    epoch: Epoch,
    members: Vec<Member>,
    f: usize,
    quorum: usize,
    /// Who may sign membership changes; none means the membership is fixed.
    #[serde(default)]
    operator: Option<PublicKey>,
    /// The checkpoint after which this committee is in force (zero for the
    /// first epoch). Its checkpoint proofs speak only for sequence numbers
    /// above it, and below the next epoch's start: retired keys prove nothing new.
    #[serde(default)]
    starts_after: Seq,
}

pub fn quorum_size(n: usize, f: usize) -> usize {
    n.saturating_add(f).saturating_add(1).div_ceil(2)
}

impl Committee {
    /// `f` defaults to the most the committee can tolerate, floor((n-1)/3).
    pub fn new(epoch: Epoch, members: Vec<Member>, f: Option<usize>) -> Result<Committee, CommitteeError> {
        let n = members.len();
        let f = f.unwrap_or(n.saturating_sub(1) / 3);
        if f == 0 {
            return Err(CommitteeError::NoFaultTolerance);
        }
        if n < 3 * f + 1 {
            return Err(CommitteeError::TooSmall { n, f });
        }
        for (i, member) in members.iter().enumerate() {
            for other in &members[..i] {
                if other.id == member.id {
                    return Err(CommitteeError::DuplicateId(member.id));
                }
                if other.public_key == member.public_key {
                    return Err(CommitteeError::DuplicateKey(member.public_key.to_string()));
                }
            }
        }
        Ok(Committee { epoch, members, f, quorum: quorum_size(n, f), operator: None, starts_after: Seq(0) })
    }

    /// Validators `AgentId(0..n)` named `{name_prefix}1..{name_prefix}n`, one per key.
    pub fn numbered(
        epoch: Epoch,
        keys: &[PublicKey],
        name_prefix: &str,
        f: Option<usize>,
    ) -> Result<Committee, CommitteeError> {
        let members = keys
            .iter()
            .enumerate()
            .map(|(i, key)| Member { id: AgentId(i as u32), name: format!("{name_prefix}{}", i + 1), public_key: *key })
            .collect();
        Committee::new(epoch, members, f)
    }

    /// Lets the holder of `operator`'s secret key sign membership changes.
    pub fn with_operator(mut self, operator: PublicKey) -> Committee {
        self.operator = Some(operator);
        self
    }

    /// The operator key carries over to the next epoch.
    pub(crate) fn inheriting(mut self, previous: &Committee) -> Committee {
        self.operator = previous.operator;
        self
    }

    /// In force after the checkpoint at `seq` (set where a change is scheduled).
    pub(crate) fn starting_after(mut self, seq: Seq) -> Committee {
        self.starts_after = seq;
        self
    }

    /// The checkpoint after which this committee is in force; zero for the first epoch.
    pub fn starts_after(&self) -> Seq {
        self.starts_after
    }

    pub fn operator(&self) -> Option<PublicKey> {
        self.operator
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn n(&self) -> usize {
        self.members.len()
    }

    pub fn f(&self) -> usize {
        self.f
    }

    /// Matching votes that make a certificate (2f+1 when n = 3f+1).
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Matching replies a client needs: f+1, so at least one is honest.
    pub fn reply_quorum(&self) -> usize {
        self.f + 1
    }

    pub fn primary(&self, view: View) -> AgentId {
        self.members[(view.0 % self.members.len() as u64) as usize].id
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: AgentId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn contains(&self, id: AgentId) -> bool {
        self.member(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                id: AgentId(i),
                name: format!("bft-agent-{}", i + 1),
                public_key: PublicKey([i as u8 + 1; 32]),
            })
            .collect()
    }

    #[test]
    fn quorum_is_two_f_plus_one_at_three_f_plus_one() {
        for (n, f, q) in [(4, 1, 3), (7, 2, 5), (10, 3, 7), (13, 4, 9), (31, 10, 21), (5, 1, 4), (6, 1, 4)] {
            let committee = Committee::new(Epoch(0), members(n), None).unwrap();
            assert_eq!((committee.f(), committee.quorum()), (f, q), "n = {n}");
        }
    }

    #[test]
    fn any_two_quorums_share_an_honest_member() {
        for n in 4..=100usize {
            let f = (n - 1) / 3;
            let q = quorum_size(n, f);
            assert!(2 * q > n + f, "n = {n}: quorums of {q} intersect in fewer than f+1");
            assert!(q <= n - f, "n = {n}: quorum of {q} needs a faulty vote");
        }
    }

    #[test]
    fn too_small_committees_are_refused() {
        assert_eq!(Committee::new(Epoch(0), members(6), Some(2)), Err(CommitteeError::TooSmall { n: 6, f: 2 }));
        assert_eq!(Committee::new(Epoch(0), members(3), None), Err(CommitteeError::NoFaultTolerance));
    }

    #[test]
    fn primary_rotates_with_the_view() {
        let committee = Committee::new(Epoch(0), members(4), None).unwrap();
        let primaries: Vec<u32> = (0..6).map(|v| committee.primary(View(v)).0).collect();
        assert_eq!(primaries, [0, 1, 2, 3, 0, 1]);
    }
}
