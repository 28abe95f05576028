//! A whole Warden on loopback for tests: storage, gateway and agent as three separate
//! gRPC servers on their own ports, over mTLS with a fresh dev CA per cluster.
//! Nothing is faked but the model: by default the gateway's only provider is the recording
//! offline `local` provider, so a test can assert exactly what reached it; with
//! [`Options::providers`] it loads a routing config (`config/providers.toml` format) and
//! reaches the `warden-testkit` mock providers over TLS on loopback, reloading the file
//! when it changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mocks;
pub mod model;
pub mod proposals;
pub mod scripted;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use warden::services;
use warden_gateway::{AuditSink, Gateway, Providers};
use warden_proto::agent::v1::agent_client::AgentClient;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::admin_client::AdminClient;
use warden_proto::gateway::v1::audit_client::AuditClient;
use warden_proto::gateway::v1::gateway_client::GatewayClient;
use warden_providers::LocalProvider;
use warden_rpc::{Limits, Security};
use warden_tls::DevPki;

/// Options for a test cluster.
pub struct Options {
    /// `None`: a fresh SQLite file. `Some(url)`: that database (e.g. PostgreSQL).
    pub database_url: Option<String>,
    pub max_message_bytes: usize,
    /// Replace the gateway's audit sink (to make appends fail).
    pub audit_sink: Option<Arc<dyn AuditSink>>,
    /// Start a second gateway on the same storage.
    pub second_gateway: bool,
    /// Start a second storage replica on the same database and put the second gateway on
    /// it (implies `second_gateway`; meaningful on PostgreSQL, where replicas share changes).
    pub second_storage: bool,
    /// Make the provider take this long to answer (for shutdown tests).
    pub provider_delay: Option<Duration>,
    /// Route through this routing config instead of the local provider alone.
    pub providers: Option<ProvidersFile>,
    /// Serve the tenant's `local` provider with this one instead of the recording
    /// `LocalProvider` (e.g. a real adapter pointed at a `warden-testkit` mock).
    pub provider: Option<Arc<dyn warden_providers::Provider>>,
    /// The stream idle timeout of the gateway's providers (without a routing config):
    /// how long a stream may go without an event, upstream or at the reader.
    pub stream_idle: Option<Duration>,
    /// The agent's run limits (default: `RunLimits::default()`).
    pub run_limits: Option<warden_agent::RunLimits>,
    /// The agent's webhook listener options.
    pub webhooks: warden_agent::webhooks::WebhookOptions,
    /// How the agent's anomaly detectors run.
    pub anomaly: warden_agent::anomaly::AnomalyOptions,
    /// The limits of storage's ingest listener (OTLP/gRPC and OTLP/HTTP).
    pub ingest: warden_storage::IngestOptions,
    /// Where runs' untrusted parts run (default: [`worker_isolation`], the real sandbox,
    /// changed by `sandbox`).
    pub isolation: Option<warden_agent::isolation::Isolation>,
    /// The worker executable of the default sandbox (default: [`worker_program`]).
    pub worker_program: Option<std::path::PathBuf>,
    /// Changes the default sandbox (extra self checks, another minimum).
    pub sandbox: Arc<dyn Fn(&mut warden_agent::isolation::SandboxOptions) + Send + Sync>,
}

/// A routing config file for the gateway, and what loading it needs besides the file.
pub struct ProvidersFile {
    pub path: std::path::PathBuf,
    /// API keys by `api_key_env` name, the gateway's AWS identity, the mocks' CA.
    pub env: services::ProviderEnv,
    /// Watch the file for changes this often (`None`: load once, never reload).
    pub reload_poll: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            database_url: None,
            max_message_bytes: 16 * 1024 * 1024,
            audit_sink: None,
            second_gateway: false,
            second_storage: false,
            provider_delay: None,
            providers: None,
            provider: None,
            stream_idle: None,
            run_limits: None,
            webhooks: Default::default(),
            anomaly: Default::default(),
            ingest: warden_storage::IngestOptions::default(),
            isolation: None,
            worker_program: None,
            sandbox: Arc::new(|_| {}),
        }
    }
}

/// This package's `warden-worker` binary (built by cargo beside the test binaries, in the
/// directory above `deps/`).
pub fn worker_program() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let program = dir.join("warden-worker");
    assert!(
        program.exists(),
        "{} is missing: build it with `cargo test -p warden-integration-tests` (it is this package's binary)",
        program.display()
    );
    program
}

/// Runs in the real sandbox, as `warden serve agent` with a `[sandbox]` naming the worker:
/// each worker proves it cannot reach the gateway at `gateway`, read the agent's key, write
/// a file or start a program.
pub fn worker_isolation(
    gateway: SocketAddr,
    security: &warden_rpc::Security,
    program: Option<std::path::PathBuf>,
) -> warden_agent::isolation::Isolation {
    let section = warden_config::SandboxSection {
        worker: Some(program.unwrap_or_else(worker_program)),
        ..Default::default()
    };
    services::isolation(Some(&section), &gateway.to_string(), security)
        .expect("the test sandbox is configured")
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub storage_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    /// The first gateway's HTTP front (OpenAI and Anthropic APIs).
    pub http_addr: SocketAddr,
    pub gateway2_addr: Option<SocketAddr>,
    /// The second storage replica (with [`Options::second_storage`]).
    pub storage2_addr: Option<SocketAddr>,
    pub agent_addr: SocketAddr,
    /// The agent service's HTTPS webhook listener.
    pub webhooks_addr: SocketAddr,
    /// Storage's ingest listener: OTLP/gRPC (and `warden.telemetry.v1.Ingest`), OTLP/HTTP.
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// The provider behind the first gateway (and the second, if any), unless
    /// [`Options::providers`] gave a routing config.
    pub local: Arc<LocalProvider>,
    /// The first gateway's service object (to inspect the providers in force).
    pub gateway_service: Gateway,
    /// The second gateway's service object (to break its settings watch, for example).
    pub gateway2_service: Option<Gateway>,
    /// What the routing config watcher accepted and rejected (with `reload_poll`).
    pub reloads: Option<watch::Receiver<services::Reloads>>,
    pub db_url: String,
    shutdown: watch::Sender<bool>,
    storage_shutdown: watch::Sender<bool>,
    storage_task: Option<services::Task>,
    storage2_task: Option<services::Task>,
    tasks: Vec<services::Task>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path().join("pki")).unwrap();
        let sec = |name: &str| Security::Mtls(pki.files(name));
        let limits = Limits {
            max_message_bytes: opts.max_message_bytes,
            shutdown_deadline: Duration::from_secs(5),
            ..Limits::default()
        };
        let (shutdown, rx) = watch::channel(false);
        let (storage_shutdown, storage_rx) = watch::channel(false);
        let any = "127.0.0.1:0".parse().unwrap();
        let (sl, storage_addr) = services::bind(any).await.unwrap();
        let (gl, gateway_addr) = services::bind(any).await.unwrap();
        let (al, agent_addr) = services::bind(any).await.unwrap();
        let (wl, webhooks_addr) = services::bind(any).await.unwrap();
        let db_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("data/warden.db").display()));
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let mut tasks = Vec::new();
        let (otlp_grpc, otlp_grpc_addr) = services::bind(any).await.unwrap();
        let (otlp_http, otlp_http_addr) = services::bind(any).await.unwrap();
        let storage_task = services::start_storage_with(
            sl,
            sec("storage"),
            limits,
            &db_url,
            &dir.path().join("keys/kek"),
            services::AuditLogConfig::beside(&dir.path().join("keys/kek")),
            Some(services::IngestListeners {
                grpc: otlp_grpc,
                http: otlp_http,
                options: opts.ingest,
            }),
            storage_rx,
        )
        .await
        .unwrap();
        let local = Arc::new(LocalProvider::new("local"));
        let providers = || {
            let p: Arc<dyn warden_providers::Provider> = match (&opts.provider, opts.provider_delay)
            {
                (Some(p), _) => p.clone(),
                (None, Some(d)) => Arc::new(Slow(local.clone(), d)),
                (None, None) => local.clone(),
            };
            let providers = Providers::with_local(p);
            match opts.stream_idle {
                Some(idle) => providers.with_default_stream_idle(idle),
                None => providers,
            }
        };
        let mut gateway =
            services::gateway(&storage_addr.to_string(), &sec("gateway"), providers()).unwrap();
        if let Some(sink) = opts.audit_sink.clone() {
            gateway = gateway.with_audit_sink(sink);
        }
        let mut reloads = None;
        if let Some(pf) = &opts.providers {
            let loaded = services::load_providers_with(&pf.path, &gateway, &pf.env)
                .unwrap_or_else(|e| panic!("the test routing config does not load: {e:#}"));
            gateway.replace_providers(loaded);
            if let Some(poll) = pf.reload_poll {
                let (reload, status) = services::spawn_providers_reload_with(
                    gateway.clone(),
                    pf.path.clone(),
                    pf.env.clone(),
                    poll,
                    rx.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    reload.await?;
                    Ok(())
                }));
                reloads = Some(status);
            }
        }
        wait_live(&gateway, &mut tasks, gl, sec("gateway"), limits, rx.clone()).await;
        let (hl, http_addr) = services::bind(any).await.unwrap();
        tasks.push(
            services::start_gateway_http(hl, &sec("gateway"), limits, gateway.clone(), rx.clone())
                .unwrap(),
        );
        let (storage2_addr, storage2_task) = if opts.second_storage {
            let (sl2, addr) = services::bind(any).await.unwrap();
            let task = services::start_storage(
                sl2,
                sec("storage"),
                limits,
                &db_url,
                &dir.path().join("keys/kek"),
                storage_shutdown.subscribe(),
            )
            .await
            .unwrap();
            (Some(addr), Some(task))
        } else {
            (None, None)
        };
        let (gateway2_addr, gateway2_service) = if opts.second_gateway || opts.second_storage {
            let (gl2, addr2) = services::bind(any).await.unwrap();
            let g2 = services::gateway(
                &storage2_addr.unwrap_or(storage_addr).to_string(),
                &sec("gateway"),
                providers(),
            )
            .unwrap();
            wait_live(&g2, &mut tasks, gl2, sec("gateway"), limits, rx.clone()).await;
            (Some(addr2), Some(g2))
        } else {
            (None, None)
        };
        tasks.push(
            services::start_agent(
                al,
                sec("agent-service"),
                limits,
                opts.run_limits.unwrap_or_default(),
                &gateway_addr.to_string(),
                &storage_addr.to_string(),
                services::AgentExtras {
                    webhooks: Some(services::WebhookListener {
                        listener: wl,
                        options: opts.webhooks.clone(),
                    }),
                    anomaly: opts.anomaly,
                    isolation: Some(opts.isolation.clone().unwrap_or_else(|| {
                        let mut i = worker_isolation(
                            gateway_addr,
                            &sec("agent-service"),
                            opts.worker_program.clone(),
                        );
                        if let warden_agent::isolation::Isolation::Sandbox(o) = &mut i {
                            (opts.sandbox)(o);
                        }
                        i
                    })),
                },
                rx,
            )
            .unwrap(),
        );
        Cluster {
            dir,
            pki,
            storage_addr,
            gateway_addr,
            http_addr,
            gateway2_addr,
            storage2_addr,
            agent_addr,
            webhooks_addr,
            otlp_grpc_addr,
            otlp_http_addr,
            local,
            gateway_service: gateway,
            gateway2_service,
            reloads,
            db_url,
            shutdown,
            storage_shutdown,
            storage_task: Some(storage_task),
            storage2_task,
            tasks,
        }
    }

    /// An mTLS channel to `addr` (one of this cluster's services, whose certificate the
    /// client checks) presenting the identity `name` (admin, agent, compliance, reviewer, ...).
    pub fn channel(&self, name: &str, addr: SocketAddr) -> Channel {
        warden_rpc::connect(
            &addr.to_string(),
            &Security::Mtls(self.pki.files(name)),
            self.service_at(addr),
            Duration::from_secs(3),
        )
        .unwrap()
    }

    /// Which service listens at `addr`.
    pub fn service_at(&self, addr: SocketAddr) -> warden_tls::Role {
        if [self.storage_addr, self.otlp_grpc_addr, self.otlp_http_addr].contains(&addr) {
            warden_tls::Role::Storage
        } else if addr == self.agent_addr {
            warden_tls::Role::AgentService
        } else {
            warden_tls::Role::Gateway
        }
    }

    /// Issues a caller identity `name` with `role`, scoped to `tenants` (none:
    /// platform-wide), from this cluster's CA.
    pub fn issue(&self, role: warden_tls::Role, name: &str, tenants: &[&str]) {
        let tenants: Vec<String> = tenants.iter().map(|t| (*t).to_owned()).collect();
        self.pki.issue(role, name, &tenants, false).unwrap();
    }

    pub fn gateway(&self, identity: &str) -> GatewayClient<Channel> {
        GatewayClient::new(self.channel(identity, self.gateway_addr))
            .max_encoding_message_size(usize::MAX)
    }

    pub fn admin(&self, identity: &str) -> AdminClient<Channel> {
        AdminClient::new(self.channel(identity, self.gateway_addr))
    }

    pub fn audit(&self, identity: &str) -> AuditClient<Channel> {
        AuditClient::new(self.channel(identity, self.gateway_addr))
    }

    pub fn agent(&self, identity: &str) -> AgentClient<Channel> {
        AgentClient::new(self.channel(identity, self.agent_addr))
    }

    /// Sets a tenant's settings through the Admin API.
    pub async fn set_tenant(&self, settings: pb::TenantSettings) -> pb::TenantSettings {
        self.admin("admin")
            .set_tenant_settings(gw::SetTenantSettingsRequest {
                settings: Some(settings),
                expected_version: 0,
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the storage services (both, with [`Options::second_storage`]) as a shutdown
    /// signal would, while everything else keeps running.
    pub async fn stop_storage(&mut self) {
        let _ = self.storage_shutdown.send(true);
        if let Some(t) = self.storage_task.take() {
            t.await.unwrap().unwrap();
        }
        if let Some(t) = self.storage2_task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// Stops every server, letting in-flight calls finish: gateways and agent first,
    /// then storage, so calls still in flight can write their audit outcome.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.await.unwrap().unwrap();
        }
        let _ = self.storage_shutdown.send(true);
        if let Some(t) = self.storage_task {
            t.await.unwrap().unwrap();
        }
        if let Some(t) = self.storage2_task {
            t.await.unwrap().unwrap();
        }
    }
}

/// A provider that answers like `LocalProvider`, only later.
struct Slow(Arc<LocalProvider>, Duration);

#[async_trait::async_trait]
impl warden_providers::Provider for Slow {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn complete(
        &self,
        req: &warden_providers::ChatRequest,
    ) -> Result<warden_providers::ChatResponse, warden_providers::ProviderError> {
        tokio::time::sleep(self.1).await;
        self.0.complete(req).await
    }

    async fn stream(
        &self,
        req: &warden_providers::ChatRequest,
    ) -> Result<warden_providers::EventStream, warden_providers::ProviderError> {
        tokio::time::sleep(self.1).await;
        self.0.stream(req).await
    }
}

/// Starts a gateway and waits until its settings watch is live, so tests start from a
/// known state (the cache is on and kept true by the watch).
async fn wait_live(
    gateway: &Gateway,
    tasks: &mut Vec<services::Task>,
    listener: tokio::net::TcpListener,
    security: Security,
    limits: Limits,
    rx: watch::Receiver<bool>,
) {
    tasks.push(services::start_gateway(listener, security, limits, gateway.clone(), rx).unwrap());
    for _ in 0..500 {
        if gateway.tenants().is_live() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gateway settings watch did not go live within 5 s");
}

/// The `ErrorInfo.reason` of a refusal (empty if it carries none).
pub fn reason(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// An audit sink that refuses every append.
pub struct BrokenAudit;

#[async_trait::async_trait]
impl AuditSink for BrokenAudit {
    async fn append(
        &self,
        _: pb::AuditRecord,
    ) -> Result<warden_proto::storage::v1::AuditReceipt, warden_gateway::AuditUnavailable> {
        Err(warden_gateway::AuditUnavailable)
    }
}

impl Cluster {
    /// Stores `token` as one of `tenant`'s source credentials through the admin API;
    /// returns its id.
    pub async fn source_token(&self, tenant: &str, token: &str) -> String {
        self.admin("admin")
            .put_source_credentials(bearer(tenant, token))
            .await
            .unwrap()
            .into_inner()
            .credentials_id
    }

    /// Stores `token` as `tenant`'s release credential through the admin API; returns
    /// its id.
    pub async fn release_token(&self, tenant: &str, token: &str) -> String {
        self.admin("admin")
            .put_release_credentials(bearer(tenant, token))
            .await
            .unwrap()
            .into_inner()
            .credentials_id
    }

    /// Replaces proposal `into`'s stored content with proposal `from`'s, behind storage's
    /// back (what an attacker with the database's write access could do).
    pub async fn swap_proposal_content(&self, from: &str, into: &str) {
        let db = self.db().await;
        sqlx::query(
            "UPDATE proposals SET sealed = (SELECT sealed FROM proposals WHERE id = $1) WHERE id = $2",
        )
        .bind(from)
        .bind(into)
        .execute(&db)
        .await
        .unwrap();
        db.close().await;
    }

    /// A connection pool on this cluster's database, to assert on what storage wrote.
    pub async fn db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.db_url).await.unwrap()
    }

    /// The single number `sql` counts in this cluster's database.
    pub async fn db_count(&self, sql: &str) -> i64 {
        let pool = self.db().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    /// Every audit record of a tenant (up to 1000), read by compliance through the gateway,
    /// once every intent has its outcome or after 3 s (a call's outcome is written after
    /// its answer has gone back; a test that loses outcomes on purpose gets what there is).
    pub async fn audit_records(&self, tenant_id: &str) -> Vec<pb::AuditRecord> {
        self.records_settled_within(tenant_id, std::time::Duration::from_secs(3))
            .await
            .unwrap_or_else(|records| records)
    }

    /// A tenant's audit records once every intent has its outcome; fails the test if one
    /// has none after 10 s.
    pub async fn settled_audit_records(&self, tenant_id: &str) -> Vec<pb::AuditRecord> {
        match self
            .records_settled_within(tenant_id, std::time::Duration::from_secs(10))
            .await
        {
            Ok(records) => records,
            Err(records) => {
                panic!("an intent of {tenant_id} has had no outcome for 10 s: {records:?}")
            }
        }
    }

    /// `Ok` once every intent of the tenant has its outcome, `Err` with the records as they
    /// are when `wait` has passed.
    async fn records_settled_within(
        &self,
        tenant_id: &str,
        wait: std::time::Duration,
    ) -> Result<Vec<pb::AuditRecord>, Vec<pb::AuditRecord>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let records = self
                .audit("compliance")
                .query_audit_records(gw::QueryAuditRecordsRequest {
                    tenant_id: tenant_id.into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .records;
            let count =
                |kind: pb::AuditKind| records.iter().filter(|r| r.kind == kind as i32).count();
            if count(pb::AuditKind::Intent) == count(pb::AuditKind::Outcome) {
                return Ok(records);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(records);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Cluster {
    /// Waits (up to 10 s) until a run is no longer RUNNING, and returns it.
    /// The run as its tenant's agent identity reads it.
    pub async fn get_run(&self, tenant: &str, run_id: &str) -> warden_proto::storage::v1::Run {
        self.agent("agent")
            .get_run(warden_proto::agent::v1::GetRunRequest {
                tenant_id: tenant.into(),
                run_id: run_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn wait_run(&self, tenant: &str, run_id: &str) -> warden_proto::storage::v1::Run {
        let mut agent = self.agent("agent");
        for _ in 0..500 {
            let run = agent
                .get_run(warden_proto::agent::v1::GetRunRequest {
                    tenant_id: tenant.into(),
                    run_id: run_id.into(),
                })
                .await
                .unwrap()
                .into_inner();
            use warden_proto::storage::v1::RunStatus;
            if run.status != RunStatus::Running as i32 && run.status != RunStatus::Queued as i32 {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("run {run_id} did not finish within 10 s");
    }
}

/// A tenant with AI on, logs allowed, and the local provider.
pub fn enabled_tenant(tenant_id: &str) -> pb::TenantSettings {
    pb::TenantSettings {
        tenant_id: tenant_id.into(),
        enabled: true,
        allowed_data_types: vec![pb::DataType::Logs as i32],
        allowed_providers: vec!["local".into()],
        ..Default::default()
    }
}

/// A one-message completion request carrying `text` as logs.
pub fn logs_request(tenant_id: &str, text: &str) -> gw::CompleteRequest {
    gw::CompleteRequest {
        tenant_id: tenant_id.into(),
        purpose: pb::Purpose::Alert as i32,
        agent_run_id: "run-1".into(),
        messages: vec![gw::Message {
            role: gw::Role::User as i32,
            parts: vec![gw::ContentPart {
                data_type: pb::DataType::Logs as i32,
                content: Some(gw::content_part::Content::Text(text.into())),
            }],
        }],
        ..Default::default()
    }
}

pub use warden_storage::test_pg::{
    base_url as postgres_base_url, fresh_schema_url as fresh_postgres_schema,
};

/// An OTLP logs export: one resource (`service.name` = `service`, plus `resource`
/// attributes), one record per body, at the current time, severity ERROR.
pub fn otlp_logs(
    service: &str,
    resource: &[(&str, &str)],
    bodies: &[&str],
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let text = |s: &str| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s.to_owned())),
        })
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut attributes = vec![KeyValue {
        key: "service.name".into(),
        value: text(service),
        ..Default::default()
    }];
    for (k, v) in resource {
        attributes.push(KeyValue {
            key: (*k).into(),
            value: text(v),
            ..Default::default()
        });
    }
    opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .map(|b| LogRecord {
                        time_unix_nano: now,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: text(b),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

impl Cluster {
    /// An OTLP `LogsService` client on storage's ingest listener, presenting `identity`
    /// (an ingest identity, e.g. from `c.issue(Role::Ingest, "otel-acme", &["acme"])`).
    pub fn otlp_logs_client(
        &self,
        identity: &str,
    ) -> opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient<
        Channel,
    > {
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient::new(
            self.channel(identity, self.otlp_grpc_addr),
        )
    }

    /// Sends `bodies` as log records of `service` for the tenant of ingest identity
    /// `identity`.
    pub async fn ingest_logs(&self, identity: &str, service: &str, bodies: &[&str]) {
        self.otlp_logs_client(identity)
            .export(otlp_logs(service, &[], bodies))
            .await
            .unwrap();
    }
}

/// A bearer-token credential of `tenant`, as the admin API takes it.
fn bearer(tenant: &str, token: &str) -> gw::PutSourceCredentialsRequest {
    gw::PutSourceCredentialsRequest {
        tenant_id: tenant.into(),
        credentials: Some(pb::SourceCredentials {
            credentials: Some(pb::source_credentials::Credentials::BearerToken(
                token.into(),
            )),
        }),
    }
}
