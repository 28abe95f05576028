//! The providers the gateway can reach, and the bridge to `warden_providers::Router`:
//! the router tries the eligible providers in policy's order, with retries, breakers and
//! failover that never leave the eligible list; this module turns its attempts into
//! audit records and metrics.

use std::sync::Arc;
use std::time::Duration;

pub use warden_policy::ProviderInfo;
use warden_proto::common::v1 as pb;
use warden_providers::{
    Attempt, ChatRequest, ChatResponse, EventStream, LocalProvider, Outcome, ProviderError,
    Registry, RegistryEntry, RouteFailure, RouteRequest, Router,
};

/// The configured providers: the router that reaches them, and what policy needs to know.
pub struct Providers {
    router: Router,
    catalogue: Vec<ProviderInfo>,
    profiles: Vec<String>,
    default_profile: String,
    /// Ceiling for routing one request (all attempts); `None`: only each provider's timeouts.
    deadline: Option<Duration>,
    /// Each provider's stream idle timeout, which also bounds how long a stream's relay
    /// waits for its reader to take the next event.
    stream_idle: std::collections::HashMap<String, Duration>,
    /// For a provider not in `stream_idle`.
    default_stream_idle: Duration,
}

/// The stream idle timeout of a provider that names none (the providers' default).
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(30);

impl Providers {
    pub fn new(
        router: Router,
        catalogue: Vec<ProviderInfo>,
        profiles: Vec<String>,
        default_profile: String,
    ) -> Providers {
        Providers {
            router,
            catalogue,
            profiles,
            default_profile,
            deadline: None,
            stream_idle: Default::default(),
            default_stream_idle: DEFAULT_STREAM_IDLE,
        }
    }

    /// Each provider's stream idle timeout (from the routing config).
    pub fn with_stream_idle_timeouts(
        mut self,
        timeouts: impl IntoIterator<Item = (String, Duration)>,
    ) -> Providers {
        self.stream_idle = timeouts.into_iter().collect();
        self
    }

    /// The stream idle timeout of every provider not named by
    /// [`Providers::with_stream_idle_timeouts`].
    pub fn with_default_stream_idle(mut self, idle: Duration) -> Providers {
        self.default_stream_idle = idle;
        self
    }

    /// How long a stream from `provider` may go without an event, either way: upstream
    /// silent, or the reader not taking the next one.
    pub fn stream_idle(&self, provider: &str) -> Duration {
        self.stream_idle
            .get(provider)
            .copied()
            .unwrap_or(self.default_stream_idle)
    }

    /// Bounds the routing of each request (every attempt, retry wait and failover).
    pub fn with_deadline(mut self, deadline: Duration) -> Providers {
        self.deadline = Some(deadline);
        self
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Only the built-in offline provider, named `local`, for every profile.
    pub fn local_only() -> (Providers, Arc<LocalProvider>) {
        let local = Arc::new(LocalProvider::new("local"));
        (Providers::with_local(local.clone()), local)
    }

    /// The given local provider as the only provider (tests use this to count calls).
    pub fn with_local(local: Arc<dyn warden_providers::Provider>) -> Providers {
        let model = warden_providers::LOCAL_MODEL.to_owned();
        let profiles = vec!["reasoning".to_owned(), "fast".to_owned()];
        let mut registry = Registry::new();
        let name = local.name().to_owned();
        registry.insert(RegistryEntry::new(
            local,
            profiles.iter().map(|p| (p.clone(), model.clone())),
        ));
        let info = ProviderInfo {
            name,
            no_training: true,
            customer_account: false,
        };
        Providers::new(
            Router::new(registry),
            vec![info],
            profiles,
            "reasoning".to_owned(),
        )
    }

    pub fn catalogue(&self) -> &[ProviderInfo] {
        &self.catalogue
    }

    pub fn contains(&self, name: &str) -> bool {
        self.catalogue.iter().any(|p| p.name == name)
    }

    /// The profile to route with: the request's, or the default. Unknown profiles are named.
    pub fn profile<'a>(&'a self, requested: &'a str) -> Result<&'a str, String> {
        if requested.is_empty() {
            return Ok(&self.default_profile);
        }
        if self.profiles.iter().any(|p| p == requested) {
            Ok(requested)
        } else {
            Err(format!(
                "unknown routing_profile {requested:?}; configured: {}",
                self.profiles.join(", ")
            ))
        }
    }

    /// One whole answer from the first eligible provider that gives one.
    pub async fn complete(
        &self,
        route: &RouteRequest<'_>,
        req: &ChatRequest,
        attempts: &mut Vec<pb::Attempt>,
    ) -> Result<(String, ChatResponse), ProviderError> {
        match self.router.complete(route, req).await {
            Ok(r) => {
                record(&r.attempts, attempts);
                Ok((r.provider, r.value))
            }
            Err(RouteFailure { error, attempts: a }) => {
                record(&a, attempts);
                Err(error)
            }
        }
    }

    /// A stream from the first eligible provider that produces a first event.
    pub async fn stream(
        &self,
        route: &RouteRequest<'_>,
        req: &ChatRequest,
        attempts: &mut Vec<pb::Attempt>,
    ) -> Result<(String, String, EventStream), ProviderError> {
        match self.router.stream(route, req).await {
            Ok(r) => {
                record(&r.attempts, attempts);
                Ok((r.provider, r.model, r.value))
            }
            Err(RouteFailure { error, attempts: a }) => {
                record(&a, attempts);
                Err(error)
            }
        }
    }
}

/// Attempts for the audit record, and provider errors by kind for metrics.
fn record(from: &[Attempt], to: &mut Vec<pb::Attempt>) {
    for a in from {
        let outcome = match &a.outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Failed(e) => {
                metrics::counter!("warden_gateway_provider_errors_total", "provider" => a.provider.clone(), "kind" => e.kind())
                    .increment(1);
                crate::outcome::ProviderFailure::from(e).to_string()
            }
            Outcome::Skipped(e) => format!("skipped_{}", e.kind()),
        };
        to.push(pb::Attempt {
            provider: a.provider.clone(),
            model: a.model.clone(),
            outcome,
            latency_ms: a.latency.as_millis() as u64,
        });
    }
}
