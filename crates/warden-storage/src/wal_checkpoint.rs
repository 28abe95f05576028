//! SQLite only: the write-ahead log's checkpoints off the audit commit path.
//!
//! Why: SQLite's automatic checkpoint (every 1 000 pages of WAL) runs inside the COMMIT
//! that crosses the threshold, so one commit in a hundred or so also copied the WAL into
//! the database file and waited for two more fsyncs before its records were
//! acknowledged: exactly the p99 of one appender. Here the audit writer's connection
//! checkpoints on its own only past [`HARD_LIMIT_PAGES`] (the bound that keeps the WAL
//! from growing without end if this task falls behind or readers hold it), and a task on
//! another connection runs `PRAGMA wal_checkpoint(PASSIVE)` every [`EVERY_COMMITS`]
//! commits, after their acknowledgements went out. A passive checkpoint waits for no
//! one: the writer carries on while it copies.
//!
//! Nothing about durability changes: a record is durable once its commit's WAL fsync
//! returned, whoever later copies it into the database file, and SQLite's recovery of a
//! WAL is the same whether or not a checkpoint was interrupted. A checkpoint that hits
//! an I/O error poisons the writer like a failed commit (`durable.rs`).

use tokio::sync::mpsc;

use crate::Db;
use crate::db::Backend;

/// Commits between two background checkpoints (some 300 to 1 300 pages of WAL).
const EVERY_COMMITS: u32 = 32;

/// WAL pages past which the writer's own connection checkpoints in its commit.
pub(crate) const HARD_LIMIT_PAGES: u32 = 8192;

/// The committer's side: counts commits and wakes the checkpoint task.
#[derive(Debug)]
pub(crate) struct WalCheckpoints {
    wake: mpsc::Sender<()>,
    /// The reason, once a checkpoint hit an I/O error.
    pub(crate) failed: mpsc::Receiver<String>,
    commits: u32,
}

impl WalCheckpoints {
    /// Starts the checkpoint task for a SQLite database; None for PostgreSQL. The task
    /// ends when this handle is dropped.
    pub(crate) fn start(db: &Db) -> Option<WalCheckpoints> {
        if db.backend != Backend::Sqlite {
            return None;
        }
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let (fail, failed) = mpsc::channel(1);
        let pool = db.pool.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await
                {
                    Ok((_, log, copied)) => {
                        metrics::gauge!("warden_storage_audit_wal_pages").set(log as f64);
                        tracing::trace!(log, copied, "WAL checkpoint");
                    }
                    Err(e) if crate::durable::is_io(&e) => {
                        let _ = fail.send(format!("a WAL checkpoint failed: {e}")).await;
                        break;
                    }
                    // Not the disk (e.g. the pool is closing): the next one tries again,
                    // and the writer's own bound still holds.
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint skipped"),
                }
            }
        });
        Some(WalCheckpoints {
            wake,
            failed,
            commits: 0,
        })
    }

    /// After a commit's acknowledgements went out.
    pub(crate) fn committed(&mut self) {
        self.commits += 1;
        // Full: a checkpoint is already waiting to run, which will cover this commit too.
        if self.commits >= EVERY_COMMITS && self.wake.try_send(()).is_ok() {
            self.commits = 0;
        }
    }
}

/// What the committer's own connection runs once: checkpoint only past the hard bound.
pub(crate) fn writer_pragma() -> String {
    format!("PRAGMA wal_autocheckpoint = {HARD_LIMIT_PAGES}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};

    use crate::{Db, MemoryKeyProvider, Storage};

    /// The records reach the database file while the writer's own connection would not
    /// checkpoint until far later: the background task copies them.
    #[tokio::test]
    async fn the_wal_is_copied_into_the_database_file_off_the_commit_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let s = Storage::open(db, std::sync::Arc::new(MemoryKeyProvider::new()))
            .await
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        // Sequential appends: one commit each, far below the writer's own bound.
        for i in 0..200 {
            s.append_audit(AuditRecord {
                kind: AuditKind::Admin as i32,
                tenant_id: "acme".into(),
                caller: format!("caller-{i}"),
                reason_message: "x".repeat(2000),
                decision: AuditDecision::Allowed as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        // 200 records of over 2 kB each: at least 400 kB more in the database file.
        let mut grown = 0;
        for _ in 0..200 {
            grown = std::fs::metadata(&path)
                .unwrap()
                .len()
                .saturating_sub(before);
            if grown > 400_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            grown > 400_000,
            "the database file grew by only {grown} bytes"
        );
        let (busy, wal, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&s.inner.db.pool)
            .await
            .unwrap();
        assert_eq!(busy, 0);
        assert!(
            wal < i64::from(super::HARD_LIMIT_PAGES),
            "the WAL holds {wal} pages"
        );
    }
}
