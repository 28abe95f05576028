//! The typed reading of completions and stream chunks against the `Value` reading it replaced
//! (`parse_response_value`, `StreamMapper::on_value_chunk`), on a table of odd answers: every
//! value of a few real answers replaced in turn by values of every type, repeated, and next to
//! an unknown member; and hand-written bodies for keys with escapes, bodies that are not JSON
//! for `serde_json` in ways a skipping parser would miss, and `serde_json`'s private keys.

use serde_json::{Value, json};

use super::*;
use crate::odd_json::{bad_members, check_answer_parse, private, variants};

fn completion_bases() -> Vec<Value> {
    vec![
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_770_933_883u64,
            "model": "gpt-4.1-nano", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Hi \"there\" é", "refusal": null, "annotations": []}, "logprobs": null,
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 16, "completion_tokens": 363,
            "total_tokens": 379, "prompt_tokens_details": {"cached_tokens": 0}}}),
        json!({"model": "gpt-test", "choices": [{"message": {"content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\":\"Par\\u00eds\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "[1,2]"}}]},
            "finish_reason": "tool_calls"}, {"message": {"content": "second choice"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    ]
}

/// Bodies the generated variants do not reach.
fn odd_bodies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        " ",
        "null",
        "[]",
        "5",
        r#""choices""#,
        "{}",
        r#"{"choices":[]}"#,
        r#"{"choices":[5]}"#,
        r#"{"choices":[null,{"message":{"content":"a"}}]}"#,
        r#"{"choices":[{}]}"#,
        r#"{"choices":[{"message":null}]}"#,
        r#" {"choices":[{"message":{"content":"a"}}]} "#,
        r#"{"choices":[{"message":{"content":"a"}}]} x"#,
        r#"{"choices":[{"message":{"content":"a"}}],}"#,
        r#"{"choices":[{"message":{"content":"a"}}]"#,
        r#"{"ch\u006fices":[{"m\u0065ssage":{"c\u006fntent":"\u0041\ud83e\udd80","tool_calls":[{"\u0069d":"\u0063","function":{"n\u0061me":"\u006e","arguments":"{\"\u0061\":\"\\u00e9\"}"}}]}}],"model":"m\u00e9","usage":{"prompt_t\u006fkens":3}}"#,
        r#"{"choices":[{"message":{"content":"a"}}],"choices":[]}"#,
        r#"{"choices":[],"choices":[{"message":{"content":"a"}}]}"#,
        r#"{"choices":[{"message":{"content":"a"},"message":5}]}"#,
        r#"{"choices":[{"message":{"content":"a","content":null}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{bad"}}],"tool_calls":[]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[],"tool_calls":[{"function":{"arguments":"{bad"}}]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":""}}]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":{"a":1}}}]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[1,null,"x",[],{}]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{\"$serde_json::private::RawValue\":\"[1]\"}"}}]}}]}"#,
        r#"{"choices":[{"message":{"content":"a"}}],"usage":{"prompt_tokens":-1,"completion_tokens":1.0}}"#,
        r#"{"choices":[{"message":{"content":"a"}}],"usage":{"prompt_tokens":18446744073709551615}}"#,
        r#"{"$serde_json::private::RawValue":"{\"choices\":[{\"message\":{}}]}"}"#,
        r#"{"choices":[{"message":{"$serde_json::private::RawValue":"{\"content\":\"hi\"}"}}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.extend(bad_members(r#"{"choices":[{"message":{"content":"a"}}]}"#));
    out
}

#[test]
fn a_completion_reads_as_its_value_did() {
    let mut bodies: Vec<Vec<u8>> = completion_bases()
        .iter()
        .flat_map(variants)
        .map(String::into_bytes)
        .collect();
    bodies.extend(odd_bodies());
    // The table reaches every outcome.
    check_answer_parse(
        &bodies,
        |b| parse_response("openai", b),
        |b| typed_response("openai", b),
        |b| parse_response_value("openai", b),
        &[
            "ok, 0 parts",
            "ok, 1 parts",
            "ok, 2 parts",
            "ok, 3 parts",
            "provider openai sent a malformed response: response is not JSON",
            "provider openai sent a malformed response: response has no choices",
            "provider openai sent a malformed response: choice has no message",
            "provider openai sent a malformed response: tool call arguments are not JSON",
        ],
    );
}

fn chunk_bases() -> Vec<Value> {
    vec![
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "system_fingerprint": "fp", "choices": [{"index": 0, "delta": {"role": "assistant",
            "content": "Hi \"é\"", "refusal": null}, "logprobs": null, "finish_reason": null}], "usage": null}),
        json!({"model": "gpt-test", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            {"index": 2, "function": {"arguments": "{\"city\":"}}]}, "finish_reason": null}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": {
            "prompt_tokens": 16, "completion_tokens": 9, "total_tokens": 25}}),
        json!({"error": {"code": "rate_limit_exceeded", "type": "requests", "message": "slow down"}}),
        json!({"error": {"type": "server_error"}}),
    ]
}

/// Runs `chunks` through a mapper reading them typed (asserting it never gives up on a body
/// without a private key) and through one reading `Value`s; both must answer alike at each step
/// and end in the same state.
fn same_stream(chunks: &[&str]) -> usize {
    let (mut typed, mut reference) = (StreamMapper::new("openai"), StreamMapper::new("openai"));
    let mut gave_up = 0;
    for data in chunks {
        let ev = || SseEvent {
            event: None,
            data: (*data).into(),
        };
        let (want, got) = if data.trim() == "[DONE]" {
            (reference.on_event(ev()), typed.on_event(ev()))
        } else {
            let got = match typed.typed_chunk(data) {
                Some(got) => got,
                None => {
                    assert!(private(data.as_bytes()), "gave up on {data}");
                    gave_up += 1;
                    typed.on_event(ev())
                }
            };
            (reference.on_value_chunk(data), got)
        };
        assert_eq!(got, want, "{data}");
        assert_eq!(format!("{typed:?}"), format!("{reference:?}"), "{data}");
    }
    gave_up
}

#[test]
fn a_stream_chunk_reads_as_its_value_did() {
    let next =
        r#"{"model":"other","choices":[{"delta":{"content":"more"},"finish_reason":"length"}]}"#;
    let mut bodies: Vec<String> = chunk_bases().iter().flat_map(variants).collect();
    bodies.extend(
        odd_bodies()
            .into_iter()
            .filter_map(|b| String::from_utf8(b).ok()),
    );
    bodies.extend(
        [
            r#"{"error":null}"#,
            r#"{"error":{"code":null,"type":"rate_limit"}}"#,
            r#"{"error":{"type":"rate_limit","code":5}}"#,
            r#"{"error":{"code":"x"},"error":{"type":"rate_limit_error"}}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":null}"#,
            r#"{"usage":null,"usage":"x"}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":4294967297,"id":"c","function":{"name":"n","arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":-1,"id":5,"function":{"arguments":7}}]}}]}"#,
            r#"{"choices":[null,1,{"finish_reason":"content_filter"},{"finish_reason":5}]}"#,
            r#"{"choices":{"delta":{"content":"not an array"}}}"#,
            "[DONE] x",
        ]
        .map(String::from),
    );
    let mut gave_up = 0;
    for body in &bodies {
        gave_up += same_stream(&[body, next, body, "[DONE]"]);
        gave_up += same_stream(&[next, body, "[DONE]"]);
    }
    assert!(
        gave_up > 0 && bodies.len() > 2000,
        "{gave_up} of {}",
        bodies.len()
    );
}
