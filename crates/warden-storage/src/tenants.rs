//! Tenant settings (versioned, with history, pushed to watchers) and sealed customer credentials.

use std::pin::Pin;

use prost::Message;
use sqlx::Row;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use warden_proto::common::v1::TenantSettings;
use warden_proto::storage::v1::tenant_store_server::TenantStore;
use warden_proto::storage::v1::{
    CustomerCredentials, GetCustomerCredentialsRequest, GetTenantSettingsRequest,
    PutCustomerCredentialsRequest, PutCustomerCredentialsResponse, PutTenantSettingsRequest,
    TenantSettingsChange, WatchTenantSettingsRequest,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::{DbError, Storage};

type ChangeStream = Pin<Box<dyn Stream<Item = Result<TenantSettingsChange, Status>> + Send>>;

impl Storage {
    /// The stored settings of a tenant, or `None` if nobody configured it.
    pub async fn tenant_settings(
        &self,
        tenant_id: &str,
    ) -> Result<Option<TenantSettings>, DbError> {
        let row = sqlx::query("SELECT settings FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.inner.db.pool)
            .await?;
        row.map(|r| decode_settings(tenant_id, &r.try_get::<String, _>(0)?))
            .transpose()
    }

    /// Stores a new version of a tenant's settings and pushes it to every watcher.
    pub async fn put_tenant_settings(
        &self,
        mut settings: TenantSettings,
        expected_version: u64,
        changed_by: &str,
    ) -> Result<TenantSettings, Status> {
        let tenant_id = settings.tenant_id.clone();
        let db = &self.inner.db.pool;
        let mut tx = db.begin().await.map_err(DbError::from)?;
        let current: Option<i64> =
            sqlx::query("SELECT version FROM tenant_settings WHERE tenant_id = $1")
                .bind(&tenant_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(DbError::from)?
                .map(|r| r.try_get::<i64, _>(0))
                .transpose()
                .map_err(DbError::from)?;
        let current = current.unwrap_or(0);
        if expected_version != 0 && i64::try_from(expected_version).ok() != Some(current) {
            return Err(Status::aborted(format!(
                "settings of tenant {tenant_id} changed meanwhile (now version {current}, expected {expected_version}); read them again and retry"
            )));
        }
        let version = current + 1;
        let now = now_ms();
        settings.version = version as u64;
        settings.updated_at = Some(ts(now));
        settings.updated_by = changed_by.to_owned();
        let encoded = hex::encode(settings.encode_to_vec());
        sqlx::query(
            "INSERT INTO tenant_settings (tenant_id, version, enabled, settings, updated_ms, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id) DO UPDATE SET version = excluded.version, enabled = excluded.enabled,
               settings = excluded.settings, updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
        )
        .bind(&tenant_id)
        .bind(version)
        .bind(i64::from(settings.enabled))
        .bind(&encoded)
        .bind(now)
        .bind(changed_by)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        // The history's primary key also serializes concurrent writers: the loser fails here.
        let inserted = sqlx::query(
            "INSERT INTO tenant_settings_history (tenant_id, version, settings, changed_ms, changed_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&tenant_id)
        .bind(version)
        .bind(&encoded)
        .bind(now)
        .bind(changed_by)
        .execute(&mut *tx)
        .await;
        if inserted.is_err() {
            return Err(Status::aborted(format!(
                "settings of tenant {tenant_id} were changed concurrently; read them again and retry"
            )));
        }
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(tenant = %tenant_id, version, enabled = settings.enabled, by = changed_by, "tenant settings changed");
        // No receivers is fine: no gateway is watching yet.
        let _ = self.inner.changes.send(TenantSettingsChange {
            tenant_id,
            version: version as u64,
            settings: Some(settings.clone()),
            sync: false,
        });
        Ok(settings)
    }
}

fn decode_settings(tenant_id: &str, hex_text: &str) -> Result<TenantSettings, DbError> {
    let bytes =
        hex::decode(hex_text).map_err(|_| DbError::Corrupt(format!("settings of {tenant_id}")))?;
    TenantSettings::decode(bytes.as_slice())
        .map_err(|_| DbError::Corrupt(format!("settings of {tenant_id}")))
}

#[tonic::async_trait]
impl TenantStore for Storage {
    async fn get_tenant_settings(
        &self,
        req: Request<GetTenantSettingsRequest>,
    ) -> Result<Response<TenantSettings>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/GetTenantSettings")?;
        let tenant_id = &req.get_ref().tenant_id;
        check_tenant(tenant_id)?;
        auth.for_tenant(tenant_id)?;
        match self.tenant_settings(tenant_id).await? {
            Some(s) => Ok(Response::new(s)),
            None => Err(Status::not_found(format!(
                "tenant {tenant_id} has no AI settings"
            ))),
        }
    }

    async fn put_tenant_settings(
        &self,
        req: Request<PutTenantSettingsRequest>,
    ) -> Result<Response<TenantSettings>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/PutTenantSettings")?;
        let req = req.into_inner();
        let settings = req
            .settings
            .ok_or_else(|| Status::invalid_argument("settings are required"))?;
        check_tenant(&settings.tenant_id)?;
        auth.for_tenant(&settings.tenant_id)?;
        check_len("changed_by", &req.changed_by, 256)?;
        let saved = self
            .put_tenant_settings(settings, req.expected_version, &req.changed_by)
            .await?;
        Ok(Response::new(saved))
    }

    type WatchTenantSettingsStream = ChangeStream;

    async fn watch_tenant_settings(
        &self,
        req: Request<WatchTenantSettingsRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        authorize(&req, "warden.storage.v1.TenantStore/WatchTenantSettings")?.platform()?;
        // Subscribe first, then announce SYNC: no change can fall between the two.
        let rx = self.inner.changes.subscribe();
        let sync = TenantSettingsChange {
            sync: true,
            ..Default::default()
        };
        let changes = tokio_stream::wrappers::BroadcastStream::new(rx).map(|r| {
            r.map_err(|_| Status::aborted("this watcher fell behind and missed changes; drop cached settings and watch again"))
        });
        Ok(Response::new(Box::pin(
            tokio_stream::once(Ok(sync)).chain(changes),
        )))
    }

    async fn put_customer_credentials(
        &self,
        req: Request<PutCustomerCredentialsRequest>,
    ) -> Result<Response<PutCustomerCredentialsResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/PutCustomerCredentials")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        if r.access_key_id.is_empty() || r.secret_access_key.is_empty() {
            return Err(Status::invalid_argument(
                "access_key_id and secret_access_key are required",
            ));
        }
        for (field, value) in [
            ("access_key_id", &r.access_key_id),
            ("secret_access_key", &r.secret_access_key),
            ("session_token", &r.session_token),
        ] {
            check_len(field, value, 4096)?;
        }
        let plain = CustomerCredentials {
            access_key_id: r.access_key_id,
            secret_access_key: r.secret_access_key,
            session_token: r.session_token,
        }
        .encode_to_vec();
        let sealed = self
            .inner
            .sealer
            .seal(&r.tenant_id, &plain)
            .map_err(|_| Status::internal("could not seal credentials"))?;
        let id = new_id();
        sqlx::query("INSERT INTO customer_credentials (id, tenant_id, sealed, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(&r.tenant_id)
            .bind(&sealed)
            .bind(now_ms())
            .execute(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        Ok(Response::new(PutCustomerCredentialsResponse {
            credentials_id: id,
        }))
    }

    async fn get_customer_credentials(
        &self,
        req: Request<GetCustomerCredentialsRequest>,
    ) -> Result<Response<CustomerCredentials>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/GetCustomerCredentials")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let row =
            sqlx::query("SELECT sealed FROM customer_credentials WHERE id = $1 AND tenant_id = $2")
                .bind(&r.credentials_id)
                .bind(&r.tenant_id)
                .fetch_optional(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "tenant {} has no credentials with that id",
                        r.tenant_id
                    ))
                })?;
        let sealed: String = row.try_get(0).map_err(DbError::from)?;
        let plain = self.inner.sealer.open(&r.tenant_id, &sealed).map_err(|_| {
            Status::data_loss("stored credentials could not be opened with the current master key")
        })?;
        let creds = CustomerCredentials::decode(plain.as_slice())
            .map_err(|_| Status::data_loss("stored credentials are corrupt"))?;
        Ok(Response::new(creds))
    }
}
