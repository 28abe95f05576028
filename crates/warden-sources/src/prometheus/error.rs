//! What can go wrong when asking a Prometheus-compatible API, worded for the person (or
//! model) who reads it. No variant ever holds a credential: hosts are `host:port` of a URL
//! that cannot carry userinfo, and server messages are Prometheus' own query errors.

use std::time::Duration;

/// A Prometheus source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The tenant's settings cannot work (URL, CA, credentials).
    #[error("the Prometheus source is misconfigured: {0}")]
    Config(String),
    /// The caller's arguments cannot work (empty query, end before start, ...).
    #[error("{0}")]
    Arguments(String),
    /// Prometheus refused the PromQL (`bad_data`), with its own explanation.
    #[error("the query is invalid: {0}")]
    InvalidQuery(String),
    /// HTTP 401 or 403.
    #[error("{host} refused authentication (HTTP {status}); check the source's credentials")]
    AuthenticationRefused { host: String, status: u16 },
    #[error("{host} did not answer within {after:?}")]
    Timeout { host: String, after: Duration },
    #[error("cannot reach {host}: {reason}")]
    Unreachable { host: String, reason: String },
    /// The TLS handshake failed, most often a certificate from a CA the source does not name.
    #[error(
        "the TLS connection to {host} failed: {reason} (is the server's CA the one in the source's ca_pem?)"
    )]
    Tls { host: String, reason: String },
    #[error("{host} redirected the request elsewhere; only the configured URL is queried")]
    Redirected { host: String },
    #[error("{host}'s answer is larger than {limit} bytes; narrow the query")]
    TooLarge { host: String, limit: usize },
    /// Prometheus understood the query but could not run it (timeout, execution, ...).
    #[error("Prometheus could not run the query ({kind}): {message}")]
    QueryFailed { kind: String, message: String },
    /// An HTTP error without a Prometheus API answer (a proxy, a wrong path).
    #[error("{host} answered HTTP {status} without a Prometheus API response{hint}")]
    Http {
        host: String,
        status: u16,
        hint: &'static str,
    },
    #[error("{host}'s answer is not a Prometheus API response: {reason}")]
    BadResponse { host: String, reason: String },
}
