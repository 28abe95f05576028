//! `local`: the built-in offline provider, a deterministic stand-in for a model.
//!
//! It lets `warden up` and the tests run the whole flow with no keys and no network, and
//! still make an investigation look at something: each step it calls the next offered
//! tool it has not called yet in this conversation (known from the conversation's own
//! `tool_use` blocks, so it holds no state between requests), with `{}` as arguments — so
//! it skips tools whose schema requires arguments, and every `propose*` tool, since a
//! stand-in has no grounds to propose a change. After [`MAX_LOCAL_TOOL_CALLS`] calls, or
//! when no callable tool is left, it answers with a summary of which tools it consulted
//! and how many bytes each returned, quoting the start of the first result (or of the
//! latest input). It is named as a stand-in in every answer and claims nothing about the
//! data. It records every request so tests can assert what left the
//! gateway.

use std::sync::Mutex;

use futures::stream;

use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, ToolDef, Usage,
};

/// The model name the local provider reports.
pub const LOCAL_MODEL: &str = "warden-local-offline-v1";

/// The most tool calls the local provider makes in one conversation. Enough for an offline
/// run to read logs, log patterns, metrics and traces; few enough that it ends in five
/// steps, well inside the agent's default step budget.
pub const MAX_LOCAL_TOOL_CALLS: usize = 4;

/// Tools whose name starts with this are never called: they propose changes.
const PROPOSAL_PREFIX: &str = "propose";

/// Characters of the latest input quoted back in the final answer.
const PREVIEW_CHARS: usize = 160;

#[derive(Debug, Default)]
pub struct LocalProvider {
    name: String,
    received: Mutex<Vec<ChatRequest>>,
}

/// What the local provider does next, decided from the request alone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LocalStep<'a> {
    /// Call this tool with `{}`.
    Call(&'a ToolDef),
    /// Answer with the summary.
    Answer,
}

/// One earlier tool call of the conversation and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consulted<'a> {
    name: &'a str,
    /// Its result as received (after minimization); `None` if no result came.
    result: Option<&'a str>,
    is_error: bool,
}

/// The next step for `req`: the first offered tool, in order, that is callable with `{}`,
/// is not a proposal and was not called yet, while fewer than [`MAX_LOCAL_TOOL_CALLS`]
/// calls were made; otherwise the answer.
fn next_step(req: &ChatRequest) -> LocalStep<'_> {
    let called = consulted(req);
    if called.len() >= MAX_LOCAL_TOOL_CALLS {
        return LocalStep::Answer;
    }
    req.tools
        .iter()
        .find(|t| callable(t) && !called.iter().any(|c| c.name == t.name))
        .map_or(LocalStep::Answer, LocalStep::Call)
}

/// Callable with `{}` and not a proposal.
fn callable(tool: &ToolDef) -> bool {
    let requires_arguments = tool
        .input_schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|r| !r.is_empty());
    !requires_arguments && !tool.name.starts_with(PROPOSAL_PREFIX)
}

/// The conversation's tool calls, in order, with the size of each one's result.
fn consulted(req: &ChatRequest) -> Vec<Consulted<'_>> {
    let contents = || req.messages.iter().flat_map(|m| &m.content);
    contents()
        .filter_map(|c| match c {
            Content::ToolUse { id, name, .. } => Some((id, name)),
            _ => None,
        })
        .map(|(id, name)| {
            let result = contents().find_map(|c| match c {
                Content::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } if tool_use_id == id => Some((content.as_str(), *is_error)),
                _ => None,
            });
            Consulted {
                name,
                result: result.map(|(content, _)| content),
                is_error: result.is_some_and(|(_, e)| e),
            }
        })
        .collect()
}

/// The first [`PREVIEW_CHARS`] characters of `text`, on one line.
fn preview(text: &str) -> String {
    text.chars()
        .take(PREVIEW_CHARS)
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect()
}

/// "query_logs (1234 bytes), get_trace (52 bytes, an error)", or "none".
fn consulted_sentence(called: &[Consulted<'_>]) -> String {
    if called.is_empty() {
        return "none".into();
    }
    called
        .iter()
        .map(|c| match (c.result.map(str::len), c.is_error) {
            (None, _) => format!("{} (no result)", c.name),
            (Some(bytes), false) => format!("{} ({bytes} bytes)", c.name),
            (Some(bytes), true) => format!("{} ({bytes} bytes, an error)", c.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl LocalProvider {
    pub fn new(name: impl Into<String>) -> Self {
        LocalProvider {
            name: name.into(),
            received: Mutex::new(Vec::new()),
        }
    }

    /// How many requests reached this provider.
    pub fn calls(&self) -> usize {
        self.received.lock().map_or(0, |r| r.len())
    }

    /// Every request that reached this provider, oldest first.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The deterministic answer to `req` (see [`next_step`]).
    pub fn answer(req: &ChatRequest) -> ChatResponse {
        let input_tokens = (req.content_bytes() as u64).div_ceil(4);
        if let LocalStep::Call(tool) = next_step(req) {
            let nth = consulted(req).len() + 1;
            return ChatResponse {
                model: LOCAL_MODEL.into(),
                content: vec![
                    Content::text(format!(
                        "[offline local provider] calling tool {} (call {nth} of at most {MAX_LOCAL_TOOL_CALLS})",
                        tool.name
                    )),
                    Content::ToolUse {
                        id: format!("local-call-{}", req.messages.len()),
                        name: tool.name.clone(),
                        input: serde_json::Value::Object(serde_json::Map::new()),
                    },
                ],
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    input_tokens,
                    output_tokens: 16,
                },
            };
        }
        let last_user = req
            .messages
            .iter()
            .rev()
            .filter(|m| m.role == MessageRole::User)
            .flat_map(|m| &m.content)
            .find_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                Content::ToolResult { content, .. } => Some(content.as_str()),
                Content::ToolUse { .. } => None,
            })
            .unwrap_or("");
        let called = consulted(req);
        // Quote the first tool result that is data (the most direct one, e.g. log records),
        // else the latest input.
        let quoted = match called.iter().find(|c| !c.is_error && c.result.is_some()) {
            Some(Consulted {
                name,
                result: Some(result),
                ..
            }) => format!("First result ({name}) begins: \"{}\"", preview(result)),
            _ => format!("Last input begins: \"{}\"", preview(last_user)),
        };
        let tools = if called.is_empty() && req.tools.is_empty() {
            String::new()
        } else {
            format!(
                " Tools consulted: {}; no conclusions are drawn without a model.",
                consulted_sentence(&called)
            )
        };
        let text = format!(
            "[offline local provider: no model was called]{tools} Received {} message(s), {} bytes after minimization. {quoted}",
            req.messages.len(),
            req.content_bytes(),
        );
        let output_tokens = text.split_whitespace().count() as u64;
        ChatResponse {
            model: LOCAL_MODEL.into(),
            content: vec![Content::text(text)],
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        }
    }

    fn record(&self, req: &ChatRequest) {
        if let Ok(mut r) = self.received.lock() {
            r.push(req.clone());
        }
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.record(req);
        Ok(Self::answer(req))
    }

    async fn stream(&self, req: &ChatRequest) -> Result<EventStream, ProviderError> {
        self.record(req);
        let resp = Self::answer(req);
        let mut events = vec![StreamEvent::Start {
            model: resp.model.clone(),
        }];
        let mut index = 0;
        for c in &resp.content {
            match c {
                Content::Text { text } => {
                    events.extend(
                        text.split_inclusive(' ')
                            .map(|w| StreamEvent::TextDelta { text: w.to_owned() }),
                    );
                }
                Content::ToolUse { id, name, input } => {
                    events.push(StreamEvent::ToolCallStart {
                        index,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        partial_json: input.to_string(),
                    });
                    index += 1;
                }
                Content::ToolResult { .. } => {}
            }
        }
        events.push(StreamEvent::Usage { usage: resp.usage });
        events.push(StreamEvent::Stop {
            reason: resp.stop_reason,
        });
        Ok(Box::pin(stream::iter(events.into_iter().map(Ok))))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::Message;

    fn user(text: &str) -> Message {
        Message {
            role: MessageRole::User,
            content: vec![Content::text(text)],
        }
    }

    fn tool(name: &str, required: &[&str]) -> ToolDef {
        ToolDef {
            name: name.into(),
            description: format!("the {name} tool"),
            input_schema: json!({"type":"object","properties":{"service":{"type":"string"}},"required":required}),
        }
    }

    /// Drives a conversation as the agent does: each tool call is answered with a result
    /// `result_of(name)`. Returns the tool calls made, in order, and the final answer.
    async fn investigate(
        p: &LocalProvider,
        tools: Vec<ToolDef>,
        result_of: impl Fn(&str) -> (String, bool),
    ) -> (Vec<(String, serde_json::Value)>, ChatResponse) {
        let mut req = ChatRequest {
            messages: vec![user("investigate checkout errors")],
            tools,
            ..Default::default()
        };
        let mut calls = Vec::new();
        for _ in 0..=2 * MAX_LOCAL_TOOL_CALLS {
            let a = p.complete(&req).await.unwrap();
            if a.stop_reason == StopReason::EndTurn {
                return (calls, a);
            }
            assert_eq!(a.stop_reason, StopReason::ToolUse);
            let mut results = Vec::new();
            for c in &a.content {
                if let Content::ToolUse { id, name, input } = c {
                    calls.push((name.clone(), input.clone()));
                    let (content, is_error) = result_of(name);
                    results.push(Content::ToolResult {
                        tool_use_id: id.clone(),
                        content,
                        is_error,
                    });
                }
            }
            req.messages.push(Message {
                role: MessageRole::Assistant,
                content: a.content.clone(),
            });
            req.messages.push(Message {
                role: MessageRole::User,
                content: results,
            });
        }
        panic!(
            "no answer after {} requests: {calls:?}",
            2 * MAX_LOCAL_TOOL_CALLS + 1
        )
    }

    fn text_of(r: &ChatResponse) -> String {
        r.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_deterministically_and_records() {
        let p = LocalProvider::new("local");
        let req = ChatRequest {
            messages: vec![user("why is checkout slow?")],
            max_tokens: 100,
            ..Default::default()
        };
        let a = p.complete(&req).await.unwrap();
        let b = p.complete(&req).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(p.calls(), 2);
        let text = text_of(&a);
        assert!(text.contains("offline local provider"), "{text}");
        assert!(text.contains("why is checkout slow?"), "{text}");
        assert!(
            !text.contains("Tools consulted"),
            "no tools, no tool talk: {text}"
        );
        assert_eq!(a.stop_reason, StopReason::EndTurn);
    }

    #[tokio::test]
    async fn calls_each_callable_tool_once_up_to_the_limit_then_names_them_with_their_sizes() {
        let p = LocalProvider::new("local");
        // Offered order decides; tools needing arguments and proposals are never called.
        let tools = vec![
            tool("query_logs", &[]),
            tool("get_trace", &["trace_id"]),
            tool("propose_change", &[]),
            tool("log_patterns", &[]),
            tool("list_metrics", &[]),
            tool("find_traces", &[]),
            tool("query_cluster", &[]),
        ];
        let sizes = |name: &str| match name {
            "query_logs" => ("x".repeat(1234), false),
            "log_patterns" => ("y".repeat(56), false),
            "list_metrics" => ("metrics are not allowed".to_owned(), true),
            _ => ("z".repeat(7), false),
        };
        let (calls, answer) = investigate(&p, tools, sizes).await;
        let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["query_logs", "log_patterns", "list_metrics", "find_traces"]
        );
        assert_eq!(names.len(), MAX_LOCAL_TOOL_CALLS);
        assert!(
            calls.iter().all(|(_, input)| *input == json!({})),
            "{calls:?}"
        );
        assert_eq!(
            p.calls(),
            MAX_LOCAL_TOOL_CALLS + 1,
            "one call per step, then the answer"
        );
        let text = text_of(&answer);
        assert!(text.contains("offline local provider"), "{text}");
        for part in [
            "query_logs (1234 bytes)",
            "log_patterns (56 bytes)",
            "list_metrics (23 bytes, an error)",
            "find_traces (7 bytes)",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
        assert!(
            text.contains(&format!(
                "First result (query_logs) begins: \"{}\"",
                "x".repeat(160)
            )),
            "{text}"
        );
        for never in ["get_trace", "propose_change", "query_cluster"] {
            assert!(!text.contains(never), "{never} in: {text}");
        }
        // Deterministic: the same conversation gives the same steps and answer.
        let again = LocalProvider::new("local");
        assert_eq!(
            investigate(&again, p.requests()[0].tools.clone(), sizes).await,
            (calls, answer)
        );
    }

    #[tokio::test]
    async fn answers_once_no_callable_tool_is_left() {
        let p = LocalProvider::new("local");
        let (calls, answer) = investigate(
            &p,
            vec![tool("query_logs", &[]), tool("top_functions", &["service"])],
            |_| ("3 errors".to_owned(), false),
        )
        .await;
        assert_eq!(calls, [("query_logs".to_owned(), json!({}))]);
        assert!(
            text_of(&answer).contains("query_logs (8 bytes)"),
            "{answer:?}"
        );

        let p = LocalProvider::new("local");
        let (calls, answer) = investigate(
            &p,
            vec![
                tool("propose_change", &[]),
                tool("get_trace", &["trace_id"]),
            ],
            |_| (String::new(), false),
        )
        .await;
        assert!(calls.is_empty(), "{calls:?}");
        assert!(
            text_of(&answer).contains("Tools consulted: none"),
            "{answer:?}"
        );
    }

    #[test]
    fn the_next_tool_comes_from_the_conversation_not_from_memory() {
        // A conversation that already called log_patterns (say on another replica).
        let req = ChatRequest {
            messages: vec![
                user("investigate"),
                Message {
                    role: MessageRole::Assistant,
                    content: vec![Content::ToolUse {
                        id: "t1".into(),
                        name: "log_patterns".into(),
                        input: json!({}),
                    }],
                },
                Message {
                    role: MessageRole::User,
                    content: vec![Content::ToolResult {
                        tool_use_id: "t1".into(),
                        content: "none".into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![tool("log_patterns", &[]), tool("query_logs", &[])],
            ..Default::default()
        };
        assert_eq!(next_step(&req), LocalStep::Call(&req.tools[1]));
    }

    #[tokio::test]
    async fn stream_reassembles_to_the_unary_answer() {
        let p = LocalProvider::new("local");
        let req = ChatRequest {
            messages: vec![user("hello there")],
            ..Default::default()
        };
        let whole = p.complete(&req).await.unwrap();
        let events: Vec<_> = p.stream(&req).await.unwrap().collect().await;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::TextDelta { text }) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, text_of(&whole));
        assert!(matches!(
            events.last(),
            Some(Ok(StreamEvent::Stop {
                reason: StopReason::EndTurn
            }))
        ));
    }

    #[tokio::test]
    async fn a_streamed_tool_call_matches_the_unary_one() {
        let p = LocalProvider::new("local");
        let req = ChatRequest {
            messages: vec![user("investigate")],
            tools: vec![tool("query_logs", &[])],
            ..Default::default()
        };
        let whole = p.complete(&req).await.unwrap();
        let events: Vec<_> = p.stream(&req).await.unwrap().collect().await;
        let streamed: Vec<(String, String)> = events
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::ToolCallStart { name, .. }) => Some((name.clone(), String::new())),
                _ => None,
            })
            .collect();
        let json: String = events
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::ToolCallDelta { partial_json, .. }) => Some(partial_json.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, [("query_logs".to_owned(), String::new())]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            json!({})
        );
        assert_eq!(whole.stop_reason, StopReason::ToolUse);
        assert!(matches!(
            events.last(),
            Some(Ok(StreamEvent::Stop {
                reason: StopReason::ToolUse
            }))
        ));
    }
}
