//! The drop-in HTTP front: `POST /v1/chat/completions` (OpenAI Chat Completions),
//! `POST /v1/messages` (Anthropic Messages) and `GET /v1/models`, so an existing agent or
//! SDK adopts Warden by changing its base URL.
//!
//! Each request is translated into the gateway's own `CompleteRequest` and goes through
//! exactly the same pipeline as the gRPC `Complete` (validate, settings, decide,
//! minimize, limits, audit intent, route, outcome, restore); only the translation and
//! the error format differ. Who is calling comes from the client certificate alone, as
//! for gRPC; the tenant from a tenant-scoped identity, or for a platform-wide one from
//! `x-warden-tenant` (a header naming another tenant than a scoped identity's is
//! refused). Every piece of customer content must carry a data type — per message (a
//! `data_type` field, which the SDKs pass through) or for the whole request
//! (`x-warden-data-type`) — or the request is refused before anything is sent.

mod anthropic;
mod openai;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tonic::Code;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_rpc::https::PeerCertificates;
use warden_tls::Caller;

use crate::Gateway;
use crate::status::GatewayError;

/// The largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The HTTP front's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(models))
        .with_state(gateway)
}

/// Which API's error format a refusal takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
}

/// A refusal: the HTTP status, the API's error type, the message, and the seconds to
/// wait when it is worth retrying.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl HttpError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
        }
    }

    fn unauthenticated(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A gRPC status of the shared pipeline, in HTTP terms (the one translation; the
    /// pipeline's own errors map to codes in `status.rs`).
    pub(crate) fn from_status(s: &tonic::Status) -> Self {
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied | Code::FailedPrecondition => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable | Code::Aborted => StatusCode::SERVICE_UNAVAILABLE,
            Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        use tonic_types::StatusExt;
        let retry_after = s
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .map(|d| d.as_secs().max(1))
            .or_else(|| (status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
        HttpError {
            status,
            message: s.message().to_owned(),
            retry_after,
        }
    }

    pub(crate) fn from_gateway(e: GatewayError) -> Self {
        HttpError::from_status(&tonic::Status::from(e))
    }

    /// The error in `api`'s own JSON format, so the SDKs raise their own typed errors.
    pub(crate) fn into_response(self, api: Api) -> Response {
        let (kind, body) = match api {
            Api::OpenAi => {
                let kind = match self.status.as_u16() {
                    400 | 404 | 413 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    429 => "rate_limit_error",
                    _ => "api_error",
                };
                (
                    kind,
                    serde_json::json!({"error": {"message": self.message, "type": kind, "param": null, "code": null}}),
                )
            }
            Api::Anthropic => {
                let kind = match self.status.as_u16() {
                    400 | 413 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    503 => "overloaded_error",
                    _ => "api_error",
                };
                (
                    kind,
                    serde_json::json!({"type": "error", "error": {"type": kind, "message": self.message}}),
                )
            }
        };
        metrics::counter!("warden_gateway_http_errors_total", "type" => kind).increment(1);
        let mut resp = json_response(self.status, &body);
        if let Some(secs) = self.retry_after
            && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Who is calling: the caller, the tenant it acts for, and for an API key the key (open
/// streams re-check it) and the key's default data type.
pub(crate) struct Who {
    pub caller: Caller,
    pub tenant: String,
    pub api_key: Option<String>,
    pub default_data_type: Option<pb::DataType>,
}

/// The API key a request carries: `Authorization: Bearer` (OpenAI SDKs) or `x-api-key`
/// (Anthropic SDKs).
fn api_key(headers: &HeaderMap) -> Result<Option<String>, HttpError> {
    if let Some(k) = header_str(headers, "x-api-key")? {
        return Ok(Some(k.to_owned()));
    }
    match header_str(headers, "authorization")? {
        None => Ok(None),
        Some(v) => match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(token.trim().to_owned()))
            }
            _ => Err(HttpError::unauthenticated(
                "the Authorization header must be `Bearer <API key>`",
            )),
        },
    }
}

/// The caller and the tenant a request acts for: from its client certificate (which wins
/// when both are present) or its API key, never from the body; a platform-wide identity
/// names the tenant in `x-warden-tenant`, and a header naming another tenant than a
/// scoped identity's is refused.
pub(crate) async fn who(
    g: &Gateway,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    rpc: &'static str,
) -> Result<Who, HttpError> {
    // Read once per connection (the chain is the connection's, verified at its handshake).
    let from_certificate = extensions
        .get::<PeerCertificates>()
        .and_then(|peer| g.inner.known_callers.caller(&peer.0));
    let (caller, api_key, default_data_type) = match from_certificate {
        Some(caller) => (
            caller.map_err(|e| HttpError::unauthenticated(e.to_string()))?,
            None,
            None,
        ),
        None => {
            let Some(key) = api_key(headers)? else {
                return Err(HttpError::unauthenticated(
                    "a client certificate or an API key (Authorization: Bearer, or x-api-key) is required",
                ));
            };
            let k = g.inner.api_keys.resolve(&key).await.map_err(|e| match e {
                crate::api_keys::KeyError::Unknown => HttpError::unauthenticated(e.to_string()),
                crate::api_keys::KeyError::Unavailable(_) => HttpError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: e.to_string(),
                    retry_after: Some(1),
                },
            })?;
            let dt =
                (k.default_data_type != pb::DataType::Unspecified).then_some(k.default_data_type);
            (k.caller(), Some(key), dt)
        }
    };
    let auth = warden_tls::authorize_caller(caller, rpc).map_err(|s| HttpError::from_status(&s))?;
    let named = header_str(headers, "x-warden-tenant")?;
    let tenant = match (named, auth.caller().scope.tenants()) {
        (Some(t), _) => t.to_owned(),
        (None, [own]) => own.clone(),
        (None, []) => {
            return Err(HttpError::bad_request(
                "x-warden-tenant is required: this identity is platform-wide, so the request must name its tenant",
            ));
        }
        (None, _) => {
            return Err(HttpError::bad_request(
                "x-warden-tenant is required: this identity may act for several tenants",
            ));
        }
    };
    crate::convert::check_tenant_id(&tenant).map_err(HttpError::bad_request)?;
    let caller = auth
        .for_tenant(&tenant)
        .map_err(|s| HttpError::from_status(&s))?;
    Ok(Who {
        caller,
        tenant,
        api_key,
        default_data_type,
    })
}

pub(crate) fn header_str<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, HttpError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| HttpError::bad_request(format!("{name} is not readable text"))),
    }
}

/// A data type by its short name (`logs`, `metrics`, ..., `source_code`).
pub(crate) fn data_type(name: &str) -> Result<pb::DataType, HttpError> {
    let upper = format!("DATA_TYPE_{}", name.trim().to_ascii_uppercase());
    match pb::DataType::from_str_name(&upper) {
        Some(pb::DataType::Unspecified) | None => Err(HttpError::bad_request(format!(
            "{name:?} is not a data type; use one of logs, metrics, traces, profiles, config_metadata, cluster_info, source_code, instruction"
        ))),
        Some(d) => Ok(d),
    }
}

/// What the request's headers say for all of its content.
pub(crate) struct Defaults {
    pub data_type: Option<pb::DataType>,
    pub purpose: pb::Purpose,
    pub run_id: String,
}

pub(crate) fn defaults(headers: &HeaderMap, who: &Who) -> Result<Defaults, HttpError> {
    let data_type = header_str(headers, "x-warden-data-type")?
        .filter(|v| !v.is_empty())
        .map(data_type)
        .transpose()?
        .or(who.default_data_type);
    let purpose = match header_str(headers, "x-warden-purpose")? {
        None => pb::Purpose::UserQuestion,
        Some(p) => {
            match pb::Purpose::from_str_name(&format!("PURPOSE_{}", p.to_ascii_uppercase())) {
                Some(pb::Purpose::Unspecified) | None => {
                    return Err(HttpError::bad_request(format!(
                        "x-warden-purpose {p:?} is not a purpose; use alert, anomaly, deployment, cluster_event or user_question"
                    )));
                }
                Some(p) => p,
            }
        }
    };
    let run_id = header_str(headers, "x-warden-run-id")?
        .unwrap_or_default()
        .to_owned();
    Ok(Defaults {
        data_type,
        purpose,
        run_id,
    })
}

/// The data type of a piece of customer content: its own, else the request's, else a
/// refusal (nothing is sent without one).
pub(crate) fn content_type(
    own: Option<&str>,
    defaults: &Defaults,
    at: &str,
) -> Result<pb::DataType, HttpError> {
    match (own, defaults.data_type) {
        (Some(name), _) => data_type(name),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(HttpError::bad_request(format!(
            "{at} carries no data type: set `data_type` on the message (e.g. \"logs\") or the x-warden-data-type header; content without one is never sent"
        ))),
    }
}

/// Reads a JSON body within [`MAX_BODY`], as `api` reports errors.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, HttpError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| HttpError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request body is larger than {MAX_BODY} bytes"),
            retry_after: None,
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| HttpError::bad_request(format!("the body is not a valid request: {e}")))
}

/// `GET /v1/models`: the providers and models the caller's tenant may use now, in the
/// OpenAI list format (the Anthropic SDK reads the same `data` with `id`).
async fn models(State(g): State<Gateway>, req: Request) -> Response {
    let api = if req.headers().contains_key("anthropic-version") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    let (parts, _) = req.into_parts();
    let tenant = match who(
        &g,
        &parts.headers,
        &parts.extensions,
        "warden.gateway.v1.Gateway/Complete",
    )
    .await
    {
        Ok(w) => w.tenant,
        Err(e) => return e.into_response(api),
    };
    let settings = match g.inner.tenants.get(&tenant).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return HttpError::from_status(&tonic::Status::failed_precondition(format!(
                "tenant {tenant} is not configured"
            )))
            .into_response(api);
        }
        Err(e) => return HttpError::from_gateway(e.into()).into_response(api),
    };
    let providers = g.providers();
    let data: Vec<serde_json::Value> = if settings.enabled {
        providers
            .catalogue()
            .iter()
            .filter(|p| settings.allowed_providers.contains(&p.name))
            .map(|p| {
                serde_json::json!({"id": p.name, "object": "model", "type": "model", "owned_by": "warden", "display_name": p.name})
            })
            .collect()
    } else {
        Vec::new()
    };
    json_ok(&serde_json::json!({"object": "list", "data": data, "has_more": false}))
}

/// A text part.
pub(crate) fn text(data_type: pb::DataType, text: String) -> gw::ContentPart {
    gw::ContentPart {
        data_type: data_type as i32,
        content: Some(gw::content_part::Content::Text(text)),
    }
}

/// What every request needs before its body is read: who is calling (first, so nothing
/// of the body is read for a stranger), the headers' defaults and the provider names.
pub(crate) struct Context {
    pub who: Who,
    pub defaults: Defaults,
    pub providers: Vec<String>,
}

pub(crate) async fn context(
    g: &Gateway,
    parts: &axum::http::request::Parts,
) -> Result<Context, HttpError> {
    let who = who(
        g,
        &parts.headers,
        &parts.extensions,
        "warden.gateway.v1.Gateway/Complete",
    )
    .await?;
    let defaults = defaults(&parts.headers, &who)?;
    let providers = g
        .providers()
        .catalogue()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    Ok(Context {
        who,
        defaults,
        providers,
    })
}

/// What the shared pipeline gave a translated request.
pub(crate) enum Answer {
    Unary(Box<gw::CompleteResponse>),
    Stream(crate::relay::RelayStream),
}

/// Runs `complete` through the same pipeline as gRPC `Complete` or `CompleteStream`
/// (whose matrix row a stream must pass too).
pub(crate) async fn run(
    g: &Gateway,
    who: Who,
    complete: gw::CompleteRequest,
    streaming: bool,
) -> Result<Answer, HttpError> {
    if !streaming {
        return g
            .complete(&who.caller, complete)
            .await
            .map(|r| Answer::Unary(Box::new(r)))
            .map_err(HttpError::from_gateway);
    }
    let caller =
        warden_tls::authorize_caller(who.caller, "warden.gateway.v1.Gateway/CompleteStream")
            .and_then(|a| a.for_tenant(&who.tenant))
            .map_err(|s| HttpError::from_status(&s))?;
    g.complete_stream_keyed(&caller, who.api_key, complete)
        .await
        .map(Answer::Stream)
        .map_err(HttpError::from_gateway)
}

/// A 200 with a JSON body.
pub(crate) fn json_ok(body: &serde_json::Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A JSON body written straight into bytes: `Display` (`to_string`) goes through the
/// formatter a few bytes at a time, and was half the cost of writing an answer.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    // A Value always serializes: its map keys are strings.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Server-sent events: each relayed event as `render` writes it, until it writes "".
pub(crate) fn sse(
    relay: crate::relay::RelayStream,
    render: impl FnMut(Result<gw::CompleteStreamEvent, tonic::Status>) -> String + Send + 'static,
) -> Response {
    use futures::StreamExt;
    let events = relay
        .map(render)
        .take_while(|s| futures::future::ready(!s.is_empty()));
    let body = Body::from_stream(events.map(Ok::<_, std::convert::Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
