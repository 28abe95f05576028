//! `warden up`: gateway, storage and agent in one process, each on its own port, on
//! embedded defaults (SQLite, a dev CA, the offline `local` provider). Nothing here
//! needs a key or a network; everything is created on first run and reused after.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use warden_gateway::Providers;
use warden_rpc::{Limits, Security};
use warden_tls::DevPki;

use warden::services;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the database and certificates live.
    #[arg(long, default_value = ".warden")]
    data_dir: PathBuf,
    /// The key-encryption key file (created on first run, 0600), kept apart from the data.
    /// Default: `<data dir>-keys/kek`, beside the data directory.
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7443")]
    gateway: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7444")]
    storage: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7445")]
    agent: SocketAddr,
    /// Storage's OTLP/gRPC ingest port (telemetry in, like an OpenTelemetry collector).
    #[arg(long, default_value = "127.0.0.1:4317")]
    otlp_grpc: SocketAddr,
    /// Storage's OTLP/HTTP ingest port.
    #[arg(long, default_value = "127.0.0.1:4318")]
    otlp_http: SocketAddr,
    /// The agent service's webhook listener (Alertmanager, Kubernetes events, GitHub, Argo CD).
    #[arg(long, default_value = "127.0.0.1:7446")]
    webhooks: SocketAddr,
    /// The gateway's OpenAI- and Anthropic-compatible HTTP front.
    #[arg(long, default_value = "127.0.0.1:7447")]
    http: SocketAddr,
    /// Prometheus metrics endpoint (/metrics).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: SocketAddr,
    /// Largest request message any service accepts, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Serve plaintext gRPC with no client authentication. For local experiments only.
    #[arg(long)]
    insecure_dev: bool,
    /// A routing config (e.g. config/providers.toml) to use real providers; their API keys
    /// come from the environment variables it names. Default: only the offline `local` provider.
    #[arg(long)]
    providers: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let pki_dir = args.data_dir.join("pki");
    let pki = if args.insecure_dev {
        None
    } else {
        Some(DevPki::load_or_create(&pki_dir)?)
    };
    let security = |name: &str| match &pki {
        Some(p) => Security::Mtls(p.files(name)),
        None => Security::InsecureDev,
    };
    let limits = Limits {
        max_message_bytes: args.max_message_bytes,
        ..Limits::default()
    };
    warden_rpc::install_prometheus(args.metrics)?;

    let signal = warden_rpc::shutdown_signal();
    // Front services stop first, so their in-flight calls can still reach storage.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (storage_stop_tx, storage_stop_rx) = tokio::sync::watch::channel(false);
    let (storage_l, storage_addr) = services::bind(args.storage).await?;
    let (gateway_l, gateway_addr) = services::bind(args.gateway).await?;
    let (agent_l, agent_addr) = services::bind(args.agent).await?;
    let (webhooks_l, webhooks_addr) = services::bind(args.webhooks).await?;
    let (http_l, http_addr) = services::bind(args.http).await?;
    let (otlp_grpc, otlp_grpc_addr) = services::bind(args.otlp_grpc).await?;
    let (otlp_http, otlp_http_addr) = services::bind(args.otlp_http).await?;
    let db_path = args.data_dir.join("warden.db");
    let db_url = format!("sqlite://{}", db_path.display());
    // Each signed audit checkpoint is also written to <data dir>/audit-checkpoint, for
    // whoever keeps them; the signing key sits beside the key-encryption key.
    let mut audit = services::AuditLogConfig::beside(&key_file(&args));
    audit.publish.file = Some(args.data_dir.join("audit-checkpoint"));
    let storage = services::start_storage_with(
        storage_l,
        security("storage"),
        limits,
        &db_url,
        &key_file(&args),
        audit,
        Some(services::IngestListeners {
            grpc: otlp_grpc,
            http: otlp_http,
            options: warden_storage::IngestOptions::default(),
        }),
        storage_stop_rx,
    )
    .await?;
    let (providers, _local) = Providers::local_only();
    let gateway = services::gateway(&storage_addr.to_string(), &security("gateway"), providers)?;
    if let Some(path) = &args.providers {
        gateway.replace_providers(services::load_providers(path, &gateway)?);
        services::spawn_providers_reload(gateway.clone(), path.clone(), shutdown_rx.clone());
    }
    let gateway_http = services::start_gateway_http(
        http_l,
        &security("gateway"),
        limits,
        gateway.clone(),
        shutdown_rx.clone(),
    )?;
    let gateway = services::start_gateway(
        gateway_l,
        security("gateway"),
        limits,
        gateway,
        shutdown_rx.clone(),
    )?;
    let agent = services::start_agent(
        agent_l,
        security("agent-service"),
        limits,
        warden_agent::RunLimits::default(),
        &gateway_addr.to_string(),
        &storage_addr.to_string(),
        services::AgentExtras {
            webhooks: Some(services::WebhookListener {
                listener: webhooks_l,
                options: Default::default(),
            }),
            anomaly: Default::default(),
            isolation: None,
        },
        shutdown_rx,
    )?;
    if let Some(p) = &pki {
        seed_demo(&args.data_dir, p, otlp_grpc_addr).await;
    }
    banner(
        &args,
        &pki_dir,
        (gateway_addr, http_addr),
        storage_addr,
        (agent_addr, webhooks_addr),
        (otlp_grpc_addr, otlp_http_addr),
    )?;

    signal.await;
    let _ = shutdown_tx.send(true);
    for (name, task) in [
        ("gateway-http", gateway_http),
        ("gateway", gateway),
        ("agent", agent),
        ("storage", storage),
    ] {
        if name == "storage" {
            let _ = storage_stop_tx.send(true);
        }
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(service = name, error = %e, "service failed"),
            Err(e) => tracing::error!(service = name, error = %e, "service task panicked"),
        }
    }
    Ok(())
}

/// Loads the demo incident for tenant `acme` on first run, through the ingest listener
/// as the `demo-ingest` identity (scoped to acme), exactly as a collector would send it,
/// so the tour's investigation reads real-looking telemetry.
async fn seed_demo(data_dir: &std::path::Path, pki: &DevPki, otlp_grpc: SocketAddr) {
    let marker = data_dir.join("demo-loaded");
    if marker.exists() {
        return;
    }
    let files = match pki.issue(
        warden_tls::Role::Ingest,
        "demo-ingest",
        &["acme".to_owned()],
        true,
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not issue the demo ingest identity");
            return;
        }
    };
    let channel = match warden_rpc::connect(
        &otlp_grpc.to_string(),
        &Security::Mtls(files),
        warden_tls::Role::Storage,
        std::time::Duration::from_secs(3),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not reach the ingest listener for the demo data");
            return;
        }
    };
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    match warden::demo::seed(channel, now_ns).await {
        Ok(_) => {
            let _ = std::fs::write(&marker, b"");
            tracing::info!("loaded the demo incident for tenant acme (checkout 2.4.1)");
        }
        Err(s) => {
            tracing::warn!(code = ?s.code(), message = s.message(), "could not load the demo incident")
        }
    }
}

/// The key-encryption key file: `--key-file`, or `<data dir>-keys/kek` beside the data
/// directory (never inside it).
fn key_file(args: &Args) -> std::path::PathBuf {
    args.key_file.clone().unwrap_or_else(|| {
        let mut name = args
            .data_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| ".warden".into());
        name.push("-keys");
        args.data_dir.with_file_name(name).join("kek")
    })
}

fn banner(
    args: &Args,
    pki: &std::path::Path,
    (gateway, http): (SocketAddr, SocketAddr),
    storage: SocketAddr,
    (agent, webhooks): (SocketAddr, SocketAddr),
    (otlp_grpc, otlp_http): (SocketAddr, SocketAddr),
) -> anyhow::Result<()> {
    // Services' certificates name their service, not the address: grpcurl checks that
    // name with -servername, as Warden's own clients do.
    let tls = |name: &str| {
        if args.insecure_dev {
            "-plaintext".to_owned()
        } else {
            format!(
                "-cacert {p}/ca.pem -cert {p}/{name}.pem -key {p}/{name}-key.pem -servername gateway.warden.internal",
                p = pki.display()
            )
        }
    };
    let scheme = if args.insecure_dev { "http" } else { "https" };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Warden is up. Offline: the built-in `local` provider answers; no model is called, no key is needed."
    )?;
    writeln!(
        out,
        "  gateway  {scheme}://{gateway}  (warden.gateway.v1.Gateway, Admin, Audit, Releases)"
    )?;
    writeln!(
        out,
        "  HTTP API {scheme}://{http}/v1  (OpenAI /chat/completions, Anthropic /messages, /models; client certificate, x-warden-data-type)"
    )?;
    writeln!(out, "  storage  {scheme}://{storage}")?;
    writeln!(out, "  agent    {scheme}://{agent}")?;
    writeln!(
        out,
        "  webhooks {scheme}://{webhooks}/webhooks/{{alertmanager,kubernetes,argocd,github/TENANT}}"
    )?;
    writeln!(
        out,
        "  OTLP in  {scheme}://{otlp_grpc} (gRPC), {scheme}://{otlp_http} (HTTP /v1/logs, /v1/metrics, /v1/traces)"
    )?;
    let sandbox = warden_agent::isolation::probe();
    writeln!(
        out,
        "  runs     each in a confined `warden worker`: Landlock ABI {}, seccomp {}, own network namespace {}",
        sandbox.landlock_abi,
        if sandbox.seccomp == warden_agent::isolation::SeccompMode::Filter {
            "on"
        } else {
            "off"
        },
        if sandbox.network_namespace {
            "yes"
        } else {
            "no (unprivileged)"
        }
    )?;
    writeln!(out, "  metrics  http://{}/metrics", args.metrics)?;
    if !args.insecure_dev {
        writeln!(
            out,
            "  certificates in {} (platform-wide callers: admin, agent, compliance, reviewer; `warden certs issue --role R --name N --tenant T` scopes one to tenants; telemetry senders: `--role ingest` with one --tenant, or `warden ingest-token create --tenant T`)",
            pki.display()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Enable AI for tenant acme (admin identity):")?;
    writeln!(
        out,
        "  grpcurl {} -d '{{\"settings\":{{\"tenant_id\":\"acme\",\"enabled\":true,\"allowed_data_types\":[\"DATA_TYPE_LOGS\"],\"allowed_providers\":[\"local\"]}}}}' {gateway} warden.gateway.v1.Admin/SetTenantSettings",
        tls("admin")
    )?;
    writeln!(out, "Ask for a completion (agent identity):")?;
    writeln!(
        out,
        "  grpcurl {} -d '{{\"tenant_id\":\"acme\",\"purpose\":\"PURPOSE_ALERT\",\"messages\":[{{\"role\":\"ROLE_USER\",\"parts\":[{{\"data_type\":\"DATA_TYPE_LOGS\",\"text\":\"checkout ERROR payment timeout\"}}]}}]}}' {gateway} warden.gateway.v1.Gateway/Complete",
        tls("agent")
    )?;
    writeln!(out, "Stop with Ctrl-C.")?;
    Ok(())
}
