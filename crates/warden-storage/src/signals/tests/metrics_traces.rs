//! The metric and trace cases both backends run.

use tonic::Code;
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::model::{HistogramValue, MetricKind, SpanStatus};

use super::cases::{T1, T2, T3, point, query_metrics, span};
use super::{MIN, T0, agent, window};
use crate::Storage;

const A: &str = "acme";

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
