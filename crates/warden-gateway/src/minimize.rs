//! The minimization step of the pipeline, on the same engine `warden redact` and
//! `warden minimize` run: gate every part by data type (refuse or drop, as the tenant
//! chose), redact secrets and personal data with request-wide placeholders, then cut
//! telemetry to the tenant's byte budgets (log templates, span selection, downsampling).
//!
//! The composition itself is `warden_minimize::minimize_request`, shared with `warden
//! minimize`; this module only takes the parts out of the request (text, tool results, and
//! tool-call arguments as JSON), puts them back and maps the summary to the wire.
//! Runs after the policy decision and before the audit intent, so the intent records
//! exactly what will leave. Instruction parts are scanned but never cut.

use std::collections::BTreeSet;

use warden_minimize::{Engine, MinimizeError, Pseudonyms, RequestPart, Shape, minimize_request};
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

/// Where a minimized text goes back: the system prompt or a message part.
#[derive(Clone, Copy)]
enum Slot {
    System,
    Part { message: usize, part: usize },
}

fn content_mut(chat: &mut ChatRequest, message: usize, part: usize) -> Option<&mut Content> {
    chat.messages.get_mut(message)?.content.get_mut(part)
}

/// Takes a part's text out of the request: text and tool results as they are, a tool
/// call's arguments as JSON (they are model output and may carry restored identifiers).
fn take(chat: &mut ChatRequest, slot: Slot) -> (String, Shape) {
    match slot {
        Slot::System => (chat.system.take().unwrap_or_default(), Shape::Text),
        Slot::Part { message, part } => match content_mut(chat, message, part) {
            Some(Content::Text { text }) => (std::mem::take(text), Shape::Text),
            Some(Content::ToolResult { content, .. }) => (std::mem::take(content), Shape::Text),
            Some(Content::ToolUse { input, .. }) => {
                (std::mem::take(input).to_string(), Shape::Json)
            }
            None => (String::new(), Shape::Text),
        },
    }
}

/// Puts a minimized text back where it came from.
fn put(chat: &mut ChatRequest, slot: Slot, text: String) -> Result<(), GatewayError> {
    match slot {
        Slot::System => chat.system = Some(text),
        Slot::Part { message, part } => match content_mut(chat, message, part) {
            Some(Content::Text { text: dst }) => *dst = text,
            Some(Content::ToolResult { content, .. }) => *content = text,
            Some(Content::ToolUse { input, .. }) => {
                // Redaction keeps JSON valid; should it ever not, send nothing.
                *input = serde_json::from_str(&text).map_err(|_| {
                    GatewayError::Minimize(format!(
                        "messages[{message}].parts[{part}]: tool call arguments could not be redacted as JSON; nothing was sent"
                    ))
                })?;
            }
            None => {}
        },
    }
    Ok(())
}

pub fn minimize(
    engine: &Engine,
    settings: &TenantSettings,
    req: &ValidRequest,
) -> Result<Minimized, GatewayError> {
    let mut chat = req.chat.clone();
    chat.tenant_id = Some(req.tenant_id.clone());
    let mut slots = Vec::new();
    let mut parts = Vec::new();
    if let (Some(dt), Some(_)) = (req.system_type, chat.system.as_ref()) {
        slots.push(Slot::System);
        let (text, shape) = take(&mut chat, Slot::System);
        parts.push(RequestPart {
            data_type: dt,
            text,
            shape,
        });
    }
    for p in &req.parts {
        let slot = Slot::Part {
            message: p.message,
            part: p.part,
        };
        let (text, shape) = take(&mut chat, slot);
        slots.push(slot);
        parts.push(RequestPart {
            data_type: p.data_type,
            text,
            shape,
        });
    }

    // Gate, redact, budgets and summary: the one composition `warden minimize` runs too.
    let limits = warden_budget::Limits::from_policy(&settings.budgets);
    let out = minimize_request(engine, settings, &limits, parts).map_err(|e| match e {
        MinimizeError::Refused { denied, .. } => GatewayError::Denied(denied),
    })?;
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

    // Put the minimized texts back; remove dropped parts (back to front keeps indices valid).
    let mut types_sent = BTreeSet::new();
    let mut dropped = Vec::new();
    for (slot, part) in slots.iter().zip(out.parts) {
        if part.dropped {
            match *slot {
                Slot::System => chat.system = None,
                Slot::Part { message, part } => dropped.push((message, part)),
            }
        } else {
            types_sent.insert(part.data_type);
            put(&mut chat, *slot, part.text)?;
        }
    }
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
