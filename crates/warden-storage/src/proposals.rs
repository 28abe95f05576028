//! Proposals: what an investigation suggests changing, and the lifecycle only humans
//! advance (`warden.storage.v1.ProposalStore`).
//!
//! On creation the model's text is redacted (secrets never stored), validated
//! (`warden_proposals::validate`), given evidence from the run's own records (its findings,
//! tool calls and the audit records naming it: never the model's word) and a digest over
//! its canonical encoding, and sealed. From then on it never changes: reviews name the
//! digest they saw, a release is claimed only while the stored content still has the
//! approved digest, and every transition is decided by `warden_proposals::lifecycle` and
//! made by [`record`]'s audited compare-and-set, with its history kept. Expiry is swept
//! every minute and before each list, and enforced on every action.

mod record;
mod release;

use std::sync::{OnceLock, Weak};
use std::time::Duration;

use prost::Message;
use sha2::Digest;
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proposals::lifecycle::{self, Action, Refusal};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::proposal_store_server::ProposalStore;
use warden_proto::storage::v1::{
    ClaimReleaseRequest, CompleteReleaseRequest, CreateProposalRequest, GetProposalRequest,
    GetReleaseCredentialsRequest, ListProposalsRequest, ListProposalsResponse, Proposal,
    ProposalContent, ProposalEvidence, ProposalKind, ProposalStatus, ProposalTransition,
    PutReleaseCredentialsRequest, PutReleaseCredentialsResponse, QueryRequest,
    RecordOutcomeRequest, ReviewProposalRequest, ToolCallRef,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, ms_of, new_id, now_ms, ts};
use crate::{DbError, Storage};
use record::{COLUMNS, Detail, Stored};

/// How long a proposal waits for review and release when the tenant does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The actor of expiry transitions.
const EXPIRY: &str = "warden-storage/expiry";
/// Audit records of a run scanned for its evidence, at most.
const MAX_AUDIT_SCAN: usize = 20_000;

/// The clear lookup key of a release (its URL's SHA-256), so an outcome reported by GitHub
/// finds its proposal without the URL being stored in the clear.
pub(crate) fn release_key(url: &str) -> String {
    hex::encode(sha2::Sha256::digest(url.as_bytes()))
}

fn refused(r: Refusal) -> Status {
    Status::failed_precondition(r.to_string())
}

/// The shipped rule pack, compiled once: the redactor the gateway applies to everything
/// that crosses it.
fn engine() -> Option<&'static warden_minimize::Engine> {
    static ENGINE: OnceLock<Option<warden_minimize::Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| warden_minimize::Engine::builtin().ok())
        .as_ref()
}

/// `text` with every secret replaced by a placeholder (personal data stays, as the gateway
/// restores it in model output too); the count of replacements.
fn redact(text: &str, placeholders: &mut warden_minimize::Placeholders) -> Result<String, Status> {
    let engine =
        engine().ok_or_else(|| Status::internal("the redaction rule pack does not compile"))?;
    let spans: Vec<_> = engine
        .find_spans(text)
        .into_iter()
        .filter(|s| s.kind.is_secret())
        .collect();
    Ok(placeholders.replace(text, &spans))
}

/// The model's fields redacted; returns how many secrets were replaced.
fn redact_content(c: &mut ProposalContent) -> Result<u32, Status> {
    let mut p = warden_minimize::Placeholders::new(false);
    c.title = redact(&c.title, &mut p)?;
    c.rationale = redact(&c.rationale, &mut p)?;
    if let Some(ch) = c.change.as_mut() {
        ch.content = redact(&ch.content, &mut p)?;
    }
    Ok(p.counts().values().sum::<u64>() as u32)
}

fn bad_actor(who: &str, what: &str) -> Status {
    Status::permission_denied(format!(
        "only a human {what} identity can do this, not {who:?}"
    ))
}

/// A human identity a service vouches for: `role/<name>` with its certificate's tenants,
/// checked against `rpc`'s row of the matrix for `tenant_id`.
pub(crate) fn human(
    subject: &str,
    tenants: &[String],
    rpc: &str,
    tenant_id: &str,
) -> Result<warden_tls::Caller, Status> {
    let (role, name) = subject
        .split_once('/')
        .filter(|(_, n)| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| bad_actor(subject, "reviewer or admin"))?;
    let role = match role {
        "reviewer" => warden_tls::Role::Reviewer,
        "admin" => warden_tls::Role::Admin,
        _ => return Err(bad_actor(subject, "reviewer or admin")),
    };
    if let Some(t) = tenants.iter().find(|t| !warden_tls::valid_tenant_id(t)) {
        return Err(Status::invalid_argument(format!(
            "the actor's tenants hold an invalid tenant id {t:?}"
        )));
    }
    let caller = warden_tls::Caller {
        role,
        name: name.to_owned(),
        scope: warden_tls::Scope::from_tenants(tenants.to_vec()),
        insecure_dev: false,
    };
    let rule = warden_tls::access::rule(rpc)
        .ok_or_else(|| Status::internal("the access matrix has no row for this action"))?;
    warden_tls::access::decide(rule, &caller, Some(tenant_id))
        .map_err(|d| Status::permission_denied(d.message))?;
    Ok(caller)
}

impl Storage {
    /// What the run itself recorded: its findings, tool calls and audit records.
    async fn evidence_of(&self, tenant_id: &str, run_id: &str) -> Result<ProposalEvidence, Status> {
        let run = self.load_run(tenant_id, run_id).await?;
        let mut evidence = ProposalEvidence {
            finding_ids: run.findings.iter().map(|f| f.id.clone()).collect(),
            tool_calls: run
                .tool_calls
                .iter()
                .map(|t| ToolCallRef {
                    step: t.step,
                    index: t.index,
                    tool: t.tool.clone(),
                    data_type: t.data_type,
                    allowed: t.allowed,
                })
                .collect(),
            audit_record_ids: Vec::new(),
        };
        let mut after = 0;
        let mut scanned = 0;
        loop {
            let page = self
                .query_audit(&QueryRequest {
                    tenant_id: tenant_id.to_owned(),
                    since: run.created_at,
                    after_sequence: after,
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.sequence;
            scanned += page.len();
            evidence.audit_record_ids.extend(
                page.iter()
                    .filter(|r| r.agent_run_id == run_id)
                    .map(|r| r.id.clone()),
            );
            if page.len() < 1000 || scanned >= MAX_AUDIT_SCAN {
                break;
            }
        }
        Ok(evidence)
    }

    async fn ttl_of(&self, tenant_id: &str) -> Result<i64, Status> {
        let secs = self
            .tenant_settings(tenant_id)
            .await?
            .map_or(0, |s| s.proposal_ttl_secs);
        Ok(if secs == 0 {
            DEFAULT_TTL.as_millis() as i64
        } else {
            i64::from(secs) * 1000
        })
    }

    async fn create(&self, r: CreateProposalRequest, service: &str) -> Result<Proposal, Status> {
        check_tenant(&r.tenant_id)?;
        let mut content = r
            .content
            .ok_or_else(|| Status::invalid_argument("content is required"))?;
        let redactions = redact_content(&mut content)?;
        warden_proposals::validate(&content)
            .map_err(|e| Status::invalid_argument(format!("invalid proposal: {e}")))?;
        content.tenant_id = r.tenant_id.clone();
        content.run_id = r.run_id.clone();
        content.evidence = Some(self.evidence_of(&r.tenant_id, &r.run_id).await?);
        let digest = warden_proposals::digest(&content);
        let id = new_id();
        let now = now_ms();
        let expires = now + self.ttl_of(&r.tenant_id).await?;
        let kind = ProposalKind::try_from(content.kind)
            .unwrap_or(ProposalKind::Unspecified)
            .as_str_name();
        let sealed = self.seal(&r.tenant_id, &content.encode_to_vec()).await?;
        // Audited before it is stored, like every later transition.
        let receipt = self
            .append_audit(AuditRecord {
                kind: AuditKind::Admin as i32,
                tenant_id: r.tenant_id.clone(),
                caller: service.to_owned(),
                agent_run_id: r.run_id.clone(),
                decision: AuditDecision::Allowed as i32,
                reason: "PROPOSAL_CREATED".into(),
                reason_message: format!(
                    "proposal {id} -> PROPOSAL_STATUS_PENDING_REVIEW on {digest}"
                ),
                outcome: "ok".into(),
                recorded_by: service.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|_| {
                Status::unavailable(
                    "the proposal could not be audited, so it was not recorded (AUDIT_FAIL_CLOSED)",
                )
            })?;
        let created = ProposalTransition {
            from: ProposalStatus::Unspecified as i32,
            to: ProposalStatus::PendingReview as i32,
            actor: format!("run/{}", r.run_id),
            time: Some(ts(now)),
            digest: digest.clone(),
            reason: "PROPOSAL_CREATED".into(),
            audit_record_id: receipt.id,
            detail: String::new(),
        };
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        sqlx::query(
            "INSERT INTO proposals (id, tenant_id, run_id, kind, status, sealed, reviewer, review_sealed, created_ms, reviewed_ms,
                                    digest, approved_digest, expires_ms, updated_ms, claim_ms, release_sealed, release_key, redactions)
             VALUES ($1, $2, $3, $4, $5, $6, '', '', $7, 0, $8, '', $9, $7, 0, '', '', $10)",
        )
        .bind(&id)
        .bind(&r.tenant_id)
        .bind(&r.run_id)
        .bind(kind)
        .bind(ProposalStatus::PendingReview as i64)
        .bind(&sealed)
        .bind(now)
        .bind(&digest)
        .bind(expires)
        .bind(i64::from(redactions))
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        self.push_history(&mut tx, &r.tenant_id, &id, &created)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        let s = self.proposal_row(&r.tenant_id, &id).await?;
        self.proposal_of(s, true).await
    }

    /// Expires every due proposal (of one tenant, or all); returns how many.
    pub(crate) async fn expire_due(&self, tenant_id: Option<&str>) -> Result<usize, Status> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT tenant_id, id FROM proposals
             WHERE status IN (1, 2) AND expires_ms > 0 AND expires_ms <= $1 AND ($2 = '' OR tenant_id = $2)
             ORDER BY expires_ms LIMIT 500",
        )
        .bind(now)
        .bind(tenant_id.unwrap_or(""))
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut done = 0;
        for r in rows {
            let (tenant, id): (String, String) = (
                r.try_get(0).map_err(DbError::from)?,
                r.try_get(1).map_err(DbError::from)?,
            );
            let s = self.proposal_row(&tenant, &id).await?;
            if self.expire(&s).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Records EXPIRED if `s` is due; false if it is not (or was moved meanwhile).
    async fn expire(&self, s: &Stored) -> Result<bool, Status> {
        let Ok(step) = lifecycle::decide(&s.facts(now_ms()), &Action::Expire) else {
            return Ok(false);
        };
        let detail = Detail {
            actor: EXPIRY,
            recorded_by: "storage/storage",
            ..Default::default()
        };
        match self.step_proposal(s, step, detail).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == tonic::Code::Aborted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Decides `action` on `s`; past expiry, records EXPIRED and refuses.
    async fn decide_on(&self, s: &Stored, action: &Action<'_>) -> Result<lifecycle::Step, Status> {
        match lifecycle::decide(&s.facts(now_ms()), action) {
            Ok(step) => Ok(step),
            Err(Refusal::Expired) => {
                self.expire(s).await?;
                Err(refused(Refusal::Expired))
            }
            Err(r) => Err(refused(r)),
        }
    }

    async fn list(&self, r: &ListProposalsRequest) -> Result<ListProposalsResponse, Status> {
        check_tenant(&r.tenant_id)?;
        if let Err(e) = self.expire_due(Some(&r.tenant_id)).await {
            tracing::warn!(error = %e.message(), "expiring proposals before a list failed");
        }
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) };
        let (after_ms, after_id) = match r.page_token.split_once(':') {
            None if r.page_token.is_empty() => (-1, String::new()),
            Some((ms, id)) if ms.parse::<i64>().is_ok() => {
                (ms.parse::<i64>().unwrap_or(-1), id.to_owned())
            }
            _ => {
                return Err(Status::invalid_argument(
                    "page_token is not one this service gave",
                ));
            }
        };
        let kind = match ProposalKind::try_from(r.kind) {
            Ok(ProposalKind::Unspecified) => "",
            Ok(k) => k.as_str_name(),
            Err(_) => return Err(Status::invalid_argument("unknown kind value")),
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM proposals
             WHERE tenant_id = $1 AND ($2 = 0 OR status = $2) AND ($3 = '' OR kind = $3) AND ($4 = '' OR run_id = $4)
               AND ($5 = 0 OR created_ms >= $5) AND ($6 = 0 OR created_ms < $6)
               AND (created_ms > $7 OR (created_ms = $7 AND id > $8))
             ORDER BY created_ms, id LIMIT $9"
        ))
        .bind(&r.tenant_id)
        .bind(i64::from(r.status))
        .bind(kind)
        .bind(&r.run_id)
        .bind(ms_of(r.created_since.as_ref()).unwrap_or(0))
        .bind(ms_of(r.created_until.as_ref()).unwrap_or(0))
        .bind(after_ms)
        .bind(&after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let more = rows.len() > limit as usize;
        let mut proposals = Vec::with_capacity(rows.len());
        let mut next_page_token = String::new();
        for row in rows.iter().take(limit as usize) {
            let s = self.open_row(&r.tenant_id, row).await?;
            if more {
                next_page_token = format!("{}:{}", s.created_ms, s.id);
            }
            proposals.push(self.proposal_of(s, false).await?);
        }
        if !more {
            next_page_token.clear();
        }
        Ok(ListProposalsResponse {
            proposals,
            next_page_token,
        })
    }
}

/// Expires due proposals of every tenant every `every`.
pub(crate) fn spawn_expiry(storage: Weak<crate::Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = storage.upgrade() else {
                return;
            };
            match (Storage { inner }).expire_due(None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(proposals = n, "expired proposals past their time"),
                Err(e) => {
                    tracing::warn!(error = %e.message(), "expiring proposals failed; retrying next round")
                }
            }
        }
    });
}

#[tonic::async_trait]
impl ProposalStore for Storage {
    async fn create_proposal(
        &self,
        req: Request<CreateProposalRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let service =
            authorize(&req, "warden.storage.v1.ProposalStore/CreateProposal")?.platform()?;
        Ok(Response::new(
            self.create(req.into_inner(), &service.subject()).await?,
        ))
    }

    async fn list_proposals(
        &self,
        req: Request<ListProposalsRequest>,
    ) -> Result<Response<ListProposalsResponse>, Status> {
        authorize(&req, "warden.storage.v1.ProposalStore/ListProposals")?.platform()?;
        Ok(Response::new(self.list(req.get_ref()).await?))
    }

    async fn get_proposal(
        &self,
        req: Request<GetProposalRequest>,
    ) -> Result<Response<Proposal>, Status> {
        authorize(&req, "warden.storage.v1.ProposalStore/GetProposal")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        let s = if self.expire(&s).await? {
            self.proposal_row(&r.tenant_id, &r.proposal_id).await?
        } else {
            s
        };
        Ok(Response::new(self.proposal_of(s, true).await?))
    }

    async fn review_proposal(
        &self,
        req: Request<ReviewProposalRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let service =
            authorize(&req, "warden.storage.v1.ProposalStore/ReviewProposal")?.platform()?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        check_len("comment", &r.comment, 64 * 1024)?;
        check_len("reviewer", &r.reviewer, 256)?;
        check_len("digest", &r.digest, 128)?;
        // The same rule the agent service applied to the reviewer's certificate, again
        // here: only a reviewer, and only of its own tenants.
        if !r.reviewer.starts_with("reviewer/") {
            return Err(bad_actor(&r.reviewer, "reviewer"));
        }
        let reviewer = human(
            &r.reviewer,
            &r.reviewer_tenants,
            "warden.agent.v1.Agent/ReviewProposal",
            &r.tenant_id,
        )?;
        if r.digest.is_empty() {
            return Err(Status::invalid_argument(
                "digest is required: the digest of the content you reviewed (GetProposal)",
            ));
        }
        let subject = reviewer.subject();
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        let step = self
            .decide_on(
                &s,
                &Action::Review {
                    reviewer: &subject,
                    approve: r.approve,
                    seen_digest: &r.digest,
                },
            )
            .await?;
        let recorded_by = service.subject();
        self.step_proposal(
            &s,
            step,
            Detail {
                actor: &subject,
                recorded_by: &recorded_by,
                note: &r.comment,
                release_url: "",
            },
        )
        .await?;
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        Ok(Response::new(self.proposal_of(s, true).await?))
    }

    async fn claim_release(
        &self,
        req: Request<ClaimReleaseRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let service =
            authorize(&req, "warden.storage.v1.ProposalStore/ClaimRelease")?.platform()?;
        Ok(Response::new(
            self.claim(req.into_inner(), &service.subject()).await?,
        ))
    }

    async fn complete_release(
        &self,
        req: Request<CompleteReleaseRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let service =
            authorize(&req, "warden.storage.v1.ProposalStore/CompleteRelease")?.platform()?;
        Ok(Response::new(
            self.complete(req.into_inner(), &service.subject()).await?,
        ))
    }

    async fn record_outcome(
        &self,
        req: Request<RecordOutcomeRequest>,
    ) -> Result<Response<Proposal>, Status> {
        let auth = authorize(&req, "warden.storage.v1.ProposalStore/RecordOutcome")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let service = auth.for_tenant(&r.tenant_id)?;
        Ok(Response::new(self.outcome(r, &service.subject()).await?))
    }

    async fn put_release_credentials(
        &self,
        req: Request<PutReleaseCredentialsRequest>,
    ) -> Result<Response<PutReleaseCredentialsResponse>, Status> {
        let service = authorize(
            &req,
            "warden.storage.v1.ProposalStore/PutReleaseCredentials",
        )?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let service = service.for_tenant(&r.tenant_id)?;
        Ok(Response::new(
            self.put_release_credentials(r, &service.subject()).await?,
        ))
    }

    async fn get_release_credentials(
        &self,
        req: Request<GetReleaseCredentialsRequest>,
    ) -> Result<Response<warden_proto::common::v1::SourceCredentials>, Status> {
        let auth = authorize(
            &req,
            "warden.storage.v1.ProposalStore/GetReleaseCredentials",
        )?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let plain = self
            .load_credentials(
                crate::tenants::CredentialTable::Release,
                &r.tenant_id,
                &r.credentials_id,
            )
            .await?;
        Ok(Response::new(
            warden_proto::common::v1::SourceCredentials::decode(plain.as_slice())
                .map_err(|_| Status::data_loss("stored release credentials are corrupt"))?,
        ))
    }
}
