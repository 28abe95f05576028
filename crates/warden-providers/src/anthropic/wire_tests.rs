//! The typed reading of Messages answers against the `Value` reading it replaced
//! (`parse_response_value`), on generated odd answers (`crate::odd_json`) and hand-written ones.

use serde_json::{Value, json};

use super::*;
use crate::odd_json::{bad_members, private, variants};

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
    let (mut answers, mut gave_up) = (std::collections::BTreeSet::new(), 0);
    for body in &bodies {
        let text = String::from_utf8_lossy(body);
        let want = parse_response_value("anthropic", body);
        assert_eq!(parse_response("anthropic", body), want, "{text}");
        match typed_response("anthropic", body) {
            Some(got) => assert_eq!(got, want, "{text}"),
            None => {
                assert!(private(body), "gave up on {text}");
                gave_up += 1;
            }
        }
        answers.insert(match want {
            Ok(r) => format!("ok, {} parts", r.content.len()),
            Err(e) => e.to_string(),
        });
    }
    for outcome in [
        "ok, 0 parts",
        "ok, 1 parts",
        "ok, 3 parts",
        "provider anthropic sent a malformed response: response is not JSON",
        "provider anthropic sent a malformed response: response has no content array",
    ] {
        assert!(answers.contains(outcome), "{outcome} not in {answers:?}");
    }
    assert!(
        gave_up > 0 && bodies.len() > 2000,
        "{gave_up} of {}",
        bodies.len()
    );
}
