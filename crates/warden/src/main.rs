//! `warden`: one binary for every Warden service and tool.
//!
//! `main` parses arguments and calls one function per subcommand; each lives in `cmd/<name>.rs`.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "warden", version, about = "Policy gateway for AI access to customer telemetry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
