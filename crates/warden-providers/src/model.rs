//! The normalized model every adapter maps to and from.

use serde::{Deserialize, Serialize};

/// A request as it leaves Warden, after minimization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id for this provider; `None` lets the adapter use its configured default.
    pub model: Option<String>,
    /// The tenant this request is for. Providers serving customer-owned accounts
    /// (Bedrock in the tenant's AWS account) pick credentials and region by it.
    #[serde(default)]
    pub tenant_id: Option<String>,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: MessageRole,
    pub content: Vec<Content>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

/// A tool the model may call; `input_schema` is a JSON schema object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    #[default]
    EndTurn,
    MaxTokens,
    ToolUse,
    StopSequence,
    ContentFilter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A whole answer. `content` holds `Text` and `ToolUse` parts only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub model: String,
    pub content: Vec<Content>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// One step of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The model actually serving the request (first event of a stream).
    Start {
        model: String,
    },
    TextDelta {
        text: String,
    },
    /// A tool call begins; later `ToolCallDelta`s with the same index carry its JSON input.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    ToolCallDelta {
        index: u32,
        partial_json: String,
    },
    Usage {
        usage: Usage,
    },
    Stop {
        reason: StopReason,
    },
}

impl ChatRequest {
    /// Total bytes of text, tool inputs and tool results: what the budget counts.
    pub fn content_bytes(&self) -> usize {
        let sys = self.system.as_ref().map_or(0, String::len);
        sys + self
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .map(Content::byte_len)
            .sum::<usize>()
    }
}

impl Content {
    pub fn text(text: impl Into<String>) -> Self {
        Content::Text { text: text.into() }
    }

    pub fn byte_len(&self) -> usize {
        match self {
            Content::Text { text } => text.len(),
            Content::ToolUse { name, input, .. } => name.len() + input.to_string().len(),
            Content::ToolResult { content, .. } => content.len(),
        }
    }
}
