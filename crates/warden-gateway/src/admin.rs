//! Admin API: tenant AI settings. Only the admin role; every change is audited and
//! applied to this gateway's cache before the call returns if its watch stayed live
//! throughout (others get it by watch).

use tonic::{Code, Request, Response, Status};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord, TenantSettings};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_tls::{Role, authorize};

use crate::Gateway;
use crate::convert::{check_tenant_id, settings_from_proto};
use crate::engines::MAX_RULES_BYTES;

#[tonic::async_trait]
impl gw::admin_server::Admin for Gateway {
    async fn get_tenant_settings(
        &self,
        req: Request<gw::GetTenantSettingsRequest>,
    ) -> Result<Response<TenantSettings>, Status> {
        authorize(&req, "Admin.GetTenantSettings", &[Role::Admin])?;
        let tenant_id = req.into_inner().tenant_id;
        check_tenant_id(&tenant_id).map_err(Status::invalid_argument)?;
        let mut client = self.inner.tenant_store.clone();
        match client
            .get_tenant_settings(st::GetTenantSettingsRequest {
                tenant_id: tenant_id.clone(),
            })
            .await
        {
            Ok(r) => Ok(r),
            // A tenant nobody configured has the default settings: AI off.
            Err(s) if s.code() == Code::NotFound => Ok(Response::new(TenantSettings {
                tenant_id,
                ..Default::default()
            })),
            Err(s) => Err(s),
        }
    }

    async fn set_tenant_settings(
        &self,
        req: Request<gw::SetTenantSettingsRequest>,
    ) -> Result<Response<TenantSettings>, Status> {
        let caller = authorize(&req, "Admin.SetTenantSettings", &[Role::Admin])?;
        let r = req.into_inner();
        let settings = r
            .settings
            .ok_or_else(|| Status::invalid_argument("settings are required"))?;
        check_tenant_id(&settings.tenant_id).map_err(Status::invalid_argument)?;
        settings_from_proto(&settings).map_err(Status::invalid_argument)?;
        if settings.redaction_rules.len() > MAX_RULES_BYTES {
            return Err(Status::invalid_argument(format!(
                "redaction_rules is {} bytes; the limit is {MAX_RULES_BYTES}",
                settings.redaction_rules.len()
            )));
        }
        // Compiles (and caches) the tenant's rules, so a broken rule is refused here,
        // naming the rule and the line, rather than refusing the tenant's requests later.
        self.inner
            .engines
            .for_rules(&settings.redaction_rules)
            .await
            .map_err(|e| {
                Status::invalid_argument(format!("redaction_rules do not compile: {e}"))
            })?;
        let providers = self.providers();
        for p in &settings.allowed_providers {
            if !providers.contains(p) {
                let known: Vec<&str> = providers
                    .catalogue()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(Status::invalid_argument(format!(
                    "allowed_providers names {p:?}, which is not configured; configured providers: {}",
                    known.join(", ")
                )));
            }
        }
        // Taken before the write: a change made while the watch is down (or across a
        // reconnect) must not enter the cache.
        let ticket = self.inner.tenants.ticket();
        let mut client = self.inner.tenant_store.clone();
        let saved = client
            .put_tenant_settings(st::PutTenantSettingsRequest {
                settings: Some(settings),
                expected_version: r.expected_version,
                changed_by: caller.subject(),
            })
            .await?
            .into_inner();
        self.inner.tenants.apply_admin_change(&saved, ticket).await;
        let record = AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: saved.tenant_id.clone(),
            caller: caller.subject(),
            decision: AuditDecision::Allowed as i32,
            reason: "SETTINGS_CHANGED".into(),
            reason_message: format!(
                "version {}: enabled={}, providers=[{}], github_integration={}",
                saved.version,
                saved.enabled,
                saved.allowed_providers.join(","),
                saved.github_integration
            ),
            outcome: "ok".into(),
            ..Default::default()
        };
        if self.inner.audit.append(record).await.is_err() {
            tracing::error!(tenant = %saved.tenant_id, "settings changed but the change could not be audited");
        }
        Ok(Response::new(saved))
    }

    async fn put_customer_credentials(
        &self,
        req: Request<gw::PutCustomerCredentialsRequest>,
    ) -> Result<Response<gw::PutCustomerCredentialsResponse>, Status> {
        authorize(&req, "Admin.PutCustomerCredentials", &[Role::Admin])?;
        let r = req.into_inner();
        check_tenant_id(&r.tenant_id).map_err(Status::invalid_argument)?;
        let mut client = self.inner.tenant_store.clone();
        let resp = client
            .put_customer_credentials(st::PutCustomerCredentialsRequest {
                tenant_id: r.tenant_id,
                access_key_id: r.access_key_id,
                secret_access_key: r.secret_access_key,
                session_token: r.session_token,
            })
            .await?
            .into_inner();
        Ok(Response::new(gw::PutCustomerCredentialsResponse {
            credentials_id: resp.credentials_id,
        }))
    }
}
