//! Metrics over budget: downsample each series, keeping every k-th point plus its min and max.
//!
//! Reads OTLP/JSON (`resourceMetrics[].scopeMetrics[].metrics[].<kind>.dataPoints[]`, a
//! series being one metric and one attribute set) or text lines `name{labels} value [ts]`,
//! where `#` comments are kept. The stride doubles until the result fits.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Method, array as arr};

/// Point kinds of an OTLP metric.
const KINDS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Where a point sits: resource, scope, metric and point index.
type PointAt = (usize, usize, usize, usize);

/// One series: its points in order with their values (`None` when unreadable).
struct Series<K> {
    points: Vec<(K, Option<f64>)>,
}

pub(crate) fn cut(text: &str, budget: usize) -> (String, Method) {
    if let Ok(doc) = serde_json::from_str::<Value>(text)
        && doc.get("resourceMetrics").is_some_and(Value::is_array)
    {
        return cut_otlp(&doc, budget);
    }
    cut_lines(text, budget)
}

/// Points kept at `stride`: every stride-th of each series, plus each series' min and max.
fn keep_at<K: Copy + Eq + std::hash::Hash>(series: &[Series<K>], stride: usize) -> HashSet<K> {
    let mut keep = HashSet::new();
    for s in series {
        let mut min: Option<(K, f64)> = None;
        let mut max: Option<(K, f64)> = None;
        for (i, (at, v)) in s.points.iter().enumerate() {
            if i % stride == 0 {
                keep.insert(*at);
            }
            if let Some(v) = v.filter(|v| v.is_finite()) {
                if min.is_none_or(|(_, m)| v < m) {
                    min = Some((*at, v));
                }
                if max.is_none_or(|(_, m)| v > m) {
                    max = Some((*at, v));
                }
            }
        }
        keep.extend(min.map(|m| m.0));
        keep.extend(max.map(|m| m.0));
    }
    keep
}

/// Doubles the stride until `render` fits; `None` when even min and max alone do not fit.
fn downsample<K: Copy + Eq + std::hash::Hash>(
    series: &[Series<K>],
    budget: usize,
    render: impl Fn(&HashSet<K>) -> String,
) -> Option<(String, usize, usize)> {
    let longest = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    let mut stride = 2;
    loop {
        let keep = keep_at(series, stride);
        let out = render(&keep);
        if out.len() <= budget {
            return Some((out, keep.len(), stride));
        }
        if stride > longest {
            return None;
        }
        stride = stride.saturating_mul(2);
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The value a point is judged by: `asDouble`/`asInt`, else `sum` for histograms.
fn point_value(p: &Value) -> Option<f64> {
    number(p.get("asDouble"))
        .or_else(|| number(p.get("asInt")))
        .or_else(|| number(p.get("sum")))
}

fn otlp_series(doc: &Value) -> Vec<Series<PointAt>> {
    let mut out = Vec::new();
    for (r, rm) in arr(doc.get("resourceMetrics")).iter().enumerate() {
        for (s, sm) in arr(rm.get("scopeMetrics")).iter().enumerate() {
            for (m, metric) in arr(sm.get("metrics")).iter().enumerate() {
                let Some(kind) = KINDS.iter().find_map(|k| metric.get(*k)) else {
                    continue;
                };
                let mut by_attrs: HashMap<String, usize> = HashMap::new();
                for (i, p) in arr(kind.get("dataPoints")).iter().enumerate() {
                    let key = p
                        .get("attributes")
                        .map(Value::to_string)
                        .unwrap_or_default();
                    let idx = *by_attrs.entry(key).or_insert_with(|| {
                        out.push(Series { points: Vec::new() });
                        out.len() - 1
                    });
                    if let Some(series) = out.get_mut(idx) {
                        series.points.push(((r, s, m, i), point_value(p)));
                    }
                }
            }
        }
    }
    out
}

fn render_otlp(doc: &Value, keep: &HashSet<PointAt>) -> String {
    let mut doc = doc.clone();
    let each = |v: Option<&mut Value>, f: &mut dyn FnMut(usize, &mut Value)| {
        if let Some(a) = v.and_then(Value::as_array_mut) {
            for (i, x) in a.iter_mut().enumerate() {
                f(i, x);
            }
        }
    };
    each(doc.get_mut("resourceMetrics"), &mut |r, rm| {
        each(rm.get_mut("scopeMetrics"), &mut |s, sm| {
            each(sm.get_mut("metrics"), &mut |m, metric| {
                for kind in KINDS {
                    if let Some(points) = metric
                        .get_mut(kind)
                        .and_then(|k| k.get_mut("dataPoints"))
                        .and_then(Value::as_array_mut)
                    {
                        let mut i = 0;
                        points.retain(|_| {
                            i += 1;
                            keep.contains(&(r, s, m, i - 1))
                        });
                    }
                }
            });
        });
    });
    doc.to_string()
}

fn cut_otlp(doc: &Value, budget: usize) -> (String, Method) {
    let series = otlp_series(doc);
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    match downsample(&series, budget, |keep| render_otlp(doc, keep)) {
        Some((out, kept, stride)) => (
            out,
            Method::Downsample {
                series: series.len(),
                points,
                points_kept: kept,
                stride,
            },
        ),
        None => super::text::cut(&render_otlp(doc, &keep_at(&series, usize::MAX)), budget),
    }
}

/// `name{labels} value [ts]` split into the series key and the value; `None` if not that shape.
fn parse_line(line: &str) -> Option<(&str, Option<f64>)> {
    let line = line.trim_end();
    let (rest, last) = line.rsplit_once(char::is_whitespace)?;
    let last_num: Option<f64> = last.parse().ok();
    let rest = rest.trim_end();
    if let Some((key, value)) = rest.rsplit_once(char::is_whitespace)
        && let (Ok(v), Some(_)) = (value.parse::<f64>(), last_num)
    {
        return Some((key.trim_end(), Some(v)));
    }
    last_num.map(|v| (rest, Some(v)))
}

fn cut_lines(text: &str, budget: usize) -> (String, Method) {
    let lines: Vec<&str> = text.lines().collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut series: Vec<Series<usize>> = Vec::new();
    let mut always = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        match parse_line(trimmed) {
            Some((key, v)) if !trimmed.starts_with('#') => {
                let idx = *index.entry(key).or_insert_with(|| {
                    series.push(Series { points: Vec::new() });
                    series.len() - 1
                });
                if let Some(s) = series.get_mut(idx) {
                    s.points.push((i, v));
                }
            }
            // Comments (`# HELP`, `# TYPE`) and lines of unknown shape are context: kept.
            _ => always.push(i),
        }
    }
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let render = |keep: &HashSet<usize>| -> String {
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if keep.contains(&i) || always.binary_search(&i).is_ok() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    };
    match downsample(&series, budget, render) {
        Some((out, kept, stride)) => (
            out,
            Method::Downsample {
                series: series.len(),
                points,
                points_kept: kept,
                stride,
            },
        ),
        None => super::text::cut(text, budget),
    }
}
