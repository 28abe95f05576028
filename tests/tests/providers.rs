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
use warden_integration_tests::{Cluster, Options, logs_request, reason};
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

/// The outcome record linked to `intent_id`, waiting (bounded) for a stream's relay task
/// to write it.
async fn outcome_of(c: &Cluster, tenant_id: &str, intent_id: &str) -> pb::AuditRecord {
    for _ in 0..200 {
        let found = c
            .audit_records(tenant_id)
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
        let mut outcomes: Vec<_> = c
            .audit_records(tenant_id)
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
        &format!("{:?}", c.audit_records("acme").await),
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

// --- Customer-owned Bedrock through the gateway -------------------------------------

fn customer_tenant(id: &str, credentials: pb::customer_bedrock::Credentials) -> pb::TenantSettings {
    pb::TenantSettings {
        customer_bedrock: Some(pb::CustomerBedrock {
            region: "eu-central-1".into(),
            credentials: Some(credentials),
        }),
        ..tenant(id, &["bedrock-customer"])
    }
}

fn assume_role(external_id: &str) -> pb::customer_bedrock::Credentials {
    pb::customer_bedrock::Credentials::AssumeRole(pb::AssumeRole {
        role_arn: mocks::ROLE_ARN.into(),
        external_id: external_id.into(),
    })
}

/// The external id storage generated for the tenant's role, as Admin.GetTenantSettings shows it.
fn stored_external_id(s: &pb::TenantSettings) -> String {
    match s
        .customer_bedrock
        .as_ref()
        .and_then(|cb| cb.credentials.as_ref())
    {
        Some(pb::customer_bedrock::Credentials::AssumeRole(a)) => a.external_id.clone(),
        other => panic!("no assume-role settings: {other:?}"),
    }
}

/// Sets the tenant's role (external id left to Warden) and, as the customer would, puts
/// the external id Admin.GetTenantSettings shows into the role's trust policy.
async fn set_customer_role(m: &Mocks, c: &Cluster, tenant: &str) -> String {
    c.set_tenant(customer_tenant(tenant, assume_role(""))).await;
    let shown = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let id = stored_external_id(&shown);
    m.sts_trust.set(id.clone());
    id
}

/// The region in a SigV4 credential scope.
fn signed_region(r: &Recorded) -> String {
    let auth = r.header("authorization").unwrap_or_default();
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn customer_bedrock_is_signed_with_the_assumed_role_never_the_platform() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        let external_id = set_customer_role(&m, &c, "acme").await;
        let mut g = c.gateway("agent");
        let ok = g.complete(ask("acme")).await.unwrap().into_inner();
        assert_eq!(ok.provider, "bedrock-customer");
        assert_eq!(ok.model, expected_model("bedrock-customer"));
        let (events, err) = drain(g.complete_stream(ask("acme")).await.unwrap().into_inner()).await;
        assert!(err.is_none(), "{err:?}");
        assert!(matches!(
            events.last(),
            Some(gw::complete_stream_event::Event::End(_))
        ));

        // STS: one AssumeRole (cached for the stream), signed by the gateway, for the
        // tenant's role with its external id, named after the tenant.
        assert_eq!(m.sts.signers(), vec![mocks::PLATFORM_AKID]);
        let form = warden_testkit::sts::form_fields(&m.sts.requests()[0]);
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(field("RoleArn"), mocks::ROLE_ARN);
        // Exactly the one storage generated, and nothing a client chose.
        assert_eq!(field("ExternalId"), external_id);
        assert_eq!(field("RoleSessionName"), "warden-acme");
        // Bedrock: both calls signed with the assumed credentials, in the tenant's region;
        // the platform's keys signed nothing there.
        assert_eq!(m.bedrock.signers(), vec![mocks::ASSUMED_AKID; 2]);
        for r in m.bedrock.requests() {
            assert_eq!(signed_region(&r), "eu-central-1");
            assert_eq!(model_sent(&r), expected_model("bedrock-customer"));
            assert!(!String::from_utf8_lossy(&r.body).contains(LEAKED_KEY));
        }
        assert_eq!(m.anthropic.calls() + m.openai.calls(), 0);
        assert_no_secrets(
            "the audit log",
            &format!("{:?}", c.audit_records("acme").await),
        );
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn customer_bedrock_with_static_keys_stored_through_admin() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        let id = c
            .admin("admin")
            .put_customer_credentials(gw::PutCustomerCredentialsRequest {
                tenant_id: "acme".into(),
                access_key_id: mocks::STATIC_AKID.into(),
                secret_access_key: mocks::STATIC_SECRET.into(),
                session_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .credentials_id;
        c.set_tenant(customer_tenant(
            "acme",
            pb::customer_bedrock::Credentials::StaticCredentialsId(id),
        ))
        .await;
        let ok = c
            .gateway("agent")
            .complete(ask("acme"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.provider, "bedrock-customer");
        assert_eq!(m.bedrock.signers(), vec![mocks::STATIC_AKID]);
        assert_eq!(signed_region(&m.bedrock.requests()[0]), "eu-central-1");
        assert_eq!(m.sts.calls(), 0, "static keys need no STS");
        assert_no_secrets(
            "the audit log",
            &format!("{:?}", c.audit_records("acme").await),
        );
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_refused_assume_role_fails_closed() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        // The customer's trust policy names another id than the one Warden generated.
        c.set_tenant(customer_tenant("acme", assume_role(""))).await;
        m.sts_trust.set("not-the-external-id");
        let err = c.gateway("agent").complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(reason(&err), "PROVIDER_UNAVAILABLE");
        assert!(
            err.message().contains("bedrock-customer"),
            "{}",
            err.message()
        );
        assert_no_secrets("the status", err.message());
        assert!(
            !err.message().contains("not-the-external-id"),
            "{}",
            err.message()
        );
        // STS refused; nothing reached Bedrock, and no platform provider stood in.
        assert!(m.sts.calls() >= 1);
        assert_eq!(m.bedrock.calls(), 0);
        assert_eq!(m.anthropic.calls() + m.openai.calls(), 0);
        let outcome = only_outcome(&c, "acme").await;
        assert_eq!(
            outcome
                .attempts
                .iter()
                .map(|a| a.provider.as_str())
                .collect::<Vec<_>>(),
            vec!["bedrock-customer"]
        );
        c.stop().await;
    })
    .await;
}

// --- Failover, rate limits and their statuses --------------------------------------

#[tokio::test]
async fn failover_stays_inside_the_tenants_allowed_providers() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        // bedrock is configured but this tenant did not allow it.
        c.set_tenant(tenant("acme", &["anthropic", "openai"])).await;
        let mut g = c.gateway("agent");
        m.anthropic.script([
            warden_testkit::Fault::status(503),
            warden_testkit::Fault::status(503),
        ]);
        let ok = g.complete(ask("acme")).await.unwrap().into_inner();
        assert_eq!(ok.provider, "openai");
        let want = vec![
            (
                "anthropic".to_owned(),
                expected_model("anthropic").to_owned(),
                "http_503".to_owned(),
            ),
            (
                "anthropic".to_owned(),
                expected_model("anthropic").to_owned(),
                "http_503".to_owned(),
            ),
            ok_attempt("openai"),
        ];
        assert_eq!(attempts(&ok.attempts), want);
        let outcome = outcome_of(&c, "acme", &ok.audit_record_id).await;
        assert_eq!(attempts(&outcome.attempts), want);
        assert_eq!(outcome.provider, "openai");

        // The same for a stream: failover before the first event.
        m.anthropic.script([
            warden_testkit::Fault::status(503),
            warden_testkit::Fault::status(503),
        ]);
        let (events, err) = drain(g.complete_stream(ask("acme")).await.unwrap().into_inner()).await;
        assert!(err.is_none(), "{err:?}");
        let gw::complete_stream_event::Event::Start(start) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(start.provider, "openai");
        let Some(gw::complete_stream_event::Event::End(end)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(attempts(&end.attempts), want);

        assert_eq!(m.anthropic.calls(), 4);
        assert_eq!(m.openai.calls(), 2);
        assert_eq!(
            m.bedrock.calls() + m.sts.calls(),
            0,
            "a provider the tenant did not allow was called"
        );
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_resource_exhausted_with_retry_info() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        c.set_tenant(tenant("acme", &["anthropic"])).await;
        // Longer than max_retry_after (1 s): not waited for, and no other provider allowed.
        m.anthropic
            .script([warden_testkit::Fault::status_retry_after(429, "7")]);
        let err = c.gateway("agent").complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert_eq!(reason(&err), "PROVIDER_RATE_LIMITED");
        assert_eq!(
            err.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(7))
        );
        assert!(
            err.message().contains("anthropic (http_429)"),
            "{}",
            err.message()
        );
        assert_eq!(m.anthropic.calls(), 1);
        assert_eq!(m.total_calls(), 1);
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn all_providers_failing_is_unavailable_naming_each_one_tried() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        c.set_tenant(tenant("acme", &["anthropic", "openai"])).await;
        let five = || (0..2).map(|_| warden_testkit::Fault::status(503));
        m.anthropic.script(five());
        m.openai.script(five());
        let err = c.gateway("agent").complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(reason(&err), "PROVIDER_UNAVAILABLE");
        assert!(
            err.message().ends_with(
                "providers tried: anthropic (http_503, http_503), openai (http_503, http_503)"
            ),
            "{}",
            err.message()
        );
        assert_no_secrets("the status", err.message());
        assert_eq!(m.bedrock.calls() + m.sts.calls(), 0);
        let outcome = only_outcome(&c, "acme").await;
        assert_eq!(outcome.outcome, "http_503");
        assert_eq!(outcome.attempts.len(), 4);
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_routing_deadline_from_the_config_bounds_retries() {
    bounded(async {
        // total_ms = 500: a Retry-After of 1 s cannot be waited for inside it.
        let (m, c) = world(Tuning {
            first_byte_ms: 400,
            total_ms: 500,
            ..Tuning::default()
        })
        .await;
        c.set_tenant(tenant("acme", &["anthropic"])).await;
        m.anthropic
            .script([warden_testkit::Fault::status_retry_after(503, "1")]);
        let err = c.gateway("agent").complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert_eq!(
            m.anthropic.calls(),
            1,
            "the router waited past its deadline and retried"
        );
        c.stop().await;
    })
    .await;
}

// --- Per-tenant limits ------------------------------------------------------------

#[tokio::test]
async fn a_tenant_over_its_request_rate_is_refused_before_anything_leaves() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        c.set_tenant(pb::TenantSettings {
            budgets: Some(pb::Budgets {
                max_requests_per_minute: 2,
                ..Default::default()
            }),
            ..tenant("acme", &["anthropic"])
        })
        .await;
        c.set_tenant(tenant("other", &["anthropic"])).await;
        let mut g = c.gateway("agent");
        g.complete(ask("acme")).await.unwrap();
        g.complete(ask("acme")).await.unwrap();
        let err = g.complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert_eq!(reason(&err), "TENANT_RATE_LIMITED");
        assert!(
            err.message().contains("2 model requests per minute"),
            "{}",
            err.message()
        );
        let wait = err
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            m.anthropic.calls(),
            2,
            "the over-limit call reached the provider"
        );
        // The refusal is audited as a denial, with no intent: nothing was about to leave.
        let records = c.audit_records("acme").await;
        let of_kind = |k: pb::AuditKind| {
            records
                .iter()
                .filter(|r| r.kind == k as i32)
                .collect::<Vec<_>>()
        };
        let denials = of_kind(pb::AuditKind::Denial);
        assert_eq!(denials.len(), 1, "{records:?}");
        assert_eq!(denials[0].reason, "TENANT_RATE_LIMITED");
        assert_eq!(of_kind(pb::AuditKind::Intent).len(), 2, "{records:?}");
        // Another tenant is not affected.
        g.complete(ask("other")).await.unwrap();
        assert_eq!(m.anthropic.calls(), 3);
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_tenant_over_its_concurrency_is_refused_until_a_slot_frees() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        c.set_tenant(pb::TenantSettings {
            budgets: Some(pb::Budgets {
                max_concurrent_requests: 1,
                ..Default::default()
            }),
            ..tenant("acme", &["anthropic"])
        })
        .await;
        // The first call holds the tenant's one slot while the provider is slow.
        m.anthropic
            .script([warden_testkit::Fault::SlowFirstByte(Duration::from_millis(
                1500,
            ))]);
        let mut g1 = c.gateway("agent");
        let first = tokio::spawn(async move { g1.complete(ask("acme")).await });
        while m.anthropic.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = c.gateway("agent").complete(ask("acme")).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert_eq!(reason(&err), "TENANT_RATE_LIMITED");
        assert!(err.get_details_retry_info().is_some());
        assert_eq!(
            m.anthropic.calls(),
            1,
            "the refused call reached the provider"
        );
        first.await.unwrap().unwrap();
        // The slot is free again.
        c.gateway("agent").complete(ask("acme")).await.unwrap();
        assert_eq!(m.anthropic.calls(), 2);
        c.stop().await;
    })
    .await;
}

// --- Streams: cancellation and stalls ---------------------------------------------

async fn alive_tasks_back_to(baseline: usize) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..200 {
        if metrics.num_alive_tasks() <= baseline {
            return metrics.num_alive_tasks();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    metrics.num_alive_tasks()
}

#[tokio::test]
async fn a_caller_going_away_cancels_the_stalled_upstream() {
    bounded(async {
        // Idle timeout far beyond the test: only the cancellation can close the upstream.
        let (m, c) = world(Tuning {
            idle_ms: 60_000,
            total_ms: 120_000,
            ..Tuning::default()
        })
        .await;
        c.set_tenant(tenant("acme", &["anthropic"])).await;
        let mut g = c.gateway("agent");
        // Warm up every connection the path uses, then take the task baseline.
        drain(g.complete_stream(ask("acme")).await.unwrap().into_inner()).await;
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();

        // message_start, content_block_start, ping, first delta: then silence.
        m.anthropic.script([warden_testkit::Fault::StallAfter(4)]);
        let mut s = g.complete_stream(ask("acme")).await.unwrap().into_inner();
        let start = match s.next().await.unwrap().unwrap().event.unwrap() {
            gw::complete_stream_event::Event::Start(st) => st,
            other => panic!("{other:?}"),
        };
        let delta = s.next().await.unwrap().unwrap().event.unwrap();
        assert!(
            matches!(delta, gw::complete_stream_event::Event::TextDelta(_)),
            "{delta:?}"
        );
        assert_eq!(m.anthropic.open_streams(), 1, "the mock is not stalling");
        drop(s);

        // The mock sees its connection closed, bounded well below the idle timeout.
        let mut closed = false;
        for _ in 0..200 {
            if m.anthropic.open_streams() == 0 {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(closed, "the upstream request was not cancelled within 5 s");
        let outcome = outcome_of(&c, "acme", &start.audit_record_id).await;
        assert_eq!(outcome.outcome, "cancelled");
        assert_eq!(outcome.provider, "anthropic");
        let left = alive_tasks_back_to(baseline).await;
        assert!(
            left <= baseline,
            "tasks leaked: {left} alive, {baseline} before"
        );
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_stall_past_the_idle_timeout_ends_the_stream_with_an_error() {
    bounded(async {
        let (m, c) = world(Tuning::default()).await;
        c.set_tenant(tenant("acme", &["anthropic"])).await;
        let mut g = c.gateway("agent");
        drain(g.complete_stream(ask("acme")).await.unwrap().into_inner()).await;
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();

        m.anthropic.script([warden_testkit::Fault::StallAfter(4)]);
        let (events, err) = drain(g.complete_stream(ask("acme")).await.unwrap().into_inner()).await;
        let err = err.expect("the stalled stream ended without an error");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(err.message().contains("timed out"), "{}", err.message());
        let gw::complete_stream_event::Event::Start(start) = &events[0] else {
            panic!("{events:?}")
        };
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, gw::complete_stream_event::Event::End(_))),
            "{events:?}"
        );
        let outcome = outcome_of(&c, "acme", &start.audit_record_id).await;
        assert_eq!(outcome.outcome, "timeout");
        // No failover after the first event: only anthropic was called.
        assert_eq!(m.total_calls(), 2);
        let left = alive_tasks_back_to(baseline).await;
        assert!(
            left <= baseline,
            "tasks leaked: {left} alive, {baseline} before"
        );
        c.stop().await;
    })
    .await;
}

// --- Reload under load --------------------------------------------------------------

#[tokio::test]
async fn a_config_reload_under_steady_load_loses_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    bounded(async {
        let m = Mocks::start().await;
        let c = Cluster::start_with(Options {
            providers: Some(m.providers_file(&Tuning::default(), Some(Duration::from_millis(50)))),
            ..Options::default()
        })
        .await;
        c.set_tenant(tenant("acme", &["anthropic"])).await;
        let mut reloads = c.reloads.clone().unwrap();

        const TOTAL: usize = 200;
        let done = Arc::new(AtomicUsize::new(0));
        let reloaded = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let mut g = c.gateway("agent");
            let (done, reloaded) = (done.clone(), reloaded.clone());
            workers.push(tokio::spawn(async move {
                // (model, whether the reload was in force before the request started)
                let mut seen = Vec::new();
                // Bounded: at least TOTAL in all, and keep going (up to 5x) until the reload
                // has been in force for some requests.
                while seen.len() < 5 * TOTAL / 4 {
                    let after = reloaded.load(Ordering::SeqCst);
                    if done.load(Ordering::SeqCst) >= TOTAL && after {
                        break;
                    }
                    let r = g.complete(ask("acme")).await;
                    let r =
                        r.unwrap_or_else(|e| panic!("a request failed during the reload: {e:?}"));
                    done.fetch_add(1, Ordering::SeqCst);
                    seen.push((r.into_inner().model, after));
                }
                seen
            }));
        }
        while done.load(Ordering::SeqCst) < TOTAL / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = c.gateway_service.providers();
        let v2 = Tuning {
            model_suffix: "-v2".into(),
            ..Tuning::default()
        };
        m.write_config(&m.routing_config(&v2));
        reloads.wait_for(|r| r.accepted == 1).await.unwrap();
        assert!(!Arc::ptr_eq(&before, &c.gateway_service.providers()));
        reloaded.store(true, Ordering::SeqCst);

        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        assert!(all.len() >= TOTAL, "{}", all.len());
        let after: Vec<&String> = all.iter().filter(|(_, a)| *a).map(|(m, _)| m).collect();
        assert!(!after.is_empty());
        assert!(
            after.iter().all(|m| *m == "claude-e2e-reasoning-v2"),
            "a request after the reload used the old model"
        );
        assert!(
            all.iter().any(|(m, _)| m == "claude-e2e-reasoning"),
            "no request before the reload"
        );
        let sent: Vec<String> = m.anthropic.requests().iter().map(model_sent).collect();
        assert_eq!(sent.len(), all.len());
        assert!(
            sent.iter()
                .all(|s| s == "claude-e2e-reasoning" || s == "claude-e2e-reasoning-v2")
        );

        // A bad file is rejected with its line; the config in force keeps serving.
        let bad = m
            .routing_config(&Tuning::default())
            .replacen("no_training = true\n", "", 1);
        m.write_config(&bad);
        reloads.wait_for(|r| r.rejected == 1).await.unwrap();
        let why = reloads.borrow().last_error.clone().unwrap();
        assert!(why.contains("providers.toml:"), "{why}");
        assert!(why.contains("no_training"), "{why}");
        let ok = c
            .gateway("agent")
            .complete(ask("acme"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.model, "claude-e2e-reasoning-v2");
        assert_eq!(reloads.borrow().accepted, 1);
        c.stop().await;
    })
    .await;
}
