//! Sealing at rest with envelope encryption (`warden-keys`): each tenant's values are
//! sealed under that tenant's data key; data keys are stored only wrapped by the
//! key-encryption key of the [`KeyProvider`] (a key file apart from the data, or a KMS).
//! A sealed value names its data key and a wrapped data key its KEK, and both are
//! honoured on open. Values sealed before envelope encryption (`<id>:<hex>` under the old
//! master key) still open when that key is given.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sqlx::Row;
use tonic::Status;
use warden_keys::{DataKey, KeyError, KeyProvider, SealedRef, WrappedKey};

use crate::util::{new_id, now_ms};
use crate::{Db, DbError, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "the key file {path} is missing, but the database holds data keys wrapped under {kek}; restore that key file (a fresh key would make every sealed value unreadable)"
    )]
    MissingKeyFile { path: String, kek: String },
    #[error(
        "the key provider cannot open the data keys wrapped under {kek} ({error}); start storage with the key file or KMS key that holds {kek}"
    )]
    WrongKey { kek: String, error: KeyError },
    #[error("{0}")]
    AuditLog(String),
}

/// Opens the key file at `path` for the database `db`: created on first use of an empty
/// store only; refused if missing while the database holds data keys, if others can
/// read it, or if it sits inside `data_dir`.
pub async fn key_file_provider(
    db: &Db,
    path: &Path,
    data_dir: Option<&Path>,
) -> Result<warden_keys::FileKeyProvider, KeyringError> {
    db.migrate().await?;
    if let Some(dir) = data_dir {
        warden_keys::FileKeyProvider::check_outside(path, dir)?;
    }
    let provider = if path.exists() {
        warden_keys::FileKeyProvider::load(path)?
    } else if let Some(kek) = any_kek(db).await? {
        return Err(KeyringError::MissingKeyFile {
            path: path.display().to_string(),
            kek,
        });
    } else {
        tracing::info!(path = %path.display(), "created a key-encryption key file (first run)");
        warden_keys::FileKeyProvider::create(path)?
    };
    Ok(provider)
}

async fn any_kek(db: &Db) -> Result<Option<String>, DbError> {
    let row = sqlx::query("SELECT kek_id FROM data_keys LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
}

/// How long an opened data key is used before it is read (and unwrapped) again.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Seals and opens values per tenant under data keys the provider wraps.
pub(crate) struct Keyring {
    db: Db,
    provider: Arc<dyn KeyProvider>,
    /// Data keys opened so far, by id: `(tenant, key, when opened)`. Kept for
    /// [`KEY_CACHE_TTL`] only, so a key destroyed through another storage replica
    /// (crypto-shredding) stops opening anything here within that time.
    keys: Mutex<HashMap<String, (String, DataKey, std::time::Instant)>>,
    /// Each tenant's current data key id.
    current: Mutex<HashMap<String, String>>,
    legacy: Option<Sealer>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

fn sealing_failed(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "sealing at rest failed");
    Status::unavailable("the value could not be sealed at rest, so it was not stored")
}

fn opening_failed(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "a sealed value could not be opened");
    Status::data_loss("a stored value could not be opened with the keys storage holds")
}

impl Keyring {
    /// A keyring over `db`, refusing to start unless the provider opens a data key of
    /// every KEK the database names (fail closed and loud, naming the KEK expected).
    pub(crate) async fn open(
        db: Db,
        provider: Arc<dyn KeyProvider>,
        legacy: Option<Sealer>,
    ) -> Result<Keyring, KeyringError> {
        let rows =
            sqlx::query("SELECT kek_id, MIN(id) FROM data_keys GROUP BY kek_id ORDER BY kek_id")
                .fetch_all(&db.pool)
                .await
                .map_err(DbError::from)?;
        let keyring = Keyring {
            db,
            provider,
            keys: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            legacy,
        };
        for r in rows {
            let kek: String = r.try_get(0).map_err(DbError::from)?;
            let id: String = r.try_get(1).map_err(DbError::from)?;
            if let Err(error) = keyring.load(&id, None).await {
                let error = match error {
                    LoadError::Key(e) => e,
                    LoadError::Db(e) => return Err(e.into()),
                    LoadError::Missing => continue,
                };
                return Err(KeyringError::WrongKey { kek, error });
            }
        }
        Ok(keyring)
    }

    /// Seals `plain` for `tenant_id` under the tenant's current data key (made on first use).
    pub(crate) async fn seal(&self, tenant_id: &str, plain: &[u8]) -> Result<String, Status> {
        let key = self.current_key(tenant_id).await?;
        warden_keys::seal(&key, tenant_id, plain).map_err(sealing_failed)
    }

    /// Makes sure the owner's current data key exists and is open, so sealing for it
    /// afterwards touches no database (creating a key is a write of its own, and SQLite
    /// has one writer: call this before a transaction that seals).
    pub(crate) async fn prepare(&self, owner: &str) -> Result<(), Status> {
        self.current_key(owner).await.map(|_| ())
    }

    /// Opens a value sealed for `tenant_id` (empty stays empty).
    pub(crate) async fn open_value(
        &self,
        tenant_id: &str,
        sealed: &str,
    ) -> Result<Vec<u8>, Status> {
        if sealed.is_empty() {
            return Ok(Vec::new());
        }
        let key_id = match SealedRef::parse(sealed) {
            Ok(r) => r.key_id.to_owned(),
            Err(_) => {
                // Sealed before envelope encryption, under the old master key.
                let legacy = self
                    .legacy
                    .as_ref()
                    .ok_or_else(|| opening_failed("no legacy master key for an old value"))?;
                return legacy.open(tenant_id, sealed).map_err(opening_failed);
            }
        };
        let key = self
            .load(&key_id, Some(tenant_id))
            .await
            .map_err(|e| opening_failed(format!("data key {key_id}: {e:?}")))?;
        warden_keys::open(&key, tenant_id, sealed).map_err(opening_failed)
    }

    async fn current_key(&self, tenant_id: &str) -> Result<DataKey, Status> {
        let known = self
            .current
            .lock()
            .ok()
            .and_then(|c| c.get(tenant_id).cloned());
        if let Some(id) = known
            && let Ok(k) = self.load(&id, Some(tenant_id)).await
        {
            return Ok(k);
        }
        let g = |e: sqlx::Error| sealing_failed(DbError::from(e));
        let active = sqlx::query("SELECT id FROM data_keys WHERE tenant_id = $1 AND active = 1")
            .bind(tenant_id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(g)?;
        let id = match active {
            Some(r) => r.try_get::<String, _>(0).map_err(g)?,
            None => self.create_key(tenant_id).await?,
        };
        let key = self
            .load(&id, Some(tenant_id))
            .await
            .map_err(|e| sealing_failed(format!("{e:?}")))?;
        if let Ok(mut c) = self.current.lock() {
            c.insert(tenant_id.to_owned(), id);
        }
        Ok(key)
    }

    /// A new active data key for the tenant; if another caller won the race, theirs.
    async fn create_key(&self, tenant_id: &str) -> Result<String, Status> {
        let (plain, wrapped) = self
            .provider
            .generate_data_key(tenant_id)
            .await
            .map_err(sealing_failed)?;
        let id = format!("dk-{}", new_id());
        let inserted = sqlx::query(
            "INSERT INTO data_keys (id, tenant_id, kek_id, wrapped, created_ms, active) VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(&wrapped.kek_id)
        .bind(hex::encode(&wrapped.blob))
        .bind(now_ms())
        .execute(&self.db.pool)
        .await;
        if inserted.is_err() {
            // The unique index on the tenant's active key: someone else made it first.
            let row = sqlx::query("SELECT id FROM data_keys WHERE tenant_id = $1 AND active = 1")
                .bind(tenant_id)
                .fetch_one(&self.db.pool)
                .await
                .map_err(|e| sealing_failed(DbError::from(e)))?;
            return row
                .try_get::<String, _>(0)
                .map_err(|e| sealing_failed(DbError::from(e)));
        }
        if let Ok(mut k) = self.keys.lock() {
            k.insert(
                id.clone(),
                (
                    tenant_id.to_owned(),
                    DataKey::new(id.clone(), plain),
                    std::time::Instant::now(),
                ),
            );
        }
        Ok(id)
    }

    /// Re-reads the provider and re-wraps every data key not under its current KEK;
    /// returns the KEK and, per tenant, how many keys were re-wrapped.
    pub(crate) async fn rewrap_all(&self) -> Result<(String, Vec<(String, u64)>), Status> {
        self.provider.refresh().await.map_err(sealing_failed)?;
        let kek = self.provider.current_kek();
        let g = |e: sqlx::Error| sealing_failed(DbError::from(e));
        let rows = sqlx::query("SELECT id, tenant_id, kek_id, wrapped FROM data_keys WHERE kek_id <> $1 ORDER BY tenant_id, id")
            .bind(&kek)
            .fetch_all(&self.db.pool)
            .await
            .map_err(g)?;
        let mut per_tenant: Vec<(String, u64)> = Vec::new();
        for r in rows {
            let (id, tenant): (String, String) =
                (r.try_get(0).map_err(g)?, r.try_get(1).map_err(g)?);
            let old = WrappedKey {
                kek_id: r.try_get(2).map_err(g)?,
                blob: hex::decode(r.try_get::<String, _>(3).map_err(g)?).map_err(sealing_failed)?,
            };
            let plain = self
                .provider
                .unwrap_key(&old, &tenant)
                .await
                .map_err(sealing_failed)?;
            let new = self
                .provider
                .wrap_key(&plain, &tenant)
                .await
                .map_err(sealing_failed)?;
            sqlx::query(
                "UPDATE data_keys SET kek_id = $1, wrapped = $2 WHERE id = $3 AND kek_id = $4",
            )
            .bind(&new.kek_id)
            .bind(hex::encode(&new.blob))
            .bind(&id)
            .bind(&old.kek_id)
            .execute(&self.db.pool)
            .await
            .map_err(g)?;
            match per_tenant.last_mut() {
                Some((t, n)) if *t == tenant => *n += 1,
                _ => per_tenant.push((tenant, 1)),
            }
        }
        Ok((kek, per_tenant))
    }

    /// Retires the tenant's active data key and makes a new one; returns `(old, new)`.
    /// The old key stays until [`Keyring::destroy_key`], so reads keep working.
    pub(crate) async fn replace_key(
        &self,
        tenant_id: &str,
    ) -> Result<(Option<String>, String), Status> {
        let g = |e: sqlx::Error| sealing_failed(DbError::from(e));
        let old: Option<String> =
            sqlx::query("SELECT id FROM data_keys WHERE tenant_id = $1 AND active = 1")
                .bind(tenant_id)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(g)?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()
                .map_err(g)?;
        sqlx::query("UPDATE data_keys SET active = 0 WHERE tenant_id = $1 AND active = 1")
            .bind(tenant_id)
            .execute(&self.db.pool)
            .await
            .map_err(g)?;
        if let Ok(mut c) = self.current.lock() {
            c.remove(tenant_id);
        }
        let new = self.create_key(tenant_id).await?;
        Ok((old, new))
    }

    /// Opens `sealed` and seals it again under the tenant's current key.
    pub(crate) async fn reseal(&self, tenant_id: &str, sealed: &str) -> Result<String, Status> {
        let plain = self.open_value(tenant_id, sealed).await?;
        self.seal(tenant_id, &plain).await
    }

    /// Destroys data key `id` (or all of the tenant's, for `None`): what it sealed can
    /// never be opened again. Returns how many keys were destroyed.
    pub(crate) async fn destroy_keys(
        &self,
        tenant_id: &str,
        id: Option<&str>,
    ) -> Result<u64, Status> {
        let g = |e: sqlx::Error| sealing_failed(DbError::from(e));
        let done = match id {
            Some(id) => sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(&self.db.pool)
                .await
                .map_err(g)?,
            None => sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&self.db.pool)
                .await
                .map_err(g)?,
        };
        if let Ok(mut k) = self.keys.lock() {
            k.retain(|kid, (owner, _, _)| owner != tenant_id || id.is_some_and(|i| i != kid));
        }
        if id.is_none()
            && let Ok(mut c) = self.current.lock()
        {
            c.remove(tenant_id);
        }
        Ok(done.rows_affected())
    }

    /// The data key `id`, unwrapped once; `tenant`, if given, must own it.
    async fn load(&self, id: &str, tenant: Option<&str>) -> Result<DataKey, LoadError> {
        let cached = self
            .keys
            .lock()
            .ok()
            .and_then(|k| k.get(id).cloned())
            .filter(|(_, _, at)| at.elapsed() < KEY_CACHE_TTL);
        if let Some((owner, key, _)) = cached {
            return match tenant {
                Some(t) if t != owner => Err(LoadError::Missing),
                _ => Ok(key),
            };
        }
        let row = sqlx::query("SELECT tenant_id, kek_id, wrapped FROM data_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| LoadError::Db(DbError::from(e)))?
            .ok_or(LoadError::Missing)?;
        let g = |e: sqlx::Error| LoadError::Db(DbError::from(e));
        let owner: String = row.try_get(0).map_err(g)?;
        if tenant.is_some_and(|t| t != owner) {
            return Err(LoadError::Missing);
        }
        let wrapped = WrappedKey {
            kek_id: row.try_get(1).map_err(g)?,
            blob: hex::decode(row.try_get::<String, _>(2).map_err(g)?)
                .map_err(|_| LoadError::Db(DbError::Corrupt(format!("data key {id}"))))?,
        };
        let plain = self
            .provider
            .unwrap_key(&wrapped, &owner)
            .await
            .map_err(LoadError::Key)?;
        let key = DataKey::new(id, plain);
        if let Ok(mut k) = self.keys.lock() {
            k.insert(
                id.to_owned(),
                (owner, key.clone(), std::time::Instant::now()),
            );
        }
        Ok(key)
    }
}

#[derive(Debug)]
enum LoadError {
    Missing,
    Key(KeyError),
    Db(DbError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn db(dir: &tempfile::TempDir) -> Db {
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("k.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        db
    }

    #[tokio::test]
    async fn values_open_for_their_tenant_only_and_sealing_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let kms = warden_keys::MemoryKeyProvider::new();
        let k = Keyring::open(db(&dir).await, Arc::new(kms.clone()), None)
            .await
            .unwrap();
        let sealed = k.seal("acme", b"arn:aws:iam::1:role/x").await.unwrap();
        assert_eq!(
            k.open_value("acme", &sealed).await.unwrap(),
            b"arn:aws:iam::1:role/x"
        );
        let err = k.open_value("beta", &sealed).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss);
        // A new tenant needs a new data key; with the provider down nothing is sealed.
        kms.set_available(false);
        let err = k.seal("gamma", b"x").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        // acme's key is already open: its values still seal and open.
        assert!(k.seal("acme", b"y").await.is_ok());
    }

    #[tokio::test]
    async fn values_from_before_envelope_encryption_still_open_with_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = Sealer::from_key([9; 32]);
        let legacy_value = old.seal("acme", b"old secret").unwrap();
        let provider = Arc::new(warden_keys::MemoryKeyProvider::new());
        let with = Keyring::open(db(&dir).await, provider.clone(), Some(old))
            .await
            .unwrap();
        assert_eq!(
            with.open_value("acme", &legacy_value).await.unwrap(),
            b"old secret"
        );
        let without = Keyring::open(db(&dir).await, provider, None).await.unwrap();
        assert!(without.open_value("acme", &legacy_value).await.is_err());
    }

    #[tokio::test]
    async fn a_provider_without_the_kek_the_database_names_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = Arc::new(warden_keys::MemoryKeyProvider::new());
        let k = Keyring::open(db(&dir).await, first.clone(), None)
            .await
            .unwrap();
        k.seal("acme", b"x").await.unwrap();
        let other = Arc::new(warden_keys::MemoryKeyProvider::new());
        let err = Keyring::open(db(&dir).await, other, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&first.current_kek()), "{err}");
    }
}
