//! Tools over storage's telemetry store: one request per call, for the run's tenant and
//! window only, rendered as compact text lines the model can cite.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use prost_types::Timestamp;
use tonic::transport::Channel;
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::telemetry_query_client::TelemetryQueryClient;

use super::args::{Args, severity_name};
use super::window::{Window, ms_of, rfc3339, timestamp};
use super::{Found, ToolError};

fn ms(t: &Option<Timestamp>) -> i64 {
    ms_of(t.as_ref())
}

fn window(w: Window) -> Option<tm::Window> {
    Some(tm::Window {
        since: timestamp(w.since_ms),
        until: timestamp(w.until_ms),
    })
}

fn labels(m: &std::collections::HashMap<String, String>) -> String {
    let sorted: BTreeMap<_, _> = m.iter().collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn truncated(text: &mut String, cut: bool) {
    if cut {
        text.push_str("[more matched than shown; narrow the query]\n");
    }
}

/// Runs one telemetry tool. `tool` is one the catalogue allowed.
pub(crate) async fn run(
    client: &TelemetryQueryClient<Channel>,
    tenant_id: &str,
    tool: &str,
    a: &Args<'_>,
    w: Window,
) -> Result<Found, ToolError> {
    let mut c = client.clone();
    let tenant_id = tenant_id.to_owned();
    let mut text = String::new();
    let rows;
    match tool {
        "query_logs" => {
            let r = c
                .query_logs(tm::QueryLogsRequest {
                    tenant_id,
                    window: window(w),
                    service: a.string("service")?,
                    min_severity: a.severity("min_severity")?,
                    contains: a.string("contains")?,
                    resource: a.string_map("resource")?,
                    limit: a.limit("limit", 50, 200)?,
                })
                .await?
                .into_inner();
            rows = r.records.len();
            for l in &r.records {
                let _ = write!(
                    text,
                    "{} {} {} {}",
                    rfc3339(ms(&l.time)),
                    l.service,
                    severity_name(l.severity_number),
                    l.body
                );
                if !l.trace_id.is_empty() {
                    let _ = write!(text, " trace_id={}", l.trace_id);
                }
                text.push('\n');
            }
            truncated(&mut text, r.truncated);
        }
        "log_patterns" => {
            let r = c
                .log_patterns(tm::LogPatternsRequest {
                    tenant_id,
                    window: window(w),
                    service: a.string("service")?,
                    min_severity: a.severity("min_severity")?,
                    limit: a.limit("limit", 30, 100)?,
                    ..Default::default()
                })
                .await?
                .into_inner();
            rows = r.patterns.len();
            let _ = writeln!(
                text,
                "{} records in the window, {} in the baseline window before it (count / baseline / max severity / services / template):",
                r.records, r.baseline_records
            );
            for p in &r.patterns {
                let _ = writeln!(
                    text,
                    "{} / {} / {} / {} / {}",
                    p.count,
                    p.baseline_count,
                    severity_name(p.max_severity),
                    p.services.join(","),
                    p.template
                );
            }
            truncated(&mut text, r.truncated);
        }
        "list_metrics" => {
            let r = c
                .list_metrics(tm::ListMetricsRequest {
                    tenant_id,
                    window: window(w),
                    service: a.string("service")?,
                    name_prefix: a.string("name_prefix")?,
                    limit: a.limit("limit", 100, 200)?,
                })
                .await?
                .into_inner();
            rows = r.metrics.len();
            for m in &r.metrics {
                let _ = writeln!(
                    text,
                    "{} ({}, unit {:?}, {} series) {}",
                    m.name, m.kind, m.unit, m.series, m.description
                );
            }
            truncated(&mut text, r.truncated);
        }
        "query_metrics" => {
            let r = c
                .query_metrics(tm::QueryMetricsRequest {
                    tenant_id,
                    window: window(w),
                    name: a.required("name")?.to_owned(),
                    matchers: matchers(a)?,
                    aggregation: aggregation(a)? as i32,
                    max_points: a.limit("max_points", 60, 120)?,
                    max_series: a.limit("max_series", 10, 50)?,
                })
                .await?
                .into_inner();
            rows = r.series.len();
            let agg = tm::Aggregation::try_from(r.aggregation)
                .map(|a| {
                    a.as_str_name()
                        .trim_start_matches("AGGREGATION_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            let _ = writeln!(
                text,
                "{} ({}, unit {:?}) {agg} per {}s:",
                r.name,
                r.kind,
                r.unit,
                r.step_ms / 1000
            );
            for s in &r.series {
                let _ = write!(text, "{{{}}}", labels(&s.labels));
                for p in &s.points {
                    let _ = write!(text, " {}={:.4}", rfc3339(ms(&p.time)), p.value);
                }
                text.push('\n');
            }
            truncated(&mut text, r.truncated);
        }
        "find_traces" => {
            let order = match a.str("order")? {
                None | Some("slowest") => tm::TraceOrder::Slowest,
                Some("failed") => tm::TraceOrder::Failed,
                Some(o) => return Err(format!("order {o:?} is not slowest or failed").into()),
            };
            let r = c
                .find_traces(tm::FindTracesRequest {
                    tenant_id,
                    window: window(w),
                    service: a.string("service")?,
                    order: order as i32,
                    limit: a.limit("limit", 10, 50)?,
                })
                .await?
                .into_inner();
            rows = r.traces.len();
            for t in &r.traces {
                let _ = write!(
                    text,
                    "trace {} {} {} {} {}ms spans={} errors={}",
                    t.trace_id,
                    rfc3339(ms(&t.start)),
                    t.root_service,
                    t.root_name,
                    t.duration_us / 1000,
                    t.spans,
                    t.error_spans
                );
                if !t.first_error.is_empty() {
                    let _ = write!(text, " first_error={:?}", t.first_error);
                }
                text.push('\n');
            }
            truncated(&mut text, r.truncated);
        }
        "get_trace" => {
            let r = c
                .get_trace(tm::GetTraceRequest {
                    tenant_id,
                    trace_id: a.required("trace_id")?.to_owned(),
                })
                .await?
                .into_inner();
            rows = r.spans.len();
            for s in &r.spans {
                let _ = write!(
                    text,
                    "{}{} {} {} {}us{}",
                    "  ".repeat(s.depth as usize),
                    s.service,
                    s.name,
                    s.kind,
                    s.duration_us,
                    if s.error { " ERROR" } else { "" }
                );
                if !s.status_message.is_empty() {
                    let _ = write!(text, " {:?}", s.status_message);
                }
                if !s.attributes.is_empty() {
                    let _ = write!(text, " {{{}}}", labels(&s.attributes));
                }
                text.push('\n');
            }
            truncated(&mut text, r.truncated);
        }
        "top_functions" => {
            let r = c
                .top_functions(tm::TopFunctionsRequest {
                    tenant_id,
                    window: window(w),
                    service: a.required("service")?.to_owned(),
                    sample_type: a.string("sample_type")?,
                    limit: a.limit("limit", 15, 50)?,
                })
                .await?
                .into_inner();
            rows = r.by_self.len() + r.by_total.len();
            let _ = writeln!(
                text,
                "{} profiles, {} total {} {}; by self:",
                r.profiles, r.sample_type, r.total, r.unit
            );
            for f in &r.by_self {
                let _ = writeln!(
                    text,
                    "{:.1}% self {:.1}% total {} ({})",
                    f.self_share * 100.0,
                    f.total_share * 100.0,
                    f.function,
                    f.file
                );
            }
            text.push_str("by total:\n");
            for f in &r.by_total {
                let _ = writeln!(
                    text,
                    "{:.1}% total {:.1}% self {}",
                    f.total_share * 100.0,
                    f.self_share * 100.0,
                    f.function
                );
            }
        }
        "query_cluster" => {
            let r = c
                .query_cluster(tm::QueryClusterRequest {
                    tenant_id,
                    window: window(w),
                    namespace: a.string("namespace")?,
                    kind: a.string("kind")?,
                    name: a.string("name")?,
                    limit: a.limit("limit", 30, 100)?,
                })
                .await?
                .into_inner();
            rows = r.objects.len() + r.events.len();
            for o in &r.objects {
                let _ = writeln!(
                    text,
                    "{} {}/{} observed {}: {}",
                    o.kind,
                    o.namespace,
                    o.name,
                    rfc3339(ms(&o.observed)),
                    o.json
                );
            }
            for e in &r.events {
                let _ = writeln!(
                    text,
                    "event {} {} {} {} {}/{} x{}: {}",
                    rfc3339(ms(&e.time)),
                    e.namespace,
                    e.r#type,
                    e.reason,
                    e.involved_kind,
                    e.involved_name,
                    e.count,
                    e.message
                );
            }
            truncated(&mut text, r.truncated);
        }
        "query_config" => {
            let r = c
                .query_config(tm::QueryConfigRequest {
                    tenant_id,
                    window: window(w),
                    namespace: a.string("namespace")?,
                    kind: a.string("kind")?,
                    name: a.string("name")?,
                    limit: a.limit("limit", 5, 20)?,
                })
                .await?
                .into_inner();
            rows = r.snapshots.len();
            for s in &r.snapshots {
                let _ = writeln!(
                    text,
                    "{} {}/{} observed {}:\n{}",
                    s.kind,
                    s.namespace,
                    s.name,
                    rfc3339(ms(&s.observed)),
                    s.content
                );
                if !s.diff_from_previous.is_empty() {
                    let _ = writeln!(
                        text,
                        "diff from the previous snapshot:\n{}",
                        s.diff_from_previous
                    );
                }
            }
            truncated(&mut text, r.truncated);
        }
        other => return Err(format!("{other} is not a telemetry tool").into()),
    }
    Ok(Found { text, rows })
}

fn matchers(a: &Args<'_>) -> Result<Vec<tm::LabelMatcher>, String> {
    use tm::label_matcher::Op;
    let Some(v) = a.0.get("matchers") else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or("matchers must be an array of {label, op, value}")?;
    items
        .iter()
        .map(|m| {
            let field = |k: &str| m.get(k).and_then(|v| v.as_str());
            let op = match field("op").unwrap_or("=") {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "=~" => Op::Re,
                "!~" => Op::Nre,
                o => return Err(format!("matcher op {o:?} is not one of =, !=, =~, !~")),
            };
            Ok(tm::LabelMatcher {
                label: field("label")
                    .ok_or("each matcher needs a label")?
                    .to_owned(),
                op: op as i32,
                value: field("value")
                    .ok_or("each matcher needs a value")?
                    .to_owned(),
            })
        })
        .collect()
}

fn aggregation(a: &Args<'_>) -> Result<tm::Aggregation, String> {
    Ok(match a.str("aggregation")? {
        None => tm::Aggregation::Unspecified,
        Some("avg") => tm::Aggregation::Avg,
        Some("rate") => tm::Aggregation::Rate,
        Some("p95") => tm::Aggregation::P95,
        Some("max") => tm::Aggregation::Max,
        Some("min") => tm::Aggregation::Min,
        Some("sum") => tm::Aggregation::Sum,
        Some(o) => {
            return Err(format!(
                "aggregation {o:?} is not one of avg, rate, p95, max, min, sum"
            ));
        }
    })
}
