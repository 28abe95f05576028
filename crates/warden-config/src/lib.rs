//! Warden's config files, each error explained at `file:line:col` with the offending line
//! and a hint: the provider routing config (`config/providers.toml`), the service configs
//! `warden serve` runs from ([`service`]: `config/agent.toml`, `gateway.toml`,
//! `storage.toml`), and [`check`], which is `warden config check FILE` for every file in
//! `config/` (redaction rules through `warden-minimize`'s own parser).
//!
//! The routing config says which providers exist, their endpoints, models per profile,
//! timeouts, retry and breaker settings, and whether each is contractually bound not to
//! train on submitted data.
//!
//! Loading has two phases. Serde reads `Raw*` types (`deny_unknown_fields`, `toml::Spanned`
//! on every checked field, no `flatten`); [`validate`] then gathers *every* semantic
//! problem as a [`Diagnostic`] at `file:line:col` with the offending line and a hint, so
//! one run of `warden config check FILE` shows all of them. A syntax or type error stops
//! serde at the first one; it is reported the same way.
//!
//! **Invariant:** `no_training` is required on every provider and never defaulted; the
//! catalogue given to policy carries it through unchanged.
//!
//! **Invariant:** credentials never appear in this file: API keys are named by environment
//! variable (`api_key_env`) and looked up by the caller when the registry is built.

mod check;
mod diagnostic;
mod raw;
mod registry;
pub mod service;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

pub use check::{ConfigKind, check, check_source, classify};
pub use diagnostic::{Diagnostic, Source, render};
pub use registry::{
    BuildEnv, RegistryError, bedrock_account, build_registry, catalogue, process_env_secret,
};
pub use service::{
    AgentSettings, AnomalySection, BudgetSection, GatewaySettings, IngestSection, Isolation,
    RunsSection, SandboxSection, ServiceConfig, ServiceKind, ServiceSettings, StorageSettings,
    TlsPaths, WebhooksSection, parse_service, parse_service_as,
};
pub use validate::validate;
use warden_providers::{BreakerPolicy, RetryPolicy, Timeouts};

/// Which adapter serves a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Anthropic,
    OpenAi,
    Bedrock,
    Local,
}

impl ProviderKind {
    pub const NAMES: &'static [&'static str] = &["anthropic", "openai", "bedrock", "local"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "anthropic" => Some(ProviderKind::Anthropic),
            "openai" => Some(ProviderKind::OpenAi),
            "bedrock" => Some(ProviderKind::Bedrock),
            "local" => Some(ProviderKind::Local),
            _ => None,
        }
    }
}

/// One validated provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Anthropic / OpenAI(-compatible) base URL.
    pub base_url: Option<String>,
    /// Bedrock: region of the platform account (and of STS for customer accounts).
    pub region: Option<String>,
    /// Bedrock: endpoint override (VPC endpoint).
    pub endpoint: Option<String>,
    /// Bedrock customer accounts: STS endpoint override.
    pub sts_endpoint: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub legacy_max_tokens: bool,
    /// Profile -> model id.
    pub models: BTreeMap<String, String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub no_training: bool,
    /// Served from each tenant's own AWS account (Bedrock only).
    pub customer_account: bool,
    pub allow_plain_http: bool,
}

/// A validated routing config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub providers: Vec<ProviderConfig>,
    /// Declared model profiles, e.g. `reasoning`, `fast`.
    pub profiles: Vec<String>,
    pub default_profile: String,
    /// Ceiling for routing one request: every attempt, retry wait and failover together
    /// (`[defaults.timeouts] total_ms`).
    pub deadline: std::time::Duration,
}

impl Config {
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Parses and validates `src` (named `file` in diagnostics).
pub fn parse(file: &str, src: &str) -> Result<Config, Vec<Diagnostic>> {
    let source = Source::new(file, src);
    let raw: raw::RawConfig = toml::from_str(src).map_err(|e| vec![source.from_toml_error(&e)])?;
    validate(&source, raw)
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::file_error(
            &file,
            &format!("cannot read the file: {e}"),
        )]
    })?;
    parse(&file, &src)
}

#[cfg(test)]
mod tests;
