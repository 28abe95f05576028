//! Tools over the tenant's own systems: PromQL against its Prometheus, and its GitHub
//! repositories. Credentials are fetched from storage for each call and dropped after it;
//! the clients speak only to the URL the tenant configured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;
use warden_sources::github::{Contents, FileChange, GitHubClient};
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

/// The repository a code tool names: a mapped service, or a mapped owner/name.
fn repository<'a>(client: &'a GitHubClient, a: &'a Args<'_>) -> Result<&'a str, ToolError> {
    let named = a.required("repository")?;
    match client.repository_for(named) {
        Some(r) => Ok(r.repository.as_str()),
        // The client refuses any repository the tenant did not map, without a request.
        None => Ok(named),
    }
}

fn changes(text: &mut String, files: &[FileChange], truncated: bool) {
    for f in files {
        let _ = writeln!(
            text,
            "--- {} ({}, +{} -{})",
            f.filename, f.status, f.additions, f.deletions
        );
        if let Some(patch) = &f.patch {
            text.push_str(patch);
            text.push('\n');
        }
        if f.patch_truncated {
            text.push_str("[patch cut]\n");
        }
    }
    if truncated {
        text.push_str("[more files changed than shown]\n");
    }
}

pub(crate) async fn code(
    agent: &Agent,
    settings: &pb::TenantSettings,
    name: &str,
    a: &Args<'_>,
) -> Result<Found, ToolError> {
    let source = settings
        .github
        .as_ref()
        .filter(|g| !g.credentials_id.is_empty())
        .ok_or("the tenant has no GitHub installation connected")?;
    let creds = agent
        .source_credentials(&settings.tenant_id, &source.credentials_id)
        .await?;
    let client = if source.ca_pem.is_empty() {
        GitHubClient::new(source, &creds, SOURCE_TIMEOUT)
    } else {
        GitHubClient::with_root_ca(source, &creds, SOURCE_TIMEOUT, source.ca_pem.as_bytes())
    }
    .map_err(|e| ToolError(e.to_string()))?;
    drop(creds);
    let gh = |e: warden_sources::github::SourceError| ToolError(e.to_string());
    let repo = repository(&client, a)?;
    let mut text = String::new();
    let rows;
    match name {
        "read_file" => {
            let path = a.required("path")?;
            match client
                .read_file(repo, path, a.str("ref")?)
                .await
                .map_err(gh)?
            {
                Contents::File(f) => {
                    rows = 1;
                    let _ = writeln!(
                        text,
                        "{}:{} at {} (blob {}, {} bytes):",
                        f.repository,
                        f.path,
                        f.git_ref.as_deref().unwrap_or("the default branch"),
                        f.sha,
                        f.size
                    );
                    text.push_str(&f.text);
                    if f.truncated {
                        text.push_str("\n[file cut; read a narrower part with search_code]");
                    }
                }
                Contents::Directory(d) => {
                    rows = d.entries.len();
                    let _ = writeln!(text, "{}:{} is a directory:", d.repository, d.path);
                    for e in &d.entries {
                        let _ = writeln!(text, "{:?} {} ({} bytes)", e.kind, e.path, e.size);
                    }
                }
            }
        }
        "search_code" => {
            let r = client
                .search_code(
                    repo,
                    a.required("query")?,
                    a.limit("limit", 10, 20)? as usize,
                )
                .await
                .map_err(gh)?;
            rows = r.matches.len();
            let _ = writeln!(
                text,
                "{} matches in {} for {:?}:",
                r.total_count, r.repository, r.query
            );
            for m in &r.matches {
                let _ = writeln!(text, "{}:", m.path);
                for f in &m.fragments {
                    let _ = writeln!(text, "    {}", f.replace('\n', "\n    "));
                }
            }
            if r.truncated || r.incomplete {
                text.push_str("[more matches than shown; narrow the query]\n");
            }
        }
        "show_commit" => {
            let c = client.commit(repo, a.required("sha")?).await.map_err(gh)?;
            rows = 1 + c.files.len();
            let _ = writeln!(
                text,
                "commit {} by {} on {}\n{}",
                c.summary.sha, c.summary.author, c.summary.date, c.summary.message
            );
            changes(&mut text, &c.files, c.files_truncated);
        }
        "compare_refs" => {
            let c = client
                .compare(repo, a.required("base")?, a.required("head")?)
                .await
                .map_err(gh)?;
            rows = c.commits.len() + c.files.len();
            let _ = writeln!(
                text,
                "{}...{}: {} ({} ahead, {} behind, {} commits)",
                c.base, c.head, c.status, c.ahead_by, c.behind_by, c.total_commits
            );
            for s in &c.commits {
                let first = s.message.lines().next().unwrap_or("");
                let _ = writeln!(
                    text,
                    "{} {} {} {}",
                    &s.sha[..s.sha.len().min(12)],
                    s.date,
                    s.author,
                    first
                );
            }
            if c.commits_truncated {
                text.push_str("[more commits than shown]\n");
            }
            changes(&mut text, &c.files, c.files_truncated);
        }
        other => return Err(format!("{other} is not a code tool").into()),
    }
    Ok(Found { text, rows })
}
