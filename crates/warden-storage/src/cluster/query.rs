//! Queries: top functions over a window's profiles, the latest state of Kubernetes
//! objects and their events, configuration snapshots. One tenant each, bounded, newest
//! first; `truncated` says when a limit cut the answer.

use std::collections::BTreeSet;

use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::pprof::{self, SampleTypeSummary};
use warden_tls::authorize;

use super::ingest::StoredEvent;
use super::{check_name, db, limit, window};
use crate::Storage;
use crate::util::{check_tenant, ts};

/// Profiles merged into one answer at most (the newest).
const MAX_PROFILES: i64 = 1000;
/// Events read per query at most before filtering by the (sealed) involved object.
const MAX_EVENTS_SCANNED: i64 = 20_000;

fn stat(f: pprof::FunctionStat) -> tm::FunctionStat {
    tm::FunctionStat {
        function: f.function,
        file: f.file,
        self_value: f.self_value,
        total_value: f.total_value,
        self_share: f.self_share,
        total_share: f.total_share,
    }
}

impl Storage {
    pub(crate) async fn top_functions_rpc(
        &self,
        req: Request<tm::TopFunctionsRequest>,
    ) -> Result<Response<tm::TopFunctionsResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/TopFunctions")?;
        let q = req.into_inner();
        check_tenant(&q.tenant_id)?;
        auth.for_tenant(&q.tenant_id)?;
        let (since, until) = window(q.window.as_ref())?;
        check_name("service", &q.service, false)?;
        check_name("sample_type", &q.sample_type, false)?;
        let limit = limit(q.limit, 20, 100);
        // Without a sample type: the default type of the newest profile, and only the
        // profiles with that type (a CPU and a heap profile do not add up).
        let rows = sqlx::query(
            "SELECT sample_type, summary FROM profiles
             WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3 AND ($4 = '' OR service = $4)
               AND (($5 = '' AND is_default = 1) OR sample_type = $5)
             ORDER BY time_ms DESC, id DESC LIMIT $6",
        )
        .bind(&q.tenant_id)
        .bind(since)
        .bind(until)
        .bind(&q.service)
        .bind(&q.sample_type)
        .bind(MAX_PROFILES)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(db)?;
        let mut wanted = q.sample_type.clone();
        let mut parts: Vec<SampleTypeSummary> = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get(0).map_err(db)?;
            if wanted.is_empty() {
                wanted = name.clone();
            }
            if name != wanted {
                continue;
            }
            let sealed: String = r.try_get(1).map_err(db)?;
            let part = serde_json::from_slice(&self.unseal(&q.tenant_id, &sealed).await?)
                .map_err(|_| Status::data_loss("a stored profile summary is corrupt"))?;
            parts.push(part);
        }
        if parts.is_empty() && !q.sample_type.is_empty() {
            let have = self
                .sample_types(&q.tenant_id, since, until, &q.service)
                .await?;
            if !have.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "the profiles in this window have no sample type {:?} (they have: {})",
                    q.sample_type,
                    have.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let merged = pprof::merge(&parts);
        let top = pprof::top(&merged, limit);
        Ok(Response::new(tm::TopFunctionsResponse {
            sample_type: if top.sample_type.is_empty() {
                wanted
            } else {
                top.sample_type
            },
            unit: top.unit,
            total: top.total,
            profiles: parts.len() as u32,
            by_self: top.by_self.into_iter().map(stat).collect(),
            by_total: top.by_total.into_iter().map(stat).collect(),
        }))
    }

    async fn sample_types(
        &self,
        tenant: &str,
        since: i64,
        until: i64,
        service: &str,
    ) -> Result<BTreeSet<String>, Status> {
        let rows = sqlx::query(
            "SELECT DISTINCT sample_type FROM profiles
             WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3 AND ($4 = '' OR service = $4)",
        )
        .bind(tenant)
        .bind(since)
        .bind(until)
        .bind(service)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(db))
            .collect()
    }

    pub(crate) async fn query_cluster_rpc(
        &self,
        req: Request<tm::QueryClusterRequest>,
    ) -> Result<Response<tm::QueryClusterResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/QueryCluster")?;
        let q = req.into_inner();
        check_tenant(&q.tenant_id)?;
        auth.for_tenant(&q.tenant_id)?;
        let (since, until) = window(q.window.as_ref())?;
        check_name("namespace", &q.namespace, false)?;
        check_name("kind", &q.kind, false)?;
        check_name("name", &q.name, false)?;
        let limit = limit(q.limit, 100, 1000);
        let mut out = tm::QueryClusterResponse::default();

        // Objects: per object, its newest report before `until`.
        if q.kind != "Event" {
            let rows = sqlx::query(
                "SELECT o.cluster, o.kind, o.namespace, o.name, o.observed_ms, o.json
                 FROM cluster_objects o
                 WHERE o.tenant_id = $1 AND o.observed_ms < $2
                   AND ($3 = '' OR o.namespace = $3) AND ($4 = '' OR o.kind = $4) AND ($5 = '' OR o.name = $5)
                   AND o.id = (SELECT p.id FROM cluster_objects p
                       WHERE p.tenant_id = o.tenant_id AND p.cluster = o.cluster AND p.kind = o.kind
                         AND p.namespace = o.namespace AND p.name = o.name AND p.observed_ms < $2
                       ORDER BY p.observed_ms DESC, p.id DESC LIMIT 1)
                 ORDER BY o.observed_ms DESC, o.kind, o.namespace, o.name LIMIT $6",
            )
            .bind(&q.tenant_id)
            .bind(until)
            .bind(&q.namespace)
            .bind(&q.kind)
            .bind(&q.name)
            .bind(limit as i64 + 1)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(db)?;
            for r in &rows {
                if out.objects.len() == limit {
                    out.truncated = true;
                    break;
                }
                let sealed: String = r.try_get(5).map_err(db)?;
                out.objects.push(tm::ClusterObject {
                    cluster: r.try_get(0).map_err(db)?,
                    kind: r.try_get(1).map_err(db)?,
                    namespace: r.try_get(2).map_err(db)?,
                    name: r.try_get(3).map_err(db)?,
                    observed: Some(ts(r.try_get(4).map_err(db)?)),
                    json: String::from_utf8_lossy(&self.unseal(&q.tenant_id, &sealed).await?)
                        .into_owned(),
                });
            }
        }

        // Events in the window; `kind` and `name` select the object they are about.
        let rows = sqlx::query(
            "SELECT cluster, namespace, time_ms, event FROM cluster_events
             WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3 AND ($4 = '' OR namespace = $4)
             ORDER BY time_ms DESC, name LIMIT $5",
        )
        .bind(&q.tenant_id)
        .bind(since)
        .bind(until)
        .bind(&q.namespace)
        .bind(MAX_EVENTS_SCANNED + 1)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(db)?;
        if rows.len() as i64 > MAX_EVENTS_SCANNED {
            out.truncated = true;
        }
        let about = |kind: &str| q.kind.is_empty() || q.kind == "Event" || q.kind == kind;
        for r in rows.iter().take(MAX_EVENTS_SCANNED as usize) {
            let sealed: String = r.try_get(3).map_err(db)?;
            let e: StoredEvent = serde_json::from_slice(&self.unseal(&q.tenant_id, &sealed).await?)
                .map_err(|_| Status::data_loss("a stored event is corrupt"))?;
            if !about(&e.involved_kind) || (!q.name.is_empty() && e.involved_name != q.name) {
                continue;
            }
            if out.events.len() == limit {
                out.truncated = true;
                break;
            }
            out.events.push(tm::ClusterEvent {
                cluster: r.try_get(0).map_err(db)?,
                time: Some(ts(r.try_get(2).map_err(db)?)),
                namespace: r.try_get(1).map_err(db)?,
                r#type: e.r#type,
                reason: e.reason,
                involved_kind: e.involved_kind,
                involved_name: e.involved_name,
                message: e.message,
                count: e.count,
            });
        }
        Ok(Response::new(out))
    }

    pub(crate) async fn query_config_rpc(
        &self,
        req: Request<tm::QueryConfigRequest>,
    ) -> Result<Response<tm::QueryConfigResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/QueryConfig")?;
        let q = req.into_inner();
        check_tenant(&q.tenant_id)?;
        auth.for_tenant(&q.tenant_id)?;
        let (since, until) = window(q.window.as_ref())?;
        check_name("namespace", &q.namespace, false)?;
        check_name("kind", &q.kind, false)?;
        check_name("name", &q.name, false)?;
        let limit = limit(q.limit, 20, 200);
        let rows = sqlx::query(
            "SELECT kind, namespace, name, observed_ms, content, diff FROM config_snapshots
             WHERE tenant_id = $1 AND observed_ms >= $2 AND observed_ms < $3
               AND ($4 = '' OR namespace = $4) AND ($5 = '' OR kind = $5) AND ($6 = '' OR name = $6)
             ORDER BY observed_ms DESC, id DESC LIMIT $7",
        )
        .bind(&q.tenant_id)
        .bind(since)
        .bind(until)
        .bind(&q.namespace)
        .bind(&q.kind)
        .bind(&q.name)
        .bind(limit as i64 + 1)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(db)?;
        let mut out = tm::QueryConfigResponse::default();
        for r in &rows {
            if out.snapshots.len() == limit {
                out.truncated = true;
                break;
            }
            let content: String = r.try_get(4).map_err(db)?;
            let diff: String = r.try_get(5).map_err(db)?;
            let open = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            out.snapshots.push(tm::ConfigSnapshot {
                kind: r.try_get(0).map_err(db)?,
                namespace: r.try_get(1).map_err(db)?,
                name: r.try_get(2).map_err(db)?,
                observed: Some(ts(r.try_get(3).map_err(db)?)),
                content: open(self.unseal(&q.tenant_id, &content).await?),
                diff_from_previous: if diff.is_empty() {
                    String::new()
                } else {
                    open(self.unseal(&q.tenant_id, &diff).await?)
                },
            });
        }
        Ok(Response::new(out))
    }
}
