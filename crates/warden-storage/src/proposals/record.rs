//! A proposal as stored, and the one way it moves: [`Storage::step_proposal`] writes the
//! transition's audit record durably, then commits the new state with its history entry
//! only if the proposal is still as the decision saw it (compare-and-set on status and
//! release claim). No audit record, no transition.

use prost::Message;
use sqlx::Row;
use tonic::Status;
use warden_proposals::lifecycle::{Facts, Step};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::{Proposal, ProposalContent, ProposalStatus, ProposalTransition};

use crate::util::{now_ms, ts};
use crate::{DbError, Storage};

/// A release claim older than this is taken to be a gateway that died mid-release; the
/// deterministic branch name keeps a retried release from opening a second pull request.
pub(super) const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;

/// The sealed part of a proposal written before structured proposals (title and body).
#[derive(Clone, PartialEq, Message)]
struct LegacyText {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    body: String,
}

/// One row of `proposals`, opened.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub status: ProposalStatus,
    pub content: ProposalContent,
    /// Recomputed from `content` on every load: what is stored now, whatever the digest
    /// column says.
    pub digest: String,
    pub approved_digest: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub expires_ms: i64,
    pub claim_ms: i64,
    pub release_url: String,
    pub redactions: u32,
    pub approvals: Vec<String>,
    pub required: u32,
}

impl Stored {
    pub fn claimed(&self, now: i64) -> bool {
        self.claim_ms > 0 && now - self.claim_ms < CLAIM_LEASE_MS
    }

    pub fn facts(&self, now: i64) -> Facts<'_> {
        Facts {
            status: self.status,
            digest: &self.digest,
            approved_digest: &self.approved_digest,
            approvals: &self.approvals,
            required: self.required,
            expires_at_ms: self.expires_ms,
            now_ms: now,
            claimed: self.claimed(now),
        }
    }
}

pub(super) const COLUMNS: &str = "id, run_id, kind, status, sealed, created_ms, updated_ms, expires_ms, claim_ms, approved_digest, release_sealed, redactions, digest";

/// What one transition records besides the status.
#[derive(Debug, Default)]
pub(super) struct Detail<'a> {
    pub actor: &'a str,
    /// The service whose certificate vouches for the actor.
    pub recorded_by: &'a str,
    /// A reviewer's comment, a failure's reason.
    pub note: &'a str,
    /// Where a release went.
    pub release_url: &'a str,
}

impl Storage {
    pub(super) async fn proposal_row(&self, tenant_id: &str, id: &str) -> Result<Stored, Status> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM proposals WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant_id} has no proposal {id}")))?;
        self.open_row(tenant_id, &row).await
    }

    pub(super) async fn open_row(
        &self,
        tenant_id: &str,
        row: &sqlx::any::AnyRow,
    ) -> Result<Stored, Status> {
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let id: String = row.try_get(0).map_err(g)?;
        let run_id: String = row.try_get(1).map_err(g)?;
        let plain = self
            .unseal(tenant_id, &row.try_get::<String, _>(4).map_err(g)?)
            .await?;
        let stored_digest: String = row.try_get(12).map_err(g)?;
        let content = if stored_digest.is_empty() {
            // Written before structured proposals: its text, with no target or change.
            let old = LegacyText::decode(plain.as_slice())
                .map_err(|_| Status::data_loss("a stored proposal is corrupt"))?;
            ProposalContent {
                tenant_id: tenant_id.to_owned(),
                run_id: run_id.clone(),
                title: old.title,
                rationale: old.body,
                ..Default::default()
            }
        } else {
            ProposalContent::decode(plain.as_slice())
                .map_err(|_| Status::data_loss("a stored proposal is corrupt"))?
        };
        let release_sealed: String = row.try_get(10).map_err(g)?;
        let release_url = if release_sealed.is_empty() {
            String::new()
        } else {
            String::from_utf8_lossy(&self.unseal(tenant_id, &release_sealed).await?).into_owned()
        };
        let digest = warden_proposals::digest(&content);
        // An approval counts only for the content it was given on.
        let approvals = sqlx::query(
            "SELECT reviewer FROM proposal_approvals WHERE tenant_id = $1 AND proposal_id = $2 AND digest = $3 ORDER BY approved_ms, reviewer",
        )
        .bind(tenant_id)
        .bind(&id)
        .bind(&digest)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(g)?;
        let required = self
            .tenant_settings(tenant_id)
            .await?
            .map_or(0, |s| s.required_reviewers)
            .max(1);
        Ok(Stored {
            digest,
            id,
            tenant_id: tenant_id.to_owned(),
            run_id,
            status: ProposalStatus::try_from(row.try_get::<i64, _>(3).map_err(g)? as i32)
                .unwrap_or(ProposalStatus::Unspecified),
            content,
            approved_digest: row.try_get(9).map_err(g)?,
            created_ms: row.try_get(5).map_err(g)?,
            updated_ms: row.try_get(6).map_err(g)?,
            expires_ms: row.try_get(7).map_err(g)?,
            claim_ms: row.try_get(8).map_err(g)?,
            release_url,
            redactions: row.try_get::<i64, _>(11).map_err(g)? as u32,
            approvals,
            required,
        })
    }

    pub(super) async fn history(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Vec<ProposalTransition>, Status> {
        let rows = sqlx::query(
            "SELECT sealed FROM proposal_history WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY seq",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let plain = self
                .unseal(
                    tenant_id,
                    &r.try_get::<String, _>(0).map_err(DbError::from)?,
                )
                .await?;
            out.push(
                ProposalTransition::decode(plain.as_slice())
                    .map_err(|_| Status::data_loss("a stored proposal transition is corrupt"))?,
            );
        }
        Ok(out)
    }

    pub(super) async fn proposal_of(
        &self,
        s: Stored,
        with_history: bool,
    ) -> Result<Proposal, Status> {
        let history = if with_history {
            self.history(&s.tenant_id, &s.id).await?
        } else {
            Vec::new()
        };
        Ok(Proposal {
            id: s.id,
            tenant_id: s.tenant_id,
            run_id: s.run_id,
            status: s.status as i32,
            created_at: Some(ts(s.created_ms)),
            approvals: s.approvals,
            required_approvals: s.required,
            content: Some(s.content),
            digest: s.digest,
            approved_digest: s.approved_digest,
            history,
            expires_at: (s.expires_ms > 0).then(|| ts(s.expires_ms)),
            release_url: s.release_url,
            updated_at: Some(ts(s.updated_ms.max(s.created_ms))),
            redactions: s.redactions,
        })
    }

    /// Appends a history entry inside `tx`.
    pub(super) async fn push_history(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: &str,
        id: &str,
        t: &ProposalTransition,
    ) -> Result<(), Status> {
        let sealed = self.seal(tenant_id, &t.encode_to_vec()).await?;
        let time = t
            .time
            .as_ref()
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        sqlx::query(
            "INSERT INTO proposal_history (tenant_id, proposal_id, seq, time_ms, sealed)
             SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4 FROM proposal_history WHERE tenant_id = $1 AND proposal_id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(time)
        .bind(&sealed)
        .execute(&mut **tx)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }

    /// The audit record of one transition, written (durably) before it commits.
    pub(super) async fn audit_transition(
        &self,
        s: &Stored,
        step: &Step,
        d: &Detail<'_>,
    ) -> Result<String, Status> {
        let record = AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: s.tenant_id.clone(),
            caller: d.actor.to_owned(),
            agent_run_id: s.run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: step.reason.into(),
            reason_message: format!(
                "proposal {} {} -> {} on {} ({} of {} approvals)",
                s.id,
                s.status.as_str_name(),
                step.to.as_str_name(),
                s.digest,
                s.approvals.len() as u32 + u32::from(step.approval),
                s.required
            ),
            outcome: "ok".into(),
            recorded_by: d.recorded_by.to_owned(),
            ..Default::default()
        };
        let receipt = self.append_audit(record).await.map_err(|_| {
            Status::unavailable(format!(
                "the transition could not be audited, so it was not made (AUDIT_FAIL_CLOSED): proposal {} stays {}",
                s.id,
                s.status.as_str_name()
            ))
        })?;
        Ok(receipt.id)
    }

    /// Makes `step` on `s`: audit first, then the state, the approval, the release and
    /// the history entry in one transaction, only if the row is still as `s` saw it
    /// (status, claim and last update: two decisions on one state cannot both commit).
    pub(super) async fn step_proposal(
        &self,
        s: &Stored,
        step: Step,
        d: Detail<'_>,
    ) -> Result<(), Status> {
        let audit_id = self.audit_transition(s, &step, &d).await?;
        let now = now_ms();
        let approved_digest = if step.to == ProposalStatus::Approved && step.approval {
            s.digest.clone()
        } else {
            s.approved_digest.clone()
        };
        let claim_ms = match step.claim {
            Some(true) => now,
            Some(false) => 0,
            None => s.claim_ms,
        };
        let (release_sealed, release_key) = if d.release_url.is_empty() {
            (None, None)
        } else {
            (
                Some(self.seal(&s.tenant_id, d.release_url.as_bytes()).await?),
                Some(super::release_key(d.release_url)),
            )
        };
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        let done = sqlx::query(
            "UPDATE proposals SET status = $1, approved_digest = $2, claim_ms = $3, updated_ms = $4,
                    release_sealed = COALESCE($5, release_sealed), release_key = COALESCE($6, release_key)
             WHERE tenant_id = $7 AND id = $8 AND status = $9 AND claim_ms = $10 AND updated_ms = $11",
        )
        .bind(step.to as i64)
        .bind(&approved_digest)
        .bind(claim_ms)
        // Strictly later than what the decision read, so a concurrent decision made on the
        // same state cannot also commit.
        .bind(now.max(s.updated_ms + 1))
        .bind(release_sealed)
        .bind(release_key)
        .bind(&s.tenant_id)
        .bind(&s.id)
        .bind(s.status as i64)
        .bind(s.claim_ms)
        .bind(s.updated_ms)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(Status::aborted(format!(
                "proposal {} changed while this was decided; read it again",
                s.id
            )));
        }
        if step.approval {
            sqlx::query(
                "INSERT INTO proposal_approvals (tenant_id, proposal_id, reviewer, approved_ms, digest) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, proposal_id, reviewer) DO UPDATE SET approved_ms = excluded.approved_ms, digest = excluded.digest",
            )
            .bind(&s.tenant_id)
            .bind(&s.id)
            .bind(d.actor)
            .bind(now)
            .bind(&s.digest)
            .execute(&mut *tx)
            .await
            .map_err(|_| {
                Status::failed_precondition(format!(
                    "{} already approved proposal {}",
                    d.actor, s.id
                ))
            })?;
        }
        let transition = ProposalTransition {
            from: s.status as i32,
            to: step.to as i32,
            actor: d.actor.to_owned(),
            time: Some(ts(now)),
            digest: s.digest.clone(),
            reason: step.reason.to_owned(),
            audit_record_id: audit_id,
            detail: if d.release_url.is_empty() {
                d.note.to_owned()
            } else {
                d.release_url.to_owned()
            },
        };
        self.push_history(&mut tx, &s.tenant_id, &s.id, &transition)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }
}
