//! The tlog-tiles layout: the spec's path and tile-count examples (c2sp.org/tlog-tiles),
//! the RFC 6962 eight-leaf tree from transparency-dev/merkle `testonly/constants.go`
//! (leaf inputs, node hashes, roots for sizes 0..=8), and random trees whose roots and
//! proofs from tiles must equal the in-memory ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use warden_merkle::tiles::{
    self, SubtreeMemo, TileError, TileMap, TilePath, consistency_proof_from_tiles,
    consistency_proof_from_tiles_with, decode_bundle, encode_bundle, inclusion_proof_from_tiles,
    parse_path, root_from_tiles, root_from_tiles_with, tiles_for_consistency, tiles_for_inclusion,
    tiles_for_root,
};
use warden_merkle::{
    Hash, TileId, consistency_proof, inclusion_proof, leaf_hash, root, verify_inclusion,
};

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// transparency-dev/merkle testonly: `LeafInputs`, `NodeHashes()[0]`, `RootHashes`.
const RFC6962_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const RFC6962_LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];
const RFC6962_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
        .collect()
}

#[test]
fn spec_path_examples() {
    assert_eq!(tiles::encode_index(1234067), "x001/x234/067");
    assert_eq!(tiles::encode_index(0), "000");
    assert_eq!(tiles::encode_index(1000), "x001/000");
    let full = TileId {
        level: 2,
        index: 1234067,
        width: 256,
    };
    assert_eq!(full.path(), "tile/2/x001/x234/067");
    let partial = TileId {
        level: 0,
        index: 5,
        width: 17,
    };
    assert_eq!(partial.path(), "tile/0/005.p/17");
    assert_eq!(partial.entries_path(), "tile/entries/005.p/17");
    for id in [full, partial] {
        assert_eq!(parse_path(&id.path()), Ok(TilePath::Hashes(id)));
    }
    assert_eq!(
        parse_path("tile/entries/x001/x234/067"),
        Ok(TilePath::Entries {
            index: 1234067,
            width: 256
        })
    );
    for bad in [
        "tile/0/5",
        "tile/0/x000/005",
        "tile/0/001/005",
        "tile/0/x1/005",
        "tile/64/000",
        "tile/01/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/017",
        "tile/0/000.p/",
        "tile/0/000/",
        "tiles/0/000",
        "tile/0",
        "tile/entries/00a",
    ] {
        assert!(parse_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn spec_tile_count_examples() {
    // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
    // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
    // 17, and one partial level 2 tile of width 1."
    let ids = TileId::for_tree(70_000);
    let at = |l: u8| ids.iter().filter(move |t| t.level == l);
    assert_eq!(at(0).filter(|t| t.is_full()).count(), 273);
    assert_eq!(
        at(0)
            .filter(|t| !t.is_full())
            .map(|t| t.width)
            .collect::<Vec<_>>(),
        [112]
    );
    assert_eq!(at(1).filter(|t| t.is_full()).count(), 1);
    assert_eq!(
        at(1)
            .filter(|t| !t.is_full())
            .map(|t| t.width)
            .collect::<Vec<_>>(),
        [17]
    );
    assert_eq!(at(2).map(|t| t.width).collect::<Vec<_>>(), [1]);
    assert_eq!(ids.len(), 273 + 1 + 1 + 1 + 1);
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    // tile of width 1."
    assert_eq!(
        TileId::for_tree(256),
        [
            TileId {
                level: 0,
                index: 0,
                width: 256
            },
            TileId {
                level: 1,
                index: 0,
                width: 1
            }
        ]
    );
    assert!(TileId::for_tree(0).is_empty());
    // Computed tiles are exactly the named ones.
    let t = tiles::tiles(&leaves(70_000));
    assert_eq!(t.keys().copied().collect::<Vec<_>>(), {
        let mut v = TileId::for_tree(70_000);
        v.sort();
        v
    });
}

#[test]
fn rfc6962_eight_leaf_tree_from_tiles() {
    let leaves: Vec<Hash> = RFC6962_INPUTS
        .iter()
        .map(|i| leaf_hash(&hex::decode(i).unwrap()))
        .collect();
    let want: Vec<Hash> = RFC6962_LEAF_HASHES.iter().map(|s| h(s)).collect();
    assert_eq!(leaves, want);
    for n in 0..=8usize {
        let t = tiles::tiles(&leaves[..n]);
        if n > 0 {
            // One partial level-0 tile: the concatenated leaf hashes.
            let id = TileId {
                level: 0,
                index: 0,
                width: n as u16,
            };
            assert_eq!(t[&id], want[..n].concat());
            assert_eq!(t.len(), 1);
        }
        assert_eq!(root_from_tiles(n as u64, &t).unwrap(), h(RFC6962_ROOTS[n]));
        for i in 0..n {
            let p = inclusion_proof_from_tiles(i as u64, n as u64, &t).unwrap();
            assert_eq!(p, inclusion_proof(&leaves[..n], i).unwrap());
        }
    }
    // The path of leaf 0 in the 8-leaf tree, from NodeHashes: [0][1], [1][1], [2][1].
    let t = tiles::tiles(&leaves);
    assert_eq!(
        inclusion_proof_from_tiles(0, 8, &t).unwrap(),
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]
    );
}

/// Roots and proofs from tiles equal the in-memory ones, reading only the tiles the
/// `tiles_for_*` functions name.
fn check_against_memory(all: &[Hash], indices: &[u64], olds: &[u64]) {
    let n = all.len() as u64;
    let every = tiles::tiles(all);
    let only = |ids: std::collections::BTreeSet<TileId>| -> TileMap {
        ids.into_iter().map(|id| (id, every[&id].clone())).collect()
    };
    let r = root(all);
    assert_eq!(root_from_tiles(n, &only(tiles_for_root(n))).unwrap(), r);
    for &i in indices.iter().filter(|i| **i < n) {
        let p = inclusion_proof_from_tiles(i, n, &only(tiles_for_inclusion(i, n))).unwrap();
        assert_eq!(p, inclusion_proof(all, i as usize).unwrap(), "n={n} i={i}");
        verify_inclusion(i, n, &all[i as usize], &p, &r).unwrap();
    }
    for &m in olds.iter().filter(|m| **m <= n) {
        let p = consistency_proof_from_tiles(m, n, &only(tiles_for_consistency(m, n))).unwrap();
        assert_eq!(
            p,
            consistency_proof(all, m as usize).unwrap(),
            "n={n} m={m}"
        );
    }
}

#[test]
fn tile_boundaries_match_memory() {
    // Each in-memory proof rehashes the whole tree, so large trees get a few probes.
    for n in [1usize, 2, 255, 256, 257, 511, 512, 513, 4097] {
        let all = leaves(n);
        let n = n as u64;
        let edges = [0, 1, 127, 128, 255, 256, 257, 4095, 4096, n / 2, n - 1];
        check_against_memory(&all, &edges, &edges);
    }
    for n in [65_536usize, 65_537] {
        let edges = [1, 256, 65_535, 65_536];
        check_against_memory(&leaves(n), &edges, &edges);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_trees_match_memory(n in 1usize..3000, picks in prop::collection::vec(any::<u64>(), 1..6)) {
        let all = leaves(n);
        let idx: Vec<u64> = picks.iter().map(|p| p % n as u64).collect();
        let olds: Vec<u64> = picks.iter().map(|p| p % (n as u64 + 1)).collect();
        check_against_memory(&all, &idx, &olds);
    }
}

#[test]
fn missing_or_wrong_tiles_are_named() {
    let all = leaves(300);
    let mut t = tiles::tiles(&all);
    let partial = TileId {
        level: 0,
        index: 1,
        width: 44,
    };
    let data = t.remove(&partial).unwrap();
    assert_eq!(
        root_from_tiles(300, &t),
        Err(TileError::Missing("tile/0/001.p/44".into()))
    );
    t.insert(partial, data[..32 * 43].to_vec());
    assert_eq!(
        root_from_tiles(300, &t),
        Err(TileError::WrongLength {
            path: "tile/0/001.p/44".into(),
            got: 32 * 43,
            want: 32 * 44
        })
    );
    assert!(inclusion_proof_from_tiles(300, 300, &t).is_err());
    assert!(consistency_proof_from_tiles(301, 300, &t).is_err());
}

#[test]
fn entry_bundles_round_trip_and_refuse_truncation() {
    let entries: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a".to_vec(),
        vec![0xab; 300],
        vec![1; 65_535],
    ];
    let bundle = encode_bundle(&entries).unwrap();
    assert_eq!(&bundle[..5], &[0, 0, 0, 1, b'a']);
    assert_eq!(decode_bundle(&bundle).unwrap(), entries);
    for cut in [1, 3, 4, 10, bundle.len() - 1] {
        assert!(matches!(
            decode_bundle(&bundle[..cut]),
            Err(TileError::TruncatedBundle { .. })
        ));
    }
    assert_eq!(
        encode_bundle(&[vec![0u8; 65_536]]),
        Err(TileError::EntryTooLong {
            index: 0,
            len: 65_536
        })
    );
    // Each bundle entry hashes to the matching hash of its level-0 tile.
    let t = tiles::tiles(&entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>());
    let tile = &t[&TileId {
        level: 0,
        index: 0,
        width: 4,
    }];
    for (i, e) in decode_bundle(&bundle).unwrap().iter().enumerate() {
        assert_eq!(&tile[i * 32..(i + 1) * 32], leaf_hash(e));
    }
}

/// A log that grows a few leaves at a time, signing each head as a committer does: one
/// memo carried from commit to commit gives the in-memory root and consistency proof at
/// every size, across tile boundaries and into the second level.
#[test]
fn a_memo_carried_across_commits_gives_the_same_roots_and_proofs() {
    let all = leaves(65_600);
    // The tiles of every smaller tree are prefixes of the whole tree's.
    let whole: std::collections::BTreeMap<(u8, u64), Vec<u8>> = tiles::tiles(&all)
        .into_iter()
        .map(|(id, data)| ((id.level, id.index), data))
        .collect();
    let tiles_of = |n: u64| -> TileMap {
        TileId::for_tree(n)
            .into_iter()
            .map(|id| {
                (
                    id,
                    whole[&(id.level, id.index)][..usize::from(id.width) * 32].to_vec(),
                )
            })
            .collect()
    };
    let mut memo = SubtreeMemo::default();
    let (mut size, mut step) = (0usize, 1usize);
    while size < all.len() {
        // Batch sizes 1..=41, and large ones (a tile or more at once) in the middle.
        step = (step * 7 + 3) % 41 + 1;
        let batch = if size > 600 && size < 65_400 {
            step * 97
        } else {
            step
        };
        let next = (size + batch).min(all.len());
        let t = tiles_of(next as u64);
        let r = root_from_tiles_with(next as u64, &t, &mut memo).unwrap();
        let p = consistency_proof_from_tiles_with(size as u64, next as u64, &t, &mut memo).unwrap();
        assert_eq!(r, root_from_tiles(next as u64, &t).unwrap(), "size {next}");
        assert_eq!(
            p,
            consistency_proof_from_tiles(size as u64, next as u64, &t).unwrap(),
            "{size} → {next}"
        );
        if next < 2_000 {
            assert_eq!(r, root(&all[..next]), "size {next}");
            assert_eq!(p, consistency_proof(&all[..next], size).unwrap());
        }
        size = next;
    }
    assert_eq!(
        root_from_tiles_with(65_600, &tiles_of(65_600), &mut memo).unwrap(),
        root(&all)
    );
    assert!(memo.remembered() > 0);
}

/// What the memo remembers never outweighs the bytes in front of it: a tile whose stored
/// hashes changed (a rolled-back append followed by others, a rewritten row) gives the
/// root of its new bytes, as a fresh computation does.
#[test]
fn a_memo_never_hides_a_changed_tile() {
    let all = leaves(300);
    let mut memo = SubtreeMemo::default();
    let t = tiles::tiles(&all);
    assert_eq!(
        root_from_tiles_with(300, &t, &mut memo).unwrap(),
        root(&all)
    );
    // Every hash of the rightmost level-0 tile (positions 256..300) and of the full one
    // before it, changed in turn.
    for i in [0usize, 1, 100, 254, 255, 256, 257, 280, 299] {
        let mut other = all.clone();
        other[i][0] ^= 1;
        let changed = tiles::tiles(&other);
        let got = root_from_tiles_with(300, &changed, &mut memo).unwrap();
        assert_eq!(got, root(&other), "hash {i} changed");
        assert_ne!(got, root(&all), "hash {i} changed");
        let p = consistency_proof_from_tiles_with(290, 300, &changed, &mut memo).unwrap();
        assert_eq!(
            p,
            consistency_proof(&other, 290).unwrap(),
            "hash {i} changed"
        );
        // And back: the original bytes give the original root again.
        assert_eq!(
            root_from_tiles_with(300, &t, &mut memo).unwrap(),
            root(&all)
        );
    }
    // A rolled-back append: 5 leaves seen, then 5 others in their place.
    let mut rolled = all[..295].to_vec();
    rolled.extend(leaves(5).iter().map(|l| {
        let mut l = *l;
        l[31] ^= 0xff;
        l
    }));
    let got = root_from_tiles_with(300, &tiles::tiles(&rolled), &mut memo).unwrap();
    assert_eq!(got, root(&rolled));
}
