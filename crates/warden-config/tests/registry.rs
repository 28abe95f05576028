//! A config file pointed at the TLS mocks becomes a working registry: the router built
//! from it serves requests, policy's catalogue comes from the same file, and a missing
//! key or tenant-account source is reported per provider without printing any value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use warden_config::{BuildEnv, build_registry, catalogue, parse};
use warden_providers::{Identity, RouteRequest, Router, StaticTenantAccounts};
use warden_testkit::{TestCa, anthropic::AnthropicMock, openai::OpenAiMock};

fn file(anthropic_url: &str, openai_url: &str) -> String {
    format!(
        r#"
[routing]
profiles = ["reasoning", "fast"]

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{anthropic_url}"
api_key_env = "ANTHROPIC_API_KEY"
no_training = true
models = {{ reasoning = "claude-r", fast = "claude-f" }}
[providers.retry]
max_attempts = 1

[[providers]]
name = "openai"
kind = "openai"
base_url = "{openai_url}/v1"
api_key_env = "OPENAI_API_KEY"
no_training = true
models = {{ reasoning = "gpt-r" }}

[[providers]]
name = "bedrock-customer"
kind = "bedrock"
customer_account = true
region = "us-east-1"
no_training = true
models = {{ reasoning = "anthropic.claude-3-haiku-20240307-v1:0" }}

[[providers]]
name = "cheap"
kind = "local"
no_training = false
models = {{ reasoning = "local" }}
"#
    )
}

#[tokio::test]
async fn a_registry_built_from_config_routes_over_tls() {
    tokio::time::timeout(std::time::Duration::from_secs(15), async {
        let ca = TestCa::new().unwrap();
        let a = warden_testkit::MockServer::start(
            &ca,
            AnthropicMock {
                expected_key: Some("sk-ant-x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let o = warden_testkit::MockServer::start(
            &ca,
            OpenAiMock {
                expected_key: Some("sk-oa-y".into()),
            },
        )
        .await
        .unwrap();
        let cfg = parse("providers.toml", &file(&a.url(), &o.url()))
            .unwrap_or_else(|d| panic!("{}", warden_config::render(&d)));
        let secrets: HashMap<&str, &str> = HashMap::from([
            ("ANTHROPIC_API_KEY", "sk-ant-x"),
            ("OPENAI_API_KEY", "sk-oa-y"),
        ]);
        let lookup = move |name: &str| secrets.get(name).map(|v| SecretString::from(*v));
        let env = BuildEnv {
            secret: &lookup,
            gateway_identity: Identity::DefaultChain,
            tenant_accounts: Some(Arc::new(StaticTenantAccounts::default())),
            extra_root_ca_pem: vec![ca.ca_pem()],
        };
        let registry = build_registry(&cfg, &env).unwrap();
        assert_eq!(
            registry
                .providers()
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["anthropic", "bedrock-customer", "cheap", "openai"]
        );

        // Policy decides over the same file: `cheap` may train, so it is never eligible.
        let settings = warden_policy::TenantSettings {
            enabled: true,
            allowed_providers: vec!["cheap".into(), "anthropic".into(), "openai".into()],
            ..warden_policy::TenantSettings::disabled("acme")
        };
        let eligible = warden_policy::eligible_providers(&settings, &catalogue(&cfg));
        assert_eq!(eligible, ["anthropic", "openai"]);

        let router = Router::new(registry);
        a.script([warden_testkit::Fault::status(529)]);
        let req = warden_providers::ChatRequest {
            messages: vec![warden_providers::Message {
                role: warden_providers::MessageRole::User,
                content: vec![warden_providers::Content::text("hi")],
            }],
            max_tokens: 64,
            ..Default::default()
        };
        let route = RouteRequest {
            tenant_id: "acme",
            eligible: &eligible,
            profile: "reasoning",
            deadline: None,
        };
        let r = router.complete(&route, &req).await.unwrap();
        assert_eq!((r.provider.as_str(), r.model.as_str()), ("openai", "gpt-r"));
        assert_eq!(
            o.requests()[0].header("authorization"),
            Some("Bearer sk-oa-y")
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn missing_keys_and_account_sources_are_reported_per_provider() {
    let cfg = parse(
        "providers.toml",
        &file("https://a.example", "https://o.example"),
    )
    .unwrap();
    let none = |_: &str| None;
    let env = BuildEnv {
        secret: &none,
        gateway_identity: Identity::DefaultChain,
        tenant_accounts: None,
        extra_root_ca_pem: vec![],
    };
    let errs = build_registry(&cfg, &env).unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "provider anthropic: environment variable ANTHROPIC_API_KEY (api_key_env) is not set",
            "provider openai: environment variable OPENAI_API_KEY (api_key_env) is not set",
            "provider bedrock-customer: customer_account = true needs a tenant account source",
        ]
    );
}
