//! What reviewers see and decide, through this service: `ListProposals` (filters and
//! pages), `GetProposal` (the diff, the evidence and the history) and `ReviewProposal`.
//!
//! Only a reviewer identity covering the tenant decides (the access matrix, from the
//! certificate alone); this service forwards that identity and the digest the reviewer saw
//! to storage, which checks both again, audits the decision durably and only then commits
//! it. Nothing here releases a proposal: that is the gateway's `Releases`, with a
//! credential this service cannot read.

use tonic::{Request, Response, Status};
use warden_proto::agent::v1 as ag;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_tls::authorize;

use crate::{Agent, check_tenant};

impl Agent {
    pub(crate) fn proposal_store(&self) -> ProposalStoreClient<tonic::transport::Channel> {
        self.inner.proposals.clone()
    }

    pub(crate) async fn list_proposals_for(
        &self,
        req: Request<ag::ListProposalsRequest>,
    ) -> Result<Response<st::ListProposalsResponse>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/ListProposals")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        self.proposal_store()
            .list_proposals(st::ListProposalsRequest {
                tenant_id: r.tenant_id,
                status: r.status,
                limit: r.limit,
                kind: r.kind,
                run_id: r.run_id,
                created_since: r.created_since,
                created_until: r.created_until,
                page_token: r.page_token,
            })
            .await
    }

    pub(crate) async fn get_proposal_for(
        &self,
        req: Request<ag::GetProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/GetProposal")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        self.proposal_store()
            .get_proposal(st::GetProposalRequest {
                tenant_id: r.tenant_id,
                proposal_id: r.proposal_id,
            })
            .await
    }

    pub(crate) async fn review_proposal_for(
        &self,
        req: Request<ag::ReviewProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        // A reviewer scoped to the tenant only: never a service, an agent or an admin.
        let auth = authorize(&req, "warden.agent.v1.Agent/ReviewProposal")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let reviewer = auth.for_tenant(&r.tenant_id)?;
        if r.digest.is_empty() {
            return Err(Status::invalid_argument(
                "digest is required: the digest of the content you reviewed (GetProposal's digest)",
            ));
        }
        self.proposal_store()
            .review_proposal(st::ReviewProposalRequest {
                tenant_id: r.tenant_id,
                proposal_id: r.proposal_id,
                approve: r.approve,
                comment: r.comment,
                reviewer: reviewer.subject(),
                reviewer_tenants: reviewer.scope.tenants().to_vec(),
                digest: r.digest,
            })
            .await
    }
}
