//! Multi-line detectors that a line-by-line regex cannot express: PEM private key blocks
//! (the whole block, across real lines or `\n` escapes inside JSON) and the values of a
//! Kubernetes Secret (every entry under `data:` and `stringData:`, YAML or JSON, also when the
//! manifest is logged inside a quoted string with `\n` escapes).
//!
//! Each detector starts at a keyword hit and returns how far it consumed, so the caller never
//! hands it the same bytes twice: total work stays linear in the input.

use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::rules::Detector;

/// Longest PEM body we follow; a longer one is treated as unterminated.
const MAX_PEM: usize = 64 * 1024;
/// Largest Kubernetes document we parse around one hit (manifests are small; certificates in
/// `data` are a few KiB).
const MAX_DOC: usize = 64 << 10;

/// Runs `detector` at keyword hit `pos`; reports spans through `emit` and returns the offset
/// up to which the text has been handled.
pub(crate) fn detect(
    detector: Detector,
    text: &[u8],
    pos: usize,
    emit: &mut dyn FnMut(usize, usize),
) -> usize {
    match detector {
        Detector::Pem => pem(text, pos, emit),
        Detector::K8sSecret => k8s_secret(text, pos, emit),
    }
}

// === PEM ===

fn pem(text: &[u8], pos: usize, emit: &mut dyn FnMut(usize, usize)) -> usize {
    // The hit is "PRIVATE KEY"; the header "-----BEGIN ... PRIVATE KEY-----" surrounds it.
    let look_from = pos.saturating_sub(48);
    let Some(begin) =
        memchr::memmem::rfind(&text[look_from..pos], b"-----BEGIN ").map(|i| look_from + i)
    else {
        return pos + 1;
    };
    let label = &text[begin + 11..pos];
    if !label
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
    {
        return pos + 1;
    }
    let mut i = pos + "PRIVATE KEY".len();
    if text[i..].starts_with(b" BLOCK") {
        i += 6;
    }
    if !text[i..].starts_with(b"-----") {
        return pos + 1;
    }
    i += 5;
    let limit = (i + MAX_PEM).min(text.len());
    let mut line_start = true;
    while i < limit {
        if text[i..].starts_with(b"-----") {
            if text[i..].starts_with(b"-----END ") {
                let close_from = i + 9;
                let close_to = (close_from + 64).min(text.len());
                if let Some(c) = memchr::memmem::find(&text[close_from..close_to], b"-----") {
                    let end = close_from + c + 5;
                    emit(begin, end);
                    return end;
                }
            }
            break;
        }
        let b = text[i];
        match b {
            b'\n' => {
                // Without an END line, stop before a following line that reads like prose.
                if next_line_is_prose(&text[i + 1..]) {
                    break;
                }
                line_start = true;
            }
            b' ' | b'\t' | b'\r' => {
                if !line_start && !header_line(text, i) {
                    break;
                }
            }
            b'\\' => {
                line_start = text.get(i + 1) == Some(&b'n');
            }
            _ if b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b':' | b',' | b'-' | b'.') =>
            {
                if b != b'n' || i == 0 || text[i - 1] != b'\\' {
                    line_start = false;
                }
            }
            _ => break,
        }
        i += 1;
    }
    // Unterminated block: take the body we walked, minus trailing whitespace and escapes.
    let mut end = i;
    while end > begin && matches!(text[end - 1], b' ' | b'\t' | b'\r' | b'\n' | b'\\') {
        end -= 1;
    }
    if end >= begin + 2 && text[end - 1] == b'n' && text[end - 2] == b'\\' {
        end -= 2;
    }
    emit(begin, end);
    i.max(pos + 1)
}

/// Encrypted PEM headers (`Proc-Type: 4,ENCRYPTED`) contain spaces; base64 lines do not.
fn header_line(text: &[u8], i: usize) -> bool {
    let lo = i.saturating_sub(64);
    let start = memchr::memrchr(b'\n', &text[lo..i]).map_or(lo, |p| lo + p + 1);
    let line = &text[start..i];
    line.starts_with(b"Proc-Type:")
        || line.starts_with(b"DEK-Info:")
        || line.starts_with(b"Comment:")
}

fn next_line_is_prose(rest: &[u8]) -> bool {
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = &rest[..end];
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() || trimmed.starts_with(b"-----END") {
        return false;
    }
    trimmed.contains(&b' ')
        && !trimmed.starts_with(b"DEK-Info:")
        && !trimmed.starts_with(b"Proc-Type:")
}

// === Kubernetes Secret ===

static KIND_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(r#"(?m)(?:^[ \t]*-?[ \t]*kind[ \t]*:[ \t]*["']?Secret["']?[ \t]*$|"kind"[ \t]*:[ \t]*"Secret")"#).ok()
});
static YAML_DATA: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(r#"(?m)^([ \t]*)(?:data|stringData)[ \t]*:[ \t]*$"#).ok()
});
static YAML_ENTRY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(r#"^[ \t]*(?:"[^"\n]*"|'[^'\n]*'|[^\s:#"'][^:\n]*?)[ \t]*:(?:[ \t]+|$)"#)
        .ok()
});
static JSON_DATA: LazyLock<Option<Regex>> =
    LazyLock::new(|| crate::rules::compile(r#""(?:data|stringData)"[ \t\r\n]*:[ \t\r\n]*\{"#).ok());
static JSON_ENTRY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(
        r#"^[ \t\r\n]*,?[ \t\r\n]*"(?:[^"\\\n]|\\.)*"[ \t\r\n]*:[ \t\r\n]*"((?:[^"\\\n]|\\.)*)""#,
    )
    .ok()
});

fn k8s_secret(text: &[u8], pos: usize, emit: &mut dyn FnMut(usize, usize)) -> usize {
    let Some(kind_re) = KIND_SECRET.as_ref() else {
        return pos + 1;
    };
    // The hit must be the manifest's kind, not the word in prose. Look only near the hit so a
    // long line full of "Secret" stays linear.
    let lo = pos.saturating_sub(256);
    let hi = (pos + 256).min(text.len());
    let line_start = memchr::memrchr(b'\n', &text[lo..pos]).map_or(lo, |i| lo + i + 1);
    let line_end = memchr::memchr(b'\n', &text[pos..hi]).map_or(hi, |i| pos + i);
    if !kind_re.is_match(&text[line_start..line_end]) {
        // A manifest inside a quoted string (a JSON field, a `.env` value) reads as one line
        // with `\n` and `\"` escapes: read that string unescaped and map spans back.
        if memchr::memchr(b'\\', &text[line_start..line_end]).is_some() {
            return escaped_secret(text, pos, emit);
        }
        return pos + 1;
    }
    secret_in(text, pos, emit)
}

/// The Secret manifest whose `kind` line is at `pos`, in plain (unescaped) text.
fn secret_in(text: &[u8], pos: usize, emit: &mut dyn FnMut(usize, usize)) -> usize {
    let (Some(ydata), Some(jdata)) = (YAML_DATA.as_ref(), JSON_DATA.as_ref()) else {
        return pos + 1;
    };
    let (doc_start, doc_end) = document(text, pos);
    let doc = &text[doc_start..doc_end];
    for caps in ydata.captures_iter(doc) {
        let (Some(whole), Some(indent)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        yaml_block(text, doc_start + whole.end(), doc_end, indent.len(), emit);
    }
    for m in jdata.find_iter(doc) {
        json_block(text, doc_start + m.end(), doc_end, emit);
    }
    doc_end
}

/// The quoted string around `pos` (at most `MAX_DOC / 2` bytes either side), unescaped; the
/// plain Secret detector runs over it and its spans are mapped back to `text`. Returns the
/// string's end so its bytes are handled once.
fn escaped_secret(text: &[u8], pos: usize, emit: &mut dyn FnMut(usize, usize)) -> usize {
    let (Some(kind_re), Some(unescaped_quote)) = (KIND_SECRET.as_ref(), quote_bounds(text, pos))
    else {
        return pos + 1;
    };
    let (s, e) = unescaped_quote;
    // plain[k] came from text[map[k]]; map[plain.len()] is the string's end.
    let mut plain = Vec::with_capacity(e - s);
    let mut map = Vec::with_capacity(e - s + 1);
    let mut i = s;
    while i < e {
        let b = text[i];
        if b == b'\\' && i + 1 < e {
            let c = match text[i + 1] {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                other @ (b'"' | b'\\' | b'/' | b'\'') => other,
                _ => {
                    map.push(i);
                    plain.push(b);
                    i += 1;
                    continue;
                }
            };
            map.push(i);
            plain.push(c);
            i += 2;
        } else {
            map.push(i);
            plain.push(b);
            i += 1;
        }
    }
    map.push(e);
    // Every Secret manifest in the string, so the whole string is handled once.
    let mut done = 0;
    for m in kind_re.find_iter(&plain) {
        if m.start() < done {
            continue;
        }
        done = secret_in(&plain, m.start(), &mut |a, b| {
            // Escapes inside a value stay inside its span: end after the last source byte.
            if a < b {
                emit(map[a], map[b]);
            }
        });
    }
    e.max(pos + 1)
}

/// Bounds of the double-quoted string containing `pos`: the nearest unescaped quotes on either
/// side, within `MAX_DOC / 2` bytes. None when there is no such quote on one side.
fn quote_bounds(text: &[u8], pos: usize) -> Option<(usize, usize)> {
    let unescaped = |q: usize| {
        let slashes = text[..q].iter().rev().take_while(|b| **b == b'\\').count();
        slashes % 2 == 0
    };
    let lo = pos.saturating_sub(MAX_DOC / 2);
    let hi = (pos + MAX_DOC / 2).min(text.len());
    let mut start = None;
    for q in memchr::memrchr_iter(b'"', &text[lo..pos]) {
        if unescaped(lo + q) {
            start = Some(lo + q + 1);
            break;
        }
    }
    let mut end = None;
    for q in memchr::memchr_iter(b'"', &text[pos..hi]) {
        if unescaped(pos + q) {
            end = Some(pos + q);
            break;
        }
    }
    Some((start?, end?))
}

/// The YAML document around `pos` (between `---` lines), at most `MAX_DOC` bytes.
fn document(text: &[u8], pos: usize) -> (usize, usize) {
    let lo = pos.saturating_sub(MAX_DOC / 2);
    let hi = (pos + MAX_DOC / 2).min(text.len());
    let start = memchr::memmem::rfind(&text[lo..pos], b"\n---").map_or(lo, |i| lo + i + 1);
    let end = memchr::memmem::find(&text[pos..hi], b"\n---").map_or(hi, |i| pos + i + 1);
    (start, end)
}

/// Values of the entries indented under a `data:` line, including block scalars (`key: |`).
fn yaml_block(
    text: &[u8],
    mut i: usize,
    end: usize,
    parent_indent: usize,
    emit: &mut dyn FnMut(usize, usize),
) {
    let Some(entry_re) = YAML_ENTRY.as_ref() else {
        return;
    };
    // Skip the rest of the `data:` line.
    i = memchr::memchr(b'\n', &text[i..end]).map_or(end, |p| i + p + 1);
    let mut child_indent: Option<usize> = None;
    let mut block_scalar: Option<usize> = None;
    while i < end {
        let le = memchr::memchr(b'\n', &text[i..end]).map_or(end, |p| i + p);
        let line = &text[i..le];
        let indent = line
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let blank = line.trim_ascii().is_empty();
        if blank {
            i = le + 1;
            continue;
        }
        if indent <= parent_indent
            || line.trim_ascii_start().starts_with(b"#") && child_indent.is_none()
        {
            break;
        }
        if let Some(bi) = block_scalar {
            if indent > bi {
                let (s, e) = trim_span(text, i, le);
                emit(s, e);
                i = le + 1;
                continue;
            }
            block_scalar = None;
        }
        let ci = *child_indent.get_or_insert(indent);
        if indent == ci
            && let Some(m) = entry_re.find(line)
        {
            let (vs, ve) = trim_span(text, i + m.end(), le);
            let v = &text[vs..ve];
            if v.starts_with(b"|") || v.starts_with(b">") {
                block_scalar = Some(indent);
            } else if !v.is_empty() {
                let (vs, ve) = strip_quotes(text, vs, ve);
                if vs < ve {
                    emit(vs, ve);
                }
            }
        }
        i = le + 1;
    }
}

/// Values of `"key": "value"` entries inside a JSON `data` object.
fn json_block(text: &[u8], mut i: usize, end: usize, emit: &mut dyn FnMut(usize, usize)) {
    let Some(entry_re) = JSON_ENTRY.as_ref() else {
        return;
    };
    while i < end {
        let Some(caps) = entry_re.captures(&text[i..end]) else {
            break;
        };
        let (Some(whole), Some(v)) = (caps.get(0), caps.get(1)) else {
            break;
        };
        if v.start() < v.end() {
            emit(i + v.start(), i + v.end());
        }
        i += whole.end().max(1);
    }
}

fn trim_span(text: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && text[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && text[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

fn strip_quotes(text: &[u8], s: usize, e: usize) -> (usize, usize) {
    if e >= s + 2 && matches!(text[s], b'"' | b'\'') && text[e - 1] == text[s] {
        (s + 1, e - 1)
    } else {
        (s, e)
    }
}
