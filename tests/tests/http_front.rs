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
        if name == "models":
            return {"models": [m.id for m in oa.models.list()]}
        return {"unknown": name}
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
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
