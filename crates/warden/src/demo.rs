//! The demo incident `warden up` loads on first run, through the same ingest paths a
//! customer's collectors use: a checkout service whose new deployment (2.4.1) shortened
//! the payment timeout, so payment calls fail, latency rises, pods restart, and the
//! config change that did it sits in a ConfigMap. Times are relative to `now`, so the
//! tour's investigation finds it in its incident window.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

const MINUTE_NS: u64 = 60_000_000_000;
const SECOND_NS: u64 = 1_000_000_000;

/// When the bad deployment rolled out, before `now`.
pub const DEPLOYED_MINUTES_AGO: u64 = 20;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str, version: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", service),
            kv("service.version", version),
            kv("deployment.environment", "production"),
            kv("k8s.namespace.name", "shop"),
            kv("k8s.deployment.name", service),
            kv("k8s.cluster.name", "prod-eu-1"),
        ],
        ..Default::default()
    })
}

/// Log records of checkout and payments over the last 40 minutes.
pub fn logs(now_ns: u64) -> ExportLogsServiceRequest {
    let deployed = now_ns - DEPLOYED_MINUTES_AGO * MINUTE_NS;
    let mut checkout = Vec::new();
    let mut payments = Vec::new();
    let rec = |t: u64, sev: i32, text: &str, body: String| LogRecord {
        time_unix_nano: t,
        observed_time_unix_nano: t,
        severity_number: sev,
        severity_text: text.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        ..Default::default()
    };
    for i in 0..80u64 {
        let t = now_ns - 40 * MINUTE_NS + i * 30 * SECOND_NS;
        let order = 81_000 + i;
        if t < deployed {
            checkout.push(rec(
                t,
                9,
                "INFO",
                format!("order {order} paid in 412ms via payments"),
            ));
        } else {
            checkout.push(rec(
                t,
                17,
                "ERROR",
                format!("payment call failed for order {order}: context deadline exceeded after 3s (user=jane.doe{i}@example.com)"),
            ));
            checkout.push(rec(
                t + SECOND_NS,
                13,
                "WARN",
                format!(
                    "retrying payment for order {order} attempt=2 host=10.0.4.{}",
                    i % 20
                ),
            ));
        }
        payments.push(rec(
            t,
            9,
            "INFO",
            format!("charge authorized in {}ms", 2800 + (i * 37) % 900),
        ));
    }
    checkout.push(rec(
        deployed,
        9,
        "INFO",
        "starting checkout 2.4.1 with PAYMENT_TIMEOUT=3s db=postgres://app:s3cr3t-pass@db.internal:5432/orders".into(),
    ));
    let scope = |records| ScopeLogs {
        log_records: records,
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: resource("checkout", "2.4.1"),
                scope_logs: vec![scope(checkout)],
                ..Default::default()
            },
            ResourceLogs {
                resource: resource("payments", "1.9.0"),
                scope_logs: vec![scope(payments)],
                ..Default::default()
            },
        ],
    }
}

/// Request counts by status, request latency, and pod restarts, one point a minute.
pub fn metrics(now_ns: u64) -> ExportMetricsServiceRequest {
    let deployed = now_ns - DEPLOYED_MINUTES_AGO * MINUTE_NS;
    let start = now_ns - 40 * MINUTE_NS;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    let (mut latency, mut restarts) = (Vec::new(), Vec::new());
    let (mut ok_total, mut failed_total, mut restart_total) = (0.0, 0.0, 0.0);
    let mut buckets_total = vec![0u64; 7];
    let mut latency_sum = 0.0;
    let bounds = vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    for m in 0..=40u64 {
        let t = start + m * MINUTE_NS;
        let bad = t >= deployed;
        ok_total += if bad { 420.0 } else { 600.0 };
        failed_total += if bad { 180.0 } else { 2.0 };
        if bad && m % 5 == 0 {
            restart_total += 1.0;
        }
        let point = |code: &str, v: f64| NumberDataPoint {
            attributes: vec![
                kv("http.response.status_code", code),
                kv("http.route", "/checkout"),
            ],
            start_time_unix_nano: start,
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        ok.push(point("200", ok_total));
        failed.push(point("502", failed_total));
        let buckets: Vec<u64> = if bad {
            vec![10, 40, 120, 150, 120, 160, 0]
        } else {
            vec![120, 300, 140, 30, 8, 2, 0]
        };
        for (total, n) in buckets_total.iter_mut().zip(&buckets) {
            *total += n;
        }
        latency_sum += if bad { 1250.0 } else { 190.0 };
        latency.push(HistogramDataPoint {
            attributes: vec![kv("http.route", "/checkout")],
            start_time_unix_nano: start,
            time_unix_nano: t,
            count: buckets_total.iter().sum(),
            sum: Some(latency_sum),
            bucket_counts: buckets_total.clone(),
            explicit_bounds: bounds.clone(),
            ..Default::default()
        });
        restarts.push(NumberDataPoint {
            attributes: vec![kv("k8s.pod.name", "checkout-7d9f6c-x2x1")],
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsDouble(restart_total)),
            ..Default::default()
        });
    }
    let mut requests = ok;
    requests.extend(failed);
    let metrics = vec![
        Metric {
            name: "http.server.request.count".into(),
            unit: "{request}".into(),
            description: "HTTP requests served".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: requests,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.request.duration".into(),
            unit: "s".into(),
            description: "HTTP request latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: latency,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
        Metric {
            name: "k8s.container.restarts".into(),
            unit: "{restart}".into(),
            description: "Container restarts".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: restarts,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("checkout", "2.4.1"),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Checkout requests with a payments child span: fast before the deployment, failing
/// at the 3 s deadline after it.
pub fn traces(now_ns: u64) -> ExportTraceServiceRequest {
    let deployed = now_ns - DEPLOYED_MINUTES_AGO * MINUTE_NS;
    let (mut checkout, mut payments) = (Vec::new(), Vec::new());
    for i in 0..30u64 {
        let start = now_ns - 35 * MINUTE_NS + i * 70 * SECOND_NS;
        let bad = start >= deployed;
        let trace_id = (0xabc0_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(i))
            .to_be_bytes()
            .to_vec();
        let root_id = (0x1000 + i).to_be_bytes().to_vec();
        let child_id = (0x2000 + i).to_be_bytes().to_vec();
        let dur = if bad { 3_050_000_000 } else { 430_000_000 };
        let st = |failed: bool, msg: &str| {
            Some(Status {
                code: if failed {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Ok
                } as i32,
                message: msg.into(),
            })
        };
        checkout.push(Span {
            trace_id: trace_id.clone(),
            span_id: root_id.clone(),
            name: "POST /checkout".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur + 20_000_000,
            attributes: vec![
                kv("http.route", "/checkout"),
                kv("http.response.status_code", if bad { "502" } else { "200" }),
            ],
            status: st(bad, if bad { "payment failed" } else { "" }),
            ..Default::default()
        });
        payments.push(Span {
            trace_id,
            span_id: child_id,
            parent_span_id: root_id,
            name: "payments.Charge".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: start + 10_000_000,
            end_time_unix_nano: start + 10_000_000 + dur,
            attributes: vec![kv("rpc.system", "grpc"), kv("peer.service", "payments")],
            status: st(bad, if bad { "context deadline exceeded" } else { "" }),
            ..Default::default()
        });
    }
    let rs = |service: &str, version: &str, spans| ResourceSpans {
        resource: resource(service, version),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            rs("checkout", "2.4.1", checkout),
            rs("checkout-client", "2.4.1", payments),
        ],
    }
}

/// The cluster as `kubectl get deployments,pods,events -n shop -o json` prints it.
pub fn cluster_json(now_s: u64) -> String {
    let at = |ago_min: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(now_s - ago_min * 60),
        )
        .to_string()
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "checkout", "namespace": "shop", "uid": "5f1c-checkout", "resourceVersion": "88121",
                          "annotations": {"deployment.kubernetes.io/revision": "14"}},
             "spec": {"replicas": 3, "template": {"spec": {"containers": [
                 {"name": "checkout", "image": "registry.example.com/shop/checkout:2.4.1",
                  "envFrom": [{"configMapRef": {"name": "checkout-config"}}]}]}}},
             "status": {"replicas": 3, "readyReplicas": 1, "updatedReplicas": 3, "unavailableReplicas": 2}},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "checkout-7d9f6c-x2x1", "namespace": "shop", "uid": "9a2e-pod"},
             "status": {"phase": "Running", "containerStatuses": [
                 {"name": "checkout", "restartCount": 4, "ready": false,
                  "lastState": {"terminated": {"reason": "Error", "exitCode": 2}}}]}},
            {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "checkout.17e1", "namespace": "shop"},
             "type": "Normal", "reason": "ScalingReplicaSet",
             "involvedObject": {"kind": "Deployment", "name": "checkout", "namespace": "shop"},
             "message": "Scaled up replica set checkout-7d9f6c to 3", "count": 1,
             "lastTimestamp": at(DEPLOYED_MINUTES_AGO)},
            {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "checkout-7d9f6c-x2x1.17e9", "namespace": "shop"},
             "type": "Warning", "reason": "BackOff",
             "involvedObject": {"kind": "Pod", "name": "checkout-7d9f6c-x2x1", "namespace": "shop"},
             "message": "Back-off restarting failed container checkout in pod checkout-7d9f6c-x2x1", "count": 4,
             "lastTimestamp": at(3)}
        ]
    })
    .to_string()
}

/// The ConfigMap before and after the deployment (the second shortens the timeout).
pub fn config_snapshots() -> [(&'static str, String); 2] {
    [
        ("before", "PAYMENT_TIMEOUT: 30s\nPAYMENT_RETRIES: \"3\"\nDB_PASSWORD: s3cr3t-pass\nFEATURE_NEW_CART: \"false\"\n".into()),
        ("after", "PAYMENT_TIMEOUT: 3s\nPAYMENT_RETRIES: \"1\"\nDB_PASSWORD: s3cr3t-pass\nFEATURE_NEW_CART: \"true\"\n".into()),
    ]
}

/// A CPU profile of checkout (pprof), as Go's runtime/pprof writes it: most time in the
/// payment client's retry loop and in TLS handshakes it keeps redoing.
pub fn cpu_profile(now_ns: u64) -> Vec<u8> {
    use prost::Message;
    use warden_telemetry::pprof::wire::{Function, Line, Location, Profile, Sample, ValueType};
    let strings: Vec<String> = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main.main",
        "checkout.(*Server).Checkout",
        "payments.(*Client).Charge",
        "payments.(*Client).retry",
        "crypto/tls.(*Conn).Handshake",
        "encoding/json.Marshal",
        "checkout/server.go",
        "payments/client.go",
        "crypto/tls/conn.go",
        "encoding/json/encode.go",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let functions: Vec<Function> = [(5, 11), (6, 11), (7, 12), (8, 12), (9, 13), (10, 14)]
        .iter()
        .enumerate()
        .map(|(i, (name, file))| Function {
            id: i as u64 + 1,
            name: *name,
            system_name: *name,
            filename: *file,
            start_line: 10,
        })
        .collect();
    let location = |id: u64| Location {
        id,
        line: vec![Line {
            function_id: id,
            line: 42,
        }],
        ..Default::default()
    };
    // Leaf first, as pprof orders a stack.
    let sample = |stack: &[u64], n: i64| Sample {
        location_id: stack.to_vec(),
        value: vec![n, n * 10_000_000],
        ..Default::default()
    };
    Profile {
        sample_type: vec![
            ValueType { r#type: 1, unit: 2 },
            ValueType { r#type: 3, unit: 4 },
        ],
        sample: vec![
            sample(&[5, 4, 3, 2, 1], 610),
            sample(&[4, 3, 2, 1], 190),
            sample(&[6, 2, 1], 80),
            sample(&[2, 1], 40),
        ],
        location: (1..=6).map(location).collect(),
        function: functions,
        string_table: strings,
        time_nanos: now_ns as i64,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { r#type: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    }
    .encode_to_vec()
}

/// Sends the demo incident through storage's ingest listener on `channel` (an ingest
/// identity's): OTLP logs, metrics and traces, the profile, the cluster state and the
/// ConfigMap before and after the deployment. Returns how many items were accepted.
pub async fn seed(channel: tonic::transport::Channel, now_ns: u64) -> Result<u64, tonic::Status> {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use warden_proto::telemetry::v1 as tm;
    use warden_proto::telemetry::v1::ingest_client::IngestClient;
    let ts = |ns: u64| {
        Some(prost_types::Timestamp {
            seconds: (ns / 1_000_000_000) as i64,
            nanos: 0,
        })
    };
    let mut sent = 0u64;
    LogsServiceClient::new(channel.clone())
        .export(logs(now_ns))
        .await?;
    MetricsServiceClient::new(channel.clone())
        .export(metrics(now_ns))
        .await?;
    TraceServiceClient::new(channel.clone())
        .export(traces(now_ns))
        .await?;
    let mut ingest = IngestClient::new(channel);
    sent += ingest
        .ingest_profile(tm::IngestProfileRequest {
            service: "checkout".into(),
            time: ts(now_ns - 5 * MINUTE_NS),
            pprof: cpu_profile(now_ns - 5 * MINUTE_NS),
        })
        .await?
        .into_inner()
        .accepted;
    for ((_, content), ago) in config_snapshots()
        .into_iter()
        .zip([30, DEPLOYED_MINUTES_AGO])
    {
        sent += ingest
            .ingest_config(tm::IngestConfigRequest {
                kind: "ConfigMap".into(),
                namespace: "shop".into(),
                name: "checkout-config".into(),
                content,
                time: ts(now_ns - ago * MINUTE_NS),
            })
            .await?
            .into_inner()
            .accepted;
    }
    sent += ingest
        .ingest_cluster(tm::IngestClusterRequest {
            cluster: "prod-eu-1".into(),
            json: cluster_json(now_ns / 1_000_000_000),
        })
        .await?
        .into_inner()
        .accepted;
    Ok(sent)
}
