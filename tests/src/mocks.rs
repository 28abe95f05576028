//! The `warden-testkit` mock providers behind a real routing config: Anthropic, OpenAI,
//! Bedrock (one mock for the platform's and customers' accounts, verifying every SigV4
//! signature) and STS, each over TLS on loopback with a throwaway CA that only the
//! gateway's provider clients trust. API keys and AWS keys are test constants handed to
//! the loader directly (never through the process environment).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use warden::services::ProviderEnv;
use warden_providers::{Identity, StaticKeys};
use warden_testkit::sigv4::AwsKey;
use warden_testkit::sts::StsMock;
use warden_testkit::{MockServer, TestCa};

use crate::ProvidersFile;

pub const ANTHROPIC_KEY: &str = "sk-ant-e2e-SECRET-0a1b2c3d";
pub const OPENAI_KEY: &str = "sk-proj-e2e-SECRET-4e5f6a7b";
/// The platform's (gateway's) own AWS identity: signs platform Bedrock and STS calls.
pub const PLATFORM_AKID: &str = "AKIDPLATFORME2E00001";
pub const PLATFORM_SECRET: &str = "platformE2ESECRET/abcdefghijklmnopqrstu";
/// What STS hands out for the tenant's role.
pub const ASSUMED_AKID: &str = "ASIATENANTE2E0000001";
pub const ASSUMED_SECRET: &str = "tenantAssumedE2ESECRET/abcdefghijklmno";
pub const ASSUMED_TOKEN: &str = "FwoGZXIvYXdzE2EsessiontokenSECRET";
/// A tenant's static keys (stored sealed through Admin.PutCustomerCredentials).
pub const STATIC_AKID: &str = "AKIDTENANTSTATICE2E1";
pub const STATIC_SECRET: &str = "tenantStaticE2ESECRET/abcdefghijklmnop";
pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/warden-e2e";
/// An external id a client might try to choose (Warden refuses it: storage generates its own).
pub const EXTERNAL_ID: &str = "e2e-external-id-42";

/// Every credential value a test may check for leaks.
pub const SECRETS: &[&str] = &[
    ANTHROPIC_KEY,
    OPENAI_KEY,
    PLATFORM_SECRET,
    ASSUMED_SECRET,
    ASSUMED_TOKEN,
    STATIC_SECRET,
    EXTERNAL_ID,
];

/// The running mocks and a directory for the routing config.
pub struct Mocks {
    pub ca: TestCa,
    pub anthropic: MockServer,
    pub openai: MockServer,
    /// Accepts signatures from the platform key, the assumed-role key and the static key.
    pub bedrock: MockServer,
    /// Trusts the platform key as caller; issues the assumed-role key for ROLE_ARN and the
    /// external id in `sts_trust`.
    pub sts: MockServer,
    /// The external id the customer's trust policy requires (empty: none yet, all refused).
    pub sts_trust: warden_testkit::sts::TrustPolicy,
    pub dir: tempfile::TempDir,
}

/// Timeouts and retries short enough for tests (and for faults to show within seconds).
#[derive(Debug, Clone)]
pub struct Tuning {
    pub first_byte_ms: u64,
    pub idle_ms: u64,
    pub total_ms: u64,
    pub max_attempts: u32,
    pub max_retry_after_ms: u64,
    /// Appended to every model id, e.g. "-v2", to tell two configs apart.
    pub model_suffix: String,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            first_byte_ms: 2000,
            idle_ms: 800,
            total_ms: 6000,
            max_attempts: 2,
            max_retry_after_ms: 1000,
            model_suffix: String::new(),
        }
    }
}

impl Mocks {
    pub async fn start() -> Mocks {
        let ca = TestCa::new().unwrap();
        let anthropic = MockServer::start(
            &ca,
            warden_testkit::anthropic::AnthropicMock {
                expected_key: Some(ANTHROPIC_KEY.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let openai = MockServer::start(
            &ca,
            warden_testkit::openai::OpenAiMock {
                expected_key: Some(OPENAI_KEY.into()),
            },
        )
        .await
        .unwrap();
        let assumed = AwsKey::new(ASSUMED_AKID, ASSUMED_SECRET, Some(ASSUMED_TOKEN));
        let bedrock = warden_testkit::bedrock::start(
            &ca,
            vec![
                AwsKey::new(PLATFORM_AKID, PLATFORM_SECRET, None),
                assumed.clone(),
                AwsKey::new(STATIC_AKID, STATIC_SECRET, None),
            ],
        )
        .await
        .unwrap();
        let sts_trust = warden_testkit::sts::TrustPolicy::default();
        let sts = warden_testkit::sts::start(
            &ca,
            StsMock {
                caller: AwsKey::new(PLATFORM_AKID, PLATFORM_SECRET, None),
                role_arn: ROLE_ARN.into(),
                external_id: sts_trust.clone(),
                issued: assumed,
                lifetime: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        Mocks {
            ca,
            anthropic,
            openai,
            bedrock,
            sts,
            sts_trust,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A routing config naming every mock (and `local`), in `config/providers.toml` format.
    pub fn routing_config(&self, t: &Tuning) -> String {
        let s = &t.model_suffix;
        format!(
            r#"[routing]
profiles = ["reasoning", "fast"]
default_profile = "reasoning"

[defaults.timeouts]
connect_ms = 2000
first_byte_ms = {first_byte}
idle_ms = {idle}
total_ms = {total}

[defaults.retry]
max_attempts = {attempts}
base_delay_ms = 10
max_delay_ms = 50
max_retry_after_ms = {max_ra}

[defaults.breaker]
failure_threshold = 1000
cooldown_ms = 1000

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "E2E_ANTHROPIC_KEY"
api_version = "2023-06-01"
no_training = true
models = {{ reasoning = "claude-e2e-reasoning{s}", fast = "claude-e2e-fast{s}" }}

[[providers]]
name = "openai"
kind = "openai"
base_url = "{openai}/v1"
api_key_env = "E2E_OPENAI_KEY"
no_training = true
models = {{ reasoning = "gpt-e2e-reasoning{s}", fast = "gpt-e2e-fast{s}" }}

[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
endpoint = "{bedrock}"
no_training = true
models = {{ reasoning = "anthropic.claude-e2e-platform{s}", fast = "anthropic.claude-e2e-platform-fast{s}" }}

[[providers]]
name = "bedrock-customer"
kind = "bedrock"
customer_account = true
region = "us-east-1"
endpoint = "{bedrock}"
sts_endpoint = "{sts}"
no_training = true
models = {{ reasoning = "anthropic.claude-e2e-customer{s}", fast = "anthropic.claude-e2e-customer-fast{s}" }}

[providers.retry]
max_attempts = 1

[[providers]]
name = "local"
kind = "local"
no_training = true
models = {{ reasoning = "warden-local-offline-v1", fast = "warden-local-offline-v1" }}
"#,
            first_byte = t.first_byte_ms,
            idle = t.idle_ms,
            total = t.total_ms,
            attempts = t.max_attempts,
            max_ra = t.max_retry_after_ms,
            anthropic = self.anthropic.url(),
            openai = self.openai.url(),
            bedrock = self.bedrock.url(),
            sts = self.sts.url(),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("providers.toml")
    }

    /// Replaces the routing config file atomically (write a sibling, rename over), as a
    /// deployment would.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.config_path();
        write_atomically(&path, text);
        path
    }

    /// What the gateway's loader needs: the mock API keys by variable name, the platform
    /// AWS identity, and the mocks' CA.
    pub fn env(&self) -> ProviderEnv {
        ProviderEnv {
            secret: Arc::new(|name: &str| match name {
                "E2E_ANTHROPIC_KEY" => Some(SecretString::from(ANTHROPIC_KEY)),
                "E2E_OPENAI_KEY" => Some(SecretString::from(OPENAI_KEY)),
                _ => None,
            }),
            gateway_identity: Identity::Static(StaticKeys {
                access_key_id: PLATFORM_AKID.into(),
                secret_access_key: SecretString::from(PLATFORM_SECRET),
                session_token: None,
            }),
            extra_root_ca_pem: vec![self.ca.ca_pem()],
        }
    }

    /// Writes `t`'s routing config and returns it as cluster options.
    pub fn providers_file(&self, t: &Tuning, reload_poll: Option<Duration>) -> ProvidersFile {
        let path = self.write_config(&self.routing_config(t));
        ProvidersFile {
            path,
            env: self.env(),
            reload_poll,
        }
    }

    /// Requests received by every mock, in total.
    pub fn total_calls(&self) -> usize {
        self.anthropic.calls() + self.openai.calls() + self.bedrock.calls() + self.sts.calls()
    }
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
