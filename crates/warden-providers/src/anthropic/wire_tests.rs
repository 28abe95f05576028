//! The typed reading of Messages answers and stream events against the `Value` reading it
//! replaced (`parse_response_value`, `StreamMapper::on_value_event`), on generated odd answers
//! and events (`crate::odd_json`) and hand-written ones.

use serde_json::{Value, json};

use super::*;
use crate::odd_json::{bad_members, check_answer_parse, private, variants};

fn bases() -> Vec<Value> {
    vec![
        json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "Hi \"there\" é", "citations": null},
                {"type": "thinking", "thinking": "hm", "signature": "s"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 0, "output_tokens": 3,
                "cache_creation": {"ephemeral_5m_input_tokens": 0}, "service_tier": "standard"}}),
        json!({"model": "claude-haiku", "content": [{"type": "text", "text": ""},
            {"type": "tool_use", "id": "toolu_1", "name": "json",
                "input": {"elements": [{"t": -5, "s": "sn\u{f6}wy"}], "n": null}},
            {"type": "tool_use", "id": "toolu_2", "name": "none"}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}}),
    ]
}

fn odd_bodies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        "null",
        "[]",
        "{}",
        r#"{"content":{}}"#,
        r#"{"content":[]}"#,
        r#"{"content":[1,null,"text",[],{}]}"#,
        r#"{"content":[{"type":"text"}],"content":5}"#,
        r#"{"content":5,"content":[{"type":"text","text":"a"}]}"#,
        r#"{"content":[{"type":"text","text":"a","type":"tool_use"}]}"#,
        r#"{"content":[{"type":"tool_use","input":1,"input":{"a":[1]}}]}"#,
        r#"{"content":[{"type":"tool_use","input":null}]}"#,
        r#"{"content":[{"type":"tool_use","input":{"a":1,"a":2}}]}"#,
        r#"{"content":[{"type":"tool_use","input":{"$serde_json::private::RawValue":"[1]"}}]}"#,
        r#"{"content":[{"type":"tool_use","input":{"$serde_json::private::RawValue":"[1"}}]}"#,
        r#"{"c\u006fntent":[{"t\u0079pe":"t\u0065xt","text":"\u0041\ud83e\udd80"}],"model":"m\u00e9","usage":{"output_t\u006fkens":9}}"#,
        r#"{"content":[{"type":"text","text":"a"}],"usage":{"input_tokens":-1,"output_tokens":2.0}}"#,
        r#"{"content":[{"type":"text","text":"a"}]} x"#,
        r#"{"content":[{"type":"text","text":"a"}]"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.extend(bad_members(r#"{"content":[{"type":"text","text":"a"}]}"#));
    out
}

#[test]
fn an_answer_reads_as_its_value_did() {
    let mut bodies: Vec<Vec<u8>> = bases()
        .iter()
        .flat_map(variants)
        .map(String::into_bytes)
        .collect();
    bodies.extend(odd_bodies());
    check_answer_parse(
        &bodies,
        |b| parse_response("anthropic", b),
        |b| typed_response("anthropic", b),
        |b| parse_response_value("anthropic", b),
        &[
            "ok, 0 parts",
            "ok, 1 parts",
            "ok, 3 parts",
            "provider anthropic sent a malformed response: response is not JSON",
            "provider anthropic sent a malformed response: response has no content array",
        ],
    );
}

/// Real events of each type, with the SSE event name they arrive under.
fn event_bases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01",
            "type": "message", "role": "assistant", "model": "claude-t\u{e9}st", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 472,
            "cache_read_input_tokens": 0, "output_tokens": 2, "service_tier": "standard"}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": "Hi \"é\""}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Okay \"é\""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
            "stop_sequence": null}, "usage": {"output_tokens": 89, "input_tokens": 5}}),
        ),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "Overloaded"}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

/// Events the generated variants do not reach.
fn odd_events() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        " ",
        "{not json",
        "null",
        "[]",
        "5",
        r#""message_stop""#,
        "{}",
        r#"{"type":"ping"} x"#,
        r#" {"type":"message_stop"} "#,
        r#"{"type":"message_stop""#,
        r#"{"type":"message_start"}"#,
        r#"{"type":"message_start","message":null}"#,
        r#"{"type":"message_start","message":{"usage":null}}"#,
        r#"{"type":"message_start","message":{"usage":{"input_tokens":1},"usage":5}}"#,
        r#"{"type":"message_start","message":5,"message":{"model":"m"}}"#,
        r#"{"type":"message_start","message":{"model":"m"},"message":[]}"#,
        r#"{"type":"content_block_start","content_block":{"type":"tool_use"}}"#,
        r#"{"type":"content_block_start","index":-1,"content_block":{"type":"tool_use","id":"a"}}"#,
        r#"{"type":"content_block_start","index":1.0,"content_block":{"type":"tool_use","id":"b"}}"#,
        r#"{"type":"content_block_start","index":4294967297,"content_block":{"type":"tool_use"}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text"}}"#,
        r#"{"type":"content_block_start","content_block":{"type":"tool_use","type":"text","text":"t"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"x"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"partial_json":"x","type":"input_json_delta","partial_json":7}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta"}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":""}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"},"delta":null}"#,
        r#"{"t\u0079pe":"content_block_delta","ind\u0065x":1,"delta":{"type":"text_d\u0065lta","text":"\u00e9\ud83e\udd80"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"\u00e9\":"}}"#,
        r#"{"type":"message_delta"}"#,
        r#"{"type":"message_delta","delta":null,"usage":null}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":5},"usage":{"input_tokens":-1,"output_tokens":2.0}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":7}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"refusal","stop_reason":null},"usage":{"output_tokens":18446744073709551615}}"#,
        r#"{"type":"error"}"#,
        r#"{"type":"error","error":null}"#,
        r#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
        r#"{"type":"error","error":{"type":"api_error"}}"#,
        r#"{"type":"error","error":{"type":"timeout_error"}}"#,
        r#"{"type":"error","error":{"type":"invalid_request_error"}}"#,
        r#"{"type":"error","error":{"type":"x"},"error":{"type":"overloaded_error"}}"#,
        r#"{"type":"message_stop","type":"error"}"#,
        r#"{"type":5}"#,
        r#"{"$serde_json::private::RawValue":"{\"type\":\"message_stop\"}"}"#,
        r#"{"type":"message_start","message":{"$serde_json::private::RawValue":"{\"model\":\"m\"}"}}"#,
        r#"{"type":"message_delta","usage":{"$serde_json::private::Number":"1"}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.extend(bad_members(
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
    ));
    out
}

/// Feeds `events` to a mapper reading them typed (asserting it never gives up on one without
/// a private key) and to one reading `Value`s; both must answer alike at each step and end in
/// the same state. Returns each answer of the reference, and how often the typed one gave up.
fn same_stream(events: &[(Option<&str>, &str)]) -> (Vec<String>, usize) {
    let (mut typed, mut reference) = (
        StreamMapper::new("anthropic"),
        StreamMapper::new("anthropic"),
    );
    let (mut answers, mut gave_up) = (Vec::new(), 0);
    for (event, data) in events {
        let ev = SseEvent {
            event: event.map(String::from),
            data: (*data).into(),
        };
        let got = match typed.typed_event(&ev) {
            Some(got) => got,
            None => {
                assert!(private(data.as_bytes()), "gave up on {event:?} {data}");
                gave_up += 1;
                typed.on_event(ev.clone())
            }
        };
        let want = reference.on_value_event(&ev);
        assert_eq!(got, want, "{event:?} {data}");
        assert_eq!(
            format!("{typed:?}"),
            format!("{reference:?}"),
            "{event:?} {data}"
        );
        answers.push(match want {
            Ok(events) => format!("{events:?}"),
            Err(e) => e.to_string(),
        });
    }
    (answers, gave_up)
}

#[test]
fn a_stream_event_reads_as_its_value_did() {
    let start = r#"{"type":"message_start","message":{"model":"m","usage":{"input_tokens":3,"output_tokens":1}}}"#;
    let tool = r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}}"#;
    let text =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"more"}}"#;
    let stop = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#;
    // Each event, under its own name, with no name (read from `type`) and under every name.
    let mut events: Vec<(Option<&str>, String)> = Vec::new();
    for (name, base) in event_bases() {
        for body in variants(&base) {
            events.push((Some(name), body.clone()));
            events.push((None, body));
        }
    }
    let names = event_bases().into_iter().map(|(name, _)| Some(name));
    let names: Vec<Option<&str>> = std::iter::once(None).chain(names).collect();
    for body in odd_events() {
        let Ok(body) = String::from_utf8(body) else {
            continue; // the SSE decoder refuses bytes that are not UTF-8
        };
        for name in &names {
            events.push((*name, body.clone()));
        }
    }
    let (mut answers, mut gave_up) = (std::collections::BTreeSet::new(), 0);
    for (name, body) in &events {
        let ev = (*name, body.as_str());
        let (got, n) = same_stream(&[
            (Some("message_start"), start),
            (None, tool),
            ev,
            (None, text),
            ev,
            (None, stop),
            (Some("message_stop"), "{}"),
        ]);
        answers.insert(got[2].clone());
        let (got, m) = same_stream(&[ev, (None, start), ev, (None, r#"{"type":"message_stop"}"#)]);
        answers.insert(got[0].clone());
        gave_up += n + m;
    }
    // The table reaches every error and every kind of event.
    let answers: Vec<String> = answers.into_iter().collect();
    for outcome in [
        "provider anthropic sent a malformed response: malformed stream event",
        "provider anthropic sent a malformed response: message_start without message",
        "provider anthropic sent a malformed response: input_json_delta for a block that is not a tool call",
        "provider anthropic sent a malformed response: mid-stream unknown_error",
        "HTTP 529",
        "HTTP 429",
        "HTTP 500",
        "HTTP 504",
        "mid-stream invalid_request_error",
        "[Start",
        "[TextDelta",
        "[ToolCallStart",
        "[ToolCallDelta",
        "[Usage",
    ] {
        assert!(
            answers.iter().any(|a| a.contains(outcome)),
            "{outcome} not in {answers:#?}"
        );
    }
    assert!(answers.iter().any(|a| a == "[]"), "no empty answer");
    assert!(
        gave_up > 0 && events.len() > 4000,
        "{gave_up} of {}",
        events.len()
    );
}
