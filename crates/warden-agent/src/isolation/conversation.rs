//! The worker's side of a run: the part that handles untrusted data. It builds the brief
//! and every prompt from the trigger and the tool results, reads the model's answers,
//! decides which tool calls to make (refusing exact repeats), compacts the conversation to
//! fit the model, and reads the final answer as a finding. It does all of it by asking its
//! broker over one stream; it holds no client, credential, tenant or address.
//!
//! This runs in a confined process (`warden worker`), or, when an operator chose
//! `isolation = "none"`, on a task inside the agent service; the code is the same.

use prost::Message as _;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use warden_proto::common::v1::{DataType, Purpose};
use warden_proto::gateway::v1 as gw;

use super::protocol::{self, FrameError, Reply, Request, Start, reply, request};
use crate::brief::{self, Trigger};
use crate::{compact, finding};

/// What the worker carries from one step to the next (checkpointed by the broker).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Conversation {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<gw::Message>,
    /// `name` + canonical arguments of every call that gave a result.
    #[prost(string, repeated, tag = "2")]
    pub signatures: Vec<String>,
}

/// Why a conversation stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Broken {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the broker answered {got} where {wanted} was expected")]
    Unexpected { wanted: &'static str, got: String },
    #[error("the run's recorded state is unreadable; it cannot be resumed")]
    State,
}

pub(crate) fn text_part(data_type: DataType, text: String) -> gw::ContentPart {
    gw::ContentPart {
        data_type: data_type as i32,
        content: Some(gw::content_part::Content::Text(text)),
    }
}

/// `name` + the arguments with keys in order, so identical calls compare equal.
pub(crate) fn signature(name: &str, arguments_json: &str) -> String {
    let args = serde_json::from_str::<Value>(arguments_json)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| arguments_json.to_owned());
    format!("{name} {args}")
}

/// The worker's end of one link to its broker.
struct Link<S> {
    io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    async fn ask(&mut self, kind: request::Kind) -> Result<reply::Kind, Broken> {
        protocol::write(&mut self.io, &Request { kind: Some(kind) }).await?;
        let reply: Reply = protocol::read(&mut self.io).await?;
        reply.kind.ok_or(Broken::Unexpected {
            wanted: "a reply",
            got: "an empty frame".into(),
        })
    }

    async fn plan(&mut self) -> Result<reply::Plan, Broken> {
        match self.ask(request::Kind::Plan(request::Plan {})).await? {
            reply::Kind::Plan(p) => Ok(p),
            other => Err(unexpected("a plan", &other)),
        }
    }

    async fn tool(&mut self, t: request::Tool) -> Result<reply::ToolResult, Broken> {
        match self.ask(request::Kind::Tool(t)).await? {
            reply::Kind::ToolResult(r) => Ok(r),
            other => Err(unexpected("a tool result", &other)),
        }
    }

    async fn checkpoint(&mut self, step: u32, c: &Conversation) -> Result<(), Broken> {
        let kind = request::Kind::Checkpoint(request::Checkpoint {
            step,
            state: c.encode_to_vec(),
        });
        match self.ask(kind).await? {
            reply::Kind::Ack(_) => Ok(()),
            other => Err(unexpected("an acknowledgement", &other)),
        }
    }

    /// Sends the end; the broker answers by ending the worker, so no reply is read.
    async fn finish(&mut self, f: request::Finish) -> Result<(), Broken> {
        let req = Request {
            kind: Some(request::Kind::Finish(f)),
        };
        protocol::write(&mut self.io, &req).await?;
        // Wait for the broker to close (or end this process).
        let _ = protocol::read::<_, Reply>(&mut self.io).await;
        Ok(())
    }
}

fn unexpected(wanted: &'static str, got: &reply::Kind) -> Broken {
    let got = match got {
        reply::Kind::Plan(_) => "a plan",
        reply::Kind::Completion(_) => "a completion",
        reply::Kind::ToolResult(_) => "a tool result",
        reply::Kind::Ack(_) => "an acknowledgement",
    };
    Broken::Unexpected {
        wanted,
        got: got.into(),
    }
}

/// Replaces every result of a withheld data type with a note saying why, keeping the
/// call ids, so a run whose tenant withdrew a data type carries on without sending it.
fn withhold(messages: &mut [gw::Message], withheld: &[reply::Withheld]) {
    for part in messages.iter_mut().flat_map(|m| m.parts.iter_mut()) {
        let Some(w) = withheld.iter().find(|w| w.data_type == part.data_type) else {
            continue;
        };
        if w.data_type == DataType::Instruction as i32 {
            continue;
        }
        let note = format!("[result withheld: {}]", w.reason);
        match &mut part.content {
            Some(gw::content_part::Content::ToolResult(result)) => {
                result.content = note;
                result.is_error = true;
            }
            Some(gw::content_part::Content::Text(text)) => *text = note,
            _ => continue,
        }
        // What is left is our note, not the tenant's data.
        part.data_type = DataType::Instruction as i32;
    }
}

/// Runs one conversation over `io` until it finishes or the link breaks.
pub(crate) async fn converse<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<(), Broken> {
    let mut link = Link { io };
    let start: Start = protocol::read(&mut link.io).await?;
    if !start.self_checks.is_empty() {
        let outcomes = start
            .self_checks
            .iter()
            .map(|c| match serde_json::from_str(c) {
                Ok(check) => serde_json::to_string(&warden_sandbox::selfcheck::run(&check))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            })
            .collect();
        match link
            .ask(request::Kind::SelfChecked(request::SelfChecked {
                outcomes,
            }))
            .await?
        {
            reply::Kind::Ack(_) => {}
            other => return Err(unexpected("an acknowledgement", &other)),
        }
    }
    let mut c = if start.state.is_empty() {
        begin(&mut link, &start).await?
    } else {
        Conversation::decode(start.state.as_slice()).map_err(|_| Broken::State)?
    };
    let context = start.context_tokens.max(1);
    loop {
        let plan = link.plan().await?;
        withhold(&mut c.messages, &plan.withheld);
        let mut final_answer = (!plan.final_answer.is_empty()).then(|| plan.final_answer.clone());
        // Keep within the model's context: compact first, conclude if that is not enough.
        if compact::estimate_tokens(&c.messages) > context * 6 / 10 {
            compact::compact(&mut c.messages, context * 6 / 10);
            if compact::estimate_tokens(&c.messages) > context * 9 / 10 && final_answer.is_none() {
                final_answer =
                    Some("the conversation has nearly filled the model's context".into());
            }
        }
        if let Some(why) = &final_answer {
            c.messages.push(gw::Message {
                role: gw::Role::User as i32,
                parts: vec![text_part(
                    DataType::Instruction,
                    format!(
                        "Budget: {why}. Give your final answer now, as the JSON object; no more tools."
                    ),
                )],
            });
        }
        let kind = request::Kind::Complete(request::Complete {
            messages: c.messages.clone(),
            final_answer: final_answer.is_some(),
        });
        let resp = match link.ask(kind).await? {
            reply::Kind::Completion(r) => r,
            other => return Err(unexpected("a completion", &other)),
        };
        if resp.tool_calls.is_empty() || final_answer.is_some() {
            if resp.text.trim().is_empty() {
                let failure = match final_answer {
                    Some(why) => format!("{why}, and the model gave no final answer"),
                    None => "the model gave neither an answer nor a tool call".into(),
                };
                return link
                    .finish(request::Finish {
                        failure,
                        ..Default::default()
                    })
                    .await;
            }
            c.messages.push(gw::Message {
                role: gw::Role::Assistant as i32,
                parts: vec![text_part(DataType::Instruction, resp.text.clone())],
            });
            link.checkpoint(plan.step, &c).await?;
            let f = finding::parse(&resp.text);
            return link
                .finish(request::Finish {
                    failure: String::new(),
                    summary: f.summary,
                    suspected_cause: f.suspected_cause,
                    confidence: f.confidence,
                    cited: f.cited,
                })
                .await;
        }
        let mut assistant = Vec::new();
        if !resp.text.is_empty() {
            assistant.push(text_part(DataType::Instruction, resp.text.clone()));
        }
        let mut results = Vec::new();
        for (index, call) in resp.tool_calls.iter().enumerate() {
            assistant.push(gw::ContentPart {
                data_type: DataType::Instruction as i32,
                content: Some(gw::content_part::Content::ToolCall(call.clone())),
            });
            let out = call_tool(
                &mut link,
                &mut c,
                plan.step,
                index as u32,
                &call.name,
                &call.arguments_json,
            )
            .await?;
            results.push(gw::ContentPart {
                data_type: out.data_type,
                content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                    tool_call_id: call.id.clone(),
                    content: out.text,
                    is_error: out.is_error,
                })),
            });
        }
        c.messages.push(gw::Message {
            role: gw::Role::Assistant as i32,
            parts: assistant,
        });
        c.messages.push(gw::Message {
            role: gw::Role::User as i32,
            parts: results,
        });
        link.checkpoint(plan.step, &c).await?;
    }
}

/// One tool call: refused here when it repeats a call that gave a result, else asked of
/// the broker.
async fn call_tool<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Link<S>,
    c: &mut Conversation,
    step: u32,
    index: u32,
    name: &str,
    arguments_json: &str,
) -> Result<reply::ToolResult, Broken> {
    let sig = signature(name, arguments_json);
    let refusal = if c.signatures.contains(&sig) {
        "refused: this exact call was already made in this run and its result is above; use it, or ask for something different".to_owned()
    } else {
        String::new()
    };
    let out = link
        .tool(request::Tool {
            step,
            index,
            name: name.to_owned(),
            arguments_json: arguments_json.to_owned(),
            refusal,
        })
        .await?;
    if !out.is_error {
        c.signatures.push(sig);
    }
    Ok(out)
}

/// A fresh run: the purpose's brief and its first queries (step 0), as the first messages.
async fn begin<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Link<S>,
    start: &Start,
) -> Result<Conversation, Broken> {
    let purpose = Purpose::try_from(start.purpose).unwrap_or(Purpose::Unspecified);
    let trigger = Trigger::from_json(&start.trigger_json);
    let lookback = std::time::Duration::from_millis(start.lookback_ms);
    let brief = brief::brief(purpose, &trigger, lookback, start.now_ms);
    let mut c = Conversation::default();
    let mut first = vec![text_part(DataType::Instruction, brief.trigger_text)];
    // The first queries the tenant allows (those offered); the rest are simply not run.
    let offered = link.plan().await?.tools;
    for (index, (name, args)) in brief.first_queries.iter().enumerate() {
        if !offered.iter().any(|t| t.name == *name) {
            continue;
        }
        let out = call_tool(link, &mut c, 0, index as u32, name, &args.to_string()).await?;
        if !out.is_error {
            let dt = DataType::try_from(out.data_type).unwrap_or(DataType::Instruction);
            first.push(text_part(
                dt,
                format!("First query {name} {args}:\n{}", out.text),
            ));
        }
    }
    c.messages = vec![
        gw::Message {
            role: gw::Role::System as i32,
            parts: vec![text_part(DataType::Instruction, brief.instructions)],
        },
        gw::Message {
            role: gw::Role::User as i32,
            parts: first,
        },
    ];
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_calls_have_one_signature_whatever_the_key_order() {
        assert_eq!(
            signature("query_logs", r#"{"service":"a","limit":3}"#),
            signature("query_logs", r#"{ "limit": 3, "service": "a" }"#)
        );
        assert_ne!(
            signature("query_logs", r#"{"service":"a"}"#),
            signature("query_logs", r#"{"service":"b"}"#)
        );
    }

    #[test]
    fn withheld_results_are_replaced_by_a_note_and_instructions_are_kept() {
        let mut m = vec![gw::Message {
            role: gw::Role::User as i32,
            parts: vec![
                text_part(DataType::Logs, "secret log line".into()),
                gw::ContentPart {
                    data_type: DataType::Metrics as i32,
                    content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                        tool_call_id: "c1".into(),
                        content: "42".into(),
                        is_error: false,
                    })),
                },
                text_part(DataType::Instruction, "the brief".into()),
            ],
        }];
        let w = |d: DataType| reply::Withheld {
            data_type: d as i32,
            reason: "off".into(),
        };
        withhold(
            &mut m,
            &[
                w(DataType::Logs),
                w(DataType::Metrics),
                w(DataType::Instruction),
            ],
        );
        let texts: Vec<String> = m[0]
            .parts
            .iter()
            .map(|p| match &p.content {
                Some(gw::content_part::Content::Text(t)) => t.clone(),
                Some(gw::content_part::Content::ToolResult(r)) => {
                    format!("{}:{}:{}", r.tool_call_id, r.content, r.is_error)
                }
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            texts,
            [
                "[result withheld: off]",
                "c1:[result withheld: off]:true",
                "the brief"
            ]
        );
    }
}
