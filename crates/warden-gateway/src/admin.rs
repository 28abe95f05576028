//! Admin API: tenant AI settings. Admins scoped to the tenant or platform-wide; every
//! change is audited *before* it is committed (no audit record, no change) and applied
//! to this gateway's cache before the call returns if its watch stayed live throughout
//! (others get it by watch).

use tonic::{Code, Request, Response, Status};
use warden_proto::common::v1::source_credentials::Credentials;
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord, TenantSettings};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_tls::authorize;

use crate::convert::settings_from_proto;
use crate::engines::MAX_RULES_BYTES;

/// Anomaly detectors one tenant may have.
const MAX_ANOMALY_DETECTORS: usize = 20;
use crate::{Gateway, for_tenant};

#[tonic::async_trait]
impl gw::admin_server::Admin for Gateway {
    async fn get_tenant_settings(
        &self,
        req: Request<gw::GetTenantSettingsRequest>,
    ) -> Result<Response<TenantSettings>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Admin/GetTenantSettings")?;
        let tenant_id = req.into_inner().tenant_id;
        for_tenant(&auth, &tenant_id)?;
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
        let auth = authorize(&req, "warden.gateway.v1.Admin/SetTenantSettings")?;
        let r = req.into_inner();
        let settings = r
            .settings
            .ok_or_else(|| Status::invalid_argument("settings are required"))?;
        let caller = for_tenant(&auth, &settings.tenant_id)?;
        settings_from_proto(&settings).map_err(Status::invalid_argument)?;
        if settings.required_reviewers > MAX_REQUIRED_REVIEWERS {
            return Err(Status::invalid_argument(format!(
                "required_reviewers is {}; at most {MAX_REQUIRED_REVIEWERS} distinct reviewers can be required",
                settings.required_reviewers
            )));
        }
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
        // A Prometheus source is checked now (https, no credentials in the URL, a CA that
        // parses), not when an investigation first queries it.
        if let Some(p) = &settings.prometheus {
            warden_sources::prometheus::check_source(p).map_err(Status::invalid_argument)?;
        }
        // A GitHub source that could never work (a repository that is not owner/name,
        // plain http to a remote host) is refused here, naming every problem.
        if let Some(github) = &settings.github {
            warden_sources::github::check_source(github).map_err(Status::invalid_argument)?;
        }
        // Anomaly detectors are checked now, naming the metric and the problem.
        if settings.anomaly_detectors.len() > MAX_ANOMALY_DETECTORS {
            return Err(Status::invalid_argument(format!(
                "{} anomaly detectors; at most {MAX_ANOMALY_DETECTORS} per tenant",
                settings.anomaly_detectors.len()
            )));
        }
        for d in &settings.anomaly_detectors {
            if d.metric.trim().is_empty() || d.metric.len() > 256 || d.labels.len() > 16 {
                return Err(Status::invalid_argument(
                    "an anomaly detector needs a metric name (up to 256 bytes) and at most 16 labels",
                ));
            }
            warden_anomaly::DetectorConfig::tenant(
                d.sensitivity,
                d.min_duration_secs,
                &d.direction,
            )
            .map_err(|e| {
                Status::invalid_argument(format!("anomaly detector for {}: {e}", d.metric))
            })?;
        }
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
        // Audited before it is committed: if the record cannot be written, nothing changes.
        let summary = format!(
            "enabled={}, data_types={:?}, providers=[{}], github_integration={}, customer_bedrock={}, required_reviewers={}",
            settings.enabled,
            settings.allowed_data_types,
            settings.allowed_providers.join(","),
            settings.github_integration,
            settings.customer_bedrock.is_some(),
            settings.required_reviewers,
        );
        let tenant_id = settings.tenant_id.clone();
        self.audit_admin(&caller, &tenant_id, "SETTINGS_CHANGE", summary)
            .await?;
        // Taken before the write: a change made while the watch is down (or across a
        // reconnect) must not enter the cache.
        let ticket = self.inner.tenants.ticket();
        let mut client = self.inner.tenant_store.clone();
        let saved = match client
            .put_tenant_settings(st::PutTenantSettingsRequest {
                settings: Some(settings),
                expected_version: r.expected_version,
                changed_by: caller.subject(),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) => {
                self.audit_admin_failed(&caller, &tenant_id, "SETTINGS_CHANGE", &s)
                    .await;
                return Err(s);
            }
        };
        self.inner.tenants.apply_admin_change(&saved, ticket).await;
        Ok(Response::new(saved))
    }

    async fn put_customer_credentials(
        &self,
        req: Request<gw::PutCustomerCredentialsRequest>,
    ) -> Result<Response<gw::PutCustomerCredentialsResponse>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Admin/PutCustomerCredentials")?;
        let r = req.into_inner();
        let caller = for_tenant(&auth, &r.tenant_id)?;
        // Never the keys themselves: only that an upload happened, audited before it is stored.
        self.audit_admin(
            &caller,
            &r.tenant_id,
            "CREDENTIALS_UPLOAD",
            "customer AWS credentials uploaded".into(),
        )
        .await?;
        let mut client = self.inner.tenant_store.clone();
        let resp = match client
            .put_customer_credentials(st::PutCustomerCredentialsRequest {
                tenant_id: r.tenant_id.clone(),
                access_key_id: r.access_key_id,
                secret_access_key: r.secret_access_key,
                session_token: r.session_token,
            })
            .await
        {
            Ok(resp) => resp.into_inner(),
            Err(s) => {
                self.audit_admin_failed(&caller, &r.tenant_id, "CREDENTIALS_UPLOAD", &s)
                    .await;
                return Err(s);
            }
        };
        Ok(Response::new(gw::PutCustomerCredentialsResponse {
            credentials_id: resp.credentials_id,
        }))
    }

    async fn put_source_credentials(
        &self,
        req: Request<gw::PutSourceCredentialsRequest>,
    ) -> Result<Response<gw::PutSourceCredentialsResponse>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Admin/PutSourceCredentials")?;
        let r = req.into_inner();
        let caller = for_tenant(&auth, &r.tenant_id)?;
        // Only the kind of credential is recorded, never its value.
        let kind = match r.credentials.as_ref().and_then(|c| c.credentials.as_ref()) {
            Some(Credentials::BearerToken(_)) => "bearer token",
            Some(Credentials::Basic(_)) => "basic auth",
            Some(Credentials::GithubApp(_)) => "GitHub App key",
            None => {
                return Err(Status::invalid_argument(
                    "credentials need one of bearer_token, basic or github_app",
                ));
            }
        };
        self.audit_admin(
            &caller,
            &r.tenant_id,
            "SOURCE_CREDENTIALS_UPLOAD",
            format!("source credentials uploaded ({kind})"),
        )
        .await?;
        let mut client = self.inner.tenant_store.clone();
        match client
            .put_source_credentials(st::PutSourceCredentialsRequest {
                tenant_id: r.tenant_id.clone(),
                credentials: r.credentials,
            })
            .await
        {
            Ok(resp) => Ok(Response::new(gw::PutSourceCredentialsResponse {
                credentials_id: resp.into_inner().credentials_id,
            })),
            Err(s) => {
                self.audit_admin_failed(&caller, &r.tenant_id, "SOURCE_CREDENTIALS_UPLOAD", &s)
                    .await;
                Err(s)
            }
        }
    }

    async fn put_release_credentials(
        &self,
        req: Request<gw::PutSourceCredentialsRequest>,
    ) -> Result<Response<gw::PutSourceCredentialsResponse>, Status> {
        let auth = authorize(&req, "warden.gateway.v1.Admin/PutReleaseCredentials")?;
        let r = req.into_inner();
        let caller = for_tenant(&auth, &r.tenant_id)?;
        // Storage audits it (fail closed) before storing it sealed; never echoed.
        let mut client = self.inner.proposals.clone();
        let resp = client
            .put_release_credentials(st::PutReleaseCredentialsRequest {
                tenant_id: r.tenant_id,
                credentials: r.credentials,
                stored_by: caller.subject(),
            })
            .await?;
        Ok(Response::new(gw::PutSourceCredentialsResponse {
            credentials_id: resp.into_inner().credentials_id,
        }))
    }
}

/// The audit record of an admin action by `caller` on `tenant_id`.
fn admin_record(
    caller: &warden_tls::Caller,
    tenant_id: &str,
    action: &str,
    decision: AuditDecision,
    message: String,
    outcome: &str,
) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Admin as i32,
        tenant_id: tenant_id.to_owned(),
        caller: caller.subject(),
        decision: decision as i32,
        reason: action.to_owned(),
        reason_message: message,
        outcome: outcome.to_owned(),
        ..Default::default()
    }
}

/// Most distinct reviewers a tenant can require for one proposal.
const MAX_REQUIRED_REVIEWERS: u32 = 5;

impl Gateway {
    /// Writes the audit record of an admin action durably, before the action is
    /// committed; UNAVAILABLE (and no action) if it cannot be written.
    pub(crate) async fn audit_admin(
        &self,
        caller: &warden_tls::Caller,
        tenant_id: &str,
        action: &str,
        message: String,
    ) -> Result<(), Status> {
        let record = admin_record(
            caller,
            tenant_id,
            action,
            AuditDecision::Allowed,
            message,
            "requested",
        );
        self.inner
            .audit
            .append(record)
            .await
            .map_err(|e| Status::from(crate::status::GatewayError::Audit(e)))?;
        Ok(())
    }

    /// Records that an audited admin action then failed (best effort: the action did not
    /// happen, and the earlier record says only that it was requested).
    async fn audit_admin_failed(
        &self,
        caller: &warden_tls::Caller,
        tenant_id: &str,
        action: &str,
        status: &Status,
    ) {
        let record = admin_record(
            caller,
            tenant_id,
            action,
            AuditDecision::Denied,
            format!("not committed: {:?}", status.code()),
            "failed",
        );
        if self.inner.audit.append(record).await.is_err() {
            tracing::error!(tenant = %tenant_id, action, "the failure of an admin action could not be audited");
        }
    }
}
