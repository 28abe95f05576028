//! `warden ingest-token create|list|revoke --tenant T`: the bearer tokens OpenTelemetry
//! senders without a Warden certificate use on storage's ingest listener. Talks to
//! storage over mTLS as an admin (platform-wide, or of that tenant).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::ingest_tokens_client::IngestTokensClient;
use warden_tls::Role;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The storage service.
    #[arg(long, global = true, default_value = "127.0.0.1:7444")]
    storage: String,
    /// Certificates directory, and the admin identity in it.
    #[arg(long, global = true, default_value = ".warden/pki")]
    pki: PathBuf,
    #[arg(long, global = true, default_value = "admin")]
    identity: String,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create a token for the tenant; it is printed once and never again.
    Create {
        #[arg(long)]
        tenant: String,
        /// What the token is for (e.g. "otel-collector prod-eu").
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The tenant's tokens (never the tokens themselves).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a token: refused from the next request on.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        token_id: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let channel = super::connect_as(&args.storage, &args.pki, &args.identity, Role::Storage)?;
    let mut tokens = IngestTokensClient::new(channel);
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Create {
            tenant,
            description,
        } => {
            let r = tokens
                .create_ingest_token(tm::CreateIngestTokenRequest {
                    tenant_id: tenant.clone(),
                    description,
                })
                .await
                .context("storage refused to create the token")?
                .into_inner();
            writeln!(out, "ingest token {} for tenant {tenant}:", r.token_id)?;
            writeln!(out, "{}", r.token)?;
            writeln!(
                out,
                "It is shown only now. Senders pass it as `Authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer <token>\")."
            )?;
        }
        Action::List { tenant } => {
            let r = tokens
                .list_ingest_tokens(tm::ListIngestTokensRequest {
                    tenant_id: tenant.clone(),
                })
                .await
                .context("storage refused to list the tokens")?
                .into_inner();
            if r.tokens.is_empty() {
                writeln!(out, "tenant {tenant} has no ingest tokens")?;
            }
            for t in r.tokens {
                let created = t.created_at.map(|c| c.seconds).unwrap_or_default();
                writeln!(
                    out,
                    "{}  {}  created {} by {}  {}",
                    t.token_id,
                    if t.revoked { "revoked" } else { "active " },
                    created,
                    t.created_by,
                    t.description
                )?;
            }
        }
        Action::Revoke { tenant, token_id } => {
            tokens
                .revoke_ingest_token(tm::RevokeIngestTokenRequest {
                    tenant_id: tenant.clone(),
                    token_id: token_id.clone(),
                })
                .await
                .context("storage refused to revoke the token")?;
            writeln!(out, "ingest token {token_id} of tenant {tenant} revoked")?;
        }
    }
    Ok(())
}
