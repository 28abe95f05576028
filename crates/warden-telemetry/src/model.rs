//! The rows storage keeps. Times are Unix milliseconds (spans: microseconds for duration);
//! attribute maps are ordered so their encodings (and hashes) are stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Attributes of a record or a resource, flattened to strings.
pub type Attributes = BTreeMap<String, String>;

/// One log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LogRow {
    pub time_ms: i64,
    /// `service.name` of the resource ("unknown_service" when absent).
    pub service: String,
    /// OTLP SeverityNumber, 0 when unspecified.
    pub severity_number: i32,
    pub severity_text: String,
    pub body: String,
    /// Lowercase hex, empty when absent.
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Attributes,
    pub resource: Attributes,
}

/// The kind of a metric, as OTLP distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    #[default]
    Gauge,
    /// A monotonic cumulative sum: rate() makes sense.
    Counter,
    /// A non-monotonic sum (an up-down counter).
    Sum,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
            MetricKind::Sum => "sum",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Explicit-bucket histogram data of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HistogramValue {
    pub count: u64,
    pub sum: f64,
    /// Upper bounds; `bucket_counts` has one more entry (the +Inf bucket).
    pub bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
}

/// One metric data point of one series. A series is (name, labels); its labels include
/// the resource attributes, so `service.name` and `k8s.*` can be matched like any label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricPoint {
    pub time_ms: i64,
    pub name: String,
    pub kind: MetricKind,
    pub unit: String,
    pub description: String,
    pub labels: Attributes,
    /// Gauge or sum value; for histograms, the sum of observations.
    pub value: f64,
    pub histogram: Option<HistogramValue>,
}

/// Status of a span as OTLP defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error,
}

/// One span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SpanRow {
    /// Lowercase hex (32 characters).
    pub trace_id: String,
    /// Lowercase hex (16 characters).
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    /// server, client, internal, producer, consumer (empty when unspecified).
    pub kind: String,
    pub start_ms: i64,
    pub duration_us: u64,
    pub status: SpanStatus,
    pub status_message: String,
    pub attributes: Attributes,
    pub resource: Attributes,
}
