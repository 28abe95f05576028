//! The file as serde reads it: unknown keys refused, checked fields spanned.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub routing: Option<Spanned<RawRouting>>,
    pub defaults: Option<RawDefaults>,
    #[serde(default)]
    pub providers: Vec<Spanned<RawProvider>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub profiles: Option<Spanned<Vec<Spanned<String>>>>,
    pub default_profile: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_ms: Option<Spanned<u64>>,
    pub first_byte_ms: Option<Spanned<u64>>,
    pub idle_ms: Option<Spanned<u64>>,
    pub total_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<Spanned<u32>>,
    pub base_delay_ms: Option<Spanned<u64>>,
    pub max_delay_ms: Option<Spanned<u64>>,
    pub max_retry_after_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failure_threshold: Option<Spanned<u32>>,
    pub cooldown_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    /// Required: eligibility is never a default. Optional here only so a missing value
    /// gets a precise diagnostic instead of serde's generic one.
    pub no_training: Option<Spanned<bool>>,
    pub base_url: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    pub sts_endpoint: Option<Spanned<String>>,
    pub api_key_env: Option<Spanned<String>>,
    pub api_version: Option<Spanned<String>>,
    pub organization: Option<Spanned<String>>,
    pub legacy_max_tokens: Option<Spanned<bool>>,
    pub customer_account: Option<Spanned<bool>>,
    pub allow_plain_http: Option<Spanned<bool>>,
    pub models: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub breaker: Option<RawBreaker>,
}
