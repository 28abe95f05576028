//! Model providers: one trait, one normalized model of request, response and stream events.
//!
//! Adapters ([`Anthropic`], [`OpenAi`], [`Bedrock`]) translate between this model and each
//! provider's wire format; nothing above this crate knows a provider's JSON. The [`Router`]
//! tries an ordered list of eligible providers with retries, backoff, circuit breakers and
//! per-tenant limits, and returns the list of attempts for the audit record.
//!
//! **Invariant:** errors, `Debug` output and log fields never carry credentials or payload
//! bytes. Credentials are `secrecy::SecretString` and only exposed while signing a request.
//!
//! **Invariant:** the router never sends to a provider outside the eligible list it is
//! given, and never fails over once a streamed event has reached the caller.

mod anthropic;
mod bedrock;
mod http;
mod json_out;
mod lenient;
mod local;
mod model;
#[cfg(test)]
mod odd_json;
mod openai;
mod resilience;
mod router;
mod sse;
#[cfg(test)]
mod test_requests;

/// Entry points for `benches/body.rs`, not API: the adapters' request bodies as the bytes they
/// send, their response parses and their streams' event reading, without HTTP.
#[doc(hidden)]
pub mod bench_support {
    use crate::sse::{SseEvent, SseMapper};
    use crate::{AnthropicConfig, ChatRequest, ChatResponse, OpenAiConfig, ProviderError};

    pub fn openai_request_bytes(req: &ChatRequest, cfg: &OpenAiConfig, stream: bool) -> Vec<u8> {
        crate::openai::request_bytes(req, cfg, stream)
    }

    pub fn openai_parse_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
        crate::openai::parse_response("openai", body)
    }

    /// The events of a whole stream, `data:` payloads in order: how many there were.
    pub fn openai_stream(chunks: &[String]) -> Result<usize, ProviderError> {
        let mut m = crate::openai::StreamMapper::new("openai");
        let mut n = 0;
        for data in chunks {
            n += m
                .on_event(SseEvent {
                    event: None,
                    data: data.clone(),
                })?
                .len();
        }
        Ok(n)
    }

    pub fn anthropic_request_bytes(
        req: &ChatRequest,
        cfg: &AnthropicConfig,
        stream: bool,
    ) -> Vec<u8> {
        crate::anthropic::request_bytes(req, cfg, stream)
    }

    pub fn anthropic_parse_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
        crate::anthropic::parse_response("anthropic", body)
    }

    /// The events of a whole Anthropic stream, `(event, data)` pairs in order: how many there
    /// were.
    pub fn anthropic_stream(events: &[(String, String)]) -> Result<usize, ProviderError> {
        let mut m = crate::anthropic::StreamMapper::new("anthropic");
        let mut n = 0;
        for (event, data) in events {
            n += m
                .on_event(SseEvent {
                    event: Some(event.clone()),
                    data: data.clone(),
                })?
                .len();
        }
        Ok(n)
    }
}

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;

pub use anthropic::{Anthropic, AnthropicConfig};
pub use bedrock::{
    AccountCredentials, Bedrock, BedrockAccount, BedrockConfig, BedrockCredentials, Identity,
    StaticKeys, StaticTenantAccounts, TenantAccounts,
};
pub use http::{BuildError, HttpSettings, Timeouts};
pub use local::{LOCAL_MODEL, LocalProvider, MAX_LOCAL_TOOL_CALLS};
pub use model::{
    ChatRequest, ChatResponse, Content, Message, MessageRole, StopReason, StreamEvent, ToolDef,
    Usage,
};
pub use openai::{OpenAi, OpenAiConfig};
pub use resilience::{
    Breaker, BreakerPolicy, BreakerState, Limits, RetryPolicy, Step, TenantLimiter, TenantPermit,
    backoff_delay, next_step,
};
pub use router::{
    Attempt, Outcome, Registry, RegistryEntry, RouteFailure, RouteRequest, Routed, Router,
};

/// A stream of normalized events from one provider call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// Why a provider call failed. Display text is safe to return to callers and log:
/// it names the provider and the failure, never credentials or prompt content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} answered HTTP {status}: {message}")]
    Status {
        provider: String,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("provider {provider} timed out")]
    Timeout { provider: String },
    #[error("provider {provider} could not be reached: {message}")]
    Connect { provider: String, message: String },
    #[error("provider {provider} sent a malformed response: {message}")]
    Protocol { provider: String, message: String },
    #[error("provider {provider} refused the request: {message}")]
    Invalid { provider: String, message: String },
    /// The provider's quota or spend limit is exhausted: retrying the same provider will not
    /// help, the next one may.
    #[error("provider {provider} quota exhausted: {message}")]
    QuotaExhausted { provider: String, message: String },
    /// A Warden-side limit (per tenant) refused the request before anything left.
    #[error("{scope} is over its limit: {message}")]
    RateLimited {
        scope: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider's circuit breaker is open: it failed repeatedly and is resting.
    #[error("provider {provider} is temporarily disabled after repeated failures")]
    CircuitOpen {
        provider: String,
        retry_after: Option<Duration>,
    },
    /// The routing config names a provider the registry does not hold (or no model for the profile).
    #[error("provider {provider} is not configured: {message}")]
    NotConfigured { provider: String, message: String },
}

impl ProviderError {
    /// Worth another attempt (same provider after backoff, or the next one).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            ProviderError::Timeout { .. } | ProviderError::Connect { .. } => true,
            ProviderError::Protocol { .. }
            | ProviderError::Invalid { .. }
            | ProviderError::QuotaExhausted { .. }
            | ProviderError::RateLimited { .. }
            | ProviderError::CircuitOpen { .. }
            | ProviderError::NotConfigured { .. } => false,
        }
    }

    /// Somebody asked us to slow down: the provider (429) or a Warden tenant limit.
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            ProviderError::Status { status: 429, .. } | ProviderError::RateLimited { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. }
            | ProviderError::RateLimited { retry_after, .. }
            | ProviderError::CircuitOpen { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The provider name this error is about (the scope for a tenant limit).
    pub fn provider(&self) -> &str {
        match self {
            ProviderError::Status { provider, .. }
            | ProviderError::Timeout { provider }
            | ProviderError::Connect { provider, .. }
            | ProviderError::Protocol { provider, .. }
            | ProviderError::Invalid { provider, .. }
            | ProviderError::QuotaExhausted { provider, .. }
            | ProviderError::CircuitOpen { provider, .. }
            | ProviderError::NotConfigured { provider, .. } => provider,
            ProviderError::RateLimited { scope, .. } => scope,
        }
    }

    /// A short stable label for metrics and audit records (never a free-form message).
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status { status: 529, .. } => "overloaded",
            ProviderError::Status {
                status: 500..=599, ..
            } => "server_error",
            ProviderError::Status {
                status: 401 | 403, ..
            } => "auth",
            ProviderError::Status { .. } => "status",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Connect { .. } => "connect",
            ProviderError::Protocol { .. } => "protocol",
            ProviderError::Invalid { .. } => "invalid",
            ProviderError::QuotaExhausted { .. } => "quota",
            ProviderError::RateLimited { .. } => "tenant_limited",
            ProviderError::CircuitOpen { .. } => "circuit_open",
            ProviderError::NotConfigured { .. } => "not_configured",
        }
    }
}

/// A model provider. Implementations are cheap to share (`Arc<dyn Provider>`).
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The configured name, e.g. `anthropic` or `bedrock-customer`.
    fn name(&self) -> &str;

    /// One request, one whole answer.
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// One request, events as they arrive. Dropping the stream cancels the upstream call.
    async fn stream(&self, req: &ChatRequest) -> Result<EventStream, ProviderError>;
}
