//! The Alertmanager fixture against the real Debian `prometheus-alertmanager`: what a
//! webhook receiver over HTTPS actually gets (one notification per group, the version 4
//! payload, the bearer token, resolved notifications, repeats of an unchanged group), and
//! that the client certificate is presented for mTLS. A missing binary fails these tests,
//! under `CI=true` and locally alike (the fixture panics, naming `scripts/test-deps`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_testkit::alertmanager::{Alertmanager, Receiver, Timing};
use warden_testkit::{MockApi, MockServer, Recorded, Reply, TestCa};

/// A webhook receiver that accepts everything and records each request with the instant
/// it arrived.
#[derive(Clone, Default)]
struct Sink {
    got: Arc<Mutex<Vec<(Instant, Recorded)>>>,
}

impl Sink {
    fn received(&self) -> Vec<(Instant, Recorded)> {
        self.got.lock().unwrap().clone()
    }
}

impl MockApi for Sink {
    fn handle(&self, req: &mut Recorded) -> Reply {
        self.got.lock().unwrap().push((Instant::now(), req.clone()));
        Reply::json(200, &json!({}))
    }
    fn error(&self, status: u16, _retry_after: Option<&str>) -> Reply {
        Reply::json(status, &json!({}))
    }
    fn malformed_event(&self) -> Bytes {
        Bytes::new()
    }
    fn stream_error_event(&self) -> Bytes {
        Bytes::new()
    }
}

/// A fresh directory for the test's PEM files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!(
            "warden-am-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a timestamp string"), &Rfc3339)
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
}

fn alert(alertname: &str, service: &str, instance: &str, starts_at: &str) -> Value {
    json!({
        "labels": { "alertname": alertname, "service": service, "instance": instance },
        "annotations": { "summary": format!("{alertname} on {instance}") },
        "startsAt": starts_at,
        "generatorURL": "http://prometheus.test/graph?g0.expr=up",
    })
}

/// Waits (up to `within`) for a received notification satisfying `wanted`.
async fn wait_for(
    am: &Alertmanager,
    sink: &Sink,
    what: &str,
    within: Duration,
    wanted: impl Fn(&[(Instant, Recorded)]) -> bool,
) -> Vec<(Instant, Recorded)> {
    let deadline = Instant::now() + within;
    loop {
        let got = sink.received();
        if wanted(&got) {
            return got;
        }
        if Instant::now() > deadline {
            let bodies: Vec<Value> = got.iter().map(|(_, r)| r.json()).collect();
            panic!(
                "no {what} within {within:?}; received {bodies:#?}\nalertmanager log:\n{}",
                am.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn group_of(body: &Value) -> &str {
    body["groupLabels"]["alertname"].as_str().unwrap_or("")
}

fn instances(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// (fingerprint, startsAt) of each alert, sorted: what identifies a repeat.
fn identities(body: &Value) -> Vec<(String, OffsetDateTime)> {
    let mut v: Vec<_> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap().to_owned(),
                time_of(&a["startsAt"]),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn groups_notify_once_then_resolve_and_repeat_over_https_with_a_bearer_token() {
    let ca = TestCa::new().unwrap();
    let sink = Sink::default();
    let server = MockServer::start(&ca, sink.clone()).await.unwrap();
    let pem = TempDir::new("bearer");
    let token = "am-fixture-token-7f3c";
    let receiver = Receiver {
        server_name: None,
        url: format!("{}/webhooks/alertmanager", server.url()),
        ca_pem_path: pem.write("ca.pem", ca.ca_pem()),
        bearer_token: Some(token.to_owned()),
        client_cert: None,
    };
    let timing = Timing::fast();
    let am = Alertmanager::start(&receiver, timing);

    let starts_at = now_rfc3339();
    let posted_at = Instant::now();
    am.post_alerts(&[
        alert("CheckoutErrors", "checkout", "pod-1", &starts_at),
        alert("CheckoutErrors", "checkout", "pod-2", &starts_at),
        alert("DiskFull", "checkout", "node-1", &starts_at),
    ])
    .await;

    // One notification per group after group_wait, and none more on the next tick.
    let first = wait_for(
        &am,
        &sink,
        "first notification of both groups",
        Duration::from_secs(6),
        |got| got.len() >= 2,
    )
    .await;
    let first_at = first[0].0.min(first[1].0);
    assert!(
        first_at - posted_at >= timing.group_wait,
        "notified {:?} after posting, before group_wait",
        first_at - posted_at
    );
    tokio::time::sleep_until(
        (first_at + timing.group_interval + Duration::from_millis(500)).into(),
    )
    .await;
    let early = sink.received();
    assert_eq!(
        early.len(),
        2,
        "one notification per group expected before repeat_interval: {:#?}",
        early.iter().map(|(_, r)| r.json()).collect::<Vec<_>>()
    );
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    let bodies: Vec<Value> = early.iter().map(|(_, r)| r.json()).collect();
    for ((_, req), body) in early.iter().zip(&bodies) {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/webhooks/alertmanager");
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(body["version"], "4", "{body:#}");
        assert_eq!(body["status"], "firing", "{body:#}");
        assert_eq!(body["receiver"], "warden");
        assert_eq!(body["groupLabels"]["service"], "checkout");
        assert!(body["groupKey"].as_str().is_some_and(|k| !k.is_empty()));
        for a in body["alerts"].as_array().unwrap() {
            assert_eq!(a["status"], "firing");
            let fp = a["fingerprint"].as_str().unwrap_or("");
            assert!(
                fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
                "fingerprint {fp:?}"
            );
            assert_eq!(time_of(&a["startsAt"]), time_of(&json!(starts_at)));
            assert_eq!(a["generatorURL"], "http://prometheus.test/graph?g0.expr=up");
        }
        groups.push((group_of(body), instances(body)));
    }
    groups.sort();
    assert_eq!(
        groups,
        vec![
            (
                "CheckoutErrors",
                vec!["pod-1".to_owned(), "pod-2".to_owned()]
            ),
            ("DiskFull", vec!["node-1".to_owned()]),
        ]
    );
    let checkout_first = bodies
        .iter()
        .zip(&early)
        .find(|(b, _)| group_of(b) == "CheckoutErrors")
        .map(|(b, (at, _))| (b.clone(), *at))
        .unwrap();
    let disk_first = bodies
        .iter()
        .find(|b| group_of(b) == "DiskFull")
        .unwrap()
        .clone();

    // Resolving DiskFull sends a resolved notification for it on its next tick.
    let resolved_at = Instant::now();
    am.resolve(&[
        ("alertname", "DiskFull"),
        ("service", "checkout"),
        ("instance", "node-1"),
    ])
    .await;
    let got = wait_for(
        &am,
        &sink,
        "resolved notification for DiskFull",
        timing.group_interval + Duration::from_secs(3),
        |got| {
            got.iter()
                .any(|(_, r)| group_of(&r.json()) == "DiskFull" && r.json()["status"] == "resolved")
        },
    )
    .await;
    let (at, resolved) = got
        .iter()
        .find(|(_, r)| group_of(&r.json()) == "DiskFull" && r.json()["status"] == "resolved")
        .map(|(at, r)| (*at, r.json()))
        .unwrap();
    assert!(at > resolved_at);
    let resolved_after = at - resolved_at;
    assert_eq!(resolved["version"], "4");
    let gone = &resolved["alerts"][0];
    assert_eq!(resolved["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(gone["status"], "resolved");
    assert_eq!(gone["fingerprint"], disk_first["alerts"][0]["fingerprint"]);
    assert_eq!(time_of(&gone["startsAt"]), time_of(&json!(starts_at)));
    assert!(time_of(&gone["endsAt"]) >= time_of(&gone["startsAt"]));
    assert_eq!(gone["annotations"]["summary"], "DiskFull on node-1");

    // The unchanged CheckoutErrors group is notified again once repeat_interval passed.
    let (checkout_body, checkout_at) = checkout_first;
    let got = wait_for(
        &am,
        &sink,
        "repeat notification for CheckoutErrors",
        timing.repeat_interval + timing.group_interval + Duration::from_secs(3),
        |got| {
            got.iter()
                .filter(|(_, r)| group_of(&r.json()) == "CheckoutErrors")
                .count()
                >= 2
        },
    )
    .await;
    let (repeat_at, repeat) = got
        .iter()
        .filter(|(_, r)| group_of(&r.json()) == "CheckoutErrors")
        .nth(1)
        .map(|(at, r)| (*at, r.json()))
        .unwrap();
    assert!(
        repeat_at - checkout_at >= timing.repeat_interval,
        "repeated after {:?}, before repeat_interval",
        repeat_at - checkout_at
    );
    eprintln!(
        "first notification {:?} after posting; resolved {resolved_after:?} after resolve; \
         repeat {:?} after the first",
        first_at - posted_at,
        repeat_at - checkout_at
    );
    assert_eq!(repeat["status"], "firing");
    assert_eq!(repeat["groupKey"], checkout_body["groupKey"]);
    assert_eq!(identities(&repeat), identities(&checkout_body));
    // Every notification, repeats and resolved included, carried the token.
    for (_, r) in &got {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
}

/// A receiver that requires a client certificate from `client_ca`, recording for each
/// request the leaf certificate the client presented and the body.
type MtlsLog = Arc<Mutex<Vec<(Vec<u8>, Bytes)>>>;

async fn mtls_receiver(
    server_cert: &rcgen::Certificate,
    server_key: &rcgen::KeyPair,
    ca_cert: &rcgen::Certificate,
) -> (std::net::SocketAddr, MtlsLog) {
    use http_body_util::{BodyExt, Full};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: MtlsLog = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer: Vec<u8> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c: &CertificateDer<'_>| c.to_vec())
                    .unwrap_or_default();
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let peer = peer.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            seen.lock().unwrap().push((peer, body));
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

#[tokio::test]
async fn presents_the_client_certificate_to_a_receiver_that_requires_mtls() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["alertmanager".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let (addr, log) = mtls_receiver(&server_cert, &server_key, &ca_cert).await;
    let url = format!("https://{addr}/webhooks/alertmanager");

    // The receiver really refuses a client without a certificate.
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .post(&url)
        .body("{}")
        .send()
        .await;
    assert!(anonymous.is_err(), "answered without a client certificate");

    let pem = TempDir::new("mtls");
    let receiver = Receiver {
        server_name: None,
        url,
        ca_pem_path: pem.write("ca.pem", ca_cert.pem()),
        bearer_token: None,
        client_cert: Some((
            pem.write("client.pem", client_cert.pem()),
            pem.write("client.key", client_key.serialize_pem()),
        )),
    };
    let am = Alertmanager::start(&receiver, Timing::fast());
    am.post_alerts(&[alert("CertExpiry", "edge", "lb-1", &now_rfc3339())])
        .await;
    let deadline = Instant::now() + Duration::from_secs(6);
    let (peer, body) = loop {
        if let Some(first) = log.lock().unwrap().first().cloned() {
            break first;
        }
        assert!(
            Instant::now() < deadline,
            "no notification over mTLS within 6s; alertmanager log:\n{}",
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        peer,
        client_cert.der().to_vec(),
        "not our client certificate"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["instance"], "lb-1");
}
