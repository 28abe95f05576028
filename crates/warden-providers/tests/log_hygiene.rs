//! Credentials never reach the logs: every log line (TRACE, all crates including the AWS
//! SDK) is captured while providers fail and succeed. In its own test binary because
//! tracing's per-callsite interest cache is process-wide: a concurrently running test with
//! no subscriber could make these callsites look disabled.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use warden_providers::{
    BreakerPolicy, Provider, Registry, RegistryEntry, RetryPolicy, RouteRequest, Router,
};
use warden_testkit::Fault;

fn entry(p: Arc<dyn Provider>) -> RegistryEntry {
    let mut e = RegistryEntry::new(p, [("reasoning".to_owned(), "model-r".to_owned())]);
    e.retry = RetryPolicy {
        max_attempts: 2,
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

/// Captures every log line (TRACE, all crates including the AWS SDK) while providers fail
/// and succeed, and checks no credential appears.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_the_logs() {
    let capture = Capture::default();
    let c = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || c.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    bounded(async {
        let (a, o, b) = (anthropic().await, openai().await, bedrock().await);
        let mut reg = Registry::new();
        for h in [&a, &o, &b] {
            reg.insert(entry(h.provider.clone()));
        }
        let router = Router::new(reg);
        a.mock.script([Fault::status(401), Fault::status(500)]);
        o.mock.script([Fault::status(401), Fault::Reset]);
        b.mock.script([Fault::status(429)]);
        let eligible: Vec<String> = ["anthropic", "openai", "bedrock"]
            .map(String::from)
            .to_vec();
        let route = RouteRequest {
            tenant_id: "acme",
            eligible: &eligible,
            profile: "reasoning",
            deadline: None,
        };
        let r = router.complete(&route, &hello()).await.unwrap();
        assert_eq!(r.provider, "bedrock");
        let s = router.stream(&route, &hello()).await.unwrap();
        let _: Vec<_> = s.value.collect().await;
        let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
        assert!(
            logs.contains("provider attempt failed"),
            "logging was captured"
        );
        for secret in [ANTHROPIC_KEY, OPENAI_KEY, PLATFORM_SECRET] {
            assert!(!logs.contains(secret), "secret in logs");
        }
    })
    .await
}
