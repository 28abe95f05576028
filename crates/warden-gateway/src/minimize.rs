//! The minimization step of the pipeline, on the same engine `warden redact` and
//! `warden minimize` run: gate every part by data type (refuse or drop, as the tenant
//! chose), redact secrets and personal data with request-wide placeholders, then cut
//! telemetry to the tenant's byte budgets (log templates, span selection, downsampling).
//!
//! Runs after the policy decision and before the audit intent, so the intent records
//! exactly what will leave. Instruction parts are scanned but never cut.

use std::collections::BTreeSet;

use warden_minimize::{Engine, MinimizeError, Part, Pseudonyms};
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

fn text_mut(chat: &mut ChatRequest, slot: Slot) -> Option<&mut String> {
    match slot {
        Slot::System => chat.system.as_mut(),
        Slot::Part { message, part } => {
            match chat.messages.get_mut(message)?.content.get_mut(part)? {
                Content::Text { text } => Some(text),
                Content::ToolResult { content, .. } => Some(content),
                Content::ToolUse { .. } => None,
            }
        }
    }
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
    if let (Some(dt), Some(system)) = (req.system_type, chat.system.as_mut()) {
        slots.push(Slot::System);
        parts.push(Part {
            data_type: dt,
            text: std::mem::take(system),
        });
    }
    for p in &req.parts {
        let slot = Slot::Part {
            message: p.message,
            part: p.part,
        };
        let text = text_mut(&mut chat, slot)
            .map(std::mem::take)
            .unwrap_or_default();
        slots.push(slot);
        parts.push(Part {
            data_type: p.data_type,
            text,
        });
    }

    let out = engine.minimize(settings, parts).map_err(|e| match e {
        MinimizeError::Refused { denied, .. } => GatewayError::Denied(denied),
    })?;
    for (kind, n) in &out.summary.redactions {
        metrics::counter!("warden_gateway_redactions_total", "kind" => kind.clone()).increment(*n);
    }

    // Budgets: telemetry parts share the request budget; instructions are never cut.
    let limits = warden_budget::Limits::from_policy(&settings.budgets);
    let budgeted: Vec<usize> = out
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.dropped && p.data_type != DataType::Instruction)
        .map(|(i, _)| i)
        .collect();
    let budget_parts: Vec<warden_budget::Part<'_>> = budgeted
        .iter()
        .map(|&i| warden_budget::Part {
            data_type: out.parts[i].data_type,
            text: &out.parts[i].text,
        })
        .collect();
    let cut = warden_budget::apply_request(&budget_parts, &limits);
    let mut texts: Vec<Option<String>> = out
        .parts
        .iter()
        .map(|p| (!p.dropped).then(|| p.text.clone()))
        .collect();
    let mut budget_cuts = Vec::new();
    for (&i, c) in budgeted.iter().zip(cut.cuts) {
        if c.report.bytes_after < c.report.bytes_before {
            budget_cuts.push(pb::BudgetCut {
                data_type: data_type_to_proto(c.report.data_type) as i32,
                method: c.report.method.name().to_owned(),
                bytes_before: c.report.bytes_before as u64,
                bytes_after: c.report.bytes_after as u64,
            });
        }
        texts[i] = Some(c.text);
    }

    // Put the minimized texts back; remove dropped parts (back to front keeps indices valid).
    let mut types_sent = BTreeSet::new();
    let mut dropped = Vec::new();
    let mut by_type: std::collections::BTreeMap<DataType, (u32, u32, u64, u64)> =
        Default::default();
    for ((slot, part), text) in slots.iter().zip(&out.parts).zip(texts) {
        let e = by_type.entry(part.data_type).or_default();
        e.0 += 1;
        match text {
            Some(t) => {
                e.3 += t.len() as u64;
                types_sent.insert(part.data_type);
                match *slot {
                    Slot::System => chat.system = Some(t),
                    s => {
                        if let Some(dst) = text_mut(&mut chat, s) {
                            *dst = t;
                        }
                    }
                }
            }
            None => {
                e.1 += 1;
                match *slot {
                    Slot::System => chat.system = None,
                    Slot::Part { message, part } => dropped.push((message, part)),
                }
            }
        }
    }
    for (dt, c) in &out.summary.by_data_type {
        by_type.entry(*dt).or_default().2 = c.bytes_before;
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
    let summary = pb::MinimizationSummary {
        bytes_before: by_type.values().map(|c| c.2).sum(),
        bytes_after: by_type.values().map(|c| c.3).sum(),
        by_data_type: by_type
            .iter()
            .map(|(dt, c)| pb::DataTypeCount {
                data_type: data_type_to_proto(*dt) as i32,
                parts: c.0,
                dropped_parts: c.1,
                bytes_before: c.2,
                bytes_after: c.3,
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

/// Restores pseudonyms in a stream of text deltas. A placeholder split across deltas is
/// held back (at most 64 bytes) until it is complete.
#[derive(Default)]
pub struct StreamRestorer {
    carry: String,
}

impl StreamRestorer {
    pub fn push(&mut self, pseudonyms: &Pseudonyms, delta: &str) -> String {
        self.carry.push_str(delta);
        let hold_from = match self.carry.rfind('[') {
            Some(open) if !self.carry[open..].contains(']') && self.carry.len() - open < 64 => open,
            _ => self.carry.len(),
        };
        let ready: String = self.carry.drain(..hold_from).collect();
        pseudonyms.restore(&ready)
    }

    pub fn finish(&mut self, pseudonyms: &Pseudonyms) -> String {
        pseudonyms.restore(&std::mem::take(&mut self.carry))
    }
}
