//! Per-tenant ingest tokens: what an OpenTelemetry SDK or collector without a Warden
//! certificate sends as `Authorization: Bearer <token>` on the ingest listener.
//!
//! Admins (of the tenant, or platform-wide) create, list and revoke them on storage's
//! mTLS port. A token is 32 random bytes behind a recognizable prefix, shown once;
//! storage keeps only its SHA-256, so a copy of the database authenticates nobody.
//! Every ingest request looks its token up again: a revocation holds from the next request.

use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::ingest_tokens_server::IngestTokens;
use warden_tls::authorize;

use crate::bearer::{SecretTable, digest, new_secret};
use crate::util::{check_len, check_tenant, new_id, now_ms, ts};
use crate::{DbError, Storage};

/// Every token starts with this, so a leaked one is recognizable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "wdn_ingest_";

/// Where tokens are kept, and how errors and audit records name them.
const INGEST_TOKENS: SecretTable = SecretTable {
    table: "ingest_tokens",
    id_column: "token_id",
    noun: "ingest token",
    revoked: "INGEST_TOKEN_REVOKED",
};

impl Storage {
    /// The tenant of a live token, or UNAUTHENTICATED (the message never repeats the token).
    pub(crate) async fn tenant_of_token(&self, token: &str) -> Result<String, Status> {
        let well_formed = token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(Status::unauthenticated(format!(
                "the bearer token is not a Warden ingest token (they start with {TOKEN_PREFIX}); create one with `warden ingest-token create --tenant T`"
            )));
        }
        let row = sqlx::query(
            "SELECT tenant_id FROM ingest_tokens WHERE token_sha256 = $1 AND revoked_ms = 0",
        )
        .bind(digest(token))
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        match row {
            Some(r) => Ok(r.try_get::<String, _>(0).map_err(DbError::from)?),
            None => Err(Status::unauthenticated(
                "the ingest token is unknown or revoked",
            )),
        }
    }
}

#[tonic::async_trait]
impl IngestTokens for Storage {
    async fn create_ingest_token(
        &self,
        req: Request<tm::CreateIngestTokenRequest>,
    ) -> Result<Response<tm::CreateIngestTokenResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.IngestTokens/CreateIngestToken")?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        let caller = auth.for_tenant(&r.tenant_id)?;
        check_len("description", &r.description, 256)?;
        let token_id = new_id();
        let token = new_secret(TOKEN_PREFIX);
        let description = self.seal_nonempty(&r.tenant_id, &r.description).await?;
        // Audited before it is committed: a token nobody can account for never exists.
        self.audit_admin_action(
            &r.tenant_id,
            &caller,
            "INGEST_TOKEN_CREATED",
            format!("ingest token {token_id} created"),
        )
        .await?;
        sqlx::query(
            "INSERT INTO ingest_tokens (token_id, tenant_id, token_sha256, description, created_by, created_ms, revoked_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(&token_id)
        .bind(&r.tenant_id)
        .bind(digest(&token))
        .bind(&description)
        .bind(caller.subject())
        .bind(now_ms())
        .execute(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        Ok(Response::new(tm::CreateIngestTokenResponse {
            token_id,
            token,
        }))
    }

    async fn list_ingest_tokens(
        &self,
        req: Request<tm::ListIngestTokensRequest>,
    ) -> Result<Response<tm::ListIngestTokensResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.IngestTokens/ListIngestTokens")?;
        let tenant = &req.get_ref().tenant_id;
        check_tenant(tenant)?;
        auth.for_tenant(tenant)?;
        let rows = sqlx::query(
            "SELECT token_id, description, created_ms, created_by, revoked_ms FROM ingest_tokens
             WHERE tenant_id = $1 ORDER BY created_ms, token_id",
        )
        .bind(tenant)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let mut tokens = Vec::with_capacity(rows.len());
        for row in rows {
            let sealed: String = row.try_get(1).map_err(g)?;
            let description = if sealed.is_empty() {
                String::new()
            } else {
                String::from_utf8_lossy(&self.unseal(tenant, &sealed).await?).into_owned()
            };
            tokens.push(tm::IngestTokenInfo {
                token_id: row.try_get(0).map_err(g)?,
                description,
                created_at: Some(ts(row.try_get(2).map_err(g)?)),
                created_by: row.try_get(3).map_err(g)?,
                revoked: row.try_get::<i64, _>(4).map_err(g)? != 0,
            });
        }
        Ok(Response::new(tm::ListIngestTokensResponse { tokens }))
    }

    async fn resolve_ingest_token(
        &self,
        req: Request<tm::ResolveIngestTokenRequest>,
    ) -> Result<Response<tm::ResolveIngestTokenResponse>, Status> {
        authorize(&req, "warden.telemetry.v1.IngestTokens/ResolveIngestToken")?.platform()?;
        // The caller is authenticated; the token it asks about simply is not valid.
        let tenant_id = self
            .tenant_of_token(&req.get_ref().token)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unauthenticated => Status::not_found(s.message()),
                _ => s,
            })?;
        Ok(Response::new(tm::ResolveIngestTokenResponse { tenant_id }))
    }

    async fn revoke_ingest_token(
        &self,
        req: Request<tm::RevokeIngestTokenRequest>,
    ) -> Result<Response<tm::RevokeIngestTokenResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.IngestTokens/RevokeIngestToken")?;
        let r = req.get_ref();
        check_tenant(&r.tenant_id)?;
        let caller = auth.for_tenant(&r.tenant_id)?;
        check_len("token_id", &r.token_id, 64)?;
        self.revoke_secret(&INGEST_TOKENS, &r.tenant_id, &r.token_id, &caller)
            .await?;
        Ok(Response::new(tm::RevokeIngestTokenResponse {}))
    }
}
