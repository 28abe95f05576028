//! Anthropic Messages API adapter (`POST /v1/messages`), unary JSON and SSE streaming.
//!
//! Maps the normalized model to Anthropic's blocks (`text`, `tool_use`, `tool_result`) and
//! back; classifies HTTP errors (400, 401, 429 with `retry-after`, 529 overloaded, 5xx) and
//! mid-stream `event: error` by `error.type`, not by the 200 status it arrived under.
//!
//! API versions: `2023-06-01` authenticates with `x-api-key` and accepts `temperature`;
//! `2026-10-21` (and later) uses `Authorization: Bearer` and rejects sampling parameters,
//! so `temperature` is dropped for it. The key is exposed only while building headers.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::http::{self, BuildError, HttpSettings};
use crate::lenient::{self, Read};
use crate::sse::{SseEvent, SseMapper};
use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, Usage,
};

mod wire;

/// The version with `x-api-key` auth, understood by every Anthropic deployment.
pub const VERSION_2023: &str = "2023-06-01";

/// Everything needed to build an [`Anthropic`] adapter.
#[derive(Clone)]
pub struct AnthropicConfig {
    pub name: String,
    /// `https://api.anthropic.com` (no `/v1`).
    pub base_url: String,
    pub api_key: SecretString,
    pub default_model: String,
    /// `anthropic-version` header value.
    pub api_version: String,
    /// Used when a request says `max_tokens = 0` (Anthropic requires the field).
    pub default_max_tokens: u32,
    pub http: HttpSettings,
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .field("default_model", &self.default_model)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl AnthropicConfig {
    pub fn new(
        name: impl Into<String>,
        api_key: SecretString,
        default_model: impl Into<String>,
    ) -> Self {
        AnthropicConfig {
            name: name.into(),
            base_url: "https://api.anthropic.com".into(),
            api_key,
            default_model: default_model.into(),
            api_version: VERSION_2023.into(),
            default_max_tokens: 1024,
            http: HttpSettings::default(),
        }
    }
}

/// The Anthropic adapter. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct Anthropic {
    cfg: AnthropicConfig,
    client: reqwest::Client,
    /// `{base_url}/v1/messages`, parsed once.
    endpoint: reqwest::Url,
    /// The headers every request carries, built once, or why they cannot be (each call
    /// is then refused with that reason).
    headers: Result<HeaderMap, &'static str>,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// Refuses `http://` base URLs unless `cfg.http.allow_plain_http`.
    pub fn new(mut cfg: AnthropicConfig) -> Result<Self, BuildError> {
        cfg.base_url = http::checked_base_url(&cfg.name, &cfg.base_url, cfg.http.allow_plain_http)?;
        if cfg.api_key.expose_secret().is_empty() {
            return Err(BuildError::Config {
                provider: cfg.name.clone(),
                message: "API key is empty".into(),
            });
        }
        let client = http::client(&cfg.name, &cfg.http)?;
        let endpoint = http::endpoint(&cfg.name, &cfg.base_url, "/v1/messages")?;
        let headers = request_headers(&cfg);
        Ok(Anthropic {
            cfg,
            client,
            endpoint,
            headers,
        })
    }

    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        self.headers.clone().map_err(|why| self.invalid(why))
    }

    fn invalid(&self, message: &str) -> ProviderError {
        ProviderError::Invalid {
            provider: self.cfg.name.clone(),
            message: message.into(),
        }
    }

    async fn send(
        &self,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = request_bytes(req, &self.cfg, stream);
        let request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers()?)
            .body(body);
        http::send(
            &self.cfg.name,
            request,
            &self.cfg.http.timeouts,
            "request-id",
            |r| {
                status_error(
                    &self.cfg.name,
                    r.status,
                    r.retry_after,
                    r.body,
                    r.request_id,
                    &self.cfg.api_key,
                )
            },
        )
        .await
    }
}

fn uses_bearer(version: &str) -> bool {
    version != VERSION_2023
}

/// The headers of every request of `cfg`, or why they cannot be built.
fn request_headers(cfg: &AnthropicConfig) -> Result<HeaderMap, &'static str> {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let version = HeaderValue::from_str(&cfg.api_version).map_err(|_| "bad anthropic-version")?;
    h.insert("anthropic-version", version);
    let key = cfg.api_key.expose_secret();
    let (name, value) = if uses_bearer(&cfg.api_version) {
        ("authorization", format!("Bearer {key}"))
    } else {
        ("x-api-key", key.to_owned())
    };
    let mut value =
        HeaderValue::from_str(&value).map_err(|_| "API key is not a valid header value")?;
    value.set_sensitive(true);
    h.insert(name, value);
    Ok(h)
}

/// The request body for `req`, written straight as the bytes sent (`json_out`: each text
/// escaped once, no `Value` tree), keys in the order `serde_json` writes a `Value`'s, which is
/// how it was built before (the tests compare the two).
pub(crate) fn request_bytes(req: &ChatRequest, cfg: &AnthropicConfig, stream: bool) -> Vec<u8> {
    use crate::json_out::{string, value};
    let model = req.model.as_deref().unwrap_or(&cfg.default_model);
    let max_tokens = if req.max_tokens == 0 {
        cfg.default_max_tokens
    } else {
        req.max_tokens
    };
    let mut out = Vec::with_capacity(req.content_bytes() + 512);
    out.extend_from_slice(b"{\"max_tokens\":");
    value(&mut out, &max_tokens);
    out.extend_from_slice(b",\"messages\":[");
    for (i, m) in req.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"content\":[");
        for (j, c) in m.content.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            match c {
                Content::Text { text } => {
                    out.extend_from_slice(b"{\"text\":");
                    string(&mut out, text);
                    out.extend_from_slice(b",\"type\":\"text\"}");
                }
                Content::ToolUse { id, name, input } => {
                    out.extend_from_slice(b"{\"id\":");
                    string(&mut out, id);
                    out.extend_from_slice(b",\"input\":");
                    value(&mut out, input);
                    out.extend_from_slice(b",\"name\":");
                    string(&mut out, name);
                    out.extend_from_slice(b",\"type\":\"tool_use\"}");
                }
                Content::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    out.extend_from_slice(b"{\"content\":");
                    string(&mut out, content);
                    if *is_error {
                        out.extend_from_slice(b",\"is_error\":true");
                    }
                    out.extend_from_slice(b",\"tool_use_id\":");
                    string(&mut out, tool_use_id);
                    out.extend_from_slice(b",\"type\":\"tool_result\"}");
                }
            }
        }
        out.extend_from_slice(match m.role {
            MessageRole::User => b"],\"role\":\"user\"}",
            MessageRole::Assistant => b"],\"role\":\"assistant\"}",
        });
    }
    out.extend_from_slice(b"],\"model\":");
    string(&mut out, model);
    if stream {
        out.extend_from_slice(b",\"stream\":true");
    }
    if let Some(system) = &req.system {
        out.extend_from_slice(b",\"system\":");
        string(&mut out, system);
    }
    if let Some(t) = req.temperature
        && !uses_bearer(&cfg.api_version)
    {
        // As a `Value` held it: the `f32` widened to `f64` (`null` when not finite).
        out.extend_from_slice(b",\"temperature\":");
        value(&mut out, &f64::from(t));
    }
    if !req.tools.is_empty() {
        out.extend_from_slice(b",\"tool_choice\":{\"type\":\"auto\"},\"tools\":[");
        for (i, t) in req.tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"description\":");
            string(&mut out, &t.description);
            out.extend_from_slice(b",\"input_schema\":");
            value(&mut out, &t.input_schema);
            out.extend_from_slice(b",\"name\":");
            string(&mut out, &t.name);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

pub(crate) fn stop_reason(s: &str) -> StopReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "tool_use" => StopReason::ToolUse,
        "stop_sequence" => StopReason::StopSequence,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

fn protocol(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.into(),
        message: message.into(),
    }
}

/// Parses a non-streaming Messages response.
pub(crate) fn parse_response(provider: &str, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    typed_response(provider, body).unwrap_or_else(|| parse_response_value(provider, body))
}

/// The answer read into [`wire`] types, or `None` where that reading gives up and
/// [`parse_response_value`] gives the answer (`crate::lenient`).
fn typed_response(provider: &str, body: &[u8]) -> Option<Result<ChatResponse, ProviderError>> {
    let a = match serde_json::from_slice::<Read<wire::Answer>>(body) {
        Ok(Read(a)) => a,
        Err(e) if lenient::gave_up(&e) => return None,
        Err(_) => return Some(Err(protocol(provider, "response is not JSON"))),
    };
    Some(answer_of(provider, a))
}

fn answer_of(provider: &str, a: wire::Answer<'_>) -> Result<ChatResponse, ProviderError> {
    let blocks = a
        .content
        .ok_or_else(|| protocol(provider, "response has no content array"))?;
    let mut content = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b.r#type.as_deref() {
            Some("text") => content.push(Content::Text {
                text: owned(b.text),
            }),
            Some("tool_use") => content.push(Content::ToolUse {
                id: owned(b.id),
                name: owned(b.name),
                input: b.input.unwrap_or_else(|| json!({})),
            }),
            _ => {} // thinking and future block types are not part of the normalized answer
        }
    }
    Ok(ChatResponse {
        model: owned(a.model),
        content,
        stop_reason: stop_reason(a.stop_reason.as_deref().unwrap_or("end_turn")),
        usage: usage_of_wire(&a.usage),
    })
}

fn owned(s: wire::Str<'_>) -> String {
    s.map(Cow::into_owned).unwrap_or_default()
}

/// The reading of a `Value` that [`typed_response`] replaced, kept for the inputs where that
/// gives up, and as the reference its tests compare with.
fn parse_response_value(provider: &str, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| protocol(provider, "response is not JSON"))?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| protocol(provider, "response has no content array"))?;
    let mut content = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push(Content::text(
                b.get("text").and_then(Value::as_str).unwrap_or_default(),
            )),
            Some("tool_use") => content.push(Content::ToolUse {
                id: str_field(b, "id"),
                name: str_field(b, "name"),
                input: b.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => {} // thinking and future block types are not part of the normalized answer
        }
    }
    let usage = v.get("usage").map(usage_of).unwrap_or_default();
    Ok(ChatResponse {
        model: str_field(&v, "model"),
        content,
        stop_reason: stop_reason(
            v.get("stop_reason")
                .and_then(Value::as_str)
                .unwrap_or("end_turn"),
        ),
        usage,
    })
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn usage_of_wire(u: &wire::Usage) -> Usage {
    Usage {
        input_tokens: u.input_tokens.unwrap_or(0),
        output_tokens: u.output_tokens.unwrap_or(0),
    }
}

fn usage_of(u: &Value) -> Usage {
    Usage {
        input_tokens: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// Replaces any occurrence of the credential in a provider-supplied message, then cuts it
/// to 200 characters. In that order: cutting first could leave a key's first characters
/// at the end, no longer whole and so no longer found.
pub(crate) fn scrub(message: &str, secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let whole = if !s.is_empty() && message.contains(s) {
        std::borrow::Cow::Owned(message.replace(s, "[REDACTED]"))
    } else {
        std::borrow::Cow::Borrowed(message)
    };
    whole.chars().take(200).collect()
}

/// Maps an HTTP error answer. Classifies by status and `error.type`; keeps the request id.
pub(crate) fn status_error(
    provider: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    request_id: Option<&str>,
    secret: &SecretString,
) -> ProviderError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = v.get("error");
    let ty = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let msg = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut message = format!("{ty}: {}", scrub(msg, secret));
    if let Some(id) = request_id {
        message.push_str(&format!(" (request-id {id})"));
    }
    let spend_limit = err
        .and_then(|e| e.get("details"))
        .and_then(|d| d.get("error_code"))
        .and_then(Value::as_str)
        == Some("enforced_spend_limit_reached");
    match status {
        429 if spend_limit => ProviderError::QuotaExhausted {
            provider: provider.into(),
            message,
        },
        // 404 (usually an unknown model id) stays a Status: it is this provider's configuration, so the router fails over.
        400 | 413 | 422 => ProviderError::Invalid {
            provider: provider.into(),
            message: format!("HTTP {status} {message}"),
        },
        _ => ProviderError::Status {
            provider: provider.into(),
            status,
            retry_after,
            message,
        },
    }
}

/// A mid-stream `event: error` arrives under HTTP 200: classify it by `error.type`.
fn stream_error(provider: &str, data: &Value) -> ProviderError {
    let ty = data
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str);
    stream_error_of(provider, ty.unwrap_or("unknown_error"))
}

/// The error for a mid-stream `error.type` of `ty`.
fn stream_error_of(provider: &str, ty: &str) -> ProviderError {
    let status = match ty {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "invalid_request_error" => {
            return ProviderError::Invalid {
                provider: provider.into(),
                message: format!("mid-stream {ty}"),
            };
        }
        _ => return protocol(provider, format!("mid-stream {ty}")),
    };
    ProviderError::Status {
        provider: provider.into(),
        status,
        retry_after: None,
        message: format!("mid-stream {ty}"),
    }
}

/// Anthropic's SSE grammar as a state machine.
#[derive(Debug, Default)]
pub(crate) struct StreamMapper {
    provider: String,
    usage: Usage,
    stop: Option<StopReason>,
    /// content block index -> tool-call index
    tool_blocks: Vec<(u64, u32)>,
    next_tool: u32,
    done: bool,
}

impl StreamMapper {
    pub fn new(provider: &str) -> Self {
        StreamMapper {
            provider: provider.into(),
            ..Default::default()
        }
    }

    fn tool_index(&self, block: u64) -> Option<u32> {
        self.tool_blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, t)| *t)
    }
}

impl StreamMapper {
    /// An event read into [`wire`] types, or `None` (and no change) where that reading gives
    /// up and [`Self::on_value_event`] gives the answer (`crate::lenient`).
    fn typed_event(&mut self, ev: &SseEvent) -> Option<Result<Vec<StreamEvent>, ProviderError>> {
        match serde_json::from_str::<Read<wire::Event>>(&ev.data) {
            Ok(Read(data)) => Some(self.on_wire_event(ev.event.as_deref(), data)),
            Err(e) if lenient::gave_up(&e) => None,
            Err(_) => Some(Err(protocol(&self.provider, "malformed stream event"))),
        }
    }

    fn on_wire_event(
        &mut self,
        event: Option<&str>,
        data: wire::Event<'_>,
    ) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        match event.or(data.r#type.as_deref()).unwrap_or_default() {
            "message_start" => {
                let msg = data
                    .message
                    .ok_or_else(|| protocol(&self.provider, "message_start without message"))?;
                if let Some(u) = msg.usage {
                    self.usage = usage_of_wire(&u);
                }
                out.push(StreamEvent::Start {
                    model: owned(msg.model),
                });
            }
            "content_block_start" => {
                let index = data.index.unwrap_or(0);
                let block = data.content_block;
                match block.r#type.as_deref() {
                    Some("tool_use") => {
                        let t = self.next_tool;
                        self.next_tool += 1;
                        self.tool_blocks.push((index, t));
                        out.push(StreamEvent::ToolCallStart {
                            index: t,
                            id: owned(block.id),
                            name: owned(block.name),
                        });
                    }
                    Some("text") => {
                        if let Some(text) = block.text
                            && !text.is_empty()
                        {
                            out.push(StreamEvent::TextDelta {
                                text: text.into_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = data.index.unwrap_or(0);
                let delta = data.delta;
                match delta.r#type.as_deref() {
                    Some("text_delta") => out.push(StreamEvent::TextDelta {
                        text: owned(delta.text),
                    }),
                    Some("input_json_delta") => {
                        let t = self.tool_index(index).ok_or_else(|| {
                            protocol(
                                &self.provider,
                                "input_json_delta for a block that is not a tool call",
                            )
                        })?;
                        if let Some(partial) = delta.partial_json
                            && !partial.is_empty()
                        {
                            out.push(StreamEvent::ToolCallDelta {
                                index: t,
                                partial_json: partial.into_owned(),
                            });
                        }
                    }
                    _ => {} // thinking, signature and citations deltas are not part of the normalized stream
                }
            }
            "message_delta" => {
                if let Some(r) = data.delta.stop_reason {
                    self.stop = Some(stop_reason(&r));
                }
                // Counts in message_delta are cumulative: the last one wins.
                if let Some(o) = data.usage.output_tokens {
                    self.usage.output_tokens = o;
                }
                if let Some(i) = data.usage.input_tokens {
                    self.usage.input_tokens = i;
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Usage { usage: self.usage });
                out.push(StreamEvent::Stop {
                    reason: self.stop.unwrap_or_default(),
                });
            }
            "error" => {
                let ty = data.error.r#type;
                return Err(stream_error_of(
                    &self.provider,
                    ty.as_deref().unwrap_or("unknown_error"),
                ));
            }
            _ => {} // ping, content_block_stop and future event types
        }
        Ok(out)
    }

    /// The reading of a `Value` that [`Self::on_wire_event`] replaced, kept for the events
    /// where the typed reading gives up, and as the reference its tests compare with.
    fn on_value_event(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|_| protocol(&self.provider, "malformed stream event"))?;
        let name = ev
            .event
            .as_deref()
            .or_else(|| data.get("type").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned();
        let mut out = Vec::new();
        match name.as_str() {
            "message_start" => {
                let msg = data
                    .get("message")
                    .ok_or_else(|| protocol(&self.provider, "message_start without message"))?;
                if let Some(u) = msg.get("usage") {
                    self.usage = usage_of(u);
                }
                out.push(StreamEvent::Start {
                    model: str_field(msg, "model"),
                });
            }
            "content_block_start" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let t = self.next_tool;
                        self.next_tool += 1;
                        self.tool_blocks.push((index, t));
                        out.push(StreamEvent::ToolCallStart {
                            index: t,
                            id: str_field(&block, "id"),
                            name: str_field(&block, "name"),
                        });
                    }
                    Some("text") => {
                        let text = str_field(&block, "text");
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { text });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push(StreamEvent::TextDelta {
                        text: str_field(&delta, "text"),
                    }),
                    Some("input_json_delta") => {
                        let partial = str_field(&delta, "partial_json");
                        let t = self.tool_index(index).ok_or_else(|| {
                            protocol(
                                &self.provider,
                                "input_json_delta for a block that is not a tool call",
                            )
                        })?;
                        if !partial.is_empty() {
                            out.push(StreamEvent::ToolCallDelta {
                                index: t,
                                partial_json: partial,
                            });
                        }
                    }
                    _ => {} // thinking, signature and citations deltas are not part of the normalized stream
                }
            }
            "message_delta" => {
                if let Some(r) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(stop_reason(r));
                }
                // Counts in message_delta are cumulative: the last one wins.
                if let Some(u) = data.get("usage") {
                    if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
                        self.usage.output_tokens = o;
                    }
                    if let Some(i) = u.get("input_tokens").and_then(Value::as_u64) {
                        self.usage.input_tokens = i;
                    }
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Usage { usage: self.usage });
                out.push(StreamEvent::Stop {
                    reason: self.stop.unwrap_or_default(),
                });
            }
            "error" => return Err(stream_error(&self.provider, &data)),
            _ => {} // ping, content_block_stop and future event types
        }
        Ok(out)
    }
}

impl SseMapper for StreamMapper {
    fn on_event(&mut self, ev: SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        self.typed_event(&ev)
            .unwrap_or_else(|| self.on_value_event(&ev))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[async_trait::async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let name = &self.cfg.name;
        http::unary(
            name,
            self.cfg.http.timeouts.total,
            self.send(req, false),
            |b| parse_response(name, b),
        )
        .await
    }

    async fn stream(&self, req: &ChatRequest) -> Result<EventStream, ProviderError> {
        let resp = self.send(req, true).await?;
        Ok(crate::sse::event_stream(
            &self.cfg.name,
            resp,
            self.cfg.http.timeouts.idle,
            StreamMapper::new(&self.cfg.name),
        ))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
