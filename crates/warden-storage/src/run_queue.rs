//! The durable run queue that agent replicas share.
//!
//! A run is QUEUED when created, leased by one worker at a time (PostgreSQL: `FOR UPDATE
//! SKIP LOCKED`; SQLite: its single writer gives the same one-winner semantics), kept by
//! renewing the lease, and checkpointed after every step with the conversation state, so
//! a worker that dies is replaced by another that resumes after the last recorded step:
//! a RUNNING run whose lease expired is leasable again, and one whose workers died
//! `max_attempts` times is failed with that reason, never left RUNNING. Cancellation
//! (by a person, or because the tenant opted out) is a status change the lease holder
//! sees at its next renewal; opting out cancels in the same transaction as the settings.

use prost::Message;
use sqlx::Row;
use tonic::Status;
use warden_proto::common::v1::RunBudget;
use warden_proto::storage::v1::AttestRunRequest;
use warden_proto::storage::v1::{
    CancelRunRequest, CheckpointRunRequest, LeaseRunRequest, LeaseRunResponse, ListRunsRequest,
    ListRunsResponse, RenewLeaseRequest, Run, RunEvent, RunStatus, RunUsage, SandboxRecord,
};

use crate::db::Backend;
use crate::util::{check_len, check_tenant, ms_of, now_ms, ts};
use crate::{DbError, Storage};

pub(crate) const QUEUED: i64 = RunStatus::Queued as i64;
pub(crate) const RUNNING: i64 = RunStatus::Running as i64;
const CANCELLED: i64 = RunStatus::Cancelled as i64;
const FAILED: i64 = RunStatus::Failed as i64;

/// Longest lease a worker may ask for.
const MAX_LEASE_MS: u64 = 3_600_000;

pub(crate) fn check_worker(worker: &str) -> Result<(), Status> {
    if worker.is_empty() {
        return Err(Status::invalid_argument("worker is required"));
    }
    check_len("worker", worker, 256)
}

fn check_lease(lease_ms: u64) -> Result<i64, Status> {
    if !(1000..=MAX_LEASE_MS).contains(&lease_ms) {
        return Err(Status::invalid_argument(
            "lease_ms must be between 1000 and 3600000",
        ));
    }
    Ok(lease_ms as i64)
}

pub(crate) fn usage_json(u: Option<&RunUsage>) -> String {
    let u = u.cloned().unwrap_or_default();
    serde_json::json!({
        "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
        "tool_calls": u.tool_calls, "bytes_read": u.bytes_read,
    })
    .to_string()
}

pub(crate) fn usage_of(json: &str) -> RunUsage {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    RunUsage {
        input_tokens: v["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["output_tokens"].as_u64().unwrap_or(0),
        tool_calls: v["tool_calls"].as_u64().unwrap_or(0) as u32,
        bytes_read: v["bytes_read"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub(crate) fn budget_json(b: Option<&RunBudget>) -> String {
    let b = b.cloned().unwrap_or_default();
    serde_json::json!({
        "max_steps": b.max_steps, "max_wall_ms": b.max_wall_ms, "max_tool_calls": b.max_tool_calls,
        "max_input_tokens": b.max_input_tokens, "max_output_tokens": b.max_output_tokens,
        "max_bytes_per_data_type": b.max_bytes_per_data_type, "model_context_tokens": b.model_context_tokens,
    })
    .to_string()
}

pub(crate) fn budget_of(json: &str) -> RunBudget {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    RunBudget {
        max_steps: n("max_steps") as u32,
        max_wall_ms: n("max_wall_ms"),
        max_tool_calls: n("max_tool_calls") as u32,
        max_input_tokens: n("max_input_tokens"),
        max_output_tokens: n("max_output_tokens"),
        max_bytes_per_data_type: n("max_bytes_per_data_type"),
        model_context_tokens: n("model_context_tokens"),
    }
}

impl Storage {
    /// Leases the oldest runnable run to `worker`; `None` when there is none.
    pub(crate) async fn lease_next_run(
        &self,
        r: &LeaseRunRequest,
    ) -> Result<LeaseRunResponse, Status> {
        check_worker(&r.worker)?;
        let lease = check_lease(r.lease_ms)?;
        let per_tenant = i64::from(if r.max_running_per_tenant == 0 {
            u32::MAX
        } else {
            r.max_running_per_tenant
        });
        let max_attempts = i64::from(r.max_attempts.max(1));
        loop {
            let now = now_ms();
            let lock = match self.inner.db.backend {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let sql = format!(
                "UPDATE runs SET status = $1, lease_owner = $2, lease_until_ms = $3, attempts = attempts + 1, updated_ms = $4
                 WHERE id = (
                   SELECT r.id FROM runs r
                   WHERE (r.status = $5 OR (r.status = $1 AND r.lease_until_ms < $4))
                     AND (SELECT count(*) FROM runs o WHERE o.tenant_id = r.tenant_id AND o.status = $1
                          AND o.lease_until_ms >= $4 AND o.id <> r.id) < $6
                   ORDER BY r.created_ms, r.id LIMIT 1{lock})
                 RETURNING id, tenant_id, attempts, state_sealed"
            );
            let row = sqlx::query(&sql)
                .bind(RUNNING)
                .bind(&r.worker)
                .bind(now + lease)
                .bind(now)
                .bind(QUEUED)
                .bind(per_tenant)
                .fetch_optional(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?;
            let Some(row) = row else {
                return Ok(LeaseRunResponse::default());
            };
            let g = |e: sqlx::Error| Status::from(DbError::from(e));
            let id: String = row.try_get(0).map_err(g)?;
            let tenant: String = row.try_get(1).map_err(g)?;
            let attempts: i64 = row.try_get(2).map_err(g)?;
            let state: String = row.try_get(3).map_err(g)?;
            if attempts > max_attempts {
                let reason = format!(
                    "the workers running it stopped {} times without finishing (last lease expired); not retried again",
                    attempts - 1
                );
                self.finish_run(&tenant, &id, FAILED, &reason, Some(&r.worker))
                    .await?;
                tracing::warn!(run = %id, tenant = %tenant, attempts = attempts - 1, "run failed: its workers kept dying");
                continue;
            }
            if attempts > 1 {
                self.add_run_event(
                    &tenant,
                    &id,
                    "resumed",
                    &serde_json::json!({"worker": r.worker, "attempt": attempts}),
                )
                .await?;
            }
            let state = if state.is_empty() {
                Vec::new()
            } else {
                self.unseal(&tenant, &state).await?
            };
            let run = self.load_run(&tenant, &id).await?;
            return Ok(LeaseRunResponse {
                run: Some(run),
                state,
            });
        }
    }

    pub(crate) async fn renew_run_lease(&self, r: &RenewLeaseRequest) -> Result<Run, Status> {
        check_tenant(&r.tenant_id)?;
        check_worker(&r.worker)?;
        let lease = check_lease(r.lease_ms)?;
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE runs SET lease_until_ms = $1 WHERE tenant_id = $2 AND id = $3 AND lease_owner = $4 AND status = $5",
        )
        .bind(now + lease)
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(&r.worker)
        .bind(RUNNING)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let run = self.load_run_head(&r.tenant_id, &r.run_id).await?;
        if done.rows_affected() == 0 && run.status == RUNNING as i32 {
            return Err(lease_lost(&r.run_id));
        }
        Ok(run)
    }

    pub(crate) async fn record_run_step(&self, r: &CheckpointRunRequest) -> Result<Run, Status> {
        check_tenant(&r.tenant_id)?;
        check_worker(&r.worker)?;
        if r.step == 0 {
            return Err(Status::invalid_argument("step starts at 1"));
        }
        if r.state.len() > 16 * 1024 * 1024 {
            return Err(Status::invalid_argument(
                "state is larger than 16 MiB; compact the conversation",
            ));
        }
        let sealed = self.seal(&r.tenant_id, &r.state).await?;
        let done = sqlx::query(
            "UPDATE runs SET state_sealed = $1, steps = $2, usage_json = $3, updated_ms = $4
             WHERE tenant_id = $5 AND id = $6 AND lease_owner = $7 AND status = $8 AND steps = $9",
        )
        .bind(&sealed)
        .bind(i64::from(r.step))
        .bind(usage_json(r.usage.as_ref()))
        .bind(now_ms())
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(&r.worker)
        .bind(RUNNING)
        .bind(i64::from(r.step) - 1)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let run = self.load_run_head(&r.tenant_id, &r.run_id).await?;
        if done.rows_affected() == 0 {
            if run.status != RUNNING as i32 {
                return Err(not_running(&run));
            }
            if run.steps >= r.step {
                return Err(Status::already_exists(format!(
                    "step {} of run {} is already recorded",
                    r.step, r.run_id
                )));
            }
            return Err(lease_lost(&r.run_id));
        }
        Ok(run)
    }

    /// Records the sandbox of the lease holder's worker (sealed: it names paths and
    /// addresses of the agent host).
    pub(crate) async fn record_run_sandbox(&self, r: &AttestRunRequest) -> Result<Run, Status> {
        check_tenant(&r.tenant_id)?;
        check_worker(&r.worker)?;
        let record = r
            .sandbox
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("sandbox is required"))?;
        let plain = record.encode_to_vec();
        if plain.len() > 64 * 1024 {
            return Err(Status::invalid_argument(
                "the sandbox record is larger than 64 KiB",
            ));
        }
        let sealed = self.seal(&r.tenant_id, &plain).await?;
        let done = sqlx::query(
            "UPDATE runs SET sandbox_sealed = $1, updated_ms = $2
             WHERE tenant_id = $3 AND id = $4 AND lease_owner = $5 AND status = $6",
        )
        .bind(&sealed)
        .bind(now_ms())
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(&r.worker)
        .bind(RUNNING)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let run = self.load_run_head(&r.tenant_id, &r.run_id).await?;
        if done.rows_affected() == 0 {
            if run.status != RUNNING as i32 {
                return Err(not_running(&run));
            }
            return Err(lease_lost(&r.run_id));
        }
        Ok(run)
    }

    /// A run's stored sandbox record (none before a worker started).
    pub(crate) async fn sandbox_of(
        &self,
        tenant_id: &str,
        sealed: &str,
    ) -> Result<Option<SandboxRecord>, Status> {
        if sealed.is_empty() {
            return Ok(None);
        }
        let plain = self.unseal(tenant_id, sealed).await?;
        SandboxRecord::decode(plain.as_slice())
            .map(Some)
            .map_err(|_| Status::data_loss("a stored sandbox record is corrupt"))
    }

    /// Cancels a queued or running run; refused when it already finished.
    pub(crate) async fn cancel_one_run(&self, r: &CancelRunRequest) -> Result<Run, Status> {
        check_tenant(&r.tenant_id)?;
        check_len("reason", &r.reason, 2048)?;
        let reason = if r.reason.is_empty() {
            "cancelled".to_owned()
        } else {
            r.reason.clone()
        };
        let sealed = self.seal(&r.tenant_id, reason.as_bytes()).await?;
        let done = sqlx::query(
            "UPDATE runs SET status = $1, status_reason = $2, lease_until_ms = 0, updated_ms = $3
             WHERE tenant_id = $4 AND id = $5 AND status IN ($6, $7)",
        )
        .bind(CANCELLED)
        .bind(&sealed)
        .bind(now_ms())
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(QUEUED)
        .bind(RUNNING)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let run = self.load_run_head(&r.tenant_id, &r.run_id).await?;
        if done.rows_affected() == 0 {
            return Err(Status::failed_precondition(format!(
                "run {} already finished ({}); there is nothing to cancel",
                r.run_id,
                status_name(run.status)
            )));
        }
        self.add_run_event(
            &r.tenant_id,
            &r.run_id,
            "cancelled",
            &serde_json::json!({ "reason": reason }),
        )
        .await?;
        tracing::info!(run = %r.run_id, tenant = %r.tenant_id, "run cancelled");
        self.load_run(&r.tenant_id, &r.run_id).await
    }

    /// In the transaction that turns a tenant's AI off: every queued or running run of
    /// the tenant becomes CANCELLED with `sealed_reason`.
    pub(crate) async fn cancel_tenant_runs(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: &str,
        sealed_reason: &str,
    ) -> Result<u64, Status> {
        let done = sqlx::query(
            "UPDATE runs SET status = $1, status_reason = $2, lease_until_ms = 0, updated_ms = $3
             WHERE tenant_id = $4 AND status IN ($5, $6)",
        )
        .bind(CANCELLED)
        .bind(sealed_reason)
        .bind(now_ms())
        .bind(tenant_id)
        .bind(QUEUED)
        .bind(RUNNING)
        .execute(&mut **tx)
        .await
        .map_err(DbError::from)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn runs_page(&self, r: &ListRunsRequest) -> Result<ListRunsResponse, Status> {
        check_tenant(&r.tenant_id)?;
        let limit = if r.limit == 0 { 50 } else { r.limit.min(500) };
        let before = ms_of(r.before.as_ref()).unwrap_or(0);
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE tenant_id = $1 AND ($2 = 0 OR status = $2) AND ($3 = 0 OR created_ms < $3)
             ORDER BY created_ms DESC, id DESC LIMIT $4",
        )
        .bind(&r.tenant_id)
        .bind(i64::from(r.status))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0).map_err(DbError::from)?;
            runs.push(self.load_run_head(&r.tenant_id, &id).await?);
        }
        Ok(ListRunsResponse { runs })
    }

    /// Writes a run's final status from the lease holder (`worker`), or from storage
    /// itself (`None`). A run that is no longer running keeps its status.
    pub(crate) async fn finish_run(
        &self,
        tenant_id: &str,
        run_id: &str,
        status: i64,
        reason: &str,
        worker: Option<&str>,
    ) -> Result<bool, Status> {
        let sealed = self.seal_nonempty(tenant_id, reason).await?;
        let done = sqlx::query(
            "UPDATE runs SET status = $1, status_reason = $2, lease_owner = '', lease_until_ms = 0, updated_ms = $3
             WHERE tenant_id = $4 AND id = $5 AND status = $6 AND ($7 = '' OR lease_owner = $7)",
        )
        .bind(status)
        .bind(&sealed)
        .bind(now_ms())
        .bind(tenant_id)
        .bind(run_id)
        .bind(RUNNING)
        .bind(worker.unwrap_or(""))
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn add_run_event(
        &self,
        tenant_id: &str,
        run_id: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), Status> {
        let now = now_ms();
        let event = RunEvent {
            time: Some(ts(now)),
            kind: kind.to_owned(),
            detail_json: detail.to_string(),
        };
        let sealed = self.seal(tenant_id, &event.encode_to_vec()).await?;
        sqlx::query(
            "INSERT INTO run_events (id, tenant_id, run_id, time_ms, sealed) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(crate::util::new_id())
        .bind(tenant_id)
        .bind(run_id)
        .bind(now)
        .bind(&sealed)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }

    /// The run that holds an exactly-once key, if any.
    pub(crate) async fn run_of_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<String>, Status> {
        let row = sqlx::query("SELECT run_id FROM run_keys WHERE tenant_id = $1 AND key = $2")
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        row.map(|r| r.try_get::<String, _>(0))
            .transpose()
            .map_err(|e| DbError::from(e).into())
    }
}

pub(crate) fn status_name(status: i32) -> &'static str {
    RunStatus::try_from(status).map_or("unknown", |s| s.as_str_name())
}

fn lease_lost(run_id: &str) -> Status {
    Status::failed_precondition(format!(
        "this worker no longer holds the lease of run {run_id}; another worker took it over"
    ))
}

fn not_running(run: &Run) -> Status {
    Status::failed_precondition(format!(
        "run {} is {}: {}",
        run.id,
        status_name(run.status),
        run.status_reason
    ))
}

#[cfg(test)]
mod tests;
