//! API keys of the HTTP front, resolved through storage (which keeps only their hash) and
//! cached briefly by their SHA-256. A key stands for an `agent` identity scoped to its one
//! tenant, so the access matrix and the tenant check treat it like that certificate.
//!
//! Revocation: storage announces it on the settings watch for the key's tenant; every
//! gateway then drops its cached keys of that tenant (`forget_tenant`), and an open
//! stream of that tenant re-resolves its key and stops if it is gone.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::Channel;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::api_keys_client::ApiKeysClient;
use warden_tls::{Caller, Role, Scope};

/// What a live key stands for.
#[derive(Debug, Clone)]
pub(crate) struct KeyIdentity {
    pub tenant_id: String,
    pub key_id: String,
    pub identity: String,
    /// The data type of content that names none (unspecified: none).
    pub default_data_type: pb::DataType,
}

impl KeyIdentity {
    /// The caller a key stands for: an agent of its one tenant, named by the key.
    pub(crate) fn caller(&self) -> Caller {
        Caller {
            role: Role::Agent,
            name: format!("{}+key-{}", self.identity, self.key_id),
            scope: Scope::Tenants(vec![self.tenant_id.clone()]),
            insecure_dev: false,
        }
    }
}

/// Why a key does not authenticate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("the API key is unknown or revoked")]
    Unknown,
    #[error("API keys cannot be checked right now (storage: {0}); retry")]
    Unavailable(String),
}

#[derive(Clone)]
pub(crate) struct ApiKeys {
    client: ApiKeysClient<Channel>,
    cache: Cache<String, Arc<KeyIdentity>>,
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl ApiKeys {
    pub(crate) fn new(storage: Channel) -> Self {
        ApiKeys {
            client: ApiKeysClient::new(storage),
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The identity of a live key (cached), or why not.
    pub(crate) async fn resolve(&self, key: &str) -> Result<Arc<KeyIdentity>, KeyError> {
        let d = digest(key);
        if let Some(k) = self.cache.get(&d).await {
            return Ok(k);
        }
        let k = Arc::new(self.lookup(key).await?);
        self.cache.insert(d, k.clone()).await;
        Ok(k)
    }

    /// Straight from storage, bypassing the cache (an open stream re-checking its key).
    pub(crate) async fn lookup(&self, key: &str) -> Result<KeyIdentity, KeyError> {
        let mut c = self.client.clone();
        match c
            .resolve_api_key(st::ResolveApiKeyRequest {
                key: key.to_owned(),
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                Ok(KeyIdentity {
                    tenant_id: r.tenant_id,
                    key_id: r.key_id,
                    identity: r.identity,
                    default_data_type: pb::DataType::try_from(r.default_data_type)
                        .unwrap_or(pb::DataType::Unspecified),
                })
            }
            Err(s) if s.code() == Code::NotFound => Err(KeyError::Unknown),
            Err(s) => Err(KeyError::Unavailable(s.message().to_owned())),
        }
    }

    /// Drops every cached key (changes were missed).
    pub(crate) fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    /// Drops every cached key of `tenant_id` (its settings or keys changed).
    pub(crate) fn forget_tenant(&self, tenant_id: &str) {
        let t = tenant_id.to_owned();
        // Only fails when invalidation closures are not enabled; they are.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, k| k.tenant_id == t);
    }
}
