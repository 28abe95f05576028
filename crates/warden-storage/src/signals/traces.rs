//! Spans: ids, service, start, duration and the error flag in the clear (what finding a
//! trace needs), name, kind, status message, attributes and resource sealed as one
//! value. Finding the slowest or failed traces ranks them in SQL over the clear columns,
//! then opens only the chosen traces.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::model::{Attributes, SpanRow, SpanStatus};
use warden_telemetry::traces::{self as t, Order};
use warden_tls::authorize;

use super::{INSERT_CHUNK, Window, check_batch, from_json, insert_sql, is_hex, limit, to_json};
use crate::util::{check_len, check_tenant, ts};
use crate::{DbError, Storage};

/// Spans of one trace opened at most (GetTrace, and each trace FindTraces summarizes).
const MAX_TRACE_SPANS: usize = 10_000;
const MAX_SUMMARY_SPANS: usize = 2_000;

/// The sealed part of a span.
#[derive(Serialize, Deserialize)]
struct Sealed {
    name: String,
    kind: String,
    status: SpanStatus,
    status_message: String,
    attributes: Attributes,
    resource: Attributes,
}

impl Storage {
    /// Stores spans for `tenant_id`: all of them or, on any error, none.
    pub async fn store_spans(&self, tenant_id: &str, spans: &[SpanRow]) -> Result<(), Status> {
        check_batch(tenant_id, "spans", spans.len())?;
        for (i, s) in spans.iter().enumerate() {
            check_span(s).map_err(|m| Status::invalid_argument(format!("spans[{i}]: {m}")))?;
        }
        let mut sealed = Vec::with_capacity(spans.len());
        for s in spans {
            let plain = to_json(&Sealed {
                name: s.name.clone(),
                kind: s.kind.clone(),
                status: s.status,
                status_message: s.status_message.clone(),
                attributes: s.attributes.clone(),
                resource: s.resource.clone(),
            })?;
            sealed.push(self.seal(tenant_id, &plain).await?);
        }
        let cols = [
            "tenant_id",
            "trace_id",
            "span_id",
            "parent_span_id",
            "service",
            "start_ms",
            "duration_us",
            "error",
            "sealed",
        ];
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        for (chunk, sealed) in spans.chunks(INSERT_CHUNK).zip(sealed.chunks(INSERT_CHUNK)) {
            let sql = insert_sql("spans", &cols, chunk.len());
            let mut q = sqlx::query(&sql);
            for (s, sealed) in chunk.iter().zip(sealed) {
                q = q
                    .bind(tenant_id)
                    .bind(s.trace_id.to_ascii_lowercase())
                    .bind(s.span_id.to_ascii_lowercase())
                    .bind(s.parent_span_id.to_ascii_lowercase())
                    .bind(&s.service)
                    .bind(s.start_ms)
                    .bind(i64::try_from(s.duration_us).unwrap_or(i64::MAX))
                    .bind(i64::from(s.status == SpanStatus::Error))
                    .bind(sealed);
            }
            q.execute(&mut *tx).await.map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// The spans of one trace (at most `max`), opened; the flag says more were stored.
    async fn load_trace(
        &self,
        tenant_id: &str,
        trace_id: &str,
        max: usize,
    ) -> Result<(Vec<SpanRow>, bool), Status> {
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let rows = sqlx::query(
            "SELECT span_id, parent_span_id, service, start_ms, duration_us, sealed FROM spans
             WHERE tenant_id = $1 AND trace_id = $2 ORDER BY start_ms, span_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(trace_id)
        .bind(max as i64 + 1)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(g)?;
        let more = rows.len() > max;
        let mut spans = Vec::with_capacity(rows.len().min(max));
        for r in rows.iter().take(max) {
            let s: Sealed = from_json(
                "spans",
                &self
                    .unseal(tenant_id, &r.try_get::<String, _>(5).map_err(g)?)
                    .await?,
            )?;
            spans.push(SpanRow {
                trace_id: trace_id.to_owned(),
                span_id: r.try_get(0).map_err(g)?,
                parent_span_id: r.try_get(1).map_err(g)?,
                service: r.try_get(2).map_err(g)?,
                name: s.name,
                kind: s.kind,
                start_ms: r.try_get(3).map_err(g)?,
                duration_us: u64::try_from(r.try_get::<i64, _>(4).map_err(g)?).unwrap_or(0),
                status: s.status,
                status_message: s.status_message,
                attributes: s.attributes,
                resource: s.resource,
            });
        }
        Ok((spans, more))
    }

    pub(crate) async fn get_trace_rpc(
        &self,
        req: Request<tm::GetTraceRequest>,
    ) -> Result<Response<tm::GetTraceResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/GetTrace")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        if !is_hex(&q.trace_id, 32) {
            return Err(Status::invalid_argument(
                "trace_id must be 32 hexadecimal characters",
            ));
        }
        let trace_id = q.trace_id.to_ascii_lowercase();
        let (spans, truncated) = self
            .load_trace(&q.tenant_id, &trace_id, MAX_TRACE_SPANS)
            .await?;
        if spans.is_empty() {
            return Err(Status::not_found(format!(
                "no spans of trace {trace_id} are stored for tenant {}",
                q.tenant_id
            )));
        }
        let placed = t::tree(&spans);
        let mut slots: Vec<Option<SpanRow>> = spans.into_iter().map(Some).collect();
        let spans = placed
            .iter()
            .filter_map(|p| Some(span(slots.get_mut(p.index)?.take()?, p.depth)))
            .collect();
        Ok(Response::new(tm::GetTraceResponse {
            trace_id,
            spans,
            truncated,
        }))
    }

    pub(crate) async fn find_traces_rpc(
        &self,
        req: Request<tm::FindTracesRequest>,
    ) -> Result<Response<tm::FindTracesResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/FindTraces")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        let window = Window::parse("window", q.window.as_ref())?;
        check_len("service", &q.service, 256)?;
        let limit = limit("limit", q.limit, 20, 100)?;
        let order = match tm::TraceOrder::try_from(q.order) {
            Ok(tm::TraceOrder::Slowest) => Order::Slowest,
            Ok(tm::TraceOrder::Failed) => Order::Failed,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "order {} is not slowest or failed",
                    q.order
                )));
            }
        };
        // Ranked on the clear columns of the window's spans; only the chosen are opened.
        let mut sql = String::from(
            "SELECT trace_id FROM spans WHERE tenant_id = $1 AND start_ms >= $2 AND start_ms < $3",
        );
        sql.push_str(if q.service.is_empty() {
            " AND $4 = ''"
        } else {
            " AND trace_id IN (SELECT trace_id FROM spans WHERE tenant_id = $1
                 AND service = $4 AND start_ms >= $2 AND start_ms < $3)"
        });
        sql.push_str(match order {
            Order::Slowest => {
                " GROUP BY trace_id
                  ORDER BY MAX(start_ms * 1000 + duration_us) - MIN(start_ms * 1000) DESC, trace_id"
            }
            Order::Failed => {
                " GROUP BY trace_id HAVING SUM(error) > 0 ORDER BY MIN(start_ms) DESC, trace_id"
            }
        });
        sql.push_str(" LIMIT $5");
        let ids: Vec<String> = sqlx::query_scalar(&sql)
            .bind(&q.tenant_id)
            .bind(window.since_ms)
            .bind(window.until_ms)
            .bind(&q.service)
            .bind(limit as i64 + 1)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
        let mut truncated = ids.len() > limit;
        let mut all = Vec::new();
        for id in ids.iter().take(limit) {
            let (spans, more) = self.load_trace(&q.tenant_id, id, MAX_SUMMARY_SPANS).await?;
            truncated |= more;
            all.extend(spans);
        }
        let (chosen, more) = t::choose(t::summarize(&all), order, limit);
        Ok(Response::new(tm::FindTracesResponse {
            traces: chosen
                .into_iter()
                .map(|s| tm::TraceSummary {
                    trace_id: s.trace_id,
                    root_service: s.root_service,
                    root_name: s.root_name,
                    start: Some(ts(s.start_ms)),
                    duration_us: s.duration_us,
                    spans: s.spans,
                    error_spans: s.error_spans,
                    first_error: s.first_error,
                })
                .collect(),
            truncated: truncated || more,
        }))
    }
}

fn check_span(s: &SpanRow) -> Result<(), String> {
    if !is_hex(&s.trace_id, 32) {
        return Err("trace_id must be 32 hexadecimal characters".into());
    }
    if !is_hex(&s.span_id, 16) {
        return Err("span_id must be 16 hexadecimal characters".into());
    }
    if !s.parent_span_id.is_empty() && !is_hex(&s.parent_span_id, 16) {
        return Err("parent_span_id must be empty or 16 hexadecimal characters".into());
    }
    if s.start_ms < 0 {
        return Err("start is before 1970".into());
    }
    if s.service.len() > 256 || s.name.len() > 4096 || s.kind.len() > 32 {
        return Err("service, name or kind too long (256, 4096 and 32 bytes at most)".into());
    }
    if s.status_message.len() > 64 * 1024 {
        return Err("status_message is over 64 KiB".into());
    }
    Ok(())
}

fn span(s: SpanRow, depth: u32) -> tm::Span {
    tm::Span {
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        service: s.service,
        name: s.name,
        kind: s.kind,
        start: Some(ts(s.start_ms)),
        duration_us: s.duration_us,
        error: s.status == SpanStatus::Error,
        status_message: s.status_message,
        attributes: s.attributes.into_iter().collect::<HashMap<_, _>>(),
        depth,
    }
}
