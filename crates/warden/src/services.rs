//! Starting each service: shared by `warden up` (all three) and `warden serve` (one).
//! The gateway and agent always reach storage over gRPC, never in-process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_gateway::{Gateway, Providers};
use warden_rpc::{Limits, Security, ServiceHost};

pub type Task = JoinHandle<anyhow::Result<()>>;

/// Resolves once `rx` turns true (or its sender is gone).
pub async fn shutdown_future(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub async fn start_storage(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    database_url: &str,
    key_file: &Path,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    start_storage_with(
        listener,
        security,
        limits,
        database_url,
        key_file,
        AuditLogConfig::beside(key_file),
        None,
        shutdown,
    )
    .await
}

/// The ingest listener's ports (OTLP/gRPC and OTLP/HTTP), bound, and its limits.
#[derive(Debug)]
pub struct IngestListeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    pub options: warden_storage::IngestOptions,
}

/// The audit log's checkpoints: who signs them and where they are published.
#[derive(Debug, Clone)]
pub struct AuditLogConfig {
    /// The log signing key (C2SP signed-note private key), 0600, outside the data
    /// directory; created on first run for an empty log only.
    pub key_file: std::path::PathBuf,
    /// The log's origin line, e.g. `warden.example/audit`.
    pub origin: String,
    pub publish: warden_storage::Publish,
    /// When audit intents left without an outcome are closed.
    pub reconcile: warden_storage::ReconcileOptions,
}

/// The origin when none is configured.
pub const DEFAULT_AUDIT_ORIGIN: &str = "warden.local/audit";

impl AuditLogConfig {
    /// `audit-log.key` beside the key-encryption key file, the default origin, no publishing.
    pub fn beside(kek_file: &Path) -> AuditLogConfig {
        AuditLogConfig {
            key_file: kek_file.with_file_name("audit-log.key"),
            origin: DEFAULT_AUDIT_ORIGIN.into(),
            publish: warden_storage::Publish::default(),
            reconcile: warden_storage::ReconcileOptions::default(),
        }
    }
}

/// [`start_storage`] with the audit log's key, origin and publishing, closing audit
/// intents left without an outcome for longer than `audit.reconcile.reconcile_after`
/// (before it serves, then periodically), and receiving telemetry on `ingest` when
/// given (with storage's own certificate).
#[allow(clippy::too_many_arguments)]
pub async fn start_storage_with(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    database_url: &str,
    key_file: &Path,
    audit: AuditLogConfig,
    ingest: Option<IngestListeners>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let db = warden_storage::Db::connect(database_url)
        .await
        .with_context(|| "cannot open the storage database")?;
    // The key-encryption key lives apart from the data: never inside the SQLite
    // database's directory, never readable by others, never created over existing data.
    let data_dir = sqlite_dir(database_url);
    let keys = warden_storage::key_file_provider(&db, key_file, data_dir.as_deref())
        .await
        .context("the key-encryption key cannot be used; storage will not start")?;
    let signer =
        warden_storage::log_key_file(&db, &audit.key_file, &audit.origin, data_dir.as_deref())
            .await
            .context("the audit log signing key cannot be used; storage will not start")?;
    // A store from before envelope encryption keeps its old master key beside the
    // database: values it sealed still open; everything new is sealed under data keys.
    let legacy = match data_dir.map(|d| d.join("master.key")) {
        Some(p) if p.exists() => Some(warden_storage::Sealer::load_or_create(&p)?),
        _ => None,
    };
    let storage = warden_storage::Storage::open_with(
        db,
        Arc::new(keys),
        warden_storage::StorageOptions {
            reconcile: audit.reconcile,
            legacy_master_key: legacy,
            log_signer: Some(Arc::new(signer)),
            publish: audit.publish,
            ..Default::default()
        },
    )
    .await
    .context("storage will not start")?;
    let host = ServiceHost {
        component: "storage",
        security,
        limits,
    };
    let routes = storage.routes(&host);
    // A poisoned audit writer takes the replica out of service (`durable.rs`).
    let gate = storage.health_gate();
    // A certificate that cannot serve stops storage now, not at its first sender.
    if ingest.is_some() {
        warden_rpc::https::optional_client_auth(&host.security)
            .context("the ingest listener cannot use storage's certificate")?;
    }
    let ingest = ingest.map(|l| {
        let storage = storage.clone();
        let security = host.security.clone();
        let stop = shutdown_future(shutdown.clone());
        tokio::spawn(async move {
            storage
                .serve_ingest(l.grpc, l.http, &security, l.options, stop)
                .await
        })
    });
    // Append streams end when the shutdown begins, or it would wait on their callers.
    let stop = {
        let storage = storage.clone();
        let stop = shutdown_future(shutdown);
        async move {
            stop.await;
            storage.close_streams();
        }
    };
    Ok(tokio::spawn(async move {
        host.serve_gated(
            listener,
            routes,
            &warden_storage::Storage::SERVICES,
            Some(gate),
            stop,
        )
        .await?;
        if let Some(task) = ingest {
            task.await??;
        }
        Ok(())
    }))
}

/// The directory of a `sqlite://PATH` database (none for PostgreSQL).
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    let dir = Path::new(path).parent()?;
    Some(if dir.as_os_str().is_empty() {
        std::path::PathBuf::from(".")
    } else {
        dir.to_owned()
    })
}

/// A gateway that reaches storage at `storage_addr` over gRPC with `security`, with the
/// shipped redaction rules.
pub fn gateway(
    storage_addr: &str,
    security: &Security,
    providers: Providers,
) -> anyhow::Result<Gateway> {
    let storage = warden_rpc::connect(
        storage_addr,
        security,
        warden_tls::Role::Storage,
        Duration::from_secs(3),
    )?;
    let engine =
        warden_minimize::Engine::builtin().context("the shipped redaction rules do not load")?;
    Ok(Gateway::new(storage, providers, engine))
}

/// Looks up the secret behind an `api_key_env` name.
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<SecretString> + Send + Sync>;

/// What building the providers needs besides the file: where API keys come from, the
/// gateway's own AWS identity, and extra trust anchors. `warden up`/`serve` use
/// [`ProviderEnv::process`]; tests hand in their mock keys and the mocks' CA.
#[derive(Clone)]
pub struct ProviderEnv {
    /// Looks up the secret behind an `api_key_env` name.
    pub secret: SecretLookup,
    /// Signs platform Bedrock calls and STS `AssumeRole` for customer accounts.
    pub gateway_identity: warden_providers::Identity,
    /// Extra trust anchors (PEM) for every provider, e.g. a corporate proxy CA.
    pub extra_root_ca_pem: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ProviderEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEnv")
            .field("gateway_identity", &self.gateway_identity)
            .field("extra_root_ca_pem", &self.extra_root_ca_pem.len())
            .finish_non_exhaustive()
    }
}

impl ProviderEnv {
    /// API keys from the process environment, the standard AWS credential chain, the
    /// system's web PKI roots only.
    pub fn process() -> ProviderEnv {
        ProviderEnv {
            secret: Arc::new(warden_config::process_env_secret),
            gateway_identity: warden_providers::Identity::DefaultChain,
            extra_root_ca_pem: Vec::new(),
        }
    }
}

/// Builds the providers a routing config names (`config/providers.toml`). Every problem
/// is reported at once, with its line; API keys come from the environment variables the
/// file names, never from the file.
pub fn load_providers(path: &Path, gateway: &Gateway) -> anyhow::Result<Providers> {
    load_providers_with(path, gateway, &ProviderEnv::process())
}

/// [`load_providers`] with an explicit environment.
pub fn load_providers_with(
    path: &Path,
    gateway: &Gateway,
    penv: &ProviderEnv,
) -> anyhow::Result<Providers> {
    let cfg =
        warden_config::load(path).map_err(|d| anyhow::anyhow!("{}", warden_config::render(&d)))?;
    let secret = |name: &str| (penv.secret)(name);
    let env = warden_config::BuildEnv {
        secret: &secret,
        gateway_identity: penv.gateway_identity.clone(),
        tenant_accounts: Some(gateway.tenant_accounts()),
        extra_root_ca_pem: penv.extra_root_ca_pem.clone(),
    };
    let registry = warden_config::build_registry(&cfg, &env).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}: {}", path.display(), lines.join("; "))
    })?;
    Ok(Providers::new(
        warden_providers::Router::new(registry),
        warden_config::catalogue(&cfg),
        cfg.profiles.clone(),
        cfg.default_profile.clone(),
    )
    .with_deadline(cfg.deadline)
    .with_stream_idle_timeouts(
        cfg.providers
            .iter()
            .map(|p| (p.name.clone(), p.timeouts.idle)),
    ))
}

/// How often the routing config file is checked for changes.
pub const PROVIDERS_POLL: Duration = Duration::from_secs(2);

/// Reloads the routing config on SIGHUP and when the file changes. A bad file is
/// rejected with a log line and the providers in force stay; calls in flight finish on
/// the providers they started with.
pub fn spawn_providers_reload(
    gateway: Gateway,
    path: std::path::PathBuf,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    spawn_providers_reload_with(
        gateway,
        path,
        ProviderEnv::process(),
        PROVIDERS_POLL,
        shutdown,
    )
    .0
}

/// What the reload watcher has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloads {
    pub accepted: u64,
    pub rejected: u64,
    /// Why the last rejected file was rejected (every diagnostic, with its line).
    pub last_error: Option<String>,
}

/// [`spawn_providers_reload`] with an explicit environment and poll interval; the
/// receiver follows what the watcher accepted and rejected.
pub fn spawn_providers_reload_with(
    gateway: Gateway,
    path: std::path::PathBuf,
    penv: ProviderEnv,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
) -> (JoinHandle<()>, watch::Receiver<Reloads>) {
    let (status, status_rx) = watch::channel(Reloads::default());
    let task = tokio::spawn(async move {
        // Modification time, length and inode: a rewrite within one coarse timestamp tick
        // or an atomic rename still counts as a change.
        let stamp = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| {
                #[cfg(unix)]
                let ino = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let ino = 0u64;
                (m.modified().ok(), m.len(), ino)
            })
        };
        let mut seen = stamp(&path);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let stop = shutdown_future(shutdown);
        tokio::pin!(stop);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            tokio::select! {
                () = &mut stop => return,
                () = hangup => tracing::info!(path = %path.display(), "SIGHUP: reloading the routing config"),
                () = tokio::time::sleep(poll) => {
                    let now = stamp(&path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    tracing::info!(path = %path.display(), "routing config changed: reloading");
                }
            }
            match load_providers_with(&path, &gateway, &penv) {
                Ok(p) => {
                    gateway.replace_providers(p);
                    status.send_modify(|s| s.accepted += 1);
                    tracing::info!(path = %path.display(), "routing config reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "routing config rejected; the previous one stays in force"
                    );
                    status.send_modify(|s| {
                        s.rejected += 1;
                        s.last_error = Some(format!("{e:#}"));
                    });
                }
            }
        }
    });
    (task, status_rx)
}

pub fn start_gateway(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    gateway: Gateway,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let watch = gateway.spawn_settings_watch(shutdown.clone());
    let host = ServiceHost {
        component: "gateway",
        security,
        limits,
    };
    let routes = gateway.routes(&host);
    Ok(tokio::spawn(async move {
        host.serve(
            listener,
            routes,
            &Gateway::SERVICES,
            shutdown_future(shutdown),
        )
        .await?;
        watch.abort();
        Ok(())
    }))
}

/// The gateway's drop-in HTTP front (OpenAI Chat Completions, Anthropic Messages,
/// models) on its own HTTPS listener: client certificates verified when presented, as
/// the identity; the same pipeline as gRPC `Complete`.
pub fn start_gateway_http(
    listener: TcpListener,
    security: &Security,
    limits: Limits,
    gateway: Gateway,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let tls = warden_rpc::https::optional_client_auth(security)?;
    let serve = warden_rpc::https::serve(
        "gateway-http",
        listener,
        tls,
        warden_gateway::http_front::router(gateway),
        shutdown_future(shutdown),
        limits.shutdown_deadline,
    );
    Ok(tokio::spawn(async move {
        serve.await?;
        Ok(())
    }))
}

/// The agent's run limits from its config file (`[runs]`, `[budget]` and the top-level
/// keys); what the file leaves out keeps its documented default.
pub fn run_limits(agent: &warden_config::AgentSettings) -> warden_agent::RunLimits {
    let mut l = warden_agent::RunLimits::default();
    if let Some(s) = agent.lookback_secs {
        l.lookback = Duration::from_secs(s);
    }
    if let Some(b) = agent.tool_result_max_bytes {
        l.max_tool_result_bytes = b;
    }
    let runs = agent.runs.clone().unwrap_or_default();
    l.workers = runs.workers_or_default() as usize;
    l.lease = Duration::from_secs(runs.lease_secs_or_default());
    l.max_queued_per_tenant = runs.max_queued_per_tenant_or_default();
    l.max_running_per_tenant = runs.max_running_per_tenant_or_default();
    l.max_started_per_minute = runs.max_started_per_minute_per_tenant_or_default();
    let b = agent.budget.clone().unwrap_or_default();
    l.budget = warden_agent::Budget {
        max_steps: b.max_steps_or_default(),
        max_wall: Duration::from_secs(b.max_wall_secs_or_default()),
        max_tool_calls: b.max_tool_calls_or_default(),
        max_input_tokens: b.max_input_tokens_or_default(),
        max_output_tokens: b.max_output_tokens_or_default(),
        max_bytes_per_data_type: b.max_bytes_per_data_type_or_default(),
        model_context_tokens: b.model_context_tokens_or_default(),
    };
    l
}

/// Where the agent service runs each run's untrusted part, from `[sandbox]`: by default a
/// confined `warden worker` process per run, which proves at start that it cannot reach
/// the gateway, read the agent's key, write a file or start a program.
pub fn isolation(
    section: Option<&warden_config::SandboxSection>,
    gateway_addr: &str,
    security: &Security,
) -> anyhow::Result<warden_agent::isolation::Isolation> {
    use warden_agent::isolation::{Isolation, SandboxOptions};
    use warden_config::Isolation as Kind;
    let s = section.cloned().unwrap_or_default();
    if s.isolation == Kind::None {
        tracing::warn!(
            "[sandbox] isolation = \"none\": runs are not confined; every run records it"
        );
        return Ok(Isolation::InProcess);
    }
    let program = match &s.worker {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find this binary to start run workers: {e}"))?,
    };
    let keys: Vec<std::path::PathBuf> = match security {
        Security::Mtls(files) => vec![files.key.clone()],
        _ => Vec::new(),
    };
    let connect: Vec<String> = gateway_addr
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .parse::<SocketAddr>()
        .map(|a| vec![a.to_string()])
        .unwrap_or_default();
    let mut o = SandboxOptions::warden_worker(program, &keys, &connect);
    if s.worker.is_some() {
        // A dedicated worker executable takes no subcommand.
        o.args.clear();
    }
    o.policy.memory_bytes = s.memory_mb_or_default() << 20;
    o.policy.cpu_seconds = s.cpu_secs_or_default();
    o.policy.min = warden_agent::isolation::Required {
        landlock_abi: s.min_landlock_abi_or_default(),
        seccomp: s.require_seccomp_or_default(),
        network_namespace: s.require_network_namespace.unwrap_or(false),
    };
    o.accept_weaker = s.accept_weaker.unwrap_or(false);
    Ok(Isolation::Sandbox(o))
}

/// The agent service's webhook listener and its limits.
pub struct WebhookListener {
    pub listener: TcpListener,
    pub options: warden_agent::webhooks::WebhookOptions,
}

/// What the agent service runs besides its gRPC port and its workers.
#[derive(Default)]
pub struct AgentExtras {
    /// The webhook listener (none: webhooks are not received).
    pub webhooks: Option<WebhookListener>,
    pub anomaly: warden_agent::anomaly::AnomalyOptions,
    /// Where runs' untrusted parts run (none: [`isolation`] with no `[sandbox]`).
    pub isolation: Option<warden_agent::isolation::Isolation>,
}

#[allow(clippy::too_many_arguments)]
pub fn start_agent(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    run_limits: warden_agent::RunLimits,
    gateway_addr: &str,
    storage_addr: &str,
    extras: AgentExtras,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let gateway = warden_rpc::connect(
        gateway_addr,
        &security,
        warden_tls::Role::Gateway,
        Duration::from_secs(3),
    )?;
    let storage = warden_rpc::connect(
        storage_addr,
        &security,
        warden_tls::Role::Storage,
        Duration::from_secs(3),
    )?;
    let isolation = match extras.isolation {
        Some(i) => i,
        None => isolation(None, gateway_addr, &security)?,
    };
    let agent = warden_agent::Agent::new(gateway, storage, run_limits, isolation);
    agent.spawn_workers(shutdown.clone());
    agent.spawn_detectors(extras.anomaly, shutdown.clone());
    let hooks = match extras.webhooks {
        Some(w) => {
            let tls = warden_rpc::https::optional_client_auth(&security)?;
            Some(warden_rpc::https::serve(
                "agent-webhooks",
                w.listener,
                tls,
                warden_agent::webhooks::router(agent.clone(), w.options),
                shutdown_future(shutdown.clone()),
                limits.shutdown_deadline,
            ))
        }
        None => None,
    };
    let host = ServiceHost {
        component: "agent",
        security,
        limits,
    };
    let routes = agent.routes(&host);
    Ok(tokio::spawn(async move {
        let grpc = host.serve(
            listener,
            routes,
            &warden_agent::Agent::SERVICES,
            shutdown_future(shutdown),
        );
        match hooks {
            Some(hooks) => {
                tokio::try_join!(async { grpc.await.map_err(anyhow::Error::from) }, async {
                    hooks.await.map_err(anyhow::Error::from)
                })?;
            }
            None => grpc.await?,
        }
        Ok(())
    }))
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    Ok(warden_rpc::bind(addr).await?)
}
