//! A key-encryption key in a KMS: [`KmsKeyProvider`] maps the three [`KeyProvider`] calls
//! onto AWS KMS's `GenerateDataKey`, `Decrypt` and `Encrypt`, with the tenant as the
//! encryption context, through [`KmsApi`], the operations as the AWS SDK exposes them. A
//! real client implements `KmsApi` over the SDK; `warden-testkit`'s mock KMS implements it
//! to prove the shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{KeyError, KeyProvider, WrappedKey, key32};

/// KMS encryption context: bound to every ciphertext, required again to decrypt.
pub type EncryptionContext = BTreeMap<String, String>;

/// What `GenerateDataKey` returns.
#[derive(Debug)]
pub struct GeneratedDataKey {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub ciphertext_blob: Vec<u8>,
    /// The key's ARN (KMS answers with the ARN even when asked by alias).
    pub key_id: String,
}

/// The KMS operations Warden uses, shaped as AWS KMS defines them.
#[async_trait::async_trait]
pub trait KmsApi: Send + Sync + std::fmt::Debug {
    /// `GenerateDataKey` with `KeySpec = AES_256`.
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KeyError>;
    /// `Decrypt`: the ciphertext blob names its key; returns the plaintext and that key's ARN.
    async fn decrypt(
        &self,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, String), KeyError>;
    /// `Encrypt` under `key_id`: returns the blob and the key's ARN.
    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError>;
}

/// Data keys wrapped by a KMS key (`key_id`: an ARN or `alias/...`).
#[derive(Debug, Clone)]
pub struct KmsKeyProvider {
    api: Arc<dyn KmsApi>,
    key_id: String,
}

impl KmsKeyProvider {
    pub fn new(api: Arc<dyn KmsApi>, key_id: impl Into<String>) -> KmsKeyProvider {
        KmsKeyProvider {
            api,
            key_id: key_id.into(),
        }
    }
}

fn context(tenant: &str) -> EncryptionContext {
    BTreeMap::from([("warden:owner".to_owned(), tenant.to_owned())])
}

#[async_trait::async_trait]
impl KeyProvider for KmsKeyProvider {
    fn current_kek(&self) -> String {
        self.key_id.clone()
    }

    async fn generate_data_key(
        &self,
        owner: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, WrappedKey), KeyError> {
        let g = self
            .api
            .generate_data_key(&self.key_id, &context(owner))
            .await?;
        Ok((
            key32(&g.plaintext)?,
            WrappedKey {
                kek_id: g.key_id,
                blob: g.ciphertext_blob,
            },
        ))
    }

    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        owner: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let (plain, key_id) = self.api.decrypt(&wrapped.blob, &context(owner)).await?;
        if key_id != wrapped.kek_id {
            return Err(KeyError::Unwrap);
        }
        key32(&plain)
    }

    async fn wrap_key(&self, key: &[u8; 32], owner: &str) -> Result<WrappedKey, KeyError> {
        let (blob, kek_id) = self.api.encrypt(&self.key_id, key, &context(owner)).await?;
        Ok(WrappedKey { kek_id, blob })
    }
}
