//! The real Anthropic adapter against the test kit's scripted model: the model that
//! integration tests drive investigations with must be one the gateway's adapter reads
//! (several tool calls in one response, unary and streamed; usage; the 401 shape; a 500
//! naming an unplanned request).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::collections::BTreeMap;

use common::{ANTHROPIC_KEY, bounded, collect, http, user};
use secrecy::SecretString;
use serde_json::json;
use warden_providers::{
    Anthropic, AnthropicConfig, ChatRequest, Content, Message, MessageRole, Provider,
    ProviderError, StopReason, StreamEvent, ToolDef,
};
use warden_testkit::{MockServer, ScriptedAnthropic, TestCa, Turn};

fn adapter(ca: &TestCa, server: &MockServer, key: &str) -> Anthropic {
    let mut cfg = AnthropicConfig::new("anthropic", SecretString::from(key), "claude-test");
    cfg.base_url = server.url();
    cfg.http = http(ca);
    Anthropic::new(cfg).unwrap()
}

fn tool(name: &str) -> ToolDef {
    ToolDef {
        name: name.into(),
        description: format!("the {name} tool"),
        input_schema: json!({"type":"object","properties":{}}),
    }
}

fn tool_uses(content: &[Content]) -> Vec<(String, String, serde_json::Value)> {
    content
        .iter()
        .filter_map(|c| match c {
            Content::ToolUse { id, name, input } => Some((id.clone(), name.clone(), input.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_anthropic_adapter_walks_a_scripted_conversation_unary_and_streamed() {
    bounded(async {
        let ca = TestCa::new().unwrap();
        let model = ScriptedAnthropic::new(ANTHROPIC_KEY);
        let run = model.script(
            "incident-p1",
            vec![
                Turn::tools([
                    ("query_logs", json!({"service": "checkout"})),
                    ("log_patterns", json!({})),
                ]),
                Turn::answer("The payment timeout was lowered.").with_output_tokens(321),
            ],
        );
        let server = MockServer::start(&ca, model.clone()).await.unwrap();
        let provider = adapter(&ca, &server, ANTHROPIC_KEY);
        let mut req = ChatRequest {
            system: Some("You investigate incidents.".into()),
            messages: vec![user("Trigger: incident-p1 checkout errors")],
            tools: vec![tool("query_logs"), tool("log_patterns")],
            max_tokens: 1024,
            ..Default::default()
        };

        let first = provider.complete(&req).await.unwrap();
        assert_eq!(first.stop_reason, StopReason::ToolUse);
        let calls = tool_uses(&first.content);
        let named: Vec<(&str, &serde_json::Value)> =
            calls.iter().map(|(_, n, i)| (n.as_str(), i)).collect();
        assert_eq!(
            named,
            [
                ("query_logs", &json!({"service": "checkout"})),
                ("log_patterns", &json!({}))
            ]
        );
        assert_ne!(calls[0].0, calls[1].0, "tool_use ids are unique");
        assert_eq!(first.usage.input_tokens, run.calls()[0].input_tokens);

        // The same position streamed: the same calls, reassembled from the fragments.
        let (events, err) = collect(&provider, &req).await;
        assert!(err.is_none(), "{err:?}");
        let mut streamed: BTreeMap<u32, (String, String, String)> = BTreeMap::new();
        for e in &events {
            match e {
                StreamEvent::ToolCallStart { index, id, name } => {
                    streamed.insert(*index, (id.clone(), name.clone(), String::new()));
                }
                StreamEvent::ToolCallDelta {
                    index,
                    partial_json,
                } => streamed.get_mut(index).unwrap().2.push_str(partial_json),
                _ => {}
            }
        }
        let streamed: Vec<(String, String, serde_json::Value)> = streamed
            .into_values()
            .map(|(id, name, json)| (id, name, serde_json::from_str(&json).unwrap()))
            .collect();
        assert_eq!(streamed, calls);

        // Answer both calls; the next position is the answer, with its output tokens.
        req.messages.push(Message {
            role: MessageRole::Assistant,
            content: first.content.clone(),
        });
        req.messages.push(Message {
            role: MessageRole::User,
            content: calls
                .iter()
                .enumerate()
                .map(|(i, (id, _, _))| Content::ToolResult {
                    tool_use_id: id.clone(),
                    content: format!("{i} rows"),
                    is_error: i == 1,
                })
                .collect(),
        });
        let answer = provider.complete(&req).await.unwrap();
        assert_eq!(answer.stop_reason, StopReason::EndTurn);
        assert_eq!(
            answer.content,
            [Content::text("The payment timeout was lowered.")]
        );
        assert_eq!(answer.usage.output_tokens, 321);
        let seen = run.calls();
        assert_eq!(
            seen.iter().map(|c| c.position).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        let results: Vec<(&str, &str, bool)> = seen[2]
            .latest_tool_results
            .iter()
            .map(|r| (r.tool_use_id.as_str(), r.content.as_str(), r.is_error))
            .collect();
        assert_eq!(
            results,
            [
                (calls[0].0.as_str(), "0 rows", false),
                (calls[1].0.as_str(), "1 rows", true)
            ]
        );
        assert_eq!(seen[2].offered_tools, ["query_logs", "log_patterns"]);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_and_an_unplanned_request_are_errors_the_adapter_names() {
    bounded(async {
        let ca = TestCa::new().unwrap();
        let model = ScriptedAnthropic::new(ANTHROPIC_KEY);
        model.script("incident-p2", vec![Turn::answer("fine")]);
        let server = MockServer::start(&ca, model.clone()).await.unwrap();
        let req = |marker: &str| ChatRequest {
            messages: vec![user(&format!("Trigger: {marker}"))],
            max_tokens: 64,
            ..Default::default()
        };

        let wrong = adapter(&ca, &server, "sk-ant-not-the-key");
        match wrong.complete(&req("incident-p2")).await {
            Err(ProviderError::Status {
                status: 401,
                message,
                ..
            }) => assert!(message.contains("authentication_error"), "{message}"),
            other => panic!("expected a 401: {other:?}"),
        }

        let right = adapter(&ca, &server, ANTHROPIC_KEY);
        match right.complete(&req("incident-unknown")).await {
            Err(ProviderError::Status {
                status: 500,
                message,
                ..
            }) => assert!(message.contains("no script's marker"), "{message}"),
            other => panic!("expected a 500: {other:?}"),
        }
        assert_eq!(model.problems().len(), 1);
        assert!(right.complete(&req("incident-p2")).await.is_ok());
    })
    .await;
}
