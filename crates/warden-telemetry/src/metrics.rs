//! Metric queries on plain samples: label matchers, aggregation and downsampling.
//!
//! Owns what a query means: which series match (PromQL's `=`, `!=`, `=~`, `!~`, regexes
//! anchored at both ends, a missing label matching as the empty string), how samples of a
//! step fold into one value (avg, rate of a counter across resets, p95 by histogram
//! bucket interpolation or of raw gauge values, max, min, sum), and the step itself:
//! aligned to multiples of the step since the epoch, so two queries over overlapping
//! windows agree on the points they share. Refuses to know storage.
//!
//! Invariant: at most `max_points` points per series and `max_series` series, and the
//! answer says when series were left out. Histograms are cumulative, like counters.

use crate::model::{Attributes, HistogramValue, MetricKind};

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

/// One label matcher, its regex compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

/// Why a matcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("the label name is empty")]
    EmptyLabel,
    #[error("the regular expression does not compile: {0}")]
    Regex(#[from] regex::Error),
}

/// How the samples of one step fold into one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Avg,
    /// Per-second increase of a counter (or of a histogram's count), resets handled.
    Rate,
    /// Histograms: bucket interpolation of the step's observations; others: the raw values'.
    P95,
    Max,
    Min,
    Sum,
}

/// One sample of one series. `value` is a histogram's sum of observations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    pub time_ms: i64,
    pub value: f64,
    pub histogram: Option<HistogramValue>,
}

/// A series: its labels and its samples in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesData {
    pub labels: Attributes,
    pub samples: Vec<Sample>,
}

/// A query over series already selected by name and matchers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Query {
    pub kind: MetricKind,
    pub aggregation: Aggregation,
    pub since_ms: i64,
    pub until_ms: i64,
    pub max_points: usize,
    pub max_series: usize,
}

/// One output series: labels and `(time_ms, value)` points, a point per step with data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesOut {
    pub labels: Attributes,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub step_ms: i64,
    pub series: Vec<SeriesOut>,
    /// Series were left out (more than `max_series`).
    pub truncated: bool,
}

/// Steps a query may use, in milliseconds: those a person reads on a graph.
const NICE_STEPS_MS: &[i64] = &[
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

// === impl Matcher ===

impl Matcher {
    /// A matcher; `=~` and `!~` regexes are anchored at both ends, as in PromQL.
    pub fn new(label: &str, op: MatchOp, value: &str) -> Result<Matcher, MatcherError> {
        if label.is_empty() {
            return Err(MatcherError::EmptyLabel);
        }
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    // Bounded so a hostile pattern cannot take the process's memory.
                    .size_limit(1 << 20)
                    .dfa_size_limit(1 << 20)
                    .build()?,
            ),
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Matcher {
            label: label.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Whether `labels` pass; a missing label has the empty value.
    pub fn matches(&self, labels: &Attributes) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            // Unreachable: `new` compiles a regex for both regex ops. Fail closed.
            (MatchOp::Re | MatchOp::Nre, None) => false,
        }
    }
}

/// Whether every matcher passes.
pub fn matches_all(matchers: &[Matcher], labels: &Attributes) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

// === impl Aggregation ===

impl Aggregation {
    /// What a kind is usually asked for: rate of counters, p95 of histograms, else avg.
    pub fn default_for(kind: MetricKind) -> Aggregation {
        match kind {
            MetricKind::Counter => Aggregation::Rate,
            MetricKind::Histogram => Aggregation::P95,
            MetricKind::Gauge | MetricKind::Sum => Aggregation::Avg,
        }
    }
}

// === queries ===

/// The step for a window: the smallest readable step that puts at most `max_points`
/// aligned steps over `[since, until)` (a whole multiple of a day past the largest).
pub fn step_for(since_ms: i64, until_ms: i64, max_points: usize) -> i64 {
    let max_points = max_points.max(1) as i64;
    let fits = |step: i64| steps_in(since_ms, until_ms, step) <= max_points;
    if let Some(s) = NICE_STEPS_MS.iter().copied().find(|s| fits(*s)) {
        return s;
    }
    let day = 86_400_000;
    let mut step = ((until_ms - since_ms).max(1) / max_points / day + 1) * day;
    while !fits(step) {
        step += day;
    }
    step
}

/// How many aligned steps of `step` touch `[since, until)`.
fn steps_in(since_ms: i64, until_ms: i64, step: i64) -> i64 {
    let first = since_ms.div_euclid(step);
    let last = (until_ms - 1).max(since_ms).div_euclid(step);
    last - first + 1
}

/// Evaluates `q` over `series` (already matched): the first `max_series` by labels,
/// each folded to one point per aligned step that has data in the window.
pub fn evaluate(q: &Query, mut series: Vec<SeriesData>) -> Answer {
    let step = step_for(q.since_ms, q.until_ms, q.max_points);
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let truncated = series.len() > q.max_series;
    series.truncate(q.max_series);
    let series = series
        .into_iter()
        .map(|s| SeriesOut {
            points: fold(q, step, &s.samples),
            labels: s.labels,
        })
        .collect();
    Answer {
        step_ms: step,
        series,
        truncated,
    }
}

/// One series' points: the window's samples grouped by aligned step, each group folded.
/// The last sample before the window only serves as the start of the first increase.
fn fold(q: &Query, step: i64, samples: &[Sample]) -> Vec<(i64, f64)> {
    let mut sorted: Vec<&Sample> = samples.iter().filter(|s| s.time_ms < q.until_ms).collect();
    sorted.sort_by_key(|s| s.time_ms);
    let first_in = sorted.partition_point(|s| s.time_ms < q.since_ms);
    // The sample before the current step, so increases span step boundaries.
    let mut before: Option<&Sample> = first_in.checked_sub(1).map(|i| sorted[i]);
    let sorted = &sorted[first_in..];
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let bucket = sorted[i].time_ms.div_euclid(step) * step;
        let mut j = i;
        while j < sorted.len() && sorted[j].time_ms.div_euclid(step) * step == bucket {
            j += 1;
        }
        let group = &sorted[i..j];
        if let Some(v) = fold_step(q, step, before, group) {
            out.push((bucket, v));
        }
        before = group.last().copied();
        i = j;
    }
    out
}

/// One step's value, or none (no increase to measure, an empty histogram).
fn fold_step(q: &Query, step: i64, before: Option<&Sample>, group: &[&Sample]) -> Option<f64> {
    let values = || group.iter().map(|s| s.value);
    let v = match q.aggregation {
        Aggregation::Avg => values().sum::<f64>() / group.len() as f64,
        Aggregation::Max => values().fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Min => values().fold(f64::INFINITY, f64::min),
        Aggregation::Sum => values().sum(),
        Aggregation::Rate => {
            let counter = |s: &Sample| s.histogram.as_ref().map_or(s.value, |h| h.count as f64);
            let mut increase = 0.0;
            let mut prev = before.map(counter);
            let mut measured = false;
            for s in group {
                let cur = counter(s);
                if let Some(p) = prev {
                    increase += counter_increase(p, cur);
                    measured = true;
                }
                prev = Some(cur);
            }
            if !measured {
                return None;
            }
            increase / (step as f64 / 1000.0)
        }
        Aggregation::P95 if q.kind == MetricKind::Histogram => {
            let last = group.last()?.histogram.as_ref()?;
            let start = before.and_then(|s| s.histogram.as_ref());
            let counts = bucket_increase(start, last);
            histogram_quantile(0.95, &last.bounds, &counts)?
        }
        Aggregation::P95 => {
            let mut v: Vec<f64> = values().collect();
            quantile(0.95, &mut v)?
        }
    };
    v.is_finite().then_some(v)
}

/// The increase of a counter from `prev` to `cur`: a drop is a reset, after which the
/// counter counted `cur` from zero.
pub fn counter_increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

/// Observations per bucket between two cumulative histograms: `end` less `start`, or
/// `end` alone after a reset (a bucket went down) or when the bounds changed.
fn bucket_increase(start: Option<&HistogramValue>, end: &HistogramValue) -> Vec<u64> {
    match start {
        Some(s)
            if s.bounds == end.bounds
                && s.bucket_counts.len() == end.bucket_counts.len()
                && s.bucket_counts
                    .iter()
                    .zip(&end.bucket_counts)
                    .all(|(a, b)| a <= b) =>
        {
            s.bucket_counts
                .iter()
                .zip(&end.bucket_counts)
                .map(|(a, b)| b - a)
                .collect()
        }
        _ => end.bucket_counts.clone(),
    }
}

/// The `q` quantile of explicit-bucket counts as Prometheus's `histogram_quantile` works
/// it out: find the bucket holding rank `q * total` and interpolate linearly within it
/// (from 0 for the first bucket if its bound is positive); a rank in the +Inf bucket
/// answers the largest finite bound. None when there are no observations.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        let below = cumulative;
        cumulative += c;
        if (cumulative as f64) < rank || c == 0 {
            continue;
        }
        let Some(&upper) = bounds.get(i) else {
            // The +Inf bucket: the largest finite bound is the best answer there is.
            return bounds.last().copied().or(Some(0.0));
        };
        let lower = match i {
            0 if upper <= 0.0 => return Some(upper),
            0 => 0.0,
            _ => bounds[i - 1],
        };
        return Some(lower + (upper - lower) * ((rank - below as f64) / c as f64));
    }
    bounds.last().copied()
}

/// The `q` quantile of raw values, interpolating between neighbours
/// (as PromQL's `quantile_over_time`). Sorts `values`.
pub fn quantile(q: f64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let w = rank - lo as f64;
    Some(values[lo] * (1.0 - w) + values[hi] * w)
}

#[cfg(test)]
mod tests;
