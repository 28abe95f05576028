//! Telemetry as an investigation reads it: plain rows, and pure functions over them.
//!
//! Storage decodes what senders send (OTLP, pprof, `kubectl get -o json`) into these rows,
//! seals what is sensitive, and answers queries by loading rows for a tenant and a window
//! and handing them to the functions here. Nothing in this crate does I/O, so every
//! answer an investigator gets (an aggregate, a span tree, a log pattern) is tested on
//! plain data.

pub mod model;

pub mod config;
pub mod kube;
pub mod logs;
pub mod metrics;
pub mod pprof;
pub mod traces;
