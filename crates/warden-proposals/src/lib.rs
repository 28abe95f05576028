//! **Pure**: what a proposal may hold, what it is, and how it may move.
//!
//! A proposal is what an investigation suggests changing in a customer's system. Storage,
//! the gateway (which releases it) and the CLI all need the same answers to three
//! questions, so they live here, over plain data, without I/O or clocks:
//!
//! - [`validate`]: is the content well formed? A unified diff must parse and touch only the
//!   target's paths; a JSON patch must be RFC 6902; a strategic-merge patch a JSON object.
//! - [`digest`]: the SHA-256 of the content's canonical JSON, which a reviewer approves and
//!   a release must match.
//! - [`lifecycle::decide`]: may this action move the proposal, and to which state?
//!
//! [`diff::apply`] applies a validated diff to the files it names, exactly as written, for
//! the release.

pub mod diff;
mod digest;
pub mod lifecycle;
mod validate;

pub use digest::{canonical_json, digest};
pub use validate::{Invalid, validate};
