//! `warden serve gateway|storage|agent --config FILE`: one service per process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use warden_gateway::Providers;
use warden_rpc::{Limits, Security};
use warden_tls::TlsFiles;

use warden::services;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Service {
    Gateway,
    Storage,
    Agent,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    service: Service,
    /// The service's TOML config (see config/*.toml).
    #[arg(long)]
    config: PathBuf,
    /// Serve plaintext gRPC with no client authentication. For local experiments only.
    #[arg(long)]
    insecure_dev: bool,
}

/// A service's config file. Unknown keys are errors, so a typo never silently falls back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeConfig {
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    max_message_bytes: Option<usize>,
    shutdown_deadline_secs: Option<u64>,
    tls: Option<TlsConfig>,
    /// storage: database URL (sqlite://PATH or postgres://...).
    database: Option<String>,
    /// storage: the key-encryption key file, outside the data directory (created on
    /// first run only, 0600; refused if others can read it).
    key_file: Option<PathBuf>,
    /// storage: close audit intents left without an outcome for longer than this as
    /// `unknown` (default 3600; must exceed the longest call a gateway runs).
    audit_reconcile_after_secs: Option<u64>,
    /// storage: receive telemetry (OTLP/gRPC and OTLP/HTTP) on ports of its own.
    ingest: Option<IngestConfig>,
    /// storage: the audit log's checkpoint signing key (default: `audit-log.key` beside
    /// `key_file`; created on first run for an empty log only, 0600).
    audit_log_key_file: Option<PathBuf>,
    /// storage: the audit log's origin line in its checkpoints (default `warden.local/audit`).
    audit_log_origin: Option<String>,
    /// storage: replace this file atomically with each new signed checkpoint.
    audit_checkpoint_file: Option<PathBuf>,
    /// storage: POST each new signed checkpoint to this URL (a witness or the customer).
    audit_checkpoint_url: Option<String>,
    /// gateway, agent: the storage service's address.
    storage: Option<String>,
    /// agent: the gateway's address.
    gateway: Option<String>,
    /// agent: how far before a trigger's time tool queries look by default (default 3600).
    lookback_secs: Option<u64>,
    /// agent: the most bytes one tool result may take (default 16384; never more than an
    /// eighth of the model's context).
    tool_result_max_bytes: Option<usize>,
    /// gateway: the routing config (config/providers.toml). Without it, only the offline `local` provider.
    providers: Option<PathBuf>,
}

/// storage's `[ingest]` table: the OTLP ports and their limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestConfig {
    /// OTLP/gRPC (and warden.telemetry.v1.Ingest), conventionally port 4317.
    grpc_listen: SocketAddr,
    /// OTLP/HTTP, conventionally port 4318.
    http_listen: SocketAddr,
    /// Largest request after decompression (default 4 MiB).
    max_request_bytes: Option<usize>,
    /// Requests handled at once; more are told to retry (default 64).
    max_in_flight: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let cfg: ServeConfig = toml::from_str(&text)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    let security = match (&cfg.tls, args.insecure_dev) {
        (_, true) => Security::InsecureDev,
        (Some(t), false) => Security::Mtls(TlsFiles {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        }),
        (None, false) => bail!(
            "{}: [tls] is required (or pass --insecure-dev for a plaintext experiment)",
            args.config.display()
        ),
    };
    let mut limits = Limits::default();
    if let Some(m) = cfg.max_message_bytes {
        limits.max_message_bytes = m;
    }
    if let Some(s) = cfg.shutdown_deadline_secs {
        limits.shutdown_deadline = Duration::from_secs(s);
    }
    if let Some(m) = cfg.metrics_listen {
        warden_rpc::install_prometheus(m)?;
    }
    let need = |v: &Option<String>, key: &str| {
        v.clone().with_context(|| {
            format!(
                "{}: `{key}` is required for this service",
                args.config.display()
            )
        })
    };
    let signal = warden_rpc::shutdown_signal();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (listener, addr) = services::bind(cfg.listen).await?;
    let task = match args.service {
        Service::Storage => {
            let db = need(&cfg.database, "database")?;
            let key = cfg
                .key_file
                .clone()
                .context("`key_file` is required for storage")?;
            let mut audit = services::AuditLogConfig::beside(&key);
            if let Some(s) = cfg.audit_reconcile_after_secs {
                audit.reconcile.reconcile_after = Duration::from_secs(s);
            }
            let ingest = match &cfg.ingest {
                Some(i) => {
                    let mut options = warden_storage::IngestOptions {
                        shutdown_deadline: limits.shutdown_deadline,
                        ..Default::default()
                    };
                    if let Some(m) = i.max_request_bytes {
                        options.max_request_bytes = m;
                    }
                    if let Some(m) = i.max_in_flight {
                        options.max_in_flight = m;
                    }
                    let (grpc, grpc_addr) = services::bind(i.grpc_listen).await?;
                    let (http, http_addr) = services::bind(i.http_listen).await?;
                    tracing::info!(%grpc_addr, %http_addr, "receiving OTLP telemetry");
                    Some(services::IngestListeners {
                        grpc,
                        http,
                        options,
                    })
                }
                None => None,
            };
            if let Some(k) = &cfg.audit_log_key_file {
                audit.key_file = k.clone();
            }
            if let Some(o) = &cfg.audit_log_origin {
                audit.origin = o.clone();
            }
            audit.publish.file = cfg.audit_checkpoint_file.clone();
            audit.publish.url = cfg.audit_checkpoint_url.clone();
            services::start_storage_with(
                listener,
                security,
                limits,
                &db,
                &key,
                audit,
                ingest,
                shutdown_rx,
            )
            .await?
        }
        Service::Gateway => {
            let (providers, _) = Providers::local_only();
            let gateway = services::gateway(&need(&cfg.storage, "storage")?, &security, providers)?;
            if let Some(path) = &cfg.providers {
                gateway.replace_providers(services::load_providers(path, &gateway)?);
                services::spawn_providers_reload(
                    gateway.clone(),
                    path.clone(),
                    shutdown_rx.clone(),
                );
            }
            services::start_gateway(listener, security.clone(), limits, gateway, shutdown_rx)?
        }
        Service::Agent => {
            let mut run_limits = warden_agent::RunLimits::default();
            if let Some(s) = cfg.lookback_secs {
                anyhow::ensure!(
                    (60..=31 * 24 * 3600).contains(&s),
                    "{}: lookback_secs must be between 60 and 2678400",
                    args.config.display()
                );
                run_limits.lookback = Duration::from_secs(s);
            }
            if let Some(b) = cfg.tool_result_max_bytes {
                anyhow::ensure!(
                    (1024..=1024 * 1024).contains(&b),
                    "{}: tool_result_max_bytes must be between 1024 and 1048576",
                    args.config.display()
                );
                run_limits.max_tool_result_bytes = b;
            }
            services::start_agent(
                listener,
                security,
                limits,
                run_limits,
                &need(&cfg.gateway, "gateway")?,
                &need(&cfg.storage, "storage")?,
                shutdown_rx,
            )?
        }
    };
    tracing::info!(service = ?args.service, %addr, "serving");
    signal.await;
    let _ = shutdown_tx.send(true);
    task.await.context("service task failed")??;
    Ok(())
}
