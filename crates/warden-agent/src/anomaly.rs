//! Anomaly detection that opens investigations: every `interval`, for each tenant that
//! has AI enabled (and no other: a tenant that has not opted in is never even read), each
//! of its detectors reads the metric's series from the telemetry store, compares the
//! last `recent` window with a seasonal baseline learnt from `history_days` before it
//! (`warden-anomaly`: median and MAD per time-of-day slot), and queues an ANOMALY run per
//! episode, carrying the evidence (series, window, expected value, deviation).
//!
//! Each episode's key is its series, direction and first anomalous point, so passes that
//! see it again — on this replica or another — start nothing new; an episode that began
//! before the recent window is not fired (it was, while it was recent). Baselines are
//! rebuilt at most once per slot.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use warden_anomaly::{Baseline, DetectorConfig, Point};
use warden_proto::common::v1::{self as pb, Purpose};
use warden_proto::storage::v1 as st;
use warden_proto::telemetry::v1 as tm;

use crate::tools::window;
use crate::{Agent, NewRun, brief};

/// How the detectors run.
#[derive(Debug, Clone, Copy)]
pub struct AnomalyOptions {
    /// Time between two passes.
    pub interval: Duration,
    /// Days of history the baseline is learnt from.
    pub history_days: u32,
    /// The window searched for anomalies, ending now.
    pub recent: Duration,
}

impl Default for AnomalyOptions {
    fn default() -> Self {
        AnomalyOptions {
            interval: Duration::from_secs(60),
            history_days: 7,
            recent: Duration::from_secs(2 * 3600),
        }
    }
}

/// A tenant's detector as the pure detector takes it; `Err` says what is wrong with it.
pub fn config_of(d: &pb::AnomalyDetector) -> Result<DetectorConfig, String> {
    if d.metric.trim().is_empty() {
        return Err("an anomaly detector needs a metric".into());
    }
    DetectorConfig::tenant(d.sensitivity, d.min_duration_secs, &d.direction)
        .map_err(|e| format!("anomaly detector for {}: {e}", d.metric))
}

/// Baselines by series, with when they were built.
type Baselines = HashMap<String, (i64, Baseline)>;

fn series_name(metric: &str, labels: &BTreeMap<String, String>) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{metric}{{{}}}", l.join(","))
}

fn points(series: &tm::Series) -> Vec<Point> {
    series
        .points
        .iter()
        .map(|p| Point {
            t_ms: window::ms_of(p.time.as_ref()),
            value: p.value,
        })
        .collect()
}

impl Agent {
    /// Runs the detectors every `opts.interval` until `shutdown`.
    pub fn spawn_detectors(&self, opts: AnomalyOptions, mut shutdown: watch::Receiver<bool>) {
        let agent = self.clone();
        tokio::spawn(async move {
            let mut baselines = Baselines::new();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(opts.interval) => {}
                    _ = shutdown.changed() => return,
                }
                match agent.detect_pass(&opts, &mut baselines).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "anomaly detectors queued investigations"),
                    Err(s) => {
                        tracing::warn!(code = ?s.code(), "anomaly detection pass failed: {}", s.message())
                    }
                }
            }
        });
    }

    /// One pass over every enabled tenant's detectors; how many new runs it queued.
    pub(crate) async fn detect_pass(
        &self,
        opts: &AnomalyOptions,
        baselines: &mut Baselines,
    ) -> Result<usize, tonic::Status> {
        let mut fired = 0;
        let mut after = String::new();
        loop {
            let mut tenants = self.inner.tenants.clone();
            let page = tenants
                .list_enabled_tenants(st::ListEnabledTenantsRequest {
                    after: after.clone(),
                    limit: 200,
                })
                .await?
                .into_inner()
                .tenants;
            let Some(last) = page.last() else { break };
            after = last.tenant_id.clone();
            for settings in page.iter().filter(|s| s.enabled) {
                for d in &settings.anomaly_detectors {
                    match config_of(d) {
                        Ok(cfg) => fired += self.detect(settings, d, &cfg, opts, baselines).await,
                        Err(e) => {
                            tracing::warn!(tenant = %settings.tenant_id, metric = %d.metric, "anomaly detector skipped: {e}")
                        }
                    }
                }
            }
        }
        Ok(fired)
    }

    async fn query(
        &self,
        tenant: &str,
        d: &pb::AnomalyDetector,
        since_ms: i64,
        until_ms: i64,
        max_points: u32,
    ) -> Result<Vec<tm::Series>, tonic::Status> {
        let mut telemetry = self.inner.telemetry.clone();
        let r = telemetry
            .query_metrics(tm::QueryMetricsRequest {
                tenant_id: tenant.to_owned(),
                window: Some(tm::Window {
                    since: window::timestamp(since_ms),
                    until: window::timestamp(until_ms),
                }),
                name: d.metric.clone(),
                matchers: d
                    .labels
                    .iter()
                    .map(|(k, v)| tm::LabelMatcher {
                        label: k.clone(),
                        op: tm::label_matcher::Op::Eq as i32,
                        value: v.clone(),
                    })
                    .collect(),
                max_points,
                max_series: 20,
                ..Default::default()
            })
            .await?;
        Ok(r.into_inner().series)
    }

    /// Runs one detector; how many runs it queued.
    async fn detect(
        &self,
        settings: &pb::TenantSettings,
        d: &pb::AnomalyDetector,
        cfg: &DetectorConfig,
        opts: &AnomalyOptions,
        baselines: &mut Baselines,
    ) -> usize {
        let tenant = &settings.tenant_id;
        let now = window::millis(std::time::SystemTime::now());
        let recent_from = now - opts.recent.as_millis() as i64;
        let recent = match self.query(tenant, d, recent_from, now, 500).await {
            Ok(s) => s,
            Err(s) => {
                tracing::warn!(tenant = %tenant, metric = %d.metric, code = ?s.code(), "anomaly detector could not read its metric");
                return 0;
            }
        };
        let mut fired = 0;
        for series in recent {
            let labels: BTreeMap<String, String> = series.labels.clone().into_iter().collect();
            let name = series_name(&d.metric, &labels);
            let cache_key = format!("{tenant}\u{0}{name}");
            let stale = baselines
                .get(&cache_key)
                .is_none_or(|(built, _)| now - built >= cfg.slot_ms);
            if stale {
                let mut history = Vec::new();
                let day = 86_400_000;
                for i in (1..=i64::from(opts.history_days)).rev() {
                    let (from, to) = (recent_from - i * day, recent_from - (i - 1) * day);
                    let mut d_for_series = d.clone();
                    d_for_series.labels = labels.clone().into_iter().collect();
                    match self.query(tenant, &d_for_series, from, to, 288).await {
                        Ok(s) => history.extend(s.iter().flat_map(points)),
                        Err(_) => return fired,
                    }
                }
                match warden_anomaly::baseline(&history, cfg) {
                    Ok(b) => {
                        baselines.insert(cache_key.clone(), (now, b));
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, "anomaly baseline failed: {e}");
                        continue;
                    }
                }
            }
            let Some((_, base)) = baselines.get(&cache_key) else {
                continue;
            };
            if base.is_empty() {
                continue;
            }
            let Ok(found) = warden_anomaly::detect(base, &points(&series), cfg) else {
                continue;
            };
            for a in found.into_iter().filter(|a| !a.truncated) {
                let key = warden_anomaly::key(&name, &a);
                let service = labels
                    .get("service.name")
                    .or_else(|| labels.get("service"))
                    .cloned()
                    .unwrap_or_default();
                let trigger = brief::Trigger {
                    title: format!(
                        "{name} {} its usual value: {:.3} against {:.3} expected ({:+.1} MADs)",
                        if a.score >= 0.0 { "above" } else { "below" },
                        a.peak_value,
                        a.expected,
                        a.score
                    ),
                    description: format!(
                        "from {} to {}{}",
                        window::rfc3339(a.start_ms),
                        window::rfc3339(a.end_ms),
                        if a.ongoing { " (still ongoing)" } else { "" }
                    ),
                    service,
                    labels: labels.clone(),
                    occurred_at_ms: a.start_ms,
                    detail: json!({
                        "metric": d.metric, "labels": labels, "start_ms": a.start_ms, "end_ms": a.end_ms,
                        "peak_ms": a.peak_ms, "peak_value": a.peak_value, "expected": a.expected,
                        "mad": a.mad, "score": a.score, "direction": a.direction.as_str(),
                        "ongoing": a.ongoing, "history_points": a.history_points,
                        "window": {"since_ms": recent_from, "until_ms": now},
                    }),
                };
                match self
                    .enqueue(NewRun {
                        tenant_id: tenant.clone(),
                        purpose: Purpose::Anomaly,
                        keys: vec![key],
                        trigger,
                    })
                    .await
                {
                    Ok(r) if !r.duplicate => fired += 1,
                    Ok(_) => {}
                    Err(s) => {
                        tracing::warn!(tenant = %tenant, code = ?s.code(), "anomaly run not queued: {}", s.message())
                    }
                }
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_anomaly::Direction;

    #[test]
    fn a_detector_is_checked_before_it_runs() {
        let d = pb::AnomalyDetector {
            metric: "http.server.request.duration".into(),
            sensitivity: 4.0,
            min_duration_secs: 120,
            direction: "up".into(),
            ..Default::default()
        };
        let cfg = config_of(&d).unwrap();
        assert_eq!(
            (cfg.sensitivity, cfg.min_duration_ms, cfg.direction),
            (4.0, 120_000, Direction::Up)
        );
        assert!(
            config_of(&pb::AnomalyDetector::default())
                .unwrap_err()
                .contains("metric")
        );
        let sideways = pb::AnomalyDetector {
            direction: "sideways".into(),
            ..d.clone()
        };
        assert!(config_of(&sideways).unwrap_err().contains("sideways"));
        let negative = pb::AnomalyDetector {
            sensitivity: -1.0,
            ..d
        };
        assert!(config_of(&negative).is_err());
    }
}
