//! The fast path of `verify_export` for lines exactly as the gateway writes them:
//! `{"entry":"..","pb":"..","proof":"..","record":{..}}` (serde_json's compact output,
//! keys in order). Why: parsing every line into a JSON tree, decoding each proof into
//! fresh vectors and rebuilding each record as a JSON tree to compare made an export
//! verify at about 12 µs a line; here a line is cut at its known separators, decoded into
//! reused buffers, its proof checked against the path of the line before (neighbouring
//! records share all but the lowest levels, so about one node is hashed a line), and its
//! record compared byte for byte with the record's own encoding written as serde_json
//! writes `record_json`.
//!
//! It only ever says yes: anything it does not expect, and any check that fails, sends
//! the line to the full check (`audit_verify::verify_line`), which decides and names
//! what is wrong. So a line it accepts is one the full check accepts: same fields, same
//! proof, same record; a record written with other spacing or key order, or an escape
//! it does not expect, is checked the slow way.

use std::fmt::Write as _;

use base64_simd::STANDARD as B64;
use prost::Message;
use sha2::{Digest, Sha256};
use warden_merkle::Hash;
use warden_proto::common::v1::{self as pb, AuditDecision, AuditKind, AuditRecord};
use warden_storage::audit_entry::LeafEntryRef;

/// What every line of one export is checked against.
pub(crate) struct Expect<'a> {
    pub(crate) tenant_id: &'a str,
    /// The export's checkpoint as it appears inside a JSON string (serde_json's escaping).
    pub(crate) checkpoint_json: String,
    pub(crate) size: u64,
    pub(crate) root: Hash,
}

/// One level of the last proven path, top-down: the node on the path (its leaf range
/// and hash) and its sibling (hash, and its base64 text in that line's proof).
struct Level<'t> {
    child: (u64, u64),
    child_hash: Hash,
    sibling_hash: Hash,
    sibling_text: &'t str,
}

/// Buffers reused from line to line, and the path of the last line proven.
#[derive(Default)]
pub(crate) struct Scratch<'t> {
    entry: Vec<u8>,
    texts: Vec<&'t str>,
    path: Vec<((u64, u64), bool)>,
    fresh: Vec<(Hash, Hash)>,
    last: Vec<Level<'t>>,
    /// Decoded into in place, so its texts keep their buffers from line to line.
    record: AuditRecord,
}

/// `a == b` for the short texts a line is checked in (keys, values, proof hashes), eight
/// bytes at a time in place: a call to `memcmp` for each of a record's hundred or so
/// pieces was a seventh of the time.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    if x.by_ref().zip(y.by_ref()).any(|(p, q)| word(p) != word(q)) {
        return false;
    }
    let (x, y) = (x.remainder(), y.remainder());
    (0..x.len()).all(|i| x[i] == y[i])
}

/// `text` up to the first `"`, and what follows it.
fn until_quote(text: &str) -> Option<(&str, &str)> {
    let at = memchr::memchr(b'"', text.as_bytes())?;
    Some((&text[..at], &text[at + 1..]))
}

/// The sequence of the line's record if the line is good and as the gateway writes it;
/// None otherwise (the full check then decides).
pub(crate) fn verify_line<'t>(
    text: &'t str,
    expect: &Expect<'_>,
    s: &mut Scratch<'t>,
) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"entry":""#)?;
    let (entry_b64, rest) = until_quote(rest)?;
    let rest = rest.strip_prefix(r#","pb":""#)?;
    let (pb_b64, rest) = until_quote(rest)?;
    let rest = rest.strip_prefix(r#","proof":""#)?;
    // The proof is parsed where it stands: it ends with the export's checkpoint, which
    // must be followed by the string's closing quote.
    let (index, rest) = parse_proof(rest, &expect.checkpoint_json, &mut s.texts)?;
    let record_json = rest.strip_prefix(r#"","record":"#)?.strip_suffix('}')?;

    let mut entry_bytes = std::mem::take(&mut s.entry);
    entry_bytes.clear();
    B64.decode_append(entry_b64, &mut entry_bytes).ok()?;
    let checked = check_entry(&entry_bytes, pb_b64, index, expect, s);
    s.entry = entry_bytes;
    let seq = checked?;
    let mut same = Compare::new(record_json);
    write_record_json(&s.record, &mut same);
    same.equal().then_some(seq)
}

/// The entry's leaf is included at its index, and the record (`pb_b64`) is the one its
/// commitment names and agrees with its clear fields; the record is left in `s.record`.
fn check_entry(
    entry_bytes: &[u8],
    pb_b64: &str,
    index: u64,
    expect: &Expect<'_>,
    s: &mut Scratch<'_>,
) -> Option<u64> {
    let entry = LeafEntryRef::decode(entry_bytes).ok()?;
    let seq = entry.sequence;
    if seq == 0 || index != seq - 1 || entry.tenant_id != expect.tenant_id {
        return None;
    }
    let leaf = warden_merkle::leaf_hash(entry_bytes);
    included(index, leaf, expect, s)?;

    // Decoded from `Bytes`, prost hands each text over without an allocation of its own.
    let pb = bytes::Bytes::from(B64.decode_to_vec(pb_b64).ok()?);
    if pb.is_empty() || entry.commitment.len() != 64 {
        return None;
    }
    let mut digest_hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(&pb), &mut digest_hex).ok()?;
    if digest_hex != entry.commitment.as_bytes() {
        return None;
    }
    let record = &mut s.record;
    record.clear();
    record.merge(pb).ok()?;
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
        return None;
    }
    Some(seq)
}

fn hash_of(b64: &str) -> Option<Hash> {
    let mut hash = [0u8; 32];
    if b64.len() != 44 || B64.decoded_length(b64.as_bytes()).ok()? != 32 {
        return None;
    }
    B64.decode(b64.as_bytes(), base64_simd::Out::from_slice(&mut hash))
        .ok()?;
    Some(hash)
}

/// RFC 9162 inclusion of `leaf` at `index`, with the proof's hashes as text in
/// `s.texts` (leaf's sibling first), checked against the last path proven: the levels
/// both paths share must carry the same siblings (the same text), and where the paths
/// part, this leaf's node must be the sibling proven there and its sibling the node
/// proven there. Only the levels below are hashed: about one hash for a neighbour.
/// Every hash of the proof is either hashed into a node that must equal a proven one or
/// equal to a proven one, so a wrong hash anywhere is refused, as checking it alone would.
fn included<'t>(index: u64, leaf: Hash, expect: &Expect<'_>, s: &mut Scratch<'t>) -> Option<()> {
    if index >= expect.size {
        return None;
    }
    s.path.clear();
    let (mut lo, mut hi) = (0u64, expect.size);
    while hi - lo > 1 {
        let k = (hi - lo).next_power_of_two() / 2;
        if index < lo + k {
            s.path.push(((lo, lo + k), false));
            hi = lo + k;
        } else {
            s.path.push(((lo + k, hi), true));
            lo += k;
        }
    }
    let depth = s.path.len();
    if depth != s.texts.len() {
        return None;
    }
    if depth == 0 {
        return (leaf == expect.root).then_some(());
    }
    // Levels shared with the last path, from the top.
    let shared = s
        .last
        .iter()
        .zip(&s.path)
        .take_while(|(l, (child, _))| l.child == *child)
        .count();
    let text_at = |k: usize| s.texts[depth - 1 - k];
    if !s.last.is_empty() {
        if (0..shared).any(|k| !same(text_at(k).as_bytes(), s.last[k].sibling_text.as_bytes())) {
            return None;
        }
        if shared == depth {
            // The same leaf again (the order check names the repeat).
            return (s.last[depth - 1].child_hash == leaf).then_some(());
        }
    }
    // Hash from the leaf up to the level where the paths part (the root without a last path).
    let stop = if s.last.is_empty() { 0 } else { shared };
    let mut fresh = std::mem::take(&mut s.fresh);
    fresh.clear();
    let mut r = leaf;
    for k in (stop..depth).rev() {
        let sibling = hash_of(text_at(k))?;
        fresh.push((r, sibling));
        if k > stop || s.last.is_empty() {
            r = if s.path[k].1 {
                warden_merkle::node_hash(&sibling, &r)
            } else {
                warden_merkle::node_hash(&r, &sibling)
            };
        }
    }
    if s.last.is_empty() {
        if r != expect.root {
            return None;
        }
    } else {
        // Where the paths part: this node is the last path's sibling and the other way round.
        let (node, sibling) = fresh.last()?;
        if *node != s.last[stop].sibling_hash || *sibling != s.last[stop].child_hash {
            return None;
        }
    }
    // Proven: this line's path is the one to compare the next line with.
    s.last.truncate(stop);
    for (k, (child_hash, sibling_hash)) in (stop..depth).zip(fresh.drain(..).rev()) {
        s.last.push(Level {
            child: s.path[k].0,
            child_hash,
            sibling_hash,
            sibling_text: s.texts[depth - 1 - k],
        });
    }
    s.fresh = fresh;
    Some(())
}

/// A tlog-proof as it appears inside a JSON string, at the start of `escaped`: the
/// header, `index N`, the hashes and the export's checkpoint, lines separated by `\n`
/// escapes. Returns the index and what follows the checkpoint, and leaves the hashes'
/// text in `texts`. No `extra` line (the full check takes those).
fn parse_proof<'t>(
    escaped: &'t str,
    checkpoint_json: &str,
    texts: &mut Vec<&'t str>,
) -> Option<(u64, &'t str)> {
    let mut rest = escaped
        .strip_prefix(warden_merkle::tlog_proof::HEADER)?
        .strip_prefix("\\n")?;
    let mut line = || -> Option<&'t str> {
        // Hash lines are 44 characters: look there first.
        let b = rest.as_bytes();
        // A backslash within those 44 would make a text that is not base64 and equals no
        // proven one, so the proof is refused either way.
        let at = if b.get(44) == Some(&b'\\') {
            44
        } else {
            memchr::memchr(b'\\', rest.as_bytes())?
        };
        let l = &rest[..at];
        rest = rest[at..].strip_prefix("\\n")?;
        Some(l)
    };
    let index = decimal(line()?.strip_prefix("index ")?)?;
    texts.clear();
    loop {
        let l = line()?;
        if l.is_empty() {
            break;
        }
        // Canonical base64 of 32 bytes is 44 characters.
        if l.len() != 44 {
            return None;
        }
        texts.push(l);
    }
    Some((index, rest.strip_prefix(checkpoint_json)?))
}

/// A decimal without leading zeros (as `tlog-proof` requires).
fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Whether a JSON string needs an escape for any of `s`'s bytes (a control character,
/// `"` or `\\`), eight bytes at a time.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let v = u64::from_le_bytes(word);
        // A byte below 0x20, or one equal to `"` or `\\`.
        if v.wrapping_sub(0x20 * ONES) & !v & HIGH != 0
            || has_zero(v ^ (u64::from(b'"') * ONES))
            || has_zero(v ^ (u64::from(b'\\') * ONES))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Where a record's JSON goes: written out (`String`), or compared piece by piece with
/// the text it must equal ([`Compare`], what every line takes: no copy, no buffer).
/// One writer for both, so what is compared is exactly what the unit test holds equal to
/// the gateway's own JSON.
pub(crate) trait Sink {
    fn raw(&mut self, s: &str);
    /// Whether the last text given ends an object's opening brace (no comma before a key).
    fn after_open(&self) -> bool;
}

impl Sink for String {
    fn raw(&mut self, s: &str) {
        self.push_str(s);
    }
    fn after_open(&self) -> bool {
        self.ends_with('{')
    }
}

/// Compares what is written with `rest`, the text it must equal, from its start.
pub(crate) struct Compare<'a> {
    rest: &'a [u8],
    same: bool,
    after_open: bool,
}

impl<'a> Compare<'a> {
    pub(crate) fn new(text: &'a str) -> Compare<'a> {
        Compare {
            rest: text.as_bytes(),
            same: true,
            after_open: false,
        }
    }

    /// Everything written equals the whole text.
    pub(crate) fn equal(&self) -> bool {
        self.same && self.rest.is_empty()
    }
}

impl Sink for Compare<'_> {
    fn raw(&mut self, s: &str) {
        if !s.is_empty() {
            self.after_open = s.ends_with('{');
        }
        if !self.same {
            return;
        }
        let s = s.as_bytes();
        match self.rest.split_at_checked(s.len()) {
            Some((head, rest)) if same(head, s) => self.rest = rest,
            _ => self.same = false,
        }
    }
    fn after_open(&self) -> bool {
        self.after_open
    }
}

/// A JSON string as serde_json writes it.
fn string(out: &mut impl Sink, s: &str) {
    out.raw("\"");
    if !needs_escape(s.as_bytes()) {
        out.raw(s);
        out.raw("\"");
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.raw(&s[start..i]);
        if esc.is_empty() {
            let mut u = String::with_capacity(6);
            let _ = write!(u, "\\u{b:04x}");
            out.raw(&u);
        } else {
            out.raw(esc);
        }
        start = i + 1;
    }
    out.raw(&s[start..]);
    out.raw("\"");
}

/// `"key":` after a comma unless it is the object's first.
fn key(out: &mut impl Sink, k: &str) {
    if !out.after_open() {
        out.raw(",");
    }
    out.raw("\"");
    out.raw(k);
    out.raw("\":");
}

fn int(out: &mut impl Sink, n: impl itoa::Integer) {
    out.raw(itoa::Buffer::new().format(n));
}

fn num(out: &mut impl Sink, k: &str, n: impl itoa::Integer) {
    key(out, k);
    int(out, n);
}

fn text(out: &mut impl Sink, k: &str, v: &str) {
    key(out, k);
    string(out, v);
}

fn name(v: i32, f: fn(i32) -> Option<&'static str>) -> &'static str {
    f(v).unwrap_or("UNKNOWN")
}

fn data_type(v: i32) -> &'static str {
    name(v, |v| {
        pb::DataType::try_from(v).ok().map(|k| k.as_str_name())
    })
}

/// Each item of `items` as a JSON object written by `each`.
fn array<S: Sink, T>(out: &mut S, k: &str, items: &[T], each: impl Fn(&mut S, &T)) {
    key(out, k);
    out.raw("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.raw(",");
        }
        out.raw("{");
        each(out, item);
        out.raw("}");
    }
    out.raw("]");
}

fn minimization(out: &mut impl Sink, m: &pb::MinimizationSummary) {
    out.raw("{");
    array(out, "budget_cuts", &m.budget_cuts, |out, c| {
        num(out, "bytes_after", c.bytes_after);
        num(out, "bytes_before", c.bytes_before);
        text(out, "data_type", data_type(c.data_type));
        text(out, "method", &c.method);
    });
    array(out, "by_data_type", &m.by_data_type, |out, d| {
        num(out, "bytes_after", d.bytes_after);
        num(out, "bytes_before", d.bytes_before);
        text(out, "data_type", data_type(d.data_type));
        num(out, "dropped_parts", d.dropped_parts);
        num(out, "parts", d.parts);
    });
    num(out, "bytes_after", m.bytes_after);
    num(out, "bytes_before", m.bytes_before);
    array(out, "redactions", &m.redactions, |out, c| {
        num(out, "count", c.count);
        text(out, "kind", &c.kind);
    });
    out.raw("}");
}

/// What `serde_json::to_string` gives for `warden_gateway::record_json(r)` without its
/// `hash`: the keys in order (serde_json's map is sorted), compact.
pub(crate) fn write_record_json(r: &AuditRecord, out: &mut impl Sink) {
    let m = r.minimization.as_ref();
    let u = r.usage.as_ref();
    out.raw("{");
    text(out, "agent_run_id", &r.agent_run_id);
    array(out, "attempts", &r.attempts, |out, a| {
        num(out, "latency_ms", a.latency_ms);
        text(out, "model", &a.model);
        text(out, "outcome", &a.outcome);
        text(out, "provider", &a.provider);
    });
    num(out, "bytes_after", m.map_or(0, |m| m.bytes_after));
    num(out, "bytes_before", m.map_or(0, |m| m.bytes_before));
    text(out, "caller", &r.caller);
    key(out, "data_types");
    out.raw("[");
    for (i, d) in r.data_types.iter().enumerate() {
        if i > 0 {
            out.raw(",");
        }
        string(out, data_type(*d));
    }
    out.raw("]");
    text(
        out,
        "decision",
        name(r.decision, |v| {
            AuditDecision::try_from(v).ok().map(|k| k.as_str_name())
        }),
    );
    text(out, "id", &r.id);
    num(out, "input_tokens", u.map_or(0, |u| u.input_tokens));
    text(out, "intent_id", &r.intent_id);
    text(
        out,
        "kind",
        name(r.kind, |v| {
            AuditKind::try_from(v).ok().map(|k| k.as_str_name())
        }),
    );
    num(out, "latency_ms", r.latency_ms);
    key(out, "minimization");
    match m {
        Some(m) => minimization(out, m),
        None => out.raw("null"),
    }
    text(out, "model", &r.model);
    text(out, "outcome", &r.outcome);
    num(out, "output_tokens", u.map_or(0, |u| u.output_tokens));
    text(out, "prev_hash", &r.prev_hash);
    text(out, "provider", &r.provider);
    text(
        out,
        "purpose",
        name(r.purpose, |v| {
            pb::Purpose::try_from(v).ok().map(|k| k.as_str_name())
        }),
    );
    text(out, "reason", &r.reason);
    text(out, "reason_message", &r.reason_message);
    text(out, "recorded_by", &r.recorded_by);
    key(out, "redactions");
    match m {
        // A map: sorted by kind, the last count of a kind wins (as record_json collects).
        Some(m) => {
            let counts: std::collections::BTreeMap<&str, u64> = m
                .redactions
                .iter()
                .map(|c| (c.kind.as_str(), c.count))
                .collect();
            out.raw("{");
            for (i, (k, n)) in counts.into_iter().enumerate() {
                if i > 0 {
                    out.raw(",");
                }
                string(out, k);
                out.raw(":");
                int(out, n);
            }
            out.raw("}");
        }
        None => out.raw("null"),
    }
    num(out, "sequence", r.sequence);
    text(out, "tenant_id", &r.tenant_id);
    key(out, "time");
    match &r.time {
        Some(t) => int(out, t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
        None => out.raw("null"),
    }
    key(out, "usage");
    match u {
        Some(u) => {
            out.raw("{");
            num(out, "input_tokens", u.input_tokens);
            num(out, "output_tokens", u.output_tokens);
            out.raw("}");
        }
        None => out.raw("null"),
    }
    out.raw("}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_json(r: &AuditRecord) -> String {
        let mut v = warden_gateway::record_json(r);
        if let Some(o) = v.as_object_mut() {
            o.remove("hash");
        }
        v.to_string()
    }

    #[test]
    fn records_are_written_as_the_gateway_writes_them() {
        let odd = "quote \" back \\ nl \n cr \r tab \t bs \u{8} ff \u{c} nul \0 us \u{1f} del \u{7f} é ✓ 😀 </script>";
        let full = AuditRecord {
            id: "id-1".into(),
            sequence: 42,
            time: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 123_456_789,
            }),
            kind: AuditKind::Outcome as i32,
            tenant_id: "acme".into(),
            caller: odd.into(),
            purpose: 2,
            agent_run_id: "run-1".into(),
            decision: AuditDecision::Denied as i32,
            reason: "OPT_IN_REQUIRED".into(),
            reason_message: odd.into(),
            attempts: vec![
                pb::Attempt {
                    provider: "anthropic".into(),
                    model: "m".into(),
                    outcome: "http_429".into(),
                    latency_ms: 17,
                },
                pb::Attempt::default(),
            ],
            provider: "p".into(),
            model: odd.into(),
            data_types: vec![1, 2, 999],
            minimization: Some(pb::MinimizationSummary {
                bytes_before: 1000,
                bytes_after: 10,
                by_data_type: vec![pb::DataTypeCount {
                    data_type: 3,
                    parts: 4,
                    dropped_parts: 1,
                    bytes_before: 900,
                    bytes_after: 9,
                }],
                redactions: vec![
                    pb::RedactionCount {
                        kind: "email".into(),
                        count: 3,
                    },
                    pb::RedactionCount {
                        kind: "aws_access_key_id".into(),
                        count: 1,
                    },
                    pb::RedactionCount {
                        kind: "email".into(),
                        count: 5,
                    },
                ],
                budget_cuts: vec![pb::BudgetCut {
                    data_type: -4,
                    method: "truncate".into(),
                    bytes_before: 5,
                    bytes_after: 2,
                }],
            }),
            usage: Some(pb::Usage {
                input_tokens: u64::MAX,
                output_tokens: 0,
            }),
            latency_ms: 99,
            outcome: "ok".into(),
            intent_id: "intent-1".into(),
            prev_hash: "ab".repeat(32),
            hash: "cd".repeat(32),
            recorded_by: "gateway/gateway".into(),
            salt: vec![7; 32],
        };
        let cases = [
            AuditRecord::default(),
            full.clone(),
            AuditRecord {
                kind: 77,
                purpose: -1,
                decision: 12,
                time: Some(prost_types::Timestamp {
                    seconds: -5,
                    nanos: -1_000_000,
                }),
                minimization: Some(pb::MinimizationSummary::default()),
                ..full
            },
        ];
        for r in cases {
            let mut got = String::new();
            write_record_json(&r, &mut got);
            let want = gateway_json(&r);
            assert_eq!(got, want);
            // Compared in place: equal to that text only, not to any one byte changed,
            // a byte more or a byte less.
            let compare = |text: &str| {
                let mut c = Compare::new(text);
                write_record_json(&r, &mut c);
                c.equal()
            };
            assert!(compare(&want));
            assert!(!compare(&format!("{want} ")));
            assert!(!compare(&want[..want.len() - 1]));
            for at in (0..want.len())
                .filter(|&i| want.is_char_boundary(i) && want.as_bytes()[i].is_ascii())
            {
                let mut changed = want.clone().into_bytes();
                changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
                let changed = String::from_utf8(changed).unwrap();
                assert!(!compare(&changed), "byte {at} changed");
            }
        }
    }

    /// Checks leaf `i`'s proof (`proofs[i]`, with `mutate` applied) after the leaves in
    /// `before`.
    fn check(
        leaves: &[Hash],
        proofs: &[Vec<Hash>],
        before: &[usize],
        i: usize,
        mutate: Option<(usize, u8)>,
    ) -> bool {
        let texts: Vec<Vec<String>> = proofs
            .iter()
            .map(|p| p.iter().map(|h| B64.encode_to_string(h)).collect())
            .collect();
        let expect = Expect {
            tenant_id: "t",
            checkpoint_json: String::new(),
            size: leaves.len() as u64,
            root: warden_merkle::root(leaves),
        };
        let mut s = Scratch::default();
        for &j in before {
            s.texts = texts[j].iter().map(String::as_str).collect();
            assert!(included(j as u64, leaves[j], &expect, &mut s).is_some());
        }
        let mut proof = proofs[i].clone();
        if let Some((at, bit)) = mutate {
            proof[at][0] ^= bit;
        }
        let mutated: Vec<String> = proof.iter().map(|h| B64.encode_to_string(h)).collect();
        s.texts = mutated.iter().map(String::as_str).collect();
        included(i as u64, leaves[i], &expect, &mut s).is_some()
    }

    #[test]
    fn proofs_checked_against_the_last_path_accept_the_right_ones_only() {
        for size in [1usize, 2, 3, 7, 8, 13, 33] {
            let leaves: Vec<Hash> = (0..size as u32)
                .map(|i| warden_merkle::leaf_hash(&i.to_be_bytes()))
                .collect();
            let proofs: Vec<Vec<Hash>> = (0..size)
                .map(|i| warden_merkle::inclusion_proof(&leaves, i).unwrap())
                .collect();
            for i in 0..size {
                // After nothing, after every earlier leaf, after a far one, after itself.
                let histories: [Vec<usize>; 4] =
                    [vec![], (0..i).collect(), vec![size - 1 - i], vec![i]];
                for before in &histories {
                    let what = format!("size {size} leaf {i} after {before:?}");
                    assert!(check(&leaves, &proofs, before, i, None), "{what}");
                    for at in 0..proofs[i].len() {
                        assert!(
                            !check(&leaves, &proofs, before, i, Some((at, 1))),
                            "{what}: hash {at} changed"
                        );
                    }
                    // Another leaf with this proof.
                    if size > 1 {
                        let mut wrong = leaves.clone();
                        wrong[i] = leaves[(i + 1) % size];
                        let mut s = Scratch::default();
                        let expect = Expect {
                            tenant_id: "t",
                            checkpoint_json: String::new(),
                            size: size as u64,
                            root: warden_merkle::root(&leaves),
                        };
                        let texts: Vec<String> =
                            proofs[i].iter().map(|h| B64.encode_to_string(h)).collect();
                        s.texts = texts.iter().map(String::as_str).collect();
                        assert!(
                            included(i as u64, wrong[i], &expect, &mut s).is_none(),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn escapes_match_serde_json_for_every_ascii_byte() {
        let all: String = (0u8..=127).map(char::from).collect();
        let mut got = String::new();
        string(&mut got, &all);
        assert_eq!(got, serde_json::to_string(&all).unwrap());
        // Each byte alone, at each place of an eight-byte word and in the remainder.
        for b in 0u8..=127 {
            for at in 0..12 {
                let mut t: Vec<u8> = b"abcdefghijkl".to_vec();
                t[at] = b;
                let t = String::from_utf8(t).unwrap();
                let mut got = String::new();
                string(&mut got, &t);
                assert_eq!(got, serde_json::to_string(&t).unwrap(), "byte {b} at {at}");
            }
        }
    }
}
