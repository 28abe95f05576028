//! `warden audit export` (through the gateway, as compliance; the export is audited) and
//! `warden audit verify` (offline: no server, only the log key).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use warden_merkle::VerifierKey;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::audit_client::AuditClient;
use warden_tls::Role;

use warden::audit_verify;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Write a tenant's records, each with its tlog-proof and the signed checkpoint, or
    /// (--tiles, platform-wide compliance only) the whole log in the tlog-tiles layout.
    Export(ExportArgs),
    /// Check an export file, a tiles directory or a live database, with the log key only.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    #[arg(long, required_unless_present = "tiles")]
    tenant: Option<String>,
    /// From this time (RFC 3339, or milliseconds since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// Up to this time (exclusive).
    #[arg(long)]
    until: Option<String>,
    /// The file to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the whole log as tlog-tiles files into this directory instead.
    #[arg(long, conflicts_with = "tenant")]
    tiles: Option<PathBuf>,
    /// The gateway.
    #[arg(long, default_value = "127.0.0.1:7443")]
    gateway: String,
    /// Certificates directory, and the compliance identity in it.
    #[arg(long, default_value = ".warden/pki")]
    pki: PathBuf,
    #[arg(long, default_value = "compliance")]
    identity: String,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// An export file written by `warden audit export`.
    #[arg(required_unless_present_any = ["tiles", "database"])]
    file: Option<PathBuf>,
    /// A tlog-tiles directory written by `warden audit export --tiles`.
    #[arg(long, conflicts_with = "file")]
    tiles: Option<PathBuf>,
    /// A live database (sqlite://PATH or postgres://...), read only.
    #[arg(long, conflicts_with_all = ["file", "tiles"])]
    database: Option<String>,
    /// The log's verifier key (C2SP vkey `name+id+key`, or a file holding it).
    #[arg(long, required_unless_present = "key_file")]
    verifier_key: Option<String>,
    /// Or the log's signing key file (its public half is used).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The log's origin (tiles and database; an export names its own).
    #[arg(long, default_value = warden::services::DEFAULT_AUDIT_ORIGIN)]
    origin: String,
    /// Signed checkpoints kept elsewhere (published ones) that the database must extend.
    #[arg(long)]
    checkpoint: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    match args.action {
        Action::Export(a) => {
            super::block_on(export(a))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Action::Verify(a) => verify(a),
    }
}

fn timestamp(s: &str) -> anyhow::Result<prost_types::Timestamp> {
    let ms = match s.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{s:?} is neither RFC 3339 nor milliseconds"))?;
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
    };
    Ok(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

async fn export(a: ExportArgs) -> anyhow::Result<()> {
    let channel = super::connect_as(&a.gateway, &a.pki, &a.identity, Role::Gateway)?;
    let mut client = AuditClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    if let Some(dir) = &a.tiles {
        let mut stream = client
            .export_audit_tiles(gw::ExportAuditTilesRequest {})
            .await
            .context("the gateway refused the tiles export")?
            .into_inner();
        let mut n = 0u64;
        while let Some(f) = stream.message().await.context("the tiles export failed")? {
            let rel = std::path::Path::new(&f.path);
            anyhow::ensure!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "the gateway sent an unsafe path {:?}",
                f.path
            );
            let path = dir.join(rel);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(&path, &f.data)
                .with_context(|| format!("cannot write {}", path.display()))?;
            n += 1;
        }
        eprintln!("wrote {n} files to {}", dir.display());
        return Ok(());
    }
    let tenant = a.tenant.clone().unwrap_or_default();
    let mut stream = client
        .export_audit_records(gw::ExportAuditRecordsRequest {
            tenant_id: tenant,
            since: a.since.as_deref().map(timestamp).transpose()?,
            until: a.until.as_deref().map(timestamp).transpose()?,
            format: gw::ExportFormat::Provable as i32,
        })
        .await
        .context("the gateway refused the export")?
        .into_inner();
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = stream.message().await.context("the export failed")? {
        out.write_all(&chunk.data)?;
    }
    out.flush()?;
    Ok(())
}

fn verifier(a: &VerifyArgs) -> anyhow::Result<VerifierKey> {
    if let Some(k) = &a.verifier_key {
        let text = match std::fs::read_to_string(k) {
            Ok(t) => t,
            Err(_) => k.clone(),
        };
        return VerifierKey::parse(text.trim()).context("not a verifier key (name+id+key)");
    }
    let path = a
        .key_file
        .as_ref()
        .context("--verifier-key or --key-file is required")?;
    Ok(warden_storage::log_key::read_key(path)?.verifier())
}

/// A bar over records, entries or checkpoints.
fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    styled_bar(len, what, "{pos}/{len} [{bar:30}] {per_sec} {eta}")
}

/// A bar over bytes: an export is checked piece by piece as it is read.
fn bytes_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    styled_bar(
        len,
        what,
        "{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {eta}",
    )
}

fn styled_bar(len: u64, what: &str, counts: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    // `what` is ours, never braces: it cannot be read as a template key.
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(&format!("verifying {what}: {counts}"))
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn verify(a: VerifyArgs) -> anyhow::Result<std::process::ExitCode> {
    let key = verifier(&a)?;
    let mut out = std::io::stdout().lock();
    let failed = |out: &mut dyn Write, what: String| -> anyhow::Result<std::process::ExitCode> {
        writeln!(out, "FAILED: {what}")?;
        Ok(std::process::ExitCode::FAILURE)
    };
    if let Some(file) = &a.file {
        let input =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let size = input.metadata().map_or(0, |m| m.len());
        let b = bytes_bar(size, "the export");
        let r = audit_verify::verify_export_from(input, &key, &|n| b.inc(n));
        b.finish_and_clear();
        return match r {
            Ok(r) => {
                writeln!(
                    out,
                    "ok: {} record(s) of tenant {} are in the log of {} records signed by {}{}",
                    r.records,
                    r.tenant_id,
                    r.tree_size,
                    key,
                    if r.shredded > 0 {
                        format!(" ({} shredded: proven, content gone)", r.shredded)
                    } else {
                        String::new()
                    }
                )?;
                Ok(std::process::ExitCode::SUCCESS)
            }
            Err(bad) => failed(&mut out, bad.to_string()),
        };
    }
    if let Some(dir) = &a.tiles {
        let b = bar(0, "entries");
        let r = audit_verify::verify_tiles(dir, &a.origin, &key, &|n| b.inc(n));
        b.finish_and_clear();
        return match r {
            Ok(r) => {
                writeln!(
                    out,
                    "ok: the tiles hold {} records under the signed checkpoint",
                    r.tree_size
                )?;
                Ok(std::process::ExitCode::SUCCESS)
            }
            Err(bad) => failed(&mut out, bad.to_string()),
        };
    }
    let url = a.database.clone().unwrap_or_default();
    let kept = a
        .checkpoint
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = super::block_on(async {
        let db = warden_storage::Db::connect(&url)
            .await
            .context("cannot open the database")?;
        let b = bar(0, "records");
        let r = warden_storage::verify_log(&db, &key, &a.origin, &kept, &|done, total| {
            b.set_length(total);
            b.set_position(done);
        })
        .await;
        b.finish_and_clear();
        anyhow::Ok(r?)
    })?;
    match report.first_bad {
        None => {
            writeln!(
                out,
                "ok: {} record(s) and {} checkpoint(s) verify with {}",
                report.records, report.checkpoints, key
            )?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some((seq, what)) => failed(&mut out, format!("record {seq}: {what}")),
    }
}
