//! How many faults the committee after a change tolerates when the change
//! does not say: the current f while the new size still allows it, else the
//! most the new size allows.

use super::*;
use crate::crypto::Keypair;

fn committee(n: u32) -> Committee {
    let members = (0..n)
        .map(|i| Member {
            id: AgentId(i),
            name: format!("v{i}"),
            public_key: Keypair::from_seed([i as u8 + 1; 32]).public_key(),
        })
        .collect();
    Committee::new(Epoch(0), members, None).unwrap()
}

#[test]
fn removing_a_member_of_seven_leaves_six_that_tolerate_one_fault() {
    let seven = committee(7);
    assert_eq!(seven.f(), 2);
    let remove = |ids: Vec<u32>| MembershipChange {
        from_epoch: Epoch(0),
        add: Vec::new(),
        remove: ids.into_iter().map(AgentId).collect(),
        f: None,
    };
    let six = remove(vec![6]).apply(&seven).unwrap();
    assert_eq!((six.n(), six.f()), (6, 1));
    let four = remove(vec![4, 5, 6]).apply(&seven).unwrap();
    assert_eq!((four.n(), four.f()), (4, 1));
}
