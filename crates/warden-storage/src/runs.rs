//! Agent runs, findings and proposals. Triggers, findings and proposal text are sealed
//! per tenant; only ids, statuses and times are stored in the clear for indexing.

use prost::Message;
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::run_store_server::RunStore;
use warden_proto::storage::v1::{
    AddFindingRequest, CreateProposalRequest, CreateRunRequest, CreateRunResponse, Finding,
    GetRunRequest, ListProposalsRequest, ListProposalsResponse, Proposal, ProposalStatus,
    RecordToolCallRequest, ReviewProposalRequest, Run, RunStatus, ToolCallRecord, UpdateRunRequest,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::{DbError, Storage};

const MAX_TEXT: usize = 1024 * 1024;

/// The sealed part of a proposal.
#[derive(Clone, PartialEq, Message)]
struct ProposalText {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    body: String,
}

impl Storage {
    async fn load_run(&self, tenant_id: &str, run_id: &str) -> Result<Run, Status> {
        let row = sqlx::query(
            "SELECT id, purpose, fingerprint, status, status_reason, created_ms, updated_ms, steps, trigger_sealed
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
        let mut run = Run {
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
        };
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
        let rows = sqlx::query("SELECT sealed FROM run_tool_calls WHERE tenant_id = $1 AND run_id = $2 ORDER BY created_ms, id")
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

    async fn load_proposal(&self, tenant_id: &str, id: &str) -> Result<Proposal, Status> {
        let row = sqlx::query(
            "SELECT id, run_id, kind, status, sealed, reviewer, review_sealed, created_ms, reviewed_ms
             FROM proposals WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant_id} has no proposal {id}")))?;
        let mut p = self.proposal_from_row(tenant_id, &row).await?;
        self.with_approvals(&mut p).await?;
        Ok(p)
    }

    /// Fills in who approved so far and how many distinct approvals the tenant requires
    /// now (its current `required_reviewers`, at least one).
    async fn with_approvals(&self, p: &mut Proposal) -> Result<(), Status> {
        let rows = sqlx::query(
            "SELECT reviewer FROM proposal_approvals WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY approved_ms, reviewer",
        )
        .bind(&p.tenant_id)
        .bind(&p.id)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        p.approvals = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(DbError::from)?;
        let required = self
            .tenant_settings(&p.tenant_id)
            .await?
            .map_or(0, |s| s.required_reviewers);
        p.required_approvals = required.max(1);
        Ok(())
    }

    async fn proposal_from_row(
        &self,
        tenant_id: &str,
        row: &sqlx::any::AnyRow,
    ) -> Result<Proposal, Status> {
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let text = ProposalText::decode(
            self.unseal(tenant_id, &row.try_get::<String, _>(4).map_err(g)?)
                .await?
                .as_slice(),
        )
        .map_err(|_| Status::data_loss("a stored proposal is corrupt"))?;
        let comment = self
            .unseal(tenant_id, &row.try_get::<String, _>(6).map_err(g)?)
            .await?;
        let reviewed_ms: i64 = row.try_get(8).map_err(g)?;
        Ok(Proposal {
            id: row.try_get(0).map_err(g)?,
            tenant_id: tenant_id.to_owned(),
            run_id: row.try_get(1).map_err(g)?,
            kind: row.try_get(2).map_err(g)?,
            status: row.try_get::<i64, _>(3).map_err(g)? as i32,
            title: text.title,
            body: text.body,
            reviewer: row.try_get(5).map_err(g)?,
            review_comment: String::from_utf8_lossy(&comment).into_owned(),
            created_at: Some(ts(row.try_get(7).map_err(g)?)),
            reviewed_at: (reviewed_ms > 0).then(|| ts(reviewed_ms)),
            approvals: Vec::new(),
            required_approvals: 0,
        })
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
        if !r.fingerprint.is_empty()
            && let Some(row) =
                sqlx::query("SELECT id FROM runs WHERE tenant_id = $1 AND fingerprint = $2")
                    .bind(&r.tenant_id)
                    .bind(&r.fingerprint)
                    .fetch_optional(&self.inner.db.pool)
                    .await
                    .map_err(DbError::from)?
        {
            let id: String = row.try_get(0).map_err(DbError::from)?;
            let run = self.load_run(&r.tenant_id, &id).await?;
            return Ok(Response::new(CreateRunResponse {
                run: Some(run),
                duplicate: true,
            }));
        }
        let id = new_id();
        let now = now_ms();
        let status = if r.status == 0 {
            RunStatus::Running as i32
        } else {
            r.status
        };
        let sealed = self.seal(&r.tenant_id, r.trigger_json.as_bytes()).await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, tenant_id, purpose, fingerprint, status, status_reason, created_ms, updated_ms, steps, trigger_sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, $8)",
        )
        .bind(&id)
        .bind(&r.tenant_id)
        .bind(i64::from(r.purpose))
        .bind(&r.fingerprint)
        .bind(i64::from(status))
        .bind(&self.seal_nonempty(&r.tenant_id, &r.status_reason).await?)
        .bind(now)
        .bind(&sealed)
        .execute(&self.inner.db.pool)
        .await;
        if inserted.is_err() && !r.fingerprint.is_empty() {
            // Lost a race with the same fingerprint: return the winner's run.
            let row = sqlx::query("SELECT id FROM runs WHERE tenant_id = $1 AND fingerprint = $2")
                .bind(&r.tenant_id)
                .bind(&r.fingerprint)
                .fetch_one(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?;
            let existing: String = row.try_get(0).map_err(DbError::from)?;
            let run = self.load_run(&r.tenant_id, &existing).await?;
            return Ok(Response::new(CreateRunResponse {
                run: Some(run),
                duplicate: true,
            }));
        }
        inserted.map_err(DbError::from)?;
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
        if RunStatus::try_from(r.status).is_err() || r.status == 0 {
            return Err(Status::invalid_argument(
                "status must be a known run status",
            ));
        }
        let done = sqlx::query(
            "UPDATE runs SET status = $1, status_reason = $2, steps = $3, updated_ms = $4 WHERE tenant_id = $5 AND id = $6",
        )
        .bind(i64::from(r.status))
        .bind(&self.seal_nonempty(&r.tenant_id, &r.status_reason).await?)
        .bind(i64::from(r.steps))
        .bind(now_ms())
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(Status::not_found(format!(
                "tenant {} has no run {}",
                r.tenant_id, r.run_id
            )));
        }
        Ok(Response::new(self.load_run(&r.tenant_id, &r.run_id).await?))
    }

    async fn get_run(&self, req: Request<GetRunRequest>) -> Result<Response<Run>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/GetRun")?.platform()?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        Ok(Response::new(self.load_run(&r.tenant_id, &r.run_id).await?))
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
        let finding = Finding {
            id: id.clone(),
            run_id: r.run_id.clone(),
            summary: r.summary,
            evidence_json: r.evidence_json,
            created_at: Some(ts(now)),
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
        self.load_run(&r.tenant_id, &r.run_id).await?;
        let now = now_ms();
        call.time = Some(ts(now));
        let sealed = self.seal(&r.tenant_id, &call.encode_to_vec()).await?;
        sqlx::query("INSERT INTO run_tool_calls (id, tenant_id, run_id, sealed, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(new_id())
            .bind(&r.tenant_id)
            .bind(&r.run_id)
            .bind(&sealed)
            .bind(now)
            .execute(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        Ok(Response::new(call))
    }

    async fn create_proposal(
        &self,
        req: Request<CreateProposalRequest>,
    ) -> Result<Response<Proposal>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/CreateProposal")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("kind", &r.kind, 64)?;
        check_len("title", &r.title, 1024)?;
        check_len("body", &r.body, MAX_TEXT)?;
        self.load_run(&r.tenant_id, &r.run_id).await?;
        let id = new_id();
        let sealed = self
            .seal(
                &r.tenant_id,
                &ProposalText {
                    title: r.title,
                    body: r.body,
                }
                .encode_to_vec(),
            )
            .await?;
        sqlx::query(
            "INSERT INTO proposals (id, tenant_id, run_id, kind, status, sealed, reviewer, review_sealed, created_ms, reviewed_ms)
             VALUES ($1, $2, $3, $4, $5, $6, '', '', $7, 0)",
        )
        .bind(&id)
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(&r.kind)
        .bind(ProposalStatus::PendingReview as i64)
        .bind(&sealed)
        .bind(now_ms())
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(Response::new(self.load_proposal(&r.tenant_id, &id).await?))
    }

    async fn list_proposals(
        &self,
        req: Request<ListProposalsRequest>,
    ) -> Result<Response<ListProposalsResponse>, Status> {
        authorize(&req, "warden.storage.v1.RunStore/ListProposals")?.platform()?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) };
        let rows = sqlx::query(
            "SELECT id, run_id, kind, status, sealed, reviewer, review_sealed, created_ms, reviewed_ms
             FROM proposals WHERE tenant_id = $1 AND ($2 = 0 OR status = $2) ORDER BY created_ms, id LIMIT $3",
        )
        .bind(&r.tenant_id)
        .bind(i64::from(r.status))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut proposals: Vec<Proposal> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut p = self.proposal_from_row(&r.tenant_id, row).await?;
            self.with_approvals(&mut p).await?;
            proposals.push(p);
        }
        Ok(Response::new(ListProposalsResponse { proposals }))
    }

    async fn review_proposal(
        &self,
        req: Request<ReviewProposalRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let service = authorize(&req, "warden.storage.v1.RunStore/ReviewProposal")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("comment", &r.comment, 64 * 1024)?;
        check_len("reviewer", &r.reviewer, 256)?;
        let reviewer = reviewer_identity(&r)?;
        // The same rule the agent service applied to the reviewer's certificate, again
        // here: a scoped reviewer decides only its own tenants' proposals.
        let rule = warden_tls::access::rule("warden.agent.v1.Agent/ReviewProposal")
            .ok_or_else(|| Status::internal("the access matrix has no review rule"))?;
        warden_tls::access::decide(rule, &reviewer, Some(&r.tenant_id))
            .map_err(|d| Status::permission_denied(d.message))?;
        let subject = reviewer.subject();
        let proposal = self.load_proposal(&r.tenant_id, &r.proposal_id).await?;
        if proposal.status != ProposalStatus::PendingReview as i32 {
            return Err(already_decided(&proposal));
        }
        if r.approve && proposal.approvals.contains(&subject) {
            return Err(Status::failed_precondition(format!(
                "{subject} already approved proposal {}; it needs {} distinct reviewers",
                proposal.id, proposal.required_approvals
            )));
        }
        let approvals = proposal.approvals.len() as u32 + u32::from(r.approve);
        let decided = !r.approve || approvals >= proposal.required_approvals;
        let (reason, status) = match (r.approve, decided) {
            (false, _) => ("PROPOSAL_REJECTED", ProposalStatus::Rejected),
            (true, true) => ("PROPOSAL_APPROVED", ProposalStatus::Approved),
            (true, false) => ("PROPOSAL_APPROVAL_RECORDED", ProposalStatus::PendingReview),
        };
        // The decision's audit record is durable before the decision is committed: if it
        // cannot be written, nothing is decided.
        let record = AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: r.tenant_id.clone(),
            caller: subject.clone(),
            agent_run_id: proposal.run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: reason.into(),
            reason_message: format!(
                "proposal {}: {approvals} of {} approvals",
                proposal.id, proposal.required_approvals
            ),
            outcome: "ok".into(),
            recorded_by: service.subject(),
            ..Default::default()
        };
        self.append_audit(record).await.map_err(|_| {
            Status::unavailable(
                "the review could not be audited, so it was not recorded (AUDIT_FAIL_CLOSED)",
            )
        })?;
        let now = now_ms();
        let mut tx = self.inner.db.pool.begin().await.map_err(DbError::from)?;
        if r.approve {
            sqlx::query(
                "INSERT INTO proposal_approvals (tenant_id, proposal_id, reviewer, approved_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&r.tenant_id)
            .bind(&r.proposal_id)
            .bind(&subject)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|_| {
                Status::failed_precondition(format!(
                    "{subject} already approved proposal {}",
                    r.proposal_id
                ))
            })?;
        }
        if decided {
            let mut deciders = proposal.approvals.clone();
            deciders.push(subject.clone());
            if !r.approve {
                deciders = vec![subject.clone()];
            }
            let comment = self.seal(&r.tenant_id, r.comment.as_bytes()).await?;
            // Only a pending proposal can be decided, and only once.
            let done = sqlx::query(
                "UPDATE proposals SET status = $1, reviewer = $2, review_sealed = $3, reviewed_ms = $4
                 WHERE tenant_id = $5 AND id = $6 AND status = $7",
            )
            .bind(status as i64)
            .bind(deciders.join(","))
            .bind(&comment)
            .bind(now)
            .bind(&r.tenant_id)
            .bind(&r.proposal_id)
            .bind(ProposalStatus::PendingReview as i64)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
            if done.rows_affected() == 0 {
                drop(tx);
                let existing = self.load_proposal(&r.tenant_id, &r.proposal_id).await?;
                return Err(already_decided(&existing));
            }
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(Response::new(
            self.load_proposal(&r.tenant_id, &r.proposal_id).await?,
        ))
    }
}

/// The reviewer the agent service authenticated: a `reviewer/<name>` subject with its
/// certificate's tenant scope. Anything else is refused.
fn reviewer_identity(r: &ReviewProposalRequest) -> Result<warden_tls::Caller, Status> {
    let name = r
        .reviewer
        .strip_prefix("reviewer/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| {
            Status::permission_denied(format!(
                "only a human reviewer identity (reviewer/<name>) can decide a proposal, not {:?}",
                r.reviewer
            ))
        })?;
    if let Some(t) = r
        .reviewer_tenants
        .iter()
        .find(|t| !warden_tls::valid_tenant_id(t))
    {
        return Err(Status::invalid_argument(format!(
            "reviewer_tenants holds an invalid tenant id {t:?}"
        )));
    }
    Ok(warden_tls::Caller {
        role: warden_tls::Role::Reviewer,
        name: name.to_owned(),
        scope: warden_tls::Scope::from_tenants(r.reviewer_tenants.clone()),
        insecure_dev: false,
    })
}

fn already_decided(p: &Proposal) -> Status {
    Status::failed_precondition(format!(
        "proposal {} was already reviewed ({})",
        p.id,
        ProposalStatus::try_from(p.status).map_or("unknown", |s| s.as_str_name())
    ))
}
