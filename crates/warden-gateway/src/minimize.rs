//! The minimization step of the pipeline, on the same engine `warden redact` and
//! `warden minimize` run: gate every part by data type (refuse or drop, as the tenant
//! chose), redact secrets and personal data with request-wide placeholders, then cut
//! telemetry to the tenant's byte budgets (log templates, span selection, downsampling).
//!
//! The composition itself is `warden_minimize::minimize_request`, shared with `warden
//! minimize`; this module only takes the parts out of the request (text, tool results, and
//! tool-call arguments as JSON), puts them back and maps the summary to the wire.
//! Every text that leaves is a part here: each system part under its own data type (joined
//! only after gating, so no part passes under another's label), tool-call ids and names and
//! `tool_use_id`s as labels of their part, tool definitions (name, description, schema) as
//! instructions, all held to the instruction budget.
//! Runs after the policy decision and before the audit intent, so the intent records
//! exactly what will leave.

use std::collections::BTreeSet;

use warden_minimize::{Engine, Pseudonyms, RequestPart, Shape, minimize_request};
use warden_policy::{DataType, TenantSettings};
use warden_proto::common::v1 as pb;
use warden_providers::{ChatRequest, Content};

use crate::convert::{ValidRequest, data_type_to_proto};
use crate::status::GatewayError;

pub struct Minimized {
    pub chat: ChatRequest,
    pub summary: pb::MinimizationSummary,
    /// The data types that will actually leave.
    pub types_sent: BTreeSet<DataType>,
    /// Restores pseudonymized identifiers in the answer (empty unless the tenant asked).
    pub pseudonyms: Pseudonyms,
}

/// Where a minimized text goes back: the system prompt (its parts, in order), a message part, a label of a message
/// part (tool-call id and name, a tool result's `tool_use_id`), or a tool definition's field.
#[derive(Clone, Copy)]
enum Slot {
    System,
    Part { message: usize, part: usize },
    CallId { message: usize, part: usize },
    CallName { message: usize, part: usize },
    ResultId { message: usize, part: usize },
    ToolName(usize),
    ToolDescription(usize),
    ToolSchema(usize),
}

fn content_mut(chat: &mut ChatRequest, message: usize, part: usize) -> Option<&mut Content> {
    chat.messages.get_mut(message)?.content.get_mut(part)
}

/// Takes a slot's text out of the request: text and tool results as they are, a tool call's
/// arguments and a tool's schema as JSON (arguments are model output and may carry restored
/// identifiers).
fn take(chat: &mut ChatRequest, slot: Slot) -> (String, Shape) {
    let text = |s: &mut String| (std::mem::take(s), Shape::Text);
    let json = |v: &mut serde_json::Value| (std::mem::take(v).to_string(), Shape::Json);
    let none = || (String::new(), Shape::Text);
    match slot {
        Slot::System => none(),
        Slot::Part { message, part } => match content_mut(chat, message, part) {
            Some(Content::Text { text: t }) => text(t),
            Some(Content::ToolResult { content, .. }) => text(content),
            Some(Content::ToolUse { input, .. }) => json(input),
            None => none(),
        },
        Slot::CallId { message, part } => match content_mut(chat, message, part) {
            Some(Content::ToolUse { id, .. }) => text(id),
            _ => none(),
        },
        Slot::CallName { message, part } => match content_mut(chat, message, part) {
            Some(Content::ToolUse { name, .. }) => text(name),
            _ => none(),
        },
        Slot::ResultId { message, part } => match content_mut(chat, message, part) {
            Some(Content::ToolResult { tool_use_id, .. }) => text(tool_use_id),
            _ => none(),
        },
        Slot::ToolName(t) => chat
            .tools
            .get_mut(t)
            .map_or_else(none, |d| text(&mut d.name)),
        Slot::ToolDescription(t) => chat
            .tools
            .get_mut(t)
            .map_or_else(none, |d| text(&mut d.description)),
        Slot::ToolSchema(t) => chat
            .tools
            .get_mut(t)
            .map_or_else(none, |d| json(&mut d.input_schema)),
    }
}

/// Puts a minimized text back where it came from (system parts are joined by the caller).
fn put(chat: &mut ChatRequest, slot: Slot, text: String) -> Result<(), GatewayError> {
    // Redaction keeps JSON valid; should it ever not, send nothing.
    let not_json = |field: String| {
        GatewayError::Minimize(format!(
            "{field} could not be redacted as JSON; nothing was sent"
        ))
    };
    match slot {
        Slot::System => {}
        Slot::Part { message, part } => match content_mut(chat, message, part) {
            Some(Content::Text { text: dst }) => *dst = text,
            Some(Content::ToolResult { content, .. }) => *content = text,
            Some(Content::ToolUse { input, .. }) => {
                *input = serde_json::from_str(&text).map_err(|_| {
                    not_json(format!(
                        "messages[{message}].parts[{part}]: tool call arguments"
                    ))
                })?;
            }
            None => {}
        },
        Slot::CallId { message, part } => {
            if let Some(Content::ToolUse { id, .. }) = content_mut(chat, message, part) {
                *id = text;
            }
        }
        Slot::CallName { message, part } => {
            if let Some(Content::ToolUse { name, .. }) = content_mut(chat, message, part) {
                *name = text;
            }
        }
        Slot::ResultId { message, part } => {
            if let Some(Content::ToolResult { tool_use_id, .. }) = content_mut(chat, message, part)
            {
                *tool_use_id = text;
            }
        }
        Slot::ToolName(t) => {
            if let Some(d) = chat.tools.get_mut(t) {
                d.name = text;
            }
        }
        Slot::ToolDescription(t) => {
            if let Some(d) = chat.tools.get_mut(t) {
                d.description = text;
            }
        }
        Slot::ToolSchema(t) => {
            if let Some(d) = chat.tools.get_mut(t) {
                d.input_schema = serde_json::from_str(&text)
                    .map_err(|_| not_json(format!("tools[{t}].input_schema_json")))?;
            }
        }
    }
    Ok(())
}

/// Every text of the request that leaves, as the pipeline takes it: each system part under
/// its own type; each message part, with its tool-call id and name or `tool_use_id` as
/// labels of the part's type; each tool definition as one instruction part (its
/// description) with its name and schema as labels.
fn collect(chat: &mut ChatRequest, req: &ValidRequest) -> (Vec<Slot>, Vec<RequestPart>) {
    let mut slots = Vec::new();
    let mut parts = Vec::new();
    for s in &req.system {
        slots.push(Slot::System);
        parts.push(RequestPart::text(s.data_type, s.text.clone()));
    }
    let mut push = |chat: &mut ChatRequest, slot: Slot, data_type: DataType, label: bool| {
        let (text, shape) = take(chat, slot);
        slots.push(slot);
        parts.push(RequestPart {
            data_type,
            text,
            shape,
            label,
        });
    };
    for p in &req.parts {
        let (message, part) = (p.message, p.part);
        push(chat, Slot::Part { message, part }, p.data_type, false);
        match content_mut(chat, message, part) {
            Some(Content::ToolUse { .. }) => {
                push(chat, Slot::CallId { message, part }, p.data_type, true);
                push(chat, Slot::CallName { message, part }, p.data_type, true);
            }
            Some(Content::ToolResult { .. }) => {
                push(chat, Slot::ResultId { message, part }, p.data_type, true);
            }
            _ => {}
        }
    }
    for t in 0..chat.tools.len() {
        push(chat, Slot::ToolDescription(t), DataType::Instruction, false);
        push(chat, Slot::ToolName(t), DataType::Instruction, true);
        push(chat, Slot::ToolSchema(t), DataType::Instruction, true);
    }
    (slots, parts)
}

pub fn minimize(
    engine: &Engine,
    settings: &TenantSettings,
    req: &ValidRequest,
) -> Result<Minimized, GatewayError> {
    let mut chat = req.chat.clone();
    chat.tenant_id = Some(req.tenant_id.clone());
    let (slots, parts) = collect(&mut chat, req);

    // Gate, redact, budgets and summary: the one composition `warden minimize` runs too.
    let limits = warden_budget::Limits::from_policy(&settings.budgets);
    let out = minimize_request(engine, settings, &limits, parts)
        .map_err(|e| GatewayError::Denied(e.into_denied()))?;
    for (kind, n) in &out.summary.redactions {
        metrics::counter!("warden_gateway_redactions_total", "kind" => kind.clone()).increment(*n);
    }
    let budget_cuts = out
        .budget_cuts()
        .map(|c| pb::BudgetCut {
            data_type: data_type_to_proto(c.data_type) as i32,
            method: c.method.name().to_owned(),
            bytes_before: c.bytes_before as u64,
            bytes_after: c.bytes_after as u64,
        })
        .collect();

    // Put the minimized texts back; join the system parts that may leave; remove dropped
    // parts (back to front keeps indices valid). A dropped part's labels share its type, so
    // they are dropped with it.
    let mut types_sent = BTreeSet::new();
    let mut dropped = Vec::new();
    let mut system = Vec::new();
    for (slot, part) in slots.iter().zip(out.parts) {
        if part.dropped {
            if let Slot::Part { message, part } = *slot {
                dropped.push((message, part));
            }
            continue;
        }
        types_sent.insert(part.data_type);
        match *slot {
            Slot::System => system.push(part.text),
            slot => put(&mut chat, slot, part.text)?,
        }
    }
    let system = system.join("\n\n");
    chat.system = (!system.is_empty()).then_some(system);
    for (m, p) in dropped.into_iter().rev() {
        if let Some(msg) = chat.messages.get_mut(m)
            && p < msg.content.len()
        {
            msg.content.remove(p);
        }
    }
    chat.messages.retain(|m| !m.content.is_empty());
    if chat.messages.is_empty() {
        return Err(GatewayError::Minimize(format!(
            "after dropping data types tenant {} does not allow, nothing is left to send",
            settings.tenant_id
        )));
    }
    let by_type = &out.summary.by_data_type;
    let summary = pb::MinimizationSummary {
        bytes_before: by_type.values().map(|c| c.bytes_before).sum(),
        bytes_after: by_type.values().map(|c| c.bytes_after).sum(),
        by_data_type: by_type
            .iter()
            .map(|(dt, c)| pb::DataTypeCount {
                data_type: data_type_to_proto(*dt) as i32,
                parts: u32::try_from(c.parts).unwrap_or(u32::MAX),
                dropped_parts: u32::try_from(c.dropped).unwrap_or(u32::MAX),
                bytes_before: c.bytes_before,
                bytes_after: c.bytes_after,
            })
            .collect(),
        redactions: out
            .summary
            .redactions
            .iter()
            .map(|(kind, count)| pb::RedactionCount {
                kind: kind.clone(),
                count: *count,
            })
            .collect(),
        budget_cuts,
    };
    Ok(Minimized {
        chat,
        summary,
        types_sent,
        pseudonyms: out.pseudonyms,
    })
}

/// Restores pseudonyms in a stream of deltas: answer text, or one tool call's JSON arguments
/// (originals escaped as JSON). A placeholder split across deltas is held back (at most 64
/// bytes) until it is complete.
#[derive(Default)]
pub struct StreamRestorer {
    carry: String,
    json: bool,
}

impl StreamRestorer {
    /// For a tool call's streamed JSON arguments.
    pub fn json() -> Self {
        StreamRestorer {
            carry: String::new(),
            json: true,
        }
    }

    fn restore(&self, pseudonyms: &Pseudonyms, text: &str) -> String {
        if self.json {
            pseudonyms.restore_json(text)
        } else {
            pseudonyms.restore(text)
        }
    }

    pub fn push(&mut self, pseudonyms: &Pseudonyms, delta: &str) -> String {
        self.carry.push_str(delta);
        let hold_from = match self.carry.rfind('[') {
            Some(open) if !self.carry[open..].contains(']') && self.carry.len() - open < 64 => open,
            _ => self.carry.len(),
        };
        let ready: String = self.carry.drain(..hold_from).collect();
        self.restore(pseudonyms, &ready)
    }

    pub fn finish(&mut self, pseudonyms: &Pseudonyms) -> String {
        let rest = std::mem::take(&mut self.carry);
        self.restore(pseudonyms, &rest)
    }
}
