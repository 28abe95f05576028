//! Agent runs and findings (proposals are `proposals.rs`). Triggers and findings are
//! sealed per tenant; only ids, statuses and times are stored in the clear for indexing.

use prost::Message;
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::storage::v1::run_store_server::RunStore;
use warden_proto::storage::v1::{
    AddFindingRequest, AttachRunEventRequest, AttestRunRequest, CancelRunRequest,
    CheckpointRunRequest, CreateRunRequest, CreateRunResponse, Finding, GetRunRequest,
    LeaseRunRequest, LeaseRunResponse, ListRunsRequest, ListRunsResponse, RecordToolCallRequest,
    RenewLeaseRequest, Run, RunEvent, RunStatus, ToolCallRecord, UpdateRunRequest,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::{DbError, Storage, run_queue};

const MAX_TEXT: usize = 1024 * 1024;

impl Storage {
    /// A run without its findings, tool calls and events (what lists and leases need).
    pub(crate) async fn load_run_head(&self, tenant_id: &str, run_id: &str) -> Result<Run, Status> {
        let row = sqlx::query(
            "SELECT id, purpose, fingerprint, status, status_reason, created_ms, updated_ms, steps, trigger_sealed,
                    attempts, usage_json, budget_json, sandbox_sealed
             FROM runs WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(run_id)
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant_id} has no run {run_id}")))?;
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let trigger = self
            .unseal(tenant_id, &row.try_get::<String, _>(8).map_err(g)?)
            .await?;
        let keys = sqlx::query(
            "SELECT key FROM run_keys WHERE tenant_id = $1 AND run_id = $2 ORDER BY key",
        )
        .bind(tenant_id)
        .bind(run_id)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(g)?;
        Ok(Run {
            id: row.try_get(0).map_err(g)?,
            tenant_id: tenant_id.to_owned(),
            purpose: row.try_get::<i64, _>(1).map_err(g)? as i32,
            fingerprint: row.try_get(2).map_err(g)?,
            status: row.try_get::<i64, _>(3).map_err(g)? as i32,
            status_reason: String::from_utf8_lossy(
                &self
                    .unseal_or_legacy(tenant_id, &row.try_get::<String, _>(4).map_err(g)?)
                    .await?,
            )
            .into_owned(),
            created_at: Some(ts(row.try_get(5).map_err(g)?)),
            updated_at: Some(ts(row.try_get(6).map_err(g)?)),
            steps: row.try_get::<i64, _>(7).map_err(g)? as u32,
            trigger_json: String::from_utf8_lossy(&trigger).into_owned(),
            findings: Vec::new(),
            tool_calls: Vec::new(),
            attempts: row.try_get::<i64, _>(9).map_err(g)? as u32,
            usage: Some(run_queue::usage_of(
                &row.try_get::<String, _>(10).map_err(g)?,
            )),
            budget: Some(run_queue::budget_of(
                &row.try_get::<String, _>(11).map_err(g)?,
            )),
            events: Vec::new(),
            keys,
            proposals: Vec::new(),
            sandbox: self
                .sandbox_of(tenant_id, &row.try_get::<String, _>(12).map_err(g)?)
                .await?,
        })
    }

    pub(crate) async fn load_run(&self, tenant_id: &str, run_id: &str) -> Result<Run, Status> {
        let mut run = self.load_run_head(tenant_id, run_id).await?;
        run.proposals = sqlx::query(
            "SELECT id, kind, created_ms FROM proposals WHERE tenant_id = $1 AND run_id = $2 ORDER BY created_ms, id",
        )
        .bind(tenant_id)
        .bind(run_id)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|r| {
            Ok(warden_proto::storage::v1::RunProposal {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                created_at: Some(ts(r.try_get(2)?)),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)?;
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let rows = sqlx::query("SELECT id, sealed, created_ms FROM findings WHERE tenant_id = $1 AND run_id = $2 ORDER BY created_ms, id")
            .bind(tenant_id)
            .bind(run_id)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        for r in rows {
            let plain = self
                .unseal(tenant_id, &r.try_get::<String, _>(1).map_err(g)?)
                .await?;
            let mut f = Finding::decode(plain.as_slice())
                .map_err(|_| Status::data_loss("a stored finding is corrupt"))?;
            f.id = r.try_get(0).map_err(g)?;
            f.created_at = Some(ts(r.try_get(2).map_err(g)?));
            run.findings.push(f);
        }
        let rows = sqlx::query("SELECT sealed FROM run_events WHERE tenant_id = $1 AND run_id = $2 ORDER BY time_ms, id")
            .bind(tenant_id)
            .bind(run_id)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        for r in rows {
            let plain = self
                .unseal(tenant_id, &r.try_get::<String, _>(0).map_err(g)?)
                .await?;
            run.events.push(
                RunEvent::decode(plain.as_slice())
                    .map_err(|_| Status::data_loss("a stored run event is corrupt"))?,
            );
        }
        let rows = sqlx::query("SELECT sealed FROM run_tool_calls WHERE tenant_id = $1 AND run_id = $2 ORDER BY step, idx, created_ms")
            .bind(tenant_id)
            .bind(run_id)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        for r in rows {
            let plain = self
                .unseal(tenant_id, &r.try_get::<String, _>(0).map_err(g)?)
                .await?;
            run.tool_calls.push(
                ToolCallRecord::decode(plain.as_slice())
                    .map_err(|_| Status::data_loss("a stored tool call record is corrupt"))?,
            );
        }
        Ok(run)
    }

    async fn duplicate(
        &self,
        tenant_id: &str,
        run_id: &str,
    ) -> Result<Response<CreateRunResponse>, Status> {
        let run = self.load_run(tenant_id, run_id).await?;
        Ok(Response::new(CreateRunResponse {
            run: Some(run),
            duplicate: true,
        }))
    }

    /// The tenant's queue depth and start rate, checked in the creating transaction.
    async fn check_queue_limits(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        r: &CreateRunRequest,
        now: i64,
    ) -> Result<(), Status> {
        let count =
            |sql: &'static str, bind: i64| sqlx::query(sql).bind(r.tenant_id.clone()).bind(bind);
        if r.max_queued > 0 {
            let queued: i64 = count(
                "SELECT count(*) FROM runs WHERE tenant_id = $1 AND status = $2",
                run_queue::QUEUED,
            )
            .fetch_one(&mut **tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(DbError::from)?;
            if queued >= i64::from(r.max_queued) {
                return Err(Status::resource_exhausted(format!(
                    "tenant {} already has {queued} investigations queued (at most {}); try again when some have started",
                    r.tenant_id, r.max_queued
                )));
            }
        }
        if r.max_started_per_minute > 0 {
            let recent: i64 = count(
                "SELECT count(*) FROM runs WHERE tenant_id = $1 AND created_ms > $2 AND status <> 4",
                now - 60_000,
            )
            .fetch_one(&mut **tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(DbError::from)?;
            if recent >= i64::from(r.max_started_per_minute) {
                return Err(Status::resource_exhausted(format!(
                    "tenant {} started {recent} investigations in the last minute (at most {}); try again later",
                    r.tenant_id, r.max_started_per_minute
                )));
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RunStore for Storage {
    async fn create_run(
        &self,
        req: Request<CreateRunRequest>,
    ) -> Result<Response<CreateRunResponse>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/CreateRun")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("fingerprint", &r.fingerprint, 512)?;
        check_len("trigger_json", &r.trigger_json, MAX_TEXT)?;
        check_len("status_reason", &r.status_reason, 2048)?;
        if r.keys.len() > 1000 {
            return Err(Status::invalid_argument("a run holds at most 1000 keys"));
        }
        for k in &r.keys {
            check_len("key", k, 512)?;
        }
        let mut keys: Vec<String> = r.keys.iter().filter(|k| !k.is_empty()).cloned().collect();
        if !r.fingerprint.is_empty() && !keys.contains(&r.fingerprint) {
            keys.push(r.fingerprint.clone());
        }
        keys.sort();
        keys.dedup();
        let status = match r.status {
            0 => run_queue::QUEUED,
            s if s == RunStatus::Skipped as i32 => i64::from(s),
            s if s == run_queue::QUEUED as i32 => i64::from(s),
            _ => {
                return Err(Status::invalid_argument(
                    "a run is created QUEUED (or SKIPPED when the tenant has not opted in)",
                ));
            }
        };
        let skipped = status == RunStatus::Skipped as i64;
        // Every key already taken: the event was seen before.
        if !skipped && !keys.is_empty() {
            let mut first = None;
            let mut all = true;
            for k in &keys {
                match self.run_of_key(&r.tenant_id, k).await? {
                    Some(id) => {
                        first.get_or_insert(id);
                    }
                    None => all = false,
                }
            }
            if all && let Some(id) = first {
                return self.duplicate(&r.tenant_id, &id).await;
            }
        }
        let id = new_id();
        let now = now_ms();
        let sealed = self.seal(&r.tenant_id, r.trigger_json.as_bytes()).await?;
        let reason = self.seal_nonempty(&r.tenant_id, &r.status_reason).await?;
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        if !skipped {
            self.check_queue_limits(&mut tx, &r, now).await?;
        }
        sqlx::query(
            "INSERT INTO runs (id, tenant_id, purpose, fingerprint, status, status_reason, created_ms, updated_ms, steps, trigger_sealed,
                               lease_owner, lease_until_ms, attempts, state_sealed, usage_json, budget_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, $8, '', 0, 0, '', '{}', $9)",
        )
        .bind(&id)
        .bind(&r.tenant_id)
        .bind(i64::from(r.purpose))
        .bind(&r.fingerprint)
        .bind(status)
        .bind(&reason)
        .bind(now)
        .bind(&sealed)
        .bind(run_queue::budget_json(r.budget.as_ref()))
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        // A skipped run holds no key: the same event is investigated once the tenant opts in.
        let mut claimed = 0;
        if !skipped {
            for k in &keys {
                claimed += sqlx::query(
                    "INSERT INTO run_keys (tenant_id, key, run_id, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&r.tenant_id)
                .bind(k)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(DbError::from)?
                .rows_affected();
            }
        }
        if !keys.is_empty() && !skipped && claimed == 0 {
            // Lost a race for every key: the winner's run is the one.
            drop(tx);
            let winner = self
                .run_of_key(&r.tenant_id, &keys[0])
                .await?
                .ok_or_else(|| Status::internal("a run key vanished"))?;
            return self.duplicate(&r.tenant_id, &winner).await;
        }
        tx.commit().await.map_err(DbError::from)?;
        let run = self.load_run(&r.tenant_id, &id).await?;
        Ok(Response::new(CreateRunResponse {
            run: Some(run),
            duplicate: false,
        }))
    }

    async fn update_run(&self, req: Request<UpdateRunRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/UpdateRun")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("status_reason", &r.status_reason, 2048)?;
        run_queue::check_worker(&r.worker)?;
        let terminal = [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ];
        if !terminal.iter().any(|s| *s as i32 == r.status) {
            return Err(Status::invalid_argument(
                "a run's final status is SUCCEEDED, FAILED or CANCELLED",
            ));
        }
        if r.usage.is_some() {
            sqlx::query("UPDATE runs SET usage_json = $1 WHERE tenant_id = $2 AND id = $3 AND lease_owner = $4")
                .bind(run_queue::usage_json(r.usage.as_ref()))
                .bind(&r.tenant_id)
                .bind(&r.run_id)
                .bind(&r.worker)
                .execute(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?;
        }
        let finished = self
            .finish_run(
                &r.tenant_id,
                &r.run_id,
                i64::from(r.status),
                &r.status_reason,
                Some(&r.worker),
            )
            .await?;
        let run = self.load_run(&r.tenant_id, &r.run_id).await?;
        if !finished && run.status == RunStatus::Running as i32 {
            return Err(Status::failed_precondition(format!(
                "this worker no longer holds the lease of run {}",
                r.run_id
            )));
        }
        // A run cancelled meanwhile keeps its status and reason.
        Ok(Response::new(run))
    }

    async fn get_run(&self, req: Request<GetRunRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/GetRun")?.platform()?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        Ok(Response::new(self.load_run(&r.tenant_id, &r.run_id).await?))
    }

    async fn lease_run(
        &self,
        req: Request<LeaseRunRequest>,
    ) -> Result<Response<LeaseRunResponse>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/LeaseRun")?.platform()?;
        Ok(Response::new(self.lease_next_run(req.get_ref()).await?))
    }

    async fn renew_lease(&self, req: Request<RenewLeaseRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/RenewLease")?.platform()?;
        Ok(Response::new(self.renew_run_lease(req.get_ref()).await?))
    }

    async fn checkpoint_run(
        &self,
        req: Request<CheckpointRunRequest>,
    ) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/CheckpointRun")?.platform()?;
        Ok(Response::new(self.record_run_step(req.get_ref()).await?))
    }

    async fn attest_run(&self, req: Request<AttestRunRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/AttestRun")?.platform()?;
        Ok(Response::new(self.record_run_sandbox(req.get_ref()).await?))
    }

    async fn cancel_run(&self, req: Request<CancelRunRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/CancelRun")?.platform()?;
        Ok(Response::new(self.cancel_one_run(req.get_ref()).await?))
    }

    async fn list_runs(
        &self,
        req: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/ListRuns")?.platform()?;
        Ok(Response::new(self.runs_page(req.get_ref()).await?))
    }

    async fn attach_run_event(
        &self,
        req: Request<AttachRunEventRequest>,
    ) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/AttachRunEvent")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("key", &r.key, 512)?;
        let event = r
            .event
            .ok_or_else(|| Status::invalid_argument("event is required"))?;
        check_len("kind", &event.kind, 64)?;
        check_len("detail_json", &event.detail_json, MAX_TEXT)?;
        let detail: serde_json::Value = serde_json::from_str(&event.detail_json)
            .map_err(|_| Status::invalid_argument("detail_json must be JSON"))?;
        let run_id = self
            .run_of_key(&r.tenant_id, &r.key)
            .await?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "tenant {} has no run for key {}",
                    r.tenant_id, r.key
                ))
            })?;
        self.add_run_event(&r.tenant_id, &run_id, &event.kind, &detail)
            .await?;
        Ok(Response::new(self.load_run(&r.tenant_id, &run_id).await?))
    }

    async fn add_finding(
        &self,
        req: Request<AddFindingRequest>,
    ) -> Result<Response<Finding>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/AddFinding")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("summary", &r.summary, MAX_TEXT)?;
        check_len("evidence_json", &r.evidence_json, MAX_TEXT)?;
        self.load_run(&r.tenant_id, &r.run_id).await?;
        let id = new_id();
        let now = now_ms();
        check_len("suspected_cause", &r.suspected_cause, 64 * 1024)?;
        check_len("confidence", &r.confidence, 16)?;
        let finding = Finding {
            id: id.clone(),
            run_id: r.run_id.clone(),
            summary: r.summary,
            evidence_json: r.evidence_json,
            created_at: Some(ts(now)),
            suspected_cause: r.suspected_cause,
            confidence: r.confidence,
        };
        let sealed = self.seal(&r.tenant_id, &finding.encode_to_vec()).await?;
        sqlx::query("INSERT INTO findings (id, tenant_id, run_id, sealed, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&r.tenant_id)
            .bind(&r.run_id)
            .bind(&sealed)
            .bind(now)
            .execute(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        Ok(Response::new(finding))
    }

    async fn record_tool_call(
        &self,
        req: Request<RecordToolCallRequest>,
    ) -> Result<Response<ToolCallRecord>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/RecordToolCall")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let mut call = r
            .call
            .ok_or_else(|| Status::invalid_argument("call is required"))?;
        check_len("tool", &call.tool, 128)?;
        check_len("reason", &call.reason, 4096)?;
        check_len("arguments_json", &call.arguments_json, 64 * 1024)?;
        run_queue::check_worker(&r.worker)?;
        let run = self.load_run_head(&r.tenant_id, &r.run_id).await?;
        if run.status != RunStatus::Running as i32 {
            return Err(Status::failed_precondition(format!(
                "run {} is {}; its tool calls are no longer recorded",
                r.run_id,
                run_queue::status_name(run.status)
            )));
        }
        let now = now_ms();
        call.time = Some(ts(now));
        let sealed = self.seal(&r.tenant_id, &call.encode_to_vec()).await?;
        // One record per (step, index): a step re-run after its worker died replaces the
        // records of the attempt that never completed it; only the lease holder writes.
        let done = sqlx::query(
            "INSERT INTO run_tool_calls (id, tenant_id, run_id, sealed, created_ms, step, idx)
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS
               (SELECT 1 FROM runs WHERE tenant_id = $2 AND id = $3 AND lease_owner = $8 AND status = $9)
             ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, created_ms = excluded.created_ms",
        )
        .bind(format!("{}:{}:{}", r.run_id, call.step, call.index))
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(&sealed)
        .bind(now)
        .bind(i64::from(call.step))
        .bind(i64::from(call.index))
        .bind(&r.worker)
        .bind(run_queue::RUNNING)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(Status::failed_precondition(format!(
                "this worker no longer holds the lease of run {}",
                r.run_id
            )));
        }
        Ok(Response::new(call))
    }
}
