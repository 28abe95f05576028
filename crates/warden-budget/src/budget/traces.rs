//! Traces over budget: keep error spans, then the slowest, drop the rest.
//!
//! Reads OTLP/JSON (`resourceSpans[].scopeSpans[].spans[]`) and keeps its shape, emptied
//! containers removed; anything else is taken as one span per line, with the error read from
//! words (`error`, `status=ERROR`) and the duration from `duration=12ms`-style tokens.

use std::collections::HashSet;

use serde_json::Value;

use super::logs::severity;
use super::{Method, array as arr};

/// Where a span sits in the OTLP tree: resource, scope and span index.
type SpanAt = (usize, usize, usize);

pub(crate) fn cut(text: &str, budget: usize) -> (String, Method) {
    if let Ok(doc) = serde_json::from_str::<Value>(text)
        && doc.get("resourceSpans").is_some_and(Value::is_array)
    {
        return cut_otlp(&doc, budget);
    }
    cut_lines(text, budget)
}

/// True for an OTLP status code of ERROR (2, or its enum name).
fn is_error(span: &Value) -> bool {
    match span.get("status").and_then(|s| s.get("code")) {
        Some(Value::Number(n)) => n.as_u64() == Some(2),
        Some(Value::String(s)) => s == "STATUS_CODE_ERROR" || s == "2",
        _ => false,
    }
}

fn nanos(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn spans_of(doc: &Value) -> Vec<(SpanAt, bool, u64)> {
    let mut out = Vec::new();
    for (r, rs) in arr(doc.get("resourceSpans")).iter().enumerate() {
        for (s, ss) in arr(rs.get("scopeSpans")).iter().enumerate() {
            for (i, span) in arr(ss.get("spans")).iter().enumerate() {
                let dur = nanos(span.get("endTimeUnixNano"))
                    .saturating_sub(nanos(span.get("startTimeUnixNano")));
                out.push(((r, s, i), is_error(span), dur));
            }
        }
    }
    out
}

/// The document with only the spans in `keep`, empty scopes and resources removed.
fn render(doc: &Value, keep: &HashSet<SpanAt>) -> String {
    let mut doc = doc.clone();
    if let Some(resources) = doc.get_mut("resourceSpans").and_then(Value::as_array_mut) {
        let mut r = 0;
        resources.retain_mut(|rs| {
            if let Some(scopes) = rs.get_mut("scopeSpans").and_then(Value::as_array_mut) {
                let mut s = 0;
                scopes.retain_mut(|ss| {
                    if let Some(spans) = ss.get_mut("spans").and_then(Value::as_array_mut) {
                        let mut i = 0;
                        spans.retain(|_| {
                            i += 1;
                            keep.contains(&(r, s, i - 1))
                        });
                    }
                    s += 1;
                    ss.get("spans")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                });
            }
            r += 1;
            rs.get("scopeSpans")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        });
    }
    doc.to_string()
}

fn cut_otlp(doc: &Value, budget: usize) -> (String, Method) {
    let mut spans = spans_of(doc);
    let total = spans.len();
    spans.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    let keep_top = |k: usize| -> HashSet<SpanAt> { spans.iter().take(k).map(|s| s.0).collect() };
    // The rendered size grows with k, so binary search the largest k that fits.
    let (mut lo, mut hi) = (0usize, total);
    let mut best = render(doc, &keep_top(0));
    if best.len() > budget {
        let (text, _) = super::text::cut(&best, budget);
        return (
            text,
            Method::SpanSelection {
                spans: total,
                spans_kept: 0,
                error_spans_kept: 0,
            },
        );
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let out = render(doc, &keep_top(mid));
        if out.len() <= budget {
            lo = mid;
            best = out;
        } else {
            hi = mid - 1;
        }
    }
    let errors = spans.iter().take(lo).filter(|s| s.1).count();
    (
        best,
        Method::SpanSelection {
            spans: total,
            spans_kept: lo,
            error_spans_kept: errors,
        },
    )
}

/// Duration in nanoseconds named on a line (`duration=12ms`, `took 1.5s`), the largest if several.
fn line_duration(line: &str) -> u64 {
    let mut best = 0u64;
    for tok in line.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let val = tok
            .rsplit(['=', ':'])
            .next()
            .unwrap_or(tok)
            .trim_matches(['"', '(', ')']);
        let digits = val
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if digits == 0 {
            continue;
        }
        let Ok(num) = val[..digits].parse::<f64>() else {
            continue;
        };
        let scale = match &val[digits..] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            _ => continue,
        };
        best = best.max((num * scale) as u64);
    }
    best
}

fn line_is_error(line: &str) -> bool {
    severity(line) >= 3
}

fn cut_lines(text: &str, budget: usize) -> (String, Method) {
    let lines: Vec<&str> = text.lines().collect();
    let mut order: Vec<(usize, bool, u64)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i, line_is_error(l), line_duration(l)))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    let head = |kept: usize| {
        format!(
            "[warden: {kept} of {} spans kept, errors then slowest first, in original order]\n",
            lines.len()
        )
    };
    let head_room = head(lines.len()).len();
    let mut used = 0;
    let mut keep = vec![false; lines.len()];
    let (mut kept, mut errors) = (0, 0);
    for (i, err, _) in &order {
        let need = lines[*i].len() + 1;
        if used + need + head_room <= budget {
            used += need;
            keep[*i] = true;
            kept += 1;
            errors += usize::from(*err);
        }
    }
    let mut out = head(kept);
    for (i, line) in lines.iter().enumerate() {
        if keep[i] {
            out.push_str(line);
            out.push('\n');
        }
    }
    (
        out,
        Method::SpanSelection {
            spans: lines.len(),
            spans_kept: kept,
            error_spans_kept: errors,
        },
    )
}
