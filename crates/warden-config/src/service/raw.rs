//! A service config as serde reads it: unknown keys refused, every value spanned so each
//! semantic check can point at its line.

use serde::Deserialize;
use toml::Spanned;

use super::ServiceKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub service: Option<Spanned<String>>,
    pub listen: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    pub max_message_bytes: Option<Spanned<u64>>,
    pub shutdown_deadline_secs: Option<Spanned<u64>>,
    pub tls: Option<Spanned<RawTls>>,
    // storage
    pub database: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub audit_reconcile_after_secs: Option<Spanned<u64>>,
    pub ingest: Option<Spanned<RawIngest>>,
    pub audit_log_key_file: Option<Spanned<String>>,
    pub audit_log_origin: Option<Spanned<String>>,
    pub audit_checkpoint_file: Option<Spanned<String>>,
    pub audit_checkpoint_url: Option<Spanned<String>>,
    // gateway and agent
    pub storage: Option<Spanned<String>>,
    // gateway
    pub providers: Option<Spanned<String>>,
    pub http_listen: Option<Spanned<String>>,
    // agent
    pub gateway: Option<Spanned<String>>,
    pub lookback_secs: Option<Spanned<u64>>,
    pub tool_result_max_bytes: Option<Spanned<u64>>,
    pub runs: Option<Spanned<RawRuns>>,
    pub budget: Option<Spanned<RawBudget>>,
    pub webhooks: Option<Spanned<RawWebhooks>>,
    pub anomaly: Option<Spanned<RawAnomaly>>,
    pub sandbox: Option<Spanned<RawSandbox>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    pub grpc_listen: Option<Spanned<String>>,
    pub http_listen: Option<Spanned<String>>,
    pub max_request_bytes: Option<Spanned<u64>>,
    pub max_in_flight: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuns {
    pub workers: Option<Spanned<u32>>,
    pub lease_secs: Option<Spanned<u64>>,
    pub max_queued_per_tenant: Option<Spanned<u32>>,
    pub max_running_per_tenant: Option<Spanned<u32>>,
    pub max_started_per_minute_per_tenant: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub max_steps: Option<Spanned<u32>>,
    pub max_wall_secs: Option<Spanned<u64>>,
    pub max_tool_calls: Option<Spanned<u32>>,
    pub max_input_tokens: Option<Spanned<u64>>,
    pub max_output_tokens: Option<Spanned<u64>>,
    pub max_bytes_per_data_type: Option<Spanned<u64>>,
    pub model_context_tokens: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    pub listen: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<u64>>,
    pub cluster_event_window_secs: Option<Spanned<u64>>,
    pub cluster_event_reasons: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomaly {
    pub interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub isolation: Option<Spanned<String>>,
    pub worker: Option<Spanned<String>>,
    pub memory_mb: Option<Spanned<u64>>,
    pub cpu_secs: Option<Spanned<u64>>,
    pub min_landlock_abi: Option<Spanned<u64>>,
    pub require_seccomp: Option<bool>,
    pub require_network_namespace: Option<bool>,
    pub accept_weaker: Option<bool>,
}

/// Which services a top-level key configures; `None` for a key that is not in the schema
/// (nor `service`, which says which one the file is for).
pub fn owners(key: &str) -> Option<&'static [ServiceKind]> {
    use ServiceKind::{Agent, Gateway, Storage};
    Some(match key {
        "listen" | "metrics_listen" | "max_message_bytes" | "shutdown_deadline_secs" | "tls" => {
            &ServiceKind::ALL
        }
        "database"
        | "key_file"
        | "audit_reconcile_after_secs"
        | "ingest"
        | "audit_log_key_file"
        | "audit_log_origin"
        | "audit_checkpoint_file"
        | "audit_checkpoint_url" => &[Storage],
        "storage" => &[Gateway, Agent],
        "providers" | "http_listen" => &[Gateway],
        "gateway"
        | "lookback_secs"
        | "tool_result_max_bytes"
        | "runs"
        | "budget"
        | "webhooks"
        | "anomaly"
        | "sandbox" => &[Agent],
        _ => return None,
    })
}
