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
fn fragments(text: &str, n: usize) -> Vec<String> {
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

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn error_type(status: u16) -> &'static str {
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

impl MockApi for AnthropicMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        if req.method != "POST" || req.path != "/v1/messages" {
            return Reply::json(
                404,
                &json!({"type":"error","error":{"type":"not_found_error","message":"Not Found"}}),
            );
        }
        let key = req.header("x-api-key").map(str::to_owned).or_else(|| {
            req.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::to_owned)
        });
        let key_ok = match (&self.expected_key, &key) {
            (_, None) => false,
            (Some(want), Some(got)) => want == got,
            (None, Some(_)) => true,
        };
        if !key_ok || req.header("anthropic-version").is_none() {
            return self.error(401, None);
        }
        let body = req.json();
        for field in ["model", "max_tokens", "messages"] {
            if body.get(field).is_none() {
                return Reply::json(
                    400,
                    &json!({"type":"error","error":{"type":"invalid_request_error","message":format!("{field}: Field required")},"request_id":"req_mock"}),
                );
            }
        }
        let model = body["model"].as_str().unwrap_or_default().to_owned();
        let input_tokens = (req.body.len() as u64).div_ceil(4);
        let ans = answer(&body, self.tool_input.as_deref());
        let headers = vec![("request-id".to_owned(), "req_011CMock".to_owned())];
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let (content, stop) = match &ans {
                Answer::Text(t) => (json!([{"type":"text","text":t}]), "end_turn"),
                Answer::Tool { id, name, input } => (
                    json!([{"type":"tool_use","id":id,"name":name,"input":input}]),
                    "tool_use",
                ),
            };
            let v = json!({
                "model": model, "id": "msg_01Mock", "type": "message", "role": "assistant", "content": content,
                "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                          "output_tokens": 12, "service_tier": "standard"}
            });
            let Reply::Whole {
                status,
                mut headers,
                body,
            } = Reply::json(200, &v)
            else {
                return Reply::json(500, &v);
            };
            headers.push(("request-id".into(), "req_011CMock".into()));
            return Reply::Whole {
                status,
                headers,
                body,
            };
        }
        let mut events = vec![sse(
            "message_start",
            &json!({"type":"message_start","message":{"id":"msg_01Mock","type":"message","role":"assistant","model":model,
                "stop_sequence":null,"usage":{"input_tokens":input_tokens,"output_tokens":1},"content":[],"stop_reason":null}}),
        )];
        let stop = match &ans {
            Answer::Text(t) => {
                events.push(sse("content_block_start", &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})));
                events.push(sse("ping", &json!({"type":"ping"})));
                for piece in t.split_inclusive(' ') {
                    events.push(sse("content_block_delta", &json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":piece}})));
                }
                events.push(sse(
                    "content_block_stop",
                    &json!({"type":"content_block_stop","index":0}),
                ));
                "end_turn"
            }
            Answer::Tool { id, name, .. } => {
                events.push(sse("content_block_start", &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})));
                events.push(sse("content_block_delta", &json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}})));
                events.push(sse(
                    "content_block_stop",
                    &json!({"type":"content_block_stop","index":0}),
                ));
                events.push(sse("ping", &json!({"type":"ping"})));
                events.push(sse("content_block_start", &json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}})));
                let pieces: Vec<String> = match &self.tool_input {
                    None => ["", "{\"city\":", " \"Paris\"}"]
                        .map(str::to_owned)
                        .to_vec(),
                    Some(input) => std::iter::once(String::new())
                        .chain(fragments(input, 4))
                        .collect(),
                };
                for piece in pieces {
                    events.push(sse("content_block_delta", &json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":piece}})));
                }
                events.push(sse(
                    "content_block_stop",
                    &json!({"type":"content_block_stop","index":1}),
                ));
                "tool_use"
            }
        };
        events.push(sse(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"input_tokens":input_tokens,"output_tokens":7}}),
        ));
        events.push(sse(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":12}}),
        ));
        events.push(sse("message_stop", &json!({"type":"message_stop"})));
        let mut h = vec![
            (
                "content-type".to_owned(),
                "text/event-stream; charset=utf-8".to_owned(),
            ),
            ("cache-control".into(), "no-cache".into()),
        ];
        h.extend(headers);
        Reply::Stream { headers: h, events }
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        let ty = error_type(status);
        let message = if status == 529 {
            "Overloaded".to_owned()
        } else {
            format!("mock {ty}")
        };
        let v = json!({"type":"error","error":{"type":ty,"message":message},"request_id":"req_011CMockErr"});
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
