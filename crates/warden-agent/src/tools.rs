//! The platform's tools: the only things an agent can do. Each reads from storage for
//! the run's own tenant, or records a proposal. There is no tool that reaches a network.

use serde_json::{Value, json};
use tonic::transport::Channel;
use warden_proto::common::v1::DataType;
use warden_proto::gateway::v1::ToolDefinition;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::run_store_client::RunStoreClient;
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::telemetry_query_client::TelemetryQueryClient;

/// The tool definitions offered to the model.
pub(crate) fn definitions() -> Vec<ToolDefinition> {
    let query = |name: &str, what: &str| ToolDefinition {
        name: name.to_owned(),
        description: format!("Search the tenant's {what}. Returns at most `limit` recent records."),
        input_schema_json: json!({
            "type": "object",
            "properties": {
                "service": {"type": "string", "description": "service name, or * for all"},
                "contains": {"type": "string", "description": "substring to match"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200}
            },
            "required": ["service"]
        })
        .to_string(),
    };
    vec![
        query("query_logs", "logs"),
        query("query_metrics", "metrics"),
        query("query_traces", "traces"),
        query("query_cluster", "Kubernetes cluster information"),
        ToolDefinition {
            name: "propose_change".into(),
            description: "Propose a change to the customer's system (config change or code fix). It is stored for a human reviewer; nothing is applied.".into(),
            input_schema_json: json!({
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["config_change", "code_fix"]},
                    "title": {"type": "string"},
                    "body": {"type": "string"}
                },
                "required": ["kind", "title", "body"]
            })
            .to_string(),
        },
    ]
}

/// What running a tool gave: text for the model, and the data type that text carries.
pub(crate) struct ToolOutput {
    pub text: String,
    pub data_type: DataType,
    pub is_error: bool,
}

impl ToolOutput {
    fn error(msg: impl Into<String>) -> ToolOutput {
        ToolOutput {
            text: msg.into(),
            data_type: DataType::Instruction,
            is_error: true,
        }
    }
}

/// Runs one tool call. Bad arguments become an error message to the model, never a crash.
pub(crate) async fn run(
    telemetry: &TelemetryQueryClient<Channel>,
    runs: &RunStoreClient<Channel>,
    tenant_id: &str,
    run_id: &str,
    name: &str,
    arguments_json: &str,
) -> ToolOutput {
    let args: Value = match serde_json::from_str(arguments_json) {
        Ok(v @ Value::Object(_)) => v,
        _ => return ToolOutput::error(format!("tool {name}: arguments must be a JSON object")),
    };
    let data_type = match name {
        "query_logs" => DataType::Logs,
        "query_metrics" => DataType::Metrics,
        "query_traces" => DataType::Traces,
        "query_cluster" => DataType::ClusterInfo,
        "propose_change" => return propose(runs, tenant_id, run_id, &args).await,
        other => {
            return ToolOutput::error(format!(
                "unknown tool {other:?}; available: query_logs, query_metrics, query_traces, query_cluster, propose_change"
            ));
        }
    };
    let service = args.get("service").and_then(Value::as_str).unwrap_or("*");
    let contains = args.get("contains").and_then(Value::as_str).unwrap_or("");
    let limit = args
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(50)
        .clamp(1, 200) as u32;
    // Minimal bridge to warden.telemetry.v1 (the tool set is being rewritten): logs only.
    if data_type != DataType::Logs {
        return ToolOutput::error(format!("tool {name} is not available yet"));
    }
    let mut client = telemetry.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let q = tm::QueryLogsRequest {
        tenant_id: tenant_id.to_owned(),
        window: Some(tm::Window {
            since: Some(at(now - 24 * 3600)),
            until: Some(at(now + 60)),
        }),
        service: if service == "*" {
            String::new()
        } else {
            service.to_owned()
        },
        contains: contains.to_owned(),
        limit,
        ..Default::default()
    };
    match client.query_logs(q).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            let mut text = resp
                .records
                .iter()
                .map(|r| r.body.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            if text.is_empty() {
                text = "no matching records".into();
            }
            if resp.truncated {
                text.push_str("\n[more records matched; narrow the query]");
            }
            ToolOutput {
                text,
                data_type,
                is_error: false,
            }
        }
        Err(s) => ToolOutput::error(format!("tool {name} failed: {}", s.message())),
    }
}

async fn propose(
    runs: &RunStoreClient<Channel>,
    tenant_id: &str,
    run_id: &str,
    args: &Value,
) -> ToolOutput {
    let field = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (kind, title, body) = (field("kind"), field("title"), field("body"));
    if !matches!(kind.as_str(), "config_change" | "code_fix") || title.is_empty() || body.is_empty()
    {
        return ToolOutput::error(
            "propose_change needs kind (config_change or code_fix), title and body",
        );
    }
    let mut client = runs.clone();
    let req = st::CreateProposalRequest {
        tenant_id: tenant_id.to_owned(),
        run_id: run_id.to_owned(),
        kind,
        title,
        body,
    };
    match client.create_proposal(req).await {
        Ok(p) => ToolOutput {
            text: format!(
                "proposal {} recorded; it awaits a human reviewer and will not be applied automatically",
                p.into_inner().id
            ),
            data_type: DataType::Instruction,
            is_error: false,
        },
        Err(s) => ToolOutput::error(format!("proposal could not be recorded: {}", s.message())),
    }
}
