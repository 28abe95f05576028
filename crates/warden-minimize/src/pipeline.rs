//! The one composition of minimization that both the gateway and `warden minimize` run:
//! gate → redact → budgets → summary.
//!
//! 1. **gate**: a part of a type the tenant did not allow refuses the request or is dropped;
//! 2. **redact**: secrets and personal data become request-wide placeholders (JSON parts stay
//!    valid JSON);
//! 3. **budgets** (`warden-budget`): each data type's budget is shared by all its parts, the
//!    request budget by all parts; instructions, JSON parts and dropped parts are never cut;
//! 4. **summary**: counts per data type (before, after redaction, as sent), redactions by
//!    kind, and what each budget cut, how.
//!
//! Pure: no I/O, no clock. The gateway only maps the result to its wire types.

use warden_budget::{CutReport, Limits, Method};
use warden_policy::{DataType, TenantSettings};

use crate::detect::Engine;
use crate::minimize::{MinimizeError, Part, Shape, Summary};
use crate::placeholder::Pseudonyms;

/// One content part of a request, as the pipeline takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPart {
    pub data_type: DataType,
    pub text: String,
    pub shape: Shape,
}

/// A part as it leaves the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct SentPart {
    pub data_type: DataType,
    /// Empty when dropped.
    pub text: String,
    pub dropped: bool,
    /// What the budgets did to this part; `None` for parts budgets never cut (instructions,
    /// JSON, dropped parts).
    pub budget: Option<CutReport>,
}

/// The result of [`minimize_request`].
#[derive(Debug)]
pub struct MinimizedRequest {
    /// Same order and length as the input.
    pub parts: Vec<SentPart>,
    /// `bytes_after` is what is sent, after budgets.
    pub summary: Summary,
    /// Restores identifiers in the model's answer; empty unless the tenant pseudonymizes.
    pub pseudonyms: Pseudonyms,
}

// === impl MinimizedRequest ===

impl MinimizedRequest {
    /// The budget reports of the parts that budgets actually shortened, in part order.
    pub fn budget_cuts(&self) -> impl Iterator<Item = &CutReport> {
        self.parts
            .iter()
            .filter_map(|p| p.budget.as_ref())
            .filter(|r| r.method != Method::Untouched && r.bytes_after < r.bytes_before)
    }

    /// Bytes sent in all.
    pub fn bytes_after(&self) -> u64 {
        self.summary
            .by_data_type
            .values()
            .map(|c| c.bytes_after)
            .sum()
    }
}

/// Gates, redacts and budgets the parts of one request, with one placeholder table for the
/// whole request. See the module docs for the order; errors name the part and the rule.
pub fn minimize_request(
    engine: &Engine,
    settings: &TenantSettings,
    limits: &Limits,
    parts: Vec<RequestPart>,
) -> Result<MinimizedRequest, MinimizeError> {
    let shapes: Vec<Shape> = parts.iter().map(|p| p.shape).collect();
    let out = engine.gate_and_redact(
        settings,
        parts.into_iter().map(|p| {
            (
                Part {
                    data_type: p.data_type,
                    text: p.text,
                },
                p.shape,
            )
        }),
    )?;
    let mut summary = out.summary;
    let budgeted: Vec<usize> = out
        .parts
        .iter()
        .zip(&shapes)
        .enumerate()
        .filter(|(_, (p, shape))| {
            !p.dropped && p.data_type != DataType::Instruction && **shape == Shape::Text
        })
        .map(|(i, _)| i)
        .collect();
    let budget_parts: Vec<warden_budget::Part<'_>> = budgeted
        .iter()
        .map(|&i| warden_budget::Part {
            data_type: out.parts[i].data_type,
            text: &out.parts[i].text,
        })
        .collect();
    let cut = warden_budget::apply_request(&budget_parts, limits);
    let mut parts: Vec<SentPart> = out
        .parts
        .into_iter()
        .map(|p| SentPart {
            data_type: p.data_type,
            text: p.text,
            dropped: p.dropped,
            budget: None,
        })
        .collect();
    for (&i, c) in budgeted.iter().zip(cut.cuts) {
        if let Some(counts) = summary.by_data_type.get_mut(&c.report.data_type) {
            let before = c.report.bytes_before as u64;
            let after = c.report.bytes_after as u64;
            counts.bytes_after = counts.bytes_after.saturating_sub(before) + after;
        }
        if let Some(p) = parts.get_mut(i) {
            p.text = c.text;
            p.budget = Some(c.report);
        }
    }
    Ok(MinimizedRequest {
        parts,
        summary,
        pseudonyms: out.pseudonyms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use warden_policy::OnDisallowedData;

    use super::*;

    fn settings() -> TenantSettings {
        let mut s = TenantSettings::disabled("acme");
        s.enabled = true;
        s.allowed_data_types.insert(DataType::Logs);
        s.allowed_data_types.insert(DataType::Metrics);
        s
    }

    fn part(data_type: DataType, text: &str) -> RequestPart {
        RequestPart {
            data_type,
            text: text.into(),
            shape: Shape::Text,
        }
    }

    #[test]
    fn gate_redact_budget_and_summary_in_one_pass() {
        let engine = Engine::builtin().unwrap();
        let mut s = settings();
        s.on_disallowed_data = OnDisallowedData::Drop;
        let log: String = (0..200)
            .map(|i| format!("login ok for ann@example.com in {i} ms\n"))
            .collect();
        let mut limits = Limits::default();
        limits.per_type.insert(DataType::Logs, 600);
        let out = minimize_request(
            &engine,
            &s,
            &limits,
            vec![
                part(DataType::Instruction, "Summarise the logs."),
                part(DataType::Logs, &log),
                part(DataType::Logs, &log),
                part(DataType::Traces, "span=checkout status=ERROR"),
                RequestPart {
                    data_type: DataType::Logs,
                    text: r#"{"user":"ann@example.com"}"#.into(),
                    shape: Shape::Json,
                },
            ],
        )
        .unwrap();
        // Gate: traces were not allowed, so dropped.
        assert!(out.parts[3].dropped && out.parts[3].text.is_empty());
        // Redact: one placeholder for the same value across parts, JSON included.
        assert!(!out.parts.iter().any(|p| p.text.contains("ann@example.com")));
        assert_eq!(out.parts[4].text, r#"{"user":"[EMAIL:1]"}"#);
        // Budgets: the logs budget covers both log parts together; JSON is never cut.
        let logs: usize = out.parts[1..3].iter().map(|p| p.text.len()).sum();
        assert!(logs <= 600, "{logs}");
        assert_eq!(out.budget_cuts().count(), 2);
        assert!(out.parts[0].budget.is_none() && out.parts[4].budget.is_none());
        assert_eq!(out.parts[0].text, "Summarise the logs.");
        // Summary: bytes before, after redaction and as sent.
        let c = out.summary.by_data_type[&DataType::Logs];
        assert_eq!(c.parts, 3);
        assert_eq!(c.bytes_before, (2 * log.len() + 26) as u64);
        assert!(c.bytes_redacted < c.bytes_before);
        assert_eq!(c.bytes_after, (logs + out.parts[4].text.len()) as u64);
        assert_eq!(out.summary.by_data_type[&DataType::Traces].dropped, 1);
        assert_eq!(out.summary.redactions["email"], 401);
    }

    #[test]
    fn refusal_names_the_part_and_rule() {
        let engine = Engine::builtin().unwrap();
        let err = minimize_request(
            &engine,
            &settings(),
            &Limits::default(),
            vec![
                part(DataType::Logs, "ok"),
                part(DataType::SourceCode, "fn main() {}"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.rule().id(), "SOURCE_CODE_REQUIRES_GITHUB");
        assert!(err.to_string().starts_with("content part 1"), "{err}");
    }
}
