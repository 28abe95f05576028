//! Pure resilience decisions: retry or fail over, backoff with jitter, circuit breakers and
//! per-tenant limits. Time and randomness are arguments, so every rule is a table test;
//! the [`crate::Router`] only wires these to the clock and the providers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ProviderError;

/// How one provider is retried before the router moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts on one provider, including the first (1 = no retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the router fails over instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try the same provider again after this delay.
    Retry(Duration),
    /// Move to the next eligible provider.
    Failover,
    /// Stop: the request itself is at fault, another provider would refuse it too.
    Fail,
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, scaled into
/// `[0.5, 1.0)` of itself by `jitter` (a number in `[0, 1)`).
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(policy.max_delay);
    capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// The decision after attempt number `attempt` (1-based) on one provider failed with `err`.
/// A `Retry-After` is honoured as a floor on the delay.
pub fn next_step(err: &ProviderError, attempt: u32, policy: &RetryPolicy, jitter: f64) -> Step {
    match err {
        ProviderError::Invalid { .. } | ProviderError::RateLimited { .. } => Step::Fail,
        e if e.is_retryable() => {
            if attempt >= policy.max_attempts {
                return Step::Failover;
            }
            let backoff = backoff_delay(policy, attempt, jitter);
            match e.retry_after() {
                Some(ra) if ra > policy.max_retry_after => Step::Failover,
                Some(ra) => Step::Retry(ra.max(backoff)),
                None => Step::Retry(backoff),
            }
        }
        _ => Step::Failover,
    }
}

/// Whether a failure says something about the provider's health (and so counts for its breaker).
pub(crate) fn counts_against_provider(err: &ProviderError) -> bool {
    !matches!(
        err,
        ProviderError::Invalid { .. }
            | ProviderError::RateLimited { .. }
            | ProviderError::NotConfigured { .. }
            | ProviderError::CircuitOpen { .. }
    )
}

/// When a provider's breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker rejects before letting one probe through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight since `since`; others are rejected until it reports (or a cooldown passes).
    HalfOpen {
        since: Instant,
    },
}

/// A per-provider circuit breaker. Closed → (threshold failures) → Open → (cooldown) →
/// HalfOpen with one probe → Closed on success, Open again on failure.
#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a request go now? `Err` carries how long until the next probe.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::Open { until } => Err(until - now),
            BreakerState::HalfOpen { since } if now >= since + self.policy.cooldown => {
                // The previous probe never reported (cancelled): let another one through.
                self.state = BreakerState::HalfOpen { since: now };
                Ok(())
            }
            BreakerState::HalfOpen { since } => Err(since + self.policy.cooldown - now),
        }
    }

    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    pub fn record_failure(&mut self, now: Instant) {
        self.state = match self.state {
            BreakerState::Closed { failures }
                if failures + 1 < self.policy.failure_threshold.max(1) =>
            {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + self.policy.cooldown,
            },
        };
    }
}

/// Per-tenant limits. Zero means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrent: u32,
    pub requests_per_minute: u32,
}

/// A token bucket refilled continuously at `rpm / 60` tokens per second, holding at most `rpm`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, rpm: u32, now: Instant) -> Result<(), Duration> {
        let cap = f64::from(rpm);
        let rate = cap / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

#[derive(Debug)]
struct TenantState {
    in_flight: Arc<AtomicU32>,
    bucket: Option<Bucket>,
}

/// Per-tenant concurrency and request-rate limits, enforced before anything leaves.
#[derive(Debug, Default)]
pub struct TenantLimiter {
    default: Limits,
    overrides: Mutex<HashMap<String, Limits>>,
    state: Mutex<HashMap<String, TenantState>>,
}

/// Held for the duration of a request (or stream); releases its concurrency slot on drop.
#[derive(Debug)]
pub struct TenantPermit {
    in_flight: Arc<AtomicU32>,
}

impl Drop for TenantPermit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TenantLimiter {
    pub fn new(default: Limits) -> Self {
        TenantLimiter {
            default,
            ..Default::default()
        }
    }

    /// Sets a tenant's own limits (e.g. from its budgets).
    pub fn set_limits(&self, tenant: &str, limits: Limits) {
        self.overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), limits);
    }

    fn limits(&self, tenant: &str) -> Limits {
        self.overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .copied()
            .unwrap_or(self.default)
    }

    /// Takes a slot and a token, or says how long to wait.
    pub fn acquire(&self, tenant: &str, now: Instant) -> Result<TenantPermit, ProviderError> {
        let limits = self.limits(tenant);
        let mut all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = all.entry(tenant.to_owned()).or_insert_with(|| TenantState {
            in_flight: Arc::new(AtomicU32::new(0)),
            bucket: None,
        });
        let scope = format!("tenant {tenant}");
        if limits.max_concurrent > 0
            && st.in_flight.load(Ordering::Acquire) >= limits.max_concurrent
        {
            return Err(ProviderError::RateLimited {
                scope,
                message: format!("{} concurrent model requests", limits.max_concurrent),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        if limits.requests_per_minute > 0 {
            let rpm = limits.requests_per_minute;
            let bucket = st.bucket.get_or_insert(Bucket {
                tokens: f64::from(rpm),
                last: now,
            });
            if let Err(wait) = bucket.take(rpm, now) {
                return Err(ProviderError::RateLimited {
                    scope,
                    message: format!("{rpm} model requests per minute"),
                    retry_after: Some(wait),
                });
            }
        }
        st.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(TenantPermit {
            in_flight: st.in_flight.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Status {
            provider: "p".into(),
            status: code,
            retry_after,
            message: String::new(),
        }
    }

    #[track_caller]
    fn check(err: ProviderError, attempt: u32, expected: Step) {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        assert_eq!(next_step(&err, attempt, &policy, 0.0), expected, "{err}");
    }

    #[test]
    fn retry_table() {
        check(status(429, None), 1, Step::Retry(Duration::from_millis(50)));
        check(
            status(429, Some(Duration::from_secs(2))),
            1,
            Step::Retry(Duration::from_secs(2)),
        );
        check(
            status(429, Some(Duration::from_secs(60))),
            1,
            Step::Failover,
        );
        check(
            status(529, None),
            2,
            Step::Retry(Duration::from_millis(100)),
        );
        check(status(503, None), 3, Step::Failover);
        check(
            ProviderError::Timeout {
                provider: "p".into(),
            },
            1,
            Step::Retry(Duration::from_millis(50)),
        );
        check(status(401, None), 1, Step::Failover);
        check(
            ProviderError::QuotaExhausted {
                provider: "p".into(),
                message: String::new(),
            },
            1,
            Step::Failover,
        );
        check(
            ProviderError::Protocol {
                provider: "p".into(),
                message: String::new(),
            },
            1,
            Step::Failover,
        );
        check(
            ProviderError::Invalid {
                provider: "p".into(),
                message: String::new(),
            },
            1,
            Step::Fail,
        );
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            ..Default::default()
        };
        assert_eq!(backoff_delay(&p, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(&p, 2, 0.0), Duration::from_millis(100));
        assert_eq!(
            backoff_delay(&p, 3, 0.999_999),
            Duration::from_millis(400).mul_f64(0.5 + 0.999_999 / 2.0)
        );
        assert_eq!(backoff_delay(&p, 9, 0.0), Duration::from_millis(350));
        assert_eq!(backoff_delay(&p, 60, 0.0), Duration::from_millis(350));
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerPolicy {
            failure_threshold: 2,
            cooldown: Duration::from_secs(10),
        });
        assert!(b.allow(t0).is_ok());
        b.record_failure(t0);
        assert!(b.allow(t0).is_ok());
        b.record_failure(t0);
        assert_eq!(
            b.allow(t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert!(
            b.allow(t0 + Duration::from_secs(10)).is_ok(),
            "one probe after cooldown"
        );
        assert!(
            b.allow(t0 + Duration::from_secs(11)).is_err(),
            "only one probe"
        );
        b.record_failure(t0 + Duration::from_secs(12));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.allow(t0 + Duration::from_secs(22)).is_ok());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn tenant_concurrency_and_rate() {
        let t0 = Instant::now();
        let l = TenantLimiter::new(Limits {
            max_concurrent: 1,
            requests_per_minute: 2,
        });
        let p = l.acquire("acme", t0).unwrap();
        let e = l.acquire("acme", t0).unwrap_err();
        assert!(e.is_rate_limited() && e.retry_after().is_some(), "{e}");
        assert!(l.acquire("other", t0).is_ok(), "limits are per tenant");
        drop(p);
        let _p = l.acquire("acme", t0).unwrap();
        drop(_p);
        let e = l.acquire("acme", t0).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(
            e.to_string(),
            "tenant acme is over its limit: 2 model requests per minute"
        );
        assert!(l.acquire("acme", t0 + Duration::from_secs(30)).is_ok());
        l.set_limits("acme", Limits::default());
        assert!(l.acquire("acme", t0 + Duration::from_secs(30)).is_ok());
    }
}
