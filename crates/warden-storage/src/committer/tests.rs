#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The SQLite pipeline's failure paths, on a real database: a slow commit holds the
//! writer thread while more appends arrive and are chained behind it, then it is refused
//! (rolled back) or fails at COMMIT.

use std::time::Duration;

use tonic::Code;

use crate::Storage;
use crate::test_support::{FAIL_COMMITS, exec, intent, open_sqlite as open};

async fn callers(s: &Storage, tenant: &str) -> Vec<String> {
    let mut c = crate::test_support::callers(s, tenant).await;
    c.sort();
    c
}

/// A record of tenant `slow` holds its commit for a while (a million-row join in a
/// trigger), then, with `refuse`, aborts it.
async fn slow_commits(s: &Storage, refuse: bool) {
    let outcome = if refuse {
        "RAISE(ABORT, 'refused')"
    } else {
        "NULL"
    };
    exec(
        s,
        &format!(
            "CREATE TABLE big (x INTEGER);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500)
             INSERT INTO big SELECT x FROM c;
             CREATE TRIGGER slow BEFORE INSERT ON audit_log WHEN NEW.tenant_id = 'slow'
             BEGIN SELECT CASE WHEN (SELECT count(*) FROM big a, big b) > 0 THEN {outcome} END; END;"
        ),
    )
    .await;
}

/// Appends `n` records of `acme` at once, after the slow one has reached the writer.
async fn behind_a_slow_commit(
    s: &Storage,
    n: usize,
) -> (
    Result<warden_proto::storage::v1::AuditReceipt, tonic::Status>,
    Vec<Result<warden_proto::storage::v1::AuditReceipt, tonic::Status>>,
) {
    let slow = {
        let s = s.clone();
        tokio::spawn(async move { s.append_audit(intent("slow", "slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let rest: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.append_audit(intent("acme", &format!("c{i:02}"))).await })
        })
        .collect();
    let slow = slow.await.unwrap();
    let mut answers = Vec::new();
    for r in rest {
        answers.push(r.await.unwrap());
    }
    (slow, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_chained_behind_a_refused_commit_are_chained_again_and_land() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    s.append_audit(intent("acme", "first")).await.unwrap();
    slow_commits(&s, true).await;

    let (slow, rest) = behind_a_slow_commit(&s, 20).await;
    let err = slow.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("nothing was recorded"), "{err:?}");
    // Chained onto the refused record while it was committing, chained again onto the
    // head the database holds: every one lands, with no gap in the sequence.
    let mut sequences: Vec<u64> = rest.into_iter().map(|r| r.unwrap().sequence).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (2..=21).collect::<Vec<u64>>());
    assert!(*s.audit_writable().borrow());
    let mut expected: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
    expected.push("first".into());
    expected.sort();
    assert_eq!(callers(&s, "acme").await, expected);
    assert!(callers(&s, "slow").await.is_empty());
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.records_checked, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_chained_behind_a_failed_commit_are_refused_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    s.append_audit(intent("acme", "first")).await.unwrap();
    slow_commits(&s, false).await;
    exec(&s, FAIL_COMMITS).await;

    let (slow, rest) = behind_a_slow_commit(&s, 20).await;
    let err = slow.unwrap_err();
    assert!(
        err.message()
            .contains("whether this record was written is unknown"),
        "{err:?}"
    );
    for r in rest {
        let err = r.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            err.message()
                .contains("accepts no records since a commit failed")
                && err.message().contains("nothing was recorded"),
            "{err:?}"
        );
    }
    assert!(!*s.audit_writable().borrow());
    assert_eq!(callers(&s, "acme").await, ["first"]);
}

/// Reconciliations hold the writer between two commits while appends keep arriving:
/// whatever was staged meanwhile is chained again after them, and the log stays one
/// chain that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliations_between_busy_commits_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let appenders: Vec<_> = (0..8)
        .map(|a| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    s.append_audit(intent("acme", &format!("a{a}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut closed = 0;
    for _ in 0..15 {
        closed += s
            .reconcile_audit(Duration::ZERO)
            .await
            .unwrap()
            .closed
            .len();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for a in appenders {
        a.await.unwrap();
    }
    assert!(closed > 0, "no reconciliation overlapped the appends");
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok, "{v:?}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&s.inner.db.pool)
        .await
        .unwrap();
    assert_eq!(v.records_checked, n as u64);
    assert!(n >= 480, "{n} records");
}
