//! A binary Merkle tree over leaf digests: an application's state digest is
//! its root, so one snapshot chunk (or one entry) can be checked against a
//! certified digest with a path of sibling hashes instead of the whole state.
//!
//! Nodes are hashed under their own domain (leaves arrive already hashed under
//! another), and a node without a sibling moves up unchanged instead of being
//! paired with a copy of itself: no two different leaf lists share a root.

use crate::crypto::Digest;
use serde::{Deserialize, Serialize};

/// The siblings from a leaf up to the root; `left` when the sibling is on the left.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerklePath {
    pub siblings: Vec<(bool, Digest)>,
}

fn node(left: &Digest, right: &Digest) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bftswarm/merkle-node/v1");
    hasher.update(&left.0);
    hasher.update(&right.0);
    Digest(*hasher.finalize().as_bytes())
}

/// The root over `leaves`, in order; a fixed digest for none.
pub fn merkle_root(leaves: impl IntoIterator<Item = Digest>) -> Digest {
    let mut level: Vec<Digest> = leaves.into_iter().collect();
    if level.is_empty() {
        return Digest::of(b"bftswarm/merkle-empty/v1");
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [alone] => *alone,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The path proving leaf `index`; none when there is no such leaf.
pub fn merkle_path(leaves: &[Digest], mut index: usize) -> Option<MerklePath> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = MerklePath::default();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if let Some(digest) = level.get(sibling) {
            path.siblings.push((sibling < index, *digest));
        }
        level = next_level(&level);
        index /= 2;
    }
    Some(path)
}

/// Whether `leaf` with `path` leads to `root`.
pub fn verify_path(root: Digest, leaf: Digest, path: &MerklePath) -> bool {
    let computed = path.siblings.iter().fold(leaf, |acc, (left, sibling)| match left {
        true => node(sibling, &acc),
        false => node(&acc, sibling),
    });
    computed == root
}
