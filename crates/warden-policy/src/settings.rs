//! A tenant's AI settings: the plain data every policy decision starts from.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::DataType;

/// What a tenant allows. The default is the safe one: AI off, no data, no providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    pub tenant_id: String,
    /// Opt-in: nothing leaves for this tenant unless this is true.
    pub enabled: bool,
    /// Telemetry types that may reach a model. `Instruction` is always allowed.
    pub allowed_data_types: BTreeSet<DataType>,
    /// Providers the tenant allows, in the tenant's order of preference.
    pub allowed_providers: Vec<String>,
    /// Source code may be sent only while this is on.
    pub github_integration: bool,
    /// The tenant's own AWS account for Bedrock, if it brings one.
    pub customer_bedrock: Option<CustomerBedrock>,
    /// Whether a tenant with its own Bedrock account may also be served from the platform's accounts.
    pub allow_platform_providers: bool,
    pub budgets: Budgets,
    pub on_disallowed_data: OnDisallowedData,
    /// Reversible pseudonymization of non-secret identifiers (emails, IPs, hostnames).
    pub pseudonymize: bool,
    /// The tenant's own redaction rules (TOML, the format of `config/redaction-rules.toml`),
    /// applied on top of the shipped pack. Empty: the shipped pack only.
    pub redaction_rules: String,
    /// Monotonic version, bumped by storage on every change.
    pub version: u64,
}

/// What to do with a content part of a type the tenant did not allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDisallowedData {
    /// Refuse the whole request, naming the type.
    #[default]
    Refuse,
    /// Drop the part and report it in the minimization summary.
    Drop,
}

/// Byte and token budgets. Zero means "use the platform default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    pub max_request_bytes: u64,
    /// The budget of each data type, shared by all the parts of that type in one request.
    pub max_bytes_per_data_type: u64,
    /// Budgets for single data types, over `max_bytes_per_data_type`.
    #[serde(default)]
    pub per_data_type: BTreeMap<DataType, u64>,
    pub max_output_tokens: u32,
    pub max_requests_per_minute: u32,
    /// Model requests (and open streams) in flight at once.
    #[serde(default)]
    pub max_concurrent_requests: u32,
}

/// A customer-owned Bedrock account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerBedrock {
    pub region: String,
    pub credentials: CustomerCredentials,
}

/// How Warden obtains credentials in the customer's account. Never the secret itself:
/// static keys live encrypted in storage and are referenced here by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerCredentials {
    AssumeRole {
        role_arn: String,
        external_id: String,
    },
    StaticKeysRef {
        credential_id: String,
    },
}

impl TenantSettings {
    /// The settings of a tenant nobody has configured: everything off.
    pub fn disabled(tenant_id: impl Into<String>) -> Self {
        TenantSettings {
            tenant_id: tenant_id.into(),
            ..TenantSettings::default()
        }
    }
}
