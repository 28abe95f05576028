//! `warden`: one binary for every Warden service and tool.
//!
//! `main` parses arguments and calls one function per subcommand; each lives in `cmd/<name>.rs`.

mod cmd;

use std::process::ExitCode;

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
    /// Issue certificates from the dev CA.
    Certs(cmd::certs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Up(args) => run_async(cmd::up::run(args)),
        Command::Serve(args) => run_async(cmd::serve::run(args)),
        Command::Certs(args) => cmd::certs::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
