//! `POST /v1/messages` in the Anthropic Messages format: request, answer, the
//! `message_start` … `message_stop` server-sent events, and errors as
//! `{"type": "error", "error": {"type", "message"}}` with the API's status codes.

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;

use super::{
    Answer, Api, Defaults, HttpError, content_type, context, json_body, json_ok, run, sse, text,
};
use crate::Gateway;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagesRequest {
    model: String,
    max_tokens: u32,
    messages: Vec<AMessage>,
    #[serde(default)]
    system: Option<ASystem>,
    #[serde(default)]
    tools: Vec<ATool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ASystem {
    Text(String),
    Blocks(Vec<ATextBlock>),
}

#[derive(Debug, Deserialize)]
struct ATextBlock {
    #[serde(rename = "type")]
    kind: String,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AMessage {
    role: String,
    content: AContent,
    /// Warden's extension: the data type of this message's content.
    #[serde(default)]
    data_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AContent {
    Text(String),
    Blocks(Vec<ABlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ABlock {
    Text {
        text: String,
        #[serde(default)]
        data_type: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<AResultContent>,
        #[serde(default)]
        is_error: bool,
        #[serde(default)]
        data_type: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AResultContent {
    Text(String),
    Blocks(Vec<ATextBlock>),
}

#[derive(Debug, Deserialize)]
struct ATool {
    name: String,
    #[serde(default)]
    description: String,
    input_schema: Value,
}

fn joined(blocks: Vec<ATextBlock>, at: &str) -> Result<String, HttpError> {
    let mut out = String::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if b.kind != "text" {
            return Err(HttpError::bad_request(format!(
                "{at}[{i}] is of type {:?}; only text is accepted there",
                b.kind
            )));
        }
        out.push_str(&b.text);
    }
    Ok(out)
}

/// The request as the gateway's own.
pub(crate) fn to_complete(
    r: MessagesRequest,
    tenant: &str,
    d: &Defaults,
    providers: &[String],
) -> Result<gw::CompleteRequest, HttpError> {
    if let Some(choice) = &r.tool_choice
        && choice.get("type").and_then(Value::as_str) != Some("auto")
    {
        return Err(HttpError::bad_request(
            "tool_choice: only {\"type\": \"auto\"} is supported",
        ));
    }
    let _ = &r.metadata;
    let mut messages = Vec::with_capacity(r.messages.len() + 1);
    match r.system {
        None => {}
        Some(ASystem::Text(t)) => messages.push(gw::Message {
            role: gw::Role::System as i32,
            parts: vec![text(pb::DataType::Instruction, t)],
        }),
        Some(ASystem::Blocks(b)) => messages.push(gw::Message {
            role: gw::Role::System as i32,
            parts: vec![text(pb::DataType::Instruction, joined(b, "system")?)],
        }),
    }
    for (i, m) in r.messages.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let (role, assistant) = match m.role.as_str() {
            "user" => (gw::Role::User, false),
            "assistant" => (gw::Role::Assistant, true),
            other => {
                return Err(HttpError::bad_request(format!(
                    "{at}.role {other:?} is not user or assistant"
                )));
            }
        };
        // What the model said earlier is instructions; what the caller sends is data.
        let typed = |own: Option<&str>, at: &str| -> Result<pb::DataType, HttpError> {
            if assistant {
                Ok(pb::DataType::Instruction)
            } else {
                content_type(own.or(m.data_type.as_deref()), d, at)
            }
        };
        let mut parts = Vec::new();
        match m.content {
            AContent::Text(t) => parts.push(text(typed(None, &at)?, t)),
            AContent::Blocks(blocks) => {
                for (j, b) in blocks.into_iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    parts.push(match b {
                        ABlock::Text { text: t, data_type } => {
                            text(typed(data_type.as_deref(), &at)?, t)
                        }
                        ABlock::ToolUse { id, name, input } => gw::ContentPart {
                            data_type: pb::DataType::Instruction as i32,
                            content: Some(gw::content_part::Content::ToolCall(gw::ToolCall {
                                id,
                                name,
                                arguments_json: input.to_string(),
                            })),
                        },
                        ABlock::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                            data_type,
                        } => {
                            let content = match content {
                                None => String::new(),
                                Some(AResultContent::Text(t)) => t,
                                Some(AResultContent::Blocks(b)) => joined(b, &at)?,
                            };
                            gw::ContentPart {
                                data_type: typed(data_type.as_deref(), &at)? as i32,
                                content: Some(gw::content_part::Content::ToolResult(
                                    gw::ToolResult {
                                        tool_call_id: tool_use_id,
                                        content,
                                        is_error,
                                    },
                                )),
                            }
                        }
                    });
                }
            }
        }
        messages.push(gw::Message {
            role: role as i32,
            parts,
        });
    }
    let tools = r
        .tools
        .into_iter()
        .map(|t| gw::ToolDefinition {
            name: t.name,
            description: t.description,
            input_schema_json: t.input_schema.to_string(),
        })
        .collect();
    let (preferred_provider, preferred_model) = if providers.contains(&r.model) {
        (r.model, String::new())
    } else {
        (String::new(), r.model)
    };
    Ok(gw::CompleteRequest {
        tenant_id: tenant.to_owned(),
        purpose: d.purpose as i32,
        agent_run_id: d.run_id.clone(),
        preferred_provider,
        preferred_model,
        messages,
        tools,
        max_output_tokens: r.max_tokens,
        temperature: r.temperature,
        ..Default::default()
    })
}

fn stop_reason(r: i32) -> &'static str {
    match gw::StopReason::try_from(r).unwrap_or(gw::StopReason::EndTurn) {
        gw::StopReason::MaxTokens => "max_tokens",
        gw::StopReason::ToolUse => "tool_use",
        gw::StopReason::StopSequence => "stop_sequence",
        _ => "end_turn",
    }
}

/// The answer as a `message`.
pub(crate) fn answer(resp: &gw::CompleteResponse) -> Value {
    let mut content = Vec::new();
    if !resp.text.is_empty() {
        content.push(json!({"type": "text", "text": resp.text}));
    }
    for c in &resp.tool_calls {
        let input: Value = serde_json::from_str(&c.arguments_json).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
    }
    let u = resp.usage.unwrap_or_default();
    json!({
        "id": format!("msg_{}", resp.audit_record_id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason(resp.stop_reason),
        "stop_sequence": null,
        "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
    })
}

pub(crate) async fn messages(State(g): State<Gateway>, req: Request) -> Response {
    match serve(g, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(Api::Anthropic),
    }
}

async fn serve(g: Gateway, req: Request) -> Result<Response, HttpError> {
    let (parts, body) = req.into_parts();
    let cx = context(&g, &parts).await?;
    let r: MessagesRequest = json_body(body).await?;
    let streaming = r.stream;
    let complete = to_complete(r, &cx.who.tenant, &cx.defaults, &cx.providers)?;
    Ok(match run(&g, cx.who, complete, streaming).await? {
        Answer::Unary(resp) => json_ok(&answer(&resp)),
        Answer::Stream(relay) => {
            let mut state = Events::default();
            sse(relay, move |ev| state.next(ev))
        }
    })
}

/// Which content block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool(u32),
}

/// The event state of one stream.
#[derive(Default)]
struct Events {
    block: i64,
    open: Option<Open>,
    done: bool,
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

impl Events {
    fn close(&mut self, out: &mut String) {
        if self.open.take().is_some() {
            out.push_str(&event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.block}),
            ));
            self.block += 1;
        }
    }

    /// The SSE text for one relayed event ("" once the stream is over).
    fn next(&mut self, ev: Result<gw::CompleteStreamEvent, tonic::Status>) -> String {
        use gw::complete_stream_event::Event;
        if self.done {
            return String::new();
        }
        let mut out = String::new();
        match ev {
            Err(s) => {
                self.done = true;
                let e = HttpError::from_status(&s);
                out = event(
                    "error",
                    json!({"type": "error", "error": {"type": "api_error", "message": e.message}}),
                );
            }
            Ok(gw::CompleteStreamEvent { event: None }) => out.push_str(": keep-alive\n\n"),
            Ok(gw::CompleteStreamEvent { event: Some(e) }) => match e {
                Event::Start(s) => {
                    out = event(
                        "message_start",
                        json!({"type": "message_start", "message": {
                        "id": format!("msg_{}", s.audit_record_id), "type": "message", "role": "assistant",
                        "model": s.model, "content": [], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 0, "output_tokens": 0}}}),
                    )
                }
                Event::TextDelta(t) => {
                    if self.open != Some(Open::Text) {
                        self.close(&mut out);
                        self.open = Some(Open::Text);
                        out.push_str(&event(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": self.block, "content_block": {"type": "text", "text": ""}}),
                        ));
                    }
                    out.push_str(&event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": self.block, "delta": {"type": "text_delta", "text": t.text}}),
                    ));
                }
                Event::ToolCallDelta(t) => {
                    if self.open != Some(Open::Tool(t.index)) {
                        self.close(&mut out);
                        self.open = Some(Open::Tool(t.index));
                        out.push_str(&event(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": self.block, "content_block": {"type": "tool_use", "id": t.id, "name": t.name, "input": {}}}),
                        ));
                    }
                    if !t.arguments_json_delta.is_empty() {
                        out.push_str(&event(
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": self.block, "delta": {"type": "input_json_delta", "partial_json": t.arguments_json_delta}}),
                        ));
                    }
                }
                Event::End(end) => {
                    self.done = true;
                    self.close(&mut out);
                    let u = end.usage.unwrap_or_default();
                    out.push_str(&event(
                        "message_delta",
                        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(end.stop_reason), "stop_sequence": null},
                               "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}}),
                    ));
                    out.push_str(&event("message_stop", json!({"type": "message_stop"})));
                }
            },
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_types_and_the_models_turns_are_instructions() {
        let r: MessagesRequest = serde_json::from_value(json!({
            "model": "claude", "max_tokens": 100, "system": "be brief",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "trace 1", "data_type": "traces"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "logs", "input": {"q": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "timeout"}], "data_type": "logs"}
            ]}))
        .unwrap();
        let d = Defaults {
            data_type: None,
            purpose: pb::Purpose::Alert,
            run_id: String::new(),
        };
        let c = to_complete(r, "acme", &d, &[]).unwrap();
        let types: Vec<i32> = c.messages.iter().map(|m| m.parts[0].data_type).collect();
        assert_eq!(
            types,
            [
                pb::DataType::Instruction as i32,
                pb::DataType::Traces as i32,
                pb::DataType::Instruction as i32,
                pb::DataType::Logs as i32
            ]
        );
        assert_eq!(c.preferred_model, "claude");
    }

    #[test]
    fn a_stream_opens_and_closes_each_block_in_order() {
        use gw::complete_stream_event::Event;
        let ev = |e| Ok(gw::CompleteStreamEvent { event: Some(e) });
        let mut s = Events::default();
        let mut all = String::new();
        for e in [
            ev(Event::Start(gw::StreamStart::default())),
            ev(Event::TextDelta(gw::TextDelta { text: "a".into() })),
            ev(Event::ToolCallDelta(gw::ToolCallDelta {
                index: 0,
                id: "t".into(),
                name: "logs".into(),
                arguments_json_delta: "{}".into(),
            })),
            ev(Event::End(gw::StreamEnd::default())),
        ] {
            all.push_str(&s.next(e));
        }
        let names: Vec<&str> = all
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(
            s.next(ev(Event::TextDelta(gw::TextDelta {
                text: "late".into()
            })))
            .is_empty()
        );
    }
}
