//! Between the wire and the pure crates: proto settings ↔ policy settings, and a
//! `CompleteRequest` → a validated request whose every part has a known data type.
//!
//! Everything a caller can get wrong is caught here and named by field path, so the
//! pipeline after it only sees well-formed data.

use std::collections::BTreeSet;

use warden_policy::{
    Budgets, CustomerBedrock, CustomerCredentials, DataType, OnDisallowedData, TenantSettings,
};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_providers::{ChatRequest, Content, Message, MessageRole, ToolDef};

/// The largest number of messages and tools one request may carry.
const MAX_MESSAGES: usize = 1024;
const MAX_TOOLS: usize = 128;
const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1024;
/// Tool names (definitions and calls), as the providers accept them.
const MAX_TOOL_NAME_BYTES: usize = 64;
/// Tool-call ids and tool results' `tool_call_id`s: providers issue ids of about 30 bytes.
const MAX_TOOL_ID_BYTES: usize = 256;
const MAX_TOOL_DESCRIPTION_BYTES: usize = 16 * 1024;
const MAX_TOOL_SCHEMA_BYTES: usize = 64 * 1024;

pub fn data_type_from_proto(v: i32) -> Result<DataType, String> {
    match pb::DataType::try_from(v) {
        Ok(pb::DataType::Instruction) => Ok(DataType::Instruction),
        Ok(pb::DataType::Logs) => Ok(DataType::Logs),
        Ok(pb::DataType::Metrics) => Ok(DataType::Metrics),
        Ok(pb::DataType::Traces) => Ok(DataType::Traces),
        Ok(pb::DataType::Profiles) => Ok(DataType::Profiles),
        Ok(pb::DataType::ConfigMetadata) => Ok(DataType::ConfigMetadata),
        Ok(pb::DataType::ClusterInfo) => Ok(DataType::ClusterInfo),
        Ok(pb::DataType::SourceCode) => Ok(DataType::SourceCode),
        Ok(pb::DataType::Unspecified) => Err("data_type is required (e.g. DATA_TYPE_LOGS)".into()),
        Err(_) => Err(format!(
            "unknown data_type value {v}; valid: INSTRUCTION, LOGS, METRICS, TRACES, PROFILES, CONFIG_METADATA, CLUSTER_INFO, SOURCE_CODE"
        )),
    }
}

pub fn data_type_to_proto(d: DataType) -> pb::DataType {
    match d {
        DataType::Instruction => pb::DataType::Instruction,
        DataType::Logs => pb::DataType::Logs,
        DataType::Metrics => pb::DataType::Metrics,
        DataType::Traces => pb::DataType::Traces,
        DataType::Profiles => pb::DataType::Profiles,
        DataType::ConfigMetadata => pb::DataType::ConfigMetadata,
        DataType::ClusterInfo => pb::DataType::ClusterInfo,
        DataType::SourceCode => pb::DataType::SourceCode,
    }
}

/// Proto settings → policy settings. Fails on values Warden does not know, naming them.
pub fn settings_from_proto(s: &pb::TenantSettings) -> Result<TenantSettings, String> {
    let mut allowed = BTreeSet::new();
    for (i, v) in s.allowed_data_types.iter().enumerate() {
        let dt = data_type_from_proto(*v).map_err(|e| format!("allowed_data_types[{i}]: {e}"))?;
        allowed.insert(dt);
    }
    let customer_bedrock = match &s.customer_bedrock {
        None => None,
        Some(cb) => {
            let credentials = match &cb.credentials {
                Some(pb::customer_bedrock::Credentials::AssumeRole(a)) => {
                    if !a.role_arn.starts_with("arn:") {
                        return Err("customer_bedrock.assume_role.role_arn must be an IAM role ARN (arn:aws:iam::...)".into());
                    }
                    // external_id is storage's to generate: empty in an Admin request,
                    // always set in stored settings (the gateway refuses a role without it).
                    CustomerCredentials::AssumeRole {
                        role_arn: a.role_arn.clone(),
                        external_id: a.external_id.clone(),
                    }
                }
                Some(pb::customer_bedrock::Credentials::StaticCredentialsId(id))
                    if !id.is_empty() =>
                {
                    CustomerCredentials::StaticKeysRef {
                        credential_id: id.clone(),
                    }
                }
                _ => {
                    return Err(
                        "customer_bedrock needs assume_role or static_credentials_id (from Admin.PutCustomerCredentials)".into()
                    );
                }
            };
            if cb.region.is_empty() {
                return Err("customer_bedrock.region is required".into());
            }
            Some(CustomerBedrock {
                region: cb.region.clone(),
                credentials,
            })
        }
    };
    let on_disallowed_data = match pb::OnDisallowedData::try_from(s.on_disallowed_data) {
        Ok(pb::OnDisallowedData::Drop) => OnDisallowedData::Drop,
        Ok(_) => OnDisallowedData::Refuse,
        Err(_) => {
            return Err(format!(
                "unknown on_disallowed_data value {}",
                s.on_disallowed_data
            ));
        }
    };
    let b = s.budgets.clone().unwrap_or_default();
    let mut per_data_type = std::collections::BTreeMap::new();
    for (i, t) in b.data_type_budgets.iter().enumerate() {
        let at = format!("budgets.data_type_budgets[{i}]");
        let dt = data_type_from_proto(t.data_type).map_err(|e| format!("{at}.{e}"))?;
        if per_data_type.insert(dt, t.max_bytes).is_some() {
            return Err(format!(
                "{at}: a second budget for {dt}; give each data type at most one"
            ));
        }
    }
    Ok(TenantSettings {
        tenant_id: s.tenant_id.clone(),
        enabled: s.enabled,
        allowed_data_types: allowed,
        allowed_providers: s.allowed_providers.clone(),
        github_integration: s.github_integration,
        customer_bedrock,
        allow_platform_providers: s.allow_platform_providers,
        budgets: Budgets {
            max_request_bytes: b.max_request_bytes,
            max_bytes_per_data_type: b.max_bytes_per_data_type,
            per_data_type,
            max_output_tokens: b.max_output_tokens,
            max_requests_per_minute: b.max_requests_per_minute,
            max_concurrent_requests: b.max_concurrent_requests,
        },
        on_disallowed_data,
        pseudonymize: s.pseudonymize,
        redaction_rules: s.redaction_rules.clone(),
        version: s.version,
    })
}

/// Tenant ids are short printable identifiers (they appear in logs, metrics and audit).
pub fn check_tenant_id(tenant_id: &str) -> Result<(), String> {
    if tenant_id.is_empty() {
        return Err("tenant_id is required".into());
    }
    if tenant_id.len() > 128
        || !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "tenant_id must be 1 to 128 characters of letters, digits, '-', '_' or '.'".into(),
        );
    }
    Ok(())
}

/// One content part as minimization sees it: where it sits and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRef {
    pub message: usize,
    pub part: usize,
    pub data_type: DataType,
}

/// One part of the system prompt. Each keeps its own data type through gating, budgets and
/// the audit record; the parts that may leave are joined only after minimization.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemPart {
    pub data_type: DataType,
    pub text: String,
}

/// A request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub tenant_id: String,
    pub purpose: pb::Purpose,
    pub agent_run_id: String,
    pub preferred_provider: Option<String>,
    pub routing_profile: String,
    /// `chat.system` is empty here: the system prompt is `system`, part by part.
    pub chat: ChatRequest,
    /// For each entry of `chat.messages[m].content[p]` (text, tool call or tool result),
    /// its data type.
    pub parts: Vec<PartRef>,
    pub system: Vec<SystemPart>,
    pub data_types: BTreeSet<DataType>,
}

/// Validates and converts a `CompleteRequest`. Errors name the field.
pub fn validate(req: gw::CompleteRequest) -> Result<ValidRequest, String> {
    check_tenant_id(&req.tenant_id)?;
    let purpose = match pb::Purpose::try_from(req.purpose) {
        Ok(pb::Purpose::Unspecified) => {
            return Err("purpose is required: PURPOSE_ALERT, PURPOSE_ANOMALY, PURPOSE_DEPLOYMENT, PURPOSE_CLUSTER_EVENT or PURPOSE_USER_QUESTION".into());
        }
        Ok(p) => p,
        Err(_) => return Err(format!("unknown purpose value {}", req.purpose)),
    };
    if req.agent_run_id.len() > 128 {
        return Err("agent_run_id is longer than 128 bytes".into());
    }
    if req.messages.is_empty() {
        return Err("messages is empty: a completion needs at least one message".into());
    }
    if req.messages.len() > MAX_MESSAGES {
        return Err(format!(
            "{} messages; the limit is {MAX_MESSAGES}",
            req.messages.len()
        ));
    }
    if req.tools.len() > MAX_TOOLS {
        return Err(format!(
            "{} tools; the limit is {MAX_TOOLS}",
            req.tools.len()
        ));
    }
    let mut system = Vec::new();
    let mut messages = Vec::new();
    let mut parts = Vec::new();
    let mut data_types = BTreeSet::new();
    for (mi, m) in req.messages.into_iter().enumerate() {
        let role = gw::Role::try_from(m.role)
            .map_err(|_| format!("messages[{mi}].role: unknown value {}", m.role))?;
        if m.parts.is_empty() {
            return Err(format!("messages[{mi}] has no parts"));
        }
        let mut content = Vec::new();
        for (pi, p) in m.parts.into_iter().enumerate() {
            let at = format!("messages[{mi}].parts[{pi}]");
            let dt = data_type_from_proto(p.data_type).map_err(|e| format!("{at}.{e}"))?;
            data_types.insert(dt);
            let c = match p.content {
                None => {
                    return Err(format!(
                        "{at} has no content (text, tool_call or tool_result)"
                    ));
                }
                Some(gw::content_part::Content::Text(t)) => Content::Text { text: t },
                Some(gw::content_part::Content::ToolCall(tc)) => {
                    if role != gw::Role::Assistant {
                        return Err(format!(
                            "{at}: tool_call parts belong in assistant messages"
                        ));
                    }
                    check_name(&format!("{at}.tool_call.name"), &tc.name)?;
                    check_id(&format!("{at}.tool_call.id"), &tc.id)?;
                    let input = if tc.arguments_json.trim().is_empty() {
                        serde_json::Value::Object(Default::default())
                    } else {
                        serde_json::from_str(&tc.arguments_json).map_err(|e| {
                            format!("{at}.tool_call.arguments_json is not valid JSON: {e}")
                        })?
                    };
                    Content::ToolUse {
                        id: tc.id,
                        name: tc.name,
                        input,
                    }
                }
                Some(gw::content_part::Content::ToolResult(tr)) => {
                    if role != gw::Role::User {
                        return Err(format!("{at}: tool_result parts belong in user messages"));
                    }
                    check_id(&format!("{at}.tool_result.tool_call_id"), &tr.tool_call_id)?;
                    Content::ToolResult {
                        tool_use_id: tr.tool_call_id,
                        content: tr.content,
                        is_error: tr.is_error,
                    }
                }
            };
            match role {
                gw::Role::System => {
                    let Content::Text { text } = c else {
                        return Err(format!("{at}: system messages hold text only"));
                    };
                    // Each part keeps its own type: a system prompt is never typed by one
                    // of its parts, so no part can pass under another's label.
                    system.push(SystemPart {
                        data_type: dt,
                        text,
                    });
                }
                gw::Role::User | gw::Role::Assistant => {
                    // Every part is minimized: text, tool results, and tool-call arguments
                    // (model output that may carry restored identifiers).
                    parts.push(PartRef {
                        message: messages.len(),
                        part: content.len(),
                        data_type: dt,
                    });
                    content.push(c);
                }
                gw::Role::Unspecified => {
                    return Err(format!(
                        "messages[{mi}].role is required (ROLE_USER, ROLE_ASSISTANT or ROLE_SYSTEM)"
                    ));
                }
            }
        }
        match role {
            gw::Role::User => messages.push(Message {
                role: MessageRole::User,
                content,
            }),
            gw::Role::Assistant => messages.push(Message {
                role: MessageRole::Assistant,
                content,
            }),
            _ => {}
        }
    }
    if messages.is_empty() {
        return Err("messages holds only system text: add at least one user message".into());
    }
    let mut tools = Vec::new();
    for (ti, t) in req.tools.into_iter().enumerate() {
        check_name(&format!("tools[{ti}].name"), &t.name)?;
        check_len(
            &format!("tools[{ti}].description"),
            &t.description,
            MAX_TOOL_DESCRIPTION_BYTES,
        )?;
        check_len(
            &format!("tools[{ti}].input_schema_json"),
            &t.input_schema_json,
            MAX_TOOL_SCHEMA_BYTES,
        )?;
        let schema: serde_json::Value = serde_json::from_str(&t.input_schema_json)
            .map_err(|e| format!("tools[{ti}].input_schema_json is not valid JSON: {e}"))?;
        if !schema.is_object() {
            return Err(format!(
                "tools[{ti}].input_schema_json must be a JSON object (a JSON schema)"
            ));
        }
        tools.push(ToolDef {
            name: t.name,
            description: t.description,
            input_schema: schema,
        });
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!("temperature {t} is outside 0.0 to 2.0"));
    }
    Ok(ValidRequest {
        tenant_id: req.tenant_id,
        purpose,
        agent_run_id: req.agent_run_id,
        preferred_provider: (!req.preferred_provider.is_empty()).then_some(req.preferred_provider),
        routing_profile: req.routing_profile,
        chat: ChatRequest {
            model: (!req.preferred_model.is_empty()).then_some(req.preferred_model),
            // Joined after minimization, from the parts that may leave.
            system: None,
            messages,
            tools,
            max_tokens: if req.max_output_tokens == 0 {
                DEFAULT_MAX_OUTPUT_TOKENS
            } else {
                req.max_output_tokens
            },
            temperature: req.temperature,
            // Set by minimization, which routes it with the request.
            tenant_id: None,
        },
        parts,
        system,
        data_types,
    })
}

/// A field is at most `max` bytes. The error names the field and the sizes, never the value
/// (which may hold a secret).
fn check_len(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        ));
    }
    Ok(())
}

/// A tool's name: 1 to 64 bytes.
fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{field} is required"));
    }
    check_len(field, name, MAX_TOOL_NAME_BYTES)
}

/// A tool call's id: at most 256 bytes.
fn check_id(field: &str, id: &str) -> Result<(), String> {
    check_len(field, id, MAX_TOOL_ID_BYTES)
}
