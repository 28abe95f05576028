//! The agent service's webhooks over HTTPS, as the senders post them: Kubernetes events,
//! GitHub `deployment_status` (signed), Argo CD notifications and Alertmanager payloads;
//! authenticated per tenant by an ingest certificate, an ingest token or GitHub's
//! signature; bad payloads and credentials refused with a reason, creating nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use warden_integration_tests::{Cluster, enabled_tenant};
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_proto::telemetry::v1 as tm;
use warden_tls::Role;

const AGENT_NAME: &str = "agent.warden.internal";

/// An HTTPS client for the webhook listener; with `identity`, it presents that certificate.
fn client(c: &Cluster, identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(AGENT_NAME, c.webhooks_addr);
    if let Some(name) = identity {
        let dir = c.pki.dir();
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}-key.pem"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

fn url(c: &Cluster, path: &str) -> String {
    format!("https://{AGENT_NAME}:{}{path}", c.webhooks_addr.port())
}

async fn post(req: reqwest::RequestBuilder, body: &Value) -> (u16, Value) {
    let res = req
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn runs(c: &Cluster, tenant: &str) -> Vec<st::Run> {
    c.agent("admin")
        .list_runs(warden_proto::agent::v1::ListRunsRequest {
            tenant_id: tenant.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs
}

async fn ingest_token(c: &Cluster, tenant: &str) -> String {
    tm::ingest_tokens_client::IngestTokensClient::new(c.channel("admin", c.storage_addr))
        .create_ingest_token(tm::CreateIngestTokenRequest {
            tenant_id: tenant.into(),
            description: "webhooks".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// A core/v1 Warning event as kubernetes-event-exporter posts it.
fn backoff(pod: &str, count: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.17a1b2c3d4e5f6a7"), "namespace": "shop", "uid": format!("uid-{pod}")},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": pod, "uid": format!("pod-{pod}"), "apiVersion": "v1", "fieldPath": "spec.containers{checkout}"},
        "reason": "BackOff", "message": "Back-off restarting failed container checkout in pod",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-12-05T10:00:00Z", "lastTimestamp": "2026-12-05T10:04:00Z",
        "count": count, "type": "Warning", "reportingComponent": "kubelet"
    })
}

#[tokio::test]
async fn kubernetes_warnings_start_one_investigation_per_object_and_reason() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Ingest, "hooks-acme", &["acme"]);
    let http = client(&c, Some("hooks-acme"));
    let normal = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "checkout-1"}, "reason": "Pulled",
        "message": "image pulled", "type": "Normal", "firstTimestamp": "2026-12-05T10:00:00Z", "lastTimestamp": "2026-12-05T10:00:00Z", "count": 1});
    let (status, body) = post(
        http.post(url(&c, "/webhooks/kubernetes")),
        &json!([backoff("checkout-7d9f8c6b5-x4kpq", 3), normal]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["runs"].as_array().unwrap().len(),
        1,
        "the Normal event starts nothing: {body}"
    );
    // The exporter re-posts the event as its count grows: same object, reason and window.
    let (status, again) = post(
        http.post(url(&c, "/webhooks/kubernetes")),
        &backoff("checkout-7d9f8c6b5-x4kpq", 5),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(again["runs"][0]["duplicate"], true, "{again}");
    assert_eq!(again["runs"][0]["id"], body["runs"][0]["id"]);
    let listed = runs(&c, "acme").await;
    assert_eq!(listed.len(), 1);
    let run = c.wait_run("acme", &listed[0].id).await;
    assert_eq!(run.purpose, pb::Purpose::ClusterEvent as i32);
    assert!(
        run.trigger_json.contains("checkout-7d9f8c6b5-x4kpq"),
        "{}",
        run.trigger_json
    );
    assert!(
        run.events.iter().any(|e| e.kind == "repeat"),
        "{:?}",
        run.events
    );
    c.stop().await;
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// GitHub's documented `deployment_status` payload, trimmed.
fn deployment_status(state: &str) -> Value {
    json!({
        "action": "created",
        "deployment_status": {"id": 2, "state": state, "environment": "production", "created_at": "2026-12-05T10:00:00Z", "updated_at": "2026-12-05T10:00:00Z", "target_url": "", "description": ""},
        "deployment": {"id": 1, "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b", "ref": "main", "task": "deploy", "environment": "production", "created_at": "2026-12-05T09:59:00Z", "updated_at": "2026-12-05T10:00:00Z", "payload": {}, "description": null},
        "repository": {"id": 186853002, "name": "checkout", "full_name": "acme/checkout", "html_url": "https://github.com/acme/checkout"},
        "sender": {"login": "Codertocat", "id": 21031067, "type": "User"}
    })
}

#[tokio::test]
async fn a_github_deployment_is_verified_by_the_tenants_secret_and_deduplicated_by_delivery() {
    let c = Cluster::start().await;
    let secret = "whsec-acme-7c1d0e";
    let creds = c.source_token("acme", secret).await;
    let mut s = enabled_tenant("acme");
    s.github = Some(pb::GitHubSource {
        webhook_secret_id: creds,
        ..Default::default()
    });
    c.set_tenant(s).await;
    c.set_tenant(enabled_tenant("beta")).await;
    let http = client(&c, None);
    let body = deployment_status("success").to_string();
    let send = |path: &str, sig: String, delivery: &str, event: &str, body: String| {
        http.post(url(&c, path))
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", sig)
            .header("X-GitHub-Delivery", delivery.to_owned())
            .header("X-GitHub-Event", event.to_owned())
            .body(body)
            .send()
    };
    let d1 = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let ok = send(
        "/webhooks/github/acme",
        sign(secret, body.as_bytes()),
        d1,
        "deployment_status",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    let redelivered = send(
        "/webhooks/github/acme",
        sign(secret, body.as_bytes()),
        d1,
        "deployment_status",
        body.clone(),
    )
    .await
    .unwrap();
    let v: Value = redelivered.json().await.unwrap();
    assert_eq!(
        v["runs"][0]["duplicate"], true,
        "a redelivery starts nothing: {v}"
    );
    // A flipped byte, a wrong secret, no signature, another tenant's URL: refused, nothing made.
    let mut tampered = body.clone().into_bytes();
    tampered[10] ^= 1;
    for (path, sig, b) in [
        (
            "/webhooks/github/acme",
            sign(secret, body.as_bytes()),
            String::from_utf8_lossy(&tampered).into_owned(),
        ),
        (
            "/webhooks/github/acme",
            sign("not-the-secret", body.as_bytes()),
            body.clone(),
        ),
        ("/webhooks/github/acme", String::new(), body.clone()),
    ] {
        let r = send(
            path,
            sig,
            "72d3162e-cc78-11e3-81ab-4c9367dc0959",
            "deployment_status",
            b,
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.text().await.unwrap().contains("X-Hub-Signature-256"));
    }
    let beta = send(
        "/webhooks/github/beta",
        sign(secret, body.as_bytes()),
        "72d3162e-cc78-11e3-81ab-4c9367dc0960",
        "deployment_status",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        beta.status().as_u16(),
        404,
        "beta has no webhook secret: nothing is accepted for it"
    );
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1}).to_string();
    let r = send(
        "/webhooks/github/acme",
        sign(secret, ping.as_bytes()),
        "72d3162e-cc78-11e3-81ab-4c9367dc0961",
        "ping",
        ping,
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200, "a ping starts nothing");
    let listed = runs(&c, "acme").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].purpose, pb::Purpose::Deployment as i32);
    assert!(runs(&c, "beta").await.is_empty());
    let run = c.wait_run("acme", &listed[0].id).await;
    assert!(
        run.trigger_json
            .contains("9049f1265b7d61be4a8904a9a27120d2064dab3b")
    );
    c.stop().await;
}

#[tokio::test]
async fn an_argocd_notification_with_an_ingest_token_starts_a_deployment_verification() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let token = ingest_token(&c, "acme").await;
    let http = client(&c, None);
    let body = json!({"app": "checkout", "revision": "b2c3d4e", "syncStatus": "Synced", "healthStatus": "Healthy",
        "operationPhase": "Succeeded", "namespace": "shop", "repoURL": "https://github.com/acme/checkout", "finishedAt": "2026-12-05T10:00:00Z"});
    let (status, v) = post(
        http.post(url(&c, "/webhooks/argocd")).bearer_auth(&token),
        &body,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let (_, again) = post(
        http.post(url(&c, "/webhooks/argocd")).bearer_auth(&token),
        &body,
    )
    .await;
    assert_eq!(
        again["runs"][0]["duplicate"], true,
        "Argo CD retried: {again}"
    );
    let listed = runs(&c, "acme").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].purpose, pb::Purpose::Deployment as i32);
    c.stop().await;
}

/// Alertmanager's `version: "4"` payload.
fn alertmanager(status: &str, fingerprint: &str, starts_at: &str) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0, "status": status,
        "receiver": "warden", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
        "commonAnnotations": {"summary": "checkout 5xx above 5%"}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": status, "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
            "annotations": {"summary": "checkout 5xx above 5%"}, "startsAt": starts_at,
            "endsAt": if status == "resolved" { "2026-12-05T10:30:00Z" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

#[tokio::test]
async fn bad_payloads_and_bad_credentials_get_a_4xx_with_the_reason_and_create_nothing() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Ingest, "hooks-acme", &["acme"]);
    c.issue(Role::Viewer, "viewer-acme", &["acme"]);
    let token = ingest_token(&c, "acme").await;
    let good = alertmanager("firing", "c2a7e1f0a1b2c3d4", "2026-12-05T10:00:00Z");
    let anon = client(&c, None);
    let (s, v) = post(anon.post(url(&c, "/webhooks/alertmanager")), &good).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("ingest certificate"),
        "{v}"
    );
    let (s, _) = post(
        anon.post(url(&c, "/webhooks/alertmanager")).bearer_auth(
            "wdn_ingest_0000000000000000000000000000000000000000000000000000000000000000",
        ),
        &good,
    )
    .await;
    assert_eq!(s, 401);
    for who in ["admin", "agent", "viewer-acme"] {
        let (s, v) = post(
            client(&c, Some(who)).post(url(&c, "/webhooks/alertmanager")),
            &good,
        )
        .await;
        assert_eq!(s, 403, "{who}: {v}");
    }
    let http = client(&c, Some("hooks-acme"));
    let (s, v) = post(
        http.post(url(&c, "/webhooks/alertmanager")),
        &json!({"version": "4", "alerts": "none"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("alerts"), "{v}");
    let res = http
        .post(url(&c, "/webhooks/kubernetes"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let huge = "x".repeat(2 * 1024 * 1024);
    let res = http
        .post(url(&c, "/webhooks/kubernetes"))
        .bearer_auth(&token)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert!(runs(&c, "acme").await.is_empty(), "nothing was created");
    assert_eq!(c.local.calls(), 0, "nothing reached a model");
    c.stop().await;
}

#[tokio::test]
async fn alerts_fire_once_per_start_are_skipped_while_ai_is_off_and_resolved_is_attached() {
    let c = Cluster::start().await;
    c.issue(Role::Ingest, "hooks-acme", &["acme"]);
    let mut off = enabled_tenant("acme");
    off.enabled = false;
    c.set_tenant(off).await;
    let http = client(&c, Some("hooks-acme"));
    let firing = alertmanager("firing", "c2a7e1f0a1b2c3d4", "2026-12-05T10:00:00Z");
    let (s, v) = post(http.post(url(&c, "/webhooks/alertmanager")), &firing).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        v["runs"][0]["status"], "RUN_STATUS_SKIPPED",
        "recorded, not investigated: {v}"
    );
    assert_eq!(c.local.calls(), 0, "nothing reached a model");
    // Opted in, the same alert (still firing) is investigated after all, exactly once.
    c.set_tenant(enabled_tenant("acme")).await;
    let (_, v) = post(http.post(url(&c, "/webhooks/alertmanager")), &firing).await;
    assert_eq!(v["runs"][0]["status"], "RUN_STATUS_QUEUED", "{v}");
    let id = v["runs"][0]["id"].as_str().unwrap().to_owned();
    let (_, repeat) = post(http.post(url(&c, "/webhooks/alertmanager")), &firing).await;
    assert_eq!(
        repeat["runs"][0]["duplicate"], true,
        "a repeat notification starts nothing"
    );
    let (s, _) = post(
        http.post(url(&c, "/webhooks/alertmanager")),
        &alertmanager("resolved", "c2a7e1f0a1b2c3d4", "2026-12-05T10:00:00Z"),
    )
    .await;
    assert_eq!(s, 200, "a resolved notification starts nothing");
    let run = c.wait_run("acme", &id).await;
    assert!(
        run.events.iter().any(|e| e.kind == "resolved"),
        "{:?}",
        run.events
    );
    // Firing again after it resolved is a new alert: a new investigation.
    let (_, v) = post(
        http.post(url(&c, "/webhooks/alertmanager")),
        &alertmanager("firing", "c2a7e1f0a1b2c3d4", "2026-12-05T11:00:00Z"),
    )
    .await;
    assert_eq!(v["runs"][0]["duplicate"], false, "{v}");
    let listed = runs(&c, "acme").await;
    let statuses: Vec<i32> = listed.iter().map(|r| r.status).collect();
    assert_eq!(listed.len(), 3, "{statuses:?}");
    assert_eq!(
        listed
            .iter()
            .filter(|r| r.status == st::RunStatus::Skipped as i32)
            .count(),
        1
    );
    c.stop().await;
}

/// Runs of the tenant, polled until there are `n` (or 15 s pass).
async fn wait_runs(c: &Cluster, tenant: &str, n: usize) -> Vec<st::Run> {
    for _ in 0..150 {
        let r = runs(c, tenant).await;
        if r.len() >= n {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    runs(c, tenant).await
}

#[tokio::test]
async fn a_real_alertmanager_starts_one_investigation_per_group_and_none_for_repeats() {
    use warden_testkit::alertmanager::{Alertmanager, Receiver, Timing};
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Ingest, "alertmanager-acme", &["acme"]);
    let dir = c.pki.dir();
    let am = Alertmanager::start(
        &Receiver {
            server_name: Some(AGENT_NAME.into()),
            url: format!(
                "https://127.0.0.1:{}/webhooks/alertmanager",
                c.webhooks_addr.port()
            ),
            ca_pem_path: c.pki.ca_cert_path(),
            bearer_token: None,
            client_cert: Some((
                dir.join("alertmanager-acme.pem"),
                dir.join("alertmanager-acme-key.pem"),
            )),
        },
        Timing::fast(),
    );
    let alert = |name: &str, instance: &str| {
        json!({"labels": {"alertname": name, "service": "checkout", "instance": instance, "severity": "page"},
               "annotations": {"summary": format!("{name} on {instance}")},
               "generatorURL": "http://prometheus:9090/graph"})
    };
    am.post_alerts(&[
        alert("HighErrorRate", "checkout-1"),
        alert("HighErrorRate", "checkout-2"),
        alert("DiskFull", "checkout-1"),
    ])
    .await;
    let listed = wait_runs(&c, "acme", 2).await;
    assert_eq!(listed.len(), 2, "one investigation per group: {}", am.log());
    let group = listed
        .iter()
        .find(|r| r.trigger_json.contains("HighErrorRate"))
        .expect("the HighErrorRate group's run");
    assert_eq!(
        group.keys.len(),
        2,
        "both alerts of the group in one run: {:?}",
        group.keys
    );
    // Alertmanager repeats an unchanged group after repeat_interval: nothing new starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while am.log().matches("Notify success").count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no repeat notification: {}",
            am.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        runs(&c, "acme").await.len(),
        2,
        "a repeat notification started an investigation"
    );
    // Resolving an alert attaches the resolved notification to its run.
    am.resolve(&[
        ("alertname", "DiskFull"),
        ("service", "checkout"),
        ("instance", "checkout-1"),
        ("severity", "page"),
    ])
    .await;
    let disk = listed
        .iter()
        .find(|r| r.trigger_json.contains("DiskFull"))
        .unwrap()
        .id
        .clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let run = c.wait_run("acme", &disk).await;
        if run.events.iter().any(|e| e.kind == "resolved") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "resolved never attached: {}",
            am.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(runs(&c, "acme").await.len(), 2);
    c.stop().await;
}
