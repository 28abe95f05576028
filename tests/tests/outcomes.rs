//! Calls that end badly still leave a true record: a unary call whose caller goes away
//! or whose deadline passes records its outcome (`cancelled`) and stops the provider
//! call; a stream whose reader stops reading (connection open, window full) is ended
//! after the idle timeout, freeing the tenant's slot, with outcome `reader_stalled`; and
//! an intent whose outcome was never written is closed as `unknown` when storage starts
//! again, by an audited reconciliation, with the chain intact.
//! Every test is bounded: a hang fails it instead of stalling CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tonic::Code;
use warden_gateway::{AuditSink, AuditUnavailable, StorageAudit};
use warden_integration_tests::{Cluster, Options, enabled_tenant, logs_request, reason};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1::AuditReceipt;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_providers::{
    ChatRequest, ChatResponse, EventStream, LocalProvider, Provider, ProviderError, StreamEvent,
};

const LIMIT: Duration = Duration::from_secs(40);

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time bound (a hang)")
}

fn of_kind(records: &[pb::AuditRecord], kind: pb::AuditKind) -> Vec<pb::AuditRecord> {
    records
        .iter()
        .filter(|r| r.kind == kind as i32)
        .cloned()
        .collect()
}

/// Waits (bounded) until `check` holds over the tenant's records, and returns them.
async fn records_until(
    c: &Cluster,
    tenant_id: &str,
    what: &str,
    check: impl Fn(&[pb::AuditRecord]) -> bool,
) -> Vec<pb::AuditRecord> {
    for _ in 0..400 {
        let records = c.audit_records(tenant_id).await;
        if check(&records) {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not in the audit log within 10 s");
}

// --- Unary: the caller goes away ---------------------------------------------------

#[tokio::test]
async fn a_unary_call_whose_caller_goes_away_still_records_its_outcome() {
    bounded(async {
        let delay = Duration::from_secs(5);
        let c = Cluster::start_with(Options {
            provider_delay: Some(delay),
            ..Options::default()
        })
        .await;
        c.set_tenant(enabled_tenant("acme")).await;
        let t0 = Instant::now();

        // 1. The caller disconnects once the intent is written (the handler is dropped).
        let mut g = c.gateway("agent");
        let call = tokio::spawn(async move { g.complete(logs_request("acme", "first")).await });
        let records = records_until(&c, "acme", "the first intent", |r| {
            of_kind(r, pb::AuditKind::Intent).len() == 1
        })
        .await;
        let first = of_kind(&records, pb::AuditKind::Intent).remove(0);
        assert_eq!(first.outcome, "pending");
        call.abort();

        // 2. The caller's deadline (grpc-timeout) passes while the provider is slow (the
        // deadline leaves the gateway ample time to write the intent first).
        let mut req = tonic::Request::new(logs_request("acme", "second"));
        req.set_timeout(Duration::from_millis(2500));
        let err = c.gateway("agent").complete(req).await.unwrap_err();
        assert!(
            matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
            "{err:?}"
        );

        // Each intent gets its outcome: cancelled, with nothing answered.
        let records = records_until(&c, "acme", "an outcome for every intent", |r| {
            of_kind(r, pb::AuditKind::Outcome).len() == of_kind(r, pb::AuditKind::Intent).len()
        })
        .await;
        let intents = of_kind(&records, pb::AuditKind::Intent);
        assert_eq!(intents.len(), 2, "{records:?}");
        assert_eq!(intents[0].id, first.id);
        for intent in &intents {
            let outcomes: Vec<_> = records
                .iter()
                .filter(|r| r.intent_id == intent.id)
                .collect();
            assert_eq!(
                outcomes.len(),
                1,
                "intent {} outcomes {outcomes:?}",
                intent.id
            );
            assert_eq!(outcomes[0].kind, pb::AuditKind::Outcome as i32);
            assert_eq!(outcomes[0].outcome, "cancelled");
            assert_eq!(outcomes[0].usage.unwrap_or_default().output_tokens, 0);
        }
        // The provider call was cancelled with the caller: past the provider's delay,
        // nothing has reached it.
        tokio::time::sleep((delay + Duration::from_millis(500)).saturating_sub(t0.elapsed())).await;
        assert_eq!(c.local.calls(), 0, "a cancelled call reached the provider");
        c.stop().await;
    })
    .await;
}

// --- Streams: a reader that stops reading --------------------------------------------

/// A provider whose streams never end: 16 KiB text deltas as fast as they are taken.
/// Unary calls are answered like `LocalProvider`.
struct Endless {
    local: LocalProvider,
    /// Set when the gateway drops the upstream stream (cancelling the provider request).
    dropped: Arc<AtomicBool>,
    pulled: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Provider for Endless {
    fn name(&self) -> &str {
        "local"
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.local.complete(req).await
    }

    async fn stream(&self, _req: &ChatRequest) -> Result<EventStream, ProviderError> {
        let guard = DropFlag(self.dropped.clone());
        let pulled = self.pulled.clone();
        let chunk = "x".repeat(16 * 1024);
        let start = futures::stream::iter([Ok(StreamEvent::Start {
            model: "endless".into(),
        })]);
        let deltas = futures::stream::repeat_with(move || {
            let _held = &guard;
            pulled.fetch_add(1, Ordering::SeqCst);
            Ok(StreamEvent::TextDelta {
                text: chunk.clone(),
            })
        });
        Ok(Box::pin(start.chain(deltas)))
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_frees_its_tenant_slot_within_the_idle_timeout() {
    bounded(async {
        let endless = Arc::new(Endless {
            local: LocalProvider::new("local"),
            dropped: Arc::new(AtomicBool::new(false)),
            pulled: Arc::new(AtomicUsize::new(0)),
        });
        let idle = Duration::from_millis(800);
        let c = Cluster::start_with(Options {
            provider: Some(endless.clone()),
            stream_idle: Some(idle),
            ..Options::default()
        })
        .await;
        c.set_tenant(pb::TenantSettings {
            budgets: Some(pb::Budgets {
                max_concurrent_requests: 1,
                ..Default::default()
            }),
            ..enabled_tenant("acme")
        })
        .await;

        // Open a stream and never read it: the connection stays open, its window fills.
        let mut g = c.gateway("agent");
        let stalled = g
            .complete_stream(logs_request("acme", "stream me"))
            .await
            .unwrap()
            .into_inner();
        // While the relay holds the tenant's one slot, a second call is refused.
        let err = c
            .gateway("agent")
            .complete(logs_request("acme", "second"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert_eq!(reason(&err), "TENANT_RATE_LIMITED");

        // After the idle timeout the relay gives up on the reader and frees the slot.
        let t0 = Instant::now();
        loop {
            match c
                .gateway("agent")
                .complete(logs_request("acme", "second"))
                .await
            {
                Ok(_) => break,
                Err(e) if reason(&e) == "TENANT_RATE_LIMITED" => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(15),
                        "the stalled reader still holds the slot after 15 s"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(
            endless.dropped.load(Ordering::SeqCst),
            "the upstream stream was not dropped"
        );
        let pulled = endless.pulled.load(Ordering::SeqCst);
        assert!(pulled > 0);

        // The outcome is audited, linked to the stream's intent.
        let records = records_until(&c, "acme", "the reader_stalled outcome", |r| {
            r.iter().any(|r| r.outcome == "reader_stalled")
        })
        .await;
        let outcome = records
            .iter()
            .find(|r| r.outcome == "reader_stalled")
            .unwrap();
        assert_eq!(outcome.kind, pb::AuditKind::Outcome as i32);
        assert_eq!(outcome.provider, "local");
        let intent = records
            .iter()
            .find(|r| r.id == outcome.intent_id)
            .expect("the outcome names no intent in the log");
        assert_eq!(intent.kind, pb::AuditKind::Intent as i32);

        // A reader that comes back gets what was already in flight, then an error naming
        // the stall, never a StreamEnd (the answer is not complete).
        let items: Vec<_> = stalled.collect().await;
        let (last, events) = items.split_last().unwrap();
        let err = last.as_ref().unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert_eq!(reason(err), "READER_STALLED");
        let events: Vec<_> = events
            .iter()
            .map(|e| e.as_ref().unwrap().event.clone().unwrap())
            .collect();
        assert!(matches!(
            events.first(),
            Some(gw::complete_stream_event::Event::Start(s)) if s.audit_record_id == intent.id
        ));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, gw::complete_stream_event::Event::End(_)))
        );
        assert!(events.len() < pulled + 1, "more events relayed than pulled");
        c.stop().await;
    })
    .await;
}

// --- A crash between intent and outcome ------------------------------------------

/// The gateway's audit sink, losing every outcome once `lose` is set: what a gateway that
/// crashed after its intent (or could not reach storage afterwards) leaves behind.
#[derive(Default)]
struct LoseOutcomes {
    real: OnceLock<StorageAudit>,
    lose: AtomicBool,
}

#[async_trait::async_trait]
impl AuditSink for LoseOutcomes {
    async fn append(&self, record: pb::AuditRecord) -> Result<AuditReceipt, AuditUnavailable> {
        if self.lose.load(Ordering::SeqCst) && record.kind == pb::AuditKind::Outcome as i32 {
            return Err(AuditUnavailable);
        }
        match self.real.get() {
            Some(real) => real.append(record).await,
            None => Err(AuditUnavailable),
        }
    }
}

async fn open_intents(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_open_intents")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_crash_leaves_no_intent_pending_after_restart() {
    crash_leaves_no_intent_pending(None).await;
}

#[tokio::test]
async fn a_crash_leaves_no_intent_pending_after_restart_on_postgres() {
    let Some(url) = warden_integration_tests::fresh_postgres_schema().await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no PostgreSQL to test on"
        );
        return;
    };
    crash_leaves_no_intent_pending(Some(url)).await;
}

async fn crash_leaves_no_intent_pending(database_url: Option<String>) {
    bounded(async {
        let sink = Arc::new(LoseOutcomes::default());
        let mut c = Cluster::start_with(Options {
            audit_sink: Some(sink.clone()),
            database_url,
            ..Options::default()
        })
        .await;
        let storage = c.channel("gateway", c.storage_addr);
        assert!(
            sink.real
                .set(StorageAudit::new(AuditLogClient::new(storage)))
                .is_ok()
        );
        c.set_tenant(enabled_tenant("acme")).await;
        // One call that ends well: its intent is closed by its own outcome.
        let ok = c
            .gateway("agent")
            .complete(logs_request("acme", "fine"))
            .await
            .unwrap()
            .into_inner();
        // One whose outcome never reaches the log.
        sink.lose.store(true, Ordering::SeqCst);
        let lost = c
            .gateway("agent")
            .complete(logs_request("acme", "lost"))
            .await
            .unwrap()
            .into_inner();
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&c.db_url).await.unwrap();
        assert_eq!(
            open_intents(&pool).await,
            1,
            "the lost outcome left one intent open"
        );
        let before = c.audit_records("acme").await;
        assert!(!before.iter().any(|r| r.intent_id == lost.audit_record_id));

        // Storage stops and starts again (same database and key).
        let dir = std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap());
        let url = c.db_url.clone();
        c.stop().await;
        let storage = warden_storage::Storage::open_with(
            warden_storage::Db::connect(&url).await.unwrap(),
            std::sync::Arc::new(
                warden_storage::FileKeyProvider::load(&dir.path().join("keys/kek")).unwrap(),
            ),
            warden_storage::StorageOptions {
                reconcile: warden_storage::ReconcileOptions {
                    reconcile_after: Duration::ZERO,
                    reconcile_every: Duration::from_secs(3600),
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();

        // No intent is pending: every intent has an outcome, the lost one `unknown`.
        assert_eq!(open_intents(&pool).await, 0);
        let records = storage
            .query_audit(&warden_proto::storage::v1::QueryRequest {
                tenant_id: "acme".into(),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        for intent in of_kind(&records, pb::AuditKind::Intent) {
            let outcomes: Vec<_> = of_kind(&records, pb::AuditKind::Outcome)
                .into_iter()
                .filter(|o| o.intent_id == intent.id)
                .collect();
            assert_eq!(outcomes.len(), 1, "intent {}: {outcomes:?}", intent.id);
            let expected = if intent.id == lost.audit_record_id {
                "unknown"
            } else {
                assert_eq!(intent.id, ok.audit_record_id);
                "ok"
            };
            assert_eq!(outcomes[0].outcome, expected);
            assert_eq!(outcomes[0].caller, intent.caller);
        }
        // The reconciliation is itself in the log, naming what it closed.
        let reconciles = of_kind(&records, pb::AuditKind::Reconcile);
        assert_eq!(reconciles.len(), 1, "{reconciles:?}");
        let msg = &reconciles[0].reason_message;
        assert!(msg.contains("closed 1 intent"), "{msg}");
        assert!(msg.contains(&lost.audit_record_id), "{msg}");
        assert!(!msg.contains(&ok.audit_record_id), "{msg}");
        assert_eq!(reconciles[0].caller, warden_storage::RECONCILER);
        // And the chain still verifies, over every record.
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        let v = storage.verify_audit(0, 0).await.unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records_checked, total as u64);
        pool.close().await;
        drop(storage);
        drop(dir);
    })
    .await;
}
