//! OTLP requests into the rows storage keeps: pure functions, no I/O.
//!
//! Each item (log record, metric data point, span) is checked on its own: a bad one is
//! rejected and counted with the first few reasons, the good ones go on, which is what
//! OTLP's partial success reports. Resource attributes are kept whole (`service.name`
//! becomes the row's service; `k8s.*`, `deployment.environment`, ... stay in `resource`
//! or, for metrics, in the labels). Nothing here decides the tenant: the payload's
//! attributes (a `tenant.id`, say) are attributes like any other.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use warden_telemetry::model::{
    Attributes, HistogramValue, LogRow, MetricKind, MetricPoint, SpanRow, SpanStatus,
};

/// Bounds on one item.
#[derive(Debug, Clone, Copy)]
pub struct ItemLimits {
    /// A log body or an attribute value longer than this rejects its item.
    pub max_value_bytes: usize,
    /// More attributes than this on a record, point, span or resource rejects the item.
    pub max_attributes: usize,
}

impl Default for ItemLimits {
    fn default() -> Self {
        ItemLimits {
            max_value_bytes: 64 * 1024,
            max_attributes: 128,
        }
    }
}

/// What one request decoded to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub rows: Vec<T>,
    pub rejected: u64,
    /// The first few distinct reasons, for the partial-success message.
    pub reasons: Vec<String>,
}

/// Reasons kept per request: enough to fix a sender, bounded whatever it sends.
const MAX_REASONS: usize = 3;

impl<T> Decoded<T> {
    fn new() -> Self {
        Decoded {
            rows: Vec::new(),
            rejected: 0,
            reasons: Vec::new(),
        }
    }

    fn push(&mut self, item: Result<T, String>) {
        match item {
            Ok(row) => self.rows.push(row),
            Err(reason) => self.reject(1, reason),
        }
    }

    fn reject(&mut self, n: u64, reason: String) {
        self.rejected += n;
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// The partial-success message: how many were rejected and why (empty if none).
    pub fn message(&self, what: &str) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "{} of {} {what} rejected: {}",
            self.rejected,
            self.rejected + self.rows.len() as u64,
            self.reasons.join("; ")
        )
    }
}

/// Log records of every resource and scope.
pub fn logs(req: &ExportLogsServiceRequest, lim: &ItemLimits) -> Decoded<LogRow> {
    let mut out = Decoded::new();
    for rl in &req.resource_logs {
        let n: usize = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
        let resource = match resource(rl.resource.as_ref(), lim) {
            Ok(r) => r,
            Err(e) => {
                out.reject(n as u64, e);
                continue;
            }
        };
        let service = service_of(&resource);
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                out.push(log_row(r, &service, &resource, lim));
            }
        }
    }
    out
}

fn log_row(
    r: &opentelemetry_proto::tonic::logs::v1::LogRecord,
    service: &str,
    resource: &Attributes,
    lim: &ItemLimits,
) -> Result<LogRow, String> {
    let nanos = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    if nanos == 0 {
        return Err("log record without time_unix_nano or observed_time_unix_nano".into());
    }
    if !(0..=24).contains(&r.severity_number) {
        return Err(format!(
            "severity_number {} is not an OTLP severity (0 to 24)",
            r.severity_number
        ));
    }
    let body = r.body.as_ref().map(text).unwrap_or_default();
    if body.len() > lim.max_value_bytes {
        return Err(format!(
            "log body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            lim.max_value_bytes
        ));
    }
    Ok(LogRow {
        time_ms: ms(nanos),
        service: service.to_owned(),
        severity_number: r.severity_number,
        severity_text: bounded("severity_text", &r.severity_text, 64)?,
        body,
        trace_id: optional_id("trace_id", &r.trace_id, 16)?,
        span_id: optional_id("span_id", &r.span_id, 8)?,
        attributes: attributes("log record", &r.attributes, lim)?,
        resource: resource.clone(),
    })
}

/// Metric data points of every resource and scope. Gauges, sums (monotonic ones as
/// counters) and explicit-bucket histograms are kept; summaries and exponential
/// histograms are rejected point by point.
pub fn metrics(req: &ExportMetricsServiceRequest, lim: &ItemLimits) -> Decoded<MetricPoint> {
    let mut out = Decoded::new();
    for rm in &req.resource_metrics {
        let n: usize = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(points_in)
            .sum();
        let resource = match resource(rm.resource.as_ref(), lim) {
            Ok(r) => r,
            Err(e) => {
                out.reject(n as u64, e);
                continue;
            }
        };
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                metric_points(m, &resource, lim, &mut out);
            }
        }
    }
    out
}

fn points_in(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 1,
    }
}

fn metric_points(
    m: &opentelemetry_proto::tonic::metrics::v1::Metric,
    resource: &Attributes,
    lim: &ItemLimits,
    out: &mut Decoded<MetricPoint>,
) {
    if m.name.is_empty() || m.name.len() > 256 {
        out.reject(
            points_in(m) as u64,
            "metric name must be 1 to 256 bytes".into(),
        );
        return;
    }
    let base = |kind: MetricKind| MetricPoint {
        name: m.name.clone(),
        kind,
        unit: m.unit.chars().take(64).collect(),
        description: m.description.chars().take(1024).collect(),
        ..Default::default()
    };
    match &m.data {
        Some(metric::Data::Gauge(g)) => {
            for p in &g.data_points {
                out.push(number_point(base(MetricKind::Gauge), p, resource, lim));
            }
        }
        // Queries read sums and histograms as cumulative series (rate across resets,
        // per-step differences); delta points would be read wrong, so they are refused by
        // name rather than stored.
        Some(metric::Data::Sum(s)) if s.aggregation_temporality == DELTA => out.reject(
            s.data_points.len() as u64,
            format!(
                "metric {:?}: delta temporality is not supported; configure the exporter for cumulative temporality",
                m.name
            ),
        ),
        Some(metric::Data::Histogram(h)) if h.aggregation_temporality == DELTA => out.reject(
            h.data_points.len() as u64,
            format!(
                "metric {:?}: delta temporality is not supported; configure the exporter for cumulative temporality",
                m.name
            ),
        ),
        Some(metric::Data::Sum(s)) => {
            let kind = if s.is_monotonic {
                MetricKind::Counter
            } else {
                MetricKind::Sum
            };
            for p in &s.data_points {
                out.push(number_point(base(kind), p, resource, lim));
            }
        }
        Some(metric::Data::Histogram(h)) => {
            for p in &h.data_points {
                out.push(histogram_point(
                    base(MetricKind::Histogram),
                    p,
                    resource,
                    lim,
                ));
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => out.reject(
            h.data_points.len() as u64,
            format!(
                "metric {:?}: exponential histograms are not supported; export explicit-bucket histograms",
                m.name
            ),
        ),
        Some(metric::Data::Summary(s)) => out.reject(
            s.data_points.len() as u64,
            format!(
                "metric {:?}: summaries are not supported; export histograms",
                m.name
            ),
        ),
        None => out.reject(1, format!("metric {:?} has no data", m.name)),
    }
}

/// OTLP's AGGREGATION_TEMPORALITY_DELTA.
const DELTA: i32 = opentelemetry_proto::tonic::metrics::v1::AggregationTemporality::Delta as i32;

fn number_point(
    mut point: MetricPoint,
    p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
    resource: &Attributes,
    lim: &ItemLimits,
) -> Result<MetricPoint, String> {
    if p.time_unix_nano == 0 {
        return Err(format!("metric {:?}: data point without time", point.name));
    }
    point.value = match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => return Err(format!("metric {:?}: data point without value", point.name)),
    };
    point.time_ms = ms(p.time_unix_nano);
    point.labels = labels(resource, &p.attributes, lim)?;
    Ok(point)
}

fn histogram_point(
    mut point: MetricPoint,
    p: &opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint,
    resource: &Attributes,
    lim: &ItemLimits,
) -> Result<MetricPoint, String> {
    if p.time_unix_nano == 0 {
        return Err(format!("metric {:?}: data point without time", point.name));
    }
    if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err(format!(
            "metric {:?}: {} bucket counts for {} bounds (want one more count than bounds)",
            point.name,
            p.bucket_counts.len(),
            p.explicit_bounds.len()
        ));
    }
    let sum = p.sum.unwrap_or(0.0);
    point.time_ms = ms(p.time_unix_nano);
    point.value = sum;
    point.histogram = Some(HistogramValue {
        count: p.count,
        sum,
        bounds: p.explicit_bounds.clone(),
        bucket_counts: p.bucket_counts.clone(),
    });
    point.labels = labels(resource, &p.attributes, lim)?;
    Ok(point)
}

/// Spans of every resource and scope.
pub fn spans(req: &ExportTraceServiceRequest, lim: &ItemLimits) -> Decoded<SpanRow> {
    let mut out = Decoded::new();
    for rs in &req.resource_spans {
        let n: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        let resource = match resource(rs.resource.as_ref(), lim) {
            Ok(r) => r,
            Err(e) => {
                out.reject(n as u64, e);
                continue;
            }
        };
        let service = service_of(&resource);
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(span_row(s, &service, &resource, lim));
            }
        }
    }
    out
}

fn span_row(
    s: &opentelemetry_proto::tonic::trace::v1::Span,
    service: &str,
    resource: &Attributes,
    lim: &ItemLimits,
) -> Result<SpanRow, String> {
    let trace_id = required_id("trace_id", &s.trace_id, 16)?;
    let span_id = required_id("span_id", &s.span_id, 8)?;
    if s.start_time_unix_nano == 0 {
        return Err("span without start_time_unix_nano".into());
    }
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err("span ends before it starts".into());
    }
    let kind = match s.kind {
        0 => "",
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        k => return Err(format!("span kind {k} is not an OTLP span kind (0 to 5)")),
    };
    let (status, status_message) = match &s.status {
        None => (SpanStatus::Unset, String::new()),
        Some(st) => (
            match st.code {
                0 => SpanStatus::Unset,
                1 => SpanStatus::Ok,
                2 => SpanStatus::Error,
                c => {
                    return Err(format!(
                        "span status code {c} is not an OTLP status (0 to 2)"
                    ));
                }
            },
            bounded("status message", &st.message, lim.max_value_bytes)?,
        ),
    };
    Ok(SpanRow {
        trace_id,
        span_id,
        parent_span_id: optional_id("parent_span_id", &s.parent_span_id, 8)?,
        service: service.to_owned(),
        name: bounded("span name", &s.name, 1024)?,
        kind: kind.to_owned(),
        start_ms: ms(s.start_time_unix_nano),
        duration_us: (s.end_time_unix_nano - s.start_time_unix_nano) / 1000,
        status,
        status_message,
        attributes: attributes("span", &s.attributes, lim)?,
        resource: resource.clone(),
    })
}

// === shared pieces ===

fn ms(nanos: u64) -> i64 {
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

fn resource(r: Option<&Resource>, lim: &ItemLimits) -> Result<Attributes, String> {
    r.map_or(Ok(Attributes::new()), |r| {
        attributes("resource", &r.attributes, lim)
    })
}

/// `service.name` of a resource, or OTLP's own default when absent.
fn service_of(resource: &Attributes) -> String {
    resource
        .get("service.name")
        .filter(|s| !s.is_empty())
        .map_or_else(
            || "unknown_service".to_owned(),
            |s| s.chars().take(256).collect(),
        )
}

/// A point's labels: its resource's attributes, then its own (which win on a clash).
fn labels(resource: &Attributes, own: &[KeyValue], lim: &ItemLimits) -> Result<Attributes, String> {
    let mut all = resource.clone();
    all.extend(attributes("data point", own, lim)?);
    Ok(all)
}

fn attributes(what: &str, kvs: &[KeyValue], lim: &ItemLimits) -> Result<Attributes, String> {
    if kvs.len() > lim.max_attributes {
        return Err(format!(
            "{what} has {} attributes; the limit is {}",
            kvs.len(),
            lim.max_attributes
        ));
    }
    let mut out = Attributes::new();
    for kv in kvs {
        if kv.key.is_empty() || kv.key.len() > 256 {
            return Err(format!(
                "{what} has an attribute key that is empty or over 256 bytes"
            ));
        }
        let v = kv.value.as_ref().map(text).unwrap_or_default();
        if v.len() > lim.max_value_bytes {
            return Err(format!(
                "{what} attribute {:?} is {} bytes; the limit is {}",
                kv.key,
                v.len(),
                lim.max_value_bytes
            ));
        }
        out.insert(kv.key.clone(), v);
    }
    Ok(out)
}

fn bounded(what: &str, s: &str, max: usize) -> Result<String, String> {
    if s.len() > max {
        return Err(format!("{what} is {} bytes; the limit is {max}", s.len()));
    }
    Ok(s.to_owned())
}

/// An id that must be there: `len` bytes, not all zero; as lowercase hex.
fn required_id(what: &str, id: &[u8], len: usize) -> Result<String, String> {
    if id.len() != len || id.iter().all(|b| *b == 0) {
        return Err(format!(
            "{what} must be {len} bytes and not all zero (got {} bytes)",
            id.len()
        ));
    }
    Ok(hex::encode(id))
}

/// An id that may be absent (empty or all zero): otherwise `len` bytes.
fn optional_id(what: &str, id: &[u8], len: usize) -> Result<String, String> {
    if id.iter().all(|b| *b == 0) {
        return Ok(String::new());
    }
    required_id(what, id, len)
}

/// Any OTLP value as text: strings as they are, scalars printed, bytes as hex, arrays and
/// maps as JSON.
pub fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) | None => match json(v) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
    }
}

fn json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::String(b.to_string()),
        Some(any_value::Value::IntValue(i)) => J::String(i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => J::String(d.to_string()),
        Some(any_value::Value::BytesValue(b)) => J::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, json)))
                .collect(),
        ),
        Some(any_value::Value::StringValueStrindex(_)) => J::Null,
    }
}

#[cfg(test)]
mod tests;
