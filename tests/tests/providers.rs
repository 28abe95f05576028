//! Model providers end to end: an agent calls the gateway over mTLS, the gateway routes
//! through a real routing config to the `warden-testkit` mocks (Anthropic, OpenAI,
//! Bedrock in the platform's and a customer's account, STS) over TLS on loopback, and the
//! tests assert what the mocks received, what the caller got and what the audit log says.
//! Every test is bounded: a hang fails it instead of stalling CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;
use warden_integration_tests::mocks::{self, Mocks, Tuning};
use warden_integration_tests::{Cluster, Options, logs_request};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_testkit::Recorded;

/// Every test must finish well inside this, or it is a hang.
const LIMIT: Duration = Duration::from_secs(30);

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time bound (a hang)")
}

/// A secret the gateway must redact before anything leaves.
const LEAKED_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

async fn world(t: Tuning) -> (Mocks, Cluster) {
    let m = Mocks::start().await;
    let c = Cluster::start_with(Options {
        providers: Some(m.providers_file(&t, None)),
        ..Options::default()
    })
    .await;
    (m, c)
}

fn tenant(id: &str, providers: &[&str]) -> pb::TenantSettings {
    pb::TenantSettings {
        tenant_id: id.into(),
        enabled: true,
        allowed_data_types: vec![pb::DataType::Logs as i32],
        allowed_providers: providers.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    }
}

fn ask(tenant_id: &str) -> gw::CompleteRequest {
    logs_request(
        tenant_id,
        &format!("checkout ERROR payment timeout; aws_access_key_id={LEAKED_KEY}"),
    )
}

fn weather_tool() -> gw::ToolDefinition {
    gw::ToolDefinition {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        input_schema_json:
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#
                .into(),
    }
}

fn reason(s: &tonic::Status) -> String {
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// The model id a mock was asked for.
fn model_sent(r: &Recorded) -> String {
    if let Some(rest) = r.path.strip_prefix("/model/") {
        let enc = rest.rsplit_once('/').map_or(rest, |(m, _)| m);
        return enc.replace("%3A", ":").replace("%3a", ":");
    }
    r.json()["model"].as_str().unwrap_or_default().to_owned()
}

fn mock<'a>(m: &'a Mocks, provider: &str) -> &'a warden_testkit::MockServer {
    match provider {
        "anthropic" => &m.anthropic,
        "openai" => &m.openai,
        "bedrock" | "bedrock-customer" => &m.bedrock,
        other => panic!("no mock for {other}"),
    }
}

fn expected_model(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "claude-e2e-reasoning",
        "openai" => "gpt-e2e-reasoning",
        "bedrock" => "anthropic.claude-e2e-platform",
        "bedrock-customer" => "anthropic.claude-e2e-customer",
        other => panic!("no model for {other}"),
    }
}

/// Every audit record of a tenant.
async fn audit_records(c: &Cluster, tenant_id: &str) -> Vec<pb::AuditRecord> {
    c.audit("compliance")
        .query_audit_records(gw::QueryAuditRecordsRequest {
            tenant_id: tenant_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

/// The outcome record linked to `intent_id`, waiting (bounded) for a stream's relay task
/// to write it.
async fn outcome_of(c: &Cluster, tenant_id: &str, intent_id: &str) -> pb::AuditRecord {
    for _ in 0..200 {
        let found = audit_records(c, tenant_id)
            .await
            .into_iter()
            .find(|r| r.kind == pb::AuditKind::Outcome as i32 && r.intent_id == intent_id);
        if let Some(r) = found {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no outcome record for intent {intent_id} within 5 s");
}

/// The only outcome record of a tenant (for calls that failed before an intent id reached us).
async fn only_outcome(c: &Cluster, tenant_id: &str) -> pb::AuditRecord {
    for _ in 0..200 {
        let mut outcomes: Vec<_> = audit_records(c, tenant_id)
            .await
            .into_iter()
            .filter(|r| r.kind == pb::AuditKind::Outcome as i32)
            .collect();
        if outcomes.len() == 1 {
            return outcomes.remove(0);
        }
        assert!(outcomes.len() < 2, "{outcomes:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no outcome record for {tenant_id} within 5 s");
}

fn attempts(r: &[pb::Attempt]) -> Vec<(String, String, String)> {
    r.iter()
        .map(|a| (a.provider.clone(), a.model.clone(), a.outcome.clone()))
        .collect()
}

fn ok_attempt(provider: &str) -> (String, String, String) {
    (
        provider.to_owned(),
        expected_model(provider).to_owned(),
        "ok".to_owned(),
    )
}

/// Everything a stream delivered, until its end or its error.
async fn drain(
    mut s: tonic::Streaming<gw::CompleteStreamEvent>,
) -> (Vec<gw::complete_stream_event::Event>, Option<tonic::Status>) {
    let mut events = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(ev) => events.push(ev.event.unwrap()),
            Err(status) => return (events, Some(status)),
        }
    }
    (events, None)
}

/// No credential of any kind in `text`.
fn assert_no_secrets(what: &str, text: &str) {
    for s in mocks::SECRETS {
        assert!(!text.contains(s), "{what} carries a credential: {text}");
    }
}

/// Unary, stream and a tool-call round trip through the gateway to one provider.
async fn walk(provider: &str, greeting: &str) {
    let (m, c) = world(Tuning::default()).await;
    c.set_tenant(tenant("acme", &[provider])).await;
    let mut g = c.gateway("agent");
    let mock = mock(&m, provider);

    // Unary.
    let ok = g.complete(ask("acme")).await.unwrap().into_inner();
    assert_eq!(ok.provider, provider);
    assert_eq!(ok.model, expected_model(provider));
    assert!(ok.text.starts_with(greeting), "{}", ok.text);
    let usage = ok.usage.unwrap();
    assert!(
        usage.input_tokens > 0 && usage.output_tokens > 0,
        "{usage:?}"
    );
    assert_eq!(mock.calls(), 1);
    let sent = &mock.requests()[0];
    assert_eq!(model_sent(sent), expected_model(provider));
    let body = String::from_utf8_lossy(&sent.body).into_owned();
    assert!(body.contains("checkout ERROR payment timeout"), "{body}");
    assert!(
        !body.contains(LEAKED_KEY),
        "the redacted key reached {provider}: {body}"
    );
    let outcome = outcome_of(&c, "acme", &ok.audit_record_id).await;
    assert_eq!(outcome.outcome, "ok");
    assert_eq!(outcome.provider, provider);
    assert_eq!(outcome.model, expected_model(provider));
    assert_eq!(attempts(&outcome.attempts), vec![ok_attempt(provider)]);
    assert_eq!(outcome.usage, Some(usage));

    // Stream: deltas in order, then End with the usage the audit outcome also holds.
    let s = g.complete_stream(ask("acme")).await.unwrap().into_inner();
    let (events, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    let gw::complete_stream_event::Event::Start(start) = &events[0] else {
        panic!("first event is not Start: {events:?}")
    };
    assert_eq!(start.provider, provider);
    assert_eq!(start.model, expected_model(provider));
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            gw::complete_stream_event::Event::TextDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(deltas.len() > 1, "the answer came in one piece: {deltas:?}");
    let text = deltas.concat();
    assert!(
        text.starts_with(greeting),
        "deltas out of order: {deltas:?}"
    );
    let Some(gw::complete_stream_event::Event::End(end)) = events.last() else {
        panic!("last event is not End: {events:?}")
    };
    assert_eq!(end.stop_reason, gw::StopReason::EndTurn as i32);
    let usage = end.usage.unwrap();
    assert!(usage.output_tokens > 0, "{usage:?}");
    assert_eq!(attempts(&end.attempts), vec![ok_attempt(provider)]);
    assert_eq!(mock.calls(), 2);
    assert!(!String::from_utf8_lossy(&mock.requests()[1].body).contains(LEAKED_KEY));
    let outcome = outcome_of(&c, "acme", &start.audit_record_id).await;
    assert_eq!(outcome.outcome, "ok");
    assert_eq!(outcome.usage, Some(usage));
    assert_eq!(attempts(&outcome.attempts), vec![ok_attempt(provider)]);

    // Tool round trip: the model asks for the tool (streamed), the agent answers with the
    // tool's result (unary), the model uses it.
    let mut first = ask("acme");
    first.tools = vec![weather_tool()];
    let s = g.complete_stream(first.clone()).await.unwrap().into_inner();
    let (events, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    let calls: Vec<&gw::ToolCallDelta> = events
        .iter()
        .filter_map(|e| match e {
            gw::complete_stream_event::Event::ToolCallDelta(d) => Some(d),
            _ => None,
        })
        .collect();
    let head = calls
        .iter()
        .find(|d| !d.id.is_empty())
        .expect("tool call id");
    assert_eq!(head.name, "get_weather");
    let args: String = calls
        .iter()
        .filter(|d| d.index == head.index)
        .map(|d| d.arguments_json_delta.as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args).unwrap(),
        serde_json::json!({"city": "Paris"})
    );
    let Some(gw::complete_stream_event::Event::End(end)) = events.last() else {
        panic!("last event is not End: {events:?}")
    };
    assert_eq!(end.stop_reason, gw::StopReason::ToolUse as i32);
    let sent = mock.requests()[2].json();
    assert!(
        sent.to_string().contains("get_weather"),
        "the tool definition did not reach {provider}: {sent}"
    );

    let mut second = first;
    second.messages.push(gw::Message {
        role: gw::Role::Assistant as i32,
        parts: vec![gw::ContentPart {
            data_type: pb::DataType::Instruction as i32,
            content: Some(gw::content_part::Content::ToolCall(gw::ToolCall {
                id: head.id.clone(),
                name: "get_weather".into(),
                arguments_json: args.clone(),
            })),
        }],
    });
    second.messages.push(gw::Message {
        role: gw::Role::User as i32,
        parts: vec![gw::ContentPart {
            data_type: pb::DataType::Logs as i32,
            content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                tool_call_id: head.id.clone(),
                content: "sunny, 21C".into(),
                is_error: false,
            })),
        }],
    });
    let done = g.complete(second).await.unwrap().into_inner();
    assert!(done.tool_calls.is_empty(), "{:?}", done.tool_calls);
    assert!(
        done.text.contains("The tool said: sunny, 21C"),
        "{}",
        done.text
    );
    let sent = String::from_utf8_lossy(&mock.requests()[3].body).into_owned();
    assert!(
        sent.contains(&head.id),
        "the tool call id did not go back: {sent}"
    );
    assert_eq!(mock.calls(), 4);

    // The platform account signed every Bedrock request; STS was never needed.
    if provider == "bedrock" {
        assert_eq!(m.bedrock.signers(), vec![mocks::PLATFORM_AKID; 4]);
        assert_eq!(m.sts.calls(), 0);
    }
    // Nothing went anywhere else, and no record names a credential.
    assert_eq!(m.total_calls(), 4);
    assert_no_secrets(
        "the audit log",
        &format!("{:?}", audit_records(&c, "acme").await),
    );
    c.stop().await;
}

#[tokio::test]
async fn anthropic_unary_stream_and_tools_through_the_gateway() {
    bounded(walk("anthropic", "Hello from the Anthropic mock.")).await;
}

#[tokio::test]
async fn openai_unary_stream_and_tools_through_the_gateway() {
    bounded(walk("openai", "Hello from the OpenAI mock.")).await;
}

#[tokio::test]
async fn bedrock_unary_stream_and_tools_through_the_gateway() {
    bounded(walk("bedrock", "Hello from the Bedrock mock")).await;
}
