//! Agent names: which are valid (they become key file names and table
//! cells), and their natural order. The first committee is the first
//! `max_agents` validators registered, ordered by name (`bft-agent-2` before
//! `bft-agent-10`), so the primary of view 0 is the same however concurrent
//! spawns interleaved. Who is registered lives in the membership record
//! ([`super::membership`]).

use std::cmp::Ordering;

/// Longest agent name: names become key file names and table cells.
pub const MAX_NAME_LEN: usize = 64;

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

    #[test]
    fn names_order_naturally_whatever_the_registration_order() {
        let mut names = vec!["bft-agent-10", "bft-agent-2", "bft-agent-1"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["bft-agent-1", "bft-agent-2", "bft-agent-10"]);
        assert_eq!(natural_order("a-01", "a-1"), Ordering::Greater);
        assert_eq!(natural_order("b", "a9"), Ordering::Greater);
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
