//! Policy: may this request leave Warden, carrying which data, to which providers?
//!
//! Everything here is a pure function over plain data: tenant settings, the provider
//! catalogue and the shape of a request go in, a [`Decision`] or a [`Denied`] comes out.
//! No I/O, no async, no clock; the gateway is only the wiring around these functions,
//! so every rule can be tested as a table without a socket.
//!
//! **Invariant:** every refusal names a [`Rule`]. The same id appears in the gRPC
//! `ErrorInfo.reason`, in the audit record and in ARCHITECTURE.md.

mod data_type;
mod decide;
mod settings;

pub use data_type::{DataType, UnknownDataType};
pub use decide::{
    Ask, Decision, Denied, ProviderInfo, Rule, data_type_gate, decide, eligible_providers,
};
pub use settings::{
    Budgets, CustomerBedrock, CustomerCredentials, OnDisallowedData, TenantSettings,
};

#[cfg(test)]
mod tests;
