//! Budgets: the fewest bytes of telemetry that still answer the question.
//!
//! Owns two pure steps of minimization: [`template`] folds raw log lines into Drain-style
//! templates, and [`budget`] cuts one data type's text to a byte budget (logs into templates
//! with counts and exemplars, traces to error and slow spans first, metrics downsampled, anything
//! else cut at a UTF-8 boundary). Refuses I/O, async and clocks; knows nothing of redaction,
//! which runs before it.
//!
//! ```
//! use warden_budget::{Method, apply};
//! use warden_policy::DataType;
//!
//! let logs: String = (0..100).map(|i| format!("worker {i} started in {i} ms\n")).collect();
//! let cut = apply(DataType::Logs, &logs, 200);
//! assert!(cut.text.len() <= 200);
//! assert!(cut.text.contains("[x100] worker <*> started in <*>\n"));
//! assert!(matches!(cut.report.method, Method::LogTemplates { templates: 1, .. }));
//! ```
//!
//! Invariant: no input panics, every cut is reported, and a report never carries payload bytes.

pub mod budget;
mod request;
pub mod template;

pub use budget::{Cut, CutReport, Method, apply};
pub use request::{Limits, Part, RequestCut, apply_request, share};
pub use template::{Mined, MinerConfig, Template, TemplateId, TemplateMiner, mine, mine_with};
