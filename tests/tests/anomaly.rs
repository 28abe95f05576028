//! Anomaly detection end to end: a metric sent over OTLP, a detector in the tenant's
//! settings, and the agent's detector pass queueing one ANOMALY investigation with its
//! evidence — and never reading, let alone firing for, a tenant that has not opted in.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tonic::Code;
use warden_integration_tests::{Cluster, Options, enabled_tenant};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;

const MIN: i64 = 60_000;
const METRIC: &str = "checkout.queue.depth";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Three days of a gauge every 5 minutes around 100, and 300 for the last 30 minutes.
fn series(now: i64) -> Vec<(i64, f64)> {
    let start = now - 3 * 1440 * MIN;
    (0..)
        .map(|i| start + i * 5 * MIN)
        .take_while(|t| *t <= now)
        .enumerate()
        .map(|(i, t)| {
            let wobble = [0.0, 1.5, -1.0, 2.0, -2.0, 0.5][i % 6];
            let v = if t > now - 30 * MIN {
                300.0
            } else {
                100.0 + wobble
            };
            (t, v)
        })
        .collect()
}

async fn send(c: &Cluster, identity: &str, points: &[(i64, f64)]) {
    let mut client = MetricsServiceClient::new(c.channel(identity, c.otlp_grpc_addr));
    for chunk in points.chunks(400) {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("checkout".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: METRIC.into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: chunk
                                .iter()
                                .map(|(t, v)| NumberDataPoint {
                                    time_unix_nano: (*t as u64) * 1_000_000,
                                    value: Some(number_data_point::Value::AsDouble(*v)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let r = client.export(req).await.unwrap().into_inner();
        assert!(
            r.partial_success
                .is_none_or(|p| p.rejected_data_points == 0)
        );
    }
}

fn detector() -> pb::AnomalyDetector {
    pb::AnomalyDetector {
        metric: METRIC.into(),
        labels: [("service.name".to_owned(), "checkout".to_owned())].into(),
        ..Default::default()
    }
}

async fn runs(c: &Cluster, tenant: &str) -> Vec<st::Run> {
    c.agent("admin")
        .list_runs(ag::ListRunsRequest {
            tenant_id: tenant.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs
}

#[tokio::test]
async fn a_deviation_from_the_seasonal_baseline_opens_one_anomaly_investigation_for_an_opted_in_tenant_only()
 {
    let c = Cluster::start_with(Options {
        anomaly: warden_agent::anomaly::AnomalyOptions {
            interval: Duration::from_millis(500),
            history_days: 3,
            recent: Duration::from_secs(2 * 3600),
        },
        ..Default::default()
    })
    .await;
    let now = now_ms();
    for t in ["acme", "beta"] {
        c.issue(warden_tls::Role::Ingest, &format!("otel-{t}"), &[t]);
        send(&c, &format!("otel-{t}"), &series(now)).await;
    }
    let mut acme = enabled_tenant("acme");
    acme.anomaly_detectors = vec![detector()];
    c.set_tenant(acme).await;
    let mut beta = enabled_tenant("beta");
    beta.enabled = false;
    beta.anomaly_detectors = vec![detector()];
    c.set_tenant(beta).await;

    let mut found = Vec::new();
    for _ in 0..60 {
        found = runs(&c, "acme").await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(found.len(), 1, "one episode, one investigation");
    let run = &found[0];
    assert_eq!(run.purpose, pb::Purpose::Anomaly as i32);
    let trigger: serde_json::Value = serde_json::from_str(&run.trigger_json).unwrap();
    let e = &trigger["detail"];
    assert_eq!(e["metric"], METRIC);
    assert_eq!(e["direction"], "up");
    let expected = e["expected"].as_f64().unwrap();
    assert!((95.0..=105.0).contains(&expected), "{e}");
    assert_eq!(e["peak_value"].as_f64(), Some(300.0));
    assert!(e["score"].as_f64().unwrap() > 6.0, "{e}");
    let start = e["start_ms"].as_i64().unwrap();
    assert!(
        start > now - 31 * MIN && start <= now - 20 * MIN,
        "the episode starts when the injected one does: {e}"
    );
    assert!(run.keys[0].starts_with("anomaly:v1:up:"), "{:?}", run.keys);

    // Later passes see the same episode and start nothing new.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&c, "acme").await.len(), 1);
    // The tenant that has not opted in gets nothing, not even a skipped run.
    assert!(runs(&c, "beta").await.is_empty());
    c.stop().await;
}

#[tokio::test]
async fn a_detector_that_cannot_work_is_refused_when_it_is_set() {
    let c = Cluster::start().await;
    let mut s = enabled_tenant("acme");
    s.anomaly_detectors = vec![pb::AnomalyDetector {
        direction: "sideways".into(),
        ..detector()
    }];
    let err = c
        .admin("admin")
        .set_tenant_settings(warden_proto::gateway::v1::SetTenantSettingsRequest {
            settings: Some(s.clone()),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("sideways") && err.message().contains(METRIC),
        "{}",
        err.message()
    );
    s.anomaly_detectors = vec![pb::AnomalyDetector {
        sensitivity: -3.0,
        ..detector()
    }];
    let err = c
        .admin("admin")
        .set_tenant_settings(warden_proto::gateway::v1::SetTenantSettingsRequest {
            settings: Some(s),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("sensitivity"), "{}", err.message());
    c.stop().await;
}
