//! Metrics: a series row per (tenant, name, labels), its id a SHA-256 over the three so
//! every writer agrees on it without a lookup, its labels (resource attributes included)
//! and unit/description sealed; a point row per sample, the value in the clear (it is
//! what aggregation reads) and a histogram sealed. Matchers run on opened labels, over
//! a bounded number of series per name.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_telemetry::metrics::{self as m, Aggregation, MatchOp, Matcher};
use warden_telemetry::model::{Attributes, HistogramValue, MetricKind, MetricPoint};
use warden_tls::authorize;

use super::{INSERT_CHUNK, Window, check_batch, from_json, insert_sql, limit, to_json};
use crate::util::{check_len, check_tenant, ts};
use crate::{DbError, Storage};

/// Series of one name whose labels a query opens at most.
const MAX_SERIES_SCANNED: usize = 10_000;
/// Points one query loads at most, over all its series.
const MAX_POINTS_LOADED: usize = 200_000;

/// The sealed description of a series.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    unit: String,
    description: String,
}

/// A series as the store call writes it.
struct NewSeries<'a> {
    id: String,
    point: &'a MetricPoint,
    first_ms: i64,
    last_ms: i64,
}

impl Storage {
    /// Stores metric points for `tenant_id`: all of them or, on any error, none.
    pub async fn store_metrics(
        &self,
        tenant_id: &str,
        points: &[MetricPoint],
    ) -> Result<(), Status> {
        check_batch(tenant_id, "metric points", points.len())?;
        for (i, p) in points.iter().enumerate() {
            check_point(p).map_err(|m| Status::invalid_argument(format!("metrics[{i}]: {m}")))?;
        }
        // One row per distinct series in the call, with the call's time span.
        let mut series: BTreeMap<String, NewSeries<'_>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(points.len());
        for p in points {
            let id = series_id(tenant_id, &p.name, &p.labels);
            let s = series.entry(id.clone()).or_insert(NewSeries {
                id: id.clone(),
                point: p,
                first_ms: p.time_ms,
                last_ms: p.time_ms,
            });
            s.first_ms = s.first_ms.min(p.time_ms);
            s.last_ms = s.last_ms.max(p.time_ms);
            ids.push(id);
        }
        let mut sealed_series = Vec::with_capacity(series.len());
        for s in series.values() {
            let meta = to_json(&Meta {
                unit: s.point.unit.clone(),
                description: s.point.description.clone(),
            })?;
            sealed_series.push((
                self.seal(tenant_id, &meta).await?,
                self.seal(tenant_id, &to_json(&s.point.labels)?).await?,
            ));
        }
        let mut histograms = Vec::with_capacity(points.len());
        for p in points {
            histograms.push(match &p.histogram {
                Some(h) => self.seal(tenant_id, &to_json(h)?).await?,
                None => String::new(),
            });
        }
        let mut tx = self.inner.db.begin_write().await.map_err(DbError::from)?;
        for (s, (meta, labels)) in series.values().zip(&sealed_series) {
            sqlx::query(
                "INSERT INTO metric_series (tenant_id, series_id, name, kind, service, meta, labels, first_ms, last_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (tenant_id, series_id) DO UPDATE SET
                   first_ms = CASE WHEN excluded.first_ms < metric_series.first_ms THEN excluded.first_ms ELSE metric_series.first_ms END,
                   last_ms = CASE WHEN excluded.last_ms > metric_series.last_ms THEN excluded.last_ms ELSE metric_series.last_ms END",
            )
            .bind(tenant_id)
            .bind(&s.id)
            .bind(&s.point.name)
            .bind(s.point.kind.as_str())
            .bind(s.point.labels.get("service.name").map_or("", String::as_str))
            .bind(meta)
            .bind(labels)
            .bind(s.first_ms)
            .bind(s.last_ms)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        }
        let cols = ["tenant_id", "series_id", "time_ms", "value", "histogram"];
        let rows: Vec<(&MetricPoint, (&String, &String))> =
            points.iter().zip(ids.iter().zip(&histograms)).collect();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let sql = insert_sql("metric_points", &cols, chunk.len());
            let mut q = sqlx::query(&sql);
            for (p, (id, h)) in chunk {
                q = q
                    .bind(tenant_id)
                    .bind(*id)
                    .bind(p.time_ms)
                    .bind(p.value)
                    .bind(*h);
            }
            q.execute(&mut *tx).await.map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    pub(crate) async fn list_metrics_rpc(
        &self,
        req: Request<tm::ListMetricsRequest>,
    ) -> Result<Response<tm::ListMetricsResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/ListMetrics")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        let window = Window::parse("window", q.window.as_ref())?;
        check_len("service", &q.service, 256)?;
        check_len("name_prefix", &q.name_prefix, 256)?;
        let limit = limit("limit", q.limit, 100, 1000)?;
        let mut sql = String::from(
            "SELECT name, kind, COUNT(*), MAX(meta) FROM metric_series
             WHERE tenant_id = $1 AND last_ms >= $2 AND first_ms < $3
               AND substr(name, 1, length($4)) = $4",
        );
        sql.push_str(if q.service.is_empty() {
            " AND $5 = ''"
        } else {
            " AND service = $5"
        });
        sql.push_str(" GROUP BY name, kind ORDER BY name, kind LIMIT $6");
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let rows = sqlx::query(&sql)
            .bind(&q.tenant_id)
            .bind(window.since_ms)
            .bind(window.until_ms)
            .bind(&q.name_prefix)
            .bind(&q.service)
            .bind(limit as i64 + 1)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(g)?;
        let truncated = rows.len() > limit;
        let mut metrics = Vec::with_capacity(rows.len().min(limit));
        for r in rows.iter().take(limit) {
            let meta: Meta = from_json(
                "metric_series",
                &self
                    .unseal(&q.tenant_id, &r.try_get::<String, _>(3).map_err(g)?)
                    .await?,
            )?;
            metrics.push(tm::MetricInfo {
                name: r.try_get(0).map_err(g)?,
                kind: r.try_get(1).map_err(g)?,
                unit: meta.unit,
                description: meta.description,
                series: u64::try_from(r.try_get::<i64, _>(2).map_err(g)?).unwrap_or(0),
            });
        }
        Ok(Response::new(tm::ListMetricsResponse {
            metrics,
            truncated,
        }))
    }

    pub(crate) async fn query_metrics_rpc(
        &self,
        req: Request<tm::QueryMetricsRequest>,
    ) -> Result<Response<tm::QueryMetricsResponse>, Status> {
        let auth = authorize(&req, "warden.telemetry.v1.TelemetryQuery/QueryMetrics")?;
        let q = req.into_inner();
        auth.for_tenant(&q.tenant_id)?;
        check_tenant(&q.tenant_id)?;
        let window = Window::parse("window", q.window.as_ref())?;
        if q.name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        check_len("name", &q.name, 256)?;
        if q.matchers.len() > 32 {
            return Err(Status::invalid_argument(format!(
                "{} matchers; at most 32",
                q.matchers.len()
            )));
        }
        let matchers = matchers(&q.matchers)?;
        let max_points = limit("max_points", q.max_points, 60, 500)?;
        let max_series = limit("max_series", q.max_series, 20, 200)?;
        let asked = aggregation(q.aggregation)?;

        // The name's series in the window, labels opened, matchers applied.
        let g = |e: sqlx::Error| Status::from(DbError::from(e));
        let rows = sqlx::query(
            "SELECT series_id, kind, labels, meta FROM metric_series
             WHERE tenant_id = $1 AND name = $2 AND last_ms >= $3 AND first_ms < $4
             ORDER BY series_id LIMIT $5",
        )
        .bind(&q.tenant_id)
        .bind(&q.name)
        .bind(window.since_ms)
        .bind(window.until_ms)
        .bind(MAX_SERIES_SCANNED as i64 + 1)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(g)?;
        let mut truncated = rows.len() > MAX_SERIES_SCANNED;
        let mut kind = None;
        let mut meta_sealed = None;
        let mut matched: Vec<(Attributes, String)> = Vec::new();
        for r in rows.iter().take(MAX_SERIES_SCANNED) {
            let labels: Attributes = from_json(
                "metric_series",
                &self
                    .unseal(&q.tenant_id, &r.try_get::<String, _>(2).map_err(g)?)
                    .await?,
            )?;
            if !m::matches_all(&matchers, &labels) {
                continue;
            }
            if kind.is_none() {
                kind = Some(parse_kind(&r.try_get::<String, _>(1).map_err(g)?));
                meta_sealed = Some(r.try_get::<String, _>(3).map_err(g)?);
            }
            matched.push((labels, r.try_get(0).map_err(g)?));
        }
        let kind = kind.unwrap_or_default();
        let meta: Meta = match meta_sealed {
            Some(s) => from_json("metric_series", &self.unseal(&q.tenant_id, &s).await?)?,
            None => Meta::default(),
        };
        let agg = asked.unwrap_or_else(|| Aggregation::default_for(kind));
        matched.sort();
        truncated |= matched.len() > max_series;
        matched.truncate(max_series);

        // Their points; the sample before the window too where an increase needs it.
        let needs_before =
            agg == Aggregation::Rate || (agg == Aggregation::P95 && kind == MetricKind::Histogram);
        let needs_histogram =
            kind == MetricKind::Histogram && matches!(agg, Aggregation::Rate | Aggregation::P95);
        let per_series = MAX_POINTS_LOADED / matched.len().max(1);
        let mut data = Vec::with_capacity(matched.len());
        for (labels, id) in matched {
            let mut rows = sqlx::query(
                "SELECT time_ms, value, histogram FROM metric_points
                 WHERE tenant_id = $1 AND series_id = $2 AND time_ms >= $3 AND time_ms < $4
                 ORDER BY time_ms LIMIT $5",
            )
            .bind(&q.tenant_id)
            .bind(&id)
            .bind(window.since_ms)
            .bind(window.until_ms)
            .bind(per_series as i64 + 1)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(g)?;
            if rows.len() > per_series {
                truncated = true;
                rows.truncate(per_series);
            }
            if needs_before {
                let before = sqlx::query(
                    "SELECT time_ms, value, histogram FROM metric_points
                     WHERE tenant_id = $1 AND series_id = $2 AND time_ms < $3
                     ORDER BY time_ms DESC LIMIT 1",
                )
                .bind(&q.tenant_id)
                .bind(&id)
                .bind(window.since_ms)
                .fetch_optional(&self.inner.db.pool)
                .await
                .map_err(g)?;
                rows.splice(0..0, before);
            }
            let mut samples = Vec::with_capacity(rows.len());
            for r in &rows {
                let sealed: String = r.try_get(2).map_err(g)?;
                let histogram = if needs_histogram && !sealed.is_empty() {
                    let h: HistogramValue =
                        from_json("metric_points", &self.unseal(&q.tenant_id, &sealed).await?)?;
                    Some(h)
                } else {
                    None
                };
                samples.push(m::Sample {
                    time_ms: r.try_get(0).map_err(g)?,
                    value: r.try_get(1).map_err(g)?,
                    histogram,
                });
            }
            data.push(m::SeriesData { labels, samples });
        }
        let answer = m::evaluate(
            &m::Query {
                kind,
                aggregation: agg,
                since_ms: window.since_ms,
                until_ms: window.until_ms,
                max_points,
                max_series,
            },
            data,
        );
        Ok(Response::new(tm::QueryMetricsResponse {
            name: q.name,
            kind: kind.as_str().into(),
            unit: meta.unit,
            aggregation: proto_aggregation(agg) as i32,
            step_ms: answer.step_ms,
            series: answer
                .series
                .into_iter()
                .map(|s| tm::Series {
                    labels: s.labels.into_iter().collect::<HashMap<_, _>>(),
                    points: s
                        .points
                        .into_iter()
                        .map(|(t, value)| tm::Point {
                            time: Some(ts(t)),
                            value,
                        })
                        .collect(),
                })
                .collect(),
            truncated: truncated || answer.truncated,
        }))
    }
}

/// The series id: SHA-256 over tenant, name and the labels in order, each length-prefixed
/// so no two different series can encode alike.
pub(crate) fn series_id(tenant_id: &str, name: &str, labels: &Attributes) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put(tenant_id);
    put(name);
    for (k, v) in labels {
        put(k);
        put(v);
    }
    hex::encode(h.finalize())
}

fn check_point(p: &MetricPoint) -> Result<(), String> {
    if p.name.is_empty() || p.name.len() > 256 {
        return Err("name must be 1 to 256 bytes".into());
    }
    if p.time_ms < 0 {
        return Err("time is before 1970".into());
    }
    if !p.value.is_finite() {
        return Err(
            "value is not a finite number (leave out points with no recorded value)".into(),
        );
    }
    if p.labels.len() > 128 {
        return Err(format!("{} labels; at most 128", p.labels.len()));
    }
    if p.labels
        .iter()
        .any(|(k, v)| k.len() > 256 || v.len() > 4096)
    {
        return Err("a label is longer than 256 bytes (name) or 4096 bytes (value)".into());
    }
    if p.unit.len() > 256 || p.description.len() > 4096 {
        return Err("unit or description too long (256 and 4096 bytes at most)".into());
    }
    if let Some(h) = &p.histogram {
        if h.bucket_counts.len() != h.bounds.len() + 1 {
            return Err(format!(
                "histogram has {} bounds and {} bucket counts; it needs one count more than bounds",
                h.bounds.len(),
                h.bucket_counts.len()
            ));
        }
        if h.bounds.len() > 1024
            || h.bounds
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err("histogram bounds must increase (at most 1024)".into());
        }
    }
    Ok(())
}

fn matchers(list: &[tm::LabelMatcher]) -> Result<Vec<Matcher>, Status> {
    list.iter()
        .enumerate()
        .map(|(i, lm)| {
            check_len("matcher value", &lm.value, 4096)?;
            let op = match tm::label_matcher::Op::try_from(lm.op) {
                Ok(tm::label_matcher::Op::Eq) => MatchOp::Eq,
                Ok(tm::label_matcher::Op::Ne) => MatchOp::Ne,
                Ok(tm::label_matcher::Op::Re) => MatchOp::Re,
                Ok(tm::label_matcher::Op::Nre) => MatchOp::Nre,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "matchers[{i}]: op {} is not one of =, !=, =~, !~",
                        lm.op
                    )));
                }
            };
            Matcher::new(&lm.label, op, &lm.value).map_err(|e| {
                Status::invalid_argument(format!("matchers[{i}] (label {:?}): {e}", lm.label))
            })
        })
        .collect()
}

/// The aggregation asked for; `None` for the kind's default.
fn aggregation(v: i32) -> Result<Option<Aggregation>, Status> {
    use tm::Aggregation as A;
    Ok(match A::try_from(v) {
        Ok(A::Unspecified) => None,
        Ok(A::Avg) => Some(Aggregation::Avg),
        Ok(A::Rate) => Some(Aggregation::Rate),
        Ok(A::P95) => Some(Aggregation::P95),
        Ok(A::Max) => Some(Aggregation::Max),
        Ok(A::Min) => Some(Aggregation::Min),
        Ok(A::Sum) => Some(Aggregation::Sum),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "aggregation {v} is not one of avg, rate, p95, max, min, sum"
            )));
        }
    })
}

fn proto_aggregation(a: Aggregation) -> tm::Aggregation {
    match a {
        Aggregation::Avg => tm::Aggregation::Avg,
        Aggregation::Rate => tm::Aggregation::Rate,
        Aggregation::P95 => tm::Aggregation::P95,
        Aggregation::Max => tm::Aggregation::Max,
        Aggregation::Min => tm::Aggregation::Min,
        Aggregation::Sum => tm::Aggregation::Sum,
    }
}

fn parse_kind(s: &str) -> MetricKind {
    match s {
        "counter" => MetricKind::Counter,
        "sum" => MetricKind::Sum,
        "histogram" => MetricKind::Histogram,
        _ => MetricKind::Gauge,
    }
}
