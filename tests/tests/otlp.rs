//! Telemetry in, end to end: real OpenTelemetry SDKs (Rust over OTLP/gRPC, Python over
//! OTLP/HTTP) send to storage's ingest listener over TLS, authenticated by an ingest
//! certificate or an ingest token; what they send is stored under the sender's own
//! tenant, never the one its payload claims. Bad input, oversize and pressure get the
//! answers the OTLP specification asks for, and store nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;
use warden_integration_tests::{Cluster, Options, otlp_logs, reason};
use warden_proto::telemetry::v1 as tm;
use warden_tls::Role;

const SERVICE_NAME: &str = "storage.warden.internal";

async fn count(c: &Cluster, table: &str, tenant: &str) -> i64 {
    c.db_count(&format!(
        "SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}'"
    ))
    .await
}

/// Rows of every signal table for `tenant`: (logs, metric points, spans).
async fn stored(c: &Cluster, tenant: &str) -> (i64, i64, i64) {
    (
        count(c, "log_records", tenant).await,
        count(c, "metric_points", tenant).await,
        count(c, "spans", tenant).await,
    )
}

async fn create_token(c: &Cluster, tenant: &str) -> tm::CreateIngestTokenResponse {
    tm::ingest_tokens_client::IngestTokensClient::new(c.channel("admin", c.storage_addr))
        .create_ingest_token(tm::CreateIngestTokenRequest {
            tenant_id: tenant.into(),
            description: "otel collector".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// A TLS channel to the ingest listener that trusts the dev CA and presents no certificate.
fn tls_only(c: &Cluster) -> tonic::transport::Channel {
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    tonic::transport::Endpoint::from_shared(format!("https://{}", c.otlp_grpc_addr))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .domain_name(SERVICE_NAME),
        )
        .unwrap()
        .connect_lazy()
}

fn bearer(token: &str) -> tonic::metadata::MetadataMap {
    let mut m = tonic::metadata::MetadataMap::new();
    m.insert("authorization", format!("Bearer {token}").parse().unwrap());
    m
}

/// Sends one log record, a counter, a histogram and a span through the Rust SDK's OTLP/gRPC
/// exporters over `channel`, with a resource that claims tenant beta.
async fn send_with_rust_sdk(
    channel: tonic::transport::Channel,
    metadata: tonic::metadata::MetadataMap,
) {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("k8s.namespace.name", "shop"),
            KeyValue::new("tenant.id", "beta"),
        ])
        .build();
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_channel(channel.clone())
        .with_metadata(metadata.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_channel(channel.clone())
        .with_metadata(metadata.clone())
        .build()
        .unwrap();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_channel(channel)
        .with_metadata(metadata)
        .build()
        .unwrap();
    // The SDK's processors block on their own threads; keep that off the test's runtime.
    tokio::task::spawn_blocking(move || {
        let lp = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(logs)
            .build();
        let logger = lp.logger("warden-test");
        let mut rec = logger.create_log_record();
        rec.set_body("payment provider timeout after 30s".into());
        rec.set_severity_number(Severity::Error);
        rec.set_severity_text("ERROR");
        rec.set_timestamp(std::time::SystemTime::now());
        logger.emit(rec);
        lp.shutdown().unwrap();

        let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_periodic_exporter(metrics)
            .build();
        let meter = mp.meter("warden-test");
        let orders = meter.u64_counter("orders").build();
        orders.add(3, &[KeyValue::new("route", "/pay")]);
        let latency = meter.f64_histogram("latency").build();
        latency.record(0.25, &[KeyValue::new("route", "/pay")]);
        mp.shutdown().unwrap();

        let tp = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(spans)
            .build();
        tp.tracer("warden-test").in_span("POST /pay", |_| {
            std::thread::sleep(Duration::from_millis(2));
        });
        tp.shutdown().unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_sends_all_three_signals_with_an_ingest_certificate_and_they_land_in_its_own_tenant()
 {
    let c = Cluster::start().await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    send_with_rust_sdk(
        c.channel("otel-acme", c.otlp_grpc_addr),
        tonic::metadata::MetadataMap::new(),
    )
    .await;
    let (logs, points, spans) = stored(&c, "acme").await;
    assert_eq!(logs, 1);
    assert!(points >= 2, "a counter and a histogram point: {points}");
    assert_eq!(spans, 1);
    assert_eq!(
        stored(&c, "beta").await,
        (0, 0, 0),
        "the payload's tenant.id is an attribute"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_sends_with_an_ingest_token_over_plain_tls() {
    let c = Cluster::start().await;
    let token = create_token(&c, "acme").await;
    send_with_rust_sdk(tls_only(&c), bearer(&token.token)).await;
    let (logs, points, spans) = stored(&c, "acme").await;
    assert_eq!((logs, spans), (1, 1));
    assert!(points >= 2, "{points}");
    assert_eq!(stored(&c, "beta").await, (0, 0, 0));
    c.stop().await;
}

/// `<repo>/target/pyenv/bin/python`, installed by `scripts/test-deps`.
fn python() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join("target/pyenv/bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: run scripts/test-deps",
        py.display()
    );
    None
}

const PY_SENDER: &str = r#"
import socket, sys, time
host, port, ca, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# The certificate names storage's service name; resolve it to the loopback listener.
real = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: real("127.0.0.1" if h == host else h, *a, **k)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
import logging
base = f"https://{host}:{port}"
kw = dict(certificate_file=ca, headers={"Authorization": f"Bearer {token}"})
res = Resource.create({"service.name": "payments-py", "deployment.environment": "prod", "tenant.id": "beta"})
lp = LoggerProvider(resource=res)
lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=base + "/v1/logs", **kw)))
log = logging.getLogger("py"); log.addHandler(LoggingHandler(logger_provider=lp)); log.setLevel(logging.INFO)
log.error("card declined by issuer")
lp.shutdown()
mp = MeterProvider(resource=res, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=base + "/v1/metrics", **kw), export_interval_millis=60000)])
mp.get_meter("py").create_counter("declines").add(2, {"issuer": "x"})
mp.shutdown()
tp = TracerProvider(resource=res)
tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base + "/v1/traces", **kw)))
with tp.get_tracer("py").start_as_current_span("charge"):
    time.sleep(0.002)
tp.shutdown()
print("sent")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_sends_over_otlp_http_with_a_token() {
    let Some(py) = python() else {
        return;
    };
    let c = Cluster::start().await;
    let token = create_token(&c, "acme").await;
    let mut cmd = std::process::Command::new(py);
    cmd.args(["-c", PY_SENDER, SERVICE_NAME])
        .arg(c.otlp_http_addr.port().to_string())
        .arg(c.pki.ca_cert_path())
        .arg(&token.token)
        // requests lets these override the CA the exporter is given.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Failed to export"), "{stderr}");
    let (logs, points, spans) = stored(&c, "acme").await;
    assert_eq!((logs, points, spans), (1, 1, 1));
    assert_eq!(stored(&c, "beta").await, (0, 0, 0));
    c.stop().await;
}

/// An HTTPS client for the OTLP/HTTP port that trusts the dev CA.
fn https(c: &Cluster) -> reqwest::Client {
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(SERVICE_NAME, c.otlp_http_addr)
        .build()
        .unwrap()
}

fn url(c: &Cluster, path: &str) -> String {
    format!("https://{SERVICE_NAME}:{}{path}", c.otlp_http_addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_items_are_rejected_one_by_one_and_the_rest_stored() {
    let c = Cluster::start().await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    let mut req = otlp_logs("checkout", &[], &["good one", "bad id", "good two"]);
    req.resource_logs[0].scope_logs[0].log_records[1].trace_id = vec![1, 2, 3];
    let r = c
        .otlp_logs_client("otel-acme")
        .export(req)
        .await
        .unwrap()
        .into_inner();
    let partial = r.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{partial:?}"
    );
    assert_eq!(count(&c, "log_records", "acme").await, 2);

    // Nothing usable at all: INVALID_ARGUMENT naming why, nothing stored.
    let mut req = otlp_logs("checkout", &[], &["no time"]);
    req.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano = 0;
    let err = c
        .otlp_logs_client("otel-acme")
        .export(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("no log record could be stored"),
        "{}",
        err.message()
    );
    assert_eq!(count(&c, "log_records", "acme").await, 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_and_nothing_is_stored() {
    let c = Cluster::start_with(Options {
        ingest: warden_storage::IngestOptions {
            max_request_bytes: 64 * 1024,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    let line = "x".repeat(1000);
    let lines: Vec<&str> = (0..100).map(|_| line.as_str()).collect();
    let big = otlp_logs("checkout", &[], &lines);
    let err = c
        .otlp_logs_client("otel-acme")
        .export(big.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Compressed small, too big once inflated: refused all the same.
    let err = c
        .otlp_logs_client("otel-acme")
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .export(big.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let token = create_token(&c, "acme").await;
    let res = https(&c)
        .post(url(&c, "/v1/logs"))
        .bearer_auth(&token.token)
        .header("content-type", "application/x-protobuf")
        .body(big.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &big.encode_to_vec()).unwrap();
    let res = https(&c)
        .post(url(&c, "/v1/logs"))
        .bearer_auth(&token.token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(count(&c, "log_records", "acme").await, 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_speaks_protobuf_and_json_and_names_malformed_bodies() {
    let c = Cluster::start().await;
    let token = create_token(&c, "acme").await;
    let post = |ct: &'static str, body: Vec<u8>| {
        https(&c)
            .post(url(&c, "/v1/logs"))
            .bearer_auth(&token.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    // Malformed protobuf: 400, a google.rpc.Status in protobuf saying what is wrong.
    let res = post("application/x-protobuf", vec![0xff, 0xff, 0xff, 0x07])
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/x-protobuf");
    let status = tonic_types::Status::decode(res.bytes().await.unwrap()).unwrap();
    assert!(
        status.message.contains("not a valid OTLP protobuf"),
        "{status:?}"
    );
    // Malformed JSON: 400, the Status in JSON.
    let res = post("application/json", b"{\"resourceLogs\": [".to_vec())
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a valid OTLP JSON"),
        "{body}"
    );
    assert_eq!(count(&c, "log_records", "acme").await, 0);
    // An unknown content type: 415.
    let res = post("text/plain", b"hello".to_vec()).await.unwrap();
    assert_eq!(res.status(), 415);

    // OTLP JSON as the specification writes it: hex ids, enums as numbers, u64 as strings.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let json = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": now.to_string(), "severityNumber": 17, "severityText": "ERROR",
             "body": {"stringValue": "cart checkout failed"},
             "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
            {"timeUnixNano": now.to_string(), "body": {"stringValue": "bad"}, "traceId": "abc1"}
        ]}]
    }]});
    let res = post("application/json", serde_json::to_vec(&json).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], 1, "{body}");
    assert_eq!(count(&c, "log_records", "acme").await, 1);
    // And protobuf, gzip-compressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &otlp_logs("cart", &[], &["ok"]).encode_to_vec()).unwrap();
    let res = https(&c)
        .post(url(&c, "/v1/logs"))
        .bearer_auth(&token.token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(count(&c, "log_records", "acme").await, 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_send_tenant_from_the_identity_revocation_at_once_no_other_roles() {
    let c = Cluster::start().await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    // The payload claims tenant beta: stored under acme, the identity's tenant.
    let claim = otlp_logs("checkout", &[("tenant.id", "beta")], &["from acme"]);
    c.otlp_logs_client("otel-acme")
        .export(claim.clone())
        .await
        .unwrap();
    assert_eq!(count(&c, "log_records", "acme").await, 1);
    assert_eq!(count(&c, "log_records", "beta").await, 0);

    // A certificate of another role (agent, even scoped to acme) is refused by name.
    c.issue(Role::Agent, "agent-acme", &["acme"]);
    for who in ["agent", "agent-acme", "admin"] {
        let err = c
            .otlp_logs_client(who)
            .export(claim.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
        assert_eq!(reason(&err), "ROLE_NOT_ALLOWED");
    }
    // No certificate and no token: UNAUTHENTICATED.
    let err = LogsServiceClient::new(tls_only(&c))
        .export(claim.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A token of acme: works, then revoked, refused from the next request on.
    let token = create_token(&c, "acme").await;
    let mut req = tonic::Request::new(claim.clone());
    *req.metadata_mut() = bearer(&token.token);
    LogsServiceClient::new(tls_only(&c))
        .export(req)
        .await
        .unwrap();
    assert_eq!(count(&c, "log_records", "acme").await, 2);
    tm::ingest_tokens_client::IngestTokensClient::new(c.channel("admin", c.storage_addr))
        .revoke_ingest_token(tm::RevokeIngestTokenRequest {
            tenant_id: "acme".into(),
            token_id: token.token_id.clone(),
        })
        .await
        .unwrap();
    let mut req = tonic::Request::new(claim.clone());
    *req.metadata_mut() = bearer(&token.token);
    let err = LogsServiceClient::new(tls_only(&c))
        .export(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("unknown or revoked"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains(&token.token));
    let res = https(&c)
        .post(url(&c, "/v1/logs"))
        .bearer_auth(&token.token)
        .header("content-type", "application/x-protobuf")
        .body(claim.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(count(&c, "log_records", "acme").await, 2);

    // A tenant admin of beta cannot mint tokens for acme.
    c.issue(Role::Admin, "admin-beta", &["beta"]);
    let err =
        tm::ingest_tokens_client::IngestTokensClient::new(c.channel("admin-beta", c.storage_addr))
            .create_ingest_token(tm::CreateIngestTokenRequest {
                tenant_id: "acme".into(),
                description: String::new(),
            })
            .await
            .unwrap_err();
    assert_eq!(reason(&err), "TENANT_OUT_OF_SCOPE");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hash_of_a_token_is_stored() {
    let c = Cluster::start().await;
    let token = create_token(&c, "acme").await;
    assert!(
        token
            .token
            .starts_with(warden_storage::ingest::TOKEN_PREFIX)
    );
    let list =
        tm::ingest_tokens_client::IngestTokensClient::new(c.channel("admin", c.storage_addr))
            .list_ingest_tokens(tm::ListIngestTokensRequest {
                tenant_id: "acme".into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(list.tokens.len(), 1);
    assert_eq!(list.tokens[0].created_by, "admin/admin");
    assert_eq!(list.tokens[0].description, "otel collector");
    let url_db = c.db_url.clone();
    c.stop().await;
    let path = url_db.strip_prefix("sqlite://").unwrap();
    let secret = &token.token[warden_storage::ingest::TOKEN_PREFIX.len()..];
    for suffix in ["", "-wal", "-shm"] {
        let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) else {
            continue;
        };
        assert!(
            memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
            "the token is in {path}{suffix}"
        );
        assert!(
            memchr::memmem::find(&bytes, b"otel collector").is_none(),
            "description sealed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pressure_senders_are_told_to_retry_later() {
    let c = Cluster::start_with(Options {
        ingest: warden_storage::IngestOptions {
            max_in_flight: 1,
            retry_after: Duration::from_secs(3),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    let token = create_token(&c, "acme").await;
    // One request holds the only slot: its body starts and never finishes. A probe
    // sent while it arrives can take the slot first and have the held request itself
    // refused; then it is opened again, until a probe is the one refused.
    let hold_slot = || {
        let (hold, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        hold.try_send(Ok(vec![0x0a])).unwrap();
        let client = https(&c);
        let url = url(&c, "/v1/logs");
        let token = token.token.clone();
        let stuck = tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/x-protobuf")
                .body(reqwest::Body::wrap_stream(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .send()
                .await
        });
        (hold, stuck)
    };
    let (mut hold, mut stuck) = hold_slot();
    let mut refused = None;
    for _ in 0..1500 {
        if stuck.is_finished() {
            (hold, stuck) = hold_slot();
        }
        let res = https(&c)
            .post(url(&c, "/v1/logs"))
            .bearer_auth(&token.token)
            .header("content-type", "application/x-protobuf")
            .body(otlp_logs("checkout", &[], &["x"]).encode_to_vec())
            .send()
            .await
            .unwrap();
        if res.status() == 503 && !stuck.is_finished() {
            refused = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = refused.expect("a second request while the slot is held is refused");
    assert_eq!(res.headers()["retry-after"], "3");
    let err = c
        .otlp_logs_client("otel-acme")
        .export(otlp_logs("checkout", &[], &["x"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let retry = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
    let before = count(&c, "log_records", "acme").await;
    drop(hold);
    let _ = stuck.await;
    // The slot is free again.
    c.otlp_logs_client("otel-acme")
        .export(otlp_logs("checkout", &[], &["after"]))
        .await
        .unwrap();
    assert_eq!(count(&c, "log_records", "acme").await, before + 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_past_a_tenants_retention_is_pruned() {
    let c = Cluster::start().await;
    c.set_tenant(warden_proto::common::v1::TenantSettings {
        telemetry_retention_days: 30,
        ..warden_integration_tests::enabled_tenant("beta")
    })
    .await;
    c.issue(Role::Ingest, "otel-acme", &["acme"]);
    c.issue(Role::Ingest, "otel-beta", &["beta"]);
    c.ingest_logs("otel-acme", "checkout", &["a1", "a2"]).await;
    c.ingest_logs("otel-beta", "checkout", &["b1"]).await;
    // A second storage on the same database runs the pruning step at a later clock.
    let db = warden_storage::Db::connect(&c.db_url).await.unwrap();
    let keys = warden_storage::key_file_provider(&db, &c.dir.path().join("keys/kek"), None)
        .await
        .unwrap();
    let storage = warden_storage::Storage::open(db, std::sync::Arc::new(keys))
        .await
        .unwrap();
    let day = 24 * 3600 * 1000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Eight days on: acme (the default week) is pruned, beta (30 days) kept.
    let pruned = storage.prune_telemetry(now + 8 * day).await.unwrap();
    assert_eq!(pruned, vec![("acme".to_owned(), 2), ("beta".to_owned(), 0)]);
    assert_eq!(count(&c, "log_records", "acme").await, 0);
    assert_eq!(count(&c, "log_records", "beta").await, 1);
    let pruned = storage.prune_telemetry(now + 31 * day).await.unwrap();
    assert_eq!(pruned[1], ("beta".to_owned(), 1));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_over_otlp_grpc_is_invalid_argument_and_stores_nothing() {
    let c = Cluster::start().await;
    let token = create_token(&c, "acme").await;
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    let grpc = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(SERVICE_NAME, c.otlp_grpc_addr)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // One gRPC frame (uncompressed, 4 bytes) that is not an ExportLogsServiceRequest.
    let mut frame = vec![0u8, 0, 0, 0, 4];
    frame.extend([0xff, 0xff, 0xff, 0x07]);
    let res = grpc
        .post(format!(
            "https://{SERVICE_NAME}:{}/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            c.otlp_grpc_addr.port()
        ))
        .bearer_auth(&token.token)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    let status = res
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let message = res
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(status.as_deref(), Some("3"), "INVALID_ARGUMENT: {message}");
    assert!(message.contains("decode"), "{message}");
    assert_eq!(c.db_count("SELECT COUNT(*) FROM log_records").await, 0);
    c.stop().await;
}
