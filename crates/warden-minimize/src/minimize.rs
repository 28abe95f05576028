//! The request-level step the gateway calls: gate each content part by data type, redact what
//! remains with one placeholder table for the whole request, and summarise what was removed.
//!
//! The summary holds counts only (parts, bytes, redactions by kind), never a value, so it can go
//! to the audit log and to metrics as it is.

use std::collections::BTreeMap;
use std::fmt;

use warden_policy::{DataType, Denied, OnDisallowedData, Rule, TenantSettings, data_type_gate};

use crate::detect::Engine;
use crate::placeholder::{Placeholders, Pseudonyms};

/// One content part of a request: its data type and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub data_type: DataType,
    pub text: String,
}

/// How a part's text is built, which decides how it may be changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// Free text: redacted in place, cut to budgets.
    #[default]
    Text,
    /// A JSON document (tool-call arguments): redacted so it stays valid JSON, and never
    /// cut by budgets.
    Json,
}

/// A part as it may leave: redacted, or dropped (text empty) under `on_disallowed_data = drop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimizedPart {
    pub data_type: DataType,
    pub text: String,
    pub dropped: bool,
}

/// The result of [`Engine::minimize`].
#[derive(Debug)]
pub struct Minimized {
    /// Same order and length as the input; dropped parts are marked.
    pub parts: Vec<MinimizedPart>,
    pub summary: Summary,
    /// Restores identifiers in the model's answer; empty unless the tenant pseudonymizes.
    pub pseudonyms: Pseudonyms,
}

/// What minimization did, in counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub by_data_type: BTreeMap<DataType, TypeCounts>,
    /// Replacements by kind name (`aws_access_key_id`, `email`, ...).
    pub redactions: BTreeMap<String, u64>,
}

/// Counts for one data type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCounts {
    /// Parts of this type in the request, dropped ones included. Labels (tool names and
    /// ids) count in the bytes of their part's type, not as parts.
    pub parts: u64,
    pub dropped: u64,
    pub bytes_before: u64,
    /// After redaction, before budgets.
    pub bytes_redacted: u64,
    /// As sent: after redaction and, in [`crate::minimize_request`], budgets.
    pub bytes_after: u64,
}

/// Why a request could not be minimized. Names the part, the type and the rule, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinimizeError {
    #[error("content part {index} ({data_type}) refused by {}: {}", denied.rule.id(), denied.message)]
    Refused {
        index: usize,
        data_type: DataType,
        denied: Denied,
    },
    /// The request as a whole is over a budget that refuses rather than cuts (the
    /// instruction budget in refuse mode).
    #[error("request refused by {}: {}", denied.rule.id(), denied.message)]
    OverBudget { denied: Denied },
}

// === impl MinimizeError ===

impl MinimizeError {
    /// The policy rule that refused (`DATA_TYPE_NOT_ALLOWED`, `SOURCE_CODE_REQUIRES_GITHUB`,
    /// `INSTRUCTION_BUDGET_EXCEEDED`).
    pub fn rule(&self) -> Rule {
        match self {
            MinimizeError::Refused { denied, .. } | MinimizeError::OverBudget { denied } => {
                denied.rule
            }
        }
    }

    /// The refusal, for callers that report it as a policy denial.
    pub fn into_denied(self) -> Denied {
        match self {
            MinimizeError::Refused { denied, .. } | MinimizeError::OverBudget { denied } => denied,
        }
    }
}

// === impl Engine (minimize) ===

impl Engine {
    /// Gates and redacts the parts of one request.
    ///
    /// A part whose data type the tenant did not allow refuses the whole request or is dropped,
    /// per `settings.on_disallowed_data`; source code needs the GitHub integration; instructions
    /// always pass and are scanned like everything else. The same value gets the same
    /// placeholder in every part.
    pub fn minimize(
        &self,
        settings: &TenantSettings,
        parts: Vec<Part>,
    ) -> Result<Minimized, MinimizeError> {
        self.gate_and_redact(settings, parts.into_iter().map(|p| (p, Shape::Text, false)))
    }

    /// [`Engine::minimize`] for parts of any [`Shape`]. A `label` (a tool name or id) is
    /// gated and redacted like a part and counted in its type's bytes, but not as a part.
    pub(crate) fn gate_and_redact(
        &self,
        settings: &TenantSettings,
        parts: impl IntoIterator<Item = (Part, Shape, bool)>,
    ) -> Result<Minimized, MinimizeError> {
        let mut shapes = Vec::new();
        let mut labels = Vec::new();
        let parts: Vec<Part> = parts
            .into_iter()
            .map(|(p, shape, label)| {
                shapes.push(shape);
                labels.push(label);
                p
            })
            .collect();
        let mut allowed = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            match data_type_gate(settings, part.data_type) {
                Ok(()) => allowed.push(true),
                Err(denied) => match settings.on_disallowed_data {
                    OnDisallowedData::Refuse => {
                        return Err(MinimizeError::Refused {
                            index,
                            data_type: part.data_type,
                            denied,
                        });
                    }
                    OnDisallowedData::Drop => allowed.push(false),
                },
            }
        }
        let mut table = Placeholders::new(settings.pseudonymize);
        let mut summary = Summary::default();
        let mut out = Vec::with_capacity(parts.len());
        for (((part, keep), shape), label) in parts.into_iter().zip(allowed).zip(shapes).zip(labels)
        {
            let counts = summary.by_data_type.entry(part.data_type).or_default();
            counts.parts += u64::from(!label);
            counts.bytes_before += part.text.len() as u64;
            if !keep {
                counts.dropped += u64::from(!label);
                out.push(MinimizedPart {
                    data_type: part.data_type,
                    text: String::new(),
                    dropped: true,
                });
                continue;
            }
            let text = match shape {
                Shape::Text => {
                    let spans = self.find_spans(&part.text);
                    table.replace(&part.text, &spans)
                }
                Shape::Json => crate::json::redact(self, &mut table, &part.text),
            };
            counts.bytes_redacted += text.len() as u64;
            counts.bytes_after += text.len() as u64;
            out.push(MinimizedPart {
                data_type: part.data_type,
                text,
                dropped: false,
            });
        }
        summary.redactions = table.take_counts();
        Ok(Minimized {
            parts: out,
            summary,
            pseudonyms: table.into_pseudonyms(),
        })
    }
}

// === impl Summary ===

impl Summary {
    pub fn total_redactions(&self) -> u64 {
        self.redactions.values().sum()
    }

    pub fn dropped_parts(&self) -> u64 {
        self.by_data_type.values().map(|c| c.dropped).sum()
    }
}

/// One line per data type and per kind; counts only.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (dt, c) in &self.by_data_type {
            writeln!(
                f,
                "{dt}: {} parts, {} dropped, {} -> {} bytes",
                c.parts, c.dropped, c.bytes_before, c.bytes_after
            )?;
        }
        for (kind, n) in &self.redactions {
            writeln!(f, "redacted {kind}: {n}")?;
        }
        Ok(())
    }
}
