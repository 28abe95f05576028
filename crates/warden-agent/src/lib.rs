//! The agent service: triggers start runs; a run is a bounded loop of model calls
//! through the gateway (never a provider) with the platform's tools only.
//!
//! Tools read telemetry from storage for the run's own tenant, and every tool result
//! enters the conversation tagged with its data type, so the gateway gates and
//! minimizes it like any other part. A `propose_change` tool records a proposal in
//! PENDING_REVIEW; nothing is ever applied, and only a human reviewer scoped to the
//! tenant can decide one: this service authenticates the reviewer from their certificate
//! and forwards that identity to storage, which accepts reviews only from this service,
//! audits each decision durably before committing it, and counts distinct approvals.

mod run;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use warden_proto::agent::v1 as ag;
use warden_proto::agent::v1::agent_server::AgentServer;
use warden_proto::common::v1::Purpose;
use warden_proto::gateway::v1::gateway_client::GatewayClient;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::run_store_client::RunStoreClient;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_proto::telemetry::v1::telemetry_query_client::TelemetryQueryClient;
use warden_rpc::ServiceHost;
use warden_tls::authorize;

/// Bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub max_steps: u32,
    pub max_wall_time: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            max_steps: 8,
            max_wall_time: Duration::from_secs(300),
        }
    }
}

#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    gateway: GatewayClient<Channel>,
    runs: RunStoreClient<Channel>,
    tenants: TenantStoreClient<Channel>,
    telemetry: TelemetryQueryClient<Channel>,
    limits: RunLimits,
}

impl Agent {
    /// An agent service that calls the gateway over `gateway` and storage over `storage`.
    pub fn new(gateway: Channel, storage: Channel, limits: RunLimits) -> Agent {
        Agent {
            inner: Arc::new(Inner {
                gateway: GatewayClient::new(gateway),
                runs: RunStoreClient::new(storage.clone()),
                tenants: TenantStoreClient::new(storage.clone()),
                telemetry: TelemetryQueryClient::new(storage),
                limits,
            }),
        }
    }

    pub fn routes(&self, host: &ServiceHost) -> tonic::service::RoutesBuilder {
        let mut routes = tonic::service::RoutesBuilder::default();
        routes.add_service(InterceptedService::new(
            AgentServer::new(self.clone()).max_decoding_message_size(host.limits.max_message_bytes),
            host.identify(),
        ));
        routes
    }

    pub const SERVICES: [&'static str; 1] = ["warden.agent.v1.Agent"];

    /// Whether the tenant has AI enabled right now (unknown tenant: no).
    async fn tenant_enabled(&self, tenant_id: &str) -> Result<bool, Status> {
        let mut c = self.inner.tenants.clone();
        match c
            .get_tenant_settings(st::GetTenantSettingsRequest {
                tenant_id: tenant_id.to_owned(),
            })
            .await
        {
            Ok(s) => Ok(s.into_inner().enabled),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(Status::unavailable(format!(
                "tenant settings could not be read: {}",
                s.message()
            ))),
        }
    }
}

fn check_tenant(tenant_id: &str) -> Result<(), Status> {
    if tenant_id.is_empty() {
        return Err(Status::invalid_argument("tenant_id is required"));
    }
    if tenant_id.len() > 128
        || !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Status::invalid_argument(
            "tenant_id must be 1 to 128 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl ag::agent_server::Agent for Agent {
    async fn submit_trigger(
        &self,
        req: Request<ag::SubmitTriggerRequest>,
    ) -> Result<Response<ag::SubmitTriggerResponse>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/SubmitTrigger")?;
        let t = req.into_inner();
        check_tenant(&t.tenant_id)?;
        auth.for_tenant(&t.tenant_id)?;
        let purpose = Purpose::try_from(t.purpose)
            .map_err(|_| Status::invalid_argument("unknown purpose value"))?;
        if purpose == Purpose::Unspecified {
            return Err(Status::invalid_argument(
                "purpose is required: PURPOSE_ALERT, PURPOSE_ANOMALY, PURPOSE_DEPLOYMENT, PURPOSE_CLUSTER_EVENT or PURPOSE_USER_QUESTION",
            ));
        }
        if t.title.is_empty() {
            return Err(Status::invalid_argument("title is required"));
        }
        if t.title.len() > 1024 || t.description.len() > 64 * 1024 || t.fingerprint.len() > 512 {
            return Err(Status::invalid_argument(
                "title (1 KiB), description (64 KiB) or fingerprint (512 B) is too long",
            ));
        }
        let enabled = self.tenant_enabled(&t.tenant_id).await?;
        let trigger_json = serde_json::json!({
            "title": t.title, "description": t.description, "service": t.service, "labels": t.labels,
            "occurred_at": t.occurred_at.as_ref().map(|ts| ts.seconds),
        })
        .to_string();
        let (status, reason) = if enabled {
            (st::RunStatus::Running, String::new())
        } else {
            (
                st::RunStatus::Skipped,
                format!(
                    "AI features are not enabled for tenant {}; no model was called",
                    t.tenant_id
                ),
            )
        };
        let mut runs = self.inner.runs.clone();
        let created = runs
            .create_run(st::CreateRunRequest {
                tenant_id: t.tenant_id.clone(),
                purpose: t.purpose,
                fingerprint: t.fingerprint.clone(),
                trigger_json,
                status: status as i32,
                status_reason: reason,
            })
            .await?
            .into_inner();
        let run = created
            .run
            .ok_or_else(|| Status::internal("storage returned no run"))?;
        if enabled && !created.duplicate {
            let agent = self.clone();
            let (run_id, tenant) = (run.id.clone(), t.tenant_id.clone());
            tokio::spawn(async move { agent.execute(tenant, run_id, purpose, t).await });
        }
        Ok(Response::new(ag::SubmitTriggerResponse {
            run: Some(run),
            duplicate: created.duplicate,
        }))
    }

    async fn get_run(&self, req: Request<ag::GetRunRequest>) -> Result<Response<st::Run>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/GetRun")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let mut runs = self.inner.runs.clone();
        runs.get_run(st::GetRunRequest {
            tenant_id: r.tenant_id,
            run_id: r.run_id,
        })
        .await
    }

    async fn list_proposals(
        &self,
        req: Request<ag::ListProposalsRequest>,
    ) -> Result<Response<st::ListProposalsResponse>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/ListProposals")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let mut runs = self.inner.runs.clone();
        runs.list_proposals(st::ListProposalsRequest {
            tenant_id: r.tenant_id,
            status: r.status,
            limit: r.limit,
        })
        .await
    }

    async fn review_proposal(
        &self,
        req: Request<ag::ReviewProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        // A reviewer scoped to the tenant only: never a service, an agent or an admin.
        let auth = authorize(&req, "warden.agent.v1.Agent/ReviewProposal")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let reviewer = auth.for_tenant(&r.tenant_id)?;
        // Storage writes the decision's audit record durably before committing it.
        let mut runs = self.inner.runs.clone();
        runs.review_proposal(st::ReviewProposalRequest {
            tenant_id: r.tenant_id,
            proposal_id: r.proposal_id,
            approve: r.approve,
            comment: r.comment,
            reviewer: reviewer.subject(),
            reviewer_tenants: reviewer.scope.tenants().to_vec(),
        })
        .await
    }
}
