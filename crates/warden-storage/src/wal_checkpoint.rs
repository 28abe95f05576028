//! SQLite only: the write-ahead log's checkpoints off the audit commit path.
//!
//! Why: SQLite's automatic checkpoint (every 1 000 pages of WAL) runs inside the COMMIT
//! that crosses the threshold, so one commit in a hundred or so also copied the WAL into
//! the database file and waited for two more fsyncs before its records were
//! acknowledged: exactly the p99 of one appender. Here the audit writer's connection
//! checkpoints on its own only past [`HARD_LIMIT_PAGES`] (the bound that keeps the WAL
//! from growing without end if this thread falls behind or readers hold it), and a thread
//! of its own, on another connection, runs `PRAGMA wal_checkpoint(PASSIVE)` every
//! [`EVERY_COMMITS`] commits, after their acknowledgements went out. A passive checkpoint
//! waits for no one: the writer carries on while it copies. The thread runs at the lowest
//! CPU priority (nice 19): copying a thousand pages is a millisecond or two of CPU, which
//! on two cores otherwise delayed the writer and the committer whose commit it overlapped
//! (the commit's p99 about doubled with checkpoints on).
//!
//! Nothing about durability changes: a record is durable once its commit's WAL fsync
//! returned, whoever later copies it into the database file, and SQLite's recovery of a
//! WAL is the same whether or not a checkpoint was interrupted. A checkpoint that hits
//! an I/O error poisons the writer like a failed commit (`durable.rs`).

use std::path::Path;
use std::sync::mpsc as sync;

use tokio::sync::mpsc;

use crate::Db;
use crate::db::Backend;

/// Commits between two background checkpoints (some 300 to 1 300 pages of WAL).
const EVERY_COMMITS: u32 = 32;

/// WAL pages past which the writer's own connection checkpoints in its commit.
pub(crate) const HARD_LIMIT_PAGES: u32 = 8192;

/// The nice value of the checkpoint thread: the lowest priority there is.
const NICE: i32 = 19;

/// The committer's side: counts commits and wakes the checkpoint thread.
#[derive(Debug)]
pub(crate) struct WalCheckpoints {
    wake: sync::SyncSender<()>,
    /// The reason, once a checkpoint hit an I/O error.
    pub(crate) failed: mpsc::Receiver<String>,
    commits: u32,
}

impl WalCheckpoints {
    /// Starts the checkpoint thread for a SQLite database; None for PostgreSQL (or if
    /// the thread cannot start: the writer's own bound still holds). The thread ends
    /// when this handle is dropped.
    pub(crate) fn start(db: &Db) -> Option<WalCheckpoints> {
        if db.backend != Backend::Sqlite {
            return None;
        }
        let path = crate::audit_sqlite::path_of(db).ok()?;
        let (wake, woken) = sync::sync_channel::<()>(1);
        let (fail, failed) = mpsc::channel(1);
        let started = std::thread::Builder::new()
            .name("audit-wal-checkpoint".into())
            .spawn(move || run(&path, &woken, &fail));
        if let Err(e) = started {
            tracing::warn!(error = %e, "the WAL checkpoint thread could not start");
            return None;
        }
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

/// The checkpoint thread: at the lowest CPU priority, so that copying pages never
/// takes a core from the writer or the appenders; it runs on what they leave idle.
fn run(path: &Path, woken: &sync::Receiver<()>, fail: &mpsc::Sender<String>) {
    // On Linux a thread has a nice value of its own: this sets this thread's alone.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "the WAL checkpoint thread keeps the default priority");
    }
    let mut conn: Option<rusqlite::Connection> = None;
    while woken.recv().is_ok() {
        if conn.is_none() {
            match crate::audit_sqlite::open(path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    // Not the disk: the next one tries again, and the writer's bound holds.
                    tracing::warn!(error = %e, "WAL checkpoint skipped");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        match c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => {
                metrics::gauge!("warden_storage_audit_wal_pages").set(log as f64);
                tracing::trace!(log, copied, "WAL checkpoint");
            }
            Err(e) if crate::audit_sqlite::is_io(&e) => {
                let _ = fail.blocking_send(format!("a WAL checkpoint failed: {e}"));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint skipped");
                conn = None;
            }
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

    use crate::test_support::open_sqlite;

    /// The records reach the database file while the writer's own connection would not
    /// checkpoint until far later: the background task copies them.
    #[tokio::test]
    async fn the_wal_is_copied_into_the_database_file_off_the_commit_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_sqlite(&dir).await;
        let path = dir.path().join("a.db");
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

    /// The nice value of this process's thread named `name` (`comm` keeps 15 bytes).
    fn nice_of_thread(name: &str) -> Option<i64> {
        let name = &name[..name.len().min(15)];
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            return nice_in(&std::fs::read_to_string(dir.join("stat")).ok()?);
        }
        None
    }

    /// The nice value in a `/proc/.../stat` line: field 19, the 17th after the
    /// parenthesised name (which may hold spaces).
    fn nice_in(stat: &str) -> Option<i64> {
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split(' ').nth(16)?.parse().ok()
    }

    /// Copying the WAL never takes a core from the writer: its thread runs at nice 19.
    #[tokio::test]
    async fn the_checkpoint_thread_runs_at_the_lowest_priority() {
        let dir = tempfile::tempdir().unwrap();
        let _s = open_sqlite(&dir).await;
        let mut nice = None;
        for _ in 0..100 {
            nice = nice_of_thread("audit-wal-checkpoint");
            if nice == Some(i64::from(super::NICE)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(nice, Some(19), "the checkpoint thread's nice value");
        // The writer keeps the process's own priority.
        let own = nice_in(&std::fs::read_to_string("/proc/self/stat").unwrap());
        assert_eq!(nice_of_thread("audit-sqlite"), own, "the writer's");
    }
}
