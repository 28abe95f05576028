//! Offline verification of audit exports and tlog-tiles directories: the log key and the
//! files, nothing else. Every leaf is recomputed, every checkpoint signature checked,
//! every proof verified, every record's content checked against its leaf; the first bad
//! record is named with what is wrong. Lines are checked in parallel (rayon); proofs of
//! neighbouring records share their upper nodes, so each node is verified once per chunk.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use rayon::prelude::*;
use warden_merkle::checkpoint::Checkpoint;
use warden_merkle::tiles::{self, TILE_WIDTH};
use warden_merkle::{Hash, TileId, TlogProof, VerifierKey, node_hash};
use warden_proto::common::v1::AuditRecord;
use warden_storage::audit_entry::{LeafEntry, commitment};

/// The first bad thing found: where (line of the file, record sequence) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub line: usize,
    pub sequence: u64,
    pub what: String,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sequence > 0 {
            write!(
                f,
                "record {} (line {}): {}",
                self.sequence, self.line, self.what
            )
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

/// What a good export held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub tenant_id: String,
    pub records: u64,
    pub tree_size: u64,
    /// Records whose key was destroyed: their leaf is proven, their content is gone.
    pub shredded: u64,
}

#[derive(serde::Deserialize)]
struct Header {
    format: String,
    tenant_id: String,
    origin: String,
    checkpoint: String,
}

#[derive(serde::Deserialize)]
struct Line {
    record: serde_json::Value,
    pb: String,
    entry: String,
    proof: String,
}

fn bad(line: usize, sequence: u64, what: impl Into<String>) -> Bad {
    Bad {
        line,
        sequence,
        what: what.into(),
    }
}

/// Verifies a provable export (`EXPORT_FORMAT_PROVABLE`) against the log key.
pub fn verify_export(
    text: &str,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, Bad> {
    let mut lines = text.lines();
    let header: Header = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| bad(1, 0, "the first line is not an export header"))?;
    if header.format != warden_gateway::PROVABLE_FORMAT {
        return Err(bad(
            1,
            0,
            format!("unknown export format {:?}", header.format),
        ));
    }
    let (checkpoint, _) = Checkpoint::open(header.checkpoint.as_bytes(), &header.origin, log, &[])
        .map_err(|e| {
            bad(
                1,
                0,
                format!("the export's checkpoint does not verify with the log key: {e}"),
            )
        })?;
    let body: Vec<&str> = lines.collect();
    const CHUNK: usize = 4096;
    let results: Vec<Result<(Vec<u64>, u64), Bad>> = body
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let mut memo = HashMap::new();
            let mut seqs = Vec::with_capacity(chunk.len());
            let mut shredded = 0;
            for (i, l) in chunk.iter().enumerate() {
                let line = c * CHUNK + i + 2;
                let (seq, gone) = verify_line(l, line, &header, &checkpoint, &mut memo)?;
                seqs.push(seq);
                shredded += u64::from(gone);
            }
            progress(chunk.len() as u64);
            Ok((seqs, shredded))
        })
        .collect();
    let mut last = 0u64;
    let mut shredded = 0;
    let mut line = 1;
    for r in results {
        let (seqs, gone) = r?;
        shredded += gone;
        for s in seqs {
            line += 1;
            if s <= last {
                return Err(bad(
                    line,
                    s,
                    format!(
                        "record {s} comes after record {last}: records were reordered or repeated"
                    ),
                ));
            }
            last = s;
        }
    }
    Ok(ExportReport {
        tenant_id: header.tenant_id,
        records: body.len() as u64,
        tree_size: checkpoint.size,
        shredded,
    })
}

/// One record line: returns its sequence and whether its content was shredded.
fn verify_line(
    text: &str,
    line: usize,
    header: &Header,
    checkpoint: &Checkpoint,
    memo: &mut HashMap<(u64, u64), Hash>,
) -> Result<(u64, bool), Bad> {
    let l: Line =
        serde_json::from_str(text).map_err(|e| bad(line, 0, format!("not a record line: {e}")))?;
    let entry_bytes = B64
        .decode(&l.entry)
        .map_err(|_| bad(line, 0, "the leaf entry is not base64"))?;
    let entry = LeafEntry::decode(&entry_bytes)
        .map_err(|e| bad(line, 0, format!("the leaf entry: {e}")))?;
    let seq = entry.sequence;
    let fail = |what: String| bad(line, seq, what);
    let proof =
        TlogProof::parse(l.proof.as_bytes()).map_err(|e| fail(format!("the proof: {e}")))?;
    if proof.checkpoint != header.checkpoint {
        return Err(fail(
            "the proof is against another checkpoint than the export's".into(),
        ));
    }
    if seq == 0 || proof.index != seq - 1 {
        return Err(fail(format!(
            "the proof is for leaf {} but the record is number {seq}",
            proof.index
        )));
    }
    if entry.tenant_id != header.tenant_id {
        return Err(fail(format!(
            "the record belongs to tenant {:?}, not {:?}",
            entry.tenant_id, header.tenant_id
        )));
    }
    let leaf = warden_merkle::leaf_hash(&entry_bytes);
    verify_inclusion_memo(
        proof.index,
        checkpoint.size,
        &leaf,
        &proof.hashes,
        &checkpoint.root,
        memo,
    )
    .map_err(|e| fail(format!("not in the log: {e}")))?;
    let pb = B64
        .decode(&l.pb)
        .map_err(|_| fail("the record encoding is not base64".into()))?;
    if pb.is_empty() {
        // Crypto-shredded: the leaf is proven; the content is gone for good.
        if l.record.get("reason").and_then(|v| v.as_str()) != Some("RECORD_SHREDDED") {
            return Err(fail("the record's encoding is missing".into()));
        }
        return Ok((seq, true));
    }
    if entry.commitment.is_empty() {
        return Err(fail(
            "the record predates commitments; its content cannot be checked offline".into(),
        ));
    }
    if commitment(&pb) != entry.commitment {
        return Err(fail(
            "the record's content does not match its leaf (a field was changed)".into(),
        ));
    }
    let record = AuditRecord::decode(pb.as_slice())
        .map_err(|_| fail("the record cannot be decoded".into()))?;
    let time_ms = record
        .time
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000));
    if record.sequence != seq
        || record.id != entry.id
        || record.tenant_id != entry.tenant_id
        || time_ms != entry.time_ms
        || i64::from(record.decision) != entry.decision
    {
        return Err(fail(
            "the record's sequence, id, tenant, time or decision differ from its leaf".into(),
        ));
    }
    let mut json = warden_gateway::record_json(&record);
    if let Some(o) = json.as_object_mut() {
        o.remove("hash");
    }
    if json != l.record {
        let field = json
            .as_object()
            .and_then(|o| o.iter().find(|(k, v)| l.record.get(k.as_str()) != Some(*v)))
            .map_or("a field".to_owned(), |(k, _)| format!("field {k:?}"));
        return Err(fail(format!(
            "{field} of the readable record differs from the proven record"
        )));
    }
    Ok((seq, false))
}

/// RFC 9162 inclusion verification that stops at a node already proven to lead to the
/// root (`memo`, keyed by the node's leaf range), and remembers the nodes it proves.
fn verify_inclusion_memo(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
    memo: &mut HashMap<(u64, u64), Hash>,
) -> Result<(), warden_merkle::ProofError> {
    use warden_merkle::ProofError;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The path from the root down to the leaf: each node's range and its sibling's side.
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        // The largest power of two below the range's size (RFC 9162's split).
        let k = (hi - lo).next_power_of_two() / 2;
        if index < lo + k {
            path.push(((lo, hi), false));
            hi = lo + k;
        } else {
            path.push(((lo, hi), true));
            lo += k;
        }
    }
    if path.len() != proof.len() {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: path.len(),
        });
    }
    let mut r = *leaf;
    let mut computed = Vec::with_capacity(path.len());
    for ((range, sibling_left), p) in path.iter().rev().zip(proof) {
        r = if *sibling_left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
        if let Some(known) = memo.get(range) {
            return if *known == r {
                memo.extend(computed);
                Ok(())
            } else {
                Err(ProofError::RootMismatch)
            };
        }
        computed.push((*range, r));
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    memo.extend(computed);
    Ok(())
}

/// What a good tiles directory held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilesReport {
    pub tree_size: u64,
}

/// Verifies a tlog-tiles directory: the checkpoint's signature, every entry bundle's
/// leaves against the level-0 tiles, every tile against the tiles recomputed from the
/// leaves, and the root against the checkpoint.
pub fn verify_tiles(
    dir: &Path,
    origin: &str,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TilesReport, Bad> {
    let read = |p: &str| std::fs::read(dir.join(p)).map_err(|e| bad(0, 0, format!("{p}: {e}")));
    let note = read("checkpoint")?;
    let (c, _) = Checkpoint::open(&note, origin, log, &[]).map_err(|e| {
        bad(
            0,
            0,
            format!("the checkpoint does not verify with the log key: {e}"),
        )
    })?;
    let bundles: Vec<TileId> = TileId::for_tree(c.size)
        .into_iter()
        .filter(|t| t.level == 0)
        .collect();
    let leaves: Vec<Vec<Hash>> = bundles
        .par_iter()
        .map(|t| {
            let first = t.index * TILE_WIDTH + 1;
            let entries = tiles::decode_bundle(&read(&t.entries_path())?)
                .map_err(|e| bad(0, first, format!("{}: {e}", t.entries_path())))?;
            if entries.len() != usize::from(t.width) {
                return Err(bad(
                    0,
                    first,
                    format!(
                        "{} holds {} entries, not {}",
                        t.entries_path(),
                        entries.len(),
                        t.width
                    ),
                ));
            }
            let stored = read(&t.path())?;
            let mut out = Vec::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                let seq = first + i as u64;
                let entry = LeafEntry::decode(e)
                    .map_err(|err| bad(0, seq, format!("its leaf entry: {err}")))?;
                if entry.sequence != seq {
                    return Err(bad(
                        0,
                        seq,
                        format!(
                            "the entry at record {seq} says it is record {}",
                            entry.sequence
                        ),
                    ));
                }
                let leaf = warden_merkle::leaf_hash(e);
                if stored.get(i * 32..i * 32 + 32) != Some(leaf.as_slice()) {
                    return Err(bad(
                        0,
                        seq,
                        format!(
                            "record {seq}'s entry does not match its leaf in {}",
                            t.path()
                        ),
                    ));
                }
                out.push(leaf);
            }
            progress(out.len() as u64);
            Ok(out)
        })
        .collect::<Result<_, _>>()?;
    let leaves: Vec<Hash> = leaves.concat();
    for (id, want) in tiles::tiles(&leaves) {
        if id.level > 0 && read(&id.path())? != want {
            return Err(bad(0, 0, format!("{id} does not match the tiles below it")));
        }
    }
    if warden_merkle::root(&leaves) != c.root {
        return Err(bad(
            0,
            0,
            format!(
                "the entries do not give the checkpoint's root at size {}",
                c.size
            ),
        ));
    }
    Ok(TilesReport { tree_size: c.size })
}
