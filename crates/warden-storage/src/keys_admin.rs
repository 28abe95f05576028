//! Key management while the services run: re-wrapping every data key under a new
//! key-encryption key, replacing one tenant's data key (re-encrypting its values in the
//! background, reads working throughout), and crypto-shredding a tenant. Platform-wide
//! admins only; every action is audited before it is reported done.

use std::pin::Pin;

use sqlx::Row;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::keys_server::Keys;
use warden_proto::storage::v1::{
    RotateKeyEncryptionKeyRequest, RotateKeyEncryptionKeyResponse, RotateTenantKeyRequest,
    RotationProgress, ShredTenantRequest, ShredTenantResponse,
};
use warden_tls::authorize;

use crate::util::check_tenant;
use crate::{DbError, Storage};

/// Every sealed column: `(table, column)`. Each holds values sealed for its row's tenant.
const SEALED: &[(&str, &str)] = &[
    ("tenant_settings", "settings"),
    ("tenant_settings_history", "settings"),
    ("tenant_external_ids", "external_id"),
    ("customer_credentials", "sealed"),
    ("source_credentials", "sealed"),
    ("runs", "trigger_sealed"),
    ("runs", "status_reason"),
    ("runs", "state_sealed"),
    ("runs", "sandbox_sealed"),
    ("run_events", "sealed"),
    ("findings", "sealed"),
    ("run_tool_calls", "sealed"),
    ("proposals", "sealed"),
    ("proposals", "review_sealed"),
    ("proposals", "release_sealed"),
    ("proposal_history", "sealed"),
    ("release_credentials", "sealed"),
    ("profiles", "summary"),
    ("cluster_objects", "json"),
    ("cluster_events", "event"),
    ("config_snapshots", "content"),
    ("config_snapshots", "diff"),
    ("ingest_tokens", "description"),
    ("api_keys", "description"),
    ("log_records", "sealed"),
    ("metric_series", "meta"),
    ("metric_series", "labels"),
    ("metric_points", "histogram"),
    ("spans", "sealed"),
];

/// Values re-encrypted per round trip to the database.
const BATCH: i64 = 200;

type ProgressStream = Pin<Box<dyn Stream<Item = Result<RotationProgress, Status>> + Send>>;

impl Storage {
    /// Records an administrative action (key rotation, tokens, API keys) before it
    /// commits: the caller of `tenant_id`, the rule id `action`, and what was done.
    pub(crate) async fn audit_admin_action(
        &self,
        tenant_id: &str,
        caller: &warden_tls::Caller,
        action: &str,
        message: String,
    ) -> Result<(), Status> {
        self.append_audit(AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: tenant_id.to_owned(),
            caller: caller.subject(),
            decision: AuditDecision::Allowed as i32,
            reason: action.to_owned(),
            reason_message: message,
            outcome: "ok".into(),
            recorded_by: "storage/storage".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
    }

    /// How many of the tenant's values are sealed under data key `key_id`.
    async fn count_sealed_under(&self, tenant_id: &str, key_id: &str) -> Result<u64, Status> {
        let pattern = format!("w2.{key_id}.%");
        let mut total = 0u64;
        for (table, col) in SEALED {
            let n: i64 = sqlx::query(&format!(
                "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1 AND {col} LIKE $2"
            ))
            .bind(tenant_id)
            .bind(&pattern)
            .fetch_one(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?
            .try_get(0)
            .map_err(DbError::from)?;
            total += n as u64;
        }
        Ok(total)
    }

    /// Re-encrypts up to [`BATCH`] values still sealed under `old`; returns how many.
    async fn reseal_batch(&self, tenant_id: &str, old: &str) -> Result<u64, Status> {
        let pattern = format!("w2.{old}.%");
        let mut done = 0u64;
        for (table, col) in SEALED {
            let rows = sqlx::query(&format!(
                "SELECT {col} FROM {table} WHERE tenant_id = $1 AND {col} LIKE $2 LIMIT $3"
            ))
            .bind(tenant_id)
            .bind(&pattern)
            .bind(BATCH)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
            for r in rows {
                let sealed: String = r.try_get(0).map_err(DbError::from)?;
                let fresh = self.inner.keys.reseal(tenant_id, &sealed).await?;
                // Matching on the old ciphertext (unique: random nonces) leaves a value a
                // writer replaced meanwhile alone; the next batch sees the new one.
                sqlx::query(&format!(
                    "UPDATE {table} SET {col} = $1 WHERE tenant_id = $2 AND {col} = $3"
                ))
                .bind(&fresh)
                .bind(tenant_id)
                .bind(&sealed)
                .execute(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?;
                done += 1;
            }
            if done > 0 {
                return Ok(done);
            }
        }
        Ok(done)
    }
}

#[tonic::async_trait]
impl Keys for Storage {
    async fn rotate_key_encryption_key(
        &self,
        req: Request<RotateKeyEncryptionKeyRequest>,
    ) -> Result<Response<RotateKeyEncryptionKeyResponse>, Status> {
        let caller =
            authorize(&req, "warden.storage.v1.Keys/RotateKeyEncryptionKey")?.platform()?;
        let (kek, per_owner) = self.inner.keys.rewrap_all().await?;
        // A tenant's audit key ("<tenant>/audit") is reported with the tenant.
        let mut per_tenant: std::collections::BTreeMap<String, u64> = Default::default();
        for (owner, n) in per_owner {
            let tenant = owner.strip_suffix("/audit").unwrap_or(&owner).to_owned();
            *per_tenant.entry(tenant).or_default() += n;
        }
        let mut total = 0;
        for (tenant, n) in &per_tenant {
            total += n;
            self.audit_admin_action(
                tenant,
                &caller,
                "DATA_KEYS_REWRAPPED",
                format!("{n} data key(s) re-wrapped under key-encryption key {kek}"),
            )
            .await?;
        }
        tracing::info!(kek = %kek, rewrapped = total, "data keys re-wrapped under the current KEK");
        Ok(Response::new(RotateKeyEncryptionKeyResponse {
            kek_id: kek,
            data_keys_rewrapped: total,
        }))
    }

    type RotateTenantKeyStream = ProgressStream;

    async fn rotate_tenant_key(
        &self,
        req: Request<RotateTenantKeyRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        let caller = authorize(&req, "warden.storage.v1.Keys/RotateTenantKey")?.platform()?;
        let tenant = req.into_inner().tenant_id;
        check_tenant(&tenant)?;
        let (old, new) = self.inner.keys.replace_key(&tenant).await?;
        self.audit_admin_action(
            &tenant,
            &caller,
            "TENANT_KEY_ROTATION_STARTED",
            format!("new data key {new}; re-encrypting what {old:?} sealed"),
        )
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let storage = self.clone();
        // The work runs to the end even if the caller stops listening.
        tokio::spawn(async move {
            let result = async {
                let Some(old) = old else {
                    return Ok((0, 0));
                };
                let total = storage.count_sealed_under(&tenant, &old).await?;
                let mut done = 0;
                loop {
                    let n = storage.reseal_batch(&tenant, &old).await?;
                    if n == 0 {
                        break;
                    }
                    done += n;
                    let _ = tx
                        .send(Ok(RotationProgress {
                            new_key_id: new.clone(),
                            done,
                            total,
                            finished: false,
                        }))
                        .await;
                }
                let destroyed = storage.inner.keys.destroy_keys(&tenant, Some(&old)).await?;
                Ok::<_, Status>((done, destroyed))
            }
            .await;
            let msg = match &result {
                Ok((done, destroyed)) => {
                    let audited = storage
                        .audit_admin_action(
                            &tenant,
                            &caller,
                            "TENANT_KEY_ROTATED",
                            format!("{done} value(s) re-encrypted under {new}; {destroyed} old key(s) destroyed"),
                        )
                        .await;
                    audited.map(|()| RotationProgress {
                        new_key_id: new.clone(),
                        done: *done,
                        total: *done,
                        finished: true,
                    })
                }
                Err(s) => Err(s.clone()),
            };
            let _ = tx.send(msg).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn shred_tenant(
        &self,
        req: Request<ShredTenantRequest>,
    ) -> Result<Response<ShredTenantResponse>, Status> {
        let caller = authorize(&req, "warden.storage.v1.Keys/ShredTenant")?.platform()?;
        let tenant = req.into_inner().tenant_id;
        check_tenant(&tenant)?;
        // Audited first: if the record cannot be written, nothing is destroyed.
        self.audit_admin_action(
            &tenant,
            &caller,
            "TENANT_SHRED_REQUESTED",
            "the tenant's data keys and settings are to be destroyed; its sealed data will no longer be readable".into(),
        )
        .await?;
        // AI off first, pushed to every gateway like any settings change.
        self.put_tenant_settings(
            warden_proto::common::v1::TenantSettings {
                tenant_id: tenant.clone(),
                ..Default::default()
            },
            0,
            &caller.subject(),
        )
        .await?;
        let destroyed = self.inner.keys.destroy_keys(&tenant, None).await?
            + self
                .inner
                .keys
                .destroy_keys(&crate::audit::audit_scope(&tenant), None)
                .await?;
        // Signals go too: unreadable once the keys are gone, and their clear columns
        // (services, metric names, times) are the tenant's as well.
        for table in [
            "tenant_settings",
            "tenant_settings_history",
            "tenant_external_ids",
            "log_records",
            "metric_series",
            "metric_points",
            "spans",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                .bind(&tenant)
                .execute(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?;
        }
        // Under a fresh audit key, so compliance can still read that it happened.
        self.audit_admin_action(
            &tenant,
            &caller,
            "TENANT_SHREDDED",
            format!(
                "{destroyed} data key(s) destroyed; the tenant's sealed data can no longer be read"
            ),
        )
        .await?;
        Ok(Response::new(ShredTenantResponse {
            data_keys_destroyed: destroyed,
        }))
    }
}
