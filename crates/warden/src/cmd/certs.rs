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
    /// Issue a certificate for ROLE/NAME, e.g. `--role reviewer --name alice --tenant acme`.
    Issue {
        #[arg(long, default_value = ".warden/pki")]
        dir: PathBuf,
        /// Callers: agent, admin, compliance, reviewer, ingest (exactly one --tenant).
        /// Services: gateway, storage, agent-service.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        /// Scope a caller to this tenant (repeat for several). Without it the identity is
        /// platform-wide.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Replace an existing identity of the same name.
        #[arg(long)]
        force: bool,
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
        Action::Issue {
            dir,
            role,
            name,
            tenants,
            force,
        } => {
            let role: Role = role.parse()?;
            let pki = DevPki::load_or_create(&dir)?;
            let files = pki.issue(role, &name, &tenants, force)?;
            let scope = warden_tls::Scope::from_tenants(tenants);
            writeln!(
                out,
                "issued {role}/{name} ({scope}): {} and {}",
                files.cert.display(),
                files.key.display()
            )?;
        }
    }
    Ok(())
}
