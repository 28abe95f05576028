//! The decision itself: opt-in, data-type gating and provider eligibility, in that order.

use std::collections::BTreeSet;
use std::fmt;

use crate::{DataType, TenantSettings};

/// A stable rule id. Appears in gRPC `ErrorInfo.reason`, audit records and ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The tenant is unknown to storage: treated exactly like a disabled tenant.
    TenantUnknown,
    /// The tenant has not opted in (or has opted out).
    OptInRequired,
    /// A content part carries a data type the tenant did not allow.
    DataTypeNotAllowed,
    /// Source code was sent while the tenant's GitHub integration is off.
    SourceCodeRequiresGithub,
    /// No provider is both allowed by the tenant and bound not to train on data.
    NoEligibleProvider,
    /// The instruction parts of a request (system prompt, questions, tool definitions) are
    /// over the tenant's instruction budget, so telemetry cannot hide under that label.
    InstructionBudgetExceeded,
}

impl Rule {
    pub fn id(self) -> &'static str {
        match self {
            Rule::TenantUnknown => "TENANT_UNKNOWN",
            Rule::OptInRequired => "OPT_IN_REQUIRED",
            Rule::DataTypeNotAllowed => "DATA_TYPE_NOT_ALLOWED",
            Rule::SourceCodeRequiresGithub => "SOURCE_CODE_REQUIRES_GITHUB",
            Rule::NoEligibleProvider => "NO_ELIGIBLE_PROVIDER",
            Rule::InstructionBudgetExceeded => "INSTRUCTION_BUDGET_EXCEEDED",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A refusal: the rule that refused and a sentence a person understands.
/// The message names tenants, types and providers only, never payload or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub rule: Rule,
    pub message: String,
}

impl Denied {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Denied {
            rule,
            message: message.into(),
        }
    }
}

/// What the platform knows about a configured provider (from the routing config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    pub name: String,
    /// Contractually bound not to train on submitted data. Without it a provider is never eligible.
    pub no_training: bool,
    /// Served from the customer's own cloud account (customer-owned Bedrock).
    pub customer_account: bool,
}

/// The shape of a request, as far as policy cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    pub tenant_id: String,
    /// The data types of the request's content parts.
    pub data_types: BTreeSet<DataType>,
    /// A provider the caller would prefer, if the tenant allows it.
    pub preferred_provider: Option<String>,
}

/// An allowed request: where it may go. Failover never leaves `eligible`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tenant_id: String,
    /// Providers to try, in order: tenant-allowed, no-training, configured.
    pub eligible: Vec<String>,
    pub settings_version: u64,
}

/// May a part of this data type be sent for this tenant?
pub fn data_type_gate(settings: &TenantSettings, data_type: DataType) -> Result<(), Denied> {
    match data_type {
        DataType::Instruction => Ok(()),
        DataType::SourceCode if !settings.github_integration => Err(Denied::new(
            Rule::SourceCodeRequiresGithub,
            format!(
                "tenant {} has not enabled the GitHub integration, so source code may not be sent",
                settings.tenant_id
            ),
        )),
        dt if settings.allowed_data_types.contains(&dt) => Ok(()),
        dt => Err(Denied::new(
            Rule::DataTypeNotAllowed,
            format!(
                "tenant {} does not allow data type {dt} to be sent to a model",
                settings.tenant_id
            ),
        )),
    }
}

/// The providers this tenant may use, in its order: allowed by the tenant, configured,
/// bound not to train, and (for a tenant on its own account) customer-account unless it
/// allowed the platform's accounts too.
pub fn eligible_providers(settings: &TenantSettings, catalogue: &[ProviderInfo]) -> Vec<String> {
    let own_account = settings.customer_bedrock.is_some();
    settings
        .allowed_providers
        .iter()
        .filter_map(|name| catalogue.iter().find(|p| &p.name == name))
        .filter(|p| p.no_training)
        .filter(|p| !p.customer_account || own_account)
        .filter(|p| p.customer_account || !own_account || settings.allow_platform_providers)
        .map(|p| p.name.clone())
        .collect()
}

/// The whole decision. `settings` is `None` when storage does not know the tenant.
///
/// Order matters and is the policy: opt-in first (nothing else is even looked at for a
/// tenant that has not opted in), then data types, then providers.
pub fn decide(
    settings: Option<&TenantSettings>,
    ask: &Ask,
    catalogue: &[ProviderInfo],
) -> Result<Decision, Denied> {
    let Some(settings) = settings else {
        return Err(Denied::new(
            Rule::TenantUnknown,
            format!(
                "AI features are not enabled for tenant {} (tenant unknown)",
                ask.tenant_id
            ),
        ));
    };
    if !settings.enabled {
        return Err(Denied::new(
            Rule::OptInRequired,
            format!(
                "AI features are not enabled for tenant {}",
                settings.tenant_id
            ),
        ));
    }
    if settings.on_disallowed_data == crate::OnDisallowedData::Refuse {
        for dt in &ask.data_types {
            data_type_gate(settings, *dt)?;
        }
    }
    let mut eligible = eligible_providers(settings, catalogue);
    if let Some(pref) = &ask.preferred_provider
        && let Some(pos) = eligible.iter().position(|p| p == pref)
    {
        let p = eligible.remove(pos);
        eligible.insert(0, p);
    }
    if eligible.is_empty() {
        return Err(Denied::new(
            Rule::NoEligibleProvider,
            format!(
                "tenant {} allows no configured provider that is bound not to train on data",
                settings.tenant_id
            ),
        ));
    }
    Ok(Decision {
        tenant_id: settings.tenant_id.clone(),
        eligible,
        settings_version: settings.version,
    })
}
