//! OpenAI Chat Completions adapter (`POST {base_url}/chat/completions`), unary and SSE.
//!
//! The base URL is configurable (it includes `/v1`), so vLLM, Ollama and other
//! OpenAI-compatible servers work. Streams ask for `stream_options.include_usage` so the
//! audit record gets token counts, and end at `data: [DONE]`. Tool-call arguments arrive
//! as string fragments keyed by index and are passed through as `ToolCallDelta`s.

use std::borrow::Cow;
use std::fmt;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::anthropic::scrub;
use crate::http::{self, BuildError, HttpSettings};
use crate::lenient::{self, Read};
use crate::sse::{SseEvent, SseMapper};
use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, Usage,
};

mod wire;

/// Everything needed to build an [`OpenAi`] adapter.
#[derive(Clone)]
pub struct OpenAiConfig {
    pub name: String,
    /// `https://api.openai.com/v1`, or a compatible server's `/v1` URL.
    pub base_url: String,
    /// `None` for local servers that need no key.
    pub api_key: Option<SecretString>,
    pub organization: Option<String>,
    pub default_model: String,
    /// Send `max_tokens` instead of `max_completion_tokens` (older compatible servers).
    pub legacy_max_tokens: bool,
    pub http: HttpSettings,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("default_model", &self.default_model)
            .finish_non_exhaustive()
    }
}

impl OpenAiConfig {
    pub fn new(
        name: impl Into<String>,
        api_key: Option<SecretString>,
        default_model: impl Into<String>,
    ) -> Self {
        OpenAiConfig {
            name: name.into(),
            base_url: "https://api.openai.com/v1".into(),
            api_key,
            organization: None,
            default_model: default_model.into(),
            legacy_max_tokens: false,
            http: HttpSettings::default(),
        }
    }
}

/// The OpenAI (and compatible) adapter.
#[derive(Clone)]
pub struct OpenAi {
    cfg: OpenAiConfig,
    client: reqwest::Client,
    /// `{base_url}/chat/completions`, parsed once.
    endpoint: reqwest::Url,
    /// The headers every request carries, built once, or why they cannot be (each call
    /// is then refused with that reason).
    headers: Result<HeaderMap, &'static str>,
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAi")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn no_secret() -> SecretString {
    SecretString::from(String::new())
}

impl OpenAi {
    /// Refuses `http://` base URLs unless `cfg.http.allow_plain_http`.
    pub fn new(mut cfg: OpenAiConfig) -> Result<Self, BuildError> {
        cfg.base_url = http::checked_base_url(&cfg.name, &cfg.base_url, cfg.http.allow_plain_http)?;
        let client = http::client(&cfg.name, &cfg.http)?;
        let endpoint = http::endpoint(&cfg.name, &cfg.base_url, "/chat/completions")?;
        let headers = request_headers(&cfg);
        Ok(OpenAi {
            cfg,
            client,
            endpoint,
            headers,
        })
    }

    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        self.headers.clone().map_err(|why| ProviderError::Invalid {
            provider: self.cfg.name.clone(),
            message: why.into(),
        })
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
            "x-request-id",
            |r| {
                let secret = self.cfg.api_key.clone().unwrap_or_else(no_secret);
                status_error(
                    &self.cfg.name,
                    r.status,
                    r.retry_after,
                    r.body,
                    r.request_id,
                    &secret,
                )
            },
        )
        .await
    }
}

/// The headers of every request of `cfg`, or why they cannot be built.
fn request_headers(cfg: &OpenAiConfig) -> Result<HeaderMap, &'static str> {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(key) = &cfg.api_key {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .map_err(|_| "API key is not a valid header value")?;
        v.set_sensitive(true);
        h.insert("authorization", v);
    }
    if let Some(org) = &cfg.organization
        && let Ok(v) = HeaderValue::from_str(org)
    {
        h.insert("openai-organization", v);
    }
    Ok(h)
}

/// The request body for `req`, written straight as the bytes sent (`json_out`: each text
/// escaped once, no `Value` tree), keys in the order `serde_json` writes a `Value`'s. Tool
/// results become `role: tool` messages placed before the user's text, because OpenAI requires
/// them right after the assistant's tool calls.
pub(crate) fn request_bytes(req: &ChatRequest, cfg: &OpenAiConfig, stream: bool) -> Vec<u8> {
    use crate::json_out::{joined, string, value, value_as_string};
    let model = req.model.as_deref().unwrap_or(&cfg.default_model);
    let mut out = Vec::with_capacity(req.content_bytes() + 512);
    out.push(b'{');
    if req.max_tokens > 0 {
        out.extend_from_slice(if cfg.legacy_max_tokens {
            b"\"max_tokens\":"
        } else {
            b"\"max_completion_tokens\":"
        });
        value(&mut out, &req.max_tokens);
        out.push(b',');
    }
    out.extend_from_slice(b"\"messages\":[");
    let mut first = true;
    let mut open = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.push(b'{');
    };
    if let Some(system) = &req.system {
        open(&mut out);
        out.extend_from_slice(b"\"content\":");
        string(&mut out, system);
        out.extend_from_slice(b",\"role\":\"system\"}");
    }
    for m in &req.messages {
        let texts: Vec<&str> = m
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        // As `texts.join("\n")` would be non-empty.
        let has_text = texts.len() > 1 || texts.first().is_some_and(|t| !t.is_empty());
        match m.role {
            MessageRole::User => {
                for c in &m.content {
                    if let Content::ToolResult {
                        tool_use_id,
                        content,
                        ..
                    } = c
                    {
                        open(&mut out);
                        out.extend_from_slice(b"\"content\":");
                        string(&mut out, content);
                        out.extend_from_slice(b",\"role\":\"tool\",\"tool_call_id\":");
                        string(&mut out, tool_use_id);
                        out.push(b'}');
                    }
                }
                if has_text {
                    open(&mut out);
                    out.extend_from_slice(b"\"content\":");
                    joined(&mut out, &texts);
                    out.extend_from_slice(b",\"role\":\"user\"}");
                }
            }
            MessageRole::Assistant => {
                open(&mut out);
                out.extend_from_slice(b"\"content\":");
                if has_text {
                    joined(&mut out, &texts);
                } else {
                    out.extend_from_slice(b"null");
                }
                out.extend_from_slice(b",\"role\":\"assistant\"");
                let mut calls = m.content.iter().filter_map(|c| match c {
                    Content::ToolUse { id, name, input } => Some((id, name, input)),
                    _ => None,
                });
                if let Some(call) = calls.next() {
                    out.extend_from_slice(b",\"tool_calls\":[");
                    for (i, (id, name, input)) in std::iter::once(call).chain(calls).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"{\"function\":{\"arguments\":");
                        value_as_string(&mut out, input);
                        out.extend_from_slice(b",\"name\":");
                        string(&mut out, name);
                        out.extend_from_slice(b"},\"id\":");
                        string(&mut out, id);
                        out.extend_from_slice(b",\"type\":\"function\"}");
                    }
                    out.push(b']');
                }
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"],\"model\":");
    string(&mut out, model);
    if stream {
        out.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    }
    if let Some(t) = req.temperature {
        // As a `Value` held it: the `f32` widened to `f64`.
        out.extend_from_slice(b",\"temperature\":");
        value(&mut out, &f64::from(t));
    }
    if !req.tools.is_empty() {
        out.extend_from_slice(b",\"tool_choice\":\"auto\",\"tools\":[");
        for (i, t) in req.tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"function\":{\"description\":");
            string(&mut out, &t.description);
            out.extend_from_slice(b",\"name\":");
            string(&mut out, &t.name);
            out.extend_from_slice(b",\"parameters\":");
            value(&mut out, &t.input_schema);
            out.extend_from_slice(b"},\"type\":\"function\"}");
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

pub(crate) fn finish_reason(s: &str) -> StopReason {
    match s {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

fn protocol(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.into(),
        message: message.into(),
    }
}

fn usage_of(u: &Value) -> Usage {
    Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    }
}

/// Parses a non-streaming chat completion.
pub(crate) fn parse_response(provider: &str, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    typed_response(provider, body).unwrap_or_else(|| parse_response_value(provider, body))
}

/// The completion read into [`wire`] types, or `None` where that reading gives up and
/// [`parse_response_value`] gives the answer (`crate::lenient`).
fn typed_response(provider: &str, body: &[u8]) -> Option<Result<ChatResponse, ProviderError>> {
    let c = match serde_json::from_slice::<Read<wire::Completion>>(body) {
        Ok(Read(c)) => c,
        Err(e) if lenient::gave_up(&e) => return None,
        Err(_) => return Some(Err(protocol(provider, "response is not JSON"))),
    };
    Some(response_of(provider, c))
}

fn response_of(provider: &str, c: wire::Completion<'_>) -> Result<ChatResponse, ProviderError> {
    let choice = c
        .choice
        .ok_or_else(|| protocol(provider, "response has no choices"))?;
    let msg = choice
        .message
        .ok_or_else(|| protocol(provider, "choice has no message"))?;
    let mut content = Vec::with_capacity(1 + msg.tool_calls.len());
    if let Some(text) = msg.content
        && !text.is_empty()
    {
        content.push(Content::Text {
            text: text.into_owned(),
        });
    }
    for call in msg.tool_calls {
        let args = call.function.arguments.as_deref().unwrap_or("{}");
        let input = serde_json::from_str(args)
            .map_err(|_| protocol(provider, "tool call arguments are not JSON"))?;
        content.push(Content::ToolUse {
            id: owned(call.id),
            name: owned(call.function.name),
            input,
        });
    }
    Ok(ChatResponse {
        model: owned(c.model),
        content,
        stop_reason: finish_reason(choice.finish_reason.as_deref().unwrap_or("stop")),
        usage: usage_of_wire(&c.usage),
    })
}

fn owned(s: wire::Str<'_>) -> String {
    s.map(Cow::into_owned).unwrap_or_default()
}

fn usage_of_wire(u: &wire::Usage) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens.unwrap_or(0),
        output_tokens: u.completion_tokens.unwrap_or(0),
    }
}

/// The reading of a `Value` that [`typed_response`] replaced, kept for the inputs where that
/// gives up, and as the reference its tests compare with.
fn parse_response_value(provider: &str, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| protocol(provider, "response is not JSON"))?;
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| protocol(provider, "response has no choices"))?;
    let msg = choice
        .get("message")
        .ok_or_else(|| protocol(provider, "choice has no message"))?;
    let mut content = Vec::new();
    if let Some(text) = msg.get("content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(Content::text(text));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function").cloned().unwrap_or(Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input = serde_json::from_str(args)
            .map_err(|_| protocol(provider, "tool call arguments are not JSON"))?;
        content.push(Content::ToolUse {
            id: call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            name: f
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            input,
        });
    }
    Ok(ChatResponse {
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        content,
        stop_reason: finish_reason(
            choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("stop"),
        ),
        usage: v.get("usage").map(usage_of).unwrap_or_default(),
    })
}

/// Maps an HTTP error answer; `insufficient_quota` 429s are not worth retrying.
pub(crate) fn status_error(
    provider: &str,
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    request_id: Option<&str>,
    secret: &SecretString,
) -> ProviderError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = v.get("error");
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (ty, code) = (field("type"), field("code"));
    let label = if code.is_empty() {
        if ty.is_empty() {
            "error".to_owned()
        } else {
            ty.clone()
        }
    } else {
        code.clone()
    };
    let mut message = format!("{label}: {}", scrub(&field("message"), secret));
    if let Some(id) = request_id {
        message.push_str(&format!(" (x-request-id {id})"));
    }
    match status {
        429 if code == "insufficient_quota" || ty == "insufficient_quota" => {
            ProviderError::QuotaExhausted {
                provider: provider.into(),
                message,
            }
        }
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

/// OpenAI's chunk grammar as a state machine.
#[derive(Debug, Default)]
pub(crate) struct StreamMapper {
    provider: String,
    started: bool,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    done: bool,
}

impl StreamMapper {
    pub fn new(provider: &str) -> Self {
        StreamMapper {
            provider: provider.into(),
            ..Default::default()
        }
    }

    /// A chunk read into [`wire`] types, or `None` (and no change) where that reading gives up
    /// and [`Self::on_value_chunk`] gives the answer (`crate::lenient`).
    fn typed_chunk(&mut self, data: &str) -> Option<Result<Vec<StreamEvent>, ProviderError>> {
        match serde_json::from_str::<Read<wire::Chunk>>(data) {
            Ok(Read(chunk)) => Some(self.on_chunk(chunk)),
            Err(e) if lenient::gave_up(&e) => None,
            Err(_) => Some(Err(protocol(&self.provider, "malformed stream chunk"))),
        }
    }

    /// An `error` object sent in the stream, by its `code` or `type`: a rate limit is retried
    /// as one.
    fn mid_stream_error(&self, ty: &str) -> ProviderError {
        ProviderError::Status {
            provider: self.provider.clone(),
            status: if ty.contains("rate_limit") { 429 } else { 500 },
            retry_after: None,
            message: format!("mid-stream {ty}"),
        }
    }

    fn on_chunk(&mut self, chunk: wire::Chunk<'_>) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if let Some(err) = chunk.error {
            let ty = err.code.unwrap_or(err.r#type);
            return Err(self.mid_stream_error(ty.as_deref().unwrap_or("error")));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                model: owned(chunk.model),
            });
        }
        if let Some(u) = &chunk.usage.0 {
            self.usage = Some(usage_of_wire(u));
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta {
                    text: text.into_owned(),
                });
            }
            for call in choice.delta.tool_calls {
                let index = call.index.unwrap_or(0) as u32;
                if let Some(id) = call.id {
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: id.into_owned(),
                        name: owned(call.function.name),
                    });
                }
                if let Some(args) = call.function.arguments
                    && !args.is_empty()
                {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        partial_json: args.into_owned(),
                    });
                }
            }
            if let Some(r) = choice.finish_reason {
                self.stop = Some(finish_reason(&r));
            }
        }
        Ok(out)
    }

    /// The reading of a `Value` that [`Self::on_chunk`] replaced, kept for the chunks where
    /// the typed reading gives up, and as the reference its tests compare with.
    fn on_value_chunk(&mut self, data: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        let v: Value = serde_json::from_str(data)
            .map_err(|_| protocol(&self.provider, "malformed stream chunk"))?;
        if let Some(err) = v.get("error") {
            let ty = err
                .get("code")
                .or_else(|| err.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("error");
            return Err(self.mid_stream_error(ty));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                model: v
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            });
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage_of(u));
        }
        for choice in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta { text: text.into() });
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                let f = call.get("function").cloned().unwrap_or(Value::Null);
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    let name = f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into();
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: id.into(),
                        name,
                    });
                }
                if let Some(args) = f.get("arguments").and_then(Value::as_str)
                    && !args.is_empty()
                {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        partial_json: args.into(),
                    });
                }
            }
            if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                self.stop = Some(finish_reason(r));
            }
        }
        Ok(out)
    }
}

impl SseMapper for StreamMapper {
    fn on_event(&mut self, ev: SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            let mut out = Vec::new();
            if let Some(usage) = self.usage {
                out.push(StreamEvent::Usage { usage });
            }
            out.push(StreamEvent::Stop {
                reason: self.stop.unwrap_or_default(),
            });
            return Ok(out);
        }
        self.typed_chunk(&ev.data)
            .unwrap_or_else(|| self.on_value_chunk(&ev.data))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
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
mod wire_tests;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Message;
    use crate::sse::SseDecoder;

    /// The exact body openai 3.57.0 sent for this conversation (reference §2.2).
    #[test]
    fn encodes_the_tool_round_trip_exactly_like_the_sdk() {
        let req = crate::test_requests::weather_round_trip("gpt-test", "call_1");
        let cfg = OpenAiConfig::new("openai", None, "default");
        let sdk: Value = serde_json::from_str(r#"{"model":"gpt-test","stream":true,"messages":[{"role":"system","content":"You are a weather bot."},{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C, sunny"}],"max_completion_tokens":512,"stream_options":{"include_usage":true},"tool_choice":"auto","tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}"#).unwrap();
        // Byte for byte as `serde_json` writes that `Value` (its keys sorted).
        let sent = String::from_utf8(request_bytes(&req, &cfg, true)).unwrap();
        assert_eq!(sent, sdk.to_string());
    }

    /// The bytes are those of the `Value` the adapter used to build (keys in `serde_json`'s
    /// order, the temperature widened to `f64`), for the fields the SDK test above leaves out.
    #[test]
    fn writes_the_bytes_serde_json_wrote() {
        let req = ChatRequest {
            model: None,
            messages: vec![
                Message {
                    role: MessageRole::User,
                    content: vec![Content::text("two \"parts\"\t"), Content::text("é\u{1}")],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![Content::text("")],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![Content::text("a"), Content::text("")],
                },
                Message {
                    role: MessageRole::User,
                    content: vec![],
                },
            ],
            max_tokens: 7,
            temperature: Some(0.2),
            ..Default::default()
        };
        let mut cfg = OpenAiConfig::new("openai", None, "default-model");
        cfg.legacy_max_tokens = true;
        let want = json!({"model": "default-model", "max_tokens": 7, "temperature": 0.2f32,
            "messages": [{"role": "user", "content": "two \"parts\"\t\né\u{1}"},
                {"role": "assistant", "content": null}, {"role": "assistant", "content": "a\n"}]});
        assert_eq!(
            String::from_utf8(request_bytes(&req, &cfg, false)).unwrap(),
            want.to_string()
        );
    }

    /// The literal stream from the reference (§2.4), parsed by openai 3.57.0 there.
    #[test]
    fn maps_the_reference_stream() {
        let stream = r#"data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_Mock1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":"gpt-test","system_fingerprint":"fp_mock","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":9,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;
        let mut m = StreamMapper::new("openai");
        let mut out = Vec::new();
        for ev in SseDecoder::default().push(stream.as_bytes()).unwrap() {
            out.extend(m.on_event(ev).unwrap());
        }
        assert!(m.is_done());
        assert_eq!(
            out,
            vec![
                StreamEvent::Start {
                    model: "gpt-test".into()
                },
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "call_Mock1".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    partial_json: "{\"city\":".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    partial_json: "\"Paris\"}".into()
                },
                StreamEvent::Usage {
                    usage: Usage {
                        input_tokens: 16,
                        output_tokens: 9
                    }
                },
                StreamEvent::Stop {
                    reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[test]
    fn parses_the_captured_response_and_classifies_errors() {
        let body = br#"{"id":"chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU","object":"chat.completion","created":1770933883,"model":"gpt-4.1-nano-2025-04-14",
 "choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],
 "usage":{"prompt_tokens":16,"completion_tokens":363,"total_tokens":379}}"#;
        let r = parse_response("openai", body).unwrap();
        assert_eq!(
            (r.content, r.usage),
            (
                vec![Content::text("Hi")],
                Usage {
                    input_tokens: 16,
                    output_tokens: 363
                }
            )
        );
        let s = SecretString::from("sk-x");
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(matches!(
            status_error("openai", 429, None, quota, None, &s),
            ProviderError::QuotaExhausted { .. }
        ));
        let legacy = br#"{"error":{"message":"Unsupported parameter: 'max_tokens'","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#;
        let e = status_error("openai", 400, None, legacy, Some("req_9"), &s);
        assert_eq!(
            e.to_string(),
            "provider openai refused the request: HTTP 400 unsupported_parameter: Unsupported parameter: 'max_tokens' (x-request-id req_9)"
        );
    }

    #[test]
    fn refuses_plain_http_unless_allowed() {
        let mut cfg = OpenAiConfig::new("vllm", None, "qwen");
        cfg.base_url = "http://127.0.0.1:8000/v1".into();
        assert!(matches!(
            OpenAi::new(cfg.clone()),
            Err(BuildError::PlainHttp { .. })
        ));
        cfg.http.allow_plain_http = true;
        assert!(OpenAi::new(cfg).is_ok());
    }

    #[test]
    fn an_endpoint_that_does_not_parse_is_refused_with_the_config() {
        let mut cfg = OpenAiConfig::new("openai", None, "m");
        cfg.base_url = "https://exa mple.com/v1".into();
        assert!(matches!(OpenAi::new(cfg), Err(BuildError::BadUrl { .. })));
    }

    /// The headers are built once, so a key that cannot be one is refused at every call,
    /// before anything is sent.
    #[tokio::test]
    async fn a_key_that_cannot_be_a_header_is_refused_and_nothing_is_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut cfg = OpenAiConfig::new("openai", Some(SecretString::from("sk-bad\nkey")), "m");
        cfg.base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        cfg.http.allow_plain_http = true;
        let adapter = OpenAi::new(cfg).unwrap();
        for _ in 0..2 {
            let err = adapter.complete(&ChatRequest::default()).await.unwrap_err();
            assert!(
                matches!(&err, ProviderError::Invalid { message, .. } if message == "API key is not a valid header value"),
                "{err}"
            );
        }
        assert!(
            listener.accept().is_err(),
            "a connection reached the provider"
        );
    }
}
