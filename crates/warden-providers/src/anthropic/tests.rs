//! The Anthropic adapter's wire shapes against captures and references.

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
    let mut req = crate::test_requests::weather_round_trip("claude-test", "toolu_01A");
    req.temperature = Some(0.5);
    let mut cfg = AnthropicConfig::new("anthropic", SecretString::from("k"), "default");
    let body: Value = serde_json::from_slice(&request_bytes(&req, &cfg, false)).unwrap();
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
    let body: Value = serde_json::from_slice(&request_bytes(&req, &cfg, true)).unwrap();
    assert!(body.get("temperature").is_none());
    assert_eq!(body["stream"], true);
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

/// The bytes written are those `serde_json` wrote of the `Value` the adapter built before, for
/// requests with and without each optional field, every content kind, texts with quotes,
/// control characters and multi-byte characters, and temperatures that are not finite.
#[test]
fn writes_the_bytes_the_value_body_had() {
    let texts = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "\n\r\t\u{0}\u{1f}\u{7f} controls",
        "é 日本 🦀 \u{2028}",
        "{\"ts\":\"2026-11-30T10:00:00Z\",\"msg\":\"x\"}\n",
    ];
    let mut requests = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let t = (*text).to_owned();
        requests.push(ChatRequest {
            model: (n % 2 == 0).then(|| format!("model-{t}")),
            system: (n % 3 != 0).then(|| format!("system {t}")),
            messages: vec![
                Message {
                    role: MessageRole::User,
                    content: vec![Content::text(t.clone()), Content::text("second part")],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![
                        Content::text(""),
                        Content::ToolUse {
                            id: format!("toolu_{t}"),
                            name: format!("tool {t}"),
                            input: json!({"q": t, "n": [1, -2, 3.5], "z": null, "a": {"b": true}}),
                        },
                        Content::ToolUse {
                            id: "toolu_2".into(),
                            name: "t2".into(),
                            input: json!({}),
                        },
                    ],
                },
                Message {
                    role: MessageRole::User,
                    content: vec![
                        Content::ToolResult {
                            tool_use_id: format!("toolu_{t}"),
                            content: t.clone(),
                            is_error: n % 2 == 1,
                        },
                        Content::ToolResult {
                            tool_use_id: "toolu_2".into(),
                            content: "ok".into(),
                            is_error: n % 2 == 0,
                        },
                        Content::text(t.clone()),
                    ],
                },
                Message {
                    role: MessageRole::Assistant,
                    content: vec![],
                },
            ],
            tools: (0..n % 3)
                .map(|k| ToolDef {
                    name: format!("tool{k}"),
                    description: format!("does {t}"),
                    input_schema: json!({"type": "object", "properties": {"q": {"type": "string", "description": t}}}),
                })
                .collect(),
            max_tokens: [0, 1, 512, u32::MAX][n % 4],
            temperature: [
                None,
                Some(0.2),
                Some(1.0),
                Some(f32::NAN),
                Some(f32::INFINITY),
                Some(-0.0),
            ][n % 6],
            ..Default::default()
        });
    }
    requests.push(ChatRequest::default());
    let mut cfg = AnthropicConfig::new("anthropic", SecretString::from("k"), "default \"model\"");
    cfg.default_max_tokens = 77;
    for version in [VERSION_2023, "2026-10-21"] {
        cfg.api_version = version.into();
        for req in &requests {
            for stream in [false, true] {
                let want = serde_json::to_vec(&request_body(req, &cfg, stream)).unwrap();
                let got = request_bytes(req, &cfg, stream);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{req:?}"
                );
            }
        }
    }
}

/// The body as a `Value`, as the adapter built it before `request_bytes`: the reference the
/// bytes are compared with.
fn request_body(req: &ChatRequest, cfg: &AnthropicConfig, stream: bool) -> Value {
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

#[test]
fn an_endpoint_that_does_not_parse_is_refused_with_the_config() {
    let mut cfg = AnthropicConfig::new("anthropic", SecretString::from("sk-ant-k"), "m");
    cfg.base_url = "https://exa mple.com".into();
    assert!(matches!(
        Anthropic::new(cfg),
        Err(BuildError::BadUrl { .. })
    ));
}

/// The headers are built once, so a version or key that cannot be one is refused at
/// every call, with its reason, before anything is sent.
#[tokio::test]
async fn headers_that_cannot_be_built_are_refused_and_nothing_is_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    for (key, version, why) in [
        (
            "sk-ant-bad\nkey",
            VERSION_2023,
            "API key is not a valid header value",
        ),
        ("sk-ant-k", "2023-06-01\n", "bad anthropic-version"),
    ] {
        let mut cfg = AnthropicConfig::new("anthropic", SecretString::from(key), "m");
        cfg.base_url = format!("http://{}", listener.local_addr().unwrap());
        cfg.http.allow_plain_http = true;
        cfg.api_version = version.into();
        let adapter = Anthropic::new(cfg).unwrap();
        for _ in 0..2 {
            let err = adapter.complete(&ChatRequest::default()).await.unwrap_err();
            assert!(
                matches!(&err, ProviderError::Invalid { message, .. } if message == why),
                "{err}"
            );
        }
    }
    assert!(
        listener.accept().is_err(),
        "a connection reached the provider"
    );
}
