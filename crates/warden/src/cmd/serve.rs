//! `warden serve gateway|storage|agent --config FILE`: one service per process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use warden_config::{ServiceKind, ServiceSettings};
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

impl Service {
    fn kind(self) -> ServiceKind {
        match self {
            Service::Gateway => ServiceKind::Gateway,
            Service::Storage => ServiceKind::Storage,
            Service::Agent => ServiceKind::Agent,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    // The one schema `warden config check` explains: unknown keys, types, ranges, addresses
    // and the keys this service needs are all checked here, each error at its line.
    let file = args.config.display().to_string();
    let cfg = warden_config::parse_service_as(&file, &text, args.service.kind()).map_err(|d| {
        anyhow::anyhow!(
            "invalid config {file}\n{}",
            warden_config::render(&d).trim_end()
        )
    })?;
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
    let signal = warden_rpc::shutdown_signal();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (listener, addr) = services::bind(cfg.listen).await?;
    let task = match cfg.settings {
        ServiceSettings::Storage(st) => {
            let mut audit = services::AuditLogConfig::beside(&st.key_file);
            if let Some(s) = st.audit_reconcile_after_secs {
                audit.reconcile.reconcile_after = Duration::from_secs(s);
            }
            let ingest = match &st.ingest {
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
            if let Some(k) = st.audit_log_key_file {
                audit.key_file = k;
            }
            if let Some(o) = st.audit_log_origin {
                audit.origin = o;
            }
            audit.publish.file = st.audit_checkpoint_file;
            audit.publish.url = st.audit_checkpoint_url;
            services::start_storage_with(
                listener,
                security,
                limits,
                &st.database,
                &st.key_file,
                audit,
                ingest,
                shutdown_rx,
            )
            .await?
        }
        ServiceSettings::Gateway(gw) => {
            let (providers, _) = Providers::local_only();
            let gateway = services::gateway(&gw.storage, &security, providers)?;
            if let Some(path) = &gw.providers {
                gateway.replace_providers(services::load_providers(path, &gateway)?);
                services::spawn_providers_reload(
                    gateway.clone(),
                    path.clone(),
                    shutdown_rx.clone(),
                );
            }
            if let Some(addr) = gw.http_listen {
                let (http, addr) = services::bind(addr).await?;
                tracing::info!(%addr, "serving the OpenAI- and Anthropic-compatible HTTP front");
                // Ends with the shutdown signal, like the gRPC listener.
                drop(services::start_gateway_http(
                    http,
                    &security,
                    limits,
                    gateway.clone(),
                    shutdown_rx.clone(),
                )?);
            }
            services::start_gateway(listener, security.clone(), limits, gateway, shutdown_rx)?
        }
        ServiceSettings::Agent(agent) => {
            // Ranges were checked by the parser.
            let run_limits = services::run_limits(&agent);
            let webhooks = match &agent.webhooks {
                Some(w) => {
                    let (listener, addr) = services::bind(w.listen).await?;
                    tracing::info!(%addr, "receiving webhooks");
                    let reasons = w.cluster_event_reasons_or_default();
                    Some(services::WebhookListener {
                        listener,
                        options: warden_agent::webhooks::WebhookOptions {
                            max_body_bytes: w.max_body_bytes_or_default() as usize,
                            cluster_events: warden_triggers::EventFilter {
                                window_ms: w.cluster_event_window_secs_or_default() as i64 * 1000,
                                reasons: Some(reasons.into_iter().collect()),
                            },
                        },
                    })
                }
                None => None,
            };
            let isolation = services::isolation(agent.sandbox.as_ref(), &agent.gateway, &security)?;
            services::start_agent(
                listener,
                security,
                limits,
                run_limits,
                &agent.gateway,
                &agent.storage,
                services::AgentExtras {
                    webhooks,
                    anomaly: warden_agent::anomaly::AnomalyOptions {
                        interval: Duration::from_secs(
                            agent
                                .anomaly
                                .clone()
                                .unwrap_or_default()
                                .interval_secs_or_default(),
                        ),
                        ..Default::default()
                    },
                    isolation: Some(isolation),
                },
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
