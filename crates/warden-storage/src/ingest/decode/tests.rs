#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::*;

const NANOS: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        ..Default::default()
    }
}

fn res() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "checkout"),
            kv("k8s.namespace.name", "shop"),
            kv("deployment.environment", "prod"),
            kv("tenant.id", "someone-else"),
        ],
        ..Default::default()
    })
}

fn logs_req(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: res(),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn record(body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: NANOS,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: s(body),
        trace_id: vec![0xAB; 16],
        span_id: vec![0x01; 8],
        attributes: vec![kv("http.route", "/pay")],
        ..Default::default()
    }
}

#[test]
fn a_log_record_keeps_its_resource_severity_and_lowercase_ids() {
    let d = logs(
        &logs_req(vec![record("payment timeout")]),
        &ItemLimits::default(),
    );
    assert_eq!(d.rejected, 0);
    let r = &d.rows[0];
    assert_eq!(r.time_ms, 1_767_225_600_000);
    assert_eq!(r.service, "checkout");
    assert_eq!((r.severity_number, r.severity_text.as_str()), (17, "ERROR"));
    assert_eq!(r.body, "payment timeout");
    assert_eq!(r.trace_id, "ab".repeat(16));
    assert_eq!(r.span_id, "01".repeat(8));
    assert_eq!(r.attributes["http.route"], "/pay");
    assert_eq!(r.resource["k8s.namespace.name"], "shop");
    assert_eq!(r.resource["deployment.environment"], "prod");
    // A tenant claimed in the payload is just an attribute.
    assert_eq!(r.resource["tenant.id"], "someone-else");
}

#[test]
fn bad_log_records_are_rejected_one_by_one_with_reasons() {
    let mut no_time = record("a");
    no_time.time_unix_nano = 0;
    let mut observed = record("observed only");
    observed.time_unix_nano = 0;
    observed.observed_time_unix_nano = NANOS;
    let mut bad_id = record("b");
    bad_id.trace_id = vec![1, 2, 3];
    let big = record(&"x".repeat(100));
    let mut many = record("c");
    many.attributes = (0..5).map(|i| kv(&format!("k{i}"), "v")).collect();
    let mut zero_ids = record("zero ids are absent ids");
    zero_ids.trace_id = vec![0; 16];
    zero_ids.span_id = vec![];
    let lim = ItemLimits {
        max_value_bytes: 50,
        max_attributes: 4,
    };
    let d = logs(
        &logs_req(vec![no_time, observed, bad_id, big, many, zero_ids]),
        &lim,
    );
    assert_eq!(d.rows.len(), 2);
    assert_eq!(d.rows[0].body, "observed only");
    assert_eq!(d.rows[1].trace_id, "");
    assert_eq!(d.rejected, 4);
    let msg = d.message("log records");
    assert!(msg.starts_with("4 of 6 log records rejected: "), "{msg}");
    assert!(msg.contains("without time_unix_nano"), "{msg}");
    assert!(msg.contains("trace_id must be 16 bytes"), "{msg}");
    assert!(msg.contains("100 bytes exceeds the limit of 50"), "{msg}");
    assert_eq!(d.reasons.len(), 3, "reasons are bounded");
}

#[test]
fn a_resource_without_a_service_name_is_unknown_service() {
    let mut req = logs_req(vec![record("x")]);
    req.resource_logs[0].resource = None;
    let d = logs(&req, &ItemLimits::default());
    assert_eq!(d.rows[0].service, "unknown_service");
    assert!(d.rows[0].resource.is_empty());
}

#[test]
fn non_string_values_are_printed() {
    let v = |value| AnyValue { value: Some(value) };
    assert_eq!(text(&v(any_value::Value::IntValue(-3))), "-3");
    assert_eq!(text(&v(any_value::Value::BoolValue(true))), "true");
    assert_eq!(
        text(&v(any_value::Value::BytesValue(vec![0xde, 0xad]))),
        "dead"
    );
    let arr = v(any_value::Value::ArrayValue(ArrayValue {
        values: vec![s("a").unwrap(), v(any_value::Value::DoubleValue(1.5))],
    }));
    assert_eq!(text(&arr), r#"["a","1.5"]"#);
}

fn metrics_req(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: res(),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn number(v: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: NANOS,
        value: Some(number_data_point::Value::AsDouble(v)),
        attributes: vec![kv("route", "/pay"), kv("k8s.namespace.name", "point-wins")],
        ..Default::default()
    }
}

fn metric(name: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: "s".into(),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn gauges_sums_and_histograms_become_points_with_resource_labels() {
    let d = metrics(
        &metrics_req(vec![
            metric(
                "queue_depth",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(3.0)],
                }),
            ),
            metric(
                "requests",
                metric::Data::Sum(Sum {
                    data_points: vec![number(10.0)],
                    is_monotonic: true,
                    aggregation_temporality: 2,
                }),
            ),
            metric(
                "in_flight",
                metric::Data::Sum(Sum {
                    data_points: vec![number(-1.0)],
                    is_monotonic: false,
                    aggregation_temporality: 2,
                }),
            ),
            metric(
                "latency",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: NANOS,
                        count: 3,
                        sum: Some(0.7),
                        explicit_bounds: vec![0.1, 0.5],
                        bucket_counts: vec![1, 1, 1],
                        ..Default::default()
                    }],
                    aggregation_temporality: 2,
                }),
            ),
        ]),
        &ItemLimits::default(),
    );
    assert_eq!(d.rejected, 0, "{:?}", d.reasons);
    let kinds: Vec<_> = d.rows.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("queue_depth", MetricKind::Gauge),
            ("requests", MetricKind::Counter),
            ("in_flight", MetricKind::Sum),
            ("latency", MetricKind::Histogram)
        ]
    );
    let q = &d.rows[0];
    assert_eq!(
        (q.value, q.time_ms, q.unit.as_str()),
        (3.0, 1_767_225_600_000, "s")
    );
    assert_eq!(q.labels["service.name"], "checkout");
    assert_eq!(q.labels["route"], "/pay");
    assert_eq!(q.labels["k8s.namespace.name"], "point-wins");
    let h = d.rows[3].histogram.as_ref().unwrap();
    assert_eq!((h.count, h.sum, h.bucket_counts.len()), (3, 0.7, 3));
}

#[test]
fn summaries_exponential_histograms_and_bad_points_are_rejected_and_counted() {
    let mut no_time = number(1.0);
    no_time.time_unix_nano = 0;
    let d = metrics(
        &metrics_req(vec![
            metric(
                "ok",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(1.0), no_time],
                }),
            ),
            metric(
                "rpc_latency",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint::default(), SummaryDataPoint::default()],
                }),
            ),
            metric(
                "exp",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint::default()],
                    aggregation_temporality: 2,
                }),
            ),
            metric(
                "bad_buckets",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: NANOS,
                        explicit_bounds: vec![1.0],
                        bucket_counts: vec![1],
                        ..Default::default()
                    }],
                    aggregation_temporality: 2,
                }),
            ),
        ]),
        &ItemLimits {
            max_value_bytes: 1024,
            max_attributes: 128,
        },
    );
    assert_eq!(d.rows.len(), 1);
    assert_eq!(d.rejected, 5);
    let msg = d.message("data points");
    assert!(msg.contains("data point without time"), "{msg}");
    assert!(msg.contains("summaries are not supported"), "{msg}");
    assert!(
        msg.contains("exponential histograms are not supported"),
        "{msg}"
    );

    // Queries read sums and histograms as cumulative: delta points are refused by name.
    let delta = metrics(
        &metrics_req(vec![metric(
            "requests_delta",
            metric::Data::Sum(Sum {
                data_points: vec![number(3.0)],
                aggregation_temporality: 1,
                is_monotonic: true,
            }),
        )]),
        &ItemLimits {
            max_value_bytes: 1024,
            max_attributes: 128,
        },
    );
    assert!(delta.rows.is_empty());
    let msg = delta.message("data points");
    assert!(msg.contains("delta temporality is not supported"), "{msg}");
}

fn spans_req(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: res(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(kind: i32, code: i32) -> Span {
    Span {
        trace_id: vec![0x0F; 16],
        span_id: vec![0xA0; 8],
        parent_span_id: vec![],
        name: "POST /pay".into(),
        kind,
        start_time_unix_nano: NANOS,
        end_time_unix_nano: NANOS + 2_500_000,
        status: Some(Status {
            message: "boom".into(),
            code,
        }),
        ..Default::default()
    }
}

#[test]
fn spans_keep_ids_kind_status_and_duration() {
    let mut child = span(3, 0);
    child.parent_span_id = vec![0xA0; 8];
    child.span_id = vec![0xB1; 8];
    let d = spans(&spans_req(vec![span(2, 2), child]), &ItemLimits::default());
    assert_eq!(d.rejected, 0, "{:?}", d.reasons);
    let root = &d.rows[0];
    assert_eq!(root.trace_id, "0f".repeat(16));
    assert_eq!(root.span_id, "a0".repeat(8));
    assert_eq!(root.parent_span_id, "");
    assert_eq!(
        (root.kind.as_str(), root.status),
        ("server", SpanStatus::Error)
    );
    assert_eq!((root.start_ms, root.duration_us), (1_767_225_600_000, 2500));
    assert_eq!(root.service, "checkout");
    assert_eq!(d.rows[1].parent_span_id, "a0".repeat(8));
    assert_eq!(d.rows[1].kind, "client");
}

#[test]
fn spans_with_bad_ids_times_kinds_or_statuses_are_rejected() {
    let mut zero_trace = span(1, 0);
    zero_trace.trace_id = vec![0; 16];
    let mut short_span = span(1, 0);
    short_span.span_id = vec![1; 4];
    let mut backwards = span(1, 0);
    backwards.end_time_unix_nano = NANOS - 1;
    let mut no_start = span(1, 0);
    no_start.start_time_unix_nano = 0;
    let d = spans(
        &spans_req(vec![
            zero_trace,
            short_span,
            backwards,
            no_start,
            span(9, 0),
            span(1, 7),
            span(1, 1),
        ]),
        &ItemLimits::default(),
    );
    assert_eq!((d.rows.len(), d.rejected), (1, 6));
    assert_eq!(d.rows[0].status, SpanStatus::Ok);
}

#[test]
fn a_resource_over_the_attribute_limit_rejects_all_its_items() {
    let mut req = logs_req(vec![record("a"), record("b")]);
    if let Some(r) = req.resource_logs[0].resource.as_mut() {
        r.attributes = (0..10).map(|i| kv(&format!("k{i}"), "v")).collect();
    }
    let d = logs(
        &req,
        &ItemLimits {
            max_value_bytes: 1024,
            max_attributes: 5,
        },
    );
    assert_eq!((d.rows.len(), d.rejected), (0, 2));
    assert!(
        d.message("log records")
            .contains("resource has 10 attributes")
    );
}
