//! Listeners for peers that are not Warden services: TLS with storage's service
//! certificate, client certificates from Warden's CA verified when presented but not
//! required (an OpenTelemetry SDK may authenticate with a bearer token instead).
//!
//! tonic's own server insists on one TLS mode per listener and knows no HTTP/1.1 routes,
//! so the OTLP ports are served here: one accept loop for any tower service (gRPC routes
//! or an axum router), HTTP/1.1 and HTTP/2, the verified peer chain handed to the service
//! as [`PeerCertificates`], and graceful shutdown within a deadline.
//!
//! **Invariant:** a certificate that reaches the service as [`PeerCertificates`] chained
//! to Warden's CA; a certificate from any other CA fails the handshake.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::{HostError, Security};

/// The client certificate chain the TLS handshake verified (empty: none presented, or
/// plaintext under `--insecure-dev`). Set on every request of the connection.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

impl PeerCertificates {
    /// The leaf certificate, if the peer presented one.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.0.first()
    }
}

/// The rustls server side of `security`: our certificate, client certificates optional
/// but verified against our CA when presented; ALPN h2 and http/1.1. `None` under
/// `--insecure-dev`.
pub fn optional_client_auth(
    security: &Security,
) -> Result<Option<Arc<rustls::ServerConfig>>, HostError> {
    let files = match security {
        Security::Mtls(files) => files,
        Security::InsecureDev => return Ok(None),
    };
    let tls = |e: String| HostError::Tls(e);
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| tls(format!("cannot read {}: {e}", p.display())))
    };
    let pem_certs = |bytes: Vec<u8>| {
        rustls_pemfile::certs(&mut bytes.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(format!("bad certificate PEM: {e}")))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs(read(&files.ca)?)? {
        roots
            .add(ca)
            .map_err(|e| tls(format!("bad CA certificate: {e}")))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls(e.to_string()))?;
    let chain = pem_certs(read(&files.cert)?)?;
    let key = rustls_pemfile::private_key(&mut read(&files.key)?.as_slice())
        .map_err(|e| tls(format!("bad key PEM: {e}")))?
        .ok_or_else(|| tls(format!("no private key in {}", files.key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Serves `service` on `listener` (TLS per `tls`; plaintext only on loopback) until
/// `shutdown` resolves; then stops accepting and lets open requests finish within
/// `deadline`.
pub async fn serve<S, B>(
    component: &'static str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> Result<(), HostError>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if tls.is_none() {
        let local = listener
            .local_addr()
            .map_err(|e| HostError::Serve(e.to_string()))?;
        if !local.ip().is_loopback() {
            return Err(HostError::InsecureNotLoopback(local));
        }
        tracing::warn!(
            component,
            "--insecure-dev: serving PLAINTEXT with no TLS; never use this outside a laptop"
        );
    }
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(component, error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acceptor) => {
                    // A peer that never finishes its handshake does not hold a task forever.
                    let tls = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(component, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer = PeerCertificates(Arc::new(
                        tls.get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default(),
                    ));
                    let svc = hyper_service(service, peer);
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let svc = hyper_service(service, PeerCertificates::default());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(component, ?deadline, "shutdown deadline passed; dropping requests still open");
        }
    }
    tracing::info!(component, "stopped");
    Ok(())
}

/// `service` as hyper calls it: each request's body as a tonic body, the connection's
/// peer certificates in its extensions.
fn hyper_service<S>(
    service: S,
    peer: PeerCertificates,
) -> hyper_util::service::TowerToHyperService<
    tower::util::MapRequest<
        S,
        impl FnMut(http::Request<hyper::body::Incoming>) -> http::Request<tonic::body::Body> + Clone,
    >,
>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    let svc = tower::ServiceExt::map_request(
        service,
        move |req: http::Request<hyper::body::Incoming>| {
            let mut req = req.map(tonic::body::Body::new);
            req.extensions_mut().insert(peer.clone());
            req
        },
    );
    hyper_util::service::TowerToHyperService::new(svc)
}
