//! Selection and failover over the eligible providers, in the order policy gave them.
//!
//! For each eligible provider: skip it if its breaker is open or it has no model for the
//! profile; otherwise call it, retrying per its [`RetryPolicy`] (backoff with jitter,
//! `Retry-After` honoured), then fail over to the next. Streams fail over only before the
//! first event reaches the caller; after that an error ends the stream. Every attempt is
//! recorded (provider, model, outcome, latency) for the audit record.
//!
//! **Invariant:** only names in `RouteRequest::eligible` are ever called.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::resilience::{
    Breaker, BreakerPolicy, BreakerState, RetryPolicy, Step, TenantLimiter,
    counts_against_provider, next_step,
};
use crate::{ChatRequest, ChatResponse, EventStream, Provider, ProviderError};

/// One configured provider with its models per profile and its resilience settings.
#[derive(Clone)]
pub struct RegistryEntry {
    pub provider: Arc<dyn Provider>,
    /// Profile (e.g. `reasoning`, `fast`) -> model id.
    pub models: BTreeMap<String, String>,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
}

impl fmt::Debug for RegistryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryEntry")
            .field("provider", &self.provider.name())
            .field("models", &self.models)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl RegistryEntry {
    pub fn new(
        provider: Arc<dyn Provider>,
        models: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        RegistryEntry {
            provider,
            models: models.into_iter().collect(),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// Provider name -> entry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, RegistryEntry>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds (or replaces) the entry under its provider's name.
    pub fn insert(&mut self, entry: RegistryEntry) {
        self.entries.insert(entry.provider.name().to_owned(), entry);
    }

    pub fn get(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The plain `name -> provider` map.
    pub fn providers(&self) -> BTreeMap<String, Arc<dyn Provider>> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.provider.clone()))
            .collect()
    }
}

/// Where a request may go: the tenant, the eligible providers in order (from policy) and
/// the model profile.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub tenant_id: &'a str,
    pub eligible: &'a [String],
    pub profile: &'a str,
    /// Ceiling for the whole routing (all attempts and waits). `None`: no ceiling beyond each provider's timeouts.
    pub deadline: Option<Duration>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(ProviderError),
    /// Not called: breaker open, or no model for the profile, or not in the registry.
    Skipped(ProviderError),
}

/// One attempt, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    pub outcome: Outcome,
    pub latency: Duration,
}

/// A routed success: the value, who served it and every attempt (the last one is the success).
pub struct Routed<T> {
    pub value: T,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
}

impl<T> fmt::Debug for Routed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Every eligible provider failed (or the request was refused): the deciding error and the attempts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RouteFailure {
    pub error: ProviderError,
    pub attempts: Vec<Attempt>,
}

/// The failover router.
pub struct Router {
    registry: Arc<Registry>,
    breakers: Mutex<HashMap<String, Breaker>>,
    limiter: Option<Arc<TenantLimiter>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("providers", &self.registry.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Router {
    pub fn new(registry: Registry) -> Self {
        Router {
            registry: Arc::new(registry),
            breakers: Mutex::new(HashMap::new()),
            limiter: None,
        }
    }

    /// Enforce per-tenant limits before anything leaves.
    pub fn with_limiter(mut self, limiter: Arc<TenantLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The breaker state of a provider (`None` until it was first used).
    pub fn breaker_state(&self, provider: &str) -> Option<BreakerState> {
        self.breakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(provider)
            .map(Breaker::state)
    }

    fn breaker_allow(
        &self,
        name: &str,
        policy: BreakerPolicy,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut b = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        b.entry(name.to_owned())
            .or_insert_with(|| Breaker::new(policy))
            .allow(now)
    }

    fn breaker_report(
        &self,
        name: &str,
        policy: BreakerPolicy,
        result: Result<(), &ProviderError>,
    ) {
        let mut b = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let breaker = b
            .entry(name.to_owned())
            .or_insert_with(|| Breaker::new(policy));
        match result {
            Ok(()) => breaker.record_success(),
            Err(e) if counts_against_provider(e) => breaker.record_failure(Instant::now()),
            Err(_) => {}
        }
    }

    /// One request, one whole answer, from the first eligible provider that gives one.
    pub async fn complete(
        &self,
        route: &RouteRequest<'_>,
        req: &ChatRequest,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        let _permit = self.permit(route)?;
        self.run(route, req, |p, r| async move { p.complete(&r).await })
            .await
    }

    /// One request, events as they arrive. Failover happens only until the first event;
    /// after that, an error is the stream's last item.
    pub async fn stream(
        &self,
        route: &RouteRequest<'_>,
        req: &ChatRequest,
    ) -> Result<Routed<EventStream>, RouteFailure> {
        let permit = self.permit(route)?;
        let routed = self
            .run(route, req, |p, r| async move {
                let mut s = p.stream(&r).await?;
                match s.next().await {
                    None => Err(ProviderError::Protocol {
                        provider: p.name().to_owned(),
                        message: "stream ended before any event".into(),
                    }),
                    Some(Err(e)) => Err(e),
                    Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) })
                        .chain(s)
                        .boxed()),
                }
            })
            .await?;
        // End after the first error, and hold the tenant's slot until the stream is dropped.
        let s = routed
            .value
            .scan((false, permit), |(failed, _permit), item| {
                let out = if *failed {
                    None
                } else {
                    *failed = item.is_err();
                    Some(item)
                };
                futures::future::ready(out)
            })
            .boxed();
        Ok(Routed {
            value: s,
            provider: routed.provider,
            model: routed.model,
            attempts: routed.attempts,
        })
    }

    fn permit(
        &self,
        route: &RouteRequest<'_>,
    ) -> Result<Option<crate::TenantPermit>, RouteFailure> {
        match &self.limiter {
            None => Ok(None),
            Some(l) => l
                .acquire(route.tenant_id, Instant::now())
                .map(Some)
                .map_err(|error| RouteFailure {
                    error,
                    attempts: vec![],
                }),
        }
    }

    async fn run<T, F, Fut>(
        &self,
        route: &RouteRequest<'_>,
        req: &ChatRequest,
        call: F,
    ) -> Result<Routed<T>, RouteFailure>
    where
        F: Fn(Arc<dyn Provider>, ChatRequest) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = Instant::now();
        let deadline = route.deadline.map(|d| started + d);
        let mut attempts = Vec::new();
        let mut last_error: Option<ProviderError> = None;
        for name in route.eligible {
            let Some(entry) = self.registry.get(name) else {
                let e = ProviderError::NotConfigured {
                    provider: name.clone(),
                    message: "not in the provider registry".into(),
                };
                attempts.push(Attempt {
                    provider: name.clone(),
                    model: String::new(),
                    outcome: Outcome::Skipped(e.clone()),
                    latency: Duration::ZERO,
                });
                last_error = Some(e);
                continue;
            };
            let Some(model) = entry.models.get(route.profile) else {
                let e = ProviderError::NotConfigured {
                    provider: name.clone(),
                    message: format!("no model for profile {}", route.profile),
                };
                attempts.push(Attempt {
                    provider: name.clone(),
                    model: String::new(),
                    outcome: Outcome::Skipped(e.clone()),
                    latency: Duration::ZERO,
                });
                last_error = Some(e);
                continue;
            };
            let mut r = req.clone();
            r.model = Some(model.clone());
            r.tenant_id = Some(route.tenant_id.to_owned());
            let mut attempt_no = 0;
            loop {
                attempt_no += 1;
                if let Err(wait) = self.breaker_allow(name, entry.breaker, Instant::now()) {
                    let e = ProviderError::CircuitOpen {
                        provider: name.clone(),
                        retry_after: Some(wait),
                    };
                    attempts.push(Attempt {
                        provider: name.clone(),
                        model: model.clone(),
                        outcome: Outcome::Skipped(e.clone()),
                        latency: Duration::ZERO,
                    });
                    last_error = Some(e);
                    break;
                }
                let t0 = Instant::now();
                let fut = call(entry.provider.clone(), r.clone());
                let result = match deadline {
                    Some(d) => {
                        match tokio::time::timeout(d.saturating_duration_since(t0), fut).await {
                            Ok(r) => r,
                            Err(_) => Err(ProviderError::Timeout {
                                provider: name.clone(),
                            }),
                        }
                    }
                    None => fut.await,
                };
                let latency = t0.elapsed();
                let err = match result {
                    Ok(value) => {
                        self.breaker_report(name, entry.breaker, Ok(()));
                        attempts.push(Attempt {
                            provider: name.clone(),
                            model: model.clone(),
                            outcome: Outcome::Ok,
                            latency,
                        });
                        // Debug, not info: every answered call is in the audit outcome and the
                        // metrics already, and a log line per call was a write(2) per request.
                        tracing::debug!(provider = %name, model = %model, attempts = attempts.len(), latency_ms = latency.as_millis() as u64, "provider answered");
                        return Ok(Routed {
                            value,
                            provider: name.clone(),
                            model: model.clone(),
                            attempts,
                        });
                    }
                    Err(e) => e,
                };
                self.breaker_report(name, entry.breaker, Err(&err));
                tracing::warn!(provider = %name, model = %model, error_kind = err.kind(), attempt = attempt_no, "provider attempt failed");
                attempts.push(Attempt {
                    provider: name.clone(),
                    model: model.clone(),
                    outcome: Outcome::Failed(err.clone()),
                    latency,
                });
                let step = next_step(&err, attempt_no, &entry.retry, fastrand::f64());
                last_error = Some(err.clone());
                match step {
                    Step::Fail => {
                        return Err(RouteFailure {
                            error: err,
                            attempts,
                        });
                    }
                    Step::Failover => break,
                    Step::Retry(delay) => {
                        if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                            return Err(RouteFailure {
                                error: err,
                                attempts,
                            });
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        let error = last_error.unwrap_or_else(|| ProviderError::NotConfigured {
            provider: "router".into(),
            message: "no eligible provider".into(),
        });
        Err(RouteFailure { error, attempts })
    }
}
