//! OTLP/HTTP: `POST /v1/logs`, `/v1/metrics`, `/v1/traces` with binary protobuf
//! (`application/x-protobuf`) or OTLP JSON (`application/json`: hex ids, enums as
//! numbers, camelCase), optionally gzip-compressed.
//!
//! As the specification says: success is 200 with the export response (partial success
//! included) in the request's own encoding; a refusal carries a `google.rpc.Status` in
//! that encoding; 400 for data that cannot be used, 413 over the size limit, 415 for an
//! unknown content type or encoding, 401/403 for who is sending, 503 with `Retry-After`
//! when busy (retryable).

use std::io::Read;
use std::sync::Arc;

use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::{Code, Status};

use super::IngestOptions;
use super::gate::Gate;

/// What the handlers share.
struct Http {
    gate: Arc<Gate>,
    opts: IngestOptions,
}

/// The request body's encoding, which the answer repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

const LOGS: &str = "opentelemetry.proto.collector.logs.v1.LogsService/Export";
const METRICS: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const TRACES: &str = "opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The HTTP port's service.
pub(super) fn service(gate: Arc<Gate>, opts: IngestOptions) -> axum::Router {
    axum::Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .route("/v1/traces", post(traces))
        .with_state(Arc::new(Http { gate, opts }))
}

async fn logs(State(h): State<Arc<Http>>, req: Request) -> Response {
    handle::<ExportLogsServiceRequest, _, _, _>(&h, req, LOGS, |h, tenant, r| async move {
        h.gate.storage.export_logs(&tenant, &r, &h.opts.items).await
    })
    .await
}

async fn metrics(State(h): State<Arc<Http>>, req: Request) -> Response {
    handle::<ExportMetricsServiceRequest, _, _, _>(&h, req, METRICS, |h, tenant, r| async move {
        h.gate
            .storage
            .export_metrics(&tenant, &r, &h.opts.items)
            .await
    })
    .await
}

async fn traces(State(h): State<Arc<Http>>, req: Request) -> Response {
    handle::<ExportTraceServiceRequest, _, _, _>(&h, req, TRACES, |h, tenant, r| async move {
        h.gate
            .storage
            .export_spans(&tenant, &r, &h.opts.items)
            .await
    })
    .await
}

/// One export: encoding, admission, body, decoding, storing, answer.
async fn handle<'h, Req, Resp, F, Fut>(
    h: &'h Http,
    req: Request,
    rpc: &'static str,
    export: F,
) -> Response
where
    Req: Message + Default + serde::de::DeserializeOwned,
    Resp: Message + serde::Serialize,
    F: FnOnce(&'h Http, String, Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, Status>>,
{
    let (parts, body) = req.into_parts();
    let encoding = match encoding_of(&parts.headers) {
        Ok(e) => e,
        Err(message) => {
            return refuse(
                Encoding::Protobuf,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Status::invalid_argument(message),
            );
        }
    };
    let admitted = match h.gate.admit(&parts.headers, &parts.extensions, rpc).await {
        Ok(a) => a,
        Err(s) => return refuse_status(encoding, s, h),
    };
    let bytes = match read_body(&parts.headers, body, h.opts.max_request_bytes).await {
        Ok(b) => b,
        Err((code, s)) => return refuse(encoding, code, s),
    };
    let decoded: Result<Req, String> = match encoding {
        Encoding::Protobuf => Req::decode(bytes)
            .map_err(|e| format!("the body is not a valid OTLP protobuf export request: {e}")),
        Encoding::Json => serde_json::from_slice(&bytes)
            .map_err(|e| format!("the body is not a valid OTLP JSON export request: {e}")),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(message) => {
            return refuse(
                encoding,
                StatusCode::BAD_REQUEST,
                Status::invalid_argument(message),
            );
        }
    };
    let result = export(h, admitted.tenant.clone(), decoded).await;
    drop(admitted);
    match result {
        Ok(resp) => answer(encoding, StatusCode::OK, body_of(encoding, &resp)),
        Err(s) => refuse_status(encoding, s, h),
    }
}

/// The encoding named by Content-Type (parameters such as charset ignored).
fn encoding_of(headers: &HeaderMap) -> Result<Encoding, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Encoding::Protobuf)
    } else if mime.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(format!(
            "Content-Type {ct:?} is not supported; send application/x-protobuf or application/json"
        ))
    }
}

/// The body, decompressed, within `max` bytes.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, (StatusCode, Status)> {
    let too_big = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Status::resource_exhausted(format!(
                "the request is larger than this listener's limit of {max} bytes; send smaller batches"
            )),
        )
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("") | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(e) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Status::invalid_argument(format!(
                    "Content-Encoding {e:?} is not supported; send gzip or none"
                )),
            ));
        }
    };
    let raw = http_body_util::Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_big()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    Status::invalid_argument("the request body could not be read"),
                )
            }
        })?
        .to_bytes();
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_ref())
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                Status::invalid_argument("the body is not valid gzip"),
            )
        })?;
    if out.len() > max {
        return Err(too_big());
    }
    Ok(out.into())
}

fn body_of<M: Message + serde::Serialize>(encoding: Encoding, m: &M) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => m.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(m).unwrap_or_default(),
    }
}

fn answer(encoding: Encoding, code: StatusCode, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = code;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    res
}

/// A refusal with a `google.rpc.Status` body in the request's encoding.
fn refuse(encoding: Encoding, code: StatusCode, s: Status) -> Response {
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code: s.code() as i32,
            message: s.message().to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": s.code() as i32,
            "message": s.message(),
        }))
        .unwrap_or_default(),
    };
    answer(encoding, code, body)
}

/// A refusal from the gate or the store, with the HTTP status OTLP senders act on.
fn refuse_status(encoding: Encoding, s: Status, h: &Http) -> Response {
    let code = match s.code() {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut res = refuse(encoding, code, s);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        let secs = h.gate.retry_after.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    res
}
