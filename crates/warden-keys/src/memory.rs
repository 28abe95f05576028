//! A key-encryption key held in memory only: for tests and throw-away stores. It is
//! shaped like a KMS (key ids inside, encryption context bound) and can be switched
//! off to prove that storage fails closed when its key provider is unavailable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::{Keks, KeyError, KeyProvider, WrappedKey, random_key, unwrap_local, wrap_local};

#[derive(Debug, Clone)]
pub struct MemoryKeyProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Keks,
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
                keys: Keks::default(),
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
        self.inner.keys.push(id.clone(), random_key());
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
            .get(id)
            .ok_or_else(|| KeyError::UnknownKek(id.to_owned()))
    }
}

#[async_trait::async_trait]
impl KeyProvider for MemoryKeyProvider {
    fn current_kek(&self) -> String {
        self.inner.keys.current()
    }

    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.check()?;
        let kek = self.key(&wrapped.kek_id)?;
        unwrap_local(&kek, wrapped, context)
    }

    async fn wrap_key(&self, key: &[u8; 32], context: &str) -> Result<WrappedKey, KeyError> {
        self.check()?;
        let kek_id = self.current_kek();
        let kek = self.key(&kek_id)?;
        wrap_local(kek_id, &kek, key, context)
    }
}
