//! The Prometheus client against a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/test-deps`), started here on loopback: one scraping a target this test serves
//! every second (a counter that grows, a gauge, a histogram), and one behind TLS with basic
//! auth (`--web.config.file`, a bcrypt hash, a CA made here). Under `CI=true`, and locally
//! too, a missing `prometheus` binary fails the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warden_proto::common::v1::source_credentials::Credentials;
use warden_proto::common::v1::{BasicAuth, PrometheusSource, SourceCredentials};
use warden_sources::prometheus::{PrometheusClient, QueryResult, ResultKind, SourceError};
use warden_testkit::prometheus::{Prometheus, free_port, read_head, serve_target};

const TIMEOUT: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn source(url: String) -> PrometheusSource {
    PrometheusSource {
        url,
        ..Default::default()
    }
}

fn one<'a>(r: &'a QueryResult, key: &str, value: &str) -> &'a (i64, f64) {
    let s = r
        .series
        .iter()
        .find(|s| s.labels.get(key).is_some_and(|v| v == value))
        .unwrap_or_else(|| panic!("no series with {key}={value:?} in {r:?}"));
    s.points.last().unwrap()
}

// === tests ===

#[tokio::test]
async fn queries_a_real_prometheus_scraping_a_real_target() {
    let target = serve_target();
    let mut prom = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: warden_test\n    static_configs:\n      - targets: ['{target}']\n"
        ),
        None,
    );
    let client =
        PrometheusClient::new(&source(format!("http://{}", prom.addr)), None, TIMEOUT).unwrap();

    // Data exists once the counter has been scraped enough times for a rate.
    let rate = "rate(warden_test_requests_total[5s])";
    let rates = prom
        .wait_for("a counter rate", async || {
            let r = client.query_instant(rate, now_ms()).await?;
            Ok::<_, SourceError>((r.series.len() == 2).then_some(r))
        })
        .await;
    assert_eq!(rates.kind, ResultKind::Vector);
    let get = one(&rates, "method", "GET");
    assert!(get.1 > 0.0, "the GET counter grows: {rates:?}");
    assert_eq!(one(&rates, "method", "POST").1, 0.0, "{rates:?}");
    let labels = &rates
        .series
        .iter()
        .find(|s| s.labels["method"] == "GET")
        .unwrap()
        .labels;
    assert_eq!(labels["job"], "warden_test");
    assert_eq!(labels["instance"], target.to_string());
    assert_eq!(labels["code"], "200");

    // The gauge, exactly.
    let gauge = client
        .query_instant("warden_test_temperature_celsius", now_ms())
        .await
        .unwrap();
    assert_eq!(gauge.series.len(), 1);
    assert_eq!(
        gauge.series[0].labels["__name__"],
        "warden_test_temperature_celsius"
    );
    assert_eq!(gauge.series[0].points[0].1, 21.5);

    // Every observation is 0.2s, in the (0.1, 0.25] bucket: the median interpolates to 0.175.
    let p50 = client
        .query_instant(
            "histogram_quantile(0.5, sum by (le) (rate(warden_test_latency_seconds_bucket[5s])))",
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(p50.series.len(), 1, "{p50:?}");
    assert!((p50.series[0].points[0].1 - 0.175).abs() < 1e-9, "{p50:?}");

    // The "+Inf" bucket's label and NaN / +Inf values come through.
    let buckets = client
        .query_instant("warden_test_latency_seconds_bucket", now_ms())
        .await
        .unwrap();
    assert!(buckets.series.iter().any(|s| s.labels["le"] == "+Inf"));
    let nan = client.query_instant("0/0", now_ms()).await.unwrap();
    assert_eq!(nan.kind, ResultKind::Scalar);
    assert!(nan.series[0].points[0].1.is_nan());
    let inf = client
        .query_instant("vector(1) / 0", now_ms())
        .await
        .unwrap();
    assert_eq!(inf.series[0].points[0].1, f64::INFINITY);

    // A range query over the last minute at 5 points: the step is 15s, no series has more.
    let end = now_ms();
    let start = end - 60_000;
    let range = client
        .query_range("warden_test_requests_total", start, end, 5)
        .await
        .unwrap();
    assert_eq!(range.kind, ResultKind::Matrix);
    assert_eq!(range.step_ms, Some(15_000));
    assert_eq!(range.series.len(), 2, "{range:?}");
    for s in &range.series {
        assert!(!s.points.is_empty() && s.points.len() <= 5, "{s:?}");
        assert!(s.points.iter().all(|(t, _)| (start..=end).contains(t)));
        assert!(s.points.windows(2).all(|w| w[0].0 < w[1].0));
    }
    // At most 1000 points over 10s: the step does not go under a second.
    let fine = client
        .query_range("warden_test_temperature_celsius", end - 10_000, end, 1000)
        .await
        .unwrap();
    assert_eq!(fine.step_ms, Some(1000));
    assert!(fine.series[0].points.len() <= 11, "{fine:?}");

    // The series cap: 2 of the (more than 2) series of the test's metrics, flagged.
    let capped = client
        .with_max_series(2)
        .query_instant(r#"{__name__=~"warden_test_.*"}"#, now_ms())
        .await
        .unwrap();
    assert_eq!(capped.series.len(), 2);
    assert!(capped.truncated && capped.total_series > 2, "{capped:?}");
    let client =
        PrometheusClient::new(&source(format!("http://{}", prom.addr)), None, TIMEOUT).unwrap();

    // Bad PromQL: Prometheus' own explanation, prefixed.
    let err = client
        .query_instant("rate(warden_test_requests_total[5m]", now_ms())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::InvalidQuery(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("the query is invalid: "), "{msg}");
    assert!(msg.contains("parse error"), "{msg}");
    let err = client
        .query_range("sum(", now_ms() - 60_000, now_ms(), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::InvalidQuery(_)), "{err:?}");

    // A series that does not exist is an empty answer, not an error.
    let none = client
        .query_instant("warden_test_no_such_metric", now_ms())
        .await
        .unwrap();
    assert!(none.series.is_empty() && !none.truncated, "{none:?}");
    let none = client
        .query_range(
            r#"warden_test_requests_total{method="DELETE"}"#,
            now_ms() - 60_000,
            now_ms(),
            10,
        )
        .await
        .unwrap();
    assert!(none.series.is_empty() && !none.truncated, "{none:?}");

    // Metric names with data in the last 5 minutes, sorted and bounded.
    let names = client
        .metric_names(now_ms() - 300_000, now_ms(), 10_000)
        .await
        .unwrap();
    for n in [
        "warden_test_requests_total",
        "warden_test_temperature_celsius",
        "warden_test_latency_seconds_bucket",
        "up",
    ] {
        assert!(names.names.iter().any(|m| m == n), "{n} in {names:?}");
    }
    assert!(names.names.windows(2).all(|w| w[0] < w[1]));
    assert!(!names.truncated);
    let two = client
        .metric_names(now_ms() - 300_000, now_ms(), 2)
        .await
        .unwrap();
    assert_eq!(two.names, names.names[..2]);
    assert!(two.truncated);

    // An answer over the byte cap is refused whole.
    let err = client
        .with_max_body_bytes(200)
        .query_range(
            r#"{__name__=~"warden_test_.*"}"#,
            now_ms() - 60_000,
            now_ms(),
            100,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::TooLarge { limit: 200, .. }),
        "{err:?}"
    );
    drop(prom);
}

/// A CA and a certificate for 127.0.0.1 signed by it: (CA PEM, cert PEM, key PEM).
fn tls_material() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "warden-sources test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn basic(username: &str, password: &str) -> SourceCredentials {
    SourceCredentials {
        credentials: Some(Credentials::Basic(BasicAuth {
            username: username.into(),
            password: password.into(),
        })),
    }
}

#[tokio::test]
async fn tls_and_basic_auth_only_the_right_ca_and_credentials_get_through() {
    const PASSWORD: &str = "correct-horse-battery-staple";
    let (ca_pem, cert_pem, key_pem) = tls_material();
    let certs = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = certs.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("server.pem", &cert_pem);
    let key = write("server.key", &key_pem);
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  alice: '{hash}'\n",
        cert.display(),
        key.display()
    );
    let mut prom = Prometheus::start("global:\n  scrape_interval: 1s\n", Some(&web));
    let trusted = PrometheusSource {
        url: format!("https://{}", prom.addr),
        ca_pem: ca_pem.clone(),
        credentials_id: "cred-1".into(),
    };

    // The right CA and credentials work.
    let right = PrometheusClient::new(&trusted, Some(&basic("alice", PASSWORD)), TIMEOUT).unwrap();
    let one = prom
        .wait_for("an answer over TLS", async || {
            match right.query_instant("vector(1)", now_ms()).await {
                Ok(r) => Ok(Some(r)),
                Err(SourceError::Unreachable { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
    assert_eq!(one.series[0].points[0].1, 1.0);
    assert!(
        right
            .metric_names(now_ms() - 60_000, now_ms(), 10)
            .await
            .is_ok()
    );

    // A wrong password, a wrong user, a bearer token or nothing: authentication refused,
    // and the error never carries what was sent.
    let wrong = [
        (
            "a wrong password",
            Some(basic("alice", "tr0ub4dor&3")),
            "tr0ub4dor&3",
        ),
        ("a wrong user", Some(basic("mallory", PASSWORD)), PASSWORD),
        (
            "a bearer token",
            Some(SourceCredentials {
                credentials: Some(Credentials::BearerToken("tok-0123456789".into())),
            }),
            "tok-0123456789",
        ),
    ];
    for (what, creds, secret) in wrong {
        let client = PrometheusClient::new(&trusted, creds.as_ref(), TIMEOUT).unwrap();
        let err = client
            .query_instant("vector(1)", now_ms())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::AuthenticationRefused { status: 401, .. }),
            "{what}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("refused authentication"), "{msg}");
        assert!(
            !msg.contains(secret) && !format!("{err:?}").contains(secret),
            "{msg}"
        );
        let err = client
            .query_range("up", now_ms() - 60_000, now_ms(), 10)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::AuthenticationRefused { .. }),
            "{what}: {err:?}"
        );
    }
    let anonymous = PrometheusClient::new(
        &PrometheusSource {
            credentials_id: String::new(),
            ..trusted.clone()
        },
        None,
        TIMEOUT,
    )
    .unwrap();
    let err = anonymous
        .metric_names(now_ms() - 60_000, now_ms(), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationRefused { .. }),
        "{err:?}"
    );

    // A server certificate from a CA the source does not name is refused before any
    // credential is sent, as it is with the built-in roots.
    let (other_ca, _, _) = tls_material();
    for (what, ca) in [
        ("another CA", other_ca),
        ("the built-in roots", String::new()),
    ] {
        let client = PrometheusClient::new(
            &PrometheusSource {
                ca_pem: ca,
                ..trusted.clone()
            },
            Some(&basic("alice", PASSWORD)),
            TIMEOUT,
        )
        .unwrap();
        let err = client
            .query_instant("vector(1)", now_ms())
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Tls { .. }), "{what}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("certificate"), "{what}: {msg}");
        assert!(!msg.contains(PASSWORD), "{msg}");
    }

    // Plain http to the TLS port is not a Prometheus answer.
    let plain = PrometheusClient::new(
        &source(format!("http://{}", prom.addr)),
        Some(&basic("alice", PASSWORD)),
        TIMEOUT,
    )
    .unwrap();
    let err = plain
        .query_instant("vector(1)", now_ms())
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    drop(prom);
}

/// A loopback server that records each request head and answers every one with
/// `answer(its address)`.
fn serve_recording(
    answer: impl FnOnce(SocketAddr) -> String,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = answer(addr);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if let Some(head) = read_head(&mut conn) {
                record.lock().unwrap().push(head);
                let _ = conn.write_all(answer.as_bytes());
            }
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn transport_failures_are_named_and_redirects_elsewhere_are_not_followed() {
    // Nothing listens: unreachable.
    let closed = free_port();
    let client = PrometheusClient::new(&source(format!("http://{closed}")), None, TIMEOUT).unwrap();
    let err = client.query_instant("up", now_ms()).await.unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach {closed}")),
        "{err}"
    );

    // A server that accepts and never answers: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = PrometheusClient::new(
        &source(format!("http://{}", silent.local_addr().unwrap())),
        None,
        Duration::from_millis(500),
    )
    .unwrap();
    let err = client.query_instant("up", now_ms()).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("did not answer within 500ms"),
        "{err}"
    );

    // A redirect to another origin (localhost is not 127.0.0.1, though it reaches this
    // same server) is not followed, and the bearer token went only to the configured URL.
    let (addr, seen) = serve_recording(|addr| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://localhost:{}/api/v1/query\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            addr.port()
        )
    });
    let token = SourceCredentials {
        credentials: Some(Credentials::BearerToken("tok-abcdef".into())),
    };
    let client = PrometheusClient::new(
        &PrometheusSource {
            url: format!("http://{addr}"),
            ca_pem: String::new(),
            credentials_id: "cred-2".into(),
        },
        Some(&token),
        TIMEOUT,
    )
    .unwrap();
    let err = client.query_instant("up", now_ms()).await.unwrap_err();
    assert!(matches!(err, SourceError::Redirected { .. }), "{err:?}");
    assert!(!err.to_string().contains("tok-abcdef"));
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "only the first request: {heads:?}");
    assert!(
        heads[0].starts_with("POST /api/v1/query HTTP/1.1"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer tok-abcdef"),
        "{}",
        heads[0]
    );
}

#[test]
fn the_test_prometheus_binary_is_installed() {
    // The tests above need it; this names the cause when it is missing.
    let out = Command::new("prometheus").arg("--version").output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "`prometheus` is not on PATH; run scripts/test-deps (Debian package `prometheus`)"
    );
}
