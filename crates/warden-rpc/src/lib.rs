//! The outside of every Warden RPC, shared by gateway, storage and agent.
//!
//! - [`Security`]: mTLS by default; plaintext only under an explicit `--insecure-dev`.
//! - [`ServiceHost`]: binds a listener and serves a router with health checking,
//!   reflection, a tracing span and Prometheus metrics per request, and graceful
//!   shutdown that lets in-flight requests finish within a deadline.
//! - [`connect`]: an mTLS client channel to another Warden service.
//! - [`https`]: listeners for senders that are not Warden services (the OTLP ingest
//!   ports): TLS with optional, verified client certificates, HTTP/1.1 and HTTP/2.
//!
//! What an RPC *means* is not here: each service's handlers own that.

mod host;
pub mod https;
mod limit;
mod metrics_layer;

pub use host::{
    HealthGate, HostError, ServiceHost, bind, connect, install_prometheus, shutdown_signal,
};
pub use limit::{LimitLayer, LimitService};
pub use metrics_layer::MetricsLayer;
pub use tonic_health::server::HealthReporter;

use std::time::Duration;

use warden_tls::TlsFiles;

/// How a listener or client protects its connections.
#[derive(Debug, Clone)]
pub enum Security {
    /// mutual TLS with certificates from Warden's CA (the default).
    Mtls(TlsFiles),
    /// No TLS at all. Only behind `--insecure-dev`; the server logs a warning at start.
    InsecureDev,
}

impl Security {
    pub fn is_insecure(&self) -> bool {
        matches!(self, Security::InsecureDev)
    }
}

/// Limits every server applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request message accepted; bigger ones get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// In-flight requests still running after this long past a shutdown signal are dropped.
    pub shutdown_deadline: Duration,
    /// Ceiling for one unary call.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            shutdown_deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
        }
    }
}
