//! The agents a swarm's daemon knows: each registered validator with its
//! public key and where its private key is kept in the home. Persisted as
//! `agents.json` so `swarm start` brings the same committee back.
//!
//! The committee is the first `max_agents` validators registered; it is
//! ordered by name (`bft-agent-2` before `bft-agent-10`), so the primary of
//! view 0 is the same however concurrent spawns interleaved. Validators
//! registered after the committee formed wait on standby: adding them to a
//! running committee is a membership change.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::PathBuf;

/// Longest agent name: names become key file names and table cells.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredAgent {
    pub name: String,
    pub agent_type: String,
    pub capabilities: Vec<String>,
    /// `0x` and 64 hex digits.
    pub public_key: String,
    /// The private key's PEM file, relative to the home (`keys/<name>.pem`).
    pub key_file: PathBuf,
    /// A member of the committee (true) or a validator on standby.
    pub member: bool,
    /// A non-voting observer (no key, never a member).
    #[serde(default)]
    pub observer: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub agents: Vec<RegisteredAgent>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&RegisteredAgent> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    pub fn by_public_key(&self, public_key: &str) -> Option<&RegisteredAgent> {
        self.agents.iter().find(|agent| agent.public_key == public_key)
    }

    /// The committee members, in committee order.
    pub fn members(&self) -> Vec<&RegisteredAgent> {
        let mut members: Vec<&RegisteredAgent> = self.agents.iter().filter(|agent| agent.member).collect();
        members.sort_by(|a, b| natural_order(&a.name, &b.name));
        members
    }

    /// The first name `<prefix><k>` not taken yet, k counting from 1.
    pub fn next_free_name(&self, prefix: &str) -> String {
        (1..).map(|k| format!("{prefix}{k}")).find(|name| self.get(name).is_none()).unwrap_or_default()
    }
}

/// Why a name cannot name an agent, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) || name.starts_with('.') {
        let shown: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME_LEN).collect();
        return Err(format!(
            "agent name {shown:?} is not valid: use 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.` (not leading), e.g. bft-agent-1"
        ));
    }
    Ok(())
}

/// Orders names by their text, comparing runs of digits as numbers.
pub fn natural_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (da.trim_start_matches('0'), db.trim_start_matches('0'));
                let order = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb)).then_with(|| da.len().cmp(&db.len()));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, member: bool) -> RegisteredAgent {
        RegisteredAgent {
            name: name.into(),
            agent_type: "validator".into(),
            capabilities: vec![],
            public_key: format!("0x{name}"),
            key_file: PathBuf::from(format!("keys/{name}.pem")),
            member,
            observer: false,
        }
    }

    #[test]
    fn committee_order_is_natural_whatever_the_registration_order() {
        let registry = Registry {
            agents: vec![agent("bft-agent-10", true), agent("bft-agent-2", true), agent("bft-agent-1", true)],
        };
        let names: Vec<&str> = registry.members().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-10"]);
        assert_eq!(natural_order("a-01", "a-1"), Ordering::Greater);
        assert_eq!(natural_order("b", "a9"), Ordering::Greater);
    }

    #[test]
    fn standby_validators_are_not_members_and_names_fill_gaps() {
        let registry = Registry { agents: vec![agent("bft-agent-1", true), agent("bft-agent-3", false)] };
        assert_eq!(registry.members().len(), 1);
        assert_eq!(registry.next_free_name("bft-agent-"), "bft-agent-2");
    }

    #[test]
    fn names_that_cannot_be_file_names_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a b", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("bft-agent-1").unwrap();
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
