//! The agent service: triggers start runs; a run is a bounded loop of model calls
//! through the gateway (never a provider) with the platform's tools only. Each run's
//! untrusted part (prompts, answers, tool decisions) runs in a confined worker process
//! of its own ([`isolation`]); the broker here holds every client, credential and budget.
//!
//! Tools read telemetry from storage (or the tenant's Prometheus and GitHub) for the
//! run's own tenant and incident window; only the tools the tenant's settings allow at
//! that moment are offered or run, each call is recorded with the run, and every tool
//! result enters the conversation tagged with its data type, so the gateway gates and
//! minimizes it like any other part. A `propose_change` tool records a structured
//! proposal in PENDING_REVIEW; the agent never applies one, and only a human reviewer
//! scoped to the tenant can decide one (see [`proposals`]); releasing an approved one is
//! the gateway's, never this service's.

pub mod anomaly;
pub mod brief;
pub mod budget;
pub mod compact;
pub mod finding;
pub mod isolation;
mod proposals;
mod run;
pub mod tools;
pub mod webhooks;
mod worker;

pub use budget::Budget;

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
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::run_store_client::RunStoreClient;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_proto::telemetry::v1::ingest_tokens_client::IngestTokensClient;
use warden_proto::telemetry::v1::telemetry_query_client::TelemetryQueryClient;
use warden_rpc::ServiceHost;
use warden_tls::authorize;

use crate::tools::window;

/// Bounds of runs: each run's budget, and the queue that all replicas share.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// The platform's budget of one run (a tenant may lower it in its settings).
    pub budget: Budget,
    /// How far before the trigger's time tool queries look by default.
    pub lookback: Duration,
    /// Most bytes one tool result may take.
    pub max_tool_result_bytes: usize,
    /// Runs this replica executes at once.
    pub workers: usize,
    /// How long a worker's claim on a run lasts without renewal: a dead worker's run is
    /// taken over after this.
    pub lease: Duration,
    /// Concurrent runs of one tenant across all replicas (a tenant may lower it).
    pub max_running_per_tenant: u32,
    /// Queued runs of one tenant; more are refused (a tenant may lower it).
    pub max_queued_per_tenant: u32,
    /// Runs one tenant may start per minute (a tenant may lower it).
    pub max_started_per_minute: u32,
    /// Workers that may die on one run before it is failed.
    pub max_attempts: u32,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            budget: Budget::default(),
            lookback: Duration::from_secs(3600),
            max_tool_result_bytes: 16 * 1024,
            workers: 4,
            lease: Duration::from_secs(30),
            max_running_per_tenant: 4,
            max_queued_per_tenant: 100,
            max_started_per_minute: 30,
            max_attempts: 3,
        }
    }
}

impl RunLimits {
    /// The byte cap of one tool result: the configured maximum, and never more than an
    /// eighth of the model's context (at about four bytes per token).
    pub fn tool_result_bytes(&self, budget: &Budget) -> usize {
        self.max_tool_result_bytes
            .min((budget.model_context_tokens as usize).saturating_mul(4) / 8)
    }
}

#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    gateway: GatewayClient<Channel>,
    runs: RunStoreClient<Channel>,
    proposals: ProposalStoreClient<Channel>,
    tenants: TenantStoreClient<Channel>,
    telemetry: TelemetryQueryClient<Channel>,
    tokens: IngestTokensClient<Channel>,
    limits: RunLimits,
    /// Where each run's untrusted part runs.
    isolation: isolation::Isolation,
    /// This replica's name, unique across replicas (its workers' lease owner prefix).
    replica: String,
    running: worker::Running,
    /// Woken when this replica queues a run, so an idle worker takes it at once.
    wake: tokio::sync::Notify,
}

/// A trigger to investigate, from any source (gRPC, webhooks, the anomaly detector).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub tenant_id: String,
    pub purpose: Purpose,
    /// Exactly-once keys: nothing new starts when every key belongs to an earlier run.
    pub keys: Vec<String>,
    pub trigger: brief::Trigger,
}

impl Agent {
    /// An agent service that calls the gateway over `gateway` and storage over `storage`.
    pub fn new(
        gateway: Channel,
        storage: Channel,
        limits: RunLimits,
        isolation: isolation::Isolation,
    ) -> Agent {
        Agent {
            inner: Arc::new(Inner {
                gateway: GatewayClient::new(gateway),
                runs: RunStoreClient::new(storage.clone()),
                proposals: ProposalStoreClient::new(storage.clone()),
                tenants: TenantStoreClient::new(storage.clone()),
                telemetry: TelemetryQueryClient::new(storage.clone()),
                tokens: IngestTokensClient::new(storage),
                limits,
                isolation,
                replica: format!(
                    "{}-{}",
                    std::env::var("HOSTNAME").unwrap_or_else(|_| "agent".into()),
                    uuid::Uuid::new_v4().simple()
                ),
                running: worker::Running::default(),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Queues an investigation (or records it as SKIPPED when the tenant has not opted
    /// in: no model is called), within the tenant's budget and queue limits.
    pub async fn enqueue(&self, new: NewRun) -> Result<st::CreateRunResponse, Status> {
        check_tenant(&new.tenant_id)?;
        let settings = self.settings_if_known(&new.tenant_id).await?;
        let enabled = settings.as_ref().is_some_and(|s| s.enabled);
        let limits = self.inner.limits;
        let lower = |platform: u32, tenant: u32| {
            if tenant == 0 {
                platform
            } else {
                platform.min(tenant)
            }
        };
        let (budget, max_queued, max_per_minute) = match &settings {
            Some(s) => (
                limits.budget.lowered_by(s.run_budget.as_ref()),
                lower(limits.max_queued_per_tenant, s.max_queued_runs),
                lower(limits.max_started_per_minute, s.max_runs_per_minute),
            ),
            None => (
                limits.budget,
                limits.max_queued_per_tenant,
                limits.max_started_per_minute,
            ),
        };
        let (status, reason) = if enabled {
            (st::RunStatus::Queued, String::new())
        } else {
            (
                st::RunStatus::Skipped,
                format!(
                    "AI features are not enabled for tenant {}; no model was called",
                    new.tenant_id
                ),
            )
        };
        let mut runs = self.inner.runs.clone();
        let created = runs
            .create_run(st::CreateRunRequest {
                tenant_id: new.tenant_id.clone(),
                purpose: new.purpose as i32,
                fingerprint: String::new(),
                trigger_json: new.trigger.to_json(),
                status: status as i32,
                status_reason: reason,
                keys: new.keys,
                budget: Some(budget.to_proto()),
                max_queued,
                max_started_per_minute: max_per_minute,
            })
            .await?
            .into_inner();
        if enabled && !created.duplicate {
            self.inner.wake.notify_one();
        }
        Ok(created)
    }

    /// The tenant's settings, or `None` for a tenant storage does not know (which has
    /// not opted in); any other failure refuses (fail closed).
    async fn settings_if_known(
        &self,
        tenant_id: &str,
    ) -> Result<Option<warden_proto::common::v1::TenantSettings>, Status> {
        let mut c = self.inner.tenants.clone();
        match c
            .get_tenant_settings(st::GetTenantSettingsRequest {
                tenant_id: tenant_id.to_owned(),
            })
            .await
        {
            Ok(s) => Ok(Some(s.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Status::unavailable(format!(
                "tenant settings could not be read: {}",
                s.message()
            ))),
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
        let labels: std::collections::BTreeMap<String, String> = t.labels.into_iter().collect();
        if labels.len() > 256 || labels.iter().any(|(k, v)| k.len() > 256 || v.len() > 4096) {
            return Err(Status::invalid_argument(
                "labels: at most 256, keys up to 256 bytes and values up to 4 KiB",
            ));
        }
        let created = self
            .enqueue(NewRun {
                tenant_id: t.tenant_id,
                purpose,
                keys: if t.fingerprint.is_empty() {
                    Vec::new()
                } else {
                    vec![t.fingerprint]
                },
                trigger: brief::Trigger {
                    title: t.title,
                    description: t.description,
                    service: t.service,
                    labels,
                    occurred_at_ms: window::ms_of(t.occurred_at.as_ref()),
                    detail: serde_json::Value::Null,
                },
            })
            .await?;
        Ok(Response::new(ag::SubmitTriggerResponse {
            run: created.run,
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

    async fn list_runs(
        &self,
        req: Request<ag::ListRunsRequest>,
    ) -> Result<Response<st::ListRunsResponse>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/ListRuns")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let mut runs = self.inner.runs.clone();
        runs.list_runs(st::ListRunsRequest {
            tenant_id: r.tenant_id,
            status: r.status,
            limit: r.limit,
            before: r.before,
        })
        .await
    }

    async fn cancel_run(
        &self,
        req: Request<ag::CancelRunRequest>,
    ) -> Result<Response<st::Run>, Status> {
        let auth = authorize(&req, "warden.agent.v1.Agent/CancelRun")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        let caller = auth.for_tenant(&r.tenant_id)?;
        if r.reason.len() > 1024 {
            return Err(Status::invalid_argument("reason may be at most 1 KiB"));
        }
        let reason = match r.reason.trim() {
            "" => format!("cancelled by {}", caller.subject()),
            why => format!("cancelled by {}: {why}", caller.subject()),
        };
        let mut runs = self.inner.runs.clone();
        let run = runs
            .cancel_run(st::CancelRunRequest {
                tenant_id: r.tenant_id,
                run_id: r.run_id.clone(),
                reason: reason.clone(),
            })
            .await?;
        // At once here; other replicas see it at their next lease renewal.
        self.inner
            .running
            .halt(&r.run_id, worker::Halt::Cancelled(reason));
        Ok(run)
    }

    async fn list_proposals(
        &self,
        req: Request<ag::ListProposalsRequest>,
    ) -> Result<Response<st::ListProposalsResponse>, Status> {
        self.list_proposals_for(req).await
    }

    async fn get_proposal(
        &self,
        req: Request<ag::GetProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        self.get_proposal_for(req).await
    }

    async fn review_proposal(
        &self,
        req: Request<ag::ReviewProposalRequest>,
    ) -> Result<Response<st::Proposal>, Status> {
        self.review_proposal_for(req).await
    }
}
