//! OpenAI Chat Completions mock: `POST /v1/chat/completions`, JSON or SSE, tool calls.
//!
//! Faithful to the reference: no `event:` lines, every chunk `data: {json}`, first delta
//! carries the role, tool-call argument fragments keyed by `index`, an `obfuscation` pad,
//! `finish_reason` on a chunk with an empty delta, a `choices: []` usage chunk only when
//! `stream_options.include_usage` is set, then `data: [DONE]`. Errors use
//! `{"error":{"message","type","param","code"}}`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{MockApi, Recorded, Reply};

/// The mock. `expected_key`: when set, any other bearer token gets a 401.
#[derive(Debug, Default, Clone)]
pub struct OpenAiMock {
    pub expected_key: Option<String>,
}

fn chunk(model: &str, delta: Value, finish: Value, pad: usize) -> Bytes {
    let v = json!({"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":model,
        "system_fingerprint":"fp_mock","choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}],
        "usage":null,"obfuscation":"x".repeat(pad % 7 + 1)});
    Bytes::from(format!("data: {v}\n\n"))
}

impl MockApi for OpenAiMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        if req.method != "POST" || !req.path.ends_with("/chat/completions") {
            return self.error(404, None);
        }
        let token = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned);
        if let Some(want) = &self.expected_key
            && token.as_deref() != Some(want.as_str())
        {
            return self.error(401, None);
        }
        let body = req.json();
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tool_msg = messages
            .iter()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"));
        let tool = body
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .and_then(|t| t.get("function"));
        let (text, call) = match (tool_msg, tool) {
            (Some(m), _) => (
                Some(format!(
                    "The tool said: {}",
                    m.get("content").and_then(Value::as_str).unwrap_or_default()
                )),
                None,
            ),
            (None, Some(f)) => (
                None,
                Some(
                    f.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("tool")
                        .to_owned(),
                ),
            ),
            (None, None) => (Some("Hello from the OpenAI mock.".to_owned()), None),
        };
        let prompt_tokens = (req.body.len() as u64).div_ceil(4);
        let usage = json!({"prompt_tokens":prompt_tokens,"completion_tokens":9,"total_tokens":prompt_tokens+9,
            "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}});
        let finish = if call.is_some() { "tool_calls" } else { "stop" };
        let headers = vec![("x-request-id".to_owned(), "req_mock_openai".to_owned())];
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let message = match (&text, &call) {
                (_, Some(name)) => {
                    json!({"role":"assistant","content":null,"refusal":null,"annotations":[],
                    "tool_calls":[{"id":"call_Mock1","type":"function","function":{"name":name,"arguments":crate::anthropic::TOOL_INPUT}}]})
                }
                (Some(t), None) => {
                    json!({"role":"assistant","content":t,"refusal":null,"annotations":[]})
                }
                (None, None) => json!({"role":"assistant","content":""}),
            };
            let v = json!({"id":"chatcmpl-Mock1","object":"chat.completion","created":1770933883,"model":model,
                "choices":[{"index":0,"message":message,"logprobs":null,"finish_reason":finish}],
                "usage":usage,"service_tier":"default","system_fingerprint":"fp_mock"});
            let Reply::Whole {
                status,
                headers: mut h,
                body,
            } = Reply::json(200, &v)
            else {
                return self.error(500, None);
            };
            h.extend(headers);
            return Reply::Whole {
                status,
                headers: h,
                body,
            };
        }
        let mut events = vec![chunk(
            &model,
            json!({"role":"assistant","content":"","refusal":null}),
            Value::Null,
            0,
        )];
        if let Some(t) = &text {
            for (i, piece) in t.split_inclusive(' ').enumerate() {
                events.push(chunk(&model, json!({"content":piece}), Value::Null, i + 1));
            }
        }
        if let Some(name) = &call {
            events.push(chunk(
                &model,
                json!({"tool_calls":[{"index":0,"id":"call_Mock1","type":"function","function":{"name":name,"arguments":""}}]}),
                Value::Null,
                3,
            ));
            for piece in ["{\"city\":", "\"Paris\"}"] {
                events.push(chunk(
                    &model,
                    json!({"tool_calls":[{"index":0,"function":{"arguments":piece}}]}),
                    Value::Null,
                    4,
                ));
            }
        }
        events.push(chunk(&model, json!({}), json!(finish), 5));
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        if include_usage {
            let v = json!({"id":"chatcmpl-Mock1","object":"chat.completion.chunk","created":1770933892,"model":model,
                "system_fingerprint":"fp_mock","choices":[],"usage":usage});
            events.push(Bytes::from(format!("data: {v}\n\n")));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let mut h = vec![(
            "content-type".to_owned(),
            "text/event-stream; charset=utf-8".to_owned(),
        )];
        h.extend(headers);
        Reply::Stream { headers: h, events }
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        let (ty, code) = match status {
            400 => ("invalid_request_error", Value::Null),
            401 => ("invalid_request_error", json!("invalid_api_key")),
            429 => ("requests", json!("rate_limit_exceeded")),
            503 => ("server_error", Value::Null),
            _ => ("server_error", Value::Null),
        };
        let v = json!({"error":{"message":format!("mock error {status}"),"type":ty,"param":null,"code":code}});
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-request-id".into(), "req_mock_err".into()),
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
        Bytes::from_static(
            b"data: {\"id\":\"chatcmpl-Mock1\",\"choices\":[{\"index\":0,\"delta\":{\"content\n\n",
        )
    }

    fn stream_error_event(&self) -> Bytes {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})
        ))
    }
}
