//! Prometheus' JSON API answers (<https://prometheus.io/docs/prometheus/latest/querying/api/>)
//! turned into plain series: the envelope (`status`, `errorType`, `error`, `warnings`),
//! the `matrix`/`vector`/`scalar` result types, and values as strings ("NaN", "+Inf").
//! Pure functions over the body; bounds on series and points are applied here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::SourceError;

/// One time series: its labels (with `__name__` when it has one) and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// (milliseconds since the epoch, value), oldest first. Values may be NaN or ±Inf.
    pub points: Vec<(i64, f64)>,
}

/// What a PromQL expression evaluated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// A range query: series with many points.
    Matrix,
    /// An instant query over series: one point each.
    Vector,
    /// A number without labels (`scalar(...)`, `1+1`): one series with no labels.
    Scalar,
}

/// The answer to a query, bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub kind: ResultKind,
    pub series: Vec<Series>,
    /// Series the server returned; more than `series.len()` when `truncated`.
    pub total_series: usize,
    /// Some series (over the client's series cap) or points were left out.
    pub truncated: bool,
    /// The resolution of a range query, in milliseconds; `None` for an instant query.
    pub step_ms: Option<u64>,
    /// Prometheus' warnings (e.g. a partial answer from a federated store).
    pub warnings: Vec<String>,
}

/// Metric names that have data in a time range, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricNames {
    pub names: Vec<String>,
    /// More names exist than the limit let through.
    pub truncated: bool,
    pub warnings: Vec<String>,
}

/// A parsed API envelope.
#[derive(Debug)]
pub(crate) enum Envelope<T> {
    Success { data: T, warnings: Vec<String> },
    Error { error_type: String, error: String },
}

#[derive(Deserialize)]
struct RawEnvelope<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(crate) enum Data {
    Matrix(Vec<RawSeries>),
    Vector(Vec<RawSample>),
    Scalar(RawPoint),
    /// Not numbers; refused without being read.
    String(#[allow(dead_code)] serde::de::IgnoredAny),
}

/// `[<seconds, float>, "<value>"]`
type RawPoint = (f64, String);
/// A series' labels and its raw points.
type Labelled = (BTreeMap<String, String>, Vec<RawPoint>);

#[derive(Deserialize)]
pub(crate) struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for a series of native histograms, which this client does not read.
    #[serde(default)]
    values: Vec<RawPoint>,
}

#[derive(Deserialize)]
pub(crate) struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<RawPoint>,
}

/// The envelope of a body; `Err` when it is not a Prometheus API answer at all.
pub(crate) fn envelope<T: DeserializeOwned>(body: &[u8]) -> Result<Envelope<T>, String> {
    let raw: RawEnvelope<T> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match (raw.status.as_str(), raw.data) {
        ("success", Some(data)) => Ok(Envelope::Success {
            data,
            warnings: raw.warnings,
        }),
        ("success", None) => Err("status is success but there is no data".into()),
        ("error", _) => Ok(Envelope::Error {
            error_type: raw.error_type,
            error: raw.error,
        }),
        (other, _) => Err(format!("unknown status {other:?}")),
    }
}

/// Prometheus' `errorType` and `error` as a clear error.
pub(crate) fn api_error(error_type: &str, error: String) -> SourceError {
    let error = if error.is_empty() {
        "no reason given".to_owned()
    } else {
        error
    };
    match error_type {
        "bad_data" => SourceError::InvalidQuery(error),
        "" => SourceError::QueryFailed {
            kind: "error".into(),
            message: error,
        },
        kind => SourceError::QueryFailed {
            kind: kind.to_owned(),
            message: error,
        },
    }
}

/// The series of `data`, at most `max_series` of them with at most `max_points` points each.
pub(crate) fn into_result(
    data: Data,
    max_series: usize,
    max_points: usize,
) -> Result<QueryResult, String> {
    let (kind, raw): (ResultKind, Vec<Labelled>) = match data {
        Data::Matrix(s) => (
            ResultKind::Matrix,
            s.into_iter().map(|s| (s.metric, s.values)).collect(),
        ),
        Data::Vector(s) => (
            ResultKind::Vector,
            s.into_iter()
                .map(|s| (s.metric, s.value.into_iter().collect()))
                .collect(),
        ),
        Data::Scalar(p) => (ResultKind::Scalar, vec![(BTreeMap::new(), vec![p])]),
        Data::String(_) => {
            return Err("the expression evaluates to a string, not to numbers".into());
        }
    };
    let total_series = raw.len();
    let mut truncated = total_series > max_series;
    let mut series = Vec::with_capacity(total_series.min(max_series));
    for (labels, values) in raw.into_iter().take(max_series) {
        truncated |= values.len() > max_points;
        let points = values
            .into_iter()
            .take(max_points)
            .map(point)
            .collect::<Result<_, _>>()?;
        series.push(Series { labels, points });
    }
    Ok(QueryResult {
        kind,
        series,
        total_series,
        truncated,
        step_ms: None,
        warnings: Vec::new(),
    })
}

/// `[1700000000.123, "NaN"]` → (1700000000123, NaN).
fn point((t, v): RawPoint) -> Result<(i64, f64), String> {
    if !t.is_finite() {
        return Err(format!("timestamp {t} is not a time"));
    }
    // Rust reads "NaN", "+Inf" and "-Inf" as Prometheus writes them.
    let value = v
        .parse::<f64>()
        .map_err(|_| format!("value {:?} is not a number", truncate(&v, 40)))?;
    Ok(((t * 1000.0).round() as i64, value))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
