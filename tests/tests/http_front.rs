//! The gateway's drop-in HTTP front, driven by the official `openai` and `anthropic`
//! Python SDKs (from PyPI, installed by `scripts/test-deps`) over mTLS: unary and
//! streamed answers, a tool round trip, and the SDKs' own typed errors for an opted-out
//! tenant, a disallowed or missing data type and a rate limit. Redaction and data-type
//! gating apply to HTTP exactly as to gRPC (one table of cases through both fronts); bad
//! JSON, unknown fields, oversize bodies, callers without a certificate and tenants other
//! than a scoped identity's get the API's error, nothing reaches the provider, and the
//! server keeps serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::PathBuf;

use serde_json::{Value, json};
use warden_integration_tests::{Cluster, enabled_tenant, logs_request};
use warden_proto::common::v1 as pb;
use warden_tls::Role;

const NAME: &str = "gateway.warden.internal";

fn python() -> PathBuf {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test-deps",
        py.display()
    );
    py
}

fn client(c: &Cluster, identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(NAME, c.http_addr);
    if let Some(name) = identity {
        let dir = c.pki.dir();
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}-key.pem"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

fn url(c: &Cluster, path: &str) -> String {
    format!("https://{NAME}:{}{path}", c.http_addr.port())
}

/// Runs the SDK script for `identity`; each scenario prints one JSON line.
fn sdk(c: &Cluster, identity: &str, scenarios: &[&str]) -> Vec<Value> {
    let dir = c.pki.dir();
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(SDK_SCRIPT)
        .arg(c.http_addr.port().to_string())
        .arg(c.pki.ca_cert_path())
        .arg(dir.join(format!("{identity}.pem")))
        .arg(dir.join(format!("{identity}-key.pem")))
        .args(scenarios)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SDK_SCRIPT: &str = r#"
import json, socket, sys
port, ca, cert, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
host = "gateway.warden.internal"
real = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: real("127.0.0.1" if h == host else h, *a, **k)
import ssl, httpx2, openai, anthropic
base = f"https://{host}:{port}"
def http():
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return httpx2.Client(verify=ctx)
oa = openai.OpenAI(base_url=base + "/v1", api_key="unused-mtls", http_client=http(), max_retries=0,
                   default_headers={"x-warden-data-type": "logs"})
an = anthropic.Anthropic(base_url=base, api_key="unused-mtls", http_client=http(), max_retries=0,
                         default_headers={"x-warden-data-type": "logs"})
LINE = "checkout failed for order 17: payment timeout"
def err(e):
    return {"error": type(e).__name__, "status": getattr(e, "status_code", None), "message": str(e)}
def run(name):
    try:
        if name == "openai_unary":
            r = oa.chat.completions.create(model="local", messages=[
                {"role": "system", "content": "be brief"}, {"role": "user", "content": LINE}])
            return {"id": r.id, "text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
                    "usage": r.usage.prompt_tokens if r.usage else None}
        if name == "openai_stream":
            s = oa.chat.completions.create(model="local", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": LINE}])
            text, finish, usage = "", None, None
            for ch in s:
                if ch.usage: usage = ch.usage.prompt_tokens
                for c in ch.choices:
                    text += c.delta.content or ""
                    finish = c.finish_reason or finish
            return {"text": text, "finish": finish, "usage": usage}
        if name == "openai_tools":
            tools = [{"type": "function", "function": {"name": "recent_logs", "description": "logs",
                      "parameters": {"type": "object", "properties": {}}}}]
            msgs = [{"role": "user", "content": "why did checkout fail?"}]
            r = oa.chat.completions.create(model="local", messages=msgs, tools=tools)
            call = r.choices[0].message.tool_calls[0]
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
            msgs.append({"role": "tool", "tool_call_id": call.id, "content": LINE, "data_type": "logs"})
            r2 = oa.chat.completions.create(model="local", messages=msgs, tools=tools)
            return {"first": r.choices[0].finish_reason, "tool": call.function.name,
                    "second": r2.choices[0].finish_reason, "text": r2.choices[0].message.content}
        if name == "anthropic_unary":
            r = an.messages.create(model="local", max_tokens=200, system="be brief",
                                   messages=[{"role": "user", "content": LINE}])
            return {"id": r.id, "text": r.content[0].text, "stop": r.stop_reason, "usage": r.usage.input_tokens}
        if name == "anthropic_stream":
            text = ""
            with an.messages.stream(model="local", max_tokens=200, system="be brief",
                                    messages=[{"role": "user", "content": LINE}]) as s:
                for t in s.text_stream:
                    text += t
                final = s.get_final_message()
            return {"text": text, "stop": final.stop_reason}
        if name == "openai_no_data_type":
            oa.chat.completions.create(model="local", messages=[{"role": "user", "content": LINE}],
                                       extra_headers={"x-warden-data-type": ""})
            return {"error": None}
        if name == "openai_source_code":
            oa.chat.completions.create(model="local", messages=[{"role": "user", "content": "fn main() {}", "data_type": "source_code"}])
            return {"error": None}
        if name == "anthropic_source_code":
            an.messages.create(model="local", max_tokens=50, messages=[{"role": "user", "content": "fn main() {}"}],
                               extra_headers={"x-warden-data-type": "source_code"})
            return {"error": None}
        if name == "openai_plain":
            oa.chat.completions.create(model="local", messages=[{"role": "user", "content": LINE}])
            return {"error": None}
        if name == "anthropic_plain":
            an.messages.create(model="local", max_tokens=50, messages=[{"role": "user", "content": LINE}])
            return {"error": None}
        if name == "openai_stream_plain":
            text = ""
            for ch in oa.chat.completions.create(model="local", stream=True,
                                                 messages=[{"role": "user", "content": LINE}]):
                for c in ch.choices:
                    text += c.delta.content or ""
            return {"error": None, "text": text}
        if name == "anthropic_stream_plain":
            text = ""
            with an.messages.stream(model="local", max_tokens=50,
                                    messages=[{"role": "user", "content": LINE}]) as s:
                for t in s.text_stream:
                    text += t
            return {"error": None, "text": text}
        if name == "models":
            return {"models": [m.id for m in oa.models.list()]}
        return {"unknown": name}
    except (openai.APIError, anthropic.APIError) as e:
        return err(e)
for name in sys.argv[5:]:
    print(json.dumps(dict(run(name), scenario=name)), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_get_answers_streams_and_tool_calls_through_the_same_pipeline() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Agent, "agent-acme", &["acme"]);
    let out = sdk(
        &c,
        "agent-acme",
        &[
            "openai_unary",
            "openai_stream",
            "openai_tools",
            "anthropic_unary",
            "anthropic_stream",
            "models",
        ],
    );
    let by = |n: &str| out.iter().find(|v| v["scenario"] == n).unwrap().clone();
    let unary = by("openai_unary");
    assert!(
        unary["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{unary}"
    );
    assert!(
        unary["text"].as_str().unwrap().contains("payment timeout"),
        "{unary}"
    );
    assert_eq!(unary["finish"], "stop");
    assert!(unary["usage"].as_u64().unwrap() > 0);
    let stream = by("openai_stream");
    assert_eq!(
        stream["text"], unary["text"],
        "streamed and unary answers agree"
    );
    assert_eq!(stream["finish"], "stop");
    assert!(stream["usage"].as_u64().unwrap() > 0);
    let tools = by("openai_tools");
    assert_eq!(tools["first"], "tool_calls", "{tools}");
    assert_eq!(tools["tool"], "recent_logs");
    let a = by("anthropic_unary");
    assert!(a["id"].as_str().unwrap().starts_with("msg_"), "{a}");
    assert!(
        a["text"].as_str().unwrap().contains("payment timeout"),
        "{a}"
    );
    assert_eq!(a["stop"], "end_turn");
    let s = by("anthropic_stream");
    assert_eq!(s["text"], a["text"], "{s}");
    assert_eq!(s["stop"], "end_turn");
    assert_eq!(by("models")["models"], json!(["local"]));
    // Every call went through the audited pipeline: intent and outcome per call.
    let records = c.audit_records("acme").await;
    let intents = records
        .iter()
        .filter(|r| r.kind == pb::AuditKind::Intent as i32)
        .count();
    assert_eq!(intents, 6, "2 OpenAI + 2 tool round trip + 2 Anthropic");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_raise_their_own_typed_errors_and_nothing_reaches_the_provider() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Agent, "agent-acme", &["acme"]);
    let before = c.local.calls();
    let out = sdk(
        &c,
        "agent-acme",
        &[
            "openai_no_data_type",
            "openai_source_code",
            "anthropic_source_code",
        ],
    );
    for v in &out {
        let expect = match v["scenario"].as_str().unwrap() {
            "openai_no_data_type" => ("BadRequestError", 400, "carries no data type"),
            _ => ("PermissionDeniedError", 403, "source code may not be sent"),
        };
        assert_eq!(v["error"], expect.0, "{v}");
        assert_eq!(v["status"], expect.1, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(expect.2),
            "{v}"
        );
    }
    // Opted out.
    c.set_tenant(pb::TenantSettings {
        enabled: false,
        ..enabled_tenant("acme")
    })
    .await;
    for v in sdk(&c, "agent-acme", &["openai_plain", "anthropic_plain"]) {
        assert_eq!(v["error"], "PermissionDeniedError", "{v}");
        assert_eq!(v["status"], 403, "{v}");
    }
    // Over the tenant's rate: the SDKs' RateLimitError, with retry-after.
    let mut limited = enabled_tenant("acme");
    limited.budgets = Some(pb::Budgets {
        max_requests_per_minute: 1,
        ..Default::default()
    });
    c.set_tenant(limited).await;
    let out = sdk(
        &c,
        "agent-acme",
        &["openai_plain", "openai_plain", "anthropic_plain"],
    );
    assert_eq!(out[0]["error"], Value::Null, "{}", out[0]);
    assert_eq!(out[1]["error"], "RateLimitError", "{}", out[1]);
    assert_eq!(out[2]["error"], "RateLimitError", "{}", out[2]);
    assert_eq!(
        c.local.calls(),
        before + 1,
        "only the one allowed call reached the provider"
    );
    let res = client(&c, Some("agent-acme"))
        .post(url(&c, "/v1/chat/completions"))
        .header("x-warden-data-type", "logs")
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    c.stop().await;
}

/// A provider that fails, through the OpenAI adapter to a mock speaking OpenAI's wire
/// protocol: before an answer the SDKs raise their own server error (503, naming the
/// provider), during a stream their stream error; each call's outcome names the class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_the_sdks_own_error_before_and_during_a_stream() {
    use warden_testkit::Fault;
    const KEY: &str = "sk-test-provider-key";
    let ca = warden_testkit::TestCa::new().unwrap();
    let mock = warden_testkit::MockServer::start(
        &ca,
        warden_testkit::openai::OpenAiMock {
            expected_key: Some(KEY.into()),
        },
    )
    .await
    .unwrap();
    let mut cfg = warden_providers::OpenAiConfig::new(
        "openai",
        Some(secrecy::SecretString::from(KEY)),
        warden_providers::LOCAL_MODEL,
    );
    cfg.base_url = format!("{}/v1", mock.url());
    cfg.http = warden_providers::HttpSettings {
        extra_root_ca_pem: vec![ca.ca_pem()],
        ..Default::default()
    };
    let c = Cluster::start_with(warden_integration_tests::Options {
        provider: Some(std::sync::Arc::new(
            warden_providers::OpenAi::new(cfg).unwrap(),
        )),
        ..Default::default()
    })
    .await;
    c.set_tenant(pb::TenantSettings {
        allowed_providers: vec!["openai".into()],
        ..enabled_tenant("acme")
    })
    .await;
    c.issue(Role::Agent, "agent-acme", &["acme"]);

    // Unavailable before anything was answered: both attempts the router makes get 503.
    for (scenario, error) in [
        ("openai_plain", "InternalServerError"),
        ("anthropic_stream_plain", "ServiceUnavailableError"),
    ] {
        let before = mock.calls();
        mock.script([Fault::status(503), Fault::status(503)]);
        let v = sdk(&c, "agent-acme", &[scenario]).remove(0);
        assert_eq!(v["error"], error, "{v}");
        assert_eq!(v["status"], 503, "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("openai"), "names the provider: {v}");
        assert!(!message.contains(KEY), "{v}");
        assert_eq!(
            mock.calls() - before,
            2,
            "{scenario}: one retry, then the error"
        );
    }
    // The provider is back.
    let v = sdk(&c, "agent-acme", &["openai_plain"]).remove(0);
    assert_eq!(v["error"], Value::Null, "{v}");
    // A failure after the answer started: the stream ends with the SDK's stream error.
    for (scenario, error) in [
        ("openai_stream_plain", "APIError"),
        ("anthropic_stream_plain", "APIStatusError"),
    ] {
        mock.script([Fault::StreamErrorAfter(2)]);
        let v = sdk(&c, "agent-acme", &[scenario]).remove(0);
        assert_eq!(v["error"], error, "{scenario}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("openai"),
            "{scenario}: {v}"
        );
    }
    let records = c.settled_audit_records("acme").await;
    let mut outcomes: Vec<&str> = records
        .iter()
        .filter(|r| r.kind == pb::AuditKind::Outcome as i32)
        .map(|r| r.outcome.as_str())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    // The mock's mid-stream event is OpenAI's `server_error`, which the adapter reads as 500.
    assert_eq!(
        &outcomes[..],
        &["http_500", "http_500", "http_503", "http_503", "ok"][..]
    );
    c.stop().await;
}

/// One table of minimization cases through gRPC `Complete` and both HTTP APIs: what the
/// provider saw is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_and_gating_apply_to_http_exactly_as_to_grpc() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let cases = [
        (
            "login failed for ann@example.com with key AKIAIOSFODNN7EXAMPLE",
            &["ann@example.com", "AKIAIOSFODNN7EXAMPLE"][..],
        ),
        (
            "db password=hunter2-very-secret for user 12",
            &["hunter2-very-secret"][..],
        ),
    ];
    let http = client(&c, Some("agent"));
    for (text, secrets) in cases {
        let mut seen = Vec::new();
        c.gateway("agent")
            .complete(logs_request("acme", text))
            .await
            .unwrap();
        seen.push(format!("{:?}", c.local.requests().pop().unwrap()));
        let res = http
            .post(url(&c, "/v1/chat/completions"))
            .header("x-warden-tenant", "acme")
            .header("x-warden-purpose", "alert")
            .json(&json!({"model": "local", "messages": [{"role": "user", "content": text, "data_type": "logs"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        seen.push(format!("{:?}", c.local.requests().pop().unwrap()));
        let res = http
            .post(url(&c, "/v1/messages"))
            .header("x-warden-tenant", "acme")
            .header("x-warden-purpose", "alert")
            .header("x-warden-data-type", "logs")
            .json(&json!({"model": "local", "max_tokens": 100, "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        seen.push(format!("{:?}", c.local.requests().pop().unwrap()));
        for (front, sent) in ["grpc", "openai", "anthropic"].iter().zip(&seen) {
            for s in secrets {
                assert!(
                    !sent.contains(s),
                    "{s} reached the provider through {front}: {sent}"
                );
            }
        }
        let messages = |s: &str| {
            let from = s.find("messages").unwrap();
            s[from..from + s[from..].find(", tools").unwrap()].to_owned()
        };
        assert_eq!(
            messages(&seen[0]),
            messages(&seen[1]),
            "gRPC and OpenAI sent the same"
        );
        assert_eq!(
            messages(&seen[0]),
            messages(&seen[2]),
            "gRPC and Anthropic sent the same"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_strangers_get_the_apis_error_and_the_server_keeps_serving() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.set_tenant(enabled_tenant("beta")).await;
    c.issue(Role::Agent, "agent-acme", &["acme"]);
    let before = c.local.calls();
    let http = client(&c, Some("agent-acme"));
    let post = |path: &str, body: Vec<u8>| {
        http.post(url(&c, path))
            .header("content-type", "application/json")
            .header("x-warden-data-type", "logs")
            .body(body)
            .send()
    };
    // Bad JSON, an unknown field, an oversized body: 400/400/413 in each API's format.
    for (path, kind_at) in [
        ("/v1/chat/completions", "/error/type"),
        ("/v1/messages", "/error/type"),
    ] {
        let bad = post(path, b"{not json".to_vec()).await.unwrap();
        assert_eq!(bad.status(), 400);
        let v: Value = bad.json().await.unwrap();
        assert_eq!(v.pointer(kind_at).unwrap(), "invalid_request_error", "{v}");
        let unknown = post(
            path,
            json!({"model": "local", "max_tokens": 5, "messages": [], "frequency_penaltyy": 1})
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(unknown.status(), 400);
        assert!(unknown.text().await.unwrap().contains("frequency_penaltyy"));
        let huge = post(path, vec![b' '; 17 * 1024 * 1024]).await.unwrap();
        assert_eq!(huge.status(), 413);
    }
    // Another tenant than the certificate's.
    let other = http
        .post(url(&c, "/v1/chat/completions"))
        .header("x-warden-tenant", "beta")
        .header("x-warden-data-type", "logs")
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    // No client certificate.
    let stranger = client(&c, None)
        .post(url(&c, "/v1/messages"))
        .json(&json!({"model": "local", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401);
    let v: Value = stranger.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    // A slow-loris connection that never finishes its headers does not stop others.
    let mut slow = tokio::net::TcpStream::connect(c.http_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"\x16\x03\x01")
        .await
        .unwrap();
    assert_eq!(c.local.calls(), before, "nothing reached the provider");
    let ok = http
        .post(url(&c, "/v1/chat/completions"))
        .header("x-warden-data-type", "logs")
        .json(
            &json!({"model": "local", "messages": [{"role": "user", "content": "still serving?"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the server keeps serving");
    drop(slow);
    c.stop().await;
}

/// A model that starts its answer, then says nothing more until its stream is dropped.
struct Trickle {
    local: std::sync::Arc<warden_providers::LocalProvider>,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

struct Open(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl warden_providers::Provider for Trickle {
    fn name(&self) -> &str {
        "local"
    }

    async fn complete(
        &self,
        req: &warden_providers::ChatRequest,
    ) -> Result<warden_providers::ChatResponse, warden_providers::ProviderError> {
        self.local.complete(req).await
    }

    async fn stream(
        &self,
        _req: &warden_providers::ChatRequest,
    ) -> Result<warden_providers::EventStream, warden_providers::ProviderError> {
        use futures::StreamExt;
        use warden_providers::StreamEvent;
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = Open(self.open.clone());
        let first = futures::stream::iter([
            Ok(StreamEvent::Start {
                model: "trickle".into(),
            }),
            Ok(StreamEvent::TextDelta {
                text: "first words".into(),
            }),
        ]);
        let rest = futures::stream::pending().map(move |e| {
            let _ = &guard;
            e
        });
        Ok(Box::pin(first.chain(rest)))
    }
}

const KEY_SCRIPT: &str = r#"
import json, socket, ssl, sys
port, ca, key = sys.argv[1], sys.argv[2], sys.argv[3]
host = "gateway.warden.internal"
real = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: real("127.0.0.1" if h == host else h, *a, **k)
import httpx2, openai, anthropic
ctx = ssl.create_default_context(cafile=ca)
base = f"https://{host}:{port}"
oa = openai.OpenAI(base_url=base + "/v1", api_key=key, http_client=httpx2.Client(verify=ctx), max_retries=0)
an = anthropic.Anthropic(base_url=base, api_key=key, http_client=httpx2.Client(verify=ctx), max_retries=0)
out = {}
try:
    r = oa.chat.completions.create(model="local", messages=[{"role": "user", "content": "checkout is failing"}])
    out["openai"] = r.choices[0].message.content
    m = an.messages.create(model="local", max_tokens=50, messages=[{"role": "user", "content": "checkout is failing"}])
    out["anthropic"] = m.content[0].text
except (openai.APIStatusError, anthropic.APIStatusError) as e:
    out["error"] = type(e).__name__
    out["status"] = e.status_code
print(json.dumps(out))
"#;

fn sdk_with_key(c: &Cluster, key: &str) -> Value {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(KEY_SCRIPT)
        .arg(c.http_addr.port().to_string())
        .arg(c.pki.ca_cert_path())
        .arg(key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_stands_for_its_tenant_and_its_revocation_ends_an_open_stream() {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = Cluster::start_with(warden_integration_tests::Options {
        provider: Some(std::sync::Arc::new(Trickle {
            local: std::sync::Arc::new(warden_providers::LocalProvider::new("local")),
            open: open.clone(),
        })),
        ..Default::default()
    })
    .await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.set_tenant(enabled_tenant("beta")).await;
    let admin = warden_rpc::connect(
        &c.storage_addr.to_string(),
        &warden_rpc::Security::Mtls(c.pki.files("admin")),
        Role::Storage,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let mut keys = warden_proto::storage::v1::api_keys_client::ApiKeysClient::new(admin);
    let created = keys
        .create_api_key(warden_proto::storage::v1::CreateApiKeyRequest {
            tenant_id: "acme".into(),
            identity: "triage-bot".into(),
            default_data_type: pb::DataType::Logs as i32,
            description: "the triage bot".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.key.starts_with("wdn_key_"));
    // The official SDKs with nothing but the key (no client certificate).
    let out = sdk_with_key(&c, &created.key);
    assert!(
        out["openai"]
            .as_str()
            .unwrap()
            .contains("checkout is failing"),
        "{out}"
    );
    assert!(out["anthropic"].is_string(), "{out}");
    let records = c.audit_records("acme").await;
    assert!(
        records
            .iter()
            .any(|r| r.caller.contains("triage-bot") && r.caller.contains(&created.key_id)),
        "the key's identity is the caller in the audit log"
    );
    // The key is its tenant's only.
    let http = client(&c, None);
    let other = http
        .post(url(&c, "/v1/chat/completions"))
        .bearer_auth(&created.key)
        .header("x-warden-tenant", "beta")
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    // A stream is open and has said its first words; the key is revoked.
    let mut stream = http
        .post(url(&c, "/v1/chat/completions"))
        .bearer_auth(&created.key)
        .json(&json!({"model": "local", "stream": true, "messages": [{"role": "user", "content": "go on"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    while !seen.contains("first words") {
        let chunk = stream.chunk().await.unwrap().expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(open.load(std::sync::atomic::Ordering::SeqCst), 1);
    keys.revoke_api_key(warden_proto::storage::v1::RevokeApiKeyRequest {
        tenant_id: "acme".into(),
        key_id: created.key_id.clone(),
    })
    .await
    .unwrap();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut rest = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ended after the revocation");
    assert!(rest.contains("revoked"), "{rest}");
    for _ in 0..100 {
        if open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        open.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream request was cancelled"
    );
    // And the key opens nothing any more, on either API.
    let out = sdk_with_key(&c, &created.key);
    assert_eq!(out["error"], "AuthenticationError", "{out}");
    assert_eq!(out["status"], 401, "{out}");
    c.stop().await;
}
