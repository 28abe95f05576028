//! The right edge of a growing tree (a "compact range" from its start): one hash per
//! full subtree, so the root of every prefix is known while leaves stream past, in
//! O(log n) memory. Why: checking a log against each of its many checkpoints would
//! otherwise rehash every leaf once per checkpoint.

use crate::{Hash, empty_root, node_hash};

/// The full subtrees of the leaves pushed so far, largest (leftmost) first.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves were pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let (mut height, mut hash) = (0u32, leaf);
        while let Some(&(h, left)) = self.nodes.last() {
            if h != height {
                break;
            }
            self.nodes.pop();
            hash = node_hash(&left, &hash);
            height += 1;
        }
        self.nodes.push((height, hash));
        self.size += 1;
    }

    /// The RFC 9162 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&(_, mut r)) = nodes.next() else {
            return empty_root();
        };
        for (_, left) in nodes {
            r = node_hash(left, &r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_of_every_prefix_matches_the_tree() {
        let leaves: Vec<Hash> = (0u32..300)
            .map(|i| crate::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), crate::root(&leaves[..=i]), "size {}", i + 1);
        }
    }
}
