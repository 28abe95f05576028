//! Learns a file's header from its lines: which leading fields, left after each line's own
//! header stripping (`preprocess::strip_header`), are header too.
//!
//! Why: header shapes are endless (`[time] program - msg`, `program[pid]: msg`, RFC 5424's
//! `app procid msgid -`, Windows CBS's padded `level component` columns), so no list of shapes
//! can know them all. What every header shares is that its fields keep their *shape* from line
//! to line while their values vary, and that a name in the header is closed by a separator, a
//! tag colon, a number or column padding. Message words do not keep one shape across all lines.
//! A column is header when one shape holds on all but `1/sqrt(n)` of the `n` lines (the share
//! a real message column misses by chance shrinks with the sample; a handful of odd lines may
//! still be continuation lines); a name column also needs its closing field.
//!
//! Also: a JSON line's message is the value of its message field (`msg`, `message`, `log`, ...),
//! and the per-line guess that an id-like field after a timestamp is a host holds only as far
//! as the file confirms it ([`ids_after_time_held`]), by the same `1/sqrt(n)` rule.
//!
//! Invariant: learning is one pass over at most [`MAX_COLUMNS`] fields per line; applying is
//! per line and never swallows a whole line.

use std::borrow::Cow;
use std::collections::HashMap;

/// Leading fields a learned header may add.
pub const MAX_COLUMNS: usize = 8;

/// Fewer lines than this teach nothing: one shape on three lines is chance.
const MIN_LINES: usize = 8;

/// The shape of one whitespace-separated field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    /// `-`, `|`, `--`, `:`, `-->`.
    Sep,
    /// A name closed by a colon: `sshd[42]:`, `WindowManager:`, `nova.compute:`.
    Tag,
    /// A log level word or letter.
    Level,
    /// Digits only: pids, thread ids, syslog versions.
    Number,
    /// Dates and times: `2024-01-02`, `12:00:01.5`, `2024-01-02T12:00:01Z`.
    Time,
    /// One bracketed word: `[main]`, `[CBS]`.
    Bracket,
    /// A program, host or component name: anything else without quotes or `=`.
    Name,
    /// Message text: quotes, `key=value`, open brackets.
    Other,
}

/// What a learned column expects of a line's field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    shape: Shape,
    /// The field must be followed by two or more spaces (a padded column).
    padded: bool,
}

/// The header fields learned from a file, beyond what each line's own stripping removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderModel {
    columns: Vec<Column>,
}

// === impl HeaderModel ===

impl HeaderModel {
    /// Learns the extra header columns from `messages` (lines with their own header removed).
    pub fn learn<'a>(messages: impl IntoIterator<Item = &'a str>) -> HeaderModel {
        let messages: Vec<&str> = messages.into_iter().collect();
        let rows: Vec<Vec<(Shape, bool)>> = messages
            .iter()
            .map(|m| fields(m).map(|(_, t, padded)| (shape(t), padded)).collect())
            .collect();
        let n = rows.len();
        if n < MIN_LINES {
            return HeaderModel::default();
        }
        let least = 1.0 - 1.0 / (n as f64).sqrt();
        let mut columns: Vec<Column> = Vec::new();
        // Lines whose leading fields matched every column so far (and still have a message).
        let mut alive: Vec<usize> = (0..n).collect();
        while columns.len() < MAX_COLUMNS {
            let k = columns.len();
            let Some((col, share)) = dominant(&rows, &alive, k) else {
                break;
            };
            if share < least {
                break;
            }
            let closes_itself = match col.shape {
                Shape::Sep | Shape::Level | Shape::Number | Shape::Time | Shape::Tag => true,
                // A name is header only if its value varies (one word on every line is the
                // message's first word) and a header field or column padding closes it.
                Shape::Bracket | Shape::Name => {
                    (col.padded || closed(&rows, &alive, k, col, least))
                        && (varies(&messages, &rows, &alive, k, col)
                            || separated(&rows, &alive, k, col, least))
                }
                Shape::Other => false,
            };
            if !closes_itself {
                break;
            }
            alive.retain(|&i| matches(&rows[i], k, col));
            columns.push(col);
            if col.shape == Shape::Tag {
                break;
            }
        }
        HeaderModel { columns }
    }

    /// Number of learned columns (0: the lines' own headers are the whole header).
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// `message` without the learned header fields that it has, in order; never empty unless
    /// `message` is.
    pub fn strip<'a>(&self, message: &'a str) -> &'a str {
        self.strip_at_most(message, self.columns.len())
    }

    /// [`HeaderModel::strip`], taking at most `limit` fields.
    pub fn strip_at_most<'a>(&self, message: &'a str, limit: usize) -> &'a str {
        let mut rest_at = 0;
        let mut taken = 0;
        let mut iter = fields(message).peekable();
        while taken < self.columns.len().min(limit) {
            let Some((_, t, padded)) = iter.next() else {
                break;
            };
            let col = self.columns[taken];
            if shape(t) != col.shape || (col.padded && !padded) {
                break;
            }
            let Some((next_off, _, _)) = iter.peek() else {
                // The field is the last one: keep it as the message.
                break;
            };
            rest_at = *next_off;
            taken += 1;
        }
        &message[rest_at..]
    }
}

/// How many of the id-like fields that lines show right after their timestamp (`[time] web-01
/// msg`, BGL's node) the file confirms as header: the `j`-th is header when it is on all but
/// `1/sqrt(n)` of the `n` lines that have a header at all, as any header column must be.
/// `lines` holds, per line, how many such fields its own header took (`None`: no header).
///
/// Why: one line cannot tell a host column from a message that opens with an id (`[time]
/// 10.0.0.7 "GET /x HTTP/1.1" status: 200`). Taking it from the lines that have one and not
/// from the others drops a message token from some events only, which shifts the words the
/// template tree routes on; a real header column is on (nearly) every line.
/// Files too short to judge ([`MIN_LINES`]) keep the per-line rule.
pub(crate) fn ids_after_time_held(lines: impl IntoIterator<Item = Option<usize>>) -> usize {
    // Lines with a header, by the number of id-like fields taken after the time.
    let mut by_ids: Vec<usize> = Vec::new();
    for ids in lines.into_iter().flatten() {
        if by_ids.len() <= ids {
            by_ids.resize(ids + 1, 0);
        }
        by_ids[ids] += 1;
    }
    let n: usize = by_ids.iter().sum();
    if n < MIN_LINES {
        return usize::MAX;
    }
    let least = (1.0 - 1.0 / (n as f64).sqrt()) * n as f64;
    // Lines with at least `j` such fields, for `j` = 1, 2, ...
    let mut at_least = n;
    let mut held = 0;
    for count in &by_ids {
        at_least -= count;
        if (at_least as f64) < least {
            break;
        }
        held += 1;
    }
    held
}

/// The most common column at field `k` among `alive` lines, with the share of lines it holds
/// (lines without a field after `k`, whose message would be empty, count against it).
fn dominant(rows: &[Vec<(Shape, bool)>], alive: &[usize], k: usize) -> Option<(Column, f64)> {
    if alive.is_empty() {
        return None;
    }
    let mut counts: HashMap<Shape, (usize, usize)> = HashMap::new();
    for &i in alive {
        let row = &rows[i];
        if row.len() <= k + 1 {
            continue;
        }
        let (s, padded) = row[k];
        let e = counts.entry(s).or_default();
        e.0 += 1;
        e.1 += usize::from(padded);
    }
    let (shape, (count, padded)) = counts
        .into_iter()
        .max_by_key(|(s, (c, _))| (*c, *s as u8))?;
    let total = alive.len() as f64;
    let share = count as f64 / total;
    let padded = (padded as f64) / total >= 1.0 - 1.0 / total.sqrt();
    Some((Column { shape, padded }, share))
}

/// Is a name column at `k` closed by a header field at `k + 1` (directly, or after one more
/// name, as in `host program[pid]:`)?
fn closed(rows: &[Vec<(Shape, bool)>], alive: &[usize], k: usize, col: Column, least: f64) -> bool {
    let with: Vec<usize> = alive
        .iter()
        .copied()
        .filter(|&i| matches(&rows[i], k, col))
        .collect();
    if (with.len() as f64) < least * alive.len() as f64 {
        return false;
    }
    let Some((next, share)) = dominant(rows, &with, k + 1) else {
        return false;
    };
    if share < least {
        return false;
    }
    match next.shape {
        Shape::Sep | Shape::Tag | Shape::Number | Shape::Level => true,
        Shape::Name if k + 2 < MAX_COLUMNS => {
            let with2: Vec<usize> = with
                .iter()
                .copied()
                .filter(|&i| matches(&rows[i], k + 1, next))
                .collect();
            dominant(rows, &with2, k + 2).is_some_and(|(c, s)| {
                s >= least && matches!(c.shape, Shape::Sep | Shape::Tag | Shape::Number)
            })
        }
        _ => false,
    }
}

/// Is the name at `k` followed by a separator or tag, directly or after a number
/// (`app - msg`, `app 42 - - msg`)? Then even one constant name is header.
fn separated(
    rows: &[Vec<(Shape, bool)>],
    alive: &[usize],
    k: usize,
    col: Column,
    least: f64,
) -> bool {
    let with: Vec<usize> = alive
        .iter()
        .copied()
        .filter(|&i| matches(&rows[i], k, col))
        .collect();
    match dominant(rows, &with, k + 1) {
        Some((c, s)) if s >= least && matches!(c.shape, Shape::Sep | Shape::Tag) => true,
        Some((c, s)) if s >= least && c.shape == Shape::Number => {
            let with2: Vec<usize> = with
                .iter()
                .copied()
                .filter(|&i| matches(&rows[i], k + 1, c))
                .collect();
            dominant(rows, &with2, k + 2)
                .is_some_and(|(c2, s2)| s2 >= least && matches!(c2.shape, Shape::Sep | Shape::Tag))
        }
        _ => false,
    }
}

/// Do the lines matching `col` at field `k` hold more than one value there?
fn varies(
    messages: &[&str],
    rows: &[Vec<(Shape, bool)>],
    alive: &[usize],
    k: usize,
    col: Column,
) -> bool {
    let mut first: Option<&str> = None;
    for &i in alive {
        if !matches(&rows[i], k, col) {
            continue;
        }
        let Some((_, t, _)) = fields(messages[i]).nth(k) else {
            continue;
        };
        match first {
            None => first = Some(t),
            Some(f) if f != t => return true,
            Some(_) => {}
        }
    }
    false
}

fn matches(row: &[(Shape, bool)], k: usize, col: Column) -> bool {
    row.get(k)
        .is_some_and(|&(s, p)| s == col.shape && (p || !col.padded))
        && row.len() > k + 1
}

/// The first `MAX_COLUMNS + 2` whitespace fields: offset, text, followed by 2+ spaces.
fn fields(s: &str) -> impl Iterator<Item = (usize, &str, bool)> {
    let bytes = s.as_bytes();
    s.split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .take(MAX_COLUMNS + 2)
        .map(move |t| {
            let off = t.as_ptr() as usize - s.as_ptr() as usize;
            let end = off + t.len();
            let padded = bytes.get(end..end + 2).is_some_and(|w| w == b"  ")
                || bytes.get(end) == Some(&b'\t');
            (off, t, padded)
        })
}

fn shape(t: &str) -> Shape {
    if matches!(t, "-" | "|" | "--" | ":" | "-->" | "::" | ">") {
        return Shape::Sep;
    }
    if super::preprocess::is_level_word(t) {
        return Shape::Level;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Shape::Number;
    }
    if t.contains(['"', '\'', '=', '{', '}']) {
        return Shape::Other;
    }
    if super::preprocess::is_time_field(t) {
        return Shape::Time;
    }
    let first = t.as_bytes()[0];
    if let Some(body) = t.strip_suffix(':') {
        if !body.is_empty() && (first.is_ascii_alphanumeric() || first == b'[' || first == b'_') {
            return Shape::Tag;
        }
        return Shape::Other;
    }
    if first == b'[' {
        return if t.ends_with(']') && t.len() > 2 {
            Shape::Bracket
        } else {
            Shape::Other
        };
    }
    if first.is_ascii_alphanumeric() || matches!(first, b'_' | b'/' | b'.') {
        return Shape::Name;
    }
    Shape::Other
}

/// A JSON object line's message: the first of the usual message fields that holds a string,
/// else the longest string member. `None` for any other line.
pub fn json_message(line: &str) -> Option<Cow<'_, str>> {
    let t = line.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    let serde_json::Value::Object(map) = serde_json::from_str::<serde_json::Value>(t).ok()? else {
        return None;
    };
    const KEYS: [&str; 10] = [
        "msg", "message", "log", "body", "text", "content", "event", "MESSAGE", "Message",
        "@message",
    ];
    for k in KEYS {
        if let Some(serde_json::Value::String(s)) = map.get(k) {
            return Some(Cow::Owned(s.trim_end_matches('\n').to_owned()));
        }
    }
    map.values()
        .filter_map(|v| v.as_str())
        .max_by_key(|s| s.len())
        .map(|s| Cow::Owned(s.to_owned()))
}
