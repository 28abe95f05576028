//! The gateway: the one door through which customer telemetry may reach a model.
//!
//! `lib.rs` is the outside of a call (identity, role, status mapping); [`complete`]
//! is the inside, in the order that is the policy. The gateway keeps no durable state:
//! tenant settings come from storage through a watched cache ([`tenants`]), audit
//! records go to storage ([`audit_sink`]), so any number of gateways can run side by side.

mod accounts;
mod admin;
mod api_keys;
mod audit_api;
pub mod audit_sink;
mod complete;
pub mod convert;
pub mod engines;
pub mod http_front;
mod minimize;
mod outcome;
mod relay;
mod release;
pub mod routing;
pub mod status;
pub mod tenants;

use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::admin_server::AdminServer;
use warden_proto::gateway::v1::audit_server::AuditServer;
use warden_proto::gateway::v1::gateway_server::GatewayServer;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_rpc::ServiceHost;
use warden_tls::authorize;

pub use audit_api::{PROVABLE_FORMAT, provable_line, record_json};
pub use audit_sink::{AuditSink, AuditUnavailable, StorageAudit};
pub use routing::Providers;
pub use tenants::Tenants;

/// Largest message the gateway accepts from storage (audit pages, settings).
const STORAGE_MAX_MESSAGE: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    tenants: Tenants,
    audit: Arc<dyn AuditSink>,
    audit_log: AuditLogClient<Channel>,
    tenant_store: TenantStoreClient<Channel>,
    proposals: ProposalStoreClient<Channel>,
    /// Swapped whole on a config reload; in-flight calls keep the set they started with.
    providers: std::sync::RwLock<Arc<Providers>>,
    /// Per-tenant concurrency and rate limits, checked before the audit intent; one for the
    /// gateway's lifetime, so a config reload resets nobody's count.
    limiter: Arc<warden_providers::TenantLimiter>,
    /// The shipped pack, and one compiled engine per tenant rules text.
    engines: engines::Engines,
    /// API keys of the HTTP front, resolved through storage.
    api_keys: api_keys::ApiKeys,
    /// The HTTP front's callers by their connection's certificate chain.
    known_callers: warden_tls::KnownCallers,
}

impl Gateway {
    /// A gateway that reaches storage over `storage` (an mTLS channel), models through
    /// `providers`, and redacts with `engine` (the shipped rule pack plus the platform's).
    pub fn new(storage: Channel, providers: Providers, engine: warden_minimize::Engine) -> Gateway {
        let tenant_store =
            TenantStoreClient::new(storage.clone()).max_decoding_message_size(STORAGE_MAX_MESSAGE);
        let proposals = ProposalStoreClient::new(storage.clone())
            .max_decoding_message_size(STORAGE_MAX_MESSAGE);
        let api_keys = api_keys::ApiKeys::new(storage.clone());
        let audit_log = AuditLogClient::new(storage).max_decoding_message_size(STORAGE_MAX_MESSAGE);
        let limiter = Arc::new(warden_providers::TenantLimiter::new(
            warden_providers::Limits::default(),
        ));
        Gateway {
            inner: Arc::new(Inner {
                tenants: Tenants::new(tenant_store.clone()),
                audit: Arc::new(StorageAudit::new(audit_log.clone())),
                audit_log,
                tenant_store,
                proposals,
                providers: std::sync::RwLock::new(Arc::new(providers)),
                limiter,
                engines: engines::Engines::new(engine),
                api_keys,
                known_callers: warden_tls::KnownCallers::new(),
            }),
        }
    }

    /// Customer-owned Bedrock accounts, resolved through this gateway's settings cache and
    /// storage (for the provider registry's `customer_account` providers).
    pub fn tenant_accounts(&self) -> Arc<dyn warden_providers::TenantAccounts> {
        Arc::new(accounts::StorageTenantAccounts {
            tenants: self.inner.tenants.clone(),
            store: self.inner.tenant_store.clone(),
        })
    }

    /// The providers in force now.
    pub fn providers(&self) -> Arc<Providers> {
        self.inner
            .providers
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Replaces the providers (a validated config reload). Calls in flight finish on the
    /// set they started with; the next call uses the new one.
    pub fn replace_providers(&self, providers: Providers) {
        match self.inner.providers.write() {
            Ok(mut g) => *g = Arc::new(providers),
            Err(p) => *p.into_inner() = Arc::new(providers),
        }
    }

    /// Replaces where audit records go (tests use this to make appends fail).
    pub fn with_audit_sink(self, sink: Arc<dyn AuditSink>) -> Gateway {
        let i = &self.inner;
        Gateway {
            inner: Arc::new(Inner {
                tenants: i.tenants.clone(),
                audit: sink,
                audit_log: i.audit_log.clone(),
                tenant_store: i.tenant_store.clone(),
                proposals: i.proposals.clone(),
                providers: std::sync::RwLock::new(self.providers()),
                limiter: i.limiter.clone(),
                engines: i.engines.clone(),
                api_keys: i.api_keys.clone(),
                known_callers: warden_tls::KnownCallers::new(),
            }),
        }
    }

    pub fn tenants(&self) -> &Tenants {
        &self.inner.tenants
    }

    /// Starts the settings watch; it runs until `shutdown` turns true.
    pub fn spawn_settings_watch(
        &self,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        // A change of a tenant (its settings, or a key revoked) drops its cached keys.
        let mut changes = self.inner.tenants.subscribe_changes();
        let keys = self.inner.api_keys.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match changes.recv().await {
                    Ok(tenant) => keys.forget_tenant(&tenant),
                    Err(RecvError::Lagged(_)) => keys.forget_all(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
        tokio::spawn(self.inner.tenants.clone().watch(shutdown))
    }

    /// The gateway's gRPC routes, each behind the identity interceptor.
    pub fn routes(&self, host: &ServiceHost) -> tonic::service::RoutesBuilder {
        let id = host.identify();
        let max = host.limits.max_message_bytes;
        let mut routes = tonic::service::RoutesBuilder::default();
        routes
            .add_service(InterceptedService::new(
                GatewayServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(InterceptedService::new(
                AdminServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(InterceptedService::new(
                AuditServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(InterceptedService::new(
                gw::releases_server::ReleasesServer::new(self.clone())
                    .max_decoding_message_size(max),
                id,
            ));
        routes
    }

    pub const SERVICES: [&'static str; 4] = [
        "warden.gateway.v1.Gateway",
        "warden.gateway.v1.Admin",
        "warden.gateway.v1.Audit",
        "warden.gateway.v1.Releases",
    ];
}

/// The caller, allowed to act for `tenant`: a malformed tenant id is INVALID_ARGUMENT
/// (naming the rule), one outside the caller's scope PERMISSION_DENIED naming the tenant.
pub(crate) fn for_tenant(
    auth: &warden_tls::Authorized,
    tenant: &str,
) -> Result<warden_tls::Caller, Status> {
    convert::check_tenant_id(tenant).map_err(Status::invalid_argument)?;
    auth.for_tenant(tenant)
}

fn outcome_metric(rpc: &'static str, res: &Result<impl Sized, status::GatewayError>) {
    let outcome = match res {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    };
    metrics::counter!("warden_gateway_requests_total", "rpc" => rpc, "outcome" => outcome)
        .increment(1);
}

#[tonic::async_trait]
impl gw::gateway_server::Gateway for Gateway {
    async fn complete(
        &self,
        req: Request<gw::CompleteRequest>,
    ) -> Result<Response<gw::CompleteResponse>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Gateway/Complete")?;
        let caller = for_tenant(&auth, &req.get_ref().tenant_id)?;
        let res = Gateway::complete(self, &caller, req.into_inner()).await;
        outcome_metric("Complete", &res);
        Ok(Response::new(res?))
    }

    type CompleteStreamStream = relay::RelayStream;

    async fn complete_stream(
        &self,
        req: Request<gw::CompleteRequest>,
    ) -> Result<Response<Self::CompleteStreamStream>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Gateway/CompleteStream")?;
        let caller = for_tenant(&auth, &req.get_ref().tenant_id)?;
        let res = Gateway::complete_stream(self, &caller, req.into_inner()).await;
        outcome_metric("CompleteStream", &res);
        Ok(Response::new(res?))
    }
}
