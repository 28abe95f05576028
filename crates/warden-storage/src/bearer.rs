//! What API keys and ingest tokens share: a bearer secret is a recognizable prefix and
//! 32 random bytes in hex, stored only as its SHA-256, and revoking one is audited before
//! it happens and happens once.

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tonic::Status;

use crate::util::now_ms;
use crate::{DbError, Storage};

/// The SHA-256 of a secret, as stored and looked up.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new secret: `prefix` and 32 random bytes in hex.
pub(crate) fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Where one kind of bearer secret is kept, and how errors and audit records name it.
pub(crate) struct SecretTable {
    pub(crate) table: &'static str,
    pub(crate) id_column: &'static str,
    /// As a person reads it: "API key".
    pub(crate) noun: &'static str,
    /// The audit action of a revocation.
    pub(crate) revoked: &'static str,
}

impl Storage {
    /// Revokes `tenant`'s secret `id` in `kind`'s table: audited first, so a revocation
    /// nobody can account for never happens; revoking it again changes nothing. NOT_FOUND
    /// when the tenant has no such secret.
    pub(crate) async fn revoke_secret(
        &self,
        kind: &SecretTable,
        tenant: &str,
        id: &str,
        caller: &warden_tls::Caller,
    ) -> Result<(), Status> {
        let (table, column) = (kind.table, kind.id_column);
        let found = sqlx::query(&format!(
            "SELECT revoked_ms FROM {table} WHERE tenant_id = $1 AND {column} = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let Some(found) = found else {
            return Err(Status::not_found(format!(
                "tenant {tenant} has no {} {id:?}",
                kind.noun
            )));
        };
        if found.try_get::<i64, _>(0).map_err(DbError::from)? != 0 {
            return Ok(());
        }
        self.audit_admin_action(
            tenant,
            caller,
            kind.revoked,
            format!("{} {id} revoked", kind.noun),
        )
        .await?;
        sqlx::query(&format!(
            "UPDATE {table} SET revoked_ms = $1 WHERE tenant_id = $2 AND {column} = $3 AND revoked_ms = 0"
        ))
        .bind(now_ms())
        .bind(tenant)
        .bind(id)
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_stored_as_their_hash() {
        for prefix in [
            crate::api_keys::KEY_PREFIX,
            crate::ingest::tokens::TOKEN_PREFIX,
        ] {
            let (a, b) = (new_secret(prefix), new_secret(prefix));
            assert_ne!(a, b);
            assert!(a.starts_with(prefix) && a.len() == prefix.len() + 64);
            assert!(a[prefix.len()..].bytes().all(|c| c.is_ascii_hexdigit()));
            assert_eq!(digest(&a).len(), 64);
            assert!(!digest(&a).contains(&a[prefix.len()..]));
        }
    }
}
