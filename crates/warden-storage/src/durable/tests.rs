#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! A real failed COMMIT on a real SQLite database: a deferred foreign key that a trigger
//! on `audit_log` violates lets every INSERT through and fails the transaction only at
//! COMMIT, the way a failed fsync of the write-ahead log does.

use tonic::Code;
use warden_proto::common::v1::AuditRecord;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::test_support::{FAIL_COMMITS, exec};
use crate::{Db, Storage};

const AUDIT_LOG: &str = "warden.storage.v1.AuditLog";

/// One key provider for every open, as one key file would be across restarts.
fn keys() -> std::sync::Arc<crate::MemoryKeyProvider> {
    static KEYS: std::sync::OnceLock<crate::MemoryKeyProvider> = std::sync::OnceLock::new();
    std::sync::Arc::new(KEYS.get_or_init(crate::MemoryKeyProvider::new).clone())
}

async fn open(url: &str) -> Storage {
    Storage::open(Db::connect(url).await.unwrap(), keys())
        .await
        .unwrap()
}

fn intent(caller: &str) -> AuditRecord {
    crate::test_support::intent("acme", caller)
}

async fn callers(s: &Storage) -> Vec<String> {
    crate::test_support::callers(s, "acme").await
}

#[tokio::test]
async fn a_failed_commit_poisons_the_writer_until_restart_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let s = open(&url).await;
    let writable = s.audit_writable();
    s.append_audit(intent("before")).await.unwrap();
    assert!(*writable.borrow());

    exec(&s, FAIL_COMMITS).await;
    let err = s.append_audit(intent("lost")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Health follows before the caller hears of the failure.
    assert!(!*writable.borrow());
    assert!(
        err.message()
            .contains("whether this record was written is unknown"),
        "{err:?}"
    );

    // The disk is fine again, but the writer does not trust it: every append and the
    // reconciler are refused, with the reason, until restart.
    exec(&s, "DROP TRIGGER trap_commit").await;
    for _ in 0..3 {
        let err = s.append_audit(intent("after")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            err.message()
                .contains("accepts no records since a commit failed")
                && err.message().contains("FOREIGN KEY")
                && err.message().contains("warden audit verify --database"),
            "{err:?}"
        );
    }
    let err = s
        .reconcile_audit(std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(callers(&s).await, ["before"]);
    drop(s);

    // After a restart the log is read back from disk, verifies, and takes appends again.
    let s = open(&url).await;
    s.append_audit(intent("restarted")).await.unwrap();
    assert!(*s.audit_writable().borrow());
    assert_eq!(callers(&s).await, ["before", "restarted"]);
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records_checked, 2);
}

#[tokio::test]
async fn a_transaction_refused_before_commit_leaves_the_writer_working() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let s = open(&url).await;
    exec(
        &s,
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .await;
    let err = s.append_audit(intent("refused")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("nothing was recorded"), "{err:?}");
    assert!(*s.audit_writable().borrow());
    exec(&s, "DROP TRIGGER refuse").await;
    s.append_audit(intent("next")).await.unwrap();
    assert_eq!(callers(&s).await, ["next"]);
    assert!(s.verify_audit(0, 0).await.unwrap().ok);
}

/// The health check a load balancer asks: storage served as `warden serve storage`
/// serves it (its routes, its health gate), on a real listener.
async fn serve_health(s: &Storage) -> HealthClient<tonic::transport::Channel> {
    let (listener, addr) = warden_rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let host = warden_rpc::ServiceHost {
        component: "storage",
        security: warden_rpc::Security::InsecureDev,
        limits: warden_rpc::Limits::default(),
    };
    let routes = s.routes(&host);
    tokio::spawn(host.serve_gated(
        listener,
        routes,
        &Storage::SERVICES,
        Some(s.health_gate()),
        std::future::pending(),
    ));
    let channel = warden_rpc::connect(
        &addr.to_string(),
        &warden_rpc::Security::InsecureDev,
        warden_tls::Role::Storage,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    HealthClient::new(channel)
}

async fn health_of(health: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    let req = || HealthCheckRequest {
        service: service.into(),
    };
    for _ in 0..500 {
        if let Ok(r) = health.check(req()).await {
            return r.into_inner().status;
        }
        // The listener may not accept yet.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("storage's health service never answered");
}

#[tokio::test]
async fn a_poisoned_writer_turns_storage_not_serving_so_the_replica_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let s = open(&url).await;
    let mut health = serve_health(&s).await;
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(health_of(&mut health, "").await, serving);
    assert_eq!(health_of(&mut health, AUDIT_LOG).await, serving);
    let mut watched = health
        .watch(HealthCheckRequest {
            service: AUDIT_LOG.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(5), watched.message())
            .await
            .expect("no health change within five seconds of the failed commit")
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(next().await, serving);
    s.append_audit(intent("fine")).await.unwrap();

    exec(&s, FAIL_COMMITS).await;
    let err = s.append_audit(intent("lost")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(next().await, not_serving);
    assert_eq!(health_of(&mut health, AUDIT_LOG).await, not_serving);
    assert_eq!(health_of(&mut health, "").await, not_serving);
    // The rest of storage still answers; only the audit log is out.
    assert_eq!(
        health_of(&mut health, "warden.storage.v1.TenantStore").await,
        serving
    );
}

#[test]
fn io_errors_are_told_apart_by_their_codes() {
    // SQLite extended codes: SQLITE_IOERR_FSYNC (1034), SQLITE_IOERR_WRITE (778),
    // SQLITE_CORRUPT (11); not SQLITE_CONSTRAINT_FOREIGNKEY (787) or SQLITE_BUSY (5).
    for (code, io) in [
        ("1034", true),
        ("778", true),
        ("11", true),
        ("787", false),
        ("5", false),
        ("58030", true),
        ("XX001", true),
        ("23505", false),
        ("40001", false),
    ] {
        assert_eq!(super::io_code(code), io, "{code}");
    }
}

/// PostgreSQL acknowledges a commit only once it is durable, even where the server or
/// the role turned `synchronous_commit` off.
#[tokio::test]
async fn postgres_commits_are_synchronous_whatever_the_server_default() {
    let base = std::env::var("WARDEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20synchronous_commit%3Doff");
    let db = match Db::connect(&url).await {
        Ok(db) => db,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and no PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no PostgreSQL at {base} ({e})");
            return;
        }
    };
    for _ in 0..3 {
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(setting, "on");
    }
}
