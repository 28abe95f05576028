//! The storage side of a release: the gateway claims an approved proposal for a human
//! (refused unless the stored content still has the approved digest, and for every
//! caller but one), then reports where it went or gives the claim back. Release
//! credentials are sealed here and handed to the gateway only.

use prost::Message;
use tonic::Status;
use warden_proposals::lifecycle::{self, Action};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::{
    ClaimReleaseRequest, CompleteReleaseRequest, Proposal, PutReleaseCredentialsRequest,
    PutReleaseCredentialsResponse,
};

use super::record::Detail;
use super::{human, refused};
use crate::Storage;
use crate::util::{check_len, check_tenant, now_ms};

const RELEASE_RPC: &str = "warden.gateway.v1.Releases/ReleaseProposal";

impl Storage {
    pub(super) async fn claim(
        &self,
        r: ClaimReleaseRequest,
        service: &str,
    ) -> Result<Proposal, Status> {
        check_tenant(&r.tenant_id)?;
        check_len("digest", &r.digest, 128)?;
        let actor = human(&r.actor, &r.actor_tenants, RELEASE_RPC, &r.tenant_id)?.subject();
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        let step = self
            .decide_on(
                &s,
                &Action::ClaimRelease {
                    expected_digest: &r.digest,
                },
            )
            .await?;
        self.step_proposal(
            &s,
            step,
            Detail {
                actor: &actor,
                recorded_by: service,
                ..Default::default()
            },
        )
        .await?;
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        self.proposal_of(s, true).await
    }

    pub(super) async fn complete(
        &self,
        r: CompleteReleaseRequest,
        service: &str,
    ) -> Result<Proposal, Status> {
        check_tenant(&r.tenant_id)?;
        check_len("url", &r.url, 2048)?;
        check_len("reason", &r.reason, 4096)?;
        let actor = human(&r.actor, &r.actor_tenants, RELEASE_RPC, &r.tenant_id)?.subject();
        if r.released && !(r.url.starts_with("https://") || r.url.starts_with("http://")) {
            return Err(Status::invalid_argument(
                "a completed release names where it went (url)",
            ));
        }
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        let action = if r.released {
            Action::Released
        } else {
            Action::ReleaseAbandoned
        };
        let step = lifecycle::decide(&s.facts(now_ms()), &action).map_err(refused)?;
        self.step_proposal(
            &s,
            step,
            Detail {
                actor: &actor,
                recorded_by: service,
                note: &r.reason,
                release_url: if r.released { &r.url } else { "" },
            },
        )
        .await?;
        let s = self.proposal_row(&r.tenant_id, &r.proposal_id).await?;
        self.proposal_of(s, true).await
    }

    /// APPLIED or FAILED for the proposal released to `r.release_url`.
    pub(super) async fn outcome(
        &self,
        r: warden_proto::storage::v1::RecordOutcomeRequest,
        service: &str,
    ) -> Result<Proposal, Status> {
        check_len("release_url", &r.release_url, 2048)?;
        check_len("delivery", &r.delivery, 128)?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM proposals WHERE tenant_id = $1 AND release_key = $2",
            super::record::COLUMNS
        ))
        .bind(&r.tenant_id)
        .bind(super::release_key(&r.release_url))
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(crate::DbError::from)?
        .ok_or_else(|| {
            Status::not_found(format!(
                "tenant {} has no proposal released to that pull request",
                r.tenant_id
            ))
        })?;
        let s = self.open_row(&r.tenant_id, &row).await?;
        let step = lifecycle::decide(&s.facts(now_ms()), &Action::Outcome { merged: r.merged })
            .map_err(refused)?;
        let note = if r.delivery.is_empty() {
            String::new()
        } else {
            format!("GitHub delivery {}", r.delivery)
        };
        self.step_proposal(
            &s,
            step,
            Detail {
                actor: "github/pull-request",
                recorded_by: service,
                note: &note,
                release_url: "",
            },
        )
        .await?;
        let s = self.proposal_row(&r.tenant_id, &s.id).await?;
        self.proposal_of(s, true).await
    }

    pub(super) async fn put_release_credentials(
        &self,
        r: PutReleaseCredentialsRequest,
        service: &str,
    ) -> Result<PutReleaseCredentialsResponse, Status> {
        check_len("stored_by", &r.stored_by, 256)?;
        let creds = r
            .credentials
            .ok_or_else(|| Status::invalid_argument("credentials are required"))?;
        crate::tenants::check_source_credentials(&creds)?;
        // Audited before it is stored: no record, no credential.
        self.append_audit(AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: r.tenant_id.clone(),
            caller: r.stored_by.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: "RELEASE_CREDENTIALS_STORED".into(),
            reason_message: "a release credential was stored sealed".into(),
            outcome: "ok".into(),
            recorded_by: service.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(|_| {
            Status::unavailable(
                "the credential could not be audited, so it was not stored (AUDIT_FAIL_CLOSED)",
            )
        })?;
        let id = self
            .store_credentials(
                crate::tenants::CredentialTable::Release,
                &r.tenant_id,
                &creds.encode_to_vec(),
            )
            .await?;
        Ok(PutReleaseCredentialsResponse { credentials_id: id })
    }
}
