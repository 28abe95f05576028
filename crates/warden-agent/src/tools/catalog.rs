//! Which tools a run may offer and call: a pure decision over the tenant's settings at
//! that moment. One tool (or a few) per data type; a tool is offered only when the
//! tenant allows its data type (source code also needs the GitHub integration on and a
//! repository mapping), so a model never sees a tool it could not use.

use serde_json::{Value, json};
use warden_policy::{DataType, TenantSettings, data_type_gate};

/// Where the metrics tools read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSource {
    /// Storage's own metric store (OTLP ingest).
    Embedded,
    /// The tenant's Prometheus-compatible HTTP API, queried with PromQL.
    Prometheus,
}

/// What the tool decision needs to know about a tenant, as plain data.
#[derive(Debug, Clone)]
pub struct ToolAccess {
    pub settings: TenantSettings,
    pub metrics: MetricsSource,
    /// A GitHub source with at least one repository is configured.
    pub github_source: bool,
}

/// One tool as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    /// The data type its results carry (`Instruction` for tools that read nothing).
    pub data_type: DataType,
    pub description: &'static str,
    pub schema: Value,
}

/// The time arguments every query tool takes.
fn window_props() -> Value {
    json!({
        "since": {"type": "string", "description": "start: RFC 3339 time, or an offset from the trigger time such as -30m or -2h. Default: the incident window's start."},
        "until": {"type": "string", "description": "end: RFC 3339 time, or an offset from the trigger time such as +10m. Default: the incident window's end."}
    })
}

fn object(mut props: Value, extra: Value, required: &[&str]) -> Value {
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

const SEVERITIES: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

fn specs(metrics: MetricsSource) -> Vec<ToolSpec> {
    let limit = |max: u32| json!({"type": "integer", "minimum": 1, "maximum": max});
    let repo = json!({"type": "string", "description": "the service whose repository to read (as telemetry names it), or owner/name of a mapped repository"});
    let mut v = vec![
        ToolSpec {
            name: "query_logs",
            data_type: DataType::Logs,
            description: "Log records of the tenant, newest first, in a time window (default: the incident window). Filter by service, minimum severity, text and resource attributes.",
            schema: object(
                window_props(),
                json!({
                    "service": {"type": "string", "description": "service.name; omit for all services"},
                    "min_severity": {"type": "string", "enum": SEVERITIES},
                    "contains": {"type": "string", "description": "case-insensitive text the body must contain"},
                    "resource": {"type": "object", "additionalProperties": {"type": "string"}, "description": "exact resource attribute matches, e.g. {\"k8s.namespace.name\": \"shop\"}"},
                    "limit": limit(200)
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "log_patterns",
            data_type: DataType::Logs,
            description: "Log records grouped into templates with counts, compared with the equally long window just before: new and grown patterns first. The quickest way to see what changed.",
            schema: object(
                window_props(),
                json!({
                    "service": {"type": "string"},
                    "min_severity": {"type": "string", "enum": SEVERITIES},
                    "limit": limit(100)
                }),
                &[],
            ),
        },
    ];
    match metrics {
        MetricsSource::Embedded => v.extend([
            ToolSpec {
                name: "list_metrics",
                data_type: DataType::Metrics,
                description: "Metric names with kind, unit and number of series, in a window.",
                schema: object(window_props(), json!({
                    "service": {"type": "string"},
                    "name_prefix": {"type": "string"},
                    "limit": limit(200)
                }), &[]),
            },
            ToolSpec {
                name: "query_metrics",
                data_type: DataType::Metrics,
                description: "Series of one metric over a window, filtered by label matchers, aggregated (avg, rate, p95, max, min, sum; default: rate for counters, avg for gauges, p95 for histograms) and downsampled.",
                schema: object(window_props(), json!({
                    "name": {"type": "string"},
                    "matchers": {"type": "array", "items": {"type": "object", "properties": {
                        "label": {"type": "string"},
                        "op": {"type": "string", "enum": ["=", "!=", "=~", "!~"]},
                        "value": {"type": "string"}
                    }, "required": ["label", "value"]}},
                    "aggregation": {"type": "string", "enum": ["avg", "rate", "p95", "max", "min", "sum"]},
                    "max_points": limit(120),
                    "max_series": limit(50)
                }), &["name"]),
            },
        ]),
        MetricsSource::Prometheus => v.extend([
            ToolSpec {
                name: "list_metrics",
                data_type: DataType::Metrics,
                description: "Metric names in the tenant's Prometheus, in a window.",
                schema: object(window_props(), json!({
                    "name_prefix": {"type": "string"},
                    "limit": limit(200)
                }), &[]),
            },
            ToolSpec {
                name: "query_metrics",
                data_type: DataType::Metrics,
                description: "Evaluate a PromQL expression over a window in the tenant's Prometheus (a range query), e.g. sum by (service) (rate(http_requests_total{code=~\"5..\"}[5m])).",
                schema: object(window_props(), json!({
                    "promql": {"type": "string"},
                    "max_points": limit(120)
                }), &["promql"]),
            },
        ]),
    }
    v.extend([
        ToolSpec {
            name: "find_traces",
            data_type: DataType::Traces,
            description: "The slowest or the failed traces of a service in a window.",
            schema: object(window_props(), json!({
                "service": {"type": "string"},
                "order": {"type": "string", "enum": ["slowest", "failed"]},
                "limit": limit(50)
            }), &[]),
        },
        ToolSpec {
            name: "get_trace",
            data_type: DataType::Traces,
            description: "One trace as a span tree, by its id (32 hex characters).",
            schema: object(json!({}), json!({"trace_id": {"type": "string"}}), &["trace_id"]),
        },
        ToolSpec {
            name: "top_functions",
            data_type: DataType::Profiles,
            description: "The functions using the most of a resource (cpu, alloc_space, ...) in a service's profiles over a window, by self and by total value.",
            schema: object(window_props(), json!({
                "service": {"type": "string"},
                "sample_type": {"type": "string"},
                "limit": limit(50)
            }), &["service"]),
        },
        ToolSpec {
            name: "query_cluster",
            data_type: DataType::ClusterInfo,
            description: "Kubernetes objects (latest state) and events, by namespace, kind and name.",
            schema: object(window_props(), json!({
                "namespace": {"type": "string"},
                "kind": {"type": "string", "description": "e.g. Deployment, Pod, Node, Event"},
                "name": {"type": "string"},
                "limit": limit(100)
            }), &[]),
        },
        ToolSpec {
            name: "query_config",
            data_type: DataType::ConfigMetadata,
            description: "Configuration snapshots (ConfigMaps, Helm values) with the diff from the previous one; secret values are shown only as digests.",
            schema: object(window_props(), json!({
                "namespace": {"type": "string"},
                "kind": {"type": "string"},
                "name": {"type": "string"},
                "limit": limit(20)
            }), &[]),
        },
        ToolSpec {
            name: "read_file",
            data_type: DataType::SourceCode,
            description: "A file of a service's repository at a ref (default: the mapped default branch).",
            schema: object(json!({}), json!({
                "repository": repo, "path": {"type": "string"}, "ref": {"type": "string"}
            }), &["repository", "path"]),
        },
        ToolSpec {
            name: "search_code",
            data_type: DataType::SourceCode,
            description: "Search the code of a service's repository.",
            schema: object(json!({}), json!({
                "repository": repo, "query": {"type": "string"}, "limit": limit(20)
            }), &["repository", "query"]),
        },
        ToolSpec {
            name: "show_commit",
            data_type: DataType::SourceCode,
            description: "A commit of a service's repository: message, author and the diff.",
            schema: object(json!({}), json!({
                "repository": repo, "sha": {"type": "string"}
            }), &["repository", "sha"]),
        },
        ToolSpec {
            name: "compare_refs",
            data_type: DataType::SourceCode,
            description: "The commits and diff between two refs (e.g. the previous and the new deployment's versions).",
            schema: object(json!({}), json!({
                "repository": repo, "base": {"type": "string"}, "head": {"type": "string"}
            }), &["repository", "base", "head"]),
        },
        ToolSpec {
            name: "propose_change",
            data_type: DataType::Instruction,
            description: "Propose one exact change to the customer's system: a code fix or a configuration change as a unified diff against files of a mapped repository at the branch head you read, or a JSON / strategic-merge patch against a Kubernetes object at the resourceVersion you read; or a runbook action. Give the rationale; the evidence is taken from this investigation's records. It is stored for a human reviewer, who may release it as a pull request; nothing is applied automatically.",
            schema: super::propose::schema(),
        },
    ]);
    v
}

/// May a tool be called for this tenant right now? `Ok` with the data type its result
/// carries, or the reason it may not, as a sentence for the model and the run's record.
pub fn decide(access: &ToolAccess, tool: &str) -> Result<ToolSpec, String> {
    let Some(spec) = specs(access.metrics).into_iter().find(|s| s.name == tool) else {
        return Err(format!("there is no tool named {tool:?}"));
    };
    if !access.settings.enabled {
        return Err(format!(
            "AI features are disabled for tenant {}",
            access.settings.tenant_id
        ));
    }
    data_type_gate(&access.settings, spec.data_type).map_err(|d| d.message)?;
    if spec.data_type == DataType::SourceCode && !access.github_source {
        return Err(format!(
            "tenant {} has not connected a GitHub installation with repositories",
            access.settings.tenant_id
        ));
    }
    Ok(spec)
}

/// The tools offered to the model: exactly those [`decide`] allows.
pub fn offered(access: &ToolAccess) -> Vec<ToolSpec> {
    specs(access.metrics)
        .into_iter()
        .filter(|s| decide(access, s.name).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(types: &[DataType], github: bool) -> ToolAccess {
        ToolAccess {
            settings: TenantSettings {
                tenant_id: "t".into(),
                enabled: true,
                allowed_data_types: types.iter().copied().collect(),
                github_integration: github,
                ..Default::default()
            },
            metrics: MetricsSource::Embedded,
            github_source: true,
        }
    }

    fn names(a: &ToolAccess) -> Vec<&'static str> {
        offered(a).iter().map(|s| s.name).collect()
    }

    #[test]
    fn a_logs_only_tenant_is_offered_log_tools_and_proposals_only() {
        let a = access(&[DataType::Logs], false);
        assert_eq!(names(&a), ["query_logs", "log_patterns", "propose_change"]);
        let refusal = decide(&a, "query_metrics").unwrap_err();
        assert!(refusal.contains("metrics"), "{refusal}");
    }

    #[test]
    fn code_tools_need_the_data_type_the_integration_and_a_source() {
        let mut a = access(&[DataType::SourceCode], false);
        assert!(!names(&a).contains(&"read_file"));
        a.settings.github_integration = true;
        assert!(names(&a).contains(&"read_file"));
        a.github_source = false;
        assert!(!names(&a).contains(&"read_file"));
        assert!(decide(&a, "search_code").unwrap_err().contains("GitHub"));
    }

    #[test]
    fn a_disabled_tenant_gets_no_tool() {
        let mut a = access(&DataType::TELEMETRY, true);
        a.settings.enabled = false;
        assert!(offered(&a).is_empty());
    }

    #[test]
    fn prometheus_replaces_the_embedded_metric_tools() {
        let mut a = access(&[DataType::Metrics], false);
        a.metrics = MetricsSource::Prometheus;
        let q = offered(&a)
            .into_iter()
            .find(|s| s.name == "query_metrics")
            .unwrap();
        assert_eq!(q.schema["required"], json!(["promql"]));
    }

    #[test]
    fn every_schema_is_an_object_schema_with_known_required_fields() {
        for s in specs(MetricsSource::Embedded)
            .into_iter()
            .chain(specs(MetricsSource::Prometheus))
        {
            assert_eq!(s.schema["type"], "object", "{}", s.name);
            let props = s.schema["properties"].as_object().unwrap();
            for r in s.schema["required"].as_array().unwrap() {
                assert!(props.contains_key(r.as_str().unwrap()), "{}: {r}", s.name);
            }
        }
    }
}
