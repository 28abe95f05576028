//! `warden-bench-setup`: prepares a running gateway and storage for load from outside:
//! enables a tenant for logs through the openai provider (Admin API, as the dev PKI's
//! `admin`) and creates an API key for it (storage's ApiKeys API), printed on stdout, so
//! a plain HTTP load generator can call the OpenAI-compatible front without a client
//! certificate. With `--bodies DIR` it also writes the request bodies every target gets
//! (`unary.json`, `stream.json`: about `--payload-bytes` of `sample_logs`, credentials
//! included), and with `--bodies-only` does nothing else.

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool whose output is its report"
)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_rpc::Security;
use warden_tls::{DevPki, Role};

#[derive(Debug, Parser)]
#[command(about = "Enable a tenant and print an API key for it, for load tests")]
struct Args {
    /// The dev PKI directory (`warden certs init` / `warden up` made it).
    #[arg(long)]
    pki: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7443")]
    gateway: String,
    #[arg(long, default_value = "127.0.0.1:7444")]
    storage: String,
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// The provider the tenant may use.
    #[arg(long, default_value = "openai")]
    provider: String,
    /// Write the load's request bodies into this directory.
    #[arg(long)]
    bodies: Option<PathBuf>,
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
    /// The model the bodies name.
    #[arg(long, default_value = "bench-model")]
    model: String,
    /// Only write the bodies.
    #[arg(long, requires = "bodies")]
    bodies_only: bool,
}

fn write_bodies(dir: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let logs = warden_benches::sample_logs(args.payload_bytes);
    for (name, stream) in [("unary.json", false), ("stream.json", true)] {
        let body = serde_json::json!({"model": args.model, "max_tokens": 1024, "stream": stream,
            "messages": [{"role": "user", "content": logs}]});
        let path = dir.join(name);
        std::fs::write(&path, body.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.bodies {
        write_bodies(dir, &args)?;
        if args.bodies_only {
            return Ok(());
        }
    }
    let pki = DevPki::load_or_create(&args.pki)?;
    let admin = Security::Mtls(pki.files("admin"));
    let timeout = Duration::from_secs(5);
    let gateway = warden_rpc::connect(&args.gateway, &admin, Role::Gateway, timeout)?;
    gw::admin_client::AdminClient::new(gateway)
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(pb::TenantSettings {
                tenant_id: args.tenant.clone(),
                enabled: true,
                allowed_data_types: vec![pb::DataType::Logs as i32],
                allowed_providers: vec![args.provider.clone()],
                ..Default::default()
            }),
            expected_version: 0,
        })
        .await
        .context("enabling the tenant through the gateway's Admin API")?;
    let storage = warden_rpc::connect(&args.storage, &admin, Role::Storage, timeout)?;
    let created = st::api_keys_client::ApiKeysClient::new(storage)
        .create_api_key(st::CreateApiKeyRequest {
            tenant_id: args.tenant.clone(),
            identity: "warden-bench".into(),
            default_data_type: pb::DataType::Logs as i32,
            description: "load test".into(),
        })
        .await
        .context("creating an API key in storage")?
        .into_inner();
    println!("{}", created.key);
    Ok(())
}
