//! Subtree hashes inside tiles, remembered between computations by the very bytes they
//! were computed from.
//!
//! Why: a log that signs a checkpoint per commit recomputes its root and a consistency
//! proof from the tiles it has just read back. The rightmost level-0 tile grows by a few
//! hashes a commit, and rehashing its up to 255 hashes for the root and again for the
//! proof was most of the SHA-256 of a commit. A subtree's hash is a function of the
//! hashes under it, so a hash computed over bytes that are compared equal, byte for byte,
//! every time they are used again is the hash those bytes give: the memo changes how
//! much is hashed, never what comes out. It holds no trust of its own: a tile whose bytes
//! differ from the ones remembered (a rolled-back append, a rewritten row) is rehashed
//! from where they differ.

use std::collections::{BTreeMap, HashMap};

use super::{TILE_WIDTH, TileId};
use crate::{Hash, node_hash};

/// How many tiles are remembered: a commit reads the right edge (one tile a level) and
/// the tiles of a consistency proof from the last checkpoint, a handful.
const TILES: usize = 16;

/// Subtree hashes within tiles, by tile, checked against each tile's bytes on use.
#[derive(Debug, Default)]
pub struct SubtreeMemo {
    tiles: BTreeMap<(u8, u64), Remembered>,
    clock: u64,
}

#[derive(Debug, Default)]
struct Remembered {
    /// The tile's hashes the nodes were computed over (a prefix of the latest seen).
    bytes: Vec<u8>,
    /// `(height, first position)` within the tile to the root of its `2^height` hashes.
    nodes: HashMap<(u8, u16), Hash>,
    last_used: u64,
}

impl SubtreeMemo {
    /// How many subtree hashes are remembered (for tests and metrics).
    pub fn remembered(&self) -> usize {
        self.tiles.values().map(|t| t.nodes.len()).sum()
    }

    /// Makes the memo of tile `id` agree with `data`, its bytes as given now: nodes over
    /// hashes that differ are forgotten. Called once per tile per computation.
    pub(super) fn check(&mut self, id: TileId, data: &[u8]) {
        self.clock += 1;
        if !self.tiles.contains_key(&(id.level, id.index)) && self.tiles.len() >= TILES {
            let oldest = self
                .tiles
                .iter()
                .min_by_key(|(_, t)| t.last_used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.tiles.remove(&k);
            }
        }
        let t = self.tiles.entry((id.level, id.index)).or_default();
        t.last_used = self.clock;
        let common = t.bytes.len().min(data.len());
        if t.bytes[..common] != data[..common] {
            let same = first_difference(&t.bytes[..common], &data[..common]) / 32;
            t.nodes
                .retain(|&(height, first), _| usize::from(first) + (1usize << height) <= same);
            t.bytes.truncate(same * 32);
        }
        if data.len() > t.bytes.len() {
            let have = t.bytes.len();
            t.bytes.extend_from_slice(&data[have..]);
        }
    }

    /// The root of the `2^height` hashes of tile `id` from position `first` (`data` is the
    /// tile's bytes, already [`check`](Self::check)ed).
    pub(super) fn subtree(&mut self, id: TileId, data: &[u8], first: usize, height: u32) -> Hash {
        let nodes = &mut self.tiles.entry((id.level, id.index)).or_default().nodes;
        subtree(nodes, data, first, height)
    }
}

fn subtree(nodes: &mut HashMap<(u8, u16), Hash>, data: &[u8], first: usize, height: u32) -> Hash {
    if height == 0 {
        let mut h = [0u8; 32];
        h.copy_from_slice(&data[first * 32..first * 32 + 32]);
        return h;
    }
    debug_assert!(first + (1 << height) <= TILE_WIDTH as usize);
    let key = (height as u8, first as u16);
    if let Some(h) = nodes.get(&key) {
        return *h;
    }
    let half = 1usize << (height - 1);
    let left = subtree(nodes, data, first, height - 1);
    let right = subtree(nodes, data, first + half, height - 1);
    let h = node_hash(&left, &right);
    nodes.insert(key, h);
    h
}

/// The index of the first byte where `a` and `b` (of equal length) differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len())
}
