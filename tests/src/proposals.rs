//! Proposals as the agent service records them, for tests: a run, then a proposal through
//! storage's `ProposalStore` with the agent service's certificate.

use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::run_store_client::RunStoreClient;

use crate::Cluster;

/// A configuration change to a Kubernetes ConfigMap, as a JSON patch.
pub fn config_change(title: &str) -> st::ProposalContent {
    st::ProposalContent {
        kind: st::ProposalKind::ConfigChange as i32,
        title: title.into(),
        rationale: "the payment timeout is shorter than the gateway's p99".into(),
        target: Some(st::ProposalTarget {
            target: Some(st::proposal_target::Target::Kubernetes(
                st::KubernetesTarget {
                    cluster: "prod".into(),
                    namespace: "shop".into(),
                    kind: "ConfigMap".into(),
                    name: "checkout".into(),
                    resource_version: "4711".into(),
                },
            )),
        }),
        change: Some(st::ProposalChange {
            format: st::ChangeFormat::JsonPatch as i32,
            content: r#"[{"op":"replace","path":"/data/PAYMENT_TIMEOUT","value":"30s"}]"#.into(),
        }),
        ..Default::default()
    }
}

impl Cluster {
    /// Storage's proposal API as the agent service.
    pub fn proposal_store(&self) -> ProposalStoreClient<tonic::transport::Channel> {
        ProposalStoreClient::new(self.channel("agent-service", self.storage_addr))
    }

    /// A new run of `tenant` (as the agent service creates one).
    pub async fn new_run(&self, tenant: &str) -> st::Run {
        RunStoreClient::new(self.channel("agent-service", self.storage_addr))
            .create_run(st::CreateRunRequest {
                tenant_id: tenant.into(),
                purpose: pb::Purpose::Alert as i32,
                fingerprint: format!("fp-{}", uuid::Uuid::new_v4()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap()
    }

    /// Records `content` as a proposal of a new run of `tenant`.
    pub async fn propose(
        &self,
        tenant: &str,
        content: st::ProposalContent,
    ) -> Result<st::Proposal, tonic::Status> {
        let run = self.new_run(tenant).await;
        self.proposal_store()
            .create_proposal(st::CreateProposalRequest {
                tenant_id: tenant.into(),
                run_id: run.id,
                content: Some(content),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A review of `p` on the digest it was read with.
pub fn review(tenant: &str, p: &st::Proposal, approve: bool) -> ag::ReviewProposalRequest {
    ag::ReviewProposalRequest {
        tenant_id: tenant.into(),
        proposal_id: p.id.clone(),
        approve,
        comment: "looks right".into(),
        digest: p.digest.clone(),
    }
}

/// Who moved the proposal, in order: `(to, actor, reason)` for each transition.
pub fn moves(p: &st::Proposal) -> Vec<(st::ProposalStatus, String, String)> {
    p.history
        .iter()
        .map(|t| {
            (
                st::ProposalStatus::try_from(t.to).unwrap_or_default(),
                t.actor.clone(),
                t.reason.clone(),
            )
        })
        .collect()
}
