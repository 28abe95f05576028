//! A key-encryption key held in memory only: for tests and throw-away stores. It is
//! shaped like a KMS (key ids inside, encryption context bound) and can be switched
//! off to prove that storage fails closed when its key provider is unavailable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::{KeyError, KeyProvider, WrappedKey, gcm_open, gcm_seal, random_key};

#[derive(Debug, Clone)]
pub struct MemoryKeyProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: RwLock<Vec<(String, Zeroizing<[u8; 32]>)>>,
    available: AtomicBool,
    calls: AtomicU64,
}

impl Default for MemoryKeyProvider {
    fn default() -> Self {
        MemoryKeyProvider::new()
    }
}

impl MemoryKeyProvider {
    /// One fresh KEK.
    pub fn new() -> MemoryKeyProvider {
        let p = MemoryKeyProvider {
            inner: Arc::new(Inner {
                keys: RwLock::new(Vec::new()),
                available: AtomicBool::new(true),
                calls: AtomicU64::new(0),
            }),
        };
        p.rotate();
        p
    }

    /// Adds a new current KEK and returns its id.
    pub fn rotate(&self) -> String {
        let id = format!("mem-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        if let Ok(mut k) = self.inner.keys.write() {
            k.push((id.clone(), random_key()));
        }
        id
    }

    /// Makes every call fail as an unreachable KMS would (or work again).
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// How many calls reached the provider.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), KeyError> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        if self.inner.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(KeyError::Unavailable(
                "the in-memory key provider is switched off".into(),
            ))
        }
    }

    fn key(&self, id: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.inner
            .keys
            .read()
            .ok()
            .and_then(|k| k.iter().find(|(i, _)| i == id).map(|(_, v)| v.clone()))
            .ok_or_else(|| KeyError::UnknownKek(id.to_owned()))
    }
}

fn aad(context: &str) -> Vec<u8> {
    let mut a = b"warden-data-key\0".to_vec();
    a.extend_from_slice(context.as_bytes());
    a
}

#[async_trait::async_trait]
impl KeyProvider for MemoryKeyProvider {
    fn current_kek(&self) -> String {
        self.inner
            .keys
            .read()
            .ok()
            .and_then(|k| k.last().map(|(id, _)| id.clone()))
            .unwrap_or_default()
    }

    async fn generate_data_key(
        &self,
        context: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, WrappedKey), KeyError> {
        let key = random_key();
        let wrapped = self.wrap_key(&key, context).await?;
        Ok((key, wrapped))
    }

    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.check()?;
        let kek = self.key(&wrapped.kek_id)?;
        let plain =
            Zeroizing::new(gcm_open(&kek, &aad(context), &wrapped.blob).ok_or(KeyError::Unwrap)?);
        if plain.len() != 32 {
            return Err(KeyError::Unwrap);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }

    async fn wrap_key(&self, key: &[u8; 32], context: &str) -> Result<WrappedKey, KeyError> {
        self.check()?;
        let kek_id = self.current_kek();
        let kek = self.key(&kek_id)?;
        Ok(WrappedKey {
            blob: gcm_seal(&kek, &aad(context), key)?,
            kek_id,
        })
    }
}
