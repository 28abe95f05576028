//! `Releases/ReleaseProposal`: the only way a change leaves Warden.
//!
//! The gateway, a separate process from the agent service in deployments, releases an
//! approved proposal for a human of its tenant (reviewer or admin, never an agent or a
//! service: the access matrix). Order, so nothing is written anywhere unless every check
//! passed:
//!
//! 1. read the proposal; it must be APPROVED and its content (digest recomputed here) must
//!    have the approved digest, and the one the human expects;
//! 2. claim it in storage, which decides the same again, audits the claim and lets only
//!    one caller have it;
//! 3. check the target has not moved (the branch head is still the recorded commit);
//! 4. make exactly one write: a pull request applying the approved diff byte for byte
//!    ([`github`]), or one signed delivery of a Kubernetes change ([`webhook`]);
//! 5. record RELEASED with where it went, or give the claim back with the reason.
//!
//! The credential that writes (a GitHub token with write scope, a webhook signing key) is a
//! release credential: storage returns it to the gateway's identity only.

mod github;
mod webhook;

use tonic::{Code, Request, Response, Status};
use warden_proto::common::v1::source_credentials::Credentials;
use warden_proto::common::v1::{SourceCredentials, TenantSettings};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_target::Target;
use warden_tls::authorize;

use crate::{Gateway, for_tenant};

/// Why a release did not happen; every variant leaves the customer's systems untouched
/// unless it says otherwise.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    /// Refused by a check (target moved, diff does not apply, not configured).
    #[error("{0}")]
    Refused(String),
    /// The customer's system failed or could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

impl ReleaseError {
    fn status(&self) -> Status {
        match self {
            ReleaseError::Refused(m) => Status::failed_precondition(m.clone()),
            ReleaseError::Unavailable(m) => Status::unavailable(m.clone()),
        }
    }
}

fn bearer(c: &SourceCredentials) -> Result<&str, ReleaseError> {
    match &c.credentials {
        Some(Credentials::BearerToken(t)) if !t.is_empty() => Ok(t),
        _ => Err(ReleaseError::Refused(
            "the release credential must be a bearer token".into(),
        )),
    }
}

/// The content must have the approved digest, and the one the human expects.
fn check_digest(p: &st::Proposal, expected: &str) -> Result<(), Status> {
    let content = p.content.clone().unwrap_or_default();
    let actual = warden_proposals::digest(&content);
    if p.approved_digest.is_empty() {
        return Err(Status::failed_precondition(format!(
            "proposal {} is not approved",
            p.id
        )));
    }
    if actual != p.approved_digest || (!expected.is_empty() && expected != p.approved_digest) {
        return Err(Status::failed_precondition(format!(
            "proposal {} has digest {actual}, approved {}, expected {}: nothing was released",
            p.id,
            p.approved_digest,
            if expected.is_empty() {
                "the approved one"
            } else {
                expected
            }
        )));
    }
    Ok(())
}

impl Gateway {
    async fn settings_now(&self, tenant_id: &str) -> Result<TenantSettings, Status> {
        let mut c = self.inner.tenant_store.clone();
        c.get_tenant_settings(st::GetTenantSettingsRequest {
            tenant_id: tenant_id.to_owned(),
        })
        .await
        .map(Response::into_inner)
        .map_err(|s| {
            Status::unavailable(format!(
                "tenant settings could not be read: {}",
                s.message()
            ))
        })
    }

    async fn release_credential(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<SourceCredentials, ReleaseError> {
        if id.is_empty() {
            return Err(ReleaseError::Refused(format!(
                "tenant {tenant_id} has no release credential for this kind of target (proposal_release)"
            )));
        }
        let mut c = self.inner.proposals.clone();
        c.get_release_credentials(st::GetReleaseCredentialsRequest {
            tenant_id: tenant_id.to_owned(),
            credentials_id: id.to_owned(),
        })
        .await
        .map(Response::into_inner)
        .map_err(|s| {
            ReleaseError::Refused(format!(
                "the release credential could not be read: {}",
                s.message()
            ))
        })
    }

    /// Step 4 for one claimed proposal: where it went.
    async fn deliver(
        &self,
        settings: &TenantSettings,
        p: &st::Proposal,
        actor: &str,
    ) -> Result<String, ReleaseError> {
        let release = settings.proposal_release.clone().unwrap_or_default();
        let content = p.content.clone().unwrap_or_default();
        match content.target.as_ref().and_then(|t| t.target.as_ref()) {
            Some(Target::Repository(r)) => {
                let source = settings.github.clone().unwrap_or_default();
                if !source
                    .repositories
                    .iter()
                    .any(|m| m.repository.eq_ignore_ascii_case(&r.repository))
                {
                    return Err(ReleaseError::Refused(format!(
                        "repository {} is not mapped to tenant {}",
                        r.repository, p.tenant_id
                    )));
                }
                let creds = self
                    .release_credential(&p.tenant_id, &release.github_credentials_id)
                    .await?;
                let writer = github::Writer::new(&source, bearer(&creds)?)?;
                writer.open_pull_request(p, r, actor).await
            }
            Some(Target::Kubernetes(_)) => {
                let creds = self
                    .release_credential(&p.tenant_id, &release.webhook_secret_id)
                    .await?;
                webhook::deliver(&release.webhook_url, bearer(&creds)?, p, actor).await
            }
            None => Err(ReleaseError::Refused(format!(
                "proposal {} has no target to release to",
                p.id
            ))),
        }
    }

    async fn release(
        &self,
        caller: &warden_tls::Caller,
        r: gw::ReleaseProposalRequest,
    ) -> Result<st::Proposal, Status> {
        if r.digest.len() > 128 || r.proposal_id.len() > 128 {
            return Err(Status::invalid_argument(
                "proposal_id or digest is too long",
            ));
        }
        let mut store = self.inner.proposals.clone();
        let p = store
            .get_proposal(st::GetProposalRequest {
                tenant_id: r.tenant_id.clone(),
                proposal_id: r.proposal_id.clone(),
            })
            .await?
            .into_inner();
        if p.status != st::ProposalStatus::Approved as i32 {
            return Err(Status::failed_precondition(format!(
                "proposal {} is {}; only an approved proposal can be released, and only once",
                p.id,
                st::ProposalStatus::try_from(p.status).map_or("unknown", |s| s.as_str_name())
            )));
        }
        check_digest(&p, &r.digest)?;
        let settings = self.settings_now(&r.tenant_id).await?;
        let actor = caller.subject();
        let actor_tenants = caller.scope.tenants().to_vec();
        let claimed = store
            .claim_release(st::ClaimReleaseRequest {
                tenant_id: r.tenant_id.clone(),
                proposal_id: r.proposal_id.clone(),
                digest: r.digest.clone(),
                actor: actor.clone(),
                actor_tenants: actor_tenants.clone(),
            })
            .await?
            .into_inner();
        // The content as claimed: checked again, in case it changed since it was read.
        let outcome = match check_digest(&claimed, &r.digest) {
            Ok(()) => self.deliver(&settings, &claimed, &actor).await,
            Err(s) => Err(ReleaseError::Refused(s.message().to_owned())),
        };
        let (released, url, reason) = match &outcome {
            Ok(url) => (true, url.clone(), String::new()),
            Err(e) => (false, String::new(), e.to_string()),
        };
        let done = store
            .complete_release(st::CompleteReleaseRequest {
                tenant_id: r.tenant_id.clone(),
                proposal_id: r.proposal_id.clone(),
                actor,
                actor_tenants,
                released,
                url,
                reason,
            })
            .await;
        match (outcome, done) {
            (Ok(_), Ok(p)) => Ok(p.into_inner()),
            (Ok(url), Err(s)) => {
                tracing::error!(proposal = %r.proposal_id, code = ?s.code(), "a release went out but could not be recorded");
                Err(Status::new(
                    if s.code() == Code::Unavailable {
                        Code::Unavailable
                    } else {
                        Code::Internal
                    },
                    format!(
                        "released to {url}, but the release could not be recorded: {}",
                        s.message()
                    ),
                ))
            }
            (Err(e), _) => Err(e.status()),
        }
    }
}

#[tonic::async_trait]
impl gw::releases_server::Releases for Gateway {
    async fn release_proposal(
        &self,
        req: Request<gw::ReleaseProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Releases/ReleaseProposal")?;
        let r = req.into_inner();
        let caller = for_tenant(&auth, &r.tenant_id)?;
        Ok(Response::new(self.release(&caller, r).await?))
    }
}
