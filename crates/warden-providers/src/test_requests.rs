//! Requests the adapters' tests share: the reference tool round trip of
//! `../shared/reference/providers.md`, as each SDK sent it, so every adapter is held to the
//! same conversation.

use serde_json::json;

use crate::{ChatRequest, Content, Message, MessageRole, ToolDef};

/// "Weather in Paris?", a `get_weather` call with id `tool_id`, and its result, with
/// `max_tokens` 512 and the tool offered.
pub(crate) fn weather_round_trip(model: &str, tool_id: &str) -> ChatRequest {
    ChatRequest {
        model: Some(model.into()),
        system: Some("You are a weather bot.".into()),
        messages: vec![
            Message {
                role: MessageRole::User,
                content: vec![Content::text("Weather in Paris?")],
            },
            Message {
                role: MessageRole::Assistant,
                content: vec![Content::ToolUse {
                    id: tool_id.into(),
                    name: "get_weather".into(),
                    input: json!({"city":"Paris"}),
                }],
            },
            Message {
                role: MessageRole::User,
                content: vec![Content::ToolResult {
                    tool_use_id: tool_id.into(),
                    content: "18C, sunny".into(),
                    is_error: false,
                }],
            },
        ],
        tools: vec![ToolDef {
            name: "get_weather".into(),
            description: "Get weather".into(),
            input_schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        }],
        max_tokens: 512,
        ..Default::default()
    }
}
