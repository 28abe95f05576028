//! AWS Bedrock Runtime adapter: `Converse` and `ConverseStream` through `aws-sdk-bedrockruntime`.
//!
//! Two account models:
//! - the platform's account, signed with the gateway's own identity (the standard AWS
//!   credential chain, or static keys handed in as `SecretString`);
//! - a tenant's own account: per request, the tenant's [`BedrockAccount`] is looked up
//!   ([`TenantAccounts`]) and either its role is assumed with an external id (STS
//!   `AssumeRole`, signed by the gateway identity) or its static keys are used, in the
//!   tenant's region.
//!
//! One SDK client is cached per (tenant, region, credential source) in moka; each client's
//! lazy identity cache keeps the assumed-role credentials until `refresh_before` their
//! expiry, so STS is called once per tenant per credential lifetime, not per request.
//! All clients share one rustls (ring) HTTP client. SDK retries and stalled-stream
//! protection are off: the [`crate::Router`] owns retries and our idle timeout owns stalls.
//!
//! **Invariant:** a tenant-account request is never signed with the platform's keys; the
//! gateway identity only ever signs the `AssumeRole` call.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{
    IdentityCache, Region, SharedHttpClient, StalledStreamProtectionConfig,
};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::types as bt;
use aws_smithy_http_client::tls;
use aws_smithy_types::{Document, Number};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::http::{BuildError, HttpSettings};
use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, Usage,
};

/// Static AWS keys. The secret parts are only exposed to the SDK's signer.
#[derive(Clone)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The access key id is an identifier, not a secret, but it still names an account's
        // user: show only its first four characters (the key type, e.g. AKIA/ASIA).
        let prefix: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("StaticKeys")
            .field("access_key_id", &format!("{prefix}…"))
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl StaticKeys {
    fn to_credentials(&self, source: &'static str) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_owned(),
            self.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            source,
        )
    }
}

/// An identity of the gateway itself.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The standard AWS chain: environment, profile, web identity, ECS, IMDS.
    DefaultChain,
    Static(StaticKeys),
}

/// How a tenant's own account is reached.
#[derive(Clone)]
pub enum AccountCredentials {
    /// Assume `role_arn` in the tenant's account, proving `external_id` (confused-deputy guard).
    AssumeRole {
        role_arn: String,
        external_id: SecretString,
        session_name: String,
    },
    Static(StaticKeys),
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountCredentials::AssumeRole {
                role_arn,
                session_name,
                ..
            } => f
                .debug_struct("AssumeRole")
                .field("role_arn", role_arn)
                .field("external_id", &"[REDACTED]")
                .field("session_name", session_name)
                .finish(),
            AccountCredentials::Static(k) => f.debug_tuple("Static").field(k).finish(),
        }
    }
}

/// A tenant's Bedrock account: region and how to get credentials there.
#[derive(Debug, Clone)]
pub struct BedrockAccount {
    pub region: String,
    pub credentials: AccountCredentials,
}

impl BedrockAccount {
    /// Cache key: changes whenever the account's region or credential source changes.
    fn cache_key(&self, tenant: &str) -> String {
        let source = match &self.credentials {
            AccountCredentials::AssumeRole {
                role_arn,
                session_name,
                external_id,
            } => {
                // A changed external id must build a new client; hash it rather than keep it in the key.
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                external_id.expose_secret().hash(&mut h);
                format!("role:{role_arn}:{session_name}:{:x}", h.finish())
            }
            AccountCredentials::Static(k) => format!("key:{}", k.access_key_id),
        };
        format!("{tenant}\u{0}{}\u{0}{source}", self.region)
    }
}

/// Looks up a tenant's own Bedrock account (the gateway implements this over storage).
#[async_trait::async_trait]
pub trait TenantAccounts: Send + Sync {
    async fn account(&self, tenant_id: &str) -> Result<BedrockAccount, ProviderError>;
}

/// A fixed map of tenant accounts, for tests and single-tenant deployments.
#[derive(Debug, Clone, Default)]
pub struct StaticTenantAccounts(pub HashMap<String, BedrockAccount>);

#[async_trait::async_trait]
impl TenantAccounts for StaticTenantAccounts {
    async fn account(&self, tenant_id: &str) -> Result<BedrockAccount, ProviderError> {
        self.0
            .get(tenant_id)
            .cloned()
            .ok_or_else(|| ProviderError::NotConfigured {
                provider: "bedrock".into(),
                message: format!("tenant {tenant_id} has no Bedrock account configured"),
            })
    }
}

/// Whose account serves the requests.
#[derive(Clone)]
pub enum BedrockCredentials {
    /// The platform's account, signed by the gateway identity, in `BedrockConfig::region`.
    Platform(Identity),
    /// Each request's tenant account. `gateway` signs only the STS `AssumeRole` calls.
    PerTenant {
        accounts: Arc<dyn TenantAccounts>,
        gateway: Identity,
    },
}

impl fmt::Debug for BedrockCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BedrockCredentials::Platform(i) => f.debug_tuple("Platform").field(i).finish(),
            BedrockCredentials::PerTenant { gateway, .. } => f
                .debug_struct("PerTenant")
                .field("gateway", gateway)
                .finish_non_exhaustive(),
        }
    }
}

/// Everything needed to build a [`Bedrock`] adapter.
#[derive(Debug, Clone)]
pub struct BedrockConfig {
    pub name: String,
    /// Region of the platform account (and of STS calls).
    pub region: String,
    pub default_model: String,
    pub credentials: BedrockCredentials,
    /// Override of the Bedrock Runtime endpoint (tests, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// Override of the STS endpoint (tests, VPC endpoints).
    pub sts_endpoint_url: Option<String>,
    /// Refresh assumed-role credentials this long before they expire.
    pub refresh_before: Duration,
    /// Used when a request says `max_tokens = 0`.
    pub default_max_tokens: u32,
    pub http: HttpSettings,
}

impl BedrockConfig {
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        default_model: impl Into<String>,
        credentials: BedrockCredentials,
    ) -> Self {
        BedrockConfig {
            name: name.into(),
            region: region.into(),
            default_model: default_model.into(),
            credentials,
            endpoint_url: None,
            sts_endpoint_url: None,
            refresh_before: Duration::from_secs(300),
            default_max_tokens: 1024,
            http: HttpSettings::default(),
        }
    }
}

/// The Bedrock adapter.
#[derive(Clone)]
pub struct Bedrock {
    cfg: BedrockConfig,
    http: SharedHttpClient,
    platform: Arc<tokio::sync::OnceCell<Client>>,
    tenants: moka::future::Cache<String, Client>,
}

impl fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bedrock")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Bedrock {
    /// Refuses `http://` endpoints unless `cfg.http.allow_plain_http`. Clients (and the
    /// credential chain) are built lazily on first use.
    pub fn new(mut cfg: BedrockConfig) -> Result<Self, BuildError> {
        let allow = cfg.http.allow_plain_http;
        if let Some(ep) = &cfg.endpoint_url {
            cfg.endpoint_url = Some(crate::http::checked_base_url(&cfg.name, ep, allow)?);
        }
        if let Some(ep) = &cfg.sts_endpoint_url {
            cfg.sts_endpoint_url = Some(crate::http::checked_base_url(&cfg.name, ep, allow)?);
        }
        if cfg.region.is_empty() {
            return Err(BuildError::Config {
                provider: cfg.name.clone(),
                message: "region is empty".into(),
            });
        }
        let mut trust = tls::TrustStore::default();
        for pem in &cfg.http.extra_root_ca_pem {
            trust = trust.with_pem_certificate(pem.clone());
        }
        let ctx = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|_| BuildError::Tls {
                provider: cfg.name.clone(),
                message: "invalid TLS trust store".into(),
            })?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(ctx)
            .build_https();
        let tenants = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_idle(Duration::from_secs(3600))
            .build();
        Ok(Bedrock {
            cfg,
            http,
            platform: Arc::new(tokio::sync::OnceCell::new()),
            tenants,
        })
    }

    fn client_for(&self, region: &str, creds: SharedCredentialsProvider) -> Client {
        let t = &self.cfg.http.timeouts;
        let mut b = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .http_client(self.http.clone())
            .credentials_provider(creds)
            .identity_cache(
                IdentityCache::lazy()
                    .buffer_time(self.cfg.refresh_before)
                    .build(),
            )
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(t.connect).build());
        if let Some(ep) = &self.cfg.endpoint_url {
            b = b.endpoint_url(ep.clone());
        }
        Client::from_conf(b.build())
    }

    /// An `SdkConfig` carrying the gateway identity, for STS and the default chain.
    async fn gateway_config(&self, identity: &Identity) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.cfg.region.clone()))
            .http_client(self.http.clone())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
        if let Identity::Static(k) = identity {
            loader = loader.credentials_provider(k.to_credentials("warden-gateway-static"));
        }
        if let Some(ep) = &self.cfg.sts_endpoint_url {
            loader = loader.endpoint_url(ep.clone());
        }
        loader.load().await
    }

    async fn identity_provider(
        &self,
        identity: &Identity,
    ) -> Result<SharedCredentialsProvider, ProviderError> {
        match identity {
            Identity::Static(k) => Ok(SharedCredentialsProvider::new(
                k.to_credentials("warden-platform-static"),
            )),
            Identity::DefaultChain => self
                .gateway_config(identity)
                .await
                .credentials_provider()
                .ok_or_else(|| ProviderError::NotConfigured {
                    provider: self.cfg.name.clone(),
                    message: "no AWS credentials found in the default chain".into(),
                }),
        }
    }

    async fn client(&self, req: &ChatRequest) -> Result<Client, ProviderError> {
        match &self.cfg.credentials {
            BedrockCredentials::Platform(identity) => {
                let c = self
                    .platform
                    .get_or_try_init(|| async {
                        let creds = self.identity_provider(identity).await?;
                        Ok::<_, ProviderError>(self.client_for(&self.cfg.region, creds))
                    })
                    .await?;
                Ok(c.clone())
            }
            BedrockCredentials::PerTenant { accounts, gateway } => {
                let tenant =
                    req.tenant_id
                        .as_deref()
                        .ok_or_else(|| ProviderError::NotConfigured {
                            provider: self.cfg.name.clone(),
                            message: "a customer-account request must name its tenant".into(),
                        })?;
                let account = accounts.account(tenant).await.map_err(|e| match e {
                    ProviderError::NotConfigured { message, .. } => ProviderError::NotConfigured {
                        provider: self.cfg.name.clone(),
                        message,
                    },
                    other => other,
                })?;
                let key = account.cache_key(tenant);
                let built = self
                    .tenants
                    .try_get_with(key, async {
                        let creds = match &account.credentials {
                            AccountCredentials::Static(k) => SharedCredentialsProvider::new(
                                k.to_credentials("warden-tenant-static"),
                            ),
                            AccountCredentials::AssumeRole {
                                role_arn,
                                external_id,
                                session_name,
                            } => {
                                let base = self.gateway_config(gateway).await;
                                let p =
                                    aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                                        .external_id(external_id.expose_secret())
                                        .session_name(session_name.clone())
                                        .configure(&base)
                                        .build()
                                        .await;
                                SharedCredentialsProvider::new(p)
                            }
                        };
                        Ok::<_, ProviderError>(self.client_for(&account.region, creds))
                    })
                    .await
                    .map_err(|e: Arc<ProviderError>| (*e).clone())?;
                Ok(built)
            }
        }
    }

    fn model(&self, req: &ChatRequest) -> String {
        req.model
            .clone()
            .unwrap_or_else(|| self.cfg.default_model.clone())
    }

    fn timeout(&self) -> ProviderError {
        ProviderError::Timeout {
            provider: self.cfg.name.clone(),
        }
    }
}

/// JSON to a Smithy document (tool schemas and tool inputs).
pub(crate) fn to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Document::Number(Number::PosInt(u))
            } else if let Some(i) = n.as_i64() {
                Document::Number(Number::NegInt(i))
            } else {
                Document::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}

/// A Smithy document back to JSON.
pub(crate) fn to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Document::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// The Converse inputs for `req`: messages, system, inference config and tools.
pub(crate) struct ConverseInput {
    pub messages: Vec<bt::Message>,
    pub system: Vec<bt::SystemContentBlock>,
    pub inference: bt::InferenceConfiguration,
    pub tools: Option<bt::ToolConfiguration>,
}

pub(crate) fn converse_input(
    provider: &str,
    req: &ChatRequest,
    default_max_tokens: u32,
) -> Result<ConverseInput, ProviderError> {
    let bad = |what: &str| ProviderError::Invalid {
        provider: provider.into(),
        message: format!("cannot encode {what} for Bedrock"),
    };
    let mut messages = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            MessageRole::User => bt::ConversationRole::User,
            MessageRole::Assistant => bt::ConversationRole::Assistant,
        };
        let mut b = bt::Message::builder().role(role);
        for c in &m.content {
            let block = match c {
                Content::Text { text } => bt::ContentBlock::Text(text.clone()),
                Content::ToolUse { id, name, input } => bt::ContentBlock::ToolUse(
                    bt::ToolUseBlock::builder()
                        .tool_use_id(id)
                        .name(name)
                        .input(to_document(input))
                        .build()
                        .map_err(|_| bad("tool use"))?,
                ),
                Content::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => bt::ContentBlock::ToolResult(
                    bt::ToolResultBlock::builder()
                        .tool_use_id(tool_use_id)
                        .content(bt::ToolResultContentBlock::Text(content.clone()))
                        .status(if *is_error {
                            bt::ToolResultStatus::Error
                        } else {
                            bt::ToolResultStatus::Success
                        })
                        .build()
                        .map_err(|_| bad("tool result"))?,
                ),
            };
            b = b.content(block);
        }
        messages.push(b.build().map_err(|_| bad("message"))?);
    }
    let system = req
        .system
        .iter()
        .map(|s| bt::SystemContentBlock::Text(s.clone()))
        .collect();
    let max_tokens = if req.max_tokens == 0 {
        default_max_tokens
    } else {
        req.max_tokens
    };
    let inference = bt::InferenceConfiguration::builder()
        .max_tokens(i32::try_from(max_tokens).unwrap_or(i32::MAX))
        .set_temperature(req.temperature)
        .build();
    let tools = if req.tools.is_empty() {
        None
    } else {
        let mut tc = bt::ToolConfiguration::builder()
            .tool_choice(bt::ToolChoice::Auto(bt::AutoToolChoice::builder().build()));
        for t in &req.tools {
            let spec = bt::ToolSpecification::builder()
                .name(&t.name)
                .description(&t.description)
                .input_schema(bt::ToolInputSchema::Json(to_document(&t.input_schema)))
                .build()
                .map_err(|_| bad("tool"))?;
            tc = tc.tools(bt::Tool::ToolSpec(spec));
        }
        Some(tc.build().map_err(|_| bad("tool config"))?)
    };
    Ok(ConverseInput {
        messages,
        system,
        inference,
        tools,
    })
}

pub(crate) fn stop_reason(r: &bt::StopReason) -> StopReason {
    match r {
        bt::StopReason::ToolUse => StopReason::ToolUse,
        bt::StopReason::MaxTokens | bt::StopReason::ModelContextWindowExceeded => {
            StopReason::MaxTokens
        }
        bt::StopReason::StopSequence => StopReason::StopSequence,
        bt::StopReason::GuardrailIntervened | bt::StopReason::ContentFiltered => {
            StopReason::ContentFilter
        }
        _ => StopReason::EndTurn,
    }
}

fn usage_of(u: &bt::TokenUsage) -> Usage {
    Usage {
        input_tokens: u.input_tokens().max(0) as u64,
        output_tokens: u.output_tokens().max(0) as u64,
    }
}

/// Classifies a Bedrock error by its modeled name and HTTP status. Keeps the error code and
/// request id, never the SDK's message (which can quote the request).
fn classify(
    provider: &str,
    status: u16,
    code: &str,
    request_id: Option<&str>,
    retry_after: Option<Duration>,
) -> ProviderError {
    let mut message = code.to_owned();
    if let Some(id) = request_id {
        message.push_str(&format!(" (x-amzn-RequestId {id})"));
    }
    let provider = provider.to_owned();
    match code {
        "ValidationException" => ProviderError::Invalid { provider, message },
        "ServiceQuotaExceededException" => ProviderError::QuotaExhausted { provider, message },
        _ => ProviderError::Status {
            provider,
            status,
            retry_after,
            message,
        },
    }
}

fn sdk_error<E, R>(provider: &str, err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + RawStatus,
{
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let code = se.err().code().unwrap_or("UnknownError");
            classify(
                provider,
                status,
                code,
                se.err().meta().request_id(),
                se.raw().retry_after(),
            )
        }
        SdkError::TimeoutError(_) => ProviderError::Timeout {
            provider: provider.into(),
        },
        SdkError::DispatchFailure(d) if d.is_timeout() => ProviderError::Timeout {
            provider: provider.into(),
        },
        SdkError::DispatchFailure(d) => {
            let message = if d.is_io() {
                "connection failed".to_owned()
            } else if d.is_user() {
                "request could not be sent (credentials or configuration)".to_owned()
            } else {
                "request could not be sent".to_owned()
            };
            ProviderError::Connect {
                provider: provider.into(),
                message,
            }
        }
        SdkError::ResponseError(_) => ProviderError::Protocol {
            provider: provider.into(),
            message: "malformed response".into(),
        },
        SdkError::ConstructionFailure(_) => ProviderError::Invalid {
            provider: provider.into(),
            message: "request could not be built (credentials or configuration)".into(),
        },
        _ => ProviderError::Protocol {
            provider: provider.into(),
            message: "unexpected SDK error".into(),
        },
    }
}

/// HTTP status of a raw SDK response; event-stream messages have none (treated as 200).
trait RawStatus {
    fn status_code(&self) -> u16;
    fn retry_after(&self) -> Option<Duration>;
}

impl RawStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }

    fn retry_after(&self) -> Option<Duration> {
        let v = self.headers().get("retry-after")?;
        crate::http::parse_retry_after(v.trim(), std::time::SystemTime::now())
    }
}

impl RawStatus for aws_smithy_types::event_stream::RawMessage {
    fn status_code(&self) -> u16 {
        200
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Stream exceptions carry no code in their payload: classify by the modeled variant.
fn stream_exception(
    provider: &str,
    err: SdkError<bt::error::ConverseStreamOutputError, aws_smithy_types::event_stream::RawMessage>,
) -> ProviderError {
    if let SdkError::ServiceError(se) = &err {
        let e = se.err();
        let (status, code) = if e.is_throttling_exception() {
            (429, "throttlingException")
        } else if e.is_service_unavailable_exception() {
            (503, "serviceUnavailableException")
        } else if e.is_internal_server_exception() {
            (500, "internalServerException")
        } else if e.is_model_stream_error_exception() {
            (424, "modelStreamErrorException")
        } else if e.is_validation_exception() {
            return ProviderError::Invalid {
                provider: provider.into(),
                message: "mid-stream validationException".into(),
            };
        } else {
            (500, "unknownException")
        };
        return ProviderError::Status {
            provider: provider.into(),
            status,
            retry_after: None,
            message: format!("mid-stream {code}"),
        };
    }
    sdk_error(provider, err)
}

/// ConverseStream's event grammar as a state machine.
#[derive(Debug, Default)]
pub(crate) struct StreamMapper {
    model: String,
    tool_blocks: Vec<(i32, u32)>,
    next_tool: u32,
    stop: Option<StopReason>,
    pub(crate) done: bool,
}

impl StreamMapper {
    fn tool_index(&mut self, block: i32) -> u32 {
        if let Some((_, t)) = self.tool_blocks.iter().find(|(b, _)| *b == block) {
            return *t;
        }
        let t = self.next_tool;
        self.next_tool += 1;
        self.tool_blocks.push((block, t));
        t
    }

    pub(crate) fn on_event(&mut self, ev: bt::ConverseStreamOutput) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        match ev {
            bt::ConverseStreamOutput::MessageStart(_) => out.push(StreamEvent::Start {
                model: self.model.clone(),
            }),
            bt::ConverseStreamOutput::ContentBlockStart(s) => {
                if let Some(bt::ContentBlockStart::ToolUse(t)) = s.start() {
                    let index = self.tool_index(s.content_block_index());
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: t.tool_use_id().into(),
                        name: t.name().into(),
                    });
                }
            }
            bt::ConverseStreamOutput::ContentBlockDelta(d) => match d.delta() {
                Some(bt::ContentBlockDelta::Text(t)) if !t.is_empty() => {
                    out.push(StreamEvent::TextDelta { text: t.clone() })
                }
                Some(bt::ContentBlockDelta::ToolUse(t)) if !t.input().is_empty() => {
                    let index = self.tool_index(d.content_block_index());
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        partial_json: t.input().into(),
                    });
                }
                _ => {}
            },
            bt::ConverseStreamOutput::MessageStop(s) => {
                self.stop = Some(stop_reason(s.stop_reason()))
            }
            bt::ConverseStreamOutput::Metadata(m) => {
                // metadata comes after messageStop and is the last event.
                if let Some(u) = m.usage() {
                    out.push(StreamEvent::Usage { usage: usage_of(u) });
                }
                out.push(StreamEvent::Stop {
                    reason: self.stop.unwrap_or_default(),
                });
                self.done = true;
            }
            _ => {}
        }
        out
    }
}

#[async_trait::async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let work = async {
            let client = self.client(req).await?;
            let input = converse_input(&self.cfg.name, req, self.cfg.default_max_tokens)?;
            let model = self.model(req);
            let call = client
                .converse()
                .model_id(&model)
                .set_messages(Some(input.messages))
                .set_system(Some(input.system).filter(|s| !s.is_empty()))
                .inference_config(input.inference)
                .set_tool_config(input.tools)
                .send();
            let out = tokio::time::timeout(self.cfg.http.timeouts.first_byte, call)
                .await
                .map_err(|_| self.timeout())?
                .map_err(|e| sdk_error(&self.cfg.name, e))?;
            let mut content = Vec::new();
            if let Some(bt::ConverseOutput::Message(m)) = out.output() {
                for c in m.content() {
                    match c {
                        bt::ContentBlock::Text(t) => content.push(Content::text(t.clone())),
                        bt::ContentBlock::ToolUse(t) => content.push(Content::ToolUse {
                            id: t.tool_use_id().into(),
                            name: t.name().into(),
                            input: to_json(t.input()),
                        }),
                        _ => {}
                    }
                }
            }
            Ok(ChatResponse {
                model,
                content,
                stop_reason: stop_reason(out.stop_reason()),
                usage: out.usage().map(usage_of).unwrap_or_default(),
            })
        };
        tokio::time::timeout(self.cfg.http.timeouts.total, work)
            .await
            .unwrap_or_else(|_| Err(self.timeout()))
    }

    async fn stream(&self, req: &ChatRequest) -> Result<EventStream, ProviderError> {
        let start = async {
            let client = self.client(req).await?;
            let input = converse_input(&self.cfg.name, req, self.cfg.default_max_tokens)?;
            let model = self.model(req);
            let out = client
                .converse_stream()
                .model_id(&model)
                .set_messages(Some(input.messages))
                .set_system(Some(input.system).filter(|s| !s.is_empty()))
                .inference_config(input.inference)
                .set_tool_config(input.tools)
                .send()
                .await
                .map_err(|e| sdk_error(&self.cfg.name, e))?;
            Ok::<_, ProviderError>((model, out.stream))
        };
        let (model, receiver) = tokio::time::timeout(self.cfg.http.timeouts.first_byte, start)
            .await
            .unwrap_or_else(|_| Err(self.timeout()))?;
        let provider = self.cfg.name.clone();
        let idle = self.cfg.http.timeouts.idle;
        let mapper = StreamMapper {
            model,
            ..Default::default()
        };
        let state = (receiver, mapper, std::collections::VecDeque::new(), false);
        let s = futures::stream::unfold(
            state,
            move |(mut rx, mut mapper, mut pending, mut finished)| {
                let provider = provider.clone();
                async move {
                    loop {
                        if let Some(ev) = pending.pop_front() {
                            return Some((Ok(ev), (rx, mapper, pending, finished)));
                        }
                        if finished || mapper.done {
                            return None;
                        }
                        match tokio::time::timeout(idle, rx.recv()).await {
                            Err(_) => {
                                finished = true;
                                return Some((
                                    Err(ProviderError::Timeout { provider }),
                                    (rx, mapper, pending, finished),
                                ));
                            }
                            Ok(Ok(Some(ev))) => pending.extend(mapper.on_event(ev)),
                            Ok(Ok(None)) => {
                                finished = true;
                                let e = ProviderError::Protocol {
                                    provider,
                                    message: "stream ended before its final event".into(),
                                };
                                return Some((Err(e), (rx, mapper, pending, finished)));
                            }
                            Ok(Err(e)) => {
                                finished = true;
                                return Some((
                                    Err(stream_exception(&provider, e)),
                                    (rx, mapper, pending, finished),
                                ));
                            }
                        }
                    }
                }
            },
        );
        Ok(s.boxed())
    }
}

#[cfg(test)]
mod tests;
