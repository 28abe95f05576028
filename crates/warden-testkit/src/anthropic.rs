//! Anthropic Messages API mock: `POST /v1/messages`, JSON or SSE, tool use, error shapes.
//!
//! Faithful to the reference captures: `event:` line on every SSE event, `type` inside each
//! `data`, a `ping`, `input_json_delta` fragments (first one empty), cumulative
//! `message_delta.usage`, `message_stop` last, `request-id` header, error bodies
//! `{"type":"error","error":{"type","message"},"request_id"}` and mid-stream
//! `event: error` after a 200. Accepts `x-api-key` or `Authorization: Bearer`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{MockApi, Recorded, Reply};

/// The mock. `expected_key`: when set, any other key gets a 401. `tool_input`: the JSON
/// arguments of the tool call it makes (default `{"city": "Paris"}`); a custom one is
/// streamed in 4-byte `input_json_delta` fragments, as a model that echoes a value from its
/// input would (tests use it to check what the gateway does with placeholders in tool calls).
#[derive(Debug, Default, Clone)]
pub struct AnthropicMock {
    pub expected_key: Option<String>,
    pub tool_input: Option<String>,
}

/// What the mock answers: a call of the first tool (until a tool result is present), or text.
pub(crate) enum Answer {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
    },
}

pub(crate) const TOOL_INPUT: &str = r#"{"city": "Paris"}"#;

fn answer(body: &Value, tool_input: Option<&str>) -> Answer {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tool_result = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
    if let Some(r) = tool_result {
        let content = match r.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        return Answer::Text(format!("The tool said: {content}"));
    }
    if let Some(tool) = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
    {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("tool")
            .to_owned();
        return Answer::Tool {
            id: "toolu_01MockA".into(),
            name,
            input: serde_json::from_str(tool_input.unwrap_or(TOOL_INPUT)).unwrap_or_default(),
        };
    }
    Answer::Text("Hello from the Anthropic mock.".into())
}

/// `text` in pieces of about `n` bytes, cut on character boundaries.
pub(crate) fn fragments(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    for c in text.chars() {
        piece.push(c);
        if piece.len() >= n {
            out.push(std::mem::take(&mut piece));
        }
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

pub(crate) fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500 => "api_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error answer in Anthropic's shape: `{"type":"error","error":{"type","message"},"request_id"}`
/// with the `error.type` that belongs to `status`.
pub(crate) fn error_reply(status: u16, message: &str, retry_after: Option<&str>) -> Reply {
    let v = json!({"type":"error","error":{"type":error_type(status),"message":message},"request_id":"req_011CMockErr"});
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("request-id".into(), "req_011CMockErr".into()),
    ];
    if let Some(ra) = retry_after {
        headers.push(("retry-after".into(), ra.into()));
    }
    Reply::Whole {
        status,
        headers,
        body: Bytes::from(v.to_string()),
    }
}

/// Checks a request as the Messages API does: the route, the key (`x-api-key` or
/// `Authorization: Bearer`; any key when `expected_key` is `None`), `anthropic-version`
/// and the required body fields. `Ok` with the parsed body, or the error answer.
pub(crate) fn accept(req: &Recorded, expected_key: Option<&str>) -> Result<Value, Reply> {
    if req.method != "POST" || req.path != "/v1/messages" {
        return Err(Reply::json(
            404,
            &json!({"type":"error","error":{"type":"not_found_error","message":"Not Found"}}),
        ));
    }
    let key = req.header("x-api-key").or_else(|| {
        req.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    });
    let key_ok = match (expected_key, key) {
        (_, None) => false,
        (Some(want), Some(got)) => want == got,
        (None, Some(_)) => true,
    };
    if !key_ok || req.header("anthropic-version").is_none() {
        return Err(error_reply(401, "invalid x-api-key", None));
    }
    let body = req.json();
    for field in ["model", "max_tokens", "messages"] {
        if body.get(field).is_none() {
            return Err(error_reply(400, &format!("{field}: Field required"), None));
        }
    }
    Ok(body)
}

/// Did the request ask for a stream?
pub(crate) fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// A whole (non-streaming) Message answer with a `request-id` header.
pub(crate) fn message_reply(
    model: &str,
    content: Value,
    stop: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> Reply {
    let v = json!({
        "model": model, "id": "msg_01Mock", "type": "message", "role": "assistant", "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": output_tokens, "service_tier": "standard"}
    });
    Reply::Whole {
        status: 200,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("request-id".into(), "req_011CMock".into()),
        ],
        body: Bytes::from(v.to_string()),
    }
}

/// `message_start`: the Message with no content, `stop_reason: null` and initial usage.
pub(crate) fn message_start(model: &str, input_tokens: u64) -> Bytes {
    sse(
        "message_start",
        &json!({"type":"message_start","message":{"id":"msg_01Mock","type":"message","role":"assistant","model":model,
            "stop_sequence":null,"usage":{"input_tokens":input_tokens,"output_tokens":1},"content":[],"stop_reason":null}}),
    )
}

/// A text block `index`: start, one `text_delta` per piece, stop; `ping` after the start when asked.
pub(crate) fn text_block(index: usize, text: &str, ping: bool) -> Vec<Bytes> {
    let mut events = vec![sse(
        "content_block_start",
        &json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
    )];
    if ping {
        events.push(sse("ping", &json!({"type":"ping"})));
    }
    for piece in text.split_inclusive(' ') {
        events.push(sse("content_block_delta", &json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":piece}})));
    }
    events.push(sse(
        "content_block_stop",
        &json!({"type":"content_block_stop","index":index}),
    ));
    events
}

/// A tool_use block `index`: start with `"input":{}`, one `input_json_delta` per fragment, stop.
pub(crate) fn tool_block(index: usize, id: &str, name: &str, fragments: &[String]) -> Vec<Bytes> {
    let mut events = vec![sse(
        "content_block_start",
        &json!({"type":"content_block_start","index":index,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
    )];
    for piece in fragments {
        events.push(sse("content_block_delta", &json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":piece}})));
    }
    events.push(sse(
        "content_block_stop",
        &json!({"type":"content_block_stop","index":index}),
    ));
    events
}

/// The end of a stream: a `message_delta` with part of the output, one with all of it
/// (usage counts are cumulative), then `message_stop`.
pub(crate) fn message_end(
    stop: &str,
    input_tokens: u64,
    partial_output: u64,
    output_tokens: u64,
) -> Vec<Bytes> {
    vec![
        sse(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"input_tokens":input_tokens,"output_tokens":partial_output}}),
        ),
        sse(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":output_tokens}}),
        ),
        sse("message_stop", &json!({"type":"message_stop"})),
    ]
}

/// A streamed answer with the SSE headers and a `request-id`.
pub(crate) fn stream_reply(events: Vec<Bytes>) -> Reply {
    Reply::Stream {
        headers: vec![
            (
                "content-type".to_owned(),
                "text/event-stream; charset=utf-8".to_owned(),
            ),
            ("cache-control".into(), "no-cache".into()),
            ("request-id".into(), "req_011CMock".into()),
        ],
        events,
    }
}

impl MockApi for AnthropicMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        let body = match accept(req, self.expected_key.as_deref()) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let model = body["model"].as_str().unwrap_or_default().to_owned();
        let input_tokens = (req.body.len() as u64).div_ceil(4);
        let ans = answer(&body, self.tool_input.as_deref());
        if !wants_stream(&body) {
            let (content, stop) = match &ans {
                Answer::Text(t) => (json!([{"type":"text","text":t}]), "end_turn"),
                Answer::Tool { id, name, input } => (
                    json!([{"type":"tool_use","id":id,"name":name,"input":input}]),
                    "tool_use",
                ),
            };
            return message_reply(&model, content, stop, input_tokens, 12);
        }
        let mut events = vec![message_start(&model, input_tokens)];
        let stop = match &ans {
            Answer::Text(t) => {
                events.extend(text_block(0, t, true));
                "end_turn"
            }
            Answer::Tool { id, name, .. } => {
                events.extend(text_block(0, "Checking.", false));
                events.push(sse("ping", &json!({"type":"ping"})));
                let pieces: Vec<String> = match &self.tool_input {
                    None => ["", "{\"city\":", " \"Paris\"}"]
                        .map(str::to_owned)
                        .to_vec(),
                    Some(input) => std::iter::once(String::new())
                        .chain(fragments(input, 4))
                        .collect(),
                };
                events.extend(tool_block(1, id, name, &pieces));
                "tool_use"
            }
        };
        events.extend(message_end(stop, input_tokens, 7, 12));
        stream_reply(events)
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        let message = if status == 529 {
            "Overloaded".to_owned()
        } else {
            format!("mock {}", error_type(status))
        };
        error_reply(status, &message, retry_after)
    }

    fn malformed_event(&self) -> Bytes {
        Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n")
    }

    fn stream_error_event(&self) -> Bytes {
        sse(
            "error",
            &json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        )
    }
}
