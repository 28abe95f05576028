//! The platform's tools: the only things an agent can do. Each call is decided against
//! the tenant's settings as they are at that moment ([`catalog::decide`]), scoped to the
//! run's tenant and window, bounded, typed with its real data type (so the gateway gates,
//! redacts and budgets it like any other part), and recorded with the run before its
//! result reaches the model. A refused call comes back to the model as an explanation;
//! it never fails the run. There is no tool that reaches an arbitrary network address:
//! storage, and the Prometheus and GitHub the tenant configured, are the only sources.

mod args;
pub mod catalog;
mod propose;
mod sources;
mod telemetry;
pub mod window;

use serde_json::Value;
use tonic::Status;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;

use crate::Agent;
use args::Args;
use catalog::{MetricsSource, ToolAccess};
use window::Window;

/// What a tool found: text for the model and how many rows it holds.
pub(crate) struct Found {
    pub text: String,
    pub rows: usize,
}

/// Why a tool call gave no result, as a sentence for the model.
pub(crate) struct ToolError(pub String);

impl From<String> for ToolError {
    fn from(s: String) -> Self {
        ToolError(s)
    }
}

impl From<&str> for ToolError {
    fn from(s: &str) -> Self {
        ToolError(s.to_owned())
    }
}

impl From<Status> for ToolError {
    fn from(s: Status) -> Self {
        ToolError(s.message().to_owned())
    }
}

/// What running a tool gave: text for the model, and the data type that text carries.
pub(crate) struct ToolOutput {
    pub text: String,
    pub data_type: pb::DataType,
    pub is_error: bool,
}

/// The run a tool call belongs to.
pub(crate) struct RunScope<'a> {
    pub tenant_id: &'a str,
    pub run_id: &'a str,
    /// The worker holding the run's lease (storage records calls only from it).
    pub worker: &'a str,
    /// The model step that asked (0: the purpose's first queries) and the call's place in it.
    pub step: u32,
    pub index: u32,
    pub trigger_ms: i64,
    pub incident: Window,
    /// Most bytes one result may take.
    pub result_cap: usize,
    /// Whether a result of this data type and size fits the run's byte budget.
    pub bytes_left: &'a (dyn Fn(i32, u64) -> Result<(), String> + Sync),
    /// Why the run's own limits refuse this call (a repeat, the tool budget), decided
    /// after the tenant's policy, so a call the policy refuses says so.
    pub refused_by_run: Option<String>,
}

fn policy_data_type(v: i32) -> Option<warden_policy::DataType> {
    use warden_policy::DataType as D;
    Some(match pb::DataType::try_from(v).ok()? {
        pb::DataType::Logs => D::Logs,
        pb::DataType::Metrics => D::Metrics,
        pb::DataType::Traces => D::Traces,
        pb::DataType::Profiles => D::Profiles,
        pb::DataType::ConfigMetadata => D::ConfigMetadata,
        pb::DataType::ClusterInfo => D::ClusterInfo,
        pb::DataType::SourceCode => D::SourceCode,
        pb::DataType::Instruction => D::Instruction,
        pb::DataType::Unspecified => return None,
    })
}

fn proto_data_type(d: warden_policy::DataType) -> pb::DataType {
    use warden_policy::DataType as D;
    match d {
        D::Logs => pb::DataType::Logs,
        D::Metrics => pb::DataType::Metrics,
        D::Traces => pb::DataType::Traces,
        D::Profiles => pb::DataType::Profiles,
        D::ConfigMetadata => pb::DataType::ConfigMetadata,
        D::ClusterInfo => pb::DataType::ClusterInfo,
        D::SourceCode => pb::DataType::SourceCode,
        D::Instruction => pb::DataType::Instruction,
    }
}

/// What the tool decision needs from a tenant's stored settings.
pub(crate) fn access_of(s: &pb::TenantSettings) -> ToolAccess {
    let prometheus = s.prometheus.as_ref().is_some_and(|p| !p.url.is_empty());
    ToolAccess {
        settings: warden_policy::TenantSettings {
            tenant_id: s.tenant_id.clone(),
            enabled: s.enabled,
            allowed_data_types: s
                .allowed_data_types
                .iter()
                .filter_map(|d| policy_data_type(*d))
                .collect(),
            github_integration: s.github_integration,
            ..Default::default()
        },
        metrics: if prometheus {
            MetricsSource::Prometheus
        } else {
            MetricsSource::Embedded
        },
        github_source: s
            .github
            .as_ref()
            .is_some_and(|g| !g.credentials_id.is_empty() && !g.repositories.is_empty()),
    }
}

/// The data types whose results the tenant does not allow now, each with why: the
/// worker replaces their results in the conversation with a note (keeping the call ids),
/// so a run whose tenant withdrew a data type carries on without sending that data again.
pub(crate) fn withheld(access: &ToolAccess) -> Vec<(pb::DataType, String)> {
    ALL_TYPES
        .iter()
        .filter_map(|d| {
            let dt = policy_data_type(*d as i32)?;
            if dt == warden_policy::DataType::Instruction {
                return None;
            }
            warden_policy::data_type_gate(&access.settings, dt)
                .err()
                .map(|denied| (*d, denied.message))
        })
        .collect()
}

const ALL_TYPES: [pb::DataType; 7] = [
    pb::DataType::Logs,
    pb::DataType::Metrics,
    pb::DataType::Traces,
    pb::DataType::Profiles,
    pb::DataType::ConfigMetadata,
    pb::DataType::ClusterInfo,
    pb::DataType::SourceCode,
];

impl Agent {
    /// The tenant's settings as they are now; any failure to read them refuses (fail closed).
    pub(crate) async fn tenant_settings(
        &self,
        tenant_id: &str,
    ) -> Result<pb::TenantSettings, String> {
        let mut c = self.inner.tenants.clone();
        match c
            .get_tenant_settings(st::GetTenantSettingsRequest {
                tenant_id: tenant_id.to_owned(),
            })
            .await
        {
            Ok(s) => Ok(s.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => {
                Err(format!("tenant {tenant_id} is not configured"))
            }
            Err(s) => Err(format!(
                "the tenant's settings could not be read ({})",
                s.message()
            )),
        }
    }

    /// Runs one tool call of a run: decide, query, bound, record, answer.
    pub(crate) async fn run_tool(
        &self,
        scope: &RunScope<'_>,
        name: &str,
        arguments_json: &str,
    ) -> ToolOutput {
        let mut record = st::ToolCallRecord {
            step: scope.step,
            index: scope.index,
            tool: name.to_owned(),
            arguments_json: arguments_json.chars().take(16 * 1024).collect(),
            ..Default::default()
        };
        let outcome = self
            .decide_and_run(scope, name, arguments_json, &mut record)
            .await;
        self.answer_tool(scope, name, record, outcome).await
    }

    async fn answer_tool(
        &self,
        scope: &RunScope<'_>,
        name: &str,
        mut record: st::ToolCallRecord,
        outcome: Result<(Found, pb::DataType), Outcome>,
    ) -> ToolOutput {
        let (text, data_type, is_error) = match outcome {
            Ok((found, data_type)) => {
                record.allowed = true;
                record.rows = found.rows as u64;
                record.bytes = found.text.len() as u64;
                let text = if found.text.is_empty() {
                    "no matching records in the window".to_owned()
                } else {
                    found.text
                };
                (text, data_type, false)
            }
            Err(Outcome::Refused(reason)) => {
                record.reason = reason.clone();
                (
                    format!(
                        "refused by the tenant's policy: {reason}. Continue with the tools you were given."
                    ),
                    pb::DataType::Instruction,
                    true,
                )
            }
            Err(Outcome::Budget(reason)) => {
                record.reason = reason.clone();
                (format!("{name}: {reason}"), pb::DataType::Instruction, true)
            }
            Err(Outcome::Failed(reason, data_type)) => {
                record.allowed = true;
                record.reason = reason.clone();
                record.data_type = data_type as i32;
                (format!("{name}: {reason}"), pb::DataType::Instruction, true)
            }
        };
        // The record is written before the result reaches the model; without it, no result.
        let mut runs = self.inner.runs.clone();
        if let Err(s) = runs
            .record_tool_call(st::RecordToolCallRequest {
                tenant_id: scope.tenant_id.to_owned(),
                run_id: scope.run_id.to_owned(),
                call: Some(record),
                worker: scope.worker.to_owned(),
            })
            .await
        {
            tracing::error!(run = %scope.run_id, code = ?s.code(), "could not record a tool call");
            return ToolOutput {
                text: format!("{name}: the call could not be recorded, so its result is withheld"),
                data_type: pb::DataType::Instruction,
                is_error: true,
            };
        }
        ToolOutput {
            text,
            data_type,
            is_error,
        }
    }

    async fn decide_and_run(
        &self,
        scope: &RunScope<'_>,
        name: &str,
        arguments_json: &str,
        record: &mut st::ToolCallRecord,
    ) -> Result<(Found, pb::DataType), Outcome> {
        let settings = self
            .tenant_settings(scope.tenant_id)
            .await
            .map_err(Outcome::Refused)?;
        let access = access_of(&settings);
        let spec = catalog::decide(&access, name).map_err(Outcome::Refused)?;
        if let Some(reason) = &scope.refused_by_run {
            return Err(Outcome::Budget(reason.clone()));
        }
        let data_type = proto_data_type(spec.data_type);
        record.data_type = data_type as i32;
        let fail = |e: String| Outcome::Failed(e, data_type);
        let value: Value = serde_json::from_str(arguments_json)
            .map_err(|_| fail("arguments must be a JSON object".into()))?;
        let Value::Object(map) = &value else {
            return Err(fail("arguments must be a JSON object".into()));
        };
        let a = Args(map);
        let takes_window = spec.schema["properties"].get("since").is_some();
        let w = if takes_window {
            let w = window::resolve(
                scope.incident,
                scope.trigger_ms,
                a.str("since").map_err(fail)?,
                a.str("until").map_err(fail)?,
            )
            .map_err(fail)?;
            record.since = window::timestamp(w.since_ms);
            record.until = window::timestamp(w.until_ms);
            w
        } else {
            scope.incident
        };
        let found = match spec.data_type {
            warden_policy::DataType::Instruction => {
                propose::run(self, scope.tenant_id, scope.run_id, &a).await
            }
            warden_policy::DataType::SourceCode => sources::code(self, &settings, name, &a).await,
            warden_policy::DataType::Metrics if access.metrics == MetricsSource::Prometheus => {
                sources::prometheus(self, &settings, name, &a, w).await
            }
            _ => telemetry::run(&self.inner.telemetry, scope.tenant_id, name, &a, w).await,
        }
        .map_err(|e| fail(e.0))?;
        let cap = scope.result_cap;
        if found.text.len() > cap {
            return Err(fail(format!(
                "the result is {} bytes, more than the {cap} bytes one tool result may take; narrow the query (a shorter window, a service, a filter or a lower limit)",
                found.text.len()
            )));
        }
        (scope.bytes_left)(data_type as i32, found.text.len() as u64).map_err(fail)?;
        Ok((found, data_type))
    }
}

enum Outcome {
    /// The tenant's policy does not allow the call; nothing was read.
    Refused(String),
    /// Refused by the run's own limits (a repeated call, the tool budget); nothing was read.
    Budget(String),
    /// Allowed, but it gave no result (bad arguments, source error, too large).
    Failed(String, pb::DataType),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_types_the_tenant_withdrew_are_withheld() {
        let access = access_of(&pb::TenantSettings {
            tenant_id: "t".into(),
            enabled: true,
            allowed_data_types: vec![pb::DataType::Metrics as i32],
            ..Default::default()
        });
        let w: Vec<pb::DataType> = withheld(&access).into_iter().map(|(d, _)| d).collect();
        assert!(w.contains(&pb::DataType::Logs));
        assert!(w.contains(&pb::DataType::SourceCode));
        assert!(!w.contains(&pb::DataType::Metrics));
        assert!(!w.contains(&pb::DataType::Instruction));
    }
}
