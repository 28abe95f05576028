//! Sending a minimized request to the first provider that answers, never leaving the
//! eligible list that policy produced. Failover for streams happens only before the
//! first event; after it, an upstream error ends the stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
pub use warden_policy::ProviderInfo;
use warden_proto::common::v1::Attempt;
use warden_providers::{
    ChatRequest, ChatResponse, EventStream, LocalProvider, Provider, ProviderError, StreamEvent,
};

/// The configured providers: how to reach each, and what policy needs to know of it.
#[derive(Clone)]
pub struct Providers {
    by_name: HashMap<String, Arc<dyn Provider>>,
    catalogue: Vec<ProviderInfo>,
    /// Upper bound for one attempt (unary: the whole answer; stream: the first event).
    pub attempt_timeout: Duration,
}

impl Providers {
    pub fn new(list: Vec<(ProviderInfo, Arc<dyn Provider>)>) -> Providers {
        let catalogue = list.iter().map(|(info, _)| info.clone()).collect();
        let by_name = list.into_iter().map(|(info, p)| (info.name, p)).collect();
        Providers {
            by_name,
            catalogue,
            attempt_timeout: Duration::from_secs(120),
        }
    }

    /// Only the built-in offline provider, named `local`.
    pub fn local_only() -> (Providers, Arc<LocalProvider>) {
        let local = Arc::new(LocalProvider::new("local"));
        let info = ProviderInfo {
            name: "local".into(),
            no_training: true,
            customer_account: false,
        };
        (Providers::new(vec![(info, local.clone())]), local)
    }

    pub fn catalogue(&self) -> &[ProviderInfo] {
        &self.catalogue
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn attempt(provider: &str, model: &str, outcome: &str, started: Instant) -> Attempt {
        Attempt {
            provider: provider.to_owned(),
            model: model.to_owned(),
            outcome: outcome.to_owned(),
            latency_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Tries `eligible` in order until one answers. Returns the provider used with its answer.
    pub async fn complete(
        &self,
        eligible: &[String],
        req: &ChatRequest,
        attempts: &mut Vec<Attempt>,
    ) -> Result<(String, ChatResponse), ProviderError> {
        let mut last = None;
        for name in eligible {
            let Some(p) = self.by_name.get(name) else {
                continue;
            };
            let started = Instant::now();
            let res = match tokio::time::timeout(self.attempt_timeout, p.complete(req)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout {
                    provider: name.clone(),
                }),
            };
            match res {
                Ok(resp) => {
                    attempts.push(Self::attempt(name, &resp.model, "ok", started));
                    return Ok((name.clone(), resp));
                }
                Err(e) => {
                    let class = error_class(&e);
                    metrics::counter!("warden_gateway_provider_errors_total", "provider" => name.clone(), "class" => class.clone())
                        .increment(1);
                    attempts.push(Self::attempt(
                        name,
                        req.model.as_deref().unwrap_or(""),
                        &class,
                        started,
                    ));
                    let retryable = e.is_retryable();
                    last = Some(e);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::Connect {
            provider: "none".into(),
            message: "no eligible provider is configured".into(),
        }))
    }

    /// Opens a stream at the first provider (in order) that produces a first event.
    pub async fn stream(
        &self,
        eligible: &[String],
        req: &ChatRequest,
        attempts: &mut Vec<Attempt>,
    ) -> Result<(String, StreamEvent, EventStream), ProviderError> {
        let mut last = None;
        for name in eligible {
            let Some(p) = self.by_name.get(name) else {
                continue;
            };
            let started = Instant::now();
            let first = async {
                let mut s = p.stream(req).await?;
                match s.next().await {
                    Some(Ok(ev)) => Ok((ev, s)),
                    Some(Err(e)) => Err(e),
                    None => Err(ProviderError::Protocol {
                        provider: name.clone(),
                        message: "empty stream".into(),
                    }),
                }
            };
            let res = match tokio::time::timeout(self.attempt_timeout, first).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout {
                    provider: name.clone(),
                }),
            };
            match res {
                Ok((ev, s)) => {
                    let model = match &ev {
                        StreamEvent::Start { model } => model.clone(),
                        _ => req.model.clone().unwrap_or_default(),
                    };
                    attempts.push(Self::attempt(name, &model, "ok", started));
                    return Ok((name.clone(), ev, s));
                }
                Err(e) => {
                    let class = error_class(&e);
                    metrics::counter!("warden_gateway_provider_errors_total", "provider" => name.clone(), "class" => class.clone())
                        .increment(1);
                    attempts.push(Self::attempt(
                        name,
                        req.model.as_deref().unwrap_or(""),
                        &class,
                        started,
                    ));
                    let retryable = e.is_retryable();
                    last = Some(e);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ProviderError::Connect {
            provider: "none".into(),
            message: "no eligible provider is configured".into(),
        }))
    }
}

/// A short, bounded label for an error: `http_429`, `timeout`, `connect`, ...
pub fn error_class(e: &ProviderError) -> String {
    match e {
        ProviderError::Status { status, .. } => format!("http_{status}"),
        ProviderError::Timeout { .. } => "timeout".into(),
        ProviderError::Connect { .. } => "connect".into(),
        ProviderError::Protocol { .. } => "protocol".into(),
        ProviderError::Invalid { .. } => "invalid".into(),
    }
}
