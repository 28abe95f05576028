//! Tenant settings (versioned, with history, pushed to watchers) and sealed customer credentials.
//!
//! The external id of a customer's Bedrock role is storage's, not the client's: one random
//! id per tenant and AWS account, generated when the role is first set and kept from then
//! on, so a party who learns another tenant's id cannot get the gateway to present it.

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use prost::Message;
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::customer_bedrock::Credentials;
use warden_proto::common::v1::{SourceCredentials, TenantSettings};
use warden_proto::storage::v1::tenant_store_server::TenantStore;
use warden_proto::storage::v1::{
    CustomerCredentials, GetCustomerCredentialsRequest, GetSourceCredentialsRequest,
    GetTenantSettingsRequest, ListEnabledTenantsRequest, ListEnabledTenantsResponse,
    PutCustomerCredentialsRequest, PutCustomerCredentialsResponse, PutSourceCredentialsRequest,
    PutSourceCredentialsResponse, PutTenantSettingsRequest, WatchTenantSettingsRequest,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::watch::ChangeStream;
use crate::{DbError, Storage};

impl Storage {
    /// The stored settings of a tenant, or `None` if nobody configured it.
    /// Sealed at rest under the tenant's data key (role ARNs, external ids, connections).
    pub async fn tenant_settings(&self, tenant_id: &str) -> Result<Option<TenantSettings>, Status> {
        let row = sqlx::query("SELECT settings FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get(0).map_err(DbError::from)?;
        let bytes = if stored.starts_with("w2.") {
            self.unseal(tenant_id, &stored).await?
        } else {
            // Written before settings were sealed.
            hex::decode(&stored)
                .map_err(|_| DbError::Corrupt(format!("settings of {tenant_id}")))?
        };
        Ok(Some(TenantSettings::decode(bytes.as_slice()).map_err(
            |_| DbError::Corrupt(format!("settings of {tenant_id}")),
        )?))
    }

    /// Stores a new version of a tenant's settings and pushes it to every watcher.
    pub async fn put_tenant_settings(
        &self,
        mut settings: TenantSettings,
        expected_version: u64,
        changed_by: &str,
    ) -> Result<TenantSettings, Status> {
        let tenant_id = settings.tenant_id.clone();
        // Make sure the tenant's data key exists before the transaction (creating it
        // writes too, and SQLite has one writer); sealing inside then uses it.
        self.inner.keys.prepare(&tenant_id).await?;
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
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
        self.assign_external_id(&mut tx, &mut settings, now).await?;
        settings.version = version as u64;
        settings.updated_at = Some(ts(now));
        settings.updated_by = changed_by.to_owned();
        let encoded = self.seal(&tenant_id, &settings.encode_to_vec()).await?;
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
        if !settings.enabled {
            // Opting out stops the tenant's investigations in the same transaction: no
            // worker can record another step, and each sees the cancellation at once.
            let reason = self
                .seal(
                    &tenant_id,
                    format!("cancelled: AI features were disabled for tenant {tenant_id} by {changed_by} (settings version {version})").as_bytes(),
                )
                .await?;
            let cancelled = Storage::cancel_tenant_runs(&mut tx, &tenant_id, &reason).await?;
            if cancelled > 0 {
                tracing::info!(tenant = %tenant_id, cancelled, "runs cancelled: the tenant opted out");
            }
        }
        self.notify_replicas(&mut tx, &tenant_id).await?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(tenant = %tenant_id, version, enabled = settings.enabled, by = changed_by, "tenant settings changed");
        self.push_change(tenant_id, settings.clone());
        Ok(settings)
    }

    /// Puts storage's external id for the tenant's role account into `settings`, generating
    /// it on first use. A client may send it back unchanged or leave it empty; any other value
    /// is refused, so no client can choose the id the gateway presents to STS.
    async fn assign_external_id(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        settings: &mut TenantSettings,
        now: i64,
    ) -> Result<(), Status> {
        let tenant_id = settings.tenant_id.clone();
        let Some(Credentials::AssumeRole(role)) = settings
            .customer_bedrock
            .as_mut()
            .and_then(|cb| cb.credentials.as_mut())
        else {
            return Ok(());
        };
        let account = aws_account(&role.role_arn).ok_or_else(|| {
            Status::invalid_argument(
                "customer_bedrock.assume_role.role_arn must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)",
            )
        })?;
        let stored: Option<String> = sqlx::query(
            "SELECT external_id FROM tenant_external_ids WHERE tenant_id = $1 AND aws_account = $2",
        )
        .bind(&tenant_id)
        .bind(account)
        .fetch_optional(&mut **tx)
        .await
        .map_err(DbError::from)?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()
        .map_err(DbError::from)?;
        // Sealed at rest like the settings that carry it.
        let stored = match stored {
            Some(sealed) if sealed.starts_with("w2.") => Some(
                String::from_utf8(self.unseal(&tenant_id, &sealed).await?)
                    .map_err(|_| DbError::Corrupt(format!("external id of {tenant_id}")))?,
            ),
            other => other,
        };
        if !role.external_id.is_empty() && stored.as_deref() != Some(role.external_id.as_str()) {
            // Never echo the value: it may be another tenant's.
            return Err(Status::invalid_argument(
                "customer_bedrock.assume_role.external_id is generated by Warden; leave it empty (Admin.GetTenantSettings shows the value to put in the role's trust policy)",
            ));
        }
        role.external_id = match stored {
            Some(id) => id,
            None => {
                let id = new_external_id();
                let sealed = self.seal(&tenant_id, id.as_bytes()).await?;
                sqlx::query(
                    "INSERT INTO tenant_external_ids (tenant_id, aws_account, external_id, created_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(&tenant_id)
                .bind(account)
                .bind(&sealed)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(|_| {
                    Status::aborted(format!(
                        "settings of tenant {tenant_id} were changed concurrently; read them again and retry"
                    ))
                })?;
                id
            }
        };
        Ok(())
    }
}

/// The AWS account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`).
fn aws_account(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, _partition, iam, _region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let resource = parts.next()?;
    (arn == "arn"
        && iam == "iam"
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.starts_with("role/"))
    .then_some(account)
}

/// 128 random bits from the OS: unguessable, and allowed by STS (`[\w+=,.@:/-]`).
fn new_external_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    format!("warden-{}", hex::encode(bytes))
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

    async fn list_enabled_tenants(
        &self,
        req: Request<ListEnabledTenantsRequest>,
    ) -> Result<Response<ListEnabledTenantsResponse>, Status> {
        authorize(&req, "warden.storage.v1.TenantStore/ListEnabledTenants")?.platform()?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) };
        let rows = sqlx::query(
            "SELECT tenant_id FROM tenant_settings WHERE enabled = 1 AND tenant_id > $1 ORDER BY tenant_id LIMIT $2",
        )
        .bind(&r.after)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0).map_err(DbError::from)?;
            if let Some(s) = self.tenant_settings(&id).await? {
                tenants.push(s);
            }
        }
        Ok(Response::new(ListEnabledTenantsResponse { tenants }))
    }

    type WatchTenantSettingsStream = ChangeStream;

    async fn watch_tenant_settings(
        &self,
        req: Request<WatchTenantSettingsRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        authorize(&req, "warden.storage.v1.TenantStore/WatchTenantSettings")?.platform()?;
        Ok(Response::new(self.watch_changes()?))
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
        let id = self
            .store_credentials(CredentialTable::Customer, &r.tenant_id, &plain)
            .await?;
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
        let plain = self
            .load_credentials(CredentialTable::Customer, &r.tenant_id, &r.credentials_id)
            .await?;
        let creds = CustomerCredentials::decode(plain.as_slice())
            .map_err(|_| Status::data_loss("stored credentials are corrupt"))?;
        Ok(Response::new(creds))
    }

    async fn put_source_credentials(
        &self,
        req: Request<PutSourceCredentialsRequest>,
    ) -> Result<Response<PutSourceCredentialsResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/PutSourceCredentials")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let creds = r
            .credentials
            .ok_or_else(|| Status::invalid_argument("credentials are required"))?;
        check_source_credentials(&creds)?;
        let id = self
            .store_credentials(
                CredentialTable::Source,
                &r.tenant_id,
                &creds.encode_to_vec(),
            )
            .await?;
        Ok(Response::new(PutSourceCredentialsResponse {
            credentials_id: id,
        }))
    }

    async fn get_source_credentials(
        &self,
        req: Request<GetSourceCredentialsRequest>,
    ) -> Result<Response<SourceCredentials>, Status> {
        let auth = authorize(&req, "warden.storage.v1.TenantStore/GetSourceCredentials")?;
        let r = req.into_inner();
        check_tenant(&r.tenant_id)?;
        auth.for_tenant(&r.tenant_id)?;
        let plain = self
            .load_credentials(CredentialTable::Source, &r.tenant_id, &r.credentials_id)
            .await?;
        let creds = SourceCredentials::decode(plain.as_slice())
            .map_err(|_| Status::data_loss("stored source credentials are corrupt"))?;
        Ok(Response::new(creds))
    }
}

/// Where sealed credentials live: customer AWS keys, a Prometheus/GitHub source's (which
/// the agent service reads), or release credentials (which only the gateway reads).
#[derive(Clone, Copy)]
pub(crate) enum CredentialTable {
    Customer,
    Source,
    Release,
}

impl CredentialTable {
    fn insert(self) -> &'static str {
        match self {
            CredentialTable::Customer => {
                "INSERT INTO customer_credentials (id, tenant_id, sealed, created_ms) VALUES ($1, $2, $3, $4)"
            }
            CredentialTable::Source => {
                "INSERT INTO source_credentials (id, tenant_id, sealed, created_ms) VALUES ($1, $2, $3, $4)"
            }
            CredentialTable::Release => {
                "INSERT INTO release_credentials (id, tenant_id, sealed, created_ms) VALUES ($1, $2, $3, $4)"
            }
        }
    }

    fn select(self) -> &'static str {
        match self {
            CredentialTable::Customer => {
                "SELECT sealed FROM customer_credentials WHERE id = $1 AND tenant_id = $2"
            }
            CredentialTable::Source => {
                "SELECT sealed FROM source_credentials WHERE id = $1 AND tenant_id = $2"
            }
            CredentialTable::Release => {
                "SELECT sealed FROM release_credentials WHERE id = $1 AND tenant_id = $2"
            }
        }
    }
}

impl Storage {
    /// Seals `plain` under the tenant's data key and stores it; returns its new id.
    pub(crate) async fn store_credentials(
        &self,
        table: CredentialTable,
        tenant_id: &str,
        plain: &[u8],
    ) -> Result<String, Status> {
        let sealed = self.seal(tenant_id, plain).await?;
        let id = new_id();
        sqlx::query(table.insert())
            .bind(&id)
            .bind(tenant_id)
            .bind(&sealed)
            .bind(now_ms())
            .execute(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        Ok(id)
    }

    /// The opened credentials `id` of the tenant; NOT_FOUND for another tenant's id.
    pub(crate) async fn load_credentials(
        &self,
        table: CredentialTable,
        tenant_id: &str,
        id: &str,
    ) -> Result<Vec<u8>, Status> {
        let row = sqlx::query(table.select())
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "tenant {tenant_id} has no credentials with that id"
                ))
            })?;
        let sealed: String = row.try_get(0).map_err(DbError::from)?;
        self.unseal(tenant_id, &sealed).await
    }
}

/// Source credentials must be complete and bounded; their values are never echoed.
pub(crate) fn check_source_credentials(c: &SourceCredentials) -> Result<(), Status> {
    use warden_proto::common::v1::source_credentials::Credentials;
    match &c.credentials {
        None => Err(Status::invalid_argument(
            "credentials need one of bearer_token, basic or github_app",
        )),
        Some(Credentials::BearerToken(t)) if t.is_empty() => {
            Err(Status::invalid_argument("bearer_token is empty"))
        }
        Some(Credentials::BearerToken(t)) => check_len("bearer_token", t, 4096),
        Some(Credentials::Basic(b)) if b.username.is_empty() => {
            Err(Status::invalid_argument("basic.username is empty"))
        }
        Some(Credentials::Basic(b)) => {
            check_len("basic.username", &b.username, 1024)?;
            check_len("basic.password", &b.password, 4096)
        }
        Some(Credentials::GithubApp(a)) => {
            if a.app_id == 0 || a.installation_id == 0 {
                return Err(Status::invalid_argument(
                    "github_app needs app_id and installation_id",
                ));
            }
            if !a.private_key_pem.contains("PRIVATE KEY-----") {
                return Err(Status::invalid_argument(
                    "github_app.private_key_pem is not a PEM private key",
                ));
            }
            check_len("github_app.private_key_pem", &a.private_key_pem, 16 * 1024)
        }
    }
}

#[cfg(test)]
mod tests;
