//! Logs, metrics and traces: stored rows and the queries an investigator asks.
//!
//! The ingest listener decodes OTLP into `warden_telemetry::model` rows and hands them
//! to `store_logs`, `store_metrics` and `store_spans`: each call validates every row,
//! seals what could be sensitive (bodies, attributes, resources, label values, span
//! names, histograms) under the tenant's data key before its transaction, and then
//! writes all of its rows or none. Only what queries filter on stays in the clear:
//! tenant, time, service, severity, metric name and kind, trace and span ids, duration
//! and the error flag.
//!
//! The `TelemetryQuery` handlers answer the agent service only, for one tenant and one
//! window (at most 31 days), and never open more than a fixed number of sealed values
//! per call: a query that would have needed more says `truncated`. What an answer
//! means (patterns, aggregates, span trees) is decided by the pure functions in
//! `warden_telemetry`; the modules here only select, seal and open.

mod logs;
mod metrics;
mod traces;

use tonic::Status;
use warden_proto::telemetry::v1 as tm;

use crate::util::{check_tenant, ms_of};
use crate::{DbError, Storage};

/// Rows one store call may carry; more is refused (the sender splits its batch).
pub(crate) const MAX_ROWS_PER_CALL: usize = 50_000;
/// The longest window a query may ask for.
const MAX_WINDOW_MS: i64 = 31 * DAY_MS;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Rows per multi-row INSERT: within both databases' parameter limits.
const INSERT_CHUNK: usize = 100;

/// A validated half-open window `[since_ms, until_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
}

// === impl Window ===

impl Window {
    /// `field` of a request, which must be set, with since < until, at most 31 days long.
    pub(crate) fn parse(field: &str, w: Option<&tm::Window>) -> Result<Window, Status> {
        let Some(w) = w else {
            return Err(Status::invalid_argument(format!(
                "{field} is required: set both {field}.since and {field}.until"
            )));
        };
        let (Some(since_ms), Some(until_ms)) = (ms_of(w.since.as_ref()), ms_of(w.until.as_ref()))
        else {
            return Err(Status::invalid_argument(format!(
                "{field} needs both since and until"
            )));
        };
        if since_ms >= until_ms {
            return Err(Status::invalid_argument(format!(
                "{field}.since must be before {field}.until"
            )));
        }
        if until_ms - since_ms > MAX_WINDOW_MS {
            return Err(Status::invalid_argument(format!(
                "{field} spans {} days; at most 31 days may be queried at once",
                (until_ms - since_ms + DAY_MS - 1) / DAY_MS
            )));
        }
        Ok(Window { since_ms, until_ms })
    }

    pub(crate) fn len_ms(self) -> i64 {
        self.until_ms - self.since_ms
    }
}

/// `limit` of a request: `default` when 0, refused above `max`.
pub(crate) fn limit(field: &str, value: u32, default: usize, max: usize) -> Result<usize, Status> {
    match value as usize {
        0 => Ok(default),
        n if n > max => Err(Status::invalid_argument(format!(
            "{field} is {n}; at most {max}"
        ))),
        n => Ok(n),
    }
}

/// Refuses a batch over [`MAX_ROWS_PER_CALL`] or for an invalid tenant.
pub(crate) fn check_batch(tenant_id: &str, what: &str, n: usize) -> Result<(), Status> {
    check_tenant(tenant_id)?;
    if n > MAX_ROWS_PER_CALL {
        return Err(Status::invalid_argument(format!(
            "{n} {what} in one call; at most {MAX_ROWS_PER_CALL} (split the batch)"
        )));
    }
    Ok(())
}

/// Whether `s` is `len` lowercase or uppercase hex digits.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `INSERT INTO table (cols) VALUES ($1, ..), (..)` for `rows` rows.
pub(crate) fn insert_sql(table: &str, cols: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql
}

/// Encodes a value for sealing.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(v).map_err(|_| Status::internal("could not encode a row for sealing"))
}

/// Decodes an opened value; a value that does not decode is corrupt.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &str,
    bytes: &[u8],
) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|_| Status::from(DbError::Corrupt(table.to_owned())))
}

impl Storage {
    /// Retention: deletes the tenant's logs, metric points and spans older than
    /// `before_ms` (and the series left without points); returns the rows deleted.
    pub async fn prune_signals(&self, tenant_id: &str, before_ms: i64) -> Result<u64, Status> {
        check_tenant(tenant_id)?;
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        let mut deleted = 0;
        for (table, col) in [
            ("log_records", "time_ms"),
            ("metric_points", "time_ms"),
            ("spans", "start_ms"),
        ] {
            deleted += sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND {col} < $2"
            ))
            .bind(tenant_id)
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?
            .rows_affected();
        }
        sqlx::query("DELETE FROM metric_series WHERE tenant_id = $1 AND last_ms < $2")
            .bind(tenant_id)
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(deleted)
    }
}

#[cfg(test)]
pub(crate) mod tests;
