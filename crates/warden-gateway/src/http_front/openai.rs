//! `POST /v1/chat/completions` in the OpenAI Chat Completions format: request, answer,
//! `chat.completion.chunk` server-sent events ending in `[DONE]`, and errors as
//! `{"error": {"message", "type"}}` with the API's status codes.

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
pub(crate) struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Vec<ChatTool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<ChatContent>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// Warden's extension: the data type of this message's content.
    #[serde(default)]
    data_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChatContent {
    Text(String),
    Parts(Vec<ChatPart>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatToolCall {
    id: String,
    function: ChatFunctionCall,
}

#[derive(Debug, Deserialize)]
struct ChatFunctionCall {
    name: String,
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: String,
    function: ChatFunction,
}

#[derive(Debug, Deserialize)]
struct ChatFunction {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: Option<Value>,
}

fn content_text(c: Option<ChatContent>, at: &str) -> Result<String, HttpError> {
    match c {
        None => Ok(String::new()),
        Some(ChatContent::Text(t)) => Ok(t),
        Some(ChatContent::Parts(parts)) => {
            let mut out = String::new();
            for (i, p) in parts.into_iter().enumerate() {
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => out.push_str(&t),
                    (kind, _) => {
                        return Err(HttpError::bad_request(format!(
                            "{at}.content[{i}] is of type {kind:?}; only text content is accepted"
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The request as the gateway's own.
pub(crate) fn to_complete(
    r: ChatRequest,
    tenant: &str,
    d: &Defaults,
    providers: &[String],
) -> Result<gw::CompleteRequest, HttpError> {
    if r.n.is_some_and(|n| n != 1) {
        return Err(HttpError::bad_request("n must be 1"));
    }
    if let Some(choice) = &r.tool_choice
        && choice != "auto"
    {
        return Err(HttpError::bad_request(
            "tool_choice: only \"auto\" is supported",
        ));
    }
    let _ = (&r.parallel_tool_calls, &r.user, &r.metadata);
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let _ = &m.name;
        let message = match m.role.as_str() {
            "system" | "developer" => gw::Message {
                role: gw::Role::System as i32,
                parts: vec![text(
                    pb::DataType::Instruction,
                    content_text(m.content, &at)?,
                )],
            },
            "user" => {
                let dt = content_type(m.data_type.as_deref(), d, &at)?;
                gw::Message {
                    role: gw::Role::User as i32,
                    parts: vec![text(dt, content_text(m.content, &at)?)],
                }
            }
            "assistant" => {
                let mut parts = Vec::new();
                let t = content_text(m.content, &at)?;
                if !t.is_empty() {
                    parts.push(text(pb::DataType::Instruction, t));
                }
                for c in m.tool_calls {
                    parts.push(gw::ContentPart {
                        data_type: pb::DataType::Instruction as i32,
                        content: Some(gw::content_part::Content::ToolCall(gw::ToolCall {
                            id: c.id,
                            name: c.function.name,
                            arguments_json: c.function.arguments,
                        })),
                    });
                }
                gw::Message {
                    role: gw::Role::Assistant as i32,
                    parts,
                }
            }
            "tool" => {
                let dt = content_type(m.data_type.as_deref(), d, &at)?;
                let id = m.tool_call_id.ok_or_else(|| {
                    HttpError::bad_request(format!("{at} (role tool) needs tool_call_id"))
                })?;
                gw::Message {
                    role: gw::Role::User as i32,
                    parts: vec![gw::ContentPart {
                        data_type: dt as i32,
                        content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                            tool_call_id: id,
                            content: content_text(m.content, &at)?,
                            is_error: false,
                        })),
                    }],
                }
            }
            other => {
                return Err(HttpError::bad_request(format!(
                    "{at}.role {other:?} is not one of system, developer, user, assistant, tool"
                )));
            }
        };
        // Consecutive tool results belong to one user turn.
        match (messages.last_mut(), &message) {
            (
                Some(gw::Message { role, parts }),
                gw::Message {
                    role: r2,
                    parts: p2,
                },
            ) if *role == gw::Role::User as i32
                && *r2 == gw::Role::User as i32
                && parts.iter().all(is_tool_result)
                && p2.iter().all(is_tool_result) =>
            {
                parts.extend(p2.iter().cloned());
            }
            _ => messages.push(message),
        }
    }
    let mut tools = Vec::with_capacity(r.tools.len());
    for (i, t) in r.tools.into_iter().enumerate() {
        if t.kind != "function" {
            return Err(HttpError::bad_request(format!(
                "tools[{i}].type {:?}: only function tools are supported",
                t.kind
            )));
        }
        tools.push(gw::ToolDefinition {
            name: t.function.name,
            description: t.function.description,
            input_schema_json: t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
                .to_string(),
        });
    }
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
        max_output_tokens: r.max_completion_tokens.or(r.max_tokens).unwrap_or(0),
        temperature: r.temperature,
        ..Default::default()
    })
}

fn is_tool_result(p: &gw::ContentPart) -> bool {
    matches!(p.content, Some(gw::content_part::Content::ToolResult(_)))
}

fn finish_reason(r: i32) -> &'static str {
    match gw::StopReason::try_from(r).unwrap_or(gw::StopReason::EndTurn) {
        gw::StopReason::MaxTokens => "length",
        gw::StopReason::ToolUse => "tool_calls",
        gw::StopReason::ContentFilter => "content_filter",
        _ => "stop",
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn usage(u: Option<&pb::Usage>) -> Value {
    let u = u.cloned().unwrap_or_default();
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.input_tokens + u.output_tokens})
}

/// The answer as a `chat.completion`.
pub(crate) fn answer(resp: &gw::CompleteResponse) -> Value {
    let tool_calls: Vec<Value> = resp
        .tool_calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": if resp.text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(resp.text.clone()) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": format!("chatcmpl-{}", resp.audit_record_id),
        "object": "chat.completion",
        "created": now_secs(),
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(resp.stop_reason), "logprobs": null}],
        "usage": usage(resp.usage.as_ref()),
        "system_fingerprint": null,
    })
}

pub(crate) async fn chat_completions(State(g): State<Gateway>, req: Request) -> Response {
    match serve(g, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(Api::OpenAi),
    }
}

async fn serve(g: Gateway, req: Request) -> Result<Response, HttpError> {
    let (parts, body) = req.into_parts();
    let cx = context(&g, &parts).await?;
    let r: ChatRequest = json_body(body).await?;
    let streaming = r.stream;
    let include_usage = r.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let complete = to_complete(r, &cx.who.tenant, &cx.defaults, &cx.providers)?;
    Ok(match run(&g, cx.who, complete, streaming).await? {
        Answer::Unary(resp) => json_ok(&answer(&resp)),
        Answer::Stream(relay) => {
            let mut state = Chunks {
                id: String::new(),
                model: String::new(),
                created: now_secs(),
                include_usage,
                done: false,
            };
            sse(relay, move |ev| state.next(ev))
        }
    })
}

/// The chunk state of one stream.
struct Chunks {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    done: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        format!("data: {c}\n\n")
    }

    /// The SSE text for one relayed event ("" once the stream is over).
    fn next(&mut self, ev: Result<gw::CompleteStreamEvent, tonic::Status>) -> String {
        use gw::complete_stream_event::Event;
        if self.done {
            return String::new();
        }
        match ev {
            Err(s) => {
                self.done = true;
                let e = HttpError::from_status(&s);
                format!(
                    "data: {}\n\n",
                    json!({"error": {"message": e.message, "type": "api_error", "param": null, "code": null}})
                )
            }
            Ok(gw::CompleteStreamEvent { event: None }) => ": keep-alive\n\n".to_owned(),
            Ok(gw::CompleteStreamEvent { event: Some(e) }) => match e {
                Event::Start(s) => {
                    self.id = format!("chatcmpl-{}", s.audit_record_id);
                    self.model = s.model;
                    self.chunk(json!({"role": "assistant", "content": ""}), None)
                }
                Event::TextDelta(t) => self.chunk(json!({"content": t.text}), None),
                Event::ToolCallDelta(t) => {
                    let mut call = json!({"index": t.index, "function": {"arguments": t.arguments_json_delta}});
                    if !t.id.is_empty() {
                        call["id"] = json!(t.id);
                        call["type"] = json!("function");
                    }
                    if !t.name.is_empty() {
                        call["function"]["name"] = json!(t.name);
                    }
                    self.chunk(json!({"tool_calls": [call]}), None)
                }
                Event::End(end) => {
                    self.done = true;
                    let mut out = self.chunk(json!({}), Some(finish_reason(end.stop_reason)));
                    if self.include_usage {
                        let c = json!({
                            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage(end.usage.as_ref()),
                        });
                        out.push_str(&format!("data: {c}\n\n"));
                    }
                    out.push_str("data: [DONE]\n\n");
                    out
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(dt: Option<pb::DataType>) -> Defaults {
        Defaults {
            data_type: dt,
            purpose: pb::Purpose::UserQuestion,
            run_id: String::new(),
        }
    }

    fn parse(v: Value) -> Result<ChatRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn user_content_needs_a_data_type_and_system_content_is_instruction() {
        let r = parse(json!({"model": "x", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "error rate 5%"}
        ]}))
        .unwrap();
        let e = to_complete(r, "acme", &defaults(None), &[]).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("messages[1] carries no data type"),
            "{}",
            e.message
        );
        let r = parse(json!({"model": "x", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "error rate 5%", "data_type": "metrics"}
        ]}))
        .unwrap();
        let c = to_complete(r, "acme", &defaults(Some(pb::DataType::Logs)), &[]).unwrap();
        assert_eq!(
            c.messages[0].parts[0].data_type,
            pb::DataType::Instruction as i32
        );
        assert_eq!(
            c.messages[1].parts[0].data_type,
            pb::DataType::Metrics as i32,
            "the message's own wins"
        );
    }

    #[test]
    fn tool_calls_and_results_round_trip_and_results_share_one_user_turn() {
        let r = parse(json!({"model": "local", "messages": [
            {"role": "user", "content": "why?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "logs", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "metrics", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "timeout", "data_type": "logs"},
            {"role": "tool", "tool_call_id": "c2", "content": "p99 3s", "data_type": "metrics"}
        ], "tools": [{"type": "function", "function": {"name": "logs", "parameters": {"type": "object"}}}]}))
        .unwrap();
        let c = to_complete(
            r,
            "acme",
            &defaults(Some(pb::DataType::Logs)),
            &["local".into()],
        )
        .unwrap();
        assert_eq!(c.preferred_provider, "local");
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.messages[2].parts.len(), 2);
        assert_eq!(c.tools[0].name, "logs");
    }

    #[test]
    fn unknown_fields_and_unsupported_choices_are_refused_with_the_reason() {
        let e = parse(json!({"model": "x", "messages": [], "frequency_penaltyy": 1})).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `frequency_penaltyy`"),
            "{e}"
        );
        let r =
            parse(json!({"model": "x", "n": 2, "messages": [{"role": "user", "content": "a"}]}))
                .unwrap();
        assert!(to_complete(r, "acme", &defaults(Some(pb::DataType::Logs)), &[]).is_err());
    }
}
