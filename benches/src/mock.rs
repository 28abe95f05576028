//! A lean OpenAI Chat Completions mock for load: every gateway under test (Warden, its
//! peers) and the direct baseline call the same one, which answers after a fixed delay.
//!
//! Unlike `warden-testkit`'s mocks it records nothing per request (a recorded body per
//! call would grow the process by hundreds of megabytes in a minute at a few thousand
//! requests a second and skew memory figures): it counts calls, keeps the last request
//! body (so a test can check what arrived) and counts the streams it holds open.
//!
//! Answers are the real wire format: a `chat.completion` JSON object, or `data:` chunks
//! ending `data: [DONE]` when the request sets `"stream": true`. A request whose body
//! contains [`HOLD_MARKER`] is answered with a stream that sends its first words and then
//! stays open until the client goes away: an idle open stream, for memory per stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::net::TcpListener;

/// Text in a request that makes the mock hold its stream open after the first words.
pub const HOLD_MARKER: &str = "bench-hold-stream-open";

/// How the mock answers.
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// Time between the whole request having arrived and the answer's head.
    pub delay: Duration,
    /// When set, requests without `Authorization: Bearer <key>` get a 401.
    pub expected_key: Option<String>,
}

#[derive(Default)]
struct Shared {
    options: MockOptions,
    calls: AtomicU64,
    open_streams: Arc<AtomicU64>,
    last_body: Mutex<Option<Bytes>>,
}

/// A running mock; dropping it stops accepting connections.
pub struct BenchMock {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for BenchMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchMock")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Drop for BenchMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

impl BenchMock {
    /// Serves on `listener`, over TLS with `tls` when given, else plain HTTP/1.1.
    pub fn serve(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: MockOptions,
    ) -> std::io::Result<BenchMock> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            ..Shared::default()
        });
        let with_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(s.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        Some(a) => match a.accept(tcp).await {
                            Ok(tls) => {
                                http.serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await
                        }
                    };
                });
            }
        });
        Ok(BenchMock {
            addr,
            tls: with_tls,
            shared,
            task,
        })
    }

    /// Binds `addr` and serves there.
    pub async fn start(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: MockOptions,
    ) -> std::io::Result<BenchMock> {
        BenchMock::serve(TcpListener::bind(addr).await?, tls, options)
    }

    /// `http(s)://127.0.0.1:PORT` (no path; the API is under `/v1`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered (or being answered) so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// Streams the mock is still sending or holding open.
    pub fn open_streams(&self) -> u64 {
        self.shared.open_streams.load(Ordering::Relaxed)
    }

    /// The body of the latest request.
    pub fn last_body(&self) -> Option<Bytes> {
        self.shared
            .last_body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn full(status: u16, body: String) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Body> {
    let v = serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    full(status, v.to_string())
}

/// Counts a stream as open until hyper drops its body.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

const WORDS: [&str; 5] = ["Hello ", "from ", "the ", "bench ", "mock."];

fn chunk(model: &str, delta: &serde_json::Value, finish: &serde_json::Value) -> Bytes {
    let v = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
        "created": 1_770_933_892, "model": model, "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    Bytes::from(format!("data: {v}\n\n"))
}

async fn answer(
    s: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    s.calls.fetch_add(1, Ordering::Relaxed);
    if req.method() != hyper::Method::POST || !req.uri().path().ends_with("/chat/completions") {
        return Ok(error(404, "invalid_request_error", "unknown path"));
    }
    if let Some(key) = &s.options.expected_key {
        let sent = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            return Ok(error(401, "invalid_request_error", "Incorrect API key"));
        }
    }
    let Ok(body) = req.into_body().collect().await else {
        return Ok(error(400, "invalid_request_error", "unreadable body"));
    };
    let body = body.to_bytes();
    let parsed: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Ok(error(400, "invalid_request_error", "bad JSON")),
    };
    let hold = body
        .windows(HOLD_MARKER.len())
        .any(|w| w == HOLD_MARKER.as_bytes());
    *s.last_body.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
    let model = parsed
        .get("model")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("bench-model")
        .to_owned();
    let stream = parsed.get("stream").and_then(serde_json::Value::as_bool) == Some(true);
    if !s.options.delay.is_zero() {
        tokio::time::sleep(s.options.delay).await;
    }
    let prompt_tokens = parsed.to_string().len().div_ceil(4);
    if !stream {
        let v = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion",
            "created": 1_770_933_883, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": WORDS.concat(), "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5},
            "system_fingerprint": "fp_bench"});
        return Ok(full(200, v.to_string()));
    }
    let null = serde_json::Value::Null;
    let mut events = vec![chunk(
        &model,
        &serde_json::json!({"role": "assistant", "content": ""}),
        &null,
    )];
    let words: &[&str] = if hold { &WORDS[..1] } else { &WORDS };
    for w in words {
        events.push(chunk(&model, &serde_json::json!({"content": w}), &null));
    }
    if !hold {
        events.push(chunk(
            &model,
            &serde_json::json!({}),
            &serde_json::json!("stop"),
        ));
        let include_usage = parsed
            .pointer("/stream_options/include_usage")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        if include_usage {
            let v = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                "created": 1_770_933_892, "model": model, "choices": [],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5}});
            events.push(Bytes::from(format!("data: {v}\n\n")));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    s.open_streams.fetch_add(1, Ordering::Relaxed);
    let open = Open(s.open_streams.clone());
    let head = futures::stream::iter(events.into_iter().map(|b| Ok(Frame::data(b))));
    let tail = futures::stream::once(async move {
        let _open = open;
        if hold {
            // Until the client goes away and hyper drops the body.
            std::future::pending::<()>().await;
        }
    })
    .filter_map(|()| futures::future::ready(None));
    let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(head.chain(tail))));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(resp)
}
