//! The cases both backends run.

use std::collections::BTreeMap;

use tokio_stream::StreamExt;
use tonic::Code;
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::model::{
    HistogramValue, LogRow, MetricKind, MetricPoint, SpanRow, SpanStatus,
};
use warden_tls::{Role, Scope};

use super::{MIN, T0, agent, as_caller, window};
use crate::Storage;

const A: &str = "acme";
const B: &str = "beta";

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn log(time_ms: i64, service: &str, severity: i32, body: &str, ns: &str) -> LogRow {
    LogRow {
        time_ms,
        service: service.into(),
        severity_number: severity,
        severity_text: if severity >= 17 { "ERROR" } else { "INFO" }.into(),
        body: body.into(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        attributes: attrs(&[("thread", "main")]),
        resource: attrs(&[("service.name", service), ("k8s.namespace.name", ns)]),
    }
}

async fn query_logs(s: &Storage, q: tm::QueryLogsRequest) -> tm::QueryLogsResponse {
    s.query_logs_rpc(agent(q)).await.unwrap().into_inner()
}

fn bodies(r: &tm::QueryLogsResponse) -> Vec<&str> {
    r.records.iter().map(|r| r.body.as_str()).collect()
}

pub(super) async fn logs_are_selected_by_window_service_severity_text_and_resource(s: &Storage) {
    s.store_logs(
        A,
        &[
            log(T0, "checkout", 9, "order 1 placed", "shop"),
            log(
                T0 + MIN,
                "checkout",
                17,
                "Payment TIMEOUT for order 2",
                "shop",
            ),
            log(T0 + 2 * MIN, "cart", 13, "cart 7 slow", "shop"),
            log(
                T0 + 3 * MIN,
                "checkout",
                17,
                "payment timeout for order 3",
                "staging",
            ),
            log(T0 + 10 * MIN, "checkout", 9, "outside the window", "shop"),
        ],
    )
    .await
    .unwrap();
    let base = || tm::QueryLogsRequest {
        tenant_id: A.into(),
        window: window(T0, T0 + 10 * MIN),
        ..Default::default()
    };
    // Window (half-open), newest first, every field back.
    let all = query_logs(s, base()).await;
    assert_eq!(
        bodies(&all),
        [
            "payment timeout for order 3",
            "cart 7 slow",
            "Payment TIMEOUT for order 2",
            "order 1 placed"
        ]
    );
    assert!(!all.truncated);
    let r = &all.records[2];
    assert_eq!(r.time, Some(crate::util::ts(T0 + MIN)));
    assert_eq!(
        (
            r.service.as_str(),
            r.severity_number,
            r.severity_text.as_str()
        ),
        ("checkout", 17, "ERROR")
    );
    assert_eq!(r.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(r.span_id, "b7ad6b7169203331");
    assert_eq!(r.attributes.get("thread").map(String::as_str), Some("main"));
    assert_eq!(
        r.resource.get("k8s.namespace.name").map(String::as_str),
        Some("shop")
    );
    // Service and severity.
    let q = tm::QueryLogsRequest {
        service: "checkout".into(),
        min_severity: 17,
        ..base()
    };
    assert_eq!(
        bodies(&query_logs(s, q).await),
        ["payment timeout for order 3", "Payment TIMEOUT for order 2"]
    );
    // Text, case-insensitive, and resource attributes.
    let q = tm::QueryLogsRequest {
        contains: "payment timeout".into(),
        ..base()
    };
    assert_eq!(query_logs(s, q).await.records.len(), 2);
    let mut q = tm::QueryLogsRequest {
        contains: "payment timeout".into(),
        ..base()
    };
    q.resource
        .insert("k8s.namespace.name".into(), "shop".into());
    assert_eq!(
        bodies(&query_logs(s, q).await),
        ["Payment TIMEOUT for order 2"]
    );
    // The limit cuts, and says so.
    let q = tm::QueryLogsRequest { limit: 2, ..base() };
    let cut = query_logs(s, q).await;
    assert_eq!(cut.records.len(), 2);
    assert!(cut.truncated);
    let q = tm::QueryLogsRequest {
        limit: 1,
        contains: "order".into(),
        ..base()
    };
    let cut = query_logs(s, q).await;
    assert_eq!(bodies(&cut), ["payment timeout for order 3"]);
    assert!(cut.truncated);
}

pub(super) async fn log_patterns_put_new_and_grown_first_against_the_baseline(s: &Storage) {
    let mut rows = Vec::new();
    // Baseline [T0, T0+15m): steady requests, a few cache misses.
    for i in 0..30 {
        rows.push(log(
            T0 + i * 20_000,
            "api",
            9,
            &format!("request {i} served in {} ms", 10 + i),
            "shop",
        ));
    }
    for i in 0..3 {
        rows.push(log(
            T0 + i * 60_000,
            "api",
            13,
            &format!("cache miss for key user-{i}"),
            "shop",
        ));
    }
    // Window [T0+15m, T0+30m): the same requests, many cache misses, a new error.
    let w0 = T0 + 15 * MIN;
    for i in 0..30 {
        rows.push(log(
            w0 + i * 20_000,
            "api",
            9,
            &format!("request {i} served in {} ms", 20 + i),
            "shop",
        ));
    }
    for i in 0..15 {
        rows.push(log(
            w0 + i * 30_000,
            "api",
            13,
            &format!("cache miss for key user-{i}"),
            "shop",
        ));
    }
    for i in 0..4 {
        rows.push(log(
            w0 + i * 1000,
            "payments",
            17,
            &format!("upstream connect error after {} ms", 100 + i),
            "shop",
        ));
    }
    s.store_logs(A, &rows).await.unwrap();
    let r = s
        .log_patterns_rpc(agent(tm::LogPatternsRequest {
            tenant_id: A.into(),
            window: window(w0, w0 + 15 * MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.records, r.baseline_records), (49, 33));
    assert!(!r.truncated);
    let first = &r.patterns[0];
    assert!(
        first.template.starts_with("upstream connect error"),
        "{:?}",
        r.patterns
    );
    assert_eq!(
        (first.count, first.baseline_count, first.max_severity),
        (4, 0, 17)
    );
    assert_eq!(first.services, ["payments"]);
    assert_eq!(first.first_seen, Some(crate::util::ts(w0)));
    assert_eq!(first.last_seen, Some(crate::util::ts(w0 + 3000)));
    let second = &r.patterns[1];
    assert!(
        second.template.starts_with("cache miss"),
        "{:?}",
        r.patterns
    );
    assert_eq!((second.count, second.baseline_count), (15, 3));
    let third = &r.patterns[2];
    assert_eq!((third.count, third.baseline_count), (30, 30));
    // An explicit baseline: the window itself, so nothing is new.
    let same = s
        .log_patterns_rpc(agent(tm::LogPatternsRequest {
            tenant_id: A.into(),
            window: window(w0, w0 + 15 * MIN),
            baseline: window(w0, w0 + 15 * MIN),
            limit: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.patterns.len(), 1);
    assert!(same.truncated);
    assert_eq!(same.patterns[0].count, same.patterns[0].baseline_count);
}

fn point(
    time_ms: i64,
    name: &str,
    kind: MetricKind,
    labels: &[(&str, &str)],
    value: f64,
) -> MetricPoint {
    MetricPoint {
        time_ms,
        name: name.into(),
        kind,
        unit: "1".into(),
        description: format!("{name} described"),
        labels: attrs(labels),
        value,
        histogram: None,
    }
}

async fn query_metrics(s: &Storage, q: tm::QueryMetricsRequest) -> tm::QueryMetricsResponse {
    s.query_metrics_rpc(agent(q)).await.unwrap().into_inner()
}

pub(super) async fn metrics_are_listed_matched_rated_and_downsampled(s: &Storage) {
    let mut pts = Vec::new();
    // Two series of a counter, one sample every 10 s for 10 minutes: code 200 grows
    // 5/s, code 500 grows 1/s and resets at 5 minutes.
    for i in 0..60 {
        let t = T0 + i * 10_000;
        let svc = [("service.name", "checkout")];
        pts.push(point(
            t,
            "http_requests_total",
            MetricKind::Counter,
            &[svc[0], ("code", "200")],
            (i * 50) as f64,
        ));
        let v = if i < 30 { i * 10 } else { (i - 30) * 10 };
        pts.push(point(
            t,
            "http_requests_total",
            MetricKind::Counter,
            &[svc[0], ("code", "500")],
            v as f64,
        ));
        pts.push(point(
            t,
            "queue_depth",
            MetricKind::Gauge,
            &[("service.name", "worker")],
            i as f64,
        ));
    }
    // Stored in two calls: the series rows are shared.
    let (a, b) = pts.split_at(90);
    s.store_metrics(A, a).await.unwrap();
    s.store_metrics(A, b).await.unwrap();

    let list = s
        .list_metrics_rpc(agent(tm::ListMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 10 * MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str, u64, &str)> = list
        .metrics
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.kind.as_str(),
                m.series,
                m.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "http_requests_total",
                "counter",
                2,
                "http_requests_total described"
            ),
            ("queue_depth", "gauge", 1, "queue_depth described")
        ]
    );
    assert_eq!(list.metrics[0].unit, "1");
    for (service, prefix, expected) in [
        ("worker", "", 1),
        ("", "http_", 1),
        ("", "HTTP_", 0),
        ("checkout", "queue", 0),
    ] {
        let l = s
            .list_metrics_rpc(agent(tm::ListMetricsRequest {
                tenant_id: A.into(),
                window: window(T0, T0 + 10 * MIN),
                service: service.into(),
                name_prefix: prefix.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(l.metrics.len(), expected, "{service:?} {prefix:?}");
    }
    let l = s
        .list_metrics_rpc(agent(tm::ListMetricsRequest {
            tenant_id: A.into(),
            window: window(T0 + 20 * MIN, T0 + 30 * MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(l.metrics.is_empty(), "no series in a later window");

    // Rate (the counter's default), one point per minute, across the reset.
    let r = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 10 * MIN),
            name: "http_requests_total".into(),
            matchers: vec![tm::LabelMatcher {
                label: "code".into(),
                op: tm::label_matcher::Op::Re as i32,
                value: "5..".into(),
            }],
            max_points: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (r.kind.as_str(), r.aggregation, r.step_ms),
        ("counter", tm::Aggregation::Rate as i32, MIN)
    );
    assert_eq!(r.series.len(), 1);
    assert_eq!(
        r.series[0].labels.get("code").map(String::as_str),
        Some("500")
    );
    let values: Vec<f64> = r.series[0].points.iter().map(|p| p.value).collect();
    assert_eq!(values.len(), 10);
    // Minute 0 has 5 increases of 10; the others 6 (one spanning from the minute before);
    // minute 5 starts with the reset to 0, which counts 0.
    assert!((values[0] - 50.0 / 60.0).abs() < 1e-9, "{values:?}");
    assert!((values[1] - 1.0).abs() < 1e-9, "{values:?}");
    assert!((values[5] - 50.0 / 60.0).abs() < 1e-9, "{values:?}");
    assert!(
        values.iter().all(|v| *v >= 0.0),
        "a reset is never a negative rate"
    );

    // Max of the gauge, downsampled to 2 points of 5 minutes.
    let r = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 10 * MIN),
            name: "queue_depth".into(),
            aggregation: tm::Aggregation::Max as i32,
            max_points: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.step_ms, 5 * MIN);
    let pts: Vec<f64> = r.series[0].points.iter().map(|p| p.value).collect();
    assert_eq!(pts, [29.0, 59.0]);
    assert_eq!(r.series[0].points[0].time, Some(crate::util::ts(T0)));

    // max_series cuts by labels and says so; != matches the rest.
    let r = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 10 * MIN),
            name: "http_requests_total".into(),
            max_series: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.series.len(), 1);
    assert!(r.truncated);
    assert_eq!(
        r.series[0].labels.get("code").map(String::as_str),
        Some("200")
    );
    let r = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 10 * MIN),
            name: "http_requests_total".into(),
            matchers: vec![tm::LabelMatcher {
                label: "code".into(),
                op: tm::label_matcher::Op::Ne as i32,
                value: "200".into(),
            }],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.series.len(), 1);
    assert!(!r.truncated);
}

pub(super) async fn histograms_answer_p95_by_bucket_interpolation(s: &Storage) {
    let h = |counts: [u64; 3]| HistogramValue {
        count: counts.iter().sum(),
        sum: 1.0,
        bounds: vec![0.1, 1.0],
        bucket_counts: counts.to_vec(),
    };
    let mut pts = Vec::new();
    for (i, counts) in [[0, 0, 0], [100, 0, 0], [100, 100, 0]]
        .into_iter()
        .enumerate()
    {
        let mut p = point(
            T0 + i as i64 * MIN,
            "latency_seconds",
            MetricKind::Histogram,
            &[("service.name", "api")],
            1.0,
        );
        p.histogram = Some(h(counts));
        pts.push(p);
    }
    s.store_metrics(A, &pts).await.unwrap();
    // Steps of one minute from T0+1m: the first adds 100 fast, the second 100 slow.
    let r = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0 + MIN, T0 + 3 * MIN),
            name: "latency_seconds".into(),
            max_points: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.aggregation, tm::Aggregation::P95 as i32);
    let v: Vec<f64> = r.series[0].points.iter().map(|p| p.value).collect();
    assert_eq!(v.len(), 2);
    assert!((v[0] - 0.095).abs() < 1e-9, "{v:?}");
    assert!((v[1] - (0.1 + 0.9 * 0.95)).abs() < 1e-9, "{v:?}");
}

fn span(
    trace: &str,
    id: &str,
    parent: &str,
    service: &str,
    start_ms: i64,
    duration_us: u64,
) -> SpanRow {
    SpanRow {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service: service.into(),
        name: format!("op {id}"),
        kind: "server".into(),
        start_ms,
        duration_us,
        attributes: attrs(&[("http.route", "/pay")]),
        ..Default::default()
    }
}

const T1: &str = "11111111111111111111111111111111";
const T2: &str = "22222222222222222222222222222222";
const T3: &str = "33333333333333333333333333333333";

pub(super) async fn traces_come_as_trees_and_the_slowest_or_failed_are_found(s: &Storage) {
    let mut failed = span(
        T2,
        "2000000000000002",
        "2000000000000001",
        "payments",
        T0 + 2010,
        50_000,
    );
    failed.status = SpanStatus::Error;
    failed.status_message = "card declined".into();
    s.store_spans(
        A,
        &[
            span(T1, "1000000000000001", "", "frontend", T0, 900_000),
            span(
                T1,
                "1000000000000003",
                "1000000000000002",
                "db",
                T0 + 20,
                10_000,
            ),
            span(
                T1,
                "1000000000000002",
                "1000000000000001",
                "checkout",
                T0 + 10,
                500_000,
            ),
            span(
                T1,
                "1000000000000004",
                "ffffffffffffffff",
                "late",
                T0 + 30,
                1_000,
            ),
            span(T2, "2000000000000001", "", "frontend", T0 + 2000, 100_000),
            failed,
            span(T3, "3000000000000001", "", "batch", T0 + 5000, 5_000_000),
        ],
    )
    .await
    .unwrap();
    let t = s
        .get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: A.into(),
            trace_id: T1.to_uppercase(),
        }))
        .await
        .unwrap()
        .into_inner();
    let shape: Vec<(String, u32)> = t
        .spans
        .iter()
        .map(|s| (s.service.clone(), s.depth))
        .collect();
    assert_eq!(
        shape,
        [
            ("frontend".into(), 0),
            ("checkout".into(), 1),
            ("db".into(), 2),
            ("late".into(), 0)
        ]
    );
    assert_eq!(t.trace_id, T1);
    assert_eq!(t.spans[1].name, "op 1000000000000002");
    assert_eq!(t.spans[1].kind, "server");
    assert_eq!(
        t.spans[1].attributes.get("http.route").map(String::as_str),
        Some("/pay")
    );
    assert!(!t.truncated);
    let missing = s
        .get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: A.into(),
            trace_id: "44444444444444444444444444444444".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let find = |order: tm::TraceOrder, service: &str, limit: u32| tm::FindTracesRequest {
        tenant_id: A.into(),
        window: window(T0, T0 + MIN),
        service: service.into(),
        order: order as i32,
        limit,
    };
    let slow = s
        .find_traces_rpc(agent(find(tm::TraceOrder::Slowest, "", 2)))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = slow.traces.iter().map(|t| t.trace_id.as_str()).collect();
    assert_eq!(ids, [T3, T1]);
    assert!(slow.truncated);
    assert_eq!(slow.traces[1].root_service, "frontend");
    assert_eq!(slow.traces[1].spans, 4);
    assert_eq!(slow.traces[1].duration_us, 900_000);
    let failed = s
        .find_traces_rpc(agent(find(tm::TraceOrder::Failed, "", 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.traces.len(), 1);
    let f = &failed.traces[0];
    assert_eq!(
        (f.trace_id.as_str(), f.error_spans, f.first_error.as_str()),
        (T2, 1, "card declined")
    );
    assert_eq!(f.root_name, "op 2000000000000001");
    // A service narrows to the traces it took part in.
    let db = s
        .find_traces_rpc(agent(find(tm::TraceOrder::Slowest, "db", 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        db.traces
            .iter()
            .map(|t| t.trace_id.as_str())
            .collect::<Vec<_>>(),
        [T1]
    );
}

pub(super) async fn one_tenant_never_reads_anothers_signals(s: &Storage) {
    s.store_logs(A, &[log(T0, "checkout", 17, "acme only", "shop")])
        .await
        .unwrap();
    s.store_metrics(A, &[point(T0, "acme_metric", MetricKind::Gauge, &[], 1.0)])
        .await
        .unwrap();
    s.store_spans(A, &[span(T1, "1000000000000001", "", "frontend", T0, 10)])
        .await
        .unwrap();
    s.store_logs(B, &[log(T0, "checkout", 17, "beta only", "shop")])
        .await
        .unwrap();

    let logs = query_logs(
        s,
        tm::QueryLogsRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(bodies(&logs), ["beta only"]);
    let p = s
        .log_patterns_rpc(agent(tm::LogPatternsRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.records, 1);
    let m = s
        .list_metrics_rpc(agent(tm::ListMetricsRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(m.metrics.is_empty());
    let q = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            name: "acme_metric".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(q.series.is_empty());
    let t = s
        .get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: B.into(),
            trace_id: T1.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(t.code(), Code::NotFound);
    let f = s
        .find_traces_rpc(agent(tm::FindTracesRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(f.traces.is_empty());

    // A caller scoped to B cannot name A (the role check aside, the tenant check holds).
    let scoped = as_caller(
        tm::QueryLogsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        },
        Role::AgentService,
        Scope::from_tenants(vec![B.into()]),
    );
    assert_eq!(
        s.query_logs_rpc(scoped).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, needle: &str) {
    let err = r.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains(needle),
        "{:?} lacks {needle:?}",
        err.message()
    );
}

pub(super) async fn bad_input_is_refused_with_a_reason_and_stores_nothing(s: &Storage) {
    // One bad row in a batch: nothing of the batch is stored.
    let mut rows = vec![
        log(T0, "a", 9, "good", "shop"),
        log(T0, "a", 9, "good", "shop"),
    ];
    rows[1].severity_number = 99;
    refused(s.store_logs(A, &rows).await, "logs[1]: severity_number 99");
    let mut pts = vec![
        point(T0, "m", MetricKind::Gauge, &[], 1.0),
        point(T0, "m", MetricKind::Gauge, &[], f64::NAN),
    ];
    refused(
        s.store_metrics(A, &pts).await,
        "metrics[1]: value is not a finite number",
    );
    pts[1] = point(T0, "m", MetricKind::Histogram, &[], 1.0);
    pts[1].histogram = Some(HistogramValue {
        bounds: vec![1.0],
        bucket_counts: vec![1],
        ..Default::default()
    });
    refused(
        s.store_metrics(A, &pts).await,
        "metrics[1]: histogram has 1 bounds and 1 bucket counts",
    );
    let spans = vec![
        span(T1, "1000000000000001", "", "x", T0, 1),
        span("xyz", "1000000000000002", "", "x", T0, 1),
    ];
    refused(
        s.store_spans(A, &spans).await,
        "spans[1]: trace_id must be 32 hexadecimal characters",
    );
    refused(s.store_logs("not a tenant!", &[]).await, "tenant_id");
    let all = query_logs(
        s,
        tm::QueryLogsRequest {
            tenant_id: A.into(),
            window: window(T0 - MIN, T0 + MIN),
            ..Default::default()
        },
    )
    .await;
    assert!(
        all.records.is_empty(),
        "nothing of a refused batch is stored"
    );
    let m = s
        .list_metrics_rpc(agent(tm::ListMetricsRequest {
            tenant_id: A.into(),
            window: window(T0 - MIN, T0 + MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(m.metrics.is_empty());

    // Queries: windows, limits, regexes, trace ids.
    let q = |window| tm::QueryLogsRequest {
        tenant_id: A.into(),
        window,
        ..Default::default()
    };
    refused(s.query_logs_rpc(agent(q(None))).await, "window is required");
    refused(
        s.query_logs_rpc(agent(q(window(T0, T0)))).await,
        "window.since must be before window.until",
    );
    refused(
        s.query_logs_rpc(agent(q(window(T0, T0 + 40 * 24 * 60 * MIN))))
            .await,
        "at most 31 days",
    );
    refused(
        s.query_logs_rpc(agent(tm::QueryLogsRequest {
            limit: 5000,
            ..q(window(T0, T0 + 1))
        }))
        .await,
        "limit is 5000; at most 1000",
    );
    refused(
        s.query_logs_rpc(agent(tm::QueryLogsRequest {
            min_severity: 30,
            ..q(window(T0, T0 + 1))
        }))
        .await,
        "min_severity 30",
    );
    refused(
        s.log_patterns_rpc(agent(tm::LogPatternsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + MIN),
            baseline: window(T0 + MIN, T0),
            ..Default::default()
        }))
        .await,
        "baseline.since must be before baseline.until",
    );
    let mq = |matchers, max_points| tm::QueryMetricsRequest {
        tenant_id: A.into(),
        window: window(T0, T0 + MIN),
        name: "m".into(),
        matchers,
        max_points,
        ..Default::default()
    };
    let bad_re = vec![tm::LabelMatcher {
        label: "code".into(),
        op: tm::label_matcher::Op::Re as i32,
        value: "5(".into(),
    }];
    refused(
        s.query_metrics_rpc(agent(mq(bad_re, 0))).await,
        "matchers[0] (label \"code\"): the regular expression does not compile",
    );
    refused(
        s.query_metrics_rpc(agent(mq(vec![], 501))).await,
        "max_points is 501; at most 500",
    );
    refused(
        s.query_metrics_rpc(agent(tm::QueryMetricsRequest {
            name: String::new(),
            ..mq(vec![], 0)
        }))
        .await,
        "name is required",
    );
    refused(
        s.get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: A.into(),
            trace_id: "abc".into(),
        }))
        .await,
        "trace_id must be 32 hexadecimal characters",
    );
    refused(
        s.find_traces_rpc(agent(tm::FindTracesRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 1),
            limit: 101,
            ..Default::default()
        }))
        .await,
        "limit is 101; at most 100",
    );
}

pub(super) async fn retention_prunes_old_rows_only(s: &Storage) {
    s.store_logs(
        A,
        &[
            log(T0, "a", 9, "old", "shop"),
            log(T0 + MIN, "a", 9, "new", "shop"),
        ],
    )
    .await
    .unwrap();
    s.store_metrics(
        A,
        &[
            point(T0, "m", MetricKind::Gauge, &[], 1.0),
            point(T0 + MIN, "m", MetricKind::Gauge, &[], 2.0),
        ],
    )
    .await
    .unwrap();
    s.store_metrics(A, &[point(T0, "gone", MetricKind::Gauge, &[], 1.0)])
        .await
        .unwrap();
    s.store_spans(
        A,
        &[
            span(T1, "1000000000000001", "", "x", T0, 1),
            span(T2, "2000000000000001", "", "x", T0 + MIN, 1),
        ],
    )
    .await
    .unwrap();
    s.store_logs(B, &[log(T0, "a", 9, "beta old", "shop")])
        .await
        .unwrap();
    assert_eq!(s.prune_signals(A, T0 + MIN).await.unwrap(), 4);
    let logs = query_logs(
        s,
        tm::QueryLogsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 2 * MIN),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(bodies(&logs), ["new"]);
    let m = s
        .list_metrics_rpc(agent(tm::ListMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + 2 * MIN),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        m.metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["m"],
        "a series without points goes"
    );
    assert_eq!(
        s.get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: A.into(),
            trace_id: T1.into()
        }))
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    // The other tenant is untouched.
    let b = query_logs(
        s,
        tm::QueryLogsRequest {
            tenant_id: B.into(),
            window: window(T0, T0 + MIN),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(bodies(&b), ["beta old"]);
}

pub(super) async fn only_the_agent_service_may_query(s: &Storage) {
    s.store_logs(A, &[log(T0, "a", 9, "hidden", "shop")])
        .await
        .unwrap();
    for role in [Role::Agent, Role::Admin, Role::Gateway] {
        let req = as_caller(
            tm::QueryLogsRequest {
                tenant_id: A.into(),
                window: window(T0, T0 + MIN),
                ..Default::default()
            },
            role,
            Scope::Platform,
        );
        let err = s.query_logs_rpc(req).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role}");
        assert!(!err.message().contains("hidden"));
    }
    let no_identity = tonic::Request::new(tm::GetTraceRequest {
        tenant_id: A.into(),
        trace_id: T1.into(),
    });
    assert_eq!(
        s.get_trace_rpc(no_identity).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

pub(super) async fn tenant_key_rotation_and_shredding_cover_the_signals(s: &Storage) {
    use warden_proto::storage::v1::keys_server::Keys;
    store_secrets(s).await;
    let admin = |tenant: &str| {
        as_caller(
            warden_proto::storage::v1::RotateTenantKeyRequest {
                tenant_id: tenant.into(),
            },
            Role::Admin,
            Scope::Platform,
        )
    };
    let mut progress = s.rotate_tenant_key(admin(A)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(p) = progress.next().await {
        last = Some(p.unwrap());
    }
    let last = last.unwrap();
    assert!(last.finished);
    // Log, series meta and labels, histogram, span: every sealed value re-encrypted.
    assert_eq!(last.done, 5, "{last:?}");
    // The old key is destroyed, and every value still opens under the new one.
    secrets_read_back(s).await;

    let shred = as_caller(
        warden_proto::storage::v1::ShredTenantRequest {
            tenant_id: A.into(),
        },
        Role::Admin,
        Scope::Platform,
    );
    s.shred_tenant(shred).await.unwrap();
    for table in ["log_records", "metric_series", "metric_points", "spans"] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(A)
        .fetch_one(&s.inner.db.pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}

/// Strings that must never be stored in the clear.
pub(super) const SECRETS: [&str; 3] = [
    "sk_live_LOGBODY51c7e2a9",
    "sk_live_LABELVAL8d31f0b4",
    "sk_live_SPANATTR0e9a7c13",
];

pub(super) async fn store_secrets(s: &Storage) {
    s.store_logs(
        A,
        &[log(
            T0,
            "checkout",
            17,
            &format!("charge failed key={}", SECRETS[0]),
            "shop",
        )],
    )
    .await
    .unwrap();
    let mut p = point(
        T0,
        "api_calls",
        MetricKind::Histogram,
        &[("api_key", SECRETS[1])],
        3.0,
    );
    p.histogram = Some(HistogramValue {
        count: 1,
        sum: 3.0,
        bounds: vec![1.0],
        bucket_counts: vec![0, 1],
    });
    s.store_metrics(A, &[p]).await.unwrap();
    let mut sp = span(T1, "1000000000000001", "", "checkout", T0, 10);
    sp.attributes.insert("auth.token".into(), SECRETS[2].into());
    s.store_spans(A, &[sp]).await.unwrap();
}

pub(super) async fn secrets_read_back(s: &Storage) {
    let logs = query_logs(
        s,
        tm::QueryLogsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + MIN),
            contains: "charge failed".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(logs.records[0].body.contains(SECRETS[0]));
    let m = query_metrics(
        s,
        tm::QueryMetricsRequest {
            tenant_id: A.into(),
            window: window(T0, T0 + MIN),
            name: "api_calls".into(),
            aggregation: tm::Aggregation::Avg as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        m.series[0].labels.get("api_key").map(String::as_str),
        Some(SECRETS[1])
    );
    let t = s
        .get_trace_rpc(agent(tm::GetTraceRequest {
            tenant_id: A.into(),
            trace_id: T1.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        t.spans[0].attributes.get("auth.token").map(String::as_str),
        Some(SECRETS[2])
    );
}
