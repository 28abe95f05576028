//! Listeners, servers and clients.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};

use crate::{LimitLayer, Limits, MetricsLayer, Security};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error("server failed: {0}")]
    Serve(String),
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
    #[error("reflection set-up failed: {0}")]
    Reflection(String),
    #[error("metrics exporter failed: {0}")]
    Metrics(String),
    #[error(
        "--insecure-dev serves plaintext with no authentication, so it listens on loopback only; {0} is not a loopback address"
    )]
    InsecureNotLoopback(SocketAddr),
}

/// Binds a TCP listener (use port 0 for any free port) and returns it with its address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HostError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HostError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HostError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Health that follows a part of the service: while `healthy` holds true its services
/// report SERVING; once it turns false (or its sender is gone) they and the overall ""
/// status turn NOT_SERVING for good, so a load balancer takes the replica out and an
/// orchestrator restarts it. What it guards does not recover by itself (e.g. a poisoned
/// audit writer), so it never turns back.
#[derive(Debug, Clone)]
pub struct HealthGate {
    /// The health-checked service names that follow `healthy`.
    pub services: Vec<&'static str>,
    pub healthy: tokio::sync::watch::Receiver<bool>,
}

/// Serves one Warden service's routes on a listener.
#[derive(Debug, Clone)]
pub struct ServiceHost {
    /// `gateway`, `storage` or `agent`: used in logs and metric labels.
    pub component: &'static str,
    pub security: Security,
    pub limits: Limits,
}

impl ServiceHost {
    /// The identity interceptor for this host's services (see [`warden_tls::identify`]).
    pub fn identify(
        &self,
    ) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone + use<>
    {
        let insecure = self.security.is_insecure();
        // One for all of this host's services: a connection's certificate is read once.
        let known = std::sync::Arc::new(warden_tls::KnownCallers::new());
        move |req| warden_tls::identify(req, insecure, &known)
    }

    /// Serves `routes` plus gRPC health and reflection until `shutdown` resolves; then
    /// stops accepting, lets in-flight calls finish, and drops what still runs after
    /// the shutdown deadline.
    pub async fn serve(
        self,
        listener: TcpListener,
        routes: tonic::service::RoutesBuilder,
        health_services: &[&str],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HostError> {
        self.serve_gated(listener, routes, health_services, None, shutdown)
            .await
    }

    /// [`ServiceHost::serve`] with health that follows `gate`: once the gate turns
    /// unhealthy, its services and the overall "" status answer NOT_SERVING.
    pub async fn serve_gated(
        self,
        listener: TcpListener,
        mut routes: tonic::service::RoutesBuilder,
        health_services: &[&str],
        gate: Option<HealthGate>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HostError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in health_services {
            reporter
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let component = self.component;
        // A gate unhealthy already is never reported SERVING, not even for a moment.
        if let Some(g) = gate.as_ref().filter(|g| !*g.healthy.borrow()) {
            not_serving(&reporter, &g.services).await;
        }
        let follower = follow_gate(component, reporter.clone(), gate);
        let reflection = reflection_builder(health_services)
            .build_v1()
            .map_err(|e| HostError::Reflection(e.to_string()))?;
        let reflection_alpha = reflection_builder(health_services)
            .build_v1alpha()
            .map_err(|e| HostError::Reflection(e.to_string()))?;
        routes
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha);

        let mut server = Server::builder();
        match &self.security {
            Security::Mtls(files) => {
                let tls = files
                    .server_config()
                    .map_err(|e| HostError::Tls(e.to_string()))?;
                server = server
                    .tls_config(tls)
                    .map_err(|e| HostError::Tls(e.to_string()))?;
            }
            Security::InsecureDev => {
                let local = listener
                    .local_addr()
                    .map_err(|e| HostError::Serve(e.to_string()))?;
                if !local.ip().is_loopback() {
                    return Err(HostError::InsecureNotLoopback(local));
                }
                tracing::warn!(
                    component = self.component,
                    "--insecure-dev: serving PLAINTEXT gRPC with no client authentication; never use this outside a laptop"
                );
            }
        }
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = fired_tx.send(());
        };
        let serve = server
            .timeout(self.limits.request_timeout)
            .layer(MetricsLayer { component })
            .layer(LimitLayer {
                max_message_bytes: self.limits.max_message_bytes,
            })
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(no_delay(listener), signal);
        let deadline = self.limits.shutdown_deadline;
        let reporter_on_exit = reporter.clone();
        tokio::select! {
            res = serve => res.map_err(|e| HostError::Serve(e.to_string()))?,
            () = async move {
                if fired_rx.await.is_ok() {
                    reporter_on_exit.set_service_status("", tonic_health::ServingStatus::NotServing).await;
                    tokio::time::sleep(deadline).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(component, ?deadline, "shutdown deadline passed; dropping calls still in flight");
            }
            never = follower => match never {},
        }
        tracing::info!(component, "stopped");
        Ok(())
    }
}

/// Turns the gate's services and "" NOT_SERVING once the gate turns unhealthy (at once
/// if it already is); then, like with no gate at all, waits forever, so it never ends
/// the serving it runs beside.
async fn follow_gate(
    component: &'static str,
    reporter: tonic_health::server::HealthReporter,
    gate: Option<HealthGate>,
) -> std::convert::Infallible {
    if let Some(HealthGate {
        services,
        mut healthy,
    }) = gate
    {
        // An error means the sender is gone: what reported health no longer runs.
        let _ = healthy.wait_for(|ok| !*ok).await;
        tracing::error!(
            component,
            ?services,
            "unhealthy: these services and the overall health status now answer NOT_SERVING"
        );
        not_serving(&reporter, &services).await;
    }
    std::future::pending().await
}

/// `services` and the overall "" status answer NOT_SERVING.
async fn not_serving(reporter: &tonic_health::server::HealthReporter, services: &[&str]) {
    for name in services {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::NotServing)
            .await;
    }
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}

/// A client channel to the Warden service `peer` (gateway, storage or agent service) at
/// `addr` (`host:port` or a URL). The server must present `peer`'s certificate (its
/// service name), not merely any certificate of the CA.
/// Connects lazily: a service that is down yet does not stop the caller from starting,
/// and every call fails with UNAVAILABLE until it is up (fail closed).
pub fn connect(
    addr: &str,
    security: &Security,
    peer: warden_tls::Role,
    connect_timeout: Duration,
) -> Result<Channel, HostError> {
    let (scheme, host) = match security {
        Security::Mtls(_) => ("https", addr.trim_start_matches("https://")),
        Security::InsecureDev => ("http", addr.trim_start_matches("http://")),
    };
    let url = format!("{scheme}://{host}");
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|_| HostError::Endpoint(url.clone()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if let Security::Mtls(files) = security {
        let name = peer.service_name().ok_or_else(|| {
            HostError::Tls(format!(
                "{peer} is not a service; nothing can be reached as it"
            ))
        })?;
        let tls = files
            .client_config(name)
            .map_err(|e| HostError::Tls(e.to_string()))?;
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| HostError::Tls(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is
/// called, not when it is first polled, so call it before announcing readiness: a
/// signal that arrives in between then stops the process cleanly instead of killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

/// Serves Prometheus metrics on `addr` at `/metrics`.
pub fn install_prometheus(addr: SocketAddr) -> Result<(), HostError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| HostError::Metrics(e.to_string()))
}

/// Accepted connections with Nagle's algorithm off. Small gRPC frames (a TLS record, a
/// trailer) must not wait for the peer's delayed ACK: without this, a response can sit
/// 40 ms in the kernel. tonic sets it only on listeners it binds itself.
fn no_delay(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Reflection that advertises only what this listener serves (so `grpcurl list` on the
/// gateway's port does not offer storage's services), and knows `google.rpc` error
/// details, so grpcurl prints a refusal's `ErrorInfo.reason` instead of raw bytes.
fn reflection_builder<'b>(served: &[&str]) -> tonic_reflection::server::Builder<'b> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in served {
        builder = builder.with_service_name(*name);
    }
    builder
}

#[cfg(test)]
mod tests;
