//! Telemetry retention: each tenant's logs, metrics and spans older than its
//! `telemetry_retention_days` (0: the platform default of 7) are pruned periodically.
//!
//! The tenants pruned are those that ever sent telemetry (`ingest_tenants`, written on a
//! tenant's first export per process), whether or not they have settings.

use std::collections::HashSet;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use sqlx::Row;
use tonic::Status;

use crate::util::now_ms;
use crate::{DbError, Storage};

/// Days kept when a tenant's settings say 0 (or it has none).
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Tenants already noted by this process, so an export costs no extra write.
#[derive(Default)]
pub(crate) struct Noted(Mutex<HashSet<String>>);

/// The oldest time kept for a tenant keeping `days` (0: the default) at `now_ms`.
pub fn cutoff_ms(days: u32, now_ms: i64) -> i64 {
    let days = if days == 0 {
        DEFAULT_RETENTION_DAYS
    } else {
        days
    };
    now_ms.saturating_sub(i64::from(days) * DAY_MS)
}

impl Storage {
    /// Records that `tenant` sent telemetry, so retention prunes it.
    pub(crate) async fn note_ingest_tenant(&self, tenant: &str) -> Result<(), Status> {
        let known = self
            .inner
            .ingest_noted
            .0
            .lock()
            .map(|s| s.contains(tenant))
            .unwrap_or(false);
        if known {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO ingest_tenants (tenant_id, first_ms) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(now_ms())
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        if let Ok(mut s) = self.inner.ingest_noted.0.lock() {
            s.insert(tenant.to_owned());
        }
        Ok(())
    }

    /// One pruning pass at `now_ms`: every tenant that sent telemetry loses what is older
    /// than its retention. Returns `(tenant, rows pruned)`.
    pub async fn prune_telemetry(&self, now_ms: i64) -> Result<Vec<(String, u64)>, Status> {
        let tenants: Vec<String> =
            sqlx::query("SELECT tenant_id FROM ingest_tenants ORDER BY tenant_id")
                .fetch_all(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?;
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let days = self
                .tenant_settings(&tenant)
                .await?
                .map_or(0, |s| s.telemetry_retention_days);
            let cutoff = cutoff_ms(days, now_ms);
            let pruned = self.prune_signals(&tenant, cutoff).await?
                + self.prune_cluster(&tenant, cutoff).await?;
            out.push((tenant, pruned));
        }
        Ok(out)
    }
}

/// Prunes every `every` while the storage lives.
pub(crate) fn spawn(storage: Weak<crate::Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = storage.upgrade() else {
                return;
            };
            let storage = Storage { inner };
            match storage.prune_telemetry(now_ms()).await {
                Ok(done) => {
                    let rows: u64 = done.iter().map(|(_, n)| n).sum();
                    if rows > 0 {
                        tracing::info!(
                            tenants = done.len(),
                            rows,
                            "pruned telemetry past retention"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e.message(), "telemetry pruning failed; retrying next round")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_is_the_default_week() {
        let now = 100 * DAY_MS;
        assert_eq!(cutoff_ms(0, now), 93 * DAY_MS);
        assert_eq!(cutoff_ms(1, now), 99 * DAY_MS);
        assert_eq!(cutoff_ms(30, 0), -30 * DAY_MS);
    }
}
