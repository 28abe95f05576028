//! Why the audit writer stops at its first failed commit, and never retries one.
//!
//! A COMMIT that fails leaves its outcome unknown. Worse, after a failed fsync the
//! operating system may drop the dirty pages and report the next fsync as a success, so
//! the page cache can show records the disk does not hold (PostgreSQL's "fsyncgate").
//! Carrying on, even after reloading the head, would acknowledge new records on the
//! strength of a read that proves nothing, and sign checkpoints over them. So the writer
//! poisons itself: it refuses every later append (UNAVAILABLE, with the reason) until
//! storage restarts, reads the log back from disk, and is verified with
//! `warden audit verify --database`.
//!
//! A failure before COMMIT rolls the transaction back: nothing was written and the writer
//! carries on, unless the database reported an I/O error (or corruption) on the way.

use tonic::Status;

use crate::DbError;

/// How a transaction of the audit writer failed.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// Rolled back before COMMIT: nothing was written; the writer carries on.
    RolledBack(DbError),
    /// The COMMIT, or the disk under the transaction, failed: the writer is poisoned.
    Durability(String),
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::RolledBack(e) => write!(f, "{e}"),
            CommitError::Durability(e) => write!(f, "{e}"),
        }
    }
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        if is_io(&e) {
            CommitError::Durability(format!("the database reported an I/O error: {e}"))
        } else {
            CommitError::RolledBack(DbError::Sql(e))
        }
    }
}

impl From<DbError> for CommitError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sql(e) => e.into(),
            other => CommitError::RolledBack(other),
        }
    }
}

/// Whether the database said its storage failed: SQLite's `SQLITE_IOERR` and
/// `SQLITE_CORRUPT` families (extended result codes, as numbers), PostgreSQL's SQLSTATE
/// class 58 (system error, e.g. 58030 io_error) and `XX001`/`XX002` (data corrupted).
pub(crate) fn is_io(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.code().is_some_and(|code| io_code(&code))
}

/// PostgreSQL's SQLSTATE has five characters; SQLite's extended codes at most four digits.
pub(crate) fn io_code(code: &str) -> bool {
    if code.len() == 5 {
        code.starts_with("58") || code == "XX001" || code == "XX002"
    } else {
        code.parse::<i32>()
            .is_ok_and(|n| matches!(n & 0xff, 10 | 11))
    }
}

/// Commits `tx`. Any failure here is a durability failure: the outcome is unknown.
pub(crate) async fn commit(tx: sqlx::Transaction<'_, sqlx::Any>) -> Result<(), CommitError> {
    tx.commit()
        .await
        .map_err(|e| CommitError::Durability(format!("the commit failed: {e}")))
}

/// What the appends of a batch whose commit failed are told: they may have landed.
pub(crate) fn outcome_unknown() -> Status {
    Status::unavailable(
        "the audit log's commit failed, so whether this record was written is unknown; \
         the log accepts no more records until storage restarts and the log verifies",
    )
}

/// What every append is told once the writer is poisoned.
pub(crate) fn poisoned(reason: &str) -> Status {
    Status::unavailable(format!(
        "the audit log accepts no records since a commit failed ({reason}); restart storage \
         and run `warden audit verify --database`; nothing was recorded"
    ))
}

#[cfg(test)]
mod tests;
