//! The scripted model over real TLS with reqwest, as the gateway's adapter would meet it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{MockServer, TestCa};

const KEY: &str = "sk-ant-scripted";

struct Fixture {
    server: MockServer,
    client: reqwest::Client,
}

async fn start(model: &ScriptedAnthropic) -> Fixture {
    let ca = TestCa::new().unwrap();
    let server = MockServer::start(&ca, model.clone()).await.unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca.ca_pem()).unwrap())
        .build()
        .unwrap();
    Fixture { server, client }
}

impl Fixture {
    async fn post_with(&self, key: Option<&str>, body: &Value) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}/v1/messages", self.server.url()))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        let (status, text) = self.post_with(Some(KEY), body).await;
        (status, serde_json::from_str(&text).unwrap())
    }
}

/// A request whose first user message names `marker`, with `steps` earlier steps: each an
/// assistant tool call answered by a tool result.
fn request(marker: &str, steps: usize, stream: bool) -> Value {
    let mut messages =
        vec![json!({"role":"user","content":format!("Investigate {marker}: checkout errors")})];
    for i in 0..steps {
        messages.push(json!({"role":"assistant","content":[{"type":"tool_use","id":format!("toolu_{i}"),"name":"query_logs","input":{}}]}));
        messages.push(json!({"role":"user","content":[{"type":"tool_result","tool_use_id":format!("toolu_{i}"),"content":format!("result {i}"),"is_error":i % 2 == 1}]}));
    }
    json!({
        "model": "claude-test", "max_tokens": 1024, "stream": stream,
        "system": "You investigate incidents.",
        "tools": [
            {"name":"query_logs","input_schema":{"type":"object"}},
            {"name":"log_patterns","input_schema":{"type":"object"}}
        ],
        "messages": messages
    })
}

/// The JSON answer's content blocks as (type, name-or-text).
fn blocks(answer: &Value) -> Vec<(String, String)> {
    answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let ty = b["type"].as_str().unwrap().to_owned();
            let what = b.get("name").or(b.get("text")).unwrap();
            (ty, what.as_str().unwrap().to_owned())
        })
        .collect()
}

/// SSE text into (event name, data), checking each `data.type` equals its `event:` line.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap()
                .to_owned();
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn the_turn_is_the_number_of_assistant_messages_in_the_request() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script(
        "incident-a1",
        vec![
            Turn::tool("query_logs", json!({"limit": 5})),
            Turn::tool("log_patterns", json!({})),
            Turn::answer("The pool is exhausted."),
        ],
    );
    let f = start(&model).await;

    // Out of order, and the first position twice: the answer follows the request only.
    for (steps, want) in [
        (1, ("tool_use", "log_patterns")),
        (0, ("tool_use", "query_logs")),
        (2, ("text", "The pool is exhausted.")),
        (0, ("tool_use", "query_logs")),
    ] {
        let (status, answer) = f.post(&request("incident-a1", steps, false)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(blocks(&answer), [(want.0.to_owned(), want.1.to_owned())]);
        let stop = if want.0 == "text" {
            "end_turn"
        } else {
            "tool_use"
        };
        assert_eq!(answer["stop_reason"], stop);
    }
    let positions: Vec<usize> = run.calls().iter().map(|c| c.position).collect();
    assert_eq!(positions, [1, 0, 2, 0]);

    // Past the end of the script: a 500 in Anthropic's shape that says why.
    let (status, err) = f.post(&request("incident-a1", 3, false)).await;
    assert_eq!(status, 500);
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "api_error");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("has 3 turn(s)") && message.contains("position 3"),
        "{message}"
    );
    assert_eq!(model.problems(), [message.to_owned()]);
}

#[tokio::test]
async fn several_tool_calls_come_in_one_response_with_unique_ids_json_and_sse() {
    let model = ScriptedAnthropic::new(KEY).with_output_tokens(40);
    let calls = [
        (
            "query_logs",
            json!({"service": "checkout", "min_severity": "error"}),
        ),
        ("log_patterns", json!({})),
        ("find_traces", json!({"order": "failed", "limit": 3})),
    ];
    model.script("incident-b2", vec![Turn::tools(calls.clone())]);
    let f = start(&model).await;

    let (status, answer) = f.post(&request("incident-b2", 0, false)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stop_reason"], "tool_use");
    assert_eq!(answer["usage"]["output_tokens"], 40);
    let content = answer["content"].as_array().unwrap();
    let got: Vec<(&str, &Value)> = content
        .iter()
        .map(|b| (b["name"].as_str().unwrap(), &b["input"]))
        .collect();
    let want: Vec<(&str, &Value)> = calls.iter().map(|(n, v)| (*n, v)).collect();
    assert_eq!(got, want);
    let json_ids: Vec<&str> = content.iter().map(|b| b["id"].as_str().unwrap()).collect();
    let mut unique = json_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{json_ids:?}");
    assert!(json_ids.iter().all(|id| id.starts_with("toolu_")));

    let (status, text) = f
        .post_with(Some(KEY), &request("incident-b2", 0, true))
        .await;
    assert_eq!(status, 200);
    let evs = events(&text);
    assert_eq!(evs.first().unwrap().0, "message_start");
    assert_eq!(evs.last().unwrap().0, "message_stop");
    // Reassemble each block from its start and its input_json_delta fragments.
    let mut streamed: Vec<(String, String, String)> = Vec::new();
    for (name, data) in &evs {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], streamed.len());
                let b = &data["content_block"];
                assert_eq!(b["input"], json!({}));
                streamed.push((
                    b["id"].as_str().unwrap().into(),
                    b["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                streamed[i]
                    .2
                    .push_str(data["delta"]["partial_json"].as_str().unwrap());
            }
            _ => {}
        }
    }
    let got: Vec<(&str, Value)> = streamed
        .iter()
        .map(|(_, n, j)| (n.as_str(), serde_json::from_str(j).unwrap()))
        .collect();
    let want: Vec<(&str, Value)> = calls.iter().map(|(n, v)| (*n, v.clone())).collect();
    assert_eq!(got, want);
    // The same position gives the same ids, streamed or not.
    let stream_ids: Vec<&str> = streamed.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(stream_ids, json_ids);
    let last_delta = evs
        .iter()
        .rev()
        .find(|(n, _)| n == "message_delta")
        .unwrap();
    assert_eq!(last_delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(last_delta.1["usage"]["output_tokens"], 40);
}

#[tokio::test]
async fn each_request_is_recorded_with_its_tools_results_and_usage() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script(
        "incident-c3",
        vec![
            Turn::tool("query_logs", json!({})),
            Turn::tool("log_patterns", json!({})).with_output_tokens(5000),
            Turn::answer("Done.").with_output_tokens(700),
        ],
    );
    let f = start(&model).await;
    let mut bytes = Vec::new();
    for steps in 0..3 {
        let body = request("incident-c3", steps, steps == 1);
        bytes.push(body.to_string().len() as u64);
        let (status, _) = f.post_with(Some(KEY), &body).await;
        assert_eq!(status, 200);
    }
    let calls = run.calls();
    assert_eq!(calls.len(), 3);
    for (call, bytes) in calls.iter().zip(&bytes) {
        assert_eq!(call.offered_tools, ["query_logs", "log_patterns"]);
        assert_eq!(call.input_tokens, bytes.div_ceil(4));
        assert_eq!(call.model, "claude-test");
    }
    let outputs: Vec<u64> = calls.iter().map(|c| c.output_tokens).collect();
    assert_eq!(outputs, [DEFAULT_OUTPUT_TOKENS, 5000, 700]);
    assert_eq!(run.output_tokens(), DEFAULT_OUTPUT_TOKENS + 5700);
    let input_tokens: u64 = bytes.iter().map(|b| b.div_ceil(4)).sum();
    assert_eq!(run.input_tokens(), input_tokens);
    assert_eq!(
        calls.iter().map(|c| c.streamed).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert!(calls[0].tool_results.is_empty());
    let result = |i: usize, is_error: bool| ToolResult {
        tool_use_id: format!("toolu_{i}"),
        content: format!("result {i}"),
        is_error,
    };
    assert_eq!(calls[2].tool_results, [result(0, false), result(1, true)]);
    assert_eq!(calls[2].latest_tool_results, [result(1, true)]);
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_refused_with_anthropics_401() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script("incident-d4", vec![Turn::answer("never")]);
    let f = start(&model).await;
    for key in [Some("sk-ant-wrong"), None] {
        let (status, text) = f.post_with(key, &request("incident-d4", 0, false)).await;
        assert_eq!(status, 401, "{key:?}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "authentication_error");
        assert!(!text.contains("sk-ant-wrong"), "{text}");
    }
    assert!(run.calls().is_empty(), "a refused request is no turn");
    let (status, _) = f.post(&request("incident-d4", 0, false)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_held_turn_is_answered_only_after_release() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script(
        "incident-e5",
        vec![
            Turn::tool("query_logs", json!({})),
            Turn::answer("Held answer.").held(),
        ],
    );
    let f = Arc::new(start(&model).await);
    let (status, _) = f.post(&request("incident-e5", 0, false)).await;
    assert_eq!(status, 200, "an unheld turn is answered at once");

    let g = f.clone();
    let mut pending = tokio::spawn(async move { g.post(&request("incident-e5", 1, false)).await });
    let position = tokio::time::timeout(Duration::from_secs(10), run.reached())
        .await
        .unwrap();
    assert_eq!(position, 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err(),
        "answered before release"
    );
    assert_eq!(run.held(), 1);
    assert!(run.calls()[1].held);

    run.release();
    let (status, answer) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(blocks(&answer), [("text".into(), "Held answer.".into())]);
    assert_eq!((run.held(), run.dropped_while_held()), (0, 0));

    // A retry at the released position is answered at once, and is not a new hold.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(10),
        f.post_with(Some(KEY), &request("incident-e5", 1, true)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(!run.calls()[2].held);
}

#[tokio::test]
async fn a_client_that_goes_away_while_held_is_counted_as_dropped() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script(
        "incident-f6",
        vec![Turn::tool("query_logs", json!({})).held()],
    );
    let f = Arc::new(start(&model).await);
    let g = f.clone();
    let pending = tokio::spawn(async move { g.post(&request("incident-f6", 0, true)).await });
    tokio::time::timeout(Duration::from_secs(10), run.reached())
        .await
        .unwrap();
    assert_eq!(run.dropped_while_held(), 0);
    pending.abort();
    tokio::time::timeout(Duration::from_secs(10), run.dropped(1))
        .await
        .expect("the server saw the connection go while the turn was held");
    assert_eq!((run.held(), run.dropped_while_held()), (0, 1));
}

#[tokio::test]
async fn an_unknown_or_ambiguous_marker_is_a_500_naming_the_problem() {
    let model = ScriptedAnthropic::new(KEY);
    model.script("incident-g7", vec![Turn::answer("mine")]);
    model.script("incident-g7-bis", vec![Turn::answer("other")]);
    let f = start(&model).await;

    let (status, err) = f.post(&request("incident-zz", 0, false)).await;
    assert_eq!(status, 500);
    assert_eq!(err["error"]["type"], "api_error");
    let unknown = err["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        unknown.contains("no script's marker") && unknown.contains("incident-g7"),
        "{unknown}"
    );

    let (status, err) = f.post(&request("incident-g7-bis", 0, false)).await;
    assert_eq!(status, 500);
    let ambiguous = err["error"]["message"].as_str().unwrap().to_owned();
    assert!(ambiguous.contains("several"), "{ambiguous}");
    assert_eq!(model.problems(), [unknown, ambiguous]);
}

#[tokio::test]
async fn concurrent_conversations_are_told_apart_by_the_system_prompt_or_first_message() {
    let model = ScriptedAnthropic::new(KEY);
    let by_system = model.script("tenant-acme-run-1", vec![Turn::answer("acme finding")]);
    let by_user = model.script("incident-h8", vec![Turn::answer("h8 finding")]);
    let f = start(&model).await;

    // The marker in a system prompt given as text blocks, not in any message.
    let mut body = request("nothing", 0, false);
    body["system"] = json!([{"type":"text","text":"Tenant: tenant-acme-run-1."}]);
    let h8_body = request("incident-h8", 0, false);
    let (h8, acme) = tokio::join!(f.post(&h8_body), f.post(&body));
    assert_eq!(blocks(&acme.1), [("text".into(), "acme finding".into())]);
    assert_eq!(blocks(&h8.1), [("text".into(), "h8 finding".into())]);
    assert_eq!((by_system.calls().len(), by_user.calls().len()), (1, 1));
}

#[tokio::test]
async fn a_failing_turn_answers_with_anthropics_error_for_its_status() {
    let model = ScriptedAnthropic::new(KEY);
    let run = model.script("incident-i9", vec![Turn::Fail(529), Turn::answer("ok")]);
    let f = start(&model).await;
    let (status, err) = f.post(&request("incident-i9", 0, false)).await;
    assert_eq!(status, 529);
    assert_eq!(err["error"]["type"], "overloaded_error");
    assert_eq!(run.calls()[0].status, 529);
    assert_eq!(run.calls()[0].output_tokens, 0);
    // A retry of the same request gets the same failure: the turn follows the request.
    let (status, _) = f.post(&request("incident-i9", 0, false)).await;
    assert_eq!(status, 529);
}
