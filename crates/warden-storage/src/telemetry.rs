//! Telemetry for the agents' tools: records by tenant, type, service and time, always
//! queried with a limit and always within one tenant. Bodies are sealed at rest under
//! the tenant's data key; the text filter runs on opened bodies.

use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::common::v1::DataType;
use warden_proto::storage::v1::telemetry_server::Telemetry;
use warden_proto::storage::v1::{
    IngestRequest, IngestResponse, TelemetryQuery, TelemetryQueryResponse, TelemetryRecord,
};
use warden_tls::authorize;

use crate::util::{check_len, check_tenant, ms_of, now_ms, ts};
use crate::{DbError, Storage};

const MAX_RECORDS_PER_INGEST: usize = 10_000;
/// Records read per page, and at most per query, when filtering sealed bodies.
const PAGE: usize = 500;
const MAX_SCANNED: usize = 20_000;

#[tonic::async_trait]
impl Telemetry for Storage {
    async fn ingest(
        &self,
        req: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let auth = authorize(&req, "warden.storage.v1.Telemetry/Ingest")?;
        let records = req.into_inner().records;
        if records.len() > MAX_RECORDS_PER_INGEST {
            return Err(Status::invalid_argument(format!(
                "{} records in one ingest; the limit is {MAX_RECORDS_PER_INGEST}",
                records.len()
            )));
        }
        // Validate everything first so a bad record leaves nothing half-written.
        for (i, r) in records.iter().enumerate() {
            check_tenant(&r.tenant_id)
                .map_err(|s| Status::invalid_argument(format!("record {i}: {}", s.message())))?;
            // A caller scoped to tenants feeds only their investigations.
            auth.for_tenant(&r.tenant_id)?;
            match DataType::try_from(r.data_type) {
                Ok(DataType::Unspecified | DataType::Instruction) | Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "record {i}: data_type must be a telemetry type"
                    )));
                }
                Ok(_) => {}
            }
            check_len("service", &r.service, 256)?;
            check_len("body", &r.body, 1024 * 1024)?;
        }
        // Bodies are sealed under each tenant's data key before the transaction (a first
        // data key is itself a write); if any cannot be sealed, nothing is stored.
        let mut sealed = Vec::with_capacity(records.len());
        for r in &records {
            sealed.push(self.seal(&r.tenant_id, r.body.as_bytes()).await?);
        }
        let mut tx = self.inner.db.pool.begin().await.map_err(DbError::from)?;
        for (r, body) in records.iter().zip(&sealed) {
            sqlx::query("INSERT INTO telemetry (tenant_id, data_type, time_ms, service, body) VALUES ($1, $2, $3, $4, $5)")
                .bind(&r.tenant_id)
                .bind(i64::from(r.data_type))
                .bind(ms_of(r.time.as_ref()).unwrap_or_else(now_ms))
                .bind(&r.service)
                .bind(body)
                .execute(&mut *tx)
                .await
                .map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(Response::new(IngestResponse {
            accepted: records.len() as u64,
        }))
    }

    async fn query(
        &self,
        req: Request<TelemetryQuery>,
    ) -> Result<Response<TelemetryQueryResponse>, Status> {
        // Raw, unredacted telemetry: the agent service only.
        authorize(&req, "warden.storage.v1.Telemetry/Query")?.platform()?;
        let q = req.get_ref();
        check_tenant(&q.tenant_id)?;
        check_len("contains", &q.contains, 1024)?;
        check_len("service", &q.service, 256)?;
        let limit = if q.limit == 0 { 100 } else { q.limit.min(1000) } as usize;
        // Bodies are sealed, so the text filter runs here, on opened bodies, newest
        // first, over at most MAX_SCANNED records of the window.
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let mut records = Vec::new();
        let mut truncated = false;
        let mut scanned = 0usize;
        'pages: while scanned < MAX_SCANNED {
            let rows = sqlx::query(
                "SELECT data_type, time_ms, service, body FROM telemetry
                 WHERE tenant_id = $1 AND ($2 = 0 OR data_type = $2) AND ($3 = 0 OR time_ms >= $3) AND ($4 = 0 OR time_ms < $4)
                   AND ($5 = '' OR service = $5)
                 ORDER BY time_ms DESC LIMIT $6 OFFSET $7",
            )
            .bind(&q.tenant_id)
            .bind(i64::from(q.data_type))
            .bind(ms_of(q.since.as_ref()).unwrap_or(0))
            .bind(ms_of(q.until.as_ref()).unwrap_or(0))
            .bind(&q.service)
            .bind(PAGE as i64)
            .bind(scanned as i64)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
            let last_page = rows.len() < PAGE;
            for r in &rows {
                scanned += 1;
                let body = String::from_utf8_lossy(
                    &self
                        .unseal_or_legacy(&q.tenant_id, &r.try_get::<String, _>(3).map_err(g)?)
                        .await?,
                )
                .into_owned();
                if !q.contains.is_empty() && !body.contains(&q.contains) {
                    continue;
                }
                if records.len() == limit {
                    truncated = true;
                    break 'pages;
                }
                records.push(TelemetryRecord {
                    tenant_id: q.tenant_id.clone(),
                    data_type: r.try_get::<i64, _>(0).map_err(g)? as i32,
                    time: Some(ts(r.try_get(1).map_err(g)?)),
                    service: r.try_get(2).map_err(g)?,
                    body,
                });
            }
            if last_page {
                break;
            }
        }
        if scanned >= MAX_SCANNED {
            truncated = true;
        }
        Ok(Response::new(TelemetryQueryResponse { records, truncated }))
    }
}
