//! Clients for the customer systems an investigation may read besides storage.
//!
//! Each client is built for one tool call from the tenant's settings and its sealed
//! credentials (fetched from storage for that call, never cached or logged), speaks
//! only to the URL the tenant configured, and bounds what it returns. Errors carry a
//! reason a person (or a model) can act on and never the credential.

pub mod github;
pub mod prometheus;
