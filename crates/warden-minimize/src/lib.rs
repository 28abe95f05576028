//! Minimization: the smallest text that may leave Warden for a model.
//!
//! Takes the content parts of one request and the tenant's settings; returns the parts as they
//! may be sent (disallowed data types refused or dropped, secrets and personal data replaced by
//! placeholders), a summary of what was removed (counts only), and an in-memory pseudonym map
//! that can restore personal identifiers in the model's answer. No I/O, no async, no clock, no
//! knowledge of gRPC or providers. Byte budgets and log templating live in `warden-budget`;
//! [`minimize_request`] composes the two (gate → redact → budgets → summary) and is the one
//! path the gateway and `warden minimize` both run.
//!
//! Steps: `rules` parses the TOML rule pack (`config/redaction-rules.toml`, shipped inside the
//! binary as [`BUILTIN_RULES`]; tenants add their own on top; errors are [`RuleError`]s naming
//! rule, line and column; [`check_rules`] reports every one in a file), [`Engine::find_spans`] finds sensitive spans (keyword prefilter, then
//! linear-time regexes, SIMD candidate scanners for IPs, cards and emails, and structural
//! detectors for PEM blocks and Kubernetes Secrets), [`Placeholders`] names them (`[SECRET:aws_access_key_id:1]`,
//! `[EMAIL:2]`), [`Engine::minimize`] gates and redacts one request, and
//! [`minimize_request`] adds the byte budgets. Parts of [`Shape::Json`] (tool-call arguments)
//! are redacted so they stay valid JSON; [`Pseudonyms`] restores identifiers in answers, text
//! and JSON alike.
//!
//! ```
//! use warden_minimize::{Engine, Part};
//! use warden_policy::{DataType, TenantSettings};
//!
//! let engine = Engine::builtin().unwrap(); // once, at startup; clone freely
//! let mut settings = TenantSettings::disabled("acme");
//! settings.allowed_data_types.insert(DataType::Logs);
//! let out = engine
//!     .minimize(&settings, vec![Part { data_type: DataType::Logs, text: "login by ann@example.com".into() }])
//!     .unwrap();
//! assert_eq!(out.parts[0].text, "login by [EMAIL:1]");
//! assert_eq!(out.summary.redactions["email"], 1);
//! ```
//!
//! **Invariant:** within one request, one value gets one placeholder, two values never share
//! one, and secrets are never restorable. See `tests.rs`.
//!
//! **Invariant:** no input panics and time is linear in the input size (the `regex` crate's
//! automata, keyword-gated lines, scanners and structural detectors that never revisit bytes).
//! See `fuzz/` and `tests/fuzz_bodies.rs`.

mod check;
mod detect;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod linefilter;
mod minimize;
mod pairs;
mod pipeline;
mod placeholder;
mod rules;
mod scan;
mod structure;

pub use detect::{Engine, Kind, Span};
pub use minimize::{MinimizeError, Minimized, MinimizedPart, Part, Shape, Summary, TypeCounts};
pub use pipeline::{MinimizedRequest, RequestPart, SentPart, minimize_request};
pub use placeholder::{Placeholders, Pseudonyms};
pub use rules::{BUILTIN_RULES, Class, RuleError, RulePackCounts, check_rules};

#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod tests;
