//! Log records: stored with time, service and severity in the clear and everything else
//! (body, severity text, trace context, attributes, resource) sealed as one value; read
//! newest first, the text and resource filters running on opened records.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::model::{Attributes, LogRow};
use warden_tls::authorize;

use super::{INSERT_CHUNK, Window, check_batch, from_json, insert_sql, limit, to_json};
use crate::util::{check_len, check_tenant, ts};
use crate::{DbError, Storage};

/// Records opened per query at most (QueryLogs filters, and each LogPatterns window).
const MAX_SCANNED: usize = 20_000;
const MAX_BODY: usize = 1024 * 1024;

/// The sealed part of a log record.
#[derive(Serialize, Deserialize)]
struct Sealed {
    severity_text: String,
    body: String,
    trace_id: String,
    span_id: String,
    attributes: Attributes,
    resource: Attributes,
}

/// What selects records, all in the clear.
struct Select<'a> {
    tenant_id: &'a str,
    window: Window,
    service: &'a str,
    min_severity: i32,
}

impl Storage {
    /// Stores log records for `tenant_id`: all of them or, on any error, none.
    pub async fn store_logs(&self, tenant_id: &str, rows: &[LogRow]) -> Result<(), Status> {
        check_batch(tenant_id, "log records", rows.len())?;
        for (i, r) in rows.iter().enumerate() {
            check_row(r).map_err(|m| Status::invalid_argument(format!("logs[{i}]: {m}")))?;
        }
        // Sealed before the transaction (a first data key is itself a write).
        let mut sealed = Vec::with_capacity(rows.len());
        for r in rows {
            let plain = to_json(&Sealed {
                severity_text: r.severity_text.clone(),
                body: r.body.clone(),
                trace_id: r.trace_id.clone(),
                span_id: r.span_id.clone(),
                attributes: r.attributes.clone(),
                resource: r.resource.clone(),
            })?;
            sealed.push(self.seal(tenant_id, &plain).await?);
        }
        let cols = ["tenant_id", "time_ms", "service", "severity", "sealed"];
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        for (chunk, sealed) in rows.chunks(INSERT_CHUNK).zip(sealed.chunks(INSERT_CHUNK)) {
            let sql = insert_sql("log_records", &cols, chunk.len());
            let mut q = sqlx::query(&sql);
            for (r, s) in chunk.iter().zip(sealed) {
                q = q
                    .bind(tenant_id)
                    .bind(r.time_ms)
                    .bind(&r.service)
                    .bind(i64::from(r.severity_number))
                    .bind(s);
            }
            q.execute(&mut *tx).await.map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// Opens up to `max` records matching `sel` (newest first) that pass `keep`; the flag
    /// says whether more were there (unread or not kept for lack of room).
    async fn scan_logs(
        &self,
        sel: &Select<'_>,
        max: usize,
        scan: usize,
        keep: impl Fn(&LogRow) -> bool,
    ) -> Result<(Vec<LogRow>, bool), Status> {
        let mut sql = String::from(
            "SELECT time_ms, service, severity, sealed FROM log_records
             WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3",
        );
        // Written out rather than `($4 = '' OR service = $4)` so the planner can use the
        // (tenant, service, time) index.
        if !sel.service.is_empty() {
            sql.push_str(" AND service = $5");
        } else {
            sql.push_str(" AND $5 = ''");
        }
        sql.push_str(" AND severity >= $4 ORDER BY time_ms DESC LIMIT $6");
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let mut stream = sqlx::query(&sql)
            .bind(sel.tenant_id)
            .bind(sel.window.since_ms)
            .bind(sel.window.until_ms)
            .bind(i64::from(sel.min_severity))
            .bind(sel.service)
            .bind(scan as i64 + 1)
            .fetch(&self.inner.db.pool);
        let mut out = Vec::new();
        let mut scanned = 0usize;
        while let Some(row) = stream.next().await {
            let row = row.map_err(g)?;
            scanned += 1;
            if scanned > scan {
                return Ok((out, true));
            }
            let opened = self
                .unseal(sel.tenant_id, &row.try_get::<String, _>(3).map_err(g)?)
                .await?;
            let s: Sealed = from_json("log_records", &opened)?;
            let r = LogRow {
                time_ms: row.try_get(0).map_err(g)?,
                service: row.try_get(1).map_err(g)?,
                severity_number: i32::try_from(row.try_get::<i64, _>(2).map_err(g)?)
                    .unwrap_or_default(),
                severity_text: s.severity_text,
                body: s.body,
                trace_id: s.trace_id,
                span_id: s.span_id,
                attributes: s.attributes,
                resource: s.resource,
            };
            if !keep(&r) {
                continue;
            }
            if out.len() == max {
                return Ok((out, true));
            }
            out.push(r);
        }
        Ok((out, false))
    }

    pub(crate) async fn query_logs_rpc(
        &self,
        req: Request<tm::QueryLogsRequest>,
    ) -> Result<Response<tm::QueryLogsResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/QueryLogs")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        let window = Window::parse("window", q.window.as_ref())?;
        check_selection(&q.service, q.min_severity)?;
        check_len("contains", &q.contains, 1024)?;
        if q.resource.len() > 32 {
            return Err(Status::invalid_argument(format!(
                "resource has {} matches; at most 32",
                q.resource.len()
            )));
        }
        for (k, v) in &q.resource {
            check_len("resource key", k, 256)?;
            check_len("resource value", v, 1024)?;
        }
        let limit = limit("limit", q.limit, 100, 1000)?;
        let sel = Select {
            tenant_id: &q.tenant_id,
            window,
            service: &q.service,
            min_severity: q.min_severity,
        };
        let needle = q.contains.to_lowercase();
        let filtered = !needle.is_empty() || !q.resource.is_empty();
        // Without filters on sealed fields, the database's LIMIT is the scan.
        let scan = if filtered { MAX_SCANNED } else { limit };
        let (rows, truncated) = self
            .scan_logs(&sel, limit, scan, |r| {
                (needle.is_empty() || r.body.to_lowercase().contains(&needle))
                    && q.resource
                        .iter()
                        .all(|(k, v)| r.resource.get(k).is_some_and(|x| x == v))
            })
            .await?;
        Ok(Response::new(tm::QueryLogsResponse {
            records: rows.into_iter().map(record).collect(),
            truncated,
        }))
    }

    pub(crate) async fn log_patterns_rpc(
        &self,
        req: Request<tm::LogPatternsRequest>,
    ) -> Result<Response<tm::LogPatternsResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/LogPatterns")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        let window = Window::parse("window", q.window.as_ref())?;
        let baseline = match &q.baseline {
            Some(b) => Window::parse("baseline", Some(b))?,
            None => Window {
                since_ms: window.since_ms - window.len_ms(),
                until_ms: window.since_ms,
            },
        };
        check_selection(&q.service, q.min_severity)?;
        let limit = limit("limit", q.limit, 50, 500)?;
        let sel = |window| Select {
            tenant_id: &q.tenant_id,
            window,
            service: &q.service,
            min_severity: q.min_severity,
        };
        let (now, cut_now) = self
            .scan_logs(&sel(window), MAX_SCANNED, MAX_SCANNED, |_| true)
            .await?;
        let (before, cut_before) = self
            .scan_logs(&sel(baseline), MAX_SCANNED, MAX_SCANNED, |_| true)
            .await?;
        let p = warden_telemetry::logs::patterns(
            &now,
            window.len_ms(),
            &before,
            baseline.len_ms(),
            limit,
        );
        Ok(Response::new(tm::LogPatternsResponse {
            patterns: p
                .patterns
                .into_iter()
                .map(|p| tm::LogPattern {
                    template: p.template,
                    count: p.count,
                    baseline_count: p.baseline_count,
                    max_severity: p.max_severity,
                    example: p.example,
                    services: p.services.into_iter().collect(),
                    first_seen: Some(ts(p.first_seen_ms)),
                    last_seen: Some(ts(p.last_seen_ms)),
                })
                .collect(),
            records: p.records,
            baseline_records: p.baseline_records,
            truncated: p.truncated || cut_now || cut_before,
        }))
    }
}

/// Why a record cannot be stored, if it cannot.
fn check_row(r: &LogRow) -> Result<(), String> {
    if r.time_ms < 0 {
        return Err("time is before 1970".into());
    }
    if r.service.len() > 256 {
        return Err(format!("service is {} bytes; at most 256", r.service.len()));
    }
    if r.body.len() > MAX_BODY {
        return Err(format!(
            "body is {} bytes; at most {MAX_BODY}",
            r.body.len()
        ));
    }
    if !(0..=24).contains(&r.severity_number) {
        return Err(format!(
            "severity_number {} is not an OTLP SeverityNumber (0 to 24)",
            r.severity_number
        ));
    }
    Ok(())
}

fn check_selection(service: &str, min_severity: i32) -> Result<(), Status> {
    check_len("service", service, 256)?;
    if !(0..=24).contains(&min_severity) {
        return Err(Status::invalid_argument(format!(
            "min_severity {min_severity} is not an OTLP SeverityNumber (0 to 24)"
        )));
    }
    Ok(())
}

fn record(r: LogRow) -> tm::LogRecord {
    tm::LogRecord {
        time: Some(ts(r.time_ms)),
        service: r.service,
        severity_number: r.severity_number,
        severity_text: r.severity_text,
        body: r.body,
        trace_id: r.trace_id,
        span_id: r.span_id,
        attributes: r.attributes.into_iter().collect::<HashMap<_, _>>(),
        resource: r.resource.into_iter().collect::<HashMap<_, _>>(),
    }
}
