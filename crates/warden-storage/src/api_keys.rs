//! Per-tenant API keys for the gateway's HTTP front: what an OpenAI or Anthropic SDK
//! without a Warden certificate sends (`Authorization: Bearer` or `x-api-key`).
//!
//! Admins (of the tenant, or platform-wide) create, list and revoke them; a key names the
//! identity that uses it (the caller in audit records) and may set the data type of
//! content that names none. A key is 32 random bytes behind a recognizable prefix, shown
//! once; storage keeps only its SHA-256. Creating and revoking are audited before they
//! commit. A revocation is announced on the settings watch for the key's tenant, so every
//! gateway drops its cached copy and ends the key's open streams at once.

use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::DataType;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::api_keys_server;
use warden_proto::storage::v1::api_keys_server::ApiKeys;
use warden_tls::authorize;

use crate::bearer::{SecretTable, digest, new_secret};
use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::{DbError, Storage};

/// Every key starts with this, so a leaked one is recognizable (secret scanners, logs).
pub const KEY_PREFIX: &str = "wdn_key_";

const API_KEYS: SecretTable = SecretTable {
    table: "api_keys",
    id_column: "key_id",
    noun: "API key",
    revoked: "API_KEY_REVOKED",
};

/// An identity name as certificates spell them: 1 to 64 of letters, digits, '-', '_', '.'.
fn check_identity(identity: &str) -> Result<(), Status> {
    let ok = !identity.is_empty()
        && identity.len() <= 64
        && identity
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(
            "identity must be 1 to 64 letters, digits, '-', '_' or '.' (who uses the key, as audit records name it)",
        ))
    }
}

impl Storage {
    /// Tells every watcher (here and, through PostgreSQL NOTIFY, on every replica) that
    /// something about `tenant_id` changed, with its current settings.
    pub(crate) async fn announce_tenant(&self, tenant_id: &str) -> Result<(), Status> {
        let mut conn = self.inner.db.pool.acquire().await.map_err(DbError::from)?;
        self.notify_replicas(&mut conn, tenant_id).await?;
        if let Some(settings) = self.tenant_settings(tenant_id).await? {
            self.push_change(tenant_id.to_owned(), settings);
        }
        Ok(())
    }

    fn key_info(
        &self,
        row: &sqlx::any::AnyRow,
        description: String,
    ) -> Result<st::ApiKeyInfo, Status> {
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        Ok(st::ApiKeyInfo {
            key_id: row.try_get(0).map_err(g)?,
            tenant_id: row.try_get(1).map_err(g)?,
            identity: row.try_get(2).map_err(g)?,
            default_data_type: row.try_get::<i64, _>(3).map_err(g)? as i32,
            description,
            created_at: Some(ts(row.try_get(5).map_err(g)?)),
            created_by: row.try_get(6).map_err(g)?,
            revoked: row.try_get::<i64, _>(7).map_err(g)? != 0,
        })
    }
}

const COLUMNS: &str = "key_id, tenant_id, identity, default_data_type, description, created_ms, created_by, revoked_ms";

#[tonic::async_trait]
impl ApiKeys for Storage {
    async fn create_api_key(
        &self,
        req: Request<st::CreateApiKeyRequest>,
    ) -> Result<Response<st::CreateApiKeyResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.ApiKeys/CreateApiKey")?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        let caller = auth.for_tenant(&r.tenant_id)?;
        check_identity(&r.identity)?;
        check_len("description", &r.description, 256)?;
        if DataType::try_from(r.default_data_type).is_err() {
            return Err(Status::invalid_argument(format!(
                "default_data_type {} is not a data type",
                r.default_data_type
            )));
        }
        let key_id = new_id();
        let key = new_secret(KEY_PREFIX);
        let description = self.seal_nonempty(&r.tenant_id, &r.description).await?;
        // Audited before it is committed: a key nobody can account for never exists.
        self.audit_admin_action(
            &r.tenant_id,
            &caller,
            "API_KEY_CREATED",
            format!("API key {key_id} created for {}", r.identity),
        )
        .await?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, key_sha256, identity, default_data_type, description, created_by, created_ms, revoked_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
        )
        .bind(&key_id)
        .bind(&r.tenant_id)
        .bind(digest(&key))
        .bind(&r.identity)
        .bind(i64::from(r.default_data_type))
        .bind(&description)
        .bind(caller.subject())
        .bind(now_ms())
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(Response::new(st::CreateApiKeyResponse { key_id, key }))
    }

    async fn list_api_keys(
        &self,
        req: Request<st::ListApiKeysRequest>,
    ) -> Result<Response<st::ListApiKeysResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.ApiKeys/ListApiKeys")?;
        let tenant = &req.get_ref().tenant_id;
        check_tenant(tenant)?;
        auth.for_tenant(tenant)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_ms, key_id"
        ))
        .bind(tenant)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let sealed: String = row.try_get(4).map_err(DbError::from)?;
            let description = if sealed.is_empty() {
                String::new()
            } else {
                String::from_utf8_lossy(&self.unseal(tenant, &sealed).await?).into_owned()
            };
            keys.push(self.key_info(row, description)?);
        }
        Ok(Response::new(st::ListApiKeysResponse { keys }))
    }

    async fn revoke_api_key(
        &self,
        req: Request<st::RevokeApiKeyRequest>,
    ) -> Result<Response<st::RevokeApiKeyResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.ApiKeys/RevokeApiKey")?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        let caller = auth.for_tenant(&r.tenant_id)?;
        check_len("key_id", &r.key_id, 64)?;
        self.revoke_secret(&API_KEYS, &r.tenant_id, &r.key_id, &caller)
            .await?;
        // Every gateway drops the key now, open streams included.
        self.announce_tenant(&r.tenant_id).await?;
        Ok(Response::new(st::RevokeApiKeyResponse {}))
    }

    async fn resolve_api_key(
        &self,
        req: Request<st::ResolveApiKeyRequest>,
    ) -> Result<Response<st::ApiKeyInfo>, Status> {
        authorize(&req, "warden.storage.v1.ApiKeys/ResolveApiKey")?.platform()?;
        let key = &req.get_ref().key;
        let well_formed = key
            .strip_prefix(KEY_PREFIX)
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(Status::not_found(format!(
                "not a Warden API key (they start with {KEY_PREFIX})"
            )));
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_sha256 = $1 AND revoked_ms = 0"
        ))
        .bind(digest(key))
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| Status::not_found("the API key is unknown or revoked"))?;
        Ok(Response::new(self.key_info(&row, String::new())?))
    }
}

/// The gRPC service.
pub(crate) fn service(storage: Storage, max: usize) -> api_keys_server::ApiKeysServer<Storage> {
    api_keys_server::ApiKeysServer::new(storage).max_decoding_message_size(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_names_as_certificates_spell_them() {
        assert!(check_identity("triage-bot").is_ok());
        assert!(check_identity("").is_err() && check_identity("a b").is_err());
    }
}
