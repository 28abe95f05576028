//! The minimization step of the pipeline: gate every part by data type (refuse or drop,
//! as the tenant chose), and account for what is sent, per data type.
//!
//! Runs after the policy decision and before the audit intent, so the intent records
//! exactly what will leave.

use std::collections::{BTreeMap, BTreeSet};

use warden_policy::{DataType, OnDisallowedData, TenantSettings, data_type_gate};
use warden_proto::common::v1 as pb;
use warden_providers::{ChatRequest, Content};

use crate::convert::{ValidRequest, data_type_to_proto};
use crate::status::GatewayError;

pub struct Minimized {
    pub chat: ChatRequest,
    pub summary: pb::MinimizationSummary,
    /// The data types that will actually leave.
    pub types_sent: BTreeSet<DataType>,
}

#[derive(Default)]
struct Tally {
    parts: u32,
    dropped: u32,
    before: u64,
    after: u64,
}

fn text_len(c: &Content) -> usize {
    match c {
        Content::Text { text } => text.len(),
        Content::ToolResult { content, .. } => content.len(),
        Content::ToolUse { .. } => 0,
    }
}

pub fn minimize(settings: &TenantSettings, req: &ValidRequest) -> Result<Minimized, GatewayError> {
    let mut chat = req.chat.clone();
    let mut tally: BTreeMap<DataType, Tally> = BTreeMap::new();
    let mut types_sent = BTreeSet::new();
    let drop_mode = settings.on_disallowed_data == OnDisallowedData::Drop;

    // The system prompt.
    if let (Some(system), Some(dt)) = (&chat.system, req.system_type) {
        let t = tally.entry(dt).or_default();
        t.parts += 1;
        t.before += system.len() as u64;
        match data_type_gate(settings, dt) {
            Ok(()) => {
                t.after += system.len() as u64;
                types_sent.insert(dt);
            }
            Err(_) if drop_mode => {
                t.dropped += 1;
                chat.system = None;
            }
            Err(denied) => return Err(denied.into()),
        }
    }

    // Message parts, back to front so removals keep earlier indices valid.
    let mut drop: Vec<(usize, usize)> = Vec::new();
    for p in &req.parts {
        let len = chat
            .messages
            .get(p.message)
            .and_then(|m| m.content.get(p.part))
            .map_or(0, text_len) as u64;
        let t = tally.entry(p.data_type).or_default();
        t.parts += 1;
        t.before += len;
        match data_type_gate(settings, p.data_type) {
            Ok(()) => {
                t.after += len;
                types_sent.insert(p.data_type);
            }
            Err(_) if drop_mode => {
                t.dropped += 1;
                drop.push((p.message, p.part));
            }
            Err(denied) => return Err(denied.into()),
        }
    }
    for (m, p) in drop.into_iter().rev() {
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
        bytes_before: tally.values().map(|t| t.before).sum(),
        bytes_after: tally.values().map(|t| t.after).sum(),
        by_data_type: tally
            .iter()
            .map(|(dt, t)| pb::DataTypeCount {
                data_type: data_type_to_proto(*dt) as i32,
                parts: t.parts,
                dropped_parts: t.dropped,
                bytes_before: t.before,
                bytes_after: t.after,
            })
            .collect(),
        redactions: Vec::new(),
        budget_cuts: Vec::new(),
    };
    Ok(Minimized {
        chat,
        summary,
        types_sent,
    })
}
