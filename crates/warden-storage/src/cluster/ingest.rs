//! Ingest of profiles, cluster reports and configuration snapshots: tenant from the
//! authenticated sender only; parse, check and redact first (off the async threads), seal
//! next, then one transaction, so bad input or a failure leaves nothing behind.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::{config, kube, pprof};

use super::{OBJECT_HISTORY, check_name, db, redactor};
use crate::Storage;
use crate::ingest_auth::tenant_of;
use crate::util::{check_tenant, ms_of, new_id, now_ms};

/// Decompressed pprof at most (a gzip bomb stops here).
pub(super) const MAX_PPROF_BYTES: usize = 16 << 20;
/// A configuration snapshot's content at most.
pub(super) const MAX_CONFIG_BYTES: usize = 4 << 20;

/// An event as sealed in `cluster_events.event`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredEvent {
    pub r#type: String,
    pub reason: String,
    pub involved_kind: String,
    pub involved_name: String,
    pub message: String,
    pub count: u32,
}

/// Runs CPU-heavy parsing off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Status::internal("parsing failed unexpectedly; nothing was stored"))
}

fn accepted(n: usize) -> Response<tm::IngestResponse> {
    Response::new(tm::IngestResponse {
        accepted: n as u64,
        rejected: 0,
        error_message: String::new(),
    })
}

impl Storage {
    pub(crate) async fn ingest_profile_rpc(
        &self,
        req: Request<tm::IngestProfileRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        let tenant = tenant_of(&req)?;
        check_tenant(&tenant)?;
        let mut r = req.into_inner();
        check_name("service", &r.service, true)?;
        if r.pprof.is_empty() {
            return Err(Status::invalid_argument("pprof is empty"));
        }
        if r.pprof.len() > MAX_PPROF_BYTES {
            return Err(Status::invalid_argument(format!(
                "pprof is {} bytes; the limit is {MAX_PPROF_BYTES}",
                r.pprof.len()
            )));
        }
        let time = ms_of(r.time.as_ref()).unwrap_or_else(now_ms);
        let bytes = std::mem::take(&mut r.pprof);
        let summary = blocking(move || pprof::parse(&bytes, MAX_PPROF_BYTES))
            .await?
            .map_err(|e| Status::invalid_argument(format!("pprof: {e}")))?;
        let mut rows = Vec::with_capacity(summary.types.len());
        for t in &summary.types {
            let json = serde_json::to_vec(t)
                .map_err(|_| Status::internal("could not encode the profile summary"))?;
            rows.push((
                t.name.as_str(),
                t.name == summary.default_type,
                self.seal(&tenant, &json).await?,
            ));
        }
        let mut tx = self.inner.db.begin_write().await.map_err(db)?;
        for (sample_type, is_default, sealed) in &rows {
            sqlx::query(
                "INSERT INTO profiles (id, tenant_id, service, time_ms, sample_type, is_default, summary)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id())
            .bind(&tenant)
            .bind(&r.service)
            .bind(time)
            .bind(*sample_type)
            .bind(i64::from(*is_default))
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(accepted(1))
    }

    pub(crate) async fn ingest_cluster_rpc(
        &self,
        req: Request<tm::IngestClusterRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        let tenant = tenant_of(&req)?;
        check_tenant(&tenant)?;
        let mut r = req.into_inner();
        check_name("cluster", &r.cluster, true)?;
        let redactor = redactor()?;
        let json = std::mem::take(&mut r.json);
        let report = blocking(move || kube::parse(&json, redactor))
            .await?
            .map_err(|e| Status::invalid_argument(format!("cluster report: {e}")))?;
        let now = now_ms();

        let mut objects = Vec::with_capacity(report.objects.len());
        for o in &report.objects {
            objects.push((o, self.seal(&tenant, o.json.as_bytes()).await?));
        }
        let mut events = Vec::with_capacity(report.events.len());
        for e in &report.events {
            let stored = StoredEvent {
                r#type: e.r#type.clone(),
                reason: e.reason.clone(),
                involved_kind: e.involved_kind.clone(),
                involved_name: e.involved_name.clone(),
                message: e.message.clone(),
                count: e.count,
            };
            let json = serde_json::to_vec(&stored)
                .map_err(|_| Status::internal("could not encode an event"))?;
            events.push((e, self.seal(&tenant, &json).await?));
        }
        let mut snapshots = Vec::new();
        for c in &report.configs {
            let key = SnapshotKey {
                cluster: &r.cluster,
                kind: "ConfigMap",
                namespace: &c.namespace,
                name: &c.name,
            };
            if let Some(s) = self.sealed_snapshot(&tenant, &key, now, &c.content).await? {
                snapshots.push((key, s));
            }
        }

        let mut tx = self.inner.db.begin_write().await.map_err(db)?;
        for (o, sealed) in &objects {
            sqlx::query(
                "INSERT INTO cluster_objects (id, tenant_id, cluster, kind, namespace, name, observed_ms, json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new_id())
            .bind(&tenant)
            .bind(&r.cluster)
            .bind(&o.kind)
            .bind(&o.namespace)
            .bind(&o.name)
            .bind(now)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // A bounded history per object: its newest OBJECT_HISTORY reports.
            sqlx::query(
                "DELETE FROM cluster_objects WHERE tenant_id = $1 AND cluster = $2 AND kind = $3
                   AND namespace = $4 AND name = $5 AND id NOT IN (
                     SELECT id FROM cluster_objects WHERE tenant_id = $1 AND cluster = $2
                       AND kind = $3 AND namespace = $4 AND name = $5
                     ORDER BY observed_ms DESC, id DESC LIMIT $6)",
            )
            .bind(&tenant)
            .bind(&r.cluster)
            .bind(&o.kind)
            .bind(&o.namespace)
            .bind(&o.name)
            .bind(OBJECT_HISTORY)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for (e, sealed) in &events {
            sqlx::query(
                "INSERT INTO cluster_events (tenant_id, cluster, namespace, name, time_ms, event)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, cluster, namespace, name)
                 DO UPDATE SET time_ms = excluded.time_ms, event = excluded.event",
            )
            .bind(&tenant)
            .bind(&r.cluster)
            .bind(&e.namespace)
            .bind(&e.name)
            .bind(e.time_ms.unwrap_or(now))
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for (key, s) in &snapshots {
            insert_snapshot(&mut tx, &tenant, key, now, s).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(accepted(objects.len() + events.len()))
    }

    pub(crate) async fn ingest_config_rpc(
        &self,
        req: Request<tm::IngestConfigRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        let tenant = tenant_of(&req)?;
        check_tenant(&tenant)?;
        let r = req.into_inner();
        check_name("kind", &r.kind, true)?;
        check_name("namespace", &r.namespace, false)?;
        check_name("name", &r.name, true)?;
        if r.content.len() > MAX_CONFIG_BYTES {
            return Err(Status::invalid_argument(format!(
                "content is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                r.content.len()
            )));
        }
        let time = ms_of(r.time.as_ref()).unwrap_or_else(now_ms);
        let redactor = redactor()?;
        let content = r.content;
        let content = blocking(move || redactor.redact(&content)).await?;
        let key = SnapshotKey {
            cluster: "",
            kind: &r.kind,
            namespace: &r.namespace,
            name: &r.name,
        };
        // Unchanged since the snapshot before: nothing new to keep.
        let Some(sealed) = self.sealed_snapshot(&tenant, &key, time, &content).await? else {
            return Ok(accepted(1));
        };
        let mut tx = self.inner.db.begin_write().await.map_err(db)?;
        insert_snapshot(&mut tx, &tenant, &key, time, &sealed).await?;
        tx.commit().await.map_err(db)?;
        Ok(accepted(1))
    }

    /// The sealed content and diff of a new snapshot of `key` at `time`, diffed against
    /// the one before it; `None` when its content is the same.
    async fn sealed_snapshot(
        &self,
        tenant: &str,
        key: &SnapshotKey<'_>,
        time: i64,
        content: &str,
    ) -> Result<Option<(String, String)>, Status> {
        let previous = sqlx::query(
            "SELECT content FROM config_snapshots WHERE tenant_id = $1 AND cluster = $2
               AND kind = $3 AND namespace = $4 AND name = $5 AND observed_ms <= $6
             ORDER BY observed_ms DESC, id DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(key.cluster)
        .bind(key.kind)
        .bind(key.namespace)
        .bind(key.name)
        .bind(time)
        .fetch_optional(&self.inner.db.pool)
        .await
        .map_err(db)?;
        let diff = match previous {
            Some(row) => {
                let sealed: String = row.try_get(0).map_err(db)?;
                let before =
                    String::from_utf8_lossy(&self.unseal(tenant, &sealed).await?).into_owned();
                if before == content {
                    return Ok(None);
                }
                config::diff(&before, content)
            }
            None => String::new(),
        };
        Ok(Some((
            self.seal(tenant, content.as_bytes()).await?,
            self.seal_nonempty(tenant, &diff).await?,
        )))
    }
}

/// What a configuration snapshot is of.
struct SnapshotKey<'a> {
    /// Empty for snapshots sent with IngestConfig.
    cluster: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

async fn insert_snapshot(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    key: &SnapshotKey<'_>,
    time: i64,
    (content, diff): &(String, String),
) -> Result<(), Status> {
    sqlx::query(
        "INSERT INTO config_snapshots (id, tenant_id, cluster, kind, namespace, name, observed_ms, content, diff)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(tenant)
    .bind(key.cluster)
    .bind(key.kind)
    .bind(key.namespace)
    .bind(key.name)
    .bind(time)
    .bind(content)
    .bind(diff)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
