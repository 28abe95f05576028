//! The `warden` library half: how services are launched, shared by the binary's
//! subcommands and by the integration tests, so both start exactly the same thing.

pub mod audit_verify;
mod audit_verify_fast;
pub mod demo;
mod export_pieces;
pub mod services;
