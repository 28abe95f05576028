//! From a validated [`Config`] to live providers: the registry the router uses and the
//! catalogue policy decides over.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;
use warden_policy::{CustomerBedrock, CustomerCredentials, ProviderInfo};
use warden_providers::{
    AccountCredentials, Anthropic, AnthropicConfig, Bedrock, BedrockAccount, BedrockConfig,
    BedrockCredentials, HttpSettings, Identity, LocalProvider, OpenAi, OpenAiConfig, Provider,
    Registry, RegistryEntry, StaticKeys, TenantAccounts,
};

use crate::{Config, ProviderConfig, ProviderKind};

/// What the registry needs that is not in the file. Tests pass these directly.
pub struct BuildEnv<'a> {
    /// Looks up a secret by the environment-variable name given in `api_key_env`.
    pub secret: &'a (dyn Fn(&str) -> Option<SecretString> + Sync),
    /// The gateway's own AWS identity: signs platform Bedrock calls and STS `AssumeRole`.
    pub gateway_identity: Identity,
    /// Customer-owned Bedrock accounts by tenant (required if a provider has `customer_account = true`).
    pub tenant_accounts: Option<Arc<dyn TenantAccounts>>,
    /// Extra trust anchors (PEM) for every provider, e.g. a corporate proxy CA or a test CA.
    pub extra_root_ca_pem: Vec<Vec<u8>>,
}

impl fmt::Debug for BuildEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildEnv")
            .field("gateway_identity", &self.gateway_identity)
            .finish_non_exhaustive()
    }
}

/// Reads `api_key_env` variables from the process environment.
pub fn process_env_secret(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

/// A provider that could not be built. Names the provider and the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {provider}: {message}")]
pub struct RegistryError {
    pub provider: String,
    pub message: String,
}

/// The catalogue policy decides over: name, no-training, customer-account.
pub fn catalogue(cfg: &Config) -> Vec<ProviderInfo> {
    cfg.providers
        .iter()
        .map(|p| ProviderInfo {
            name: p.name.clone(),
            no_training: p.no_training,
            customer_account: p.customer_account,
        })
        .collect()
}

fn default_model(cfg: &Config, p: &ProviderConfig) -> String {
    p.models
        .get(&cfg.default_profile)
        .or_else(|| p.models.values().next())
        .cloned()
        .unwrap_or_default()
}

fn build_one(
    cfg: &Config,
    p: &ProviderConfig,
    env: &BuildEnv<'_>,
) -> Result<Arc<dyn Provider>, RegistryError> {
    let err = |message: String| RegistryError {
        provider: p.name.clone(),
        message,
    };
    let http = HttpSettings {
        timeouts: p.timeouts,
        allow_plain_http: p.allow_plain_http,
        extra_root_ca_pem: env.extra_root_ca_pem.clone(),
    };
    let key = |required: bool| -> Result<Option<SecretString>, RegistryError> {
        match &p.api_key_env {
            Some(var) => match (env.secret)(var) {
                Some(k) => Ok(Some(k)),
                None => Err(err(format!(
                    "environment variable {var} (api_key_env) is not set"
                ))),
            },
            None if required => Err(err("no api_key_env configured".into())),
            None => Ok(None),
        }
    };
    let model = default_model(cfg, p);
    let built: Arc<dyn Provider> = match p.kind {
        ProviderKind::Anthropic => {
            let Some(api_key) = key(true)? else {
                return Err(err("no API key".into()));
            };
            let mut c = AnthropicConfig::new(p.name.clone(), api_key, model);
            if let Some(u) = &p.base_url {
                c.base_url = u.clone();
            }
            if let Some(v) = &p.api_version {
                c.api_version = v.clone();
            }
            c.http = http;
            Arc::new(Anthropic::new(c).map_err(|e| err(e.to_string()))?)
        }
        ProviderKind::OpenAi => {
            let mut c = OpenAiConfig::new(p.name.clone(), key(false)?, model);
            if let Some(u) = &p.base_url {
                c.base_url = u.clone();
            }
            c.organization = p.organization.clone();
            c.legacy_max_tokens = p.legacy_max_tokens;
            c.http = http;
            Arc::new(OpenAi::new(c).map_err(|e| err(e.to_string()))?)
        }
        ProviderKind::Bedrock => {
            let credentials = if p.customer_account {
                let accounts = env.tenant_accounts.clone().ok_or_else(|| {
                    err("customer_account = true needs a tenant account source".into())
                })?;
                BedrockCredentials::PerTenant {
                    accounts,
                    gateway: env.gateway_identity.clone(),
                }
            } else {
                BedrockCredentials::Platform(env.gateway_identity.clone())
            };
            let mut c = BedrockConfig::new(
                p.name.clone(),
                p.region.clone().unwrap_or_default(),
                model,
                credentials,
            );
            c.endpoint_url = p.endpoint.clone();
            c.sts_endpoint_url = p.sts_endpoint.clone();
            c.http = http;
            Arc::new(Bedrock::new(c).map_err(|e| err(e.to_string()))?)
        }
        ProviderKind::Local => Arc::new(LocalProvider::new(p.name.clone())),
    };
    Ok(built)
}

/// Builds every provider in `cfg`, or reports every provider that could not be built.
pub fn build_registry(cfg: &Config, env: &BuildEnv<'_>) -> Result<Registry, Vec<RegistryError>> {
    let mut reg = Registry::new();
    let mut errs = Vec::new();
    for p in &cfg.providers {
        match build_one(cfg, p, env) {
            Ok(provider) => {
                let mut e = RegistryEntry::new(provider, p.models.clone());
                e.retry = p.retry;
                e.breaker = p.breaker;
                reg.insert(e);
            }
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() { Ok(reg) } else { Err(errs) }
}

/// A tenant's Bedrock account from its policy settings. `static_keys` resolves a
/// `StaticKeysRef` (the gateway decrypts it from storage); `None` means it could not.
/// The STS session is named `warden-<tenant>` so CloudTrail in the customer's account
/// shows which tenant's requests these were.
pub fn bedrock_account(
    tenant_id: &str,
    settings: &CustomerBedrock,
    static_keys: impl FnOnce(&str) -> Option<StaticKeys>,
) -> Option<BedrockAccount> {
    let credentials = match &settings.credentials {
        CustomerCredentials::AssumeRole {
            role_arn,
            external_id,
        } => AccountCredentials::AssumeRole {
            role_arn: role_arn.clone(),
            external_id: SecretString::from(external_id.clone()),
            session_name: session_name(tenant_id),
        },
        CustomerCredentials::StaticKeysRef { credential_id } => {
            AccountCredentials::Static(static_keys(credential_id)?)
        }
    };
    Some(BedrockAccount {
        region: settings.region.clone(),
        credentials,
    })
}

/// STS session names allow `[\w+=,.@-]{2,64}`.
fn session_name(tenant_id: &str) -> String {
    let clean: String = tenant_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(57)
        .collect();
    format!("warden-{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_settings_become_a_bedrock_account() {
        let cb = CustomerBedrock {
            region: "eu-central-1".into(),
            credentials: CustomerCredentials::AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                external_id: "x".into(),
            },
        };
        let a = bedrock_account("acme corp/eu", &cb, |_| None).unwrap();
        assert_eq!(a.region, "eu-central-1");
        let AccountCredentials::AssumeRole { session_name, .. } = &a.credentials else {
            panic!("{a:?}")
        };
        assert_eq!(session_name, "warden-acme-corp-eu");
        let cb = CustomerBedrock {
            region: "us-west-2".into(),
            credentials: CustomerCredentials::StaticKeysRef {
                credential_id: "c1".into(),
            },
        };
        assert!(bedrock_account("acme", &cb, |_| None).is_none());
        let keys = |id: &str| {
            (id == "c1").then(|| StaticKeys {
                access_key_id: "AKIA1".into(),
                secret_access_key: SecretString::from("s"),
                session_token: None,
            })
        };
        assert!(matches!(
            bedrock_account("acme", &cb, keys).unwrap().credentials,
            AccountCredentials::Static(_)
        ));
    }
}
