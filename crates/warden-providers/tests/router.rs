//! Selection and resilience against the TLS mocks: failover order, never leaving the
//! eligible set, retries honouring Retry-After, no failover after the first streamed
//! event, circuit breakers, profiles, deadlines and per-tenant limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use warden_providers::{
    BreakerPolicy, Limits, LocalProvider, Outcome, Provider, ProviderError, Registry,
    RegistryEntry, RetryPolicy, RouteRequest, Router, StreamEvent, TenantLimiter,
};
use warden_testkit::Fault;

fn entry(p: Arc<dyn Provider>, max_attempts: u32) -> RegistryEntry {
    let mut e = RegistryEntry::new(
        p,
        [
            ("reasoning".to_owned(), "model-r".to_owned()),
            ("fast".to_owned(), "model-f".to_owned()),
        ],
    );
    e.retry = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(3),
    };
    e.breaker = BreakerPolicy {
        failure_threshold: 100,
        cooldown: Duration::from_secs(60),
    };
    e
}

struct Fleet {
    a: Harness,
    o: Harness,
    local: Arc<LocalProvider>,
}

async fn fleet() -> Fleet {
    Fleet {
        a: anthropic().await,
        o: openai().await,
        local: Arc::new(LocalProvider::new("local")),
    }
}

impl Fleet {
    fn registry(&self, max_attempts: u32) -> Registry {
        let mut r = Registry::new();
        r.insert(entry(self.a.provider.clone(), max_attempts));
        r.insert(entry(self.o.provider.clone(), max_attempts));
        r.insert(entry(self.local.clone(), max_attempts));
        r
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn route<'a>(eligible: &'a [String]) -> RouteRequest<'a> {
    RouteRequest {
        tenant_id: "acme",
        eligible,
        profile: "reasoning",
        deadline: None,
    }
}

fn outcomes(attempts: &[warden_providers::Attempt]) -> Vec<(String, String)> {
    attempts
        .iter()
        .map(|a| {
            let o = match &a.outcome {
                Outcome::Ok => "ok".to_owned(),
                Outcome::Failed(e) => e.kind().to_owned(),
                Outcome::Skipped(e) => format!("skipped:{}", e.kind()),
            };
            (a.provider.clone(), o)
        })
        .collect()
}

#[tokio::test]
async fn fails_over_in_the_given_order_and_records_attempts() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(2));
        f.a.mock.script([Fault::status(503), Fault::status(529)]);
        let eligible = names(&["anthropic", "openai", "local"]);
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "openai");
        assert_eq!(r.model, "model-r");
        assert_eq!(
            outcomes(&r.attempts),
            vec![
                ("anthropic".into(), "server_error".into()),
                ("anthropic".into(), "overloaded".into()),
                ("openai".into(), "ok".into())
            ]
        );
        assert!(r.attempts.iter().all(|a| a.model == "model-r"));
        assert_eq!(f.o.mock.requests()[0].json()["model"], "model-r");
        assert_eq!(f.local.calls(), 0);
    })
    .await
}

#[tokio::test]
async fn never_leaves_the_eligible_set() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(2));
        f.a.mock.script(std::iter::repeat_n(Fault::status(503), 4));
        f.o.mock.script(std::iter::repeat_n(Fault::status(500), 4));
        // `local` is configured and healthy, but policy did not allow it.
        let eligible = names(&["openai", "anthropic"]);
        let fail = router
            .complete(&route(&eligible), &hello())
            .await
            .unwrap_err();
        assert_eq!(f.local.calls(), 0);
        assert_eq!(
            outcomes(&fail.attempts)
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>(),
            ["openai", "openai", "anthropic", "anthropic"]
        );
        assert!(
            matches!(fail.error, ProviderError::Status { status: 503, .. }),
            "{:?}",
            fail.error
        );
        // An eligible name the registry does not hold is skipped, not replaced.
        let eligible = names(&["bedrock-customer"]);
        let fail = router
            .complete(&route(&eligible), &hello())
            .await
            .unwrap_err();
        assert!(matches!(fail.error, ProviderError::NotConfigured { .. }));
        assert_eq!(
            (f.local.calls(), f.a.mock.calls(), f.o.mock.calls()),
            (0, 2, 2)
        );
        // Nothing eligible, nothing sent.
        let fail = router.complete(&route(&[]), &hello()).await.unwrap_err();
        assert!(fail.attempts.is_empty());
    })
    .await
}

#[tokio::test]
async fn honours_retry_after_then_fails_over_when_it_is_too_long() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(3));
        let eligible = names(&["anthropic", "openai"]);
        f.a.mock.script([Fault::status_retry_after(429, "1")]);
        let t0 = Instant::now();
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "anthropic");
        assert!(
            t0.elapsed() >= Duration::from_secs(1),
            "waited {:?}",
            t0.elapsed()
        );
        assert_eq!(
            outcomes(&r.attempts),
            vec![
                ("anthropic".into(), "rate_limited".into()),
                ("anthropic".into(), "ok".into())
            ]
        );

        // 120 s is beyond max_retry_after (3 s): move on at once instead of waiting.
        f.a.mock.script([Fault::status_retry_after(529, "120")]);
        let t0 = Instant::now();
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "openai");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    })
    .await
}

#[tokio::test]
async fn a_bad_request_is_not_spread_to_other_providers() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(3));
        f.a.mock.script([Fault::status(400)]);
        let eligible = names(&["anthropic", "openai"]);
        let fail = router
            .complete(&route(&eligible), &hello())
            .await
            .unwrap_err();
        assert!(matches!(fail.error, ProviderError::Invalid { .. }));
        assert_eq!(fail.attempts.len(), 1);
        assert_eq!(f.o.mock.calls(), 0);
    })
    .await
}

#[tokio::test]
async fn streams_fail_over_only_before_the_first_event() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(1));
        let eligible = names(&["anthropic", "openai"]);

        // Refused before any byte: openai serves the stream.
        f.a.mock.script([Fault::status(503)]);
        let r = router.stream(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "openai");
        let events: Vec<_> = r.value.collect().await;
        assert!(events.iter().all(Result::is_ok));

        // The connection dies before the first event: still safe to fail over.
        f.a.mock.script([Fault::ResetAfter(0)]);
        let r = router.stream(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "openai");
        assert_eq!(outcomes(&r.attempts)[1], ("openai".into(), "ok".into()));
        drop(r);

        // Events already delivered: the error ends the stream, nothing else is tried.
        let before = f.o.mock.calls();
        f.a.mock.script([Fault::StreamErrorAfter(3)]);
        let r = router.stream(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "anthropic");
        let items: Vec<_> = r.value.collect().await;
        assert!(matches!(items.first(), Some(Ok(StreamEvent::Start { .. }))));
        assert!(
            matches!(
                items.last(),
                Some(Err(ProviderError::Status { status: 529, .. }))
            ),
            "{items:?}"
        );
        assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
        assert_eq!(
            f.o.mock.calls(),
            before,
            "no failover after the first event"
        );
    })
    .await
}

#[tokio::test]
async fn an_open_breaker_skips_the_provider() {
    bounded(async {
        let f = fleet().await;
        let mut reg = f.registry(1);
        let mut a = entry(f.a.provider.clone(), 1);
        a.breaker = BreakerPolicy {
            failure_threshold: 1,
            cooldown: Duration::from_secs(60),
        };
        reg.insert(a);
        let router = Router::new(reg);
        let eligible = names(&["anthropic", "openai"]);
        f.a.mock.script([Fault::Reset]);
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(r.provider, "openai");
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(
            outcomes(&r.attempts),
            vec![
                ("anthropic".into(), "skipped:circuit_open".into()),
                ("openai".into(), "ok".into())
            ]
        );
        assert_eq!(f.a.mock.calls(), 1, "an open breaker sends nothing");
        assert!(matches!(
            router.breaker_state("anthropic"),
            Some(warden_providers::BreakerState::Open { .. })
        ));
    })
    .await
}

#[tokio::test]
async fn profiles_pick_the_model_and_a_missing_profile_is_skipped() {
    bounded(async {
        let f = fleet().await;
        let mut reg = f.registry(1);
        reg.insert(RegistryEntry::new(
            f.a.provider.clone(),
            [("reasoning".to_owned(), "claude-big".to_owned())],
        ));
        let router = Router::new(reg);
        let eligible = names(&["anthropic", "openai"]);
        let fast = RouteRequest {
            profile: "fast",
            ..route(&eligible)
        };
        let r = router.complete(&fast, &hello()).await.unwrap();
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openai", "model-f")
        );
        assert_eq!(
            outcomes(&r.attempts)[0],
            ("anthropic".into(), "skipped:not_configured".into())
        );
        let r = router.complete(&route(&eligible), &hello()).await.unwrap();
        assert_eq!(f.a.mock.requests()[0].json()["model"], "claude-big");
        assert_eq!(r.model, "claude-big");
    })
    .await
}

#[tokio::test]
async fn the_route_deadline_bounds_all_attempts() {
    bounded(async {
        let f = fleet().await;
        let router = Router::new(f.registry(5));
        f.a.mock
            .script([Fault::SlowFirstByte(Duration::from_secs(10))]);
        let eligible = names(&["anthropic", "openai"]);
        let req = RouteRequest {
            deadline: Some(Duration::from_millis(400)),
            ..route(&eligible)
        };
        let t0 = Instant::now();
        let fail = router.complete(&req, &hello()).await.unwrap_err();
        assert!(
            matches!(fail.error, ProviderError::Timeout { .. }),
            "{:?}",
            fail.error
        );
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert_eq!(f.o.mock.calls(), 0, "out of time: no further attempt");
    })
    .await
}

#[tokio::test]
async fn tenant_limits_refuse_with_retry_info_before_anything_leaves() {
    bounded(async {
        let f = fleet().await;
        let limiter = Arc::new(TenantLimiter::new(Limits {
            max_concurrent: 1,
            requests_per_minute: 0,
        }));
        let router = Router::new(f.registry(1)).with_limiter(limiter.clone());
        let eligible = names(&["anthropic"]);
        let open = router.stream(&route(&eligible), &hello()).await.unwrap();
        let fail = router
            .complete(&route(&eligible), &hello())
            .await
            .unwrap_err();
        assert!(
            fail.error.is_rate_limited() && fail.error.retry_after().is_some(),
            "{:?}",
            fail.error
        );
        assert!(fail.attempts.is_empty());
        assert_eq!(f.a.mock.calls(), 1);
        let other = RouteRequest {
            tenant_id: "globex",
            ..route(&eligible)
        };
        router.complete(&other, &hello()).await.unwrap();
        drop(open);
        router.complete(&route(&eligible), &hello()).await.unwrap();
        limiter.set_limits(
            "acme",
            Limits {
                max_concurrent: 0,
                requests_per_minute: 1,
            },
        );
        router.complete(&route(&eligible), &hello()).await.unwrap();
        let fail = router
            .complete(&route(&eligible), &hello())
            .await
            .unwrap_err();
        assert!(
            fail.error
                .retry_after()
                .is_some_and(|d| d > Duration::from_secs(50)),
            "{:?}",
            fail.error
        );
    })
    .await
}
