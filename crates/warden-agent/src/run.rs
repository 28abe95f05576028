//! One run: call the gateway, run the tools it asks for, repeat, within the run's limits.
//! A refusal from the gateway because the tenant opted out ends the run as CANCELLED at
//! that step; no further model call is made.

use std::time::Instant;

use tonic::Code;
use warden_proto::agent::v1::SubmitTriggerRequest;
use warden_proto::common::v1::{DataType, Purpose};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;

use crate::Agent;
use crate::tools::{self, RunScope, window};

const SYSTEM_PROMPT: &str = "You are Warden's investigation agent for an observability platform. \
Investigate the trigger using only the tools provided. Cite the telemetry you used. \
If a change to the customer's system would help, call propose_change; never claim a change was applied.";

fn text_part(data_type: DataType, text: String) -> gw::ContentPart {
    gw::ContentPart {
        data_type: data_type as i32,
        content: Some(gw::content_part::Content::Text(text)),
    }
}

impl Agent {
    pub(crate) async fn execute(
        &self,
        tenant_id: String,
        run_id: String,
        purpose: Purpose,
        trigger: SubmitTriggerRequest,
    ) {
        let started = Instant::now();
        let limits = self.inner.limits;
        let now_ms = window::millis(std::time::SystemTime::now());
        // The trigger's time (when it fired), or when it reached us.
        let trigger_ms = Some(window::ms_of(trigger.occurred_at.as_ref()))
            .filter(|ms| *ms > 0 && *ms <= now_ms)
            .unwrap_or(now_ms);
        let mut messages = vec![
            gw::Message {
                role: gw::Role::System as i32,
                parts: vec![text_part(DataType::Instruction, SYSTEM_PROMPT.into())],
            },
            gw::Message {
                role: gw::Role::User as i32,
                parts: vec![text_part(
                    DataType::Instruction,
                    format!(
                        "Trigger: {}\nService: {}\nFired at: {}\n{}\nTool queries cover {} to {} unless you pass since/until.",
                        trigger.title,
                        trigger.service,
                        window::rfc3339(trigger_ms),
                        trigger.description,
                        window::rfc3339(
                            window::incident(trigger_ms, limits.lookback, now_ms).since_ms
                        ),
                        window::rfc3339(
                            window::incident(trigger_ms, limits.lookback, now_ms).until_ms
                        ),
                    ),
                )],
            },
        ];
        let mut evidence = Vec::new();
        let mut steps = 0u32;
        let (status, reason, summary) = loop {
            if steps >= limits.max_steps {
                break (
                    st::RunStatus::Failed,
                    format!("step budget of {} model calls used up", limits.max_steps),
                    None,
                );
            }
            if started.elapsed() > limits.max_wall_time {
                break (
                    st::RunStatus::Failed,
                    "wall-time budget used up".to_owned(),
                    None,
                );
            }
            steps += 1;
            // The tools the tenant allows now: a change of settings mid-run shows at the next step.
            let offered = match self.tenant_settings(&tenant_id).await {
                Ok(s) if !s.enabled => {
                    break (
                        st::RunStatus::Cancelled,
                        format!(
                            "stopped at step {steps}: AI features were disabled for the tenant"
                        ),
                        None,
                    );
                }
                Ok(s) => {
                    let access = tools::access_of(&s);
                    // What the tenant no longer allows is not sent again.
                    tools::withhold_disallowed(&mut messages, &access);
                    tools::catalog::offered(&access)
                }
                Err(reason) => {
                    break (
                        st::RunStatus::Failed,
                        format!("stopped at step {steps}: {reason}"),
                        None,
                    );
                }
            };
            let req = gw::CompleteRequest {
                tenant_id: tenant_id.clone(),
                purpose: purpose as i32,
                agent_run_id: run_id.clone(),
                messages: messages.clone(),
                tools: offered
                    .iter()
                    .map(|t| gw::ToolDefinition {
                        name: t.name.to_owned(),
                        description: t.description.to_owned(),
                        input_schema_json: t.schema.to_string(),
                    })
                    .collect(),
                max_output_tokens: 1024,
                ..Default::default()
            };
            let mut gateway = self.inner.gateway.clone();
            let resp = match gateway.complete(req).await {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::FailedPrecondition => {
                    break (
                        st::RunStatus::Cancelled,
                        format!("stopped at step {steps}: {}", s.message()),
                        None,
                    );
                }
                Err(s) => {
                    break (
                        st::RunStatus::Failed,
                        format!("gateway refused step {steps}: {}", s.message()),
                        None,
                    );
                }
            };
            evidence.push(serde_json::json!({"step": steps, "audit_record_id": resp.audit_record_id, "provider": resp.provider, "model": resp.model}));
            if resp.tool_calls.is_empty() {
                break (st::RunStatus::Succeeded, String::new(), Some(resp.text));
            }
            let mut assistant = Vec::new();
            if !resp.text.is_empty() {
                assistant.push(text_part(DataType::Instruction, resp.text.clone()));
            }
            let mut results = Vec::new();
            for call in &resp.tool_calls {
                assistant.push(gw::ContentPart {
                    data_type: DataType::Instruction as i32,
                    content: Some(gw::content_part::Content::ToolCall(call.clone())),
                });
                let scope = RunScope {
                    tenant_id: &tenant_id,
                    run_id: &run_id,
                    step: steps,
                    trigger_ms,
                    incident: window::incident(
                        trigger_ms,
                        limits.lookback,
                        window::millis(std::time::SystemTime::now()),
                    ),
                };
                let out = self
                    .run_tool(&scope, &call.name, &call.arguments_json)
                    .await;
                evidence.push(serde_json::json!({"step": steps, "tool": call.name, "arguments": call.arguments_json, "error": out.is_error}));
                results.push(gw::ContentPart {
                    data_type: out.data_type as i32,
                    content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                        tool_call_id: call.id.clone(),
                        content: out.text,
                        is_error: out.is_error,
                    })),
                });
            }
            messages.push(gw::Message {
                role: gw::Role::Assistant as i32,
                parts: assistant,
            });
            messages.push(gw::Message {
                role: gw::Role::User as i32,
                parts: results,
            });
        };
        let mut runs = self.inner.runs.clone();
        if let Some(summary) = summary {
            let finding = st::AddFindingRequest {
                tenant_id: tenant_id.clone(),
                run_id: run_id.clone(),
                summary,
                evidence_json: serde_json::Value::Array(evidence).to_string(),
            };
            if let Err(s) = runs.add_finding(finding).await {
                tracing::error!(run = %run_id, code = ?s.code(), "could not store a finding");
            }
        }
        let update = st::UpdateRunRequest {
            tenant_id,
            run_id: run_id.clone(),
            status: status as i32,
            status_reason: reason,
            steps,
        };
        if let Err(s) = runs.update_run(update).await {
            tracing::error!(run = %run_id, code = ?s.code(), "could not store a run's final status");
        }
        tracing::info!(run = %run_id, status = status.as_str_name(), steps, "run finished");
    }
}
