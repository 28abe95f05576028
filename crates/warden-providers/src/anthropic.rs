//! Anthropic Messages API adapter (`POST /v1/messages`), unary JSON and SSE streaming.
//!
//! Maps the normalized model to Anthropic's blocks (`text`, `tool_use`, `tool_result`) and
//! back; classifies HTTP errors (400, 401, 429 with `retry-after`, 529 overloaded, 5xx) and
//! mid-stream `event: error` by `error.type`, not by the 200 status it arrived under.
//!
//! API versions: `2023-06-01` authenticates with `x-api-key` and accepts `temperature`;
//! `2026-10-21` (and later) uses `Authorization: Bearer` and rejects sampling parameters,
//! so `temperature` is dropped for it. The key is exposed only while building headers.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::http::{self, BuildError, HttpSettings};
use crate::sse::{SseEvent, SseMapper};
use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, Usage,
};

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
        Ok(Anthropic { cfg, client })
    }

    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let version = HeaderValue::from_str(&self.cfg.api_version)
            .map_err(|_| self.invalid("bad anthropic-version"))?;
        h.insert("anthropic-version", version);
        let key = self.cfg.api_key.expose_secret();
        let (name, value) = if uses_bearer(&self.cfg.api_version) {
            ("authorization", format!("Bearer {key}"))
        } else {
            ("x-api-key", key.to_owned())
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| self.invalid("API key is not a valid header value"))?;
        value.set_sensitive(true);
        h.insert(name, value);
        Ok(h)
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
        let url = format!("{}/v1/messages", self.cfg.base_url);
        let request = self.client.post(url).headers(self.headers()?).body(body);
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

/// The request body for `req` as the bytes sent (what `reqwest`'s `.json` wrote of it).
pub(crate) fn request_bytes(req: &ChatRequest, cfg: &AnthropicConfig, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&request_body(req, cfg, stream)).unwrap_or_default()
}

/// The request body for `req`. Pure, so the wire shape is a table test.
pub(crate) fn request_body(req: &ChatRequest, cfg: &AnthropicConfig, stream: bool) -> Value {
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| cfg.default_model.clone());
    let max_tokens = if req.max_tokens == 0 {
        cfg.default_max_tokens
    } else {
        req.max_tokens
    };
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                MessageRole::User => "user",
                MessageRole::Assistant => "assistant",
            };
            let content: Vec<Value> = m
                .content
                .iter()
                .map(|c| match c {
                    Content::Text { text } => json!({"type": "text", "text": text}),
                    Content::ToolUse { id, name, input } => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                    Content::ToolResult { tool_use_id, content, is_error } => {
                        let mut v = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
                        if *is_error {
                            v["is_error"] = Value::Bool(true);
                        }
                        v
                    }
                })
                .collect();
            json!({"role": role, "content": content})
        })
        .collect();
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
    if let Some(system) = &req.system {
        body["system"] = Value::String(system.clone());
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        body["tool_choice"] = json!({"type": "auto"});
    }
    if let Some(t) = req.temperature
        && !uses_bearer(&cfg.api_version)
    {
        body["temperature"] = json!(t);
    }
    if stream {
        body["stream"] = Value::Bool(true);
    }
    body
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
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
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

impl SseMapper for StreamMapper {
    fn on_event(&mut self, ev: SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
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
mod tests {
    use super::*;
    use crate::sse::SseDecoder;
    use crate::{Message, ToolDef};

    fn run(stream: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut m = StreamMapper::new("anthropic");
        let mut out = Vec::new();
        for ev in SseDecoder::default().push(stream.as_bytes()).unwrap() {
            out.extend(m.on_event(ev)?);
        }
        assert!(m.is_done());
        Ok(out)
    }

    #[test]
    fn a_key_across_the_cut_is_scrubbed_before_the_message_is_cut() {
        let key = "sk-ant-api03-Zx9QwErTy7UiOp1AsDfGhJkL";
        let secret = SecretString::from(key);
        // The key starts at character 190: a cut at 200 would keep its first ten characters.
        let message = format!("{}{key} is not valid", "x".repeat(190));
        let out = scrub(&message, &secret);
        assert!(out.chars().count() <= 200);
        assert!(!out.contains(&key[..8]), "{out}");
        assert!(out.contains("[REDACTED]"), "{out}");
        assert_eq!(scrub("short", &secret), "short");
    }

    /// The official docs example stream (reference §1.5): text, then a tool call.
    #[test]
    fn maps_the_documented_stream() {
        let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;
        assert_eq!(
            run(stream).unwrap(),
            vec![
                StreamEvent::Start {
                    model: "claude-opus-4-1-20250805".into()
                },
                StreamEvent::TextDelta {
                    text: "Okay".into()
                },
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    partial_json: "{\"location\":".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    partial_json: " \"San Francisco, CA\"}".into()
                },
                StreamEvent::Usage {
                    usage: Usage {
                        input_tokens: 472,
                        output_tokens: 89
                    }
                },
                StreamEvent::Stop {
                    reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[test]
    fn unknown_events_are_ignored_and_mid_stream_errors_are_classified_by_type() {
        let mut m = StreamMapper::new("anthropic");
        let ev = |event: &str, data: &str| SseEvent {
            event: Some(event.into()),
            data: data.into(),
        };
        assert_eq!(
            m.on_event(ev("future_event", r#"{"type":"future_event"}"#))
                .unwrap(),
            vec![]
        );
        let err = m
            .on_event(ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Status { status: 529, .. }),
            "{err:?}"
        );
        let err = m
            .on_event(ev(
                "error",
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#,
            ))
            .unwrap_err();
        assert!(err.is_rate_limited());
        assert!(matches!(
            m.on_event(ev("content_block_delta", "{not json")),
            Err(ProviderError::Protocol { .. })
        ));
    }

    /// The real non-streaming tool-use capture (reference §1.3).
    #[test]
    fn parses_the_captured_tool_response() {
        let body = br#"{"model":"claude-haiku-4-5-20251001","id":"msg_0191iYfpERYfS27xLsdW2nbb","type":"message","role":"assistant",
 "content":[{"type":"tool_use","id":"toolu_01Q9ExVZnzZj7E2QQYHYtNUa","name":"json","input":{"elements":[{"location":"San Francisco","temperature":-5,"condition":"snowy"}]}}],
 "stop_reason":"tool_use",
 "usage":{"input_tokens":1151,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
          "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":87,"service_tier":"standard"}}"#;
        let r = parse_response("anthropic", body).unwrap();
        assert_eq!(r.model, "claude-haiku-4-5-20251001");
        assert_eq!(r.stop_reason, StopReason::ToolUse);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 1151,
                output_tokens: 87
            }
        );
        let Content::ToolUse { name, input, .. } = &r.content[0] else {
            panic!("{r:?}")
        };
        assert_eq!(name, "json");
        assert_eq!(input["elements"][0]["temperature"], -5);
    }

    #[test]
    fn errors_keep_type_and_request_id_and_classify_spend_limits() {
        let key = SecretString::from("sk-ant-zzz");
        let e = status_error(
            "anthropic",
            529,
            None,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some("req_1"),
            &key,
        );
        assert_eq!(
            e.to_string(),
            "provider anthropic answered HTTP 529: overloaded_error: Overloaded (request-id req_1)"
        );
        let spend = br#"{"type":"error","error":{"type":"rate_limit_error","message":"spend","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        assert!(matches!(
            status_error("anthropic", 429, None, spend, None, &key),
            ProviderError::QuotaExhausted { .. }
        ));
        let echo = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-zzz"}}"#;
        let e = status_error("anthropic", 401, None, echo, None, &key);
        assert!(!e.to_string().contains("sk-ant-zzz"), "{e}");
        assert!(matches!(
            status_error("anthropic", 400, None, b"not json", None, &key),
            ProviderError::Invalid { .. }
        ));
    }

    /// The wire body for the reference tool round trip (anthropic 2.13 sent the same fields).
    #[test]
    fn encodes_the_tool_round_trip_like_the_sdk() {
        let req = ChatRequest {
            model: Some("claude-test".into()),
            system: Some("You are a weather bot.".into()),
            messages: vec![
                Message {
                    role: MessageRole::User,
                    content: vec![Content::text("Weather in Paris?")],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![Content::ToolUse {
                        id: "toolu_01A".into(),
                        name: "get_weather".into(),
                        input: json!({"city":"Paris"}),
                    }],
                },
                Message {
                    role: MessageRole::User,
                    content: vec![Content::ToolResult {
                        tool_use_id: "toolu_01A".into(),
                        content: "18C, sunny".into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![ToolDef {
                name: "get_weather".into(),
                description: "Get weather".into(),
                input_schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
            }],
            max_tokens: 512,
            temperature: Some(0.5),
            ..Default::default()
        };
        let mut cfg = AnthropicConfig::new("anthropic", SecretString::from("k"), "default");
        let body = request_body(&req, &cfg, false);
        assert_eq!(
            body,
            json!({"max_tokens":512,"messages":[
                {"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":"18C, sunny"}]}],
                "model":"claude-test","system":"You are a weather bot.","temperature":0.5,"tool_choice":{"type":"auto"},
                "tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]})
        );
        // 2026-10-21 rejects sampling parameters: temperature is dropped.
        cfg.api_version = "2026-10-21".into();
        assert!(request_body(&req, &cfg, true).get("temperature").is_none());
        assert_eq!(request_body(&req, &cfg, true)["stream"], true);
    }

    #[test]
    fn refuses_plain_http_and_redacts_debug() {
        let mut cfg = AnthropicConfig::new("anthropic", SecretString::from("sk-ant-SECRET"), "m");
        cfg.base_url = "http://127.0.0.1:9".into();
        let err = Anthropic::new(cfg.clone()).unwrap_err();
        assert!(matches!(err, BuildError::PlainHttp { .. }), "{err}");
        cfg.http.allow_plain_http = true;
        let a = Anthropic::new(cfg).unwrap();
        assert!(!format!("{a:?}").contains("SECRET"));
    }
}
