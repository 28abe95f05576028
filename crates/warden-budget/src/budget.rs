//! Byte budgets for one data type: cut a part's text to its budget and say how.
//!
//! Owns the choice of method per data type: logs fold into templates with counts and
//! exemplars (`logs`), traces keep error and slow spans first (`traces`), metrics are
//! downsampled per series (`metrics`), anything else is cut at a UTF-8 boundary with a
//! marker (`text`). Refuses to redact: it runs on text that redaction already cleaned.
//!
//! Invariants: `cut.text.len() <= budget` whenever the input was over budget; text within
//! budget is returned unchanged; a [`CutReport`] holds counts and names, never payload bytes.

mod logs;
mod metrics;
mod text;
mod traces;

use std::fmt;

use serde_json::Value;
use warden_policy::DataType;

/// A part after its budget: the text to send and what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub text: String,
    pub report: CutReport,
}

/// What a budget did to one part. Counts only: safe to log, audit and print.
#[derive(Debug, Clone, PartialEq)]
pub struct CutReport {
    pub data_type: DataType,
    pub budget_bytes: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
    pub method: Method,
}

/// How a part was cut, with the counts that method knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Within budget: sent as it came.
    Untouched,
    /// Log lines folded into templates (`[x412] Received block <*> ...`) with exemplar lines.
    LogTemplates {
        lines: usize,
        templates: usize,
        templates_shown: usize,
        exemplar_lines: usize,
    },
    /// Spans chosen errors first, then slowest first; the rest dropped.
    SpanSelection {
        spans: usize,
        spans_kept: usize,
        error_spans_kept: usize,
    },
    /// Every `stride`-th point of each series kept, plus each series' min and max.
    Downsample {
        series: usize,
        points: usize,
        points_kept: usize,
        stride: usize,
    },
    /// Cut at a UTF-8 boundary, with a marker saying how much went.
    Truncate { bytes_cut: usize },
}

// === impl Cut ===

/// Cuts `text`, a part of type `data_type`, to at most `budget_bytes` bytes.
pub fn apply(data_type: DataType, text: &str, budget_bytes: usize) -> Cut {
    if text.len() <= budget_bytes {
        return Cut::untouched(data_type, text, budget_bytes);
    }
    let (out, method) = match data_type {
        DataType::Logs => logs::cut(text, budget_bytes),
        DataType::Traces => traces::cut(text, budget_bytes),
        DataType::Metrics => metrics::cut(text, budget_bytes),
        DataType::Instruction
        | DataType::Profiles
        | DataType::ConfigMetadata
        | DataType::ClusterInfo
        | DataType::SourceCode => text::cut(text, budget_bytes),
    };
    // Every method promises the budget; this is the backstop that makes it an invariant.
    let (out, method) = if out.len() <= budget_bytes {
        (out, method)
    } else {
        text::cut(&out, budget_bytes)
    };
    Cut {
        report: CutReport {
            data_type,
            budget_bytes,
            bytes_before: text.len(),
            bytes_after: out.len(),
            method,
        },
        text: out,
    }
}

impl Cut {
    fn untouched(data_type: DataType, text: &str, budget_bytes: usize) -> Cut {
        Cut {
            text: text.to_owned(),
            report: CutReport {
                data_type,
                budget_bytes,
                bytes_before: text.len(),
                bytes_after: text.len(),
                method: Method::Untouched,
            },
        }
    }
}

/// The array at `v`, or an empty one: OTLP readers skip what is not there.
fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

// === impl Method ===

impl Method {
    /// Stable snake_case name for metrics labels and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Untouched => "untouched",
            Method::LogTemplates { .. } => "log_templates",
            Method::SpanSelection { .. } => "span_selection",
            Method::Downsample { .. } => "downsample",
            Method::Truncate { .. } => "truncate",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Untouched => f.write_str("untouched"),
            Method::LogTemplates {
                lines,
                templates,
                templates_shown,
                exemplar_lines,
            } => write!(
                f,
                "log templates: {lines} lines in {templates} templates, {templates_shown} templates and {exemplar_lines} exemplar lines kept"
            ),
            Method::SpanSelection {
                spans,
                spans_kept,
                error_spans_kept,
            } => write!(
                f,
                "span selection: {spans_kept} of {spans} spans kept ({error_spans_kept} with errors), errors then slowest first"
            ),
            Method::Downsample {
                series,
                points,
                points_kept,
                stride,
            } => write!(
                f,
                "downsample: {points_kept} of {points} points kept in {series} series (every {stride}th plus min and max)"
            ),
            Method::Truncate { bytes_cut } => {
                write!(f, "truncate: {bytes_cut} bytes cut at a UTF-8 boundary")
            }
        }
    }
}

// === impl CutReport ===

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} bytes (budget {}), {}",
            self.data_type, self.bytes_before, self.bytes_after, self.budget_bytes, self.method
        )
    }
}

#[cfg(test)]
mod tests;
