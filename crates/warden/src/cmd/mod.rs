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

/// Runs a command's async body on a multi-threaded runtime of its own.
pub(crate) fn block_on<T>(
    body: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(body)
}

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
