//! Profiles, Kubernetes objects and events, configuration snapshots: what OTLP does not
//! carry. Ingest (`ingest.rs`) parses and redacts with `warden-telemetry`'s pure functions,
//! seals, and writes each request in one transaction or not at all; queries (`query.rs`)
//! read one tenant's rows in a window and open them.
//!
//! In the clear: tenant, cluster, kind, namespace, name, times, service and sample-type
//! names (what queries select by). Sealed: everything else (function aggregates, object
//! JSON, events, snapshot content and diffs). No raw pprof is kept, and no Secret value
//! reaches the database even sealed: it is a digest before it is stored.

mod ingest;
mod query;

use std::sync::OnceLock;

use tonic::Status;
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::config::Redactor;

use crate::util::ms_of;
use crate::{DbError, Storage};

/// Objects kept per (cluster, kind, namespace, name): the newest is its state.
const OBJECT_HISTORY: i64 = 20;

/// The redactor of configuration values (the shipped rule pack), compiled once.
fn redactor() -> Result<&'static Redactor, Status> {
    static R: OnceLock<Result<Redactor, String>> = OnceLock::new();
    R.get_or_init(|| Redactor::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| {
            tracing::error!(error = %e, "redaction rules do not compile");
            Status::internal("the redaction rules do not compile; nothing was stored")
        })
}

/// A query's window as `[since, until)` in Unix ms; both ends required, since < until.
fn window(w: Option<&tm::Window>) -> Result<(i64, i64), Status> {
    let w = w.ok_or_else(|| Status::invalid_argument("window is required"))?;
    let since = ms_of(w.since.as_ref())
        .ok_or_else(|| Status::invalid_argument("window.since is required"))?;
    let until = ms_of(w.until.as_ref())
        .ok_or_else(|| Status::invalid_argument("window.until is required"))?;
    if since >= until {
        return Err(Status::invalid_argument(
            "window.since must be before window.until",
        ));
    }
    Ok((since, until))
}

/// `limit` with 0 meaning `default`, capped at `max`.
fn limit(limit: u32, default: usize, max: usize) -> usize {
    if limit == 0 {
        default
    } else {
        (limit as usize).min(max)
    }
}

/// Names of what is selected by (cluster, kind, namespace, name, service): printable, bounded.
fn check_name(field: &str, value: &str, required: bool) -> Result<(), Status> {
    if required && value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    if value.len() > 253 || value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{field} must be at most 253 characters without control characters"
        )));
    }
    Ok(())
}

fn db(e: sqlx::Error) -> Status {
    Status::from(DbError::from(e))
}

impl Storage {
    /// Deletes the tenant's profiles, cluster objects, events and configuration snapshots
    /// older than `before_ms` (retention); returns how many rows went.
    pub async fn prune_cluster(&self, tenant_id: &str, before_ms: i64) -> Result<u64, Status> {
        crate::util::check_tenant(tenant_id)?;
        let mut tx = self.inner.db.begin_write().await.map_err(db)?;
        let mut n = 0;
        for (table, time) in [
            ("profiles", "time_ms"),
            ("cluster_objects", "observed_ms"),
            ("cluster_events", "time_ms"),
            ("config_snapshots", "observed_ms"),
        ] {
            n += sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND {time} < $2"
            ))
            .bind(tenant_id)
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
