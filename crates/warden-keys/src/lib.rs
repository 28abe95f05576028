//! Envelope encryption for what storage keeps.
//!
//! Values are sealed with AES-256-GCM under a **data key** (one per tenant, so destroying
//! it erases that tenant's data: crypto-shredding). Data keys are stored only wrapped by
//! a **key-encryption key** (KEK) that lives apart from the data, behind
//! [`KeyProvider`], whose three calls are AWS KMS's `GenerateDataKey`, `Decrypt` and
//! `Encrypt` (with the tenant as encryption context), so a KMS can replace the key file
//! ([`FileKeyProvider`]) without touching storage.
//!
//! Every ciphertext names the key that opens it: a sealed value carries its data key's id,
//! a wrapped data key its KEK's id; opening honours them, so keys rotate without
//! re-encrypting everything at once.

mod envelope;
mod file;
mod kms;
mod memory;

use std::fmt;

pub use envelope::{DataKey, SealedRef, open, seal};
pub use file::FileKeyProvider;
pub use kms::{EncryptionContext, GeneratedDataKey, KmsApi, KmsKeyProvider};
pub use memory::MemoryKeyProvider;
pub use zeroize::Zeroizing;

/// A data key as stored: wrapped under the KEK `kek_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub blob: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_id", &self.kek_id)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error(
        "key-encryption key {0:?} is not in the key provider; it is needed to open data sealed under it"
    )]
    UnknownKek(String),
    #[error(
        "a data key could not be unwrapped (wrong key-encryption key, wrong tenant, or tampered)"
    )]
    Unwrap,
    #[error("a sealed value could not be opened (wrong key, wrong tenant, or tampered)")]
    Open,
    #[error("a sealed value is not in a format this version knows")]
    Format,
    #[error("encryption failed")]
    Seal,
    #[error("the key provider is unavailable: {0}")]
    Unavailable(String),
}

/// Where key-encryption keys live: a key file now, a KMS later. Shaped after AWS KMS:
/// `context` is the encryption context (the tenant id), bound to every wrap.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The KEK new data keys are wrapped under.
    fn current_kek(&self) -> String;

    /// `GenerateDataKey`: a fresh 256-bit data key, in the clear and wrapped under the
    /// current KEK. By default a random key passed to [`KeyProvider::wrap_key`].
    async fn generate_data_key(
        &self,
        context: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, WrappedKey), KeyError> {
        let key = random_key();
        let wrapped = self.wrap_key(&key, context).await?;
        Ok((key, wrapped))
    }

    /// `Decrypt`: the data key inside `wrapped`, under the KEK it names.
    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError>;

    /// `Encrypt` under the current KEK: re-wraps a data key after a KEK rotation.
    async fn wrap_key(&self, key: &[u8; 32], context: &str) -> Result<WrappedKey, KeyError>;

    /// Picks up a rotated KEK (a key file re-read; a KMS alias re-resolved).
    async fn refresh(&self) -> Result<(), KeyError> {
        Ok(())
    }
}

/// Key-encryption keys held in this process: `(id, key)`, oldest first; the last is
/// current. Shared by the key file and the in-memory provider.
#[derive(Debug, Default)]
pub(crate) struct Keks(std::sync::RwLock<KekList>);

/// `(id, key)` pairs, oldest first.
pub(crate) type KekList = Vec<(String, Zeroizing<[u8; 32]>)>;

impl Keks {
    pub(crate) fn new(keys: KekList) -> Keks {
        Keks(std::sync::RwLock::new(keys))
    }

    pub(crate) fn replace(&self, keys: KekList) {
        if let Ok(mut k) = self.0.write() {
            *k = keys;
        }
    }

    pub(crate) fn push(&self, id: String, key: Zeroizing<[u8; 32]>) {
        if let Ok(mut k) = self.0.write() {
            k.push((id, key));
        }
    }

    pub(crate) fn current(&self) -> String {
        self.0
            .read()
            .ok()
            .and_then(|k| k.last().map(|(id, _)| id.clone()))
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Zeroizing<[u8; 32]>> {
        let keys = self.0.read().ok()?;
        keys.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.0
            .read()
            .map(|k| k.iter().map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }
}

fn wrap_aad(context: &str) -> Vec<u8> {
    let mut a = b"warden-data-key\0".to_vec();
    a.extend_from_slice(context.as_bytes());
    a
}

/// Wraps a data key under a KEK held in this process, the owner (`context`) bound.
pub(crate) fn wrap_local(
    kek_id: String,
    kek: &[u8; 32],
    key: &[u8; 32],
    context: &str,
) -> Result<WrappedKey, KeyError> {
    Ok(WrappedKey {
        blob: gcm_seal(kek, &wrap_aad(context), key)?,
        kek_id,
    })
}

/// The inverse of [`wrap_local`].
pub(crate) fn unwrap_local(
    kek: &[u8; 32],
    wrapped: &WrappedKey,
    context: &str,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let plain =
        Zeroizing::new(gcm_open(kek, &wrap_aad(context), &wrapped.blob).ok_or(KeyError::Unwrap)?);
    key32(&plain)
}

/// A 256-bit key from bytes that must be exactly that long.
pub(crate) fn key32(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    if bytes.len() != 32 {
        return Err(KeyError::Unwrap);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(bytes);
    Ok(key)
}

/// AES-256-GCM with a random nonce: `nonce || ciphertext`, `aad` bound.
pub(crate) fn gcm_seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .map_err(|_| KeyError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The inverse of [`gcm_seal`]; `None` if it does not open.
pub(crate) fn gcm_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    aes_gcm::Aes256Gcm::new(key.into())
        .decrypt(aes_gcm::Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

/// A fresh random 256-bit key.
pub(crate) fn random_key() -> Zeroizing<[u8; 32]> {
    use aes_gcm::aead::{KeyInit, OsRng};
    let k = aes_gcm::Aes256Gcm::generate_key(OsRng);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(k.as_slice());
    out
}
