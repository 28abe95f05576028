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
    /// Print what would be sent for one data type after redaction and budgets.
    Minimize(cmd::minimize::Args),
    /// Print text as the gateway would send it: secrets and personal data replaced by placeholders.
    Redact(cmd::redact::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Minimize(args) => cmd::minimize::run(args),
        Command::Redact(args) => cmd::redact::run(args),
    };
    exit_code(result)
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
