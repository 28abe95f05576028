#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::QueryRequest;

use crate::{Db, ReconcileOptions, Storage};

async fn open(url: &str, after: Duration) -> Storage {
    let db = Db::connect(url).await.unwrap();
    let opts = ReconcileOptions {
        reconcile_after: after,
        reconcile_every: Duration::from_secs(3600),
    };
    let opts = crate::StorageOptions {
        reconcile: opts,
        ..Default::default()
    };
    // One key provider for every open, as one key file would be across restarts.
    static KEYS: std::sync::OnceLock<crate::MemoryKeyProvider> = std::sync::OnceLock::new();
    Storage::open_with(
        db,
        std::sync::Arc::new(KEYS.get_or_init(crate::MemoryKeyProvider::new).clone()),
        opts,
    )
    .await
    .unwrap()
}

fn intent(tenant: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Intent as i32,
        tenant_id: tenant.into(),
        caller: "spiffe://warden/agent/worker".into(),
        agent_run_id: "run-7".into(),
        decision: AuditDecision::Allowed as i32,
        reason: "ALLOWED".into(),
        outcome: "pending".into(),
        ..Default::default()
    }
}

fn outcome(tenant: &str, intent_id: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Outcome as i32,
        tenant_id: tenant.into(),
        decision: AuditDecision::Allowed as i32,
        outcome: "ok".into(),
        intent_id: intent_id.into(),
        ..Default::default()
    }
}

async fn records(s: &Storage, tenant: &str) -> Vec<AuditRecord> {
    s.query_audit(&QueryRequest {
        tenant_id: tenant.into(),
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn time_ms(s: &Storage, tenant: &str, id: &str) -> i64 {
    let r = records(s, tenant).await;
    let t = r.iter().find(|r| r.id == id).unwrap().time.unwrap();
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

/// Only intents older than the cutoff and still without an outcome are closed; a young
/// intent (a call that may still be running on some gateway) and a completed one are
/// left alone; each closed intent gets an `unknown` outcome and its tenant a RECONCILE
/// record naming it; the chain still verifies.
#[tokio::test]
async fn only_old_intents_without_an_outcome_are_closed_and_the_closing_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    old_intents_are_closed_and_audited(&url).await;
}

/// The same on PostgreSQL, whose closing records go through `audit_batch`'s one-statement
/// insert.
#[tokio::test]
async fn only_old_intents_without_an_outcome_are_closed_and_the_closing_is_audited_on_postgres() {
    let Some(url) = crate::test_pg::fresh_schema_url().await else {
        return;
    };
    old_intents_are_closed_and_audited(&url).await;
}

async fn old_intents_are_closed_and_audited(url: &str) {
    let s = open(url, Duration::from_secs(3600)).await;
    let old = s.append_audit(intent("acme")).await.unwrap().id;
    let done = s.append_audit(intent("acme")).await.unwrap().id;
    s.append_audit(outcome("acme", &done)).await.unwrap();
    let other = s.append_audit(intent("globex")).await.unwrap().id;
    // A later intent: the cutoff is its own commit time, so it is "still in flight".
    tokio::time::sleep(Duration::from_millis(5)).await;
    let young = s.append_audit(intent("acme")).await.unwrap().id;
    let cutoff = time_ms(&s, "acme", &young).await;
    assert!(cutoff > time_ms(&s, "globex", &other).await);

    let r = s.inner.audit.reconcile(cutoff).await.unwrap();
    assert_eq!(r.closed, vec![old.clone(), other.clone()]);
    assert_eq!(r.reconcile_records, 2, "one RECONCILE record per tenant");

    let acme = records(&s, "acme").await;
    let closing: Vec<_> = acme
        .iter()
        .filter(|r| r.kind == AuditKind::Outcome as i32 && r.outcome == "unknown")
        .collect();
    assert_eq!(closing.len(), 1);
    assert_eq!(closing[0].intent_id, old);
    assert_eq!(closing[0].caller, "spiffe://warden/agent/worker");
    assert_eq!(closing[0].agent_run_id, "run-7");
    let rec: Vec<_> = acme
        .iter()
        .filter(|r| r.kind == AuditKind::Reconcile as i32)
        .collect();
    assert_eq!(rec.len(), 1);
    assert!(
        rec[0].reason_message.contains(&old),
        "{}",
        rec[0].reason_message
    );
    assert!(rec[0].reason_message.contains("closed 1 intent"));
    assert!(!rec[0].reason_message.contains(&young));
    assert!(
        !rec[0].reason_message.contains(&other),
        "another tenant's id"
    );
    assert_eq!(rec[0].caller, crate::RECONCILER);
    let globex = records(&s, "globex").await;
    assert!(
        globex
            .iter()
            .any(|r| r.intent_id == other && r.outcome == "unknown")
    );

    // Nothing is closed twice; the young intent is still open.
    let again = s.inner.audit.reconcile(cutoff).await.unwrap();
    assert!(again.closed.is_empty(), "{again:?}");
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records_checked, 5 + 2 + 2);
    drop(s);

    // A restart whose reconcile_after has passed closes it before serving.
    let s = open(url, Duration::ZERO).await;
    let acme = records(&s, "acme").await;
    assert!(
        acme.iter()
            .any(|r| r.intent_id == young && r.outcome == "unknown")
    );
    assert!(s.verify_audit(0, 0).await.unwrap().ok);
}
