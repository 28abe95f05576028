//! The one composition of minimization that both the gateway and `warden minimize` run:
//! gate → redact → budgets → summary.
//!
//! 1. **gate**: a part of a type the tenant did not allow refuses the request or is dropped;
//! 2. **redact**: secrets and personal data become request-wide placeholders (JSON parts stay
//!    valid JSON);
//! 3. **instruction budget**: all instruction bytes together (system prompt, questions,
//!    earlier turns, tool definitions and their labels) stay within the tenant's instruction
//!    budget, so telemetry relabelled as instructions cannot leave without limit: over it,
//!    the request is refused (`on_disallowed_data = refuse`) or the instruction texts are cut
//!    to fit (`drop`; JSON and labels are never cut, so if they alone are over, refused);
//! 4. **budgets** (`warden-budget`): each telemetry type's budget is shared by all its parts,
//!    the request budget by all telemetry parts; JSON parts, labels and dropped parts are
//!    never cut;
//! 5. **summary**: counts per data type (before, after redaction, as sent), redactions by
//!    kind, and what each budget cut, how.
//!
//! Pure: no I/O, no clock. The gateway only maps the result to its wire types.

use warden_budget::{CutReport, Limits, Method};
use warden_policy::{DataType, Denied, OnDisallowedData, Rule, TenantSettings};

use crate::detect::Engine;
use crate::minimize::{MinimizeError, Part, Shape, Summary};
use crate::placeholder::Pseudonyms;

/// One content part of a request, as the pipeline takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPart {
    pub data_type: DataType,
    pub text: String,
    pub shape: Shape,
    /// A label of a part rather than a part (a tool name, a tool-call id, a tool result's
    /// `tool_use_id`, a tool definition's name or schema): gated, redacted and counted in its
    /// type's bytes like any text, but not counted as a part and never cut.
    pub label: bool,
}

// === impl RequestPart ===

impl RequestPart {
    /// A content part of free text.
    pub fn text(data_type: DataType, text: impl Into<String>) -> RequestPart {
        RequestPart {
            data_type,
            text: text.into(),
            shape: Shape::Text,
            label: false,
        }
    }
}

/// A part as it leaves the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct SentPart {
    pub data_type: DataType,
    /// Empty when dropped.
    pub text: String,
    pub dropped: bool,
    /// What the budgets did to this part; `None` for parts budgets never cut (JSON, labels,
    /// dropped parts, and instructions while they are within their budget).
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
    let shapes: Vec<(Shape, bool)> = parts.iter().map(|p| (p.shape, p.label)).collect();
    let out = engine.gate_and_redact(
        settings,
        parts.into_iter().map(|p| {
            (
                Part {
                    data_type: p.data_type,
                    text: p.text,
                },
                p.shape,
                p.label,
            )
        }),
    )?;
    let mut summary = out.summary;
    let out_parts = out.parts;
    let instruction_cuts = instruction_budget(settings, limits, &out_parts, &shapes)?;
    let budgeted: Vec<usize> = out_parts
        .iter()
        .zip(&shapes)
        .enumerate()
        .filter(|(_, (p, (shape, label)))| {
            !p.dropped && p.data_type != DataType::Instruction && *shape == Shape::Text && !label
        })
        .map(|(i, _)| i)
        .collect();
    let budget_parts: Vec<warden_budget::Part<'_>> = budgeted
        .iter()
        .map(|&i| warden_budget::Part {
            data_type: out_parts[i].data_type,
            text: &out_parts[i].text,
        })
        .collect();
    let cut = warden_budget::apply_request(&budget_parts, limits);
    let mut parts: Vec<SentPart> = out_parts
        .into_iter()
        .map(|p| SentPart {
            data_type: p.data_type,
            text: p.text,
            dropped: p.dropped,
            budget: None,
        })
        .collect();
    for (i, c) in instruction_cuts
        .into_iter()
        .chain(budgeted.iter().copied().zip(cut.cuts))
    {
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

/// Holds the instruction parts of a request to the tenant's instruction budget: within it,
/// nothing happens; over it, refused, or (drop mode) the instruction texts are cut to share
/// what the uncuttable instruction bytes (JSON, labels) leave. Returns the cuts, by part.
fn instruction_budget(
    settings: &TenantSettings,
    limits: &Limits,
    parts: &[crate::minimize::MinimizedPart],
    shapes: &[(Shape, bool)],
) -> Result<Vec<(usize, warden_budget::Cut)>, MinimizeError> {
    let budget = limits.for_type(DataType::Instruction);
    let instruction =
        |p: &crate::minimize::MinimizedPart| !p.dropped && p.data_type == DataType::Instruction;
    let bytes: usize = parts
        .iter()
        .filter(|p| instruction(p))
        .map(|p| p.text.len())
        .sum();
    if bytes <= budget {
        return Ok(Vec::new());
    }
    let over = |detail: &str| MinimizeError::OverBudget {
        denied: Denied::new(
            Rule::InstructionBudgetExceeded,
            format!(
                "the instruction parts of this request (system prompt, questions, earlier turns, tool definitions) hold {bytes} bytes, over tenant {}'s instruction budget of {budget} bytes{detail}; send telemetry under its own data type",
                settings.tenant_id
            ),
        ),
    };
    if settings.on_disallowed_data == OnDisallowedData::Refuse {
        return Err(over(""));
    }
    let cuttable: Vec<usize> = parts
        .iter()
        .zip(shapes)
        .enumerate()
        .filter(|(_, (p, (shape, label)))| instruction(p) && *shape == Shape::Text && !label)
        .map(|(i, _)| i)
        .collect();
    let fixed = bytes - cuttable.iter().map(|&i| parts[i].text.len()).sum::<usize>();
    if fixed > budget {
        return Err(over(&format!(
            ", and {fixed} of them (tool definitions, tool calls, names and ids) cannot be cut"
        )));
    }
    let wants: Vec<usize> = cuttable.iter().map(|&i| parts[i].text.len()).collect();
    let shares = warden_budget::share(&wants, budget - fixed);
    let mut cuts = Vec::with_capacity(cuttable.len());
    for (&i, share) in cuttable.iter().zip(shares) {
        cuts.push((
            i,
            warden_budget::apply(DataType::Instruction, &parts[i].text, share),
        ));
    }
    Ok(cuts)
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
        RequestPart::text(data_type, text)
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
                    label: false,
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
    #[test]
    fn labels_are_redacted_and_counted_in_bytes_but_not_as_parts() {
        let engine = Engine::builtin().unwrap();
        let id = "call-AKIAIOSFODNN7EXAMPLE";
        let out = minimize_request(
            &engine,
            &settings(),
            &Limits::default(),
            vec![
                part(DataType::Logs, "login failed"),
                RequestPart {
                    label: true,
                    ..part(DataType::Logs, id)
                },
            ],
        )
        .unwrap();
        assert!(
            !out.parts[1].text.contains("AKIAIOSFODNN7EXAMPLE"),
            "{:?}",
            out.parts
        );
        let c = out.summary.by_data_type[&DataType::Logs];
        assert_eq!(c.parts, 1);
        assert_eq!(c.bytes_before, ("login failed".len() + id.len()) as u64);
        assert_eq!(out.summary.redactions["aws_access_key_id"], 1);
    }

    #[test]
    fn instructions_over_their_budget_are_refused_or_cut_per_the_tenant() {
        let engine = Engine::builtin().unwrap();
        let telemetry: String = (0..100).map(|i| format!("worker {i} failed\n")).collect();
        let mut limits = Limits::default();
        limits.per_type.insert(DataType::Instruction, 500);
        let parts = || {
            vec![
                part(DataType::Instruction, "Summarise."),
                part(DataType::Instruction, &telemetry),
                RequestPart {
                    shape: Shape::Json,
                    label: true,
                    ..part(DataType::Instruction, r#"{"type":"object"}"#)
                },
            ]
        };
        // Refuse mode: refused, naming the rule and the budget.
        let err = minimize_request(&engine, &settings(), &limits, parts()).unwrap_err();
        assert_eq!(err.rule(), Rule::InstructionBudgetExceeded);
        assert!(
            err.to_string().contains("instruction budget of 500 bytes"),
            "{err}"
        );
        // Drop mode: the texts share what the schema leaves; the cut is reported.
        let mut s = settings();
        s.on_disallowed_data = OnDisallowedData::Drop;
        let out = minimize_request(&engine, &s, &limits, parts()).unwrap();
        let sent: usize = out.parts.iter().map(|p| p.text.len()).sum();
        assert!(sent <= 500, "{sent}");
        assert_eq!(out.parts[0].text, "Summarise.");
        assert_eq!(out.parts[2].text, r#"{"type":"object"}"#);
        let cuts: Vec<_> = out.budget_cuts().collect();
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].data_type, DataType::Instruction);
        assert_eq!(cuts[0].bytes_before, telemetry.len());
        assert_eq!(
            out.summary.by_data_type[&DataType::Instruction].bytes_after,
            sent as u64
        );
        // Labels alone over the budget cannot be cut: refused even in drop mode.
        limits.per_type.insert(DataType::Instruction, 10);
        let err = minimize_request(&engine, &s, &limits, parts()).unwrap_err();
        assert!(err.to_string().contains("cannot be cut"), "{err}");
        // Within the budget nothing changes.
        let out = minimize_request(&engine, &settings(), &Limits::default(), parts()).unwrap();
        assert_eq!(out.parts[1].text, telemetry);
        assert_eq!(out.budget_cuts().count(), 0);
    }
}
