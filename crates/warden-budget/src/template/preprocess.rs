//! Turns one raw log line into the masked tokens that the template tree compares.
//!
//! Knows no log format: a leading header (timestamps, level, pid, host, syslog tag, logger
//! name, up to two bracketed context groups) is recognised by shape, then every token piece
//! that holds a digit or a long hex run (optionally any `key=value` value), a month name inside
//! a timestamp and a unit after a number become the wildcard `<*>`; `|` separates tokens
//! like whitespace does.
//! Invariant: the output depends only on the line, never on earlier lines, and costs time
//! linear in the line (lines are looked at up to [`MAX_LINE_BYTES`], tokens up to [`MAX_TOKENS`]).

/// The wildcard that stands for a variable in a template.
pub const WILDCARD: &str = "<*>";

/// Bytes of a line that tokenisation looks at; the rest folds into one trailing wildcard.
pub const MAX_LINE_BYTES: usize = 4096;

/// Tokens of a line that the tree compares; the rest folds into one trailing wildcard.
pub const MAX_TOKENS: usize = 128;

/// Bracketed context groups (thread, request, instance) skipped after a level or timestamp.
const MAX_CONTEXT_GROUPS: usize = 2;

/// How far into a line the header heuristics look, in tokens.
const MAX_HEADER_TOKENS: usize = 16;

/// The message part of a raw line: the line with a recognised header removed.
pub fn strip_header(line: &str) -> &str {
    &line[cut_header(line).message_at..]
}

/// Where [`strip_header`] cuts a line, and how much of that cut was a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderCut {
    /// Byte offset at which the message starts.
    pub message_at: usize,
    /// A header was found (leading whitespace alone is none).
    pub found: bool,
    /// Id-like fields after a timestamp (a node, a host) taken as header: a guess from one
    /// line, which `header::ids_after_time_held` checks against the file.
    pub ids_after_time: usize,
}

/// [`strip_header`]'s cut of `line`.
pub(crate) fn cut_header(line: &str) -> HeaderCut {
    cut_at_most(line, usize::MAX)
}

/// [`strip_header`], taking at most `ids_after_time` id-like fields after a timestamp as
/// header.
///
/// That rule is a guess from one line: `[time] web-01 msg` and `[time] 10.0.0.7 "GET /x"`
/// look alike, and only the file tells a host column from a message that opens with an
/// address.
pub(crate) fn strip_header_with(line: &str, ids_after_time: usize) -> &str {
    &line[cut_at_most(line, ids_after_time).message_at..]
}

fn cut_at_most(line: &str, ids_after_time: usize) -> HeaderCut {
    let body = strip_syslog_priority(line);
    let skipped = line.len() - body.len();
    let toks: Vec<(usize, &str)> = split_ws(body).take(MAX_HEADER_TOKENS + 8).collect();
    let (start, ids) = header_len(body, &toks, ids_after_time);
    let message_at = match toks.get(start) {
        Some((off, _)) => skipped + off,
        None if start == 0 => skipped,
        None => line.len(),
    };
    HeaderCut {
        message_at,
        found: start > 0 || skipped > 0,
        ids_after_time: ids,
    }
}

/// The line without a leading syslog priority `<PRI>` (RFC 3164 and RFC 5424 both start so).
fn strip_syslog_priority(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('<') else {
        return line;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest.as_bytes().get(digits) {
        Some(b'>') if (1..=3).contains(&digits) => rest[digits + 1..].trim_start(),
        _ => line,
    }
}

/// Masked tokens of a raw line's message, ready for the template tree.
pub fn tokens(line: &str, mask_kv: bool) -> Vec<String> {
    match super::header::json_message(line) {
        Some(msg) => message_tokens(strip_header(&msg), mask_kv),
        None => message_tokens(strip_header(line), mask_kv),
    }
}

/// Masked tokens of a message whose header is already removed.
pub fn message_tokens(msg: &str, mask_kv: bool) -> Vec<String> {
    let (msg, truncated) = match msg.len() > MAX_LINE_BYTES {
        true => (&msg[..floor_char_boundary(msg, MAX_LINE_BYTES)], true),
        false => (msg, false),
    };
    let mut out: Vec<String> = Vec::new();
    let mut overflow = truncated;
    let mut prev_timey = false;
    let mut prev_number = false;
    let mut prev_calendar = false;
    let mut raw = split_ws(msg).map(|(_, t)| t).peekable();
    while let Some(tok) = raw.next() {
        if out.len() == MAX_TOKENS {
            overflow = true;
            break;
        }
        // A month or weekday name next to numbers is part of a timestamp, so a variable.
        let mut month_in_time = || {
            is_month_or_day(tok)
                && (prev_timey || raw.peek().is_some_and(|n| has_digit(n) && is_time_piece(n)))
        };
        let in_time = month_in_time();
        // `Fri Jun 17 07:07:00`: the weekday before a month in a timestamp is part of it.
        if in_time && prev_calendar && out.last().is_some_and(|t| is_month_or_day(t)) {
            out.pop();
        }
        let masked = if (prev_number && is_unit(tok)) || in_time {
            WILDCARD.to_owned()
        } else {
            mask_token(tok, mask_kv)
        };
        prev_calendar = is_month_or_day(tok) && !in_time;
        prev_timey = has_digit(tok) && is_time_piece(tok);
        prev_number = tok.bytes().next().is_some_and(|b| b.is_ascii_digit());
        // A list of ids (`blk_1 blk_2 ...`, masked alike) is one variable, whatever its length.
        if masked.contains(WILDCARD) && out.last() == Some(&masked) {
            continue;
        }
        out.push(masked);
    }
    if overflow {
        out.push(WILDCARD.to_owned());
    }
    out
}

/// The largest char boundary of `s` at or below `i`.
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn split_ws(s: &str) -> impl Iterator<Item = (usize, &str)> {
    // `|` separates fields as often as spaces do (`time|component|pid|message`).
    s.split(|c: char| c.is_whitespace() || c == '|')
        .filter(|t| !t.is_empty())
        .map(move |t| (t.as_ptr() as usize - s.as_ptr() as usize, t))
}

/// Number of leading tokens that form the header, and how many of them are id-like fields
/// taken after a timestamp (at most `ids_after_time`).
fn header_len(line: &str, toks: &[(usize, &str)], ids_after_time: usize) -> (usize, usize) {
    let mut i = 0;
    let mut saw_time = false;
    let mut saw_level = false;
    let mut context_groups = 0;
    let mut just_level = false;
    let mut ids = 0;
    while i < toks.len() && i < MAX_HEADER_TOKENS {
        let t = toks[i].1;
        // A bracketed group: a timestamp, a level, a thread or a request context.
        if t.starts_with('[') || (t.starts_with('<') && !saw_level) {
            let Some(end) = group_end(toks, i) else { break };
            let inner = group_text(line, toks, i, end);
            if is_level(inner) {
                saw_level = true;
                i = end + 1;
                continue;
            }
            let timey = inner.split_whitespace().all(is_time_piece)
                && inner.bytes().any(|b| b.is_ascii_digit());
            if timey && !saw_level {
                saw_time = true;
                i = end + 1;
                continue;
            }
            if (saw_level || saw_time)
                && context_groups < MAX_CONTEXT_GROUPS
                && end + 1 < toks.len()
            {
                context_groups += 1;
                just_level = false;
                i = end + 1;
                continue;
            }
            break;
        }
        if !saw_level && (is_level(t) || (saw_time && is_letter_level(t))) {
            saw_level = true;
            just_level = true;
            i += 1;
            continue;
        }
        // A leading `-` is an empty alert or severity column (BGL, Thunderbird); a leading
        // upper-case flag before a timestamp fills that column (`KERNDTLB 1118536327 ...`).
        if (i == 0 || saw_level || saw_time) && matches!(t, "-" | "|" | ":" | "--") {
            i += 1;
            continue;
        }
        // `program[pid]:` opening the line is a syslog tag without the timestamp.
        if i == 0 && is_tag(t) && t.trim_end_matches(':').ends_with(']') {
            i += 1;
            break;
        }
        if i == 0
            && is_flag(t)
            && toks
                .get(1)
                .is_some_and(|n| is_time_piece(n.1) && digits(n.1) >= 6)
        {
            i += 1;
            continue;
        }
        if !saw_level && is_month_or_day(t) && toks.get(i + 1).is_some_and(|n| has_digit(n.1)) {
            saw_time = true;
            i += 1;
            continue;
        }
        if saw_time && !saw_level && context_groups == 0 {
            // Syslog: `host tag[pid]:` or `tag:` closes the header. It follows the timestamp
            // itself; after a bracketed context (`[instance: x]`) the message has begun.
            if is_tag(t) {
                i += 1;
                break;
            }
            if !t.ends_with(':')
                && toks.get(i + 1).is_some_and(|n| is_tag(n.1))
                && i + 2 < toks.len()
            {
                i += 2;
                break;
            }
        }
        if !saw_level && has_digit(t) {
            // Timestamps, pids, and after a timestamp an id-like field (node, host), up to
            // the number the caller allows (the file confirms them, see `HeaderCut`).
            let id_after_time = !is_header_number(t, i)
                && saw_time
                && !t.contains(['=', '"', '('])
                && ids < ids_after_time;
            if is_header_number(t, i) || id_after_time {
                ids += usize::from(id_after_time);
                saw_time = true;
                i += 1;
                continue;
            }
        }
        if saw_level {
            let body = t.strip_suffix(':').unwrap_or(t);
            // `logger.Name:` ends the header wherever it comes after the level; `Component:`
            // only right after it; a dotted `logger.name` right after it may precede context.
            if t.ends_with(':') && (is_logger(body) || (just_level && is_identifier(body))) {
                i += 1;
                break;
            }
            if just_level && is_logger(body) {
                just_level = false;
                i += 1;
                continue;
            }
        }
        break;
    }
    // Never swallow the whole line: a line that is all header is its own message.
    if i >= toks.len() { (0, 0) } else { (i, ids) }
}

/// Index of the token that closes the bracket group opened at `start`.
fn group_end(toks: &[(usize, &str)], start: usize) -> Option<usize> {
    let mut depth: i32 = 0;
    for (j, (_, t)) in toks.iter().enumerate().skip(start).take(12) {
        for b in t.bytes() {
            match b {
                b'[' | b'<' | b'(' => depth += 1,
                b']' | b'>' | b')' => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            return Some(j);
        }
    }
    None
}

fn group_text<'a>(line: &'a str, toks: &[(usize, &'a str)], start: usize, end: usize) -> &'a str {
    let from = toks[start].0;
    let to = toks[end].0 + toks[end].1.len();
    line.get(from..to)
        .unwrap_or(toks[start].1)
        .trim_start_matches(['[', '<'])
        .trim_end_matches([']', '>', ':'])
}

fn digits(t: &str) -> usize {
    t.bytes().filter(u8::is_ascii_digit).count()
}

fn has_digit(t: &str) -> bool {
    t.bytes().any(|b| b.is_ascii_digit())
}

/// Dates, times, zones and numbers: `2015-07-29`, `17:41:44,747`, `081109`, `+0000`, `2005]`.
/// An IPv4 address (four dotted numbers) is an address, not a time.
fn is_time_piece(t: &str) -> bool {
    let t = t.trim_matches(['[', ']', ',']);
    !t.is_empty()
        && !is_ipv4_like(t)
        && (t.bytes().all(|b| {
            b.is_ascii_digit() || matches!(b, b':' | b'.' | b',' | b'-' | b'/' | b'+' | b'T' | b'Z')
        }) || is_month_or_day(t))
}

/// An IPv4 address, with an optional port, or a comma-separated list of them.
fn is_ipv4_like(t: &str) -> bool {
    t.split(',').filter(|a| !a.is_empty()).all(|a| {
        let a = a.split(':').next().unwrap_or(a);
        let parts: Vec<&str> = a.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    }) && t.contains('.')
}

/// Leading numeric header tokens: timestamps, pids, and a file name carrying a date.
fn is_header_number(t: &str, i: usize) -> bool {
    if is_time_piece(t) {
        return true;
    }
    // A first token such as `nova-api.log.1.2017-05-16_13:53:08` names the source file.
    i == 0
        && !t.contains(['=', '(', '"'])
        && !is_ipv4_like(t)
        && t.bytes().filter(|b| b.is_ascii_digit()).count() >= 4
}

/// A unit after a number (`512 KB`, `3 ms`) varies with the number.
fn is_unit(t: &str) -> bool {
    const UNITS: [&str; 16] = [
        "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "bytes", "ms", "us", "ns", "s",
        "sec", "secs",
    ];
    let t = t.trim_end_matches([',', ';', ')', '.']);
    UNITS.iter().any(|u| t.eq_ignore_ascii_case(u))
}

fn is_month_or_day(t: &str) -> bool {
    // Cheap rejections first: this runs on every token.
    if t.len() < 3
        || t.len() > 11
        || !t.as_bytes()[0].is_ascii_alphabetic() && t.as_bytes()[0] != b'['
    {
        return false;
    }
    let t = t.trim_matches(['[', ']', ',', '.']);
    if t.len() < 3 || t.len() > 9 || !t.is_ascii() {
        return false;
    }
    let mut buf = [0u8; 9];
    for (dst, src) in buf.iter_mut().zip(t.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    matches!(
        &buf[..t.len()],
        b"jan"
            | b"feb"
            | b"mar"
            | b"apr"
            | b"may"
            | b"jun"
            | b"jul"
            | b"aug"
            | b"sep"
            | b"sept"
            | b"oct"
            | b"nov"
            | b"dec"
            | b"mon"
            | b"tue"
            | b"tues"
            | b"wed"
            | b"thu"
            | b"thur"
            | b"thurs"
            | b"fri"
            | b"sat"
            | b"sun"
            | b"january"
            | b"february"
            | b"march"
            | b"april"
            | b"june"
            | b"july"
            | b"august"
            | b"september"
            | b"october"
            | b"november"
            | b"december"
            | b"monday"
            | b"tuesday"
            | b"wednesday"
            | b"thursday"
            | b"friday"
            | b"saturday"
            | b"sunday"
    )
}

/// A log level word, bracketed or not (for the header model).
pub(super) fn is_level_word(t: &str) -> bool {
    is_level(t)
}

/// A date or time field with a digit (for the header model).
pub(super) fn is_time_field(t: &str) -> bool {
    has_digit(t) && is_time_piece(t)
}

fn is_level(t: &str) -> bool {
    const LEVELS: [&str; 16] = [
        "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "CRIT", "CRITICAL",
        "FATAL", "SEVERE", "ALERT", "EMERG", "FINE", "VERBOSE",
    ];
    let t = t.trim_matches(['[', ']', '<', '>', ':']);
    LEVELS.iter().any(|l| t.eq_ignore_ascii_case(l))
}

/// An upper-case alert flag: `APPREAD`, `KERNDTLB`.
fn is_flag(t: &str) -> bool {
    (2..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

/// One-letter levels after a timestamp (Android's `D`, `I`, `W`, `E`).
fn is_letter_level(t: &str) -> bool {
    matches!(t, "V" | "D" | "I" | "W" | "E" | "F")
}

/// A bare component name: `WindowManager`, `CBS`.
fn is_identifier(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'))
}

/// A logger or class name: `dfs.DataNode$PacketResponder`, `nova.compute.manager`.
fn is_logger(t: &str) -> bool {
    t.contains('.')
        && !t.starts_with('.')
        && !t.ends_with('.')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$' | b'-'))
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}

/// A syslog tag: `sshd[24200]:`, `sshd(pam_unix)[19939]:`, `kernel:`.
fn is_tag(t: &str) -> bool {
    let Some(body) = t.strip_suffix(':') else {
        return false;
    };
    !body.is_empty()
        && body.len() <= 64
        && body.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'[' | b']' | b'$'
                )
        })
}

/// Bytes that separate the pieces of a token; pieces are masked, separators kept.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '=' | ',' | ';' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\'' | '<' | '>' | ':' | '|'
    )
}

/// Masks the variable pieces of one token and folds adjacent wildcards into one.
pub fn mask_token(tok: &str, mask_kv: bool) -> String {
    // Fast path for plain words: no piece of them can be a variable.
    let may_vary = has_digit(tok) || tok.contains('<') || (mask_kv && tok.contains('='));
    if tok.len() < 16 && !may_vary {
        return tok.to_owned();
    }
    let mut out = String::with_capacity(tok.len());
    let mut piece_start = 0;
    let mut after_eq = false;
    let push_piece = |out: &mut String, piece: &str, after_eq: bool| {
        if piece.is_empty() {
            return;
        }
        if is_variable(piece) || (mask_kv && after_eq) {
            push_wildcard(out);
        } else {
            out.push_str(piece);
        }
    };
    for (i, c) in tok.char_indices() {
        if is_separator(c) {
            push_piece(&mut out, &tok[piece_start..i], after_eq);
            after_eq = c == '=';
            out.push(c);
            piece_start = i + c.len_utf8();
        }
    }
    push_piece(&mut out, &tok[piece_start..], after_eq);
    collapse_wildcards(&out)
}

fn is_variable(piece: &str) -> bool {
    if has_digit(piece) {
        return true;
    }
    // Long hex runs without a digit are rare but are ids when they occur.
    piece.len() >= 16 && piece.bytes().all(|b| b.is_ascii_hexdigit())
}

fn push_wildcard(out: &mut String) {
    if !out.ends_with(WILDCARD) {
        out.push_str(WILDCARD);
    }
}

/// `<*>:<*>` and `<*>.<*>` become `<*>`, so addresses of any shape give one token.
fn collapse_wildcards(s: &str) -> String {
    if !s.contains(WILDCARD) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(WILDCARD) {
        let (before, after) = rest.split_at(pos);
        // Drop glue punctuation between two wildcards.
        let glue_only = !before.is_empty()
            && before
                .chars()
                .all(|c| matches!(c, ':' | '.' | '-' | '/' | '_' | ','));
        if glue_only && out.ends_with(WILDCARD) {
            // skip the glue
        } else {
            out.push_str(before);
        }
        push_wildcard(&mut out);
        rest = &after[WILDCARD.len()..];
    }
    out.push_str(rest);
    out
}
