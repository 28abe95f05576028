//! One module per subcommand.

pub mod audit;
pub mod certs;
pub mod config;
pub mod ingest_token;
pub mod keys;
pub mod minimize;
pub mod proposals;
pub mod redact;
pub mod serve;
pub mod up;

/// A channel to the Warden service `role` at `addr`, as identity `identity` from the
/// certificates directory `pki` (`ca.pem`, `<identity>.pem`, `<identity>-key.pem`).
pub(crate) fn connect_as(
    addr: &str,
    pki: &std::path::Path,
    identity: &str,
    role: warden_tls::Role,
) -> anyhow::Result<tonic::transport::Channel> {
    let files = warden_tls::TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{identity}.pem")),
        key: pki.join(format!("{identity}-key.pem")),
    };
    Ok(warden_rpc::connect(
        addr,
        &warden_rpc::Security::Mtls(files),
        role,
        std::time::Duration::from_secs(5),
    )?)
}
