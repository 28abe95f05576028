//! `warden config check FILE`: validate any config file in `config/` (provider routing,
//! redaction rules, agent/gateway/storage service configs) and explain every error with its
//! line; the kind of file is worked out by `warden_config::classify`.

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
    /// Check a config file without loading it anywhere: provider routing (providers.toml),
    /// redaction rules, or an agent, gateway or storage service config.
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
