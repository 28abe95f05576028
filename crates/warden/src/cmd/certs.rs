//! `warden certs`: create the dev CA and issue identities (role + name) from it.

use std::io::Write;
use std::path::PathBuf;

use warden_tls::{DevPki, Role};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create the CA and the built-in identities (reused if present).
    Init {
        #[arg(long, default_value = ".warden/pki")]
        dir: PathBuf,
    },
    /// Issue a certificate for ROLE/NAME, e.g. `--role reviewer --name alice`.
    Issue {
        #[arg(long, default_value = ".warden/pki")]
        dir: PathBuf,
        /// agent, admin, compliance, reviewer, storage or gateway.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Init { dir } => {
            let pki = DevPki::load_or_create(&dir)?;
            writeln!(
                out,
                "dev CA and built-in identities in {}",
                pki.dir().display()
            )?;
        }
        Action::Issue { dir, role, name } => {
            let role: Role = role.parse()?;
            let pki = DevPki::load_or_create(&dir)?;
            let files = pki.issue(role, &name)?;
            writeln!(
                out,
                "issued {role}/{name}: {} and {}",
                files.cert.display(),
                files.key.display()
            )?;
        }
    }
    Ok(())
}
