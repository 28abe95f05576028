//! `warden`: one binary for every Warden service and tool.
//!
//! `main` parses arguments and calls one function per subcommand; each lives in `cmd/<name>.rs`.

mod cmd;

use std::process::ExitCode;

/// Many small, short-lived allocations across threads (requests, protobuf, JSON): glibc
/// malloc's arenas and consolidation were about a fifth of a loaded gateway's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Policy gateway for AI access to customer telemetry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run gateway, storage and agent in one process on embedded defaults (offline, no keys).
    Up(cmd::up::Args),
    /// Run one service from a config file.
    Serve(cmd::serve::Args),
    /// Export the audit log with proofs, and verify exports, tiles or a database offline.
    Audit(cmd::audit::Args),
    /// Create the dev CA and issue certificates from it.
    Certs(cmd::certs::Args),
    /// Check the routing config.
    Config(cmd::config::Args),
    /// Rotate the keys at rest, or shred a tenant, while the services run.
    Keys(cmd::keys::Args),
    /// Create, list and revoke a tenant's telemetry ingest tokens.
    IngestToken(cmd::ingest_token::Args),
    /// List, show, review and release what investigations proposed.
    Proposals(cmd::proposals::Args),
    /// Print what would be sent for one data type after redaction and budgets.
    Minimize(cmd::minimize::Args),
    /// Print text as the gateway would send it: secrets and personal data replaced by placeholders.
    Redact(cmd::redact::Args),
    /// One run's confined worker; started by the agent service, never by hand.
    #[command(hide = true)]
    Worker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => service(args, cmd::up::run),
        Command::Serve(args) => service(args, cmd::serve::run),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Certs(args) => cmd::certs::run(args).map(|()| ExitCode::SUCCESS),
        Command::Config(args) => cmd::config::run(args),
        Command::Keys(args) => cmd::keys::run(args).map(|()| ExitCode::SUCCESS),
        Command::IngestToken(args) => cmd::ingest_token::run(args).map(|()| ExitCode::SUCCESS),
        Command::Proposals(args) => cmd::proposals::run(args).map(|()| ExitCode::SUCCESS),
        Command::Minimize(args) => cmd::minimize::run(args),
        Command::Redact(args) => cmd::redact::run(args),
        // Confines itself first thing, while this process still has one thread.
        Command::Worker => return warden_agent::isolation::worker_main(),
    };
    exit_code(result)
}

/// Runs a long-lived service subcommand on a multi-threaded runtime, with logs on stderr.
fn service<A, F>(args: A, run: impl FnOnce(A) -> F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    init_tracing();
    cmd::block_on(run(args))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints a failed subcommand's error chain on stderr; errors never carry payload bytes.
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
