//! The C2SP tiled log layout (<https://c2sp.org/tlog-tiles>): the Merkle tree stored as
//! immutable "tiles" of up to 256 consecutive hashes, and the entries as "bundles" of up
//! to 256 length-prefixed entries.
//!
//! Why: a log kept as tiles can be exported as plain files and checked offline by any
//! tlog client, and every root and proof is computed from a handful of tiles instead of
//! from all leaves.
//!
//! Tile `(L, N)` holds the hashes at tree level `8·L`, positions `256·N .. 256·N + 255`:
//! each is the root of a full subtree of `256^L` leaves. The rightmost tile of a level is
//! partial (width 1..=255) until it fills. This module computes tiles from leaf hashes,
//! names them (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), encodes bundles, and
//! computes roots and inclusion and consistency proofs from a [`TileMap`]. It reads no
//! file: an adapter asks [`tiles_for_inclusion`] and friends which tiles to fetch.
//!
//! Invariant: proofs from tiles equal the in-memory ones of [`crate::inclusion_proof`]
//! and [`crate::consistency_proof`] (`tests/tiles.rs` checks random trees).

use std::collections::{BTreeMap, BTreeSet};

use crate::{Hash, ProofError, empty_root, node_hash, path, root, split, subproof};

mod memo;
pub use memo::SubtreeMemo;

/// Each tile spans 8 tree levels.
pub const TILE_HEIGHT: u32 = 8;
/// A full tile holds 256 hashes; a full bundle 256 entries.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The largest entry a bundle can hold: its length is a big-endian `u16`.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Tiles by id, as an adapter fetched them.
pub type TileMap = BTreeMap<TileId, Vec<u8>>;

/// Why a tile, bundle or tile path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("tile {0} is needed but was not provided")]
    Missing(String),
    #[error("tile {path} has {got} bytes; {want} were expected")]
    WrongLength {
        path: String,
        got: usize,
        want: usize,
    },
    #[error("entry {index} of the bundle has {len} bytes; at most {MAX_ENTRY_LEN} fit")]
    EntryTooLong { index: usize, len: usize },
    #[error("the entry bundle is truncated at byte {offset}")]
    TruncatedBundle { offset: usize },
    #[error("not a tile path: {0}")]
    BadPath(&'static str),
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
}

/// A tile: its level, its index within the level and its width (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

/// What a tile path names: a hash tile or the entry bundle beside a level-0 tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    Hashes(TileId),
    Entries { index: u64, width: u16 },
}

// === impl TileId ===

impl TileId {
    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// `tile/entries/<N>[.p/<W>]`: the entries whose leaf hashes this level-0 tile holds.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    fn suffix(&self) -> String {
        let n = encode_index(self.index);
        if self.is_full() {
            n
        } else {
            format!("{n}.p/{}", self.width)
        }
    }

    /// Every tile of a tree of `size` leaves: the full ones and the partial rightmost one
    /// of each level, in level then index order.
    pub fn for_tree(size: u64) -> Vec<TileId> {
        let mut out = Vec::new();
        let mut count = size; // hashes at tree level 8·level
        let mut level = 0u8;
        while count > 0 {
            for index in 0..count / TILE_WIDTH {
                out.push(TileId {
                    level,
                    index,
                    width: TILE_WIDTH as u16,
                });
            }
            if !count.is_multiple_of(TILE_WIDTH) {
                out.push(TileId {
                    level,
                    index: count / TILE_WIDTH,
                    width: (count % TILE_WIDTH) as u16,
                });
            }
            count /= TILE_WIDTH;
            level += 1;
        }
        out
    }

    /// The tile of a tree of `size` that holds position `pos` of tree level `8·level`.
    fn holding(size: u64, level: u8, pos: u64) -> TileId {
        let count = size >> (TILE_HEIGHT * u32::from(level));
        let index = pos / TILE_WIDTH;
        let width = (count - index * TILE_WIDTH).min(TILE_WIDTH) as u16;
        TileId {
            level,
            index,
            width,
        }
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// `N` as zero-padded 3-digit path elements, all but the last prefixed with `x`:
/// 1234067 is `x001/x234/067`.
pub fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// Parses a tile or entry bundle path, accepting only the one canonical spelling.
pub fn parse_path(p: &str) -> Result<TilePath, TileError> {
    let rest = p
        .strip_prefix("tile/")
        .ok_or(TileError::BadPath("it does not start with tile/"))?;
    let (head, rest) = rest.split_once('/').ok_or(TileError::BadPath("no index"))?;
    let (index, width) = parse_suffix(rest)?;
    if head == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level = parse_small(head, 63).ok_or(TileError::BadPath("the level must be 0..=63"))?;
    Ok(TilePath::Hashes(TileId {
        level: level as u8,
        index,
        width,
    }))
}

fn parse_suffix(s: &str) -> Result<(u64, u16), TileError> {
    let (n, width) = match s.split_once(".p/") {
        Some((n, w)) => {
            let w = parse_small(w, 255).filter(|w| *w > 0);
            (
                n,
                w.ok_or(TileError::BadPath("a partial width is 1..=255"))? as u16,
            )
        }
        None => (s, TILE_WIDTH as u16),
    };
    let parts: Vec<&str> = n.split('/').collect();
    let mut index: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let digits = if last {
            *part
        } else {
            part.strip_prefix('x').ok_or(TileError::BadPath(
                "index elements but the last start with x",
            ))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::BadPath("index elements are 3 digits"));
        }
        if i == 0 && !last && digits == "000" {
            return Err(TileError::BadPath("the index has a leading x000"));
        }
        let d: u64 = digits.parse().map_err(|_| TileError::BadPath("digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|v| v.checked_add(d))
            .ok_or(TileError::BadPath("the index overflows"))?;
    }
    Ok((index, width))
}

/// A decimal without leading zeros, at most `max`.
fn parse_small(s: &str, max: u64) -> Option<u64> {
    crate::checkpoint::parse_decimal(s).filter(|v| *v <= max)
}

/// All tiles of the tree over `leaves`, with their contents (concatenated hashes).
pub fn tiles(leaves: &[Hash]) -> TileMap {
    let mut out = TileMap::new();
    let mut level_hashes: Vec<Hash> = leaves.to_vec();
    let mut level = 0u8;
    while !level_hashes.is_empty() {
        let mut next = Vec::with_capacity(level_hashes.len() / TILE_WIDTH as usize);
        for (index, chunk) in level_hashes.chunks(TILE_WIDTH as usize).enumerate() {
            let id = TileId {
                level,
                index: index as u64,
                width: chunk.len() as u16,
            };
            out.insert(id, chunk.concat());
            // Only full tiles feed the level above (partial tiles MUST NOT be hashed up).
            if id.is_full() {
                next.push(root(chunk));
            }
        }
        level_hashes = next;
        level += 1;
    }
    out
}

/// Entries as a bundle: each prefixed with its length as a big-endian `u16`.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLong {
            index,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle; a truncated length or entry is refused.
pub fn decode_bundle(bundle: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bundle.len() {
        let Some(len) = bundle.get(at..at + 2) else {
            return Err(TileError::TruncatedBundle { offset: at });
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(entry) = bundle.get(at + 2..at + 2 + len) else {
            return Err(TileError::TruncatedBundle { offset: at });
        };
        out.push(entry.to_vec());
        at += 2 + len;
    }
    Ok(out)
}

/// Reads subtree hashes of a tree of `size` leaves out of tiles. Without tiles it only
/// records which tiles it would read, which is how the `tiles_for_*` functions work.
struct Reader<'a> {
    size: u64,
    tiles: Option<&'a TileMap>,
    wanted: BTreeSet<TileId>,
    /// Subtree hashes within tiles, kept by the caller between computations or fresh.
    memo: Option<&'a mut SubtreeMemo>,
}

impl Reader<'_> {
    /// MTH(D[start:end]) for any range the RFC recursion asks for.
    fn hash(&mut self, start: u64, end: u64) -> Result<Hash, TileError> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.full(start / n, n.trailing_zeros());
        }
        let k = split(n);
        Ok(node_hash(
            &self.hash(start, start + k)?,
            &self.hash(start + k, end)?,
        ))
    }

    /// The root of the full subtree at tree level `height`, position `k`: within one
    /// tile, the root of `2^(height mod 8)` consecutive hashes at level `8·(height/8)`.
    fn full(&mut self, k: u64, height: u32) -> Result<Hash, TileError> {
        let level = (height / TILE_HEIGHT) as u8;
        let r = height % TILE_HEIGHT;
        let first = k << r;
        let id = TileId::holding(self.size, level, first);
        let seen = !self.wanted.insert(id);
        let (Some(tiles), Some(memo)) = (self.tiles, self.memo.as_deref_mut()) else {
            return Ok([0; 32]);
        };
        let data = tiles
            .get(&id)
            .ok_or_else(|| TileError::Missing(id.path()))?;
        let want = usize::from(id.width) * 32;
        if data.len() != want {
            return Err(TileError::WrongLength {
                path: id.path(),
                got: data.len(),
                want,
            });
        }
        if !seen {
            memo.check(id, data);
        }
        Ok(memo.subtree(id, data, (first % TILE_WIDTH) as usize, r))
    }
}

fn reader<'a>(
    size: u64,
    tiles: Option<&'a TileMap>,
    memo: Option<&'a mut SubtreeMemo>,
) -> Reader<'a> {
    Reader {
        size,
        tiles,
        wanted: BTreeSet::new(),
        memo,
    }
}

/// The root of the tree of `size` leaves, from its tiles.
pub fn root_from_tiles(size: u64, tiles: &TileMap) -> Result<Hash, TileError> {
    root_from_tiles_with(size, tiles, &mut SubtreeMemo::default())
}

/// [`root_from_tiles`], hashing only what `memo` does not already hold for these bytes.
pub fn root_from_tiles_with(
    size: u64,
    tiles: &TileMap,
    memo: &mut SubtreeMemo,
) -> Result<Hash, TileError> {
    if size == 0 {
        return Ok(empty_root());
    }
    reader(size, Some(tiles), Some(memo)).hash(0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from its tiles.
pub fn inclusion_proof_from_tiles(
    index: u64,
    size: u64,
    tiles: &TileMap,
) -> Result<Vec<Hash>, TileError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    let mut memo = SubtreeMemo::default();
    let mut r = reader(size, Some(tiles), Some(&mut memo));
    let mut proof = Vec::new();
    path(&mut |a, b| r.hash(a, b), 0, size, index, &mut proof)?;
    Ok(proof)
}

/// The consistency proof from size `size1` to `size2`, from the tiles of `size2`.
pub fn consistency_proof_from_tiles(
    size1: u64,
    size2: u64,
    tiles: &TileMap,
) -> Result<Vec<Hash>, TileError> {
    consistency_proof_from_tiles_with(size1, size2, tiles, &mut SubtreeMemo::default())
}

/// [`consistency_proof_from_tiles`], hashing only what `memo` does not already hold.
pub fn consistency_proof_from_tiles_with(
    size1: u64,
    size2: u64,
    tiles: &TileMap,
    memo: &mut SubtreeMemo,
) -> Result<Vec<Hash>, TileError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 }.into());
    }
    let mut proof = Vec::new();
    if size1 > 0 && size1 < size2 {
        let mut r = reader(size2, Some(tiles), Some(memo));
        subproof(&mut |a, b| r.hash(a, b), 0, size2, size1, true, &mut proof)?;
    }
    Ok(proof)
}

/// The tiles [`root_from_tiles`] reads for a tree of `size`.
pub fn tiles_for_root(size: u64) -> BTreeSet<TileId> {
    let mut r = reader(size, None, None);
    if size > 0 {
        let _ = r.hash(0, size);
    }
    r.wanted
}

/// The tiles [`inclusion_proof_from_tiles`] reads (empty if `index >= size`).
pub fn tiles_for_inclusion(index: u64, size: u64) -> BTreeSet<TileId> {
    let mut r = reader(size, None, None);
    if index < size {
        let _ = path(&mut |a, b| r.hash(a, b), 0, size, index, &mut Vec::new());
    }
    r.wanted
}

/// The tiles [`consistency_proof_from_tiles`] reads.
pub fn tiles_for_consistency(size1: u64, size2: u64) -> BTreeSet<TileId> {
    let mut r = reader(size2, None, None);
    if size1 > 0 && size1 < size2 {
        let _ = subproof(
            &mut |a, b| r.hash(a, b),
            0,
            size2,
            size1,
            true,
            &mut Vec::new(),
        );
    }
    r.wanted
}
