//! Log patterns: "what changed in the last 15 minutes" as templates with counts.
//!
//! Owns the comparison of a window against a baseline: both windows' bodies are mined
//! together by the project's one Drain-style miner (`warden_budget::mine`), so a line
//! gets the same template whichever window it came from, and each template is counted
//! per window. Refuses to know where rows come from or how they were selected.
//!
//! Order: new patterns (absent from the baseline) first, then grown ones (more frequent
//! than the baseline, scaled to the window's length), then steady, shrunk and gone ones;
//! within a class the biggest change first. Invariant: every window row is counted in
//! exactly one pattern, so the counts add up to `records`.

use std::collections::{BTreeSet, HashMap};

use crate::model::LogRow;

/// One template with its counts in the window and in the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// Variable parts as `<*>`.
    pub template: String,
    pub count: u64,
    pub baseline_count: u64,
    pub change: Change,
    pub max_severity: i32,
    /// One body of the pattern: from the window if it occurs there, else from the baseline.
    pub example: String,
    pub services: BTreeSet<String>,
    /// Within the window if the pattern occurs there, else within the baseline.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// How a pattern's frequency moved, in the order patterns are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    New,
    Grown,
    Steady,
    Shrunk,
    Gone,
}

/// Patterns of a window against a baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Patterns {
    /// New and grown patterns first; at most the limit asked for.
    pub patterns: Vec<Pattern>,
    pub records: u64,
    pub baseline_records: u64,
    /// More patterns than the limit.
    pub truncated: bool,
}

/// Groups `window` and `baseline` rows into templates and orders them by change.
///
/// `window_ms` and `baseline_ms` are the lengths of the two windows: a baseline twice as
/// long as the window is expected to hold twice the lines, so its counts are scaled
/// before comparing. A count within 50% of the scaled baseline is steady.
pub fn patterns(
    window: &[LogRow],
    window_ms: i64,
    baseline: &[LogRow],
    baseline_ms: i64,
    limit: usize,
) -> Patterns {
    let bodies = window.iter().chain(baseline).map(|r| r.body.as_str());
    let mined = warden_budget::mine(bodies);
    let mut by_template: HashMap<u32, Pattern> = HashMap::new();
    let texts: HashMap<u32, String> = mined.templates.iter().map(|t| (t.id.0, t.text())).collect();
    for (i, id) in mined.line_templates.iter().enumerate() {
        let in_window = i < window.len();
        let row = if in_window {
            &window[i]
        } else {
            &baseline[i - window.len()]
        };
        let p = by_template.entry(id.0).or_insert_with(|| Pattern {
            template: texts.get(&id.0).cloned().unwrap_or_default(),
            count: 0,
            baseline_count: 0,
            change: Change::Steady,
            max_severity: 0,
            example: String::new(),
            services: BTreeSet::new(),
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
        });
        p.max_severity = p.max_severity.max(row.severity_number);
        p.services.insert(row.service.clone());
        if in_window {
            p.count += 1;
        } else {
            p.baseline_count += 1;
            // Window rows come first: a pattern seen there keeps the window's example and times.
            if p.count > 0 {
                continue;
            }
        }
        if p.example.is_empty() {
            p.example = row.body.clone();
        }
        p.first_seen_ms = p.first_seen_ms.min(row.time_ms);
        p.last_seen_ms = p.last_seen_ms.max(row.time_ms);
    }
    let scale = if baseline_ms > 0 {
        window_ms.max(1) as f64 / baseline_ms as f64
    } else {
        1.0
    };
    let mut all: Vec<(f64, Pattern)> = by_template
        .into_values()
        .map(|mut p| {
            let expected = p.baseline_count as f64 * scale;
            let (change, score) = classify(p.count as f64, p.baseline_count, expected);
            p.change = change;
            (score, p)
        })
        .collect();
    all.sort_by(|(sa, a), (sb, b)| {
        a.change
            .cmp(&b.change)
            .then(sb.total_cmp(sa))
            .then(b.count.cmp(&a.count))
            .then(b.baseline_count.cmp(&a.baseline_count))
            .then(a.template.cmp(&b.template))
    });
    let truncated = all.len() > limit;
    Patterns {
        patterns: all.into_iter().take(limit).map(|(_, p)| p).collect(),
        records: window.len() as u64,
        baseline_records: baseline.len() as u64,
        truncated,
    }
}

/// The change class of a pattern and how big the change is (bigger first within a class).
fn classify(count: f64, baseline_count: u64, expected: f64) -> (Change, f64) {
    if baseline_count == 0 {
        return (Change::New, count);
    }
    if count == 0.0 {
        return (Change::Gone, expected);
    }
    let ratio = count / expected.max(f64::MIN_POSITIVE);
    if ratio >= 1.5 {
        (Change::Grown, ratio)
    } else if ratio <= 0.5 {
        (Change::Shrunk, 1.0 / ratio)
    } else {
        (Change::Steady, count)
    }
}

#[cfg(test)]
mod tests;
