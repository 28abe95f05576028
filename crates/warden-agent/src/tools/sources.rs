//! Tools over the tenant's own systems: PromQL against its Prometheus, and its GitHub
//! repositories. Credentials are fetched from storage for each call and dropped after it;
//! the clients speak only to the URL the tenant configured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_sources::prometheus::PrometheusClient;

use super::args::Args;
use super::window::{Window, rfc3339};
use super::{Found, ToolError};
use crate::Agent;

/// How long one call to a tenant's system may take.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(20);

impl Agent {
    /// The tenant's sealed source credentials `id`, for one call.
    async fn source_credentials(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<pb::SourceCredentials, ToolError> {
        let mut c = self.inner.tenants.clone();
        c.get_source_credentials(st::GetSourceCredentialsRequest {
            tenant_id: tenant_id.to_owned(),
            credentials_id: id.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| {
            ToolError(format!(
                "the source's credentials could not be read: {}",
                s.message()
            ))
        })
    }
}

fn labels(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) async fn prometheus(
    agent: &Agent,
    settings: &pb::TenantSettings,
    name: &str,
    a: &Args<'_>,
    w: Window,
) -> Result<Found, ToolError> {
    let source = settings
        .prometheus
        .as_ref()
        .filter(|p| !p.url.is_empty())
        .ok_or("the tenant has no Prometheus source")?;
    let creds = if source.credentials_id.is_empty() {
        None
    } else {
        Some(
            agent
                .source_credentials(&settings.tenant_id, &source.credentials_id)
                .await?,
        )
    };
    let client = PrometheusClient::new(source, creds.as_ref(), SOURCE_TIMEOUT)
        .map_err(|e| ToolError(e.to_string()))?;
    drop(creds);
    let mut text = String::new();
    let rows;
    match name {
        "list_metrics" => {
            let limit = a.limit("limit", 100, 200)? as usize;
            let prefix = a.string("name_prefix")?;
            let names = client
                .metric_names(w.since_ms, w.until_ms, 10_000)
                .await
                .map_err(|e| ToolError(e.to_string()))?;
            let matching: Vec<_> = names
                .names
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .collect();
            rows = matching.len().min(limit);
            for n in matching.iter().take(limit) {
                let _ = writeln!(text, "{n}");
            }
            if matching.len() > limit || names.truncated {
                text.push_str("[more metric names than shown; give a name_prefix]\n");
            }
        }
        "query_metrics" => {
            let promql = a.required("promql")?;
            if promql.len() > 4096 {
                return Err("promql is longer than 4096 characters".into());
            }
            let max_points = a.limit("max_points", 60, 120)? as usize;
            let r = client
                .with_max_series(20)
                .query_range(promql, w.since_ms, w.until_ms, max_points)
                .await
                .map_err(|e| ToolError(e.to_string()))?;
            rows = r.series.len();
            let _ = writeln!(
                text,
                "{promql} from {} to {} every {}s:",
                rfc3339(w.since_ms),
                rfc3339(w.until_ms),
                r.step_ms.unwrap_or(0) / 1000
            );
            for s in &r.series {
                let _ = write!(text, "{{{}}}", labels(&s.labels));
                for (t, v) in &s.points {
                    let _ = write!(text, " {}={v:.4}", rfc3339(*t));
                }
                text.push('\n');
            }
            if r.truncated {
                let _ = writeln!(
                    text,
                    "[{} series matched, {} shown; aggregate (sum by ...) or filter the query]",
                    r.total_series,
                    r.series.len()
                );
            }
            for warning in &r.warnings {
                let _ = writeln!(text, "[prometheus warning: {warning}]");
            }
        }
        other => return Err(format!("{other} is not a Prometheus tool").into()),
    }
    Ok(Found { text, rows })
}

pub(crate) async fn code(
    _agent: &Agent,
    _settings: &pb::TenantSettings,
    name: &str,
    _a: &Args<'_>,
) -> Result<Found, ToolError> {
    Err(format!("{name}: the GitHub source is not wired yet").into())
}
