//! Offline verification of audit exports and tlog-tiles directories: the log key and the
//! files, nothing else. Every leaf is recomputed, every checkpoint signature checked,
//! every proof verified, every record's content checked against its leaf; the first bad
//! record is named with what is wrong. Lines are checked in parallel (rayon), lines as
//! the gateway writes them the fast way (`audit_verify_fast.rs`); proofs of neighbouring
//! records share their upper nodes, so each node is hashed once per piece of the file.

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

/// Verifies a provable export (`EXPORT_FORMAT_PROVABLE`) held in memory against the log
/// key. `progress` is given the bytes of lines checked, piece by piece.
pub fn verify_export(
    text: &str,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, Bad> {
    let (head, body) = match memchr::memchr(b'\n', text.as_bytes()) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    let pieces = split_lines(body, PIECE_BYTES).into_iter().map(Chunk::Text);
    check_export(head, pieces, log, progress)
}

/// Verifies a provable export read from `input` (the file `warden audit verify` is given):
/// the first pieces are checked while the rest is read, and only a few pieces are held
/// in memory at a time.
pub fn verify_export_from(
    input: impl std::io::Read + Send,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, Bad> {
    verify_export_read(input, PIECE_BYTES, log, progress)
}

/// [`verify_export_from`] reading and checking `piece_bytes` at a time (tests cut an
/// export into pieces of a line or two to prove the pieces join up).
pub fn verify_export_read(
    input: impl std::io::Read + Send,
    piece_bytes: usize,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, Bad> {
    let unreadable = |e: std::io::Error| bad(1, 0, format!("cannot read the export: {e}"));
    let mut pieces = crate::export_pieces::Pieces::new(input, piece_bytes);
    let first = pieces
        .next()
        .transpose()
        .map_err(unreadable)?
        .unwrap_or_default();
    let (head, body) = match memchr::memchr(b'\n', &first) {
        Some(at) => (&first[..at], first[at + 1..].to_vec()),
        None => (&first[..], Vec::new()),
    };
    let head = std::str::from_utf8(head)
        .map_err(|_| bad(1, 0, "the first line is not an export header"))?;
    let spare = pieces.spare();
    let pieces = std::iter::once(Ok(body))
        .chain(pieces)
        .map(|read| Chunk::Read(read, &spare));
    check_export(head, pieces, log, progress)
}

/// A piece of whole lines: text already known to be UTF-8, or bytes as read (and where
/// to hand their buffer back).
enum Chunk<'a> {
    Text(&'a str),
    Read(std::io::Result<Vec<u8>>, &'a crate::export_pieces::Spare),
}

/// The export's header line (`head`) and then its record lines in `pieces` of whole lines,
/// checked in parallel as they come.
fn check_export<'a>(
    head: &str,
    pieces: impl Iterator<Item = Chunk<'a>> + Send,
    log: &VerifierKey,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, Bad> {
    let header: Header = serde_json::from_str(head.strip_suffix('\r').unwrap_or(head))
        .map_err(|_| bad(1, 0, "the first line is not an export header"))?;
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
    let expect = crate::audit_verify_fast::Expect {
        tenant_id: &header.tenant_id,
        checkpoint_json: serde_json::to_string(&header.checkpoint)
            .map(|q| q[1..q.len() - 1].to_owned())
            .unwrap_or_default(),
        size: checkpoint.size,
        root: checkpoint.root,
    };
    let mut results: Vec<(usize, Piece)> = pieces
        .enumerate()
        .par_bridge()
        .map(|(i, piece)| {
            let checked = match piece {
                Chunk::Text(text) => verify_piece(text, &header, &checkpoint, &expect, progress),
                Chunk::Read(Ok(piece), spare) => {
                    let checked = verify_bytes(&piece, &header, &checkpoint, &expect, progress);
                    spare.give(piece);
                    checked
                }
                Chunk::Read(Err(e), _) => Piece {
                    seqs: Vec::new(),
                    shredded: 0,
                    bad: Some(bad(0, 0, format!("cannot read the export: {e}"))),
                },
            };
            (i, checked)
        })
        .collect();
    results.sort_unstable_by_key(|(i, _)| *i);
    // In file order: the first bad line or misplaced record is the one named.
    let mut last = 0u64;
    let mut shredded = 0;
    let mut line = 1;
    for (_, piece) in results {
        shredded += piece.shredded;
        for s in piece.seqs {
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
        if let Some(mut b) = piece.bad {
            b.line = line + 1;
            return Err(b);
        }
    }
    Ok(ExportReport {
        tenant_id: header.tenant_id,
        records: line as u64 - 1,
        tree_size: checkpoint.size,
        shredded,
    })
}

/// Bytes of lines per piece of work: each piece is checked by one thread, with its own
/// memo of proven nodes (neighbouring records share most of their path).
const PIECE_BYTES: usize = 4 << 20;

/// `text` cut into runs of whole lines of about `bytes` each, as `str::lines` splits
/// them (a last line without a newline counts; no empty line after the last newline).
fn split_lines(text: &str, bytes: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = if rest.len() <= bytes {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest.as_bytes()[bytes..]).map_or(rest.len(), |i| bytes + i + 1)
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// `text`'s lines as `str::lines` gives them (`\n` or `\r\n` ends a line; no empty line
/// after the last newline), found with the memchr crate's vector search: the standard
/// library's byte-at-a-time search was a tenth of an export's verification.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .map(Some)
        .chain(std::iter::once(None))
        .filter_map(move |end| {
            let from = start;
            match end {
                Some(at) => {
                    start = at + 1;
                    let line = &text[from..at];
                    Some(line.strip_suffix('\r').unwrap_or(line))
                }
                // A last line without a newline keeps a trailing `\r`, as in `str::lines`.
                None => (from < text.len()).then(|| &text[from..]),
            }
        })
}

/// What one piece held: each good line's sequence, and the first bad line (its `line`
/// counted within the piece; the caller numbers it in the file).
struct Piece {
    seqs: Vec<u64>,
    shredded: u64,
    bad: Option<Bad>,
}

/// A piece as read: its whole lines up to the first that is not UTF-8 checked as text.
fn verify_bytes(
    piece: &[u8],
    header: &Header,
    checkpoint: &Checkpoint,
    expect: &crate::audit_verify_fast::Expect<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Piece {
    let (text, not_utf8) = match simdutf8::compat::from_utf8(piece) {
        Ok(text) => (text, false),
        Err(e) => {
            let whole = memchr::memrchr(b'\n', &piece[..e.valid_up_to()]).map_or(0, |at| at + 1);
            (
                std::str::from_utf8(&piece[..whole]).unwrap_or_default(),
                true,
            )
        }
    };
    let mut out = verify_piece(text, header, checkpoint, expect, progress);
    if not_utf8 && out.bad.is_none() {
        out.bad = Some(bad(0, 0, "the line is not UTF-8 text"));
    }
    out
}

fn verify_piece<'t>(
    piece: &'t str,
    header: &Header,
    checkpoint: &Checkpoint,
    expect: &crate::audit_verify_fast::Expect<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Piece {
    let mut memo = Memo::default();
    let mut scratch = crate::audit_verify_fast::Scratch::<'t>::default();
    let mut out = Piece {
        seqs: Vec::new(),
        shredded: 0,
        bad: None,
    };
    for l in lines(piece) {
        if let Some(seq) = crate::audit_verify_fast::verify_line(l, expect, &mut scratch) {
            out.seqs.push(seq);
            continue;
        }
        // Not as the gateway writes it, or bad: the full check decides and says why.
        match verify_line(l, 0, header, checkpoint, &mut memo) {
            Ok((seq, gone)) => {
                out.seqs.push(seq);
                out.shredded += u64::from(gone);
            }
            Err(b) => {
                out.bad = Some(b);
                break;
            }
        }
    }
    progress(piece.len() as u64);
    out
}

/// One record line: returns its sequence and whether its content was shredded.
fn verify_line(
    text: &str,
    line: usize,
    header: &Header,
    checkpoint: &Checkpoint,
    memo: &mut Memo,
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

/// Nodes proven to lead to a checkpoint's root, by leaf range: the nodes of every path
/// checked so far and their siblings.
pub(crate) type Memo = HashMap<(u64, u64), Hash>;

/// RFC 9162 inclusion verification that stops at a node already proven to lead to the
/// root (`memo`), and remembers the nodes and siblings it proves. As strict as checking
/// the proof alone: every sibling it gives must be the proven one where one is known,
/// above the proven node too, so a proof with a wrong hash anywhere is refused.
pub(crate) fn verify_inclusion_memo(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
    memo: &mut Memo,
) -> Result<(), warden_merkle::ProofError> {
    use warden_merkle::ProofError;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The path from the root down to the leaf: each node's range, its sibling's range
    // and whether the sibling is on the left.
    let mut path = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        // The largest power of two below the range's size (RFC 9162's split).
        let k = (hi - lo).next_power_of_two() / 2;
        if index < lo + k {
            path.push(((lo, lo + k), (lo + k, hi), false));
            hi = lo + k;
        } else {
            path.push(((lo + k, hi), (lo, lo + k), true));
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
    let mut proven: Vec<((u64, u64), Hash)> = Vec::with_capacity(2 * path.len());
    let levels = || path.iter().rev().zip(proof);
    for (i, ((child, sibling, sibling_left), p)) in levels().enumerate() {
        if let Some(known) = memo.get(child) {
            if *known != r {
                return Err(ProofError::RootMismatch);
            }
            // Proven from here up (with every sibling above): the rest of the proof must
            // be those siblings.
            if levels()
                .skip(i)
                .any(|((_, sibling, _), p)| memo.get(sibling) != Some(p))
            {
                return Err(ProofError::RootMismatch);
            }
            memo.extend(proven);
            return Ok(());
        }
        if memo.get(sibling).is_some_and(|s| s != p) {
            return Err(ProofError::RootMismatch);
        }
        proven.push((*child, r));
        proven.push((*sibling, *p));
        r = if *sibling_left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    memo.extend(proven);
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

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_cut_as_str_lines_cuts_them() {
        let parts = ["", "a", "\n", "\r", "\r\n", "bc", "\n\n", "\r\r\n", "é"];
        // Every text of up to four parts.
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| parts.iter().map(move |p| format!("{t}{p}")))
                .collect();
            texts.extend(longer);
            texts.sort();
            texts.dedup();
        }
        for t in &texts {
            let got: Vec<&str> = super::lines(t).collect();
            let want: Vec<&str> = t.lines().collect();
            assert_eq!(got, want, "{t:?}");
        }
    }
}
