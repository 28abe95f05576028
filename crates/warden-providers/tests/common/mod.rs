//! Shared fixtures for the provider integration tests: a CA per test, mocks over TLS on
//! loopback, adapters pointed at them with short timeouts, and request builders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use secrecy::SecretString;
use warden_providers::{
    Anthropic, AnthropicConfig, Bedrock, BedrockConfig, BedrockCredentials, ChatRequest, Content,
    HttpSettings, Identity, Message, MessageRole, OpenAi, OpenAiConfig, Provider, ProviderError,
    StaticKeys, StreamEvent, Timeouts, ToolDef,
};
use warden_testkit::sigv4::AwsKey;
use warden_testkit::{MockServer, TestCa};

pub const ANTHROPIC_KEY: &str = "sk-ant-test-SECRET-a1b2c3";
pub const OPENAI_KEY: &str = "sk-proj-test-SECRET-d4e5f6";
pub const PLATFORM_AKID: &str = "AKIDPLATFORM0000001";
pub const PLATFORM_SECRET: &str = "platformSECRETkey/abcdefghijklmnopqrstuv";

/// Every case must finish well inside this, or it is a hang.
pub const CASE_LIMIT: Duration = Duration::from_secs(15);

pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_millis(1500),
        idle: Duration::from_millis(700),
        total: Duration::from_secs(4),
    }
}

pub fn http(ca: &TestCa) -> HttpSettings {
    HttpSettings {
        timeouts: timeouts(),
        allow_plain_http: false,
        extra_root_ca_pem: vec![ca.ca_pem()],
    }
}

/// A mock, the adapter pointed at it, and the secret the adapter holds.
pub struct Harness {
    pub ca: TestCa,
    pub mock: MockServer,
    pub provider: Arc<dyn Provider>,
    pub secrets: Vec<String>,
    pub kind: &'static str,
    /// The adapter's `Debug` output.
    pub debug: String,
}

pub async fn anthropic() -> Harness {
    let ca = TestCa::new().unwrap();
    let mock = MockServer::start(
        &ca,
        warden_testkit::anthropic::AnthropicMock {
            expected_key: Some(ANTHROPIC_KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut cfg = AnthropicConfig::new(
        "anthropic",
        SecretString::from(ANTHROPIC_KEY),
        "claude-test",
    );
    cfg.base_url = mock.url();
    cfg.http = http(&ca);
    let a = Anthropic::new(cfg).unwrap();
    let debug = format!("{a:?}");
    Harness {
        ca,
        mock,
        provider: Arc::new(a),
        secrets: vec![ANTHROPIC_KEY.into()],
        kind: "anthropic",
        debug,
    }
}

pub async fn openai() -> Harness {
    let ca = TestCa::new().unwrap();
    let mock = MockServer::start(
        &ca,
        warden_testkit::openai::OpenAiMock {
            expected_key: Some(OPENAI_KEY.into()),
        },
    )
    .await
    .unwrap();
    let mut cfg = OpenAiConfig::new("openai", Some(SecretString::from(OPENAI_KEY)), "gpt-test");
    cfg.base_url = format!("{}/v1", mock.url());
    cfg.http = http(&ca);
    let a = OpenAi::new(cfg).unwrap();
    let debug = format!("{a:?}");
    Harness {
        ca,
        mock,
        provider: Arc::new(a),
        secrets: vec![OPENAI_KEY.into()],
        kind: "openai",
        debug,
    }
}

pub fn platform_keys() -> StaticKeys {
    StaticKeys {
        access_key_id: PLATFORM_AKID.into(),
        secret_access_key: SecretString::from(PLATFORM_SECRET),
        session_token: None,
    }
}

pub fn bedrock_config(
    ca: &TestCa,
    name: &str,
    endpoint: String,
    credentials: BedrockCredentials,
) -> BedrockConfig {
    let mut cfg = BedrockConfig::new(
        name,
        "us-east-1",
        "anthropic.claude-3-haiku-20240307-v1:0",
        credentials,
    );
    cfg.endpoint_url = Some(endpoint);
    cfg.http = http(ca);
    cfg
}

pub async fn bedrock() -> Harness {
    let ca = TestCa::new().unwrap();
    let mock = warden_testkit::bedrock::start(
        &ca,
        vec![AwsKey::new(PLATFORM_AKID, PLATFORM_SECRET, None)],
    )
    .await
    .unwrap();
    let cfg = bedrock_config(
        &ca,
        "bedrock",
        mock.url(),
        BedrockCredentials::Platform(Identity::Static(platform_keys())),
    );
    let a = Bedrock::new(cfg).unwrap();
    let debug = format!("{a:?}");
    Harness {
        ca,
        mock,
        provider: Arc::new(a),
        secrets: vec![PLATFORM_SECRET.into()],
        kind: "bedrock",
        debug,
    }
}

pub fn user(text: &str) -> Message {
    Message {
        role: MessageRole::User,
        content: vec![Content::text(text)],
    }
}

pub fn hello() -> ChatRequest {
    ChatRequest {
        system: Some("You are terse.".into()),
        messages: vec![user("Say hello")],
        max_tokens: 256,
        ..Default::default()
    }
}

pub fn weather_tool() -> ToolDef {
    ToolDef {
        name: "get_weather".into(),
        description: "Get weather".into(),
        input_schema: serde_json::json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
    }
}

pub fn weather() -> ChatRequest {
    ChatRequest {
        messages: vec![user("Weather in Paris?")],
        tools: vec![weather_tool()],
        max_tokens: 512,
        ..Default::default()
    }
}

/// Collects a stream, stopping at the first error (which is returned alongside the events).
pub async fn collect(
    provider: &dyn Provider,
    req: &ChatRequest,
) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut s = match provider.stream(req).await {
        Ok(s) => s,
        Err(e) => return (vec![], Some(e)),
    };
    let mut events = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

pub fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Runs a test body under the hang limit.
pub async fn bounded<F: std::future::Future<Output = T>, T>(f: F) -> T {
    tokio::time::timeout(CASE_LIMIT, f)
        .await
        .expect("test case hung past its limit")
}
