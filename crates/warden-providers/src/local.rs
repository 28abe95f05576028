//! `local`: the built-in offline provider, a deterministic stand-in for a model.
//!
//! It lets `warden up` and the tests run the whole flow with no keys and no network. It
//! is clearly named as a stand-in in every answer. When tools are offered and the
//! conversation holds no tool result yet, it calls the first tool; otherwise it answers
//! with a short deterministic description of what it received. It records every request
//! so tests can assert what left the gateway.

use std::sync::Mutex;

use futures::stream;

use crate::{
    ChatRequest, ChatResponse, Content, EventStream, MessageRole, Provider, ProviderError,
    StopReason, StreamEvent, Usage,
};

/// The model name the local provider reports.
pub const LOCAL_MODEL: &str = "warden-local-offline-v1";

#[derive(Debug, Default)]
pub struct LocalProvider {
    name: String,
    received: Mutex<Vec<ChatRequest>>,
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

    /// The deterministic answer to `req`.
    pub fn answer(req: &ChatRequest) -> ChatResponse {
        let has_tool_result = req
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .any(|c| matches!(c, Content::ToolResult { .. }));
        let input_tokens = (req.content_bytes() as u64).div_ceil(4);
        if let (Some(tool), false) = (req.tools.first(), has_tool_result) {
            let input = example_input(&tool.input_schema);
            return ChatResponse {
                model: LOCAL_MODEL.into(),
                content: vec![
                    Content::text(format!(
                        "[offline local provider] calling tool {}",
                        tool.name
                    )),
                    Content::ToolUse {
                        id: format!("local-call-{}", req.messages.len()),
                        name: tool.name.clone(),
                        input,
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
        let preview: String = last_user.chars().take(160).collect();
        let text = format!(
            "[offline local provider: no model was called] Received {} message(s), {} bytes after minimization. \
             Last input begins: \"{}\"",
            req.messages.len(),
            req.content_bytes(),
            preview.replace('\n', " ")
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

/// A value that satisfies the simple JSON schemas tools use: required properties filled in.
fn example_input(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut out = Map::new();
    let props = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    if let (Some(props), Some(required)) = (props, required) {
        for name in required.iter().filter_map(Value::as_str) {
            let ty = props
                .get(name)
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str);
            let v = match ty {
                Some("integer" | "number") => Value::from(1),
                Some("boolean") => Value::Bool(false),
                Some("array") => Value::Array(vec![]),
                Some("object") => Value::Object(Map::new()),
                _ => Value::String("*".into()),
            };
            out.insert(name.to_owned(), v);
        }
    }
    Value::Object(out)
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

    use super::*;
    use crate::{Message, ToolDef};

    fn user(text: &str) -> Message {
        Message {
            role: MessageRole::User,
            content: vec![Content::text(text)],
        }
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
        let Content::Text { text } = &a.content[0] else {
            panic!("expected text")
        };
        assert!(text.contains("offline local provider"), "{text}");
        assert!(text.contains("why is checkout slow?"), "{text}");
        assert_eq!(a.stop_reason, StopReason::EndTurn);
    }

    #[tokio::test]
    async fn calls_the_first_tool_until_it_has_a_result() {
        let p = LocalProvider::new("local");
        let tool = ToolDef {
            name: "query_logs".into(),
            description: "search logs".into(),
            input_schema: serde_json::json!({"type":"object","properties":{"service":{"type":"string"},"limit":{"type":"integer"}},"required":["service","limit"]}),
        };
        let mut req = ChatRequest {
            messages: vec![user("investigate")],
            tools: vec![tool],
            ..Default::default()
        };
        let a = p.complete(&req).await.unwrap();
        assert_eq!(a.stop_reason, StopReason::ToolUse);
        let Content::ToolUse { id, name, input } = &a.content[1] else {
            panic!("expected tool use")
        };
        assert_eq!(name, "query_logs");
        assert_eq!(input, &serde_json::json!({"service":"*","limit":1}));
        req.messages.push(Message {
            role: MessageRole::Assistant,
            content: a.content.clone(),
        });
        req.messages.push(Message {
            role: MessageRole::User,
            content: vec![Content::ToolResult {
                tool_use_id: id.clone(),
                content: "3 errors".into(),
                is_error: false,
            }],
        });
        let b = p.complete(&req).await.unwrap();
        assert_eq!(b.stop_reason, StopReason::EndTurn);
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
        let Content::Text { text: expected } = &whole.content[0] else {
            panic!()
        };
        assert_eq!(&text, expected);
        assert!(matches!(
            events.last(),
            Some(Ok(StreamEvent::Stop {
                reason: StopReason::EndTurn
            }))
        ));
    }
}
