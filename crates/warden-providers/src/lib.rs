//! Model providers: one trait, one normalized model of request, response and stream events.
//!
//! Adapters translate between this model and each provider's wire format; nothing above
//! this crate knows a provider's JSON. Errors never carry credentials or payload bytes.

mod local;
mod model;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;

pub use local::LocalProvider;
pub use model::{
    ChatRequest, ChatResponse, Content, Message, MessageRole, StopReason, StreamEvent, ToolDef,
    Usage,
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
}

impl ProviderError {
    /// Worth another attempt (same provider after backoff, or the next one).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            ProviderError::Timeout { .. } | ProviderError::Connect { .. } => true,
            ProviderError::Protocol { .. } | ProviderError::Invalid { .. } => false,
        }
    }

    /// The provider asked us to slow down.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, ProviderError::Status { status: 429, .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
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
