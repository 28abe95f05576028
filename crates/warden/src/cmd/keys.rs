//! `warden keys`: rotate the keys at rest and shred a tenant while the services run.
//! Talks to storage over mTLS as a platform-wide admin; storage audits every action.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::keys_client::KeysClient;
use warden_tls::Role;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The storage service.
    #[arg(long, global = true, default_value = "127.0.0.1:7444")]
    storage: String,
    /// Certificates directory, and the platform-wide admin identity in it.
    #[arg(long, global = true, default_value = ".warden/pki")]
    pki: PathBuf,
    #[arg(long, global = true, default_value = "admin")]
    identity: String,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Without --tenant: append a new key-encryption key to the key file, then have
    /// storage re-wrap every data key under it. With --tenant: give that tenant a new
    /// data key and re-encrypt its data under it, showing progress.
    Rotate {
        /// The key file storage uses (for a new key-encryption key).
        #[arg(long, conflicts_with = "tenant")]
        key_file: Option<PathBuf>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Destroy a tenant's data keys and settings: its sealed data can never be read again.
    Shred {
        #[arg(long)]
        tenant: String,
        /// Required: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let channel = super::connect_as(&args.storage, &args.pki, &args.identity, Role::Storage)?;
    let mut keys = KeysClient::new(channel);
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Rotate {
            key_file: Some(path),
            tenant: None,
        } => {
            let kek = warden_keys::FileKeyProvider::rotate(&path).with_context(|| {
                format!("cannot add a key-encryption key to {}", path.display())
            })?;
            writeln!(out, "added key-encryption key {kek} to {}", path.display())?;
            let r = keys
                .rotate_key_encryption_key(st::RotateKeyEncryptionKeyRequest {})
                .await
                .context("storage could not re-wrap the data keys")?
                .into_inner();
            writeln!(
                out,
                "{} data key(s) re-wrapped under {}",
                r.data_keys_rewrapped, r.kek_id
            )?;
        }
        Action::Rotate {
            tenant: Some(tenant),
            ..
        } => {
            let mut stream = keys
                .rotate_tenant_key(st::RotateTenantKeyRequest {
                    tenant_id: tenant.clone(),
                })
                .await
                .context("storage refused the rotation")?
                .into_inner();
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "re-encrypting {msg}: {pos}/{len} values [{bar:30}] {eta}",
                )?
                .progress_chars("=> "),
            );
            bar.set_message(tenant.clone());
            while let Some(p) = stream.message().await.transpose() {
                let p = p.context("the rotation failed; the old data key is kept")?;
                bar.set_length(p.total);
                bar.set_position(p.done);
                if p.finished {
                    bar.finish_and_clear();
                    writeln!(
                        out,
                        "tenant {tenant}: {} value(s) re-encrypted under data key {}; the old key is destroyed",
                        p.done, p.new_key_id
                    )?;
                    return Ok(());
                }
            }
            anyhow::bail!("the rotation stream ended before it finished");
        }
        Action::Rotate { .. } => {
            anyhow::bail!(
                "say --key-file FILE (a new key-encryption key) or --tenant T (a new data key)"
            )
        }
        Action::Shred { tenant, yes } => {
            anyhow::ensure!(
                yes,
                "shredding destroys tenant {tenant}'s data for good; pass --yes"
            );
            let r = keys
                .shred_tenant(st::ShredTenantRequest {
                    tenant_id: tenant.clone(),
                })
                .await
                .context("storage refused to shred")?
                .into_inner();
            writeln!(
                out,
                "tenant {tenant}: {} data key(s) destroyed; its sealed data can no longer be read",
                r.data_keys_destroyed
            )?;
        }
    }
    Ok(())
}
