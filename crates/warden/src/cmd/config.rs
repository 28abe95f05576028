//! `warden config check FILE`: validate a routing config and explain every error with its line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check a routing config (config/providers.toml) without loading it anywhere.
    Check { file: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Check { file } => match warden_config::check(&file) {
            Ok(summary) => {
                writeln!(std::io::stdout().lock(), "{summary}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(diagnostics) => {
                writeln!(std::io::stderr().lock(), "{diagnostics}")?;
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
