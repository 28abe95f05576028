//! Traces: span trees, summaries, and the slowest or failed traces.
//!
//! Owns the shape of a trace as an investigator reads it: spans in pre-order with their
//! depth, children by start time. Spans whose parent is missing (not sampled, not yet
//! arrived) become roots rather than vanish; spans caught in a parent cycle (corrupt
//! input) are broken out at their earliest span, so every span appears exactly once and
//! no input loops. Refuses to know storage or OTLP.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use crate::model::{SpanRow, SpanStatus};

/// One span's place in the tree: its index in the input and its depth (0 for a root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub index: usize,
    pub depth: u32,
}

/// A trace at a glance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start_ms: i64,
    /// From the first span's start to the last span's end.
    pub duration_us: u64,
    pub spans: u32,
    pub error_spans: u32,
    /// The status message of the earliest error span (its name when it has none).
    pub first_error: String,
}

/// Which traces [`choose`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Longest first.
    Slowest,
    /// Traces with an error span, most recent first.
    Failed,
}

/// The spans of one trace in pre-order with depths; each input span exactly once.
pub fn tree<S: Borrow<SpanRow>>(spans: &[S]) -> Vec<Placed> {
    let spans: Vec<&SpanRow> = spans.iter().map(Borrow::borrow).collect();
    // The first span of an id is the parent its children attach to.
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        by_id.entry(s.span_id.as_str()).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match by_id.get(s.parent_span_id.as_str()) {
            Some(&p) if !s.parent_span_id.is_empty() && p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let order = |a: &usize, b: &usize| start_order(spans[*a], spans[*b]).then(a.cmp(b));
    for c in &mut children {
        c.sort_by(order);
    }
    roots.sort_by(order);
    let mut out = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    for r in roots {
        walk(r, &children, &mut seen, &mut out);
    }
    // What is left hangs off a cycle: break it at its earliest span.
    let mut rest: Vec<usize> = (0..spans.len()).filter(|i| !seen[*i]).collect();
    rest.sort_by(order);
    for r in rest {
        if !seen[r] {
            walk(r, &children, &mut seen, &mut out);
        }
    }
    out
}

/// Pre-order from `root` with an explicit stack (no recursion: a deep trace cannot
/// overflow it); a span already placed is never placed again.
fn walk(root: usize, children: &[Vec<usize>], seen: &mut [bool], out: &mut Vec<Placed>) {
    let mut stack = vec![(root, 0u32)];
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        out.push(Placed { index: i, depth });
        for &c in children[i].iter().rev() {
            if !seen[c] {
                stack.push((c, depth.saturating_add(1)));
            }
        }
    }
}

fn start_order(a: &SpanRow, b: &SpanRow) -> std::cmp::Ordering {
    a.start_ms.cmp(&b.start_ms).then(a.span_id.cmp(&b.span_id))
}

/// One summary per trace id, in order of trace id.
pub fn summarize(spans: &[SpanRow]) -> Vec<TraceSummary> {
    let mut by_trace: BTreeMap<&str, Vec<&SpanRow>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(s.trace_id.as_str()).or_default().push(s);
    }
    by_trace
        .into_iter()
        .map(|(id, spans)| summary(id, &spans))
        .collect()
}

fn summary(trace_id: &str, spans: &[&SpanRow]) -> TraceSummary {
    let placed = tree(spans);
    // A true root (no parent) before an orphan, however early the orphan started.
    let root = placed
        .iter()
        .filter(|p| p.depth == 0)
        .map(|p| spans[p.index])
        .min_by_key(|s| (!s.parent_span_id.is_empty(), s.start_ms));
    let start_us = spans
        .iter()
        .map(|s| s.start_ms.saturating_mul(1000))
        .min()
        .unwrap_or(0);
    let end_us = spans
        .iter()
        .map(|s| {
            s.start_ms
                .saturating_mul(1000)
                .saturating_add(i64::try_from(s.duration_us).unwrap_or(i64::MAX))
        })
        .max()
        .unwrap_or(0);
    let errors: Vec<&&SpanRow> = spans
        .iter()
        .filter(|s| s.status == SpanStatus::Error)
        .collect();
    let first_error = errors
        .iter()
        .min_by(|a, b| start_order(a, b))
        .map(|s| {
            if s.status_message.is_empty() {
                s.name.clone()
            } else {
                s.status_message.clone()
            }
        })
        .unwrap_or_default();
    TraceSummary {
        trace_id: trace_id.to_owned(),
        root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
        root_name: root.map(|r| r.name.clone()).unwrap_or_default(),
        start_ms: start_us.div_euclid(1000),
        duration_us: u64::try_from(end_us.saturating_sub(start_us)).unwrap_or(0),
        spans: u32::try_from(spans.len()).unwrap_or(u32::MAX),
        error_spans: u32::try_from(errors.len()).unwrap_or(u32::MAX),
        first_error,
    }
}

/// The first `limit` traces in `order`; true when more qualified.
pub fn choose(
    mut summaries: Vec<TraceSummary>,
    order: Order,
    limit: usize,
) -> (Vec<TraceSummary>, bool) {
    match order {
        Order::Slowest => summaries.sort_by(|a, b| {
            b.duration_us
                .cmp(&a.duration_us)
                .then(b.start_ms.cmp(&a.start_ms))
                .then(a.trace_id.cmp(&b.trace_id))
        }),
        Order::Failed => {
            summaries.retain(|s| s.error_spans > 0);
            summaries.sort_by(|a, b| {
                b.start_ms
                    .cmp(&a.start_ms)
                    .then(b.error_spans.cmp(&a.error_spans))
                    .then(a.trace_id.cmp(&b.trace_id))
            });
        }
    }
    let more = summaries.len() > limit;
    summaries.truncate(limit);
    (summaries, more)
}

#[cfg(test)]
mod tests;
