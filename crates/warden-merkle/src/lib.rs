//! The audit log's Merkle tree, as RFC 9162 §2.1 defines it: leaf hash
//! `SHA-256(0x00 || entry)`, node hash `SHA-256(0x01 || left || right)`, the tree over
//! `n` leaves split at the largest power of two below `n`. Pure functions: the root of a
//! list of leaf hashes, inclusion and consistency proofs, and their verifiers (§2.1.3,
//! §2.1.4), checked against the transparency-dev test vectors.
//!
//! Around that core, the C2SP formats that make the log checkable with other people's
//! tools, each in its own module: [`note`] (signed notes, Ed25519), [`checkpoint`]
//! (signed tree heads and a signer that refuses forks), [`tiles`] (the tlog-tiles layout:
//! paths, tile contents, entry bundles, roots and proofs from tiles) and [`tlog_proof`]
//! (offline inclusion proofs). All pure: bytes in, bytes out, no I/O, no clock.

use sha2::{Digest, Sha256};

pub mod checkpoint;
pub mod frontier;
pub mod note;
pub mod tiles;
pub mod tlog_proof;

pub use checkpoint::{Checkpoint, CheckpointError, Checkpointer};
pub use frontier::Frontier;
pub use note::{KeyError, NoteError, SignerKey, VerifierKey};
pub use tiles::{TileError, TileId};
pub use tlog_proof::{TlogProof, TlogProofError};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree sizes {size1} and {size2} are not in order")]
    SizesOutOfOrder { size1: u64, size2: u64 },
    #[error("the proof has {got} hashes; {want} were expected")]
    WrongLength { got: usize, want: usize },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("a consistency proof between equal sizes must be empty and the roots equal")]
    EqualSizes,
    #[error("consistency with the empty tree proves nothing")]
    EmptyTree,
}

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n >= 2).
pub(crate) fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash (MTH) of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The hash of a leaf range `[start, end)` from leaves held in memory.
fn in_memory(leaves: &[Hash]) -> impl FnMut(u64, u64) -> Result<Hash, std::convert::Infallible> {
    |start, end| Ok(root(&leaves[start as usize..end as usize]))
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    if index >= leaves.len() {
        return Err(ProofError::IndexOutOfRange {
            index: index as u64,
            size: leaves.len() as u64,
        });
    }
    let mut proof = Vec::new();
    let Ok(()) = path(
        &mut in_memory(leaves),
        0,
        leaves.len() as u64,
        index as u64,
        &mut proof,
    );
    Ok(proof)
}

/// RFC 9162's PATH(m, D[lo:hi]), asking `hash` for the subtree hashes it needs, so that
/// proofs come out the same from leaves in memory and from tiles.
pub(crate) fn path<E>(
    hash: &mut impl FnMut(u64, u64) -> Result<Hash, E>,
    lo: u64,
    hi: u64,
    m: u64,
    out: &mut Vec<Hash>,
) -> Result<(), E> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(hash, lo, lo + k, m, out)?;
        out.push(hash(lo + k, hi)?);
    } else {
        path(hash, lo + k, hi, m - k, out)?;
        out.push(hash(lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the first `size1` leaves and all of `leaves`
/// (RFC 9162 §2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], size1: usize) -> Result<Vec<Hash>, ProofError> {
    if size1 > leaves.len() {
        return Err(ProofError::SizesOutOfOrder {
            size1: size1 as u64,
            size2: leaves.len() as u64,
        });
    }
    let mut proof = Vec::new();
    if size1 > 0 && size1 < leaves.len() {
        let n = leaves.len() as u64;
        let Ok(()) = subproof(&mut in_memory(leaves), 0, n, size1 as u64, true, &mut proof);
    }
    Ok(proof)
}

/// RFC 9162's SUBPROOF(m, D[lo:hi], b), over the same `hash` source as [`path`].
pub(crate) fn subproof<E>(
    hash: &mut impl FnMut(u64, u64) -> Result<Hash, E>,
    lo: u64,
    hi: u64,
    m: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), E> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(hash(lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(hash, lo, lo + k, m, complete, out)?;
        out.push(hash(lo + k, hi)?);
    } else {
        subproof(hash, lo + k, hi, m - k, false, out)?;
        out.push(hash(lo, lo + k)?);
    }
    Ok(())
}

/// Verifies that `leaf` is entry `index` of the tree of `size` whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: inclusion_len(index, size),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inclusion_len(index, size),
        });
    }
    if r.as_slice() == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut fnode, mut snode, mut n) = (index, size - 1, 0);
    while snode != 0 {
        if fnode & 1 == 0 && fnode == snode {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
        n += 1;
    }
    n
}

/// Verifies that the tree of `size1` with root `root1` is a prefix of the tree of
/// `size2` with root `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 == 0 {
        // Every tree extends the empty one: such a check proves nothing.
        return Err(ProofError::EmptyTree);
    }
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::EqualSizes)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength { got: 0, want: 1 });
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        let first: Hash = root1.try_into().map_err(|_| ProofError::RootMismatch)?;
        path.insert(0, first);
    }
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if fr.as_slice() == root1 && sr.as_slice() == root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}
