//! Test-only mock model providers that speak the real wire formats over real TLS.
//!
//! Each mock binds `127.0.0.1:0`, serves HTTP/1.1 over rustls with a certificate from a
//! throwaway [`TestCa`] (clients are given the CA's PEM, nothing is trusted globally), and
//! answers like the real service: Anthropic Messages (JSON and named SSE events), OpenAI
//! Chat Completions (JSON and `data:` chunks ending `[DONE]`), Bedrock Converse /
//! ConverseStream (JSON and binary `application/vnd.amazon.eventstream` frames) and STS
//! `AssumeRole` (query form in, XML out). The Bedrock and STS mocks verify every request's
//! SigV4 signature with an independent implementation ([`sigv4`]) and record which access
//! key signed it, so a test can prove whose credentials were used.
//!
//! Faults are scripted by name ([`Fault`]): any status with `Retry-After`, a slow first
//! byte, a stall mid-stream, a malformed event, a mid-stream provider error, a reset
//! connection. Every request is recorded ([`Recorded`]).
//!
//! [`scripted`] is a model for integration tests on the Anthropic wire: it answers each
//! conversation from a per-marker script of tool calls, answers, failures and held turns.
//!
//! [`github`] mocks the GitHub REST API (contents, code search, commits, compare, and the
//! App installation-token exchange), checking every request's credentials.
//!
//! [`process`] tells whether a child process still runs.
//!
//! [`prometheus`] and [`alertmanager`] run the real Debian servers (installed by
//! `scripts/test-deps`) on loopback, for tests against the genuine article.
//!
//! Built on hyper 1 directly (not axum): faults such as "reset the connection" or "stall
//! after three frames" need control below the routing layer, and hyper is the
//! well-maintained base that reqwest and the AWS SDK themselves use.

pub mod alertmanager;
pub mod anthropic;
pub mod bedrock;
pub mod eventstream;
pub mod github;
pub mod kms;
pub mod openai;
pub mod process;
pub mod prometheus;
pub mod scripted;
pub mod sigv4;
pub mod sts;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::net::TcpListener;

pub use scripted::{ScriptHandle, ScriptedAnthropic, ScriptedCall, ToolResult, Turn};

/// Why the test kit could not start.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not bind a loopback port: {0}")]
    Io(#[from] std::io::Error),
    #[error("test key generation failed: {0}")]
    Key(String),
}

/// A throwaway CA and a server certificate for `localhost` and `127.0.0.1`.
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    pub fn new() -> Result<Self, KitError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "warden-testkit throwaway CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate()?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        })
    }

    /// The CA certificate (PEM) that clients must trust.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca_pem.clone().into_bytes()
    }

    /// The server side (the `localhost` certificate, HTTP/1.1), for servers other than
    /// [`MockServer`] that clients of this CA must reach (the benchmarks' lean mock).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

/// A scripted fault for the next request. Unscripted requests succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status in the provider's error shape, optionally with `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// Wait this long before sending the response head.
    SlowFirstByte(Duration),
    /// Send this many stream events (or the JSON head for unary), then stop sending but keep the connection open.
    StallAfter(usize),
    /// Send this many stream events, then a malformed one (bad JSON / bad CRC), then the rest.
    MalformedAfter(usize),
    /// Send this many stream events, then the provider's mid-stream error event.
    StreamErrorAfter(usize),
    /// Close the connection without any response.
    Reset,
    /// Send this many stream events, then close the connection.
    ResetAfter(usize),
}

/// Request header that selects a fault, for clients that cannot call [`MockServer::script`].
pub const FAULT_HEADER: &str = "x-warden-mock-fault";

impl Fault {
    /// Parses `status:529`, `status:429:7` (with Retry-After), `slow:MS`, `stall:N`,
    /// `malformed:N`, `stream_error:N`, `reset`, `reset:N`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().split(':');
        let kind = it.next()?;
        let a = it.next();
        let b = it.next();
        let n = |v: Option<&str>| v.and_then(|v| v.parse::<usize>().ok());
        Some(match (kind, a) {
            ("status", Some(code)) => Fault::Status {
                status: code.parse().ok()?,
                retry_after: b.map(str::to_owned),
            },
            ("slow", ms) => Fault::SlowFirstByte(Duration::from_millis(n(ms)? as u64)),
            ("stall", v) => Fault::StallAfter(n(v)?),
            ("malformed", v) => Fault::MalformedAfter(n(v)?),
            ("stream_error", v) => Fault::StreamErrorAfter(n(v)?),
            ("reset", None) => Fault::Reset,
            ("reset", v) => Fault::ResetAfter(n(v)?),
            _ => return None,
        })
    }

    pub fn status(status: u16) -> Self {
        Fault::Status {
            status,
            retry_after: None,
        }
    }

    pub fn status_retry_after(status: u16, retry_after: &str) -> Self {
        Fault::Status {
            status,
            retry_after: Some(retry_after.to_owned()),
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The access key id whose valid SigV4 signature the request carried (Bedrock and STS mocks).
    pub signed_by: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer that is not ready yet.
pub type DeferredReply = std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>;

/// What a mock API answers, before faults are applied.
pub enum Reply {
    Whole {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// A streaming answer: the chunks are whole events (SSE events or eventstream frames).
    Stream {
        headers: Vec<(String, String)>,
        events: Vec<Bytes>,
    },
    /// An answer the server awaits before sending anything (a held scripted turn). The
    /// request is recorded first; if the client goes away meanwhile, the future is dropped.
    Deferred(DeferredReply),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Whole {
                status,
                headers,
                body,
            } => f
                .debug_struct("Whole")
                .field("status", status)
                .field("headers", headers)
                .field("body", body)
                .finish(),
            Reply::Stream { headers, events } => f
                .debug_struct("Stream")
                .field("headers", headers)
                .field("events", events)
                .finish(),
            Reply::Deferred(_) => f.write_str("Deferred(..)"),
        }
    }
}

impl Reply {
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Reply::Whole {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(v.to_string()),
        }
    }
}

/// A provider's wire format, as the mock server needs it.
pub trait MockApi: Send + Sync + 'static {
    /// The answer to a (recorded) request; may also fill in `signed_by`.
    fn handle(&self, req: &mut Recorded) -> Reply;
    /// The provider's error answer for a status fault.
    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply;
    /// A malformed stream event in this provider's framing.
    fn malformed_event(&self) -> Bytes;
    /// The provider's mid-stream error event.
    fn stream_error_event(&self) -> Bytes;
}

struct Shared {
    api: Box<dyn MockApi>,
    script: Mutex<VecDeque<Fault>>,
    recorded: Mutex<Vec<Recorded>>,
    /// Streamed response bodies still being served (see [`MockServer::open_streams`]).
    open_streams: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a streamed body as open until hyper drops it (sent, or the client went away).
struct OpenStream(Arc<std::sync::atomic::AtomicUsize>);

impl OpenStream {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OpenStream(count.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running mock. Dropping it stops accepting connections.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: Bytes) -> Body {
    Full::new(b)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

impl MockServer {
    /// Starts `api` on a fresh loopback port with `ca`'s server certificate.
    pub async fn start(ca: &TestCa, api: impl MockApi) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api: Box::new(api),
            script: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            open_streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server.clone());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { serve(s, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(MockServer { addr, shared, task })
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts the next requests' faults, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(faults);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn calls(&self) -> usize {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Streamed responses still open: a stalled stream stays open until the client closes
    /// the connection, so this falling back to zero shows the client cancelled.
    pub fn open_streams(&self) -> usize {
        self.shared
            .open_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The access keys that signed the received requests (unsigned requests are skipped).
    pub fn signers(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.signed_by)
            .collect()
    }
}

async fn serve(
    s: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let mut rec = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        signed_by: None,
    };
    // External clients (the Python SDK fidelity check) choose a fault with a header.
    let fault = match rec.header(FAULT_HEADER).and_then(Fault::parse) {
        Some(f) => Some(f),
        None => s
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front(),
    };
    let reply = match &fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            // Still verify and record who signed it: a refused request is evidence too.
            let _ = s.api.handle(&mut rec);
            s.api.error(*status, retry_after.as_deref())
        }
        _ => s.api.handle(&mut rec),
    };
    s.recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(rec);
    match fault {
        Some(Fault::Reset) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "scripted reset",
            ));
        }
        Some(Fault::SlowFirstByte(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let mut reply = reply;
    let (status, headers, events, whole) = loop {
        match reply {
            Reply::Whole {
                status,
                headers,
                body,
            } => break (status, headers, vec![body], true),
            Reply::Stream { headers, events } => break (200, headers, events, false),
            Reply::Deferred(later) => reply = later.await,
        }
    };
    let mut builder = hyper::Response::builder().status(status);
    for (k, v) in &headers {
        builder = builder.header(k, v);
    }
    let open = || OpenStream::new(&s.open_streams);
    let body: Body = match fault {
        None | Some(Fault::Status { .. }) | Some(Fault::SlowFirstByte(_)) | Some(Fault::Reset) => {
            if whole {
                full(events.into_iter().next().unwrap_or_default())
            } else {
                chunked(events, None, open())
            }
        }
        Some(Fault::StallAfter(n)) => {
            chunked(split_for_fault(events, whole, n), Some(Tail::Stall), open())
        }
        Some(Fault::ResetAfter(n)) => {
            chunked(split_for_fault(events, whole, n), Some(Tail::Reset), open())
        }
        Some(Fault::MalformedAfter(n)) => {
            let mut ev = events;
            let at = n.min(ev.len());
            ev.insert(at, s.api.malformed_event());
            chunked(ev, None, open())
        }
        Some(Fault::StreamErrorAfter(n)) => {
            let mut ev = events;
            ev.truncate(n);
            ev.push(s.api.stream_error_event());
            chunked(ev, None, open())
        }
    };
    builder.body(body).map_err(std::io::Error::other)
}

/// For a unary reply, "after n events" means after half of the JSON body.
fn split_for_fault(mut events: Vec<Bytes>, whole: bool, n: usize) -> Vec<Bytes> {
    if whole {
        let b = events.pop().unwrap_or_default();
        return vec![b.slice(..b.len() / 2)];
    }
    events.truncate(n);
    events
}

enum Tail {
    Stall,
    Reset,
}

fn chunked(events: Vec<Bytes>, tail: Option<Tail>, open: OpenStream) -> Body {
    let head = futures::stream::iter(
        events
            .into_iter()
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b))),
    );
    let tail = futures::stream::once(async move {
        // Held until the body is finished or dropped.
        let _open = open;
        match tail {
            None => None,
            Some(Tail::Stall) => {
                // Long enough to outlive any test; the client's idle timeout must fire first.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                None
            }
            Some(Tail::Reset) => Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "scripted reset",
            ))),
        }
    })
    .filter_map(futures::future::ready);
    BodyExt::boxed(StreamBody::new(head.chain(tail)))
}

/// Starts the Anthropic mock.
pub async fn anthropic(ca: &TestCa) -> Result<MockServer, KitError> {
    MockServer::start(ca, anthropic::AnthropicMock::default()).await
}

/// Starts the OpenAI mock.
pub async fn openai(ca: &TestCa) -> Result<MockServer, KitError> {
    MockServer::start(ca, openai::OpenAiMock::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_header_form() {
        assert_eq!(
            Fault::parse("status:429:7"),
            Some(Fault::status_retry_after(429, "7"))
        );
        assert_eq!(Fault::parse("status:529"), Some(Fault::status(529)));
        assert_eq!(
            Fault::parse("slow:250"),
            Some(Fault::SlowFirstByte(Duration::from_millis(250)))
        );
        assert_eq!(Fault::parse("stall:2"), Some(Fault::StallAfter(2)));
        assert_eq!(Fault::parse("reset"), Some(Fault::Reset));
        assert_eq!(Fault::parse("reset:3"), Some(Fault::ResetAfter(3)));
        assert_eq!(Fault::parse("explode"), None);
    }
}
