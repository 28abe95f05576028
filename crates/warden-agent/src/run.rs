//! One leased run: build its brief (or resume its recorded conversation), then call the
//! gateway, run the tools it asks for and record the step, until the model answers or a
//! budget, a cancellation or the tenant's opt-out ends it. Every step is checkpointed in
//! storage before the next begins, so a run resumed by another worker never repeats a
//! recorded step; budgets are enforced here, outside the model (see [`crate::budget`]).

use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::watch;
use tonic::Code;
use warden_proto::common::v1::{DataType, Purpose};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;

use crate::brief::{self, Trigger};
use crate::budget::{self, Budget, Next, Spent};
use crate::tools::{self, RunScope, ToolOutput, window};
use crate::worker::{Halt, halted};
use crate::{Agent, compact, finding};

/// What a run carries from one step to the next (and from a dead worker to the next).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RunState {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<gw::Message>,
    /// One JSON object per model call: step, audit record, provider, model.
    #[prost(string, repeated, tag = "2")]
    pub model_calls: Vec<String>,
    /// One JSON object per tool call: step, index, tool, arguments, outcome.
    #[prost(string, repeated, tag = "3")]
    pub tool_calls: Vec<String>,
    /// `name` + canonical arguments of every call made, to refuse identical repeats.
    #[prost(string, repeated, tag = "4")]
    pub signatures: Vec<String>,
    #[prost(int64, tag = "5")]
    pub trigger_ms: i64,
    #[prost(int64, tag = "6")]
    pub since_ms: i64,
    #[prost(int64, tag = "7")]
    pub until_ms: i64,
    /// Wall time spent by earlier workers.
    #[prost(uint64, tag = "8")]
    pub wall_ms: u64,
}

fn text_part(data_type: DataType, text: String) -> gw::ContentPart {
    gw::ContentPart {
        data_type: data_type as i32,
        content: Some(gw::content_part::Content::Text(text)),
    }
}

/// "logs" for `DATA_TYPE_LOGS`: the budget's key.
fn type_name(d: i32) -> String {
    DataType::try_from(d)
        .map_or("unspecified", |d| d.as_str_name())
        .trim_start_matches("DATA_TYPE_")
        .to_ascii_lowercase()
}

fn signature(name: &str, arguments_json: &str) -> String {
    // Canonical: serde_json's map is ordered, so key order does not matter.
    let args = serde_json::from_str::<Value>(arguments_json)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| arguments_json.to_owned());
    format!("{name} {args}")
}

/// How a run ended.
struct End {
    status: st::RunStatus,
    reason: String,
    answer: Option<String>,
}

impl End {
    fn failed(reason: String) -> Self {
        End {
            status: st::RunStatus::Failed,
            reason,
            answer: None,
        }
    }
}

impl Agent {
    pub(crate) async fn execute(
        &self,
        worker: &str,
        run: st::Run,
        state: Vec<u8>,
        mut halt: watch::Receiver<Option<Halt>>,
    ) {
        let started = Instant::now();
        let budget = Budget::from_proto(run.budget.as_ref());
        let purpose = Purpose::try_from(run.purpose).unwrap_or(Purpose::Unspecified);
        let usage = run.usage.clone().unwrap_or_default();
        let mut spent = Spent {
            steps: run.steps,
            wall: Duration::ZERO,
            tool_calls: usage.tool_calls,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            bytes_read: usage.bytes_read.into_iter().collect(),
        };
        let mut state = if state.is_empty() {
            let now_ms = window::millis(std::time::SystemTime::now());
            let trigger = Trigger::from_json(&run.trigger_json);
            let brief = brief::brief(purpose, &trigger, self.inner.limits.lookback, now_ms);
            let mut s = RunState {
                trigger_ms: Some(trigger.occurred_at_ms)
                    .filter(|ms| *ms > 0 && *ms <= now_ms)
                    .unwrap_or(now_ms),
                since_ms: brief.window.since_ms,
                until_ms: brief.window.until_ms,
                ..Default::default()
            };
            let mut first = vec![text_part(DataType::Instruction, brief.trigger_text)];
            // The purpose's first queries, before the model is called (step 0); those
            // the tenant does not allow are simply not run.
            let offered = match self.tenant_settings(&run.tenant_id).await {
                Ok(settings) => tools::catalog::offered(&tools::access_of(&settings)),
                Err(_) => Vec::new(),
            };
            for (index, (name, args)) in brief.first_queries.iter().enumerate() {
                if !offered.iter().any(|t| t.name == *name) {
                    continue;
                }
                let out = self
                    .tool_step(
                        &run,
                        worker,
                        &budget,
                        &mut spent,
                        &mut s,
                        0,
                        index as u32,
                        name,
                        &args.to_string(),
                    )
                    .await;
                if !out.is_error {
                    first.push(text_part(
                        out.data_type,
                        format!("First query {name} {args}:\n{}", out.text),
                    ));
                }
            }
            s.messages = vec![
                gw::Message {
                    role: gw::Role::System as i32,
                    parts: vec![text_part(DataType::Instruction, brief.instructions)],
                },
                gw::Message {
                    role: gw::Role::User as i32,
                    parts: first,
                },
            ];
            s
        } else {
            match RunState::decode(state.as_slice()) {
                Ok(s) => s,
                Err(_) => {
                    let end = End::failed(
                        "the run's recorded state is unreadable; it cannot be resumed".into(),
                    );
                    self.finish(worker, &run, end, &spent, &RunState::default())
                        .await;
                    return;
                }
            }
        };
        let end = tokio::select! {
            end = self.steps(worker, &run, purpose, &budget, &mut spent, &mut state, started) => end,
            why = halted(&mut halt) => match why {
                Halt::Cancelled(reason) => {
                    tracing::info!(run = %run.id, step = spent.steps, "run stopped mid-step: {reason}");
                    End { status: st::RunStatus::Cancelled, reason, answer: None }
                }
                Halt::LeaseLost | Halt::Shutdown => {
                    tracing::warn!(run = %run.id, ?why, "run left to another worker");
                    return;
                }
            },
        };
        state.wall_ms += started.elapsed().as_millis() as u64;
        self.finish(worker, &run, end, &spent, &state).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn steps(
        &self,
        worker: &str,
        run: &st::Run,
        purpose: Purpose,
        budget: &Budget,
        spent: &mut Spent,
        state: &mut RunState,
        started: Instant,
    ) -> End {
        let earlier = Duration::from_millis(state.wall_ms);
        loop {
            spent.wall = earlier + started.elapsed();
            let step = spent.steps + 1;
            // The tools the tenant allows now: a change of settings mid-run shows here.
            let access = match self.tenant_settings(&run.tenant_id).await {
                Ok(s) if !s.enabled => {
                    return End {
                        status: st::RunStatus::Cancelled,
                        reason: format!(
                            "stopped at step {step}: AI features were disabled for the tenant"
                        ),
                        answer: None,
                    };
                }
                Ok(s) => tools::access_of(&s),
                Err(reason) => return End::failed(format!("stopped at step {step}: {reason}")),
            };
            tools::withhold_disallowed(&mut state.messages, &access);
            let mut next = budget::next(budget, spent);
            // Keep within the model's context: compact first, conclude if that is not enough.
            let context = budget.model_context_tokens;
            if compact::estimate_tokens(&state.messages) > context * 6 / 10 {
                let cut = compact::compact(&mut state.messages, context * 6 / 10);
                tracing::info!(run = %run.id, step, cut, "conversation compacted");
                if compact::estimate_tokens(&state.messages) > context * 9 / 10
                    && next == Next::Continue
                {
                    next = Next::FinalAnswer(
                        "the conversation has nearly filled the model's context".into(),
                    );
                }
            }
            let offered = match &next {
                Next::Stop(reason) => return End::failed(reason.clone()),
                Next::FinalAnswer(why) => {
                    state.messages.push(gw::Message {
                        role: gw::Role::User as i32,
                        parts: vec![text_part(
                            DataType::Instruction,
                            format!("Budget: {why}. Give your final answer now, as the JSON object; no more tools."),
                        )],
                    });
                    Vec::new()
                }
                Next::Continue => tools::catalog::offered(&access),
            };
            let final_step = !matches!(next, Next::Continue);
            let remaining_out = budget.max_output_tokens.saturating_sub(spent.output_tokens);
            let req = gw::CompleteRequest {
                tenant_id: run.tenant_id.clone(),
                purpose: purpose as i32,
                agent_run_id: run.id.clone(),
                messages: state.messages.clone(),
                tools: offered
                    .iter()
                    .map(|t| gw::ToolDefinition {
                        name: t.name.to_owned(),
                        description: t.description.to_owned(),
                        input_schema_json: t.schema.to_string(),
                    })
                    .collect(),
                max_output_tokens: remaining_out.clamp(1, 4096) as u32,
                ..Default::default()
            };
            let mut gateway = self.inner.gateway.clone();
            let resp = match gateway.complete(req).await {
                Ok(r) => r.into_inner(),
                // The tenant opted out between our check and the gateway's: a cancellation.
                Err(s) if opted_out(&s) => {
                    return End {
                        status: st::RunStatus::Cancelled,
                        reason: format!("stopped at step {step}: {}", s.message()),
                        answer: None,
                    };
                }
                Err(s) => {
                    return End::failed(format!("gateway refused step {step}: {}", s.message()));
                }
            };
            spent.steps = step;
            if let Some(u) = &resp.usage {
                spent.input_tokens += u.input_tokens;
                spent.output_tokens += u.output_tokens;
            }
            state.model_calls.push(
                json!({"step": step, "audit_record_id": resp.audit_record_id, "provider": resp.provider, "model": resp.model})
                    .to_string(),
            );
            if resp.tool_calls.is_empty() || final_step {
                if resp.text.trim().is_empty() {
                    let reason = match next {
                        Next::FinalAnswer(why) => {
                            format!("{why}, and the model gave no final answer")
                        }
                        _ => "the model gave neither an answer nor a tool call".into(),
                    };
                    return End::failed(reason);
                }
                state.messages.push(gw::Message {
                    role: gw::Role::Assistant as i32,
                    parts: vec![text_part(DataType::Instruction, resp.text.clone())],
                });
                if let Err(end) = self.checkpoint(worker, run, step, state, spent).await {
                    return end;
                }
                return End {
                    status: st::RunStatus::Succeeded,
                    reason: String::new(),
                    answer: Some(resp.text),
                };
            }
            let mut assistant = Vec::new();
            if !resp.text.is_empty() {
                assistant.push(text_part(DataType::Instruction, resp.text.clone()));
            }
            let mut results = Vec::new();
            for (index, call) in resp.tool_calls.iter().enumerate() {
                assistant.push(gw::ContentPart {
                    data_type: DataType::Instruction as i32,
                    content: Some(gw::content_part::Content::ToolCall(call.clone())),
                });
                let out = self
                    .tool_step(
                        run,
                        worker,
                        budget,
                        spent,
                        state,
                        step,
                        index as u32,
                        &call.name,
                        &call.arguments_json,
                    )
                    .await;
                results.push(gw::ContentPart {
                    data_type: out.data_type as i32,
                    content: Some(gw::content_part::Content::ToolResult(gw::ToolResult {
                        tool_call_id: call.id.clone(),
                        content: out.text,
                        is_error: out.is_error,
                    })),
                });
            }
            state.messages.push(gw::Message {
                role: gw::Role::Assistant as i32,
                parts: assistant,
            });
            state.messages.push(gw::Message {
                role: gw::Role::User as i32,
                parts: results,
            });
            if let Err(end) = self.checkpoint(worker, run, step, state, spent).await {
                return end;
            }
        }
    }

    /// One tool call of step `step`: refused when it repeats an earlier call or the tool
    /// budget is used up, else run (decided, bounded, recorded) and accounted.
    #[allow(clippy::too_many_arguments)]
    async fn tool_step(
        &self,
        run: &st::Run,
        worker: &str,
        budget: &Budget,
        spent: &mut Spent,
        state: &mut RunState,
        step: u32,
        index: u32,
        name: &str,
        arguments_json: &str,
    ) -> ToolOutput {
        let sig = signature(name, arguments_json);
        let refusal = if state.signatures.contains(&sig) {
            Some("refused: this exact call was already made in this run and its result is above; use it, or ask for something different".to_owned())
        } else if step > 0 && spent.tool_calls >= budget.max_tool_calls {
            Some(format!(
                "refused: this run's budget of {} tool calls is used up",
                budget.max_tool_calls
            ))
        } else {
            None
        };
        let scope = RunScope {
            tenant_id: &run.tenant_id,
            run_id: &run.id,
            worker,
            step,
            index,
            trigger_ms: state.trigger_ms,
            incident: window::Window {
                since_ms: state.since_ms,
                until_ms: state.until_ms,
            },
            result_cap: self.inner.limits.tool_result_bytes(budget),
            bytes_left: &|data_type: i32, bytes: u64| {
                budget::tool_bytes_allowed(budget, spent, &type_name(data_type), bytes)
            },
            refused_by_run: refusal,
        };
        let out = self.run_tool(&scope, name, arguments_json).await;
        spent.tool_calls += 1;
        if !out.is_error {
            // Only a call that gave a result is "above" for a repeat to be refused.
            state.signatures.push(sig);
            *spent
                .bytes_read
                .entry(type_name(out.data_type as i32))
                .or_default() += out.text.len() as u64;
        }
        state.tool_calls.push(
            json!({"step": step, "index": index, "tool": name, "arguments": arguments_json, "error": out.is_error}).to_string(),
        );
        out
    }

    async fn checkpoint(
        &self,
        worker: &str,
        run: &st::Run,
        step: u32,
        state: &RunState,
        spent: &Spent,
    ) -> Result<(), End> {
        let mut runs = self.inner.runs.clone();
        match runs
            .checkpoint_run(st::CheckpointRunRequest {
                tenant_id: run.tenant_id.clone(),
                run_id: run.id.clone(),
                worker: worker.to_owned(),
                step,
                state: state.encode_to_vec(),
                usage: Some(usage_of(spent)),
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) => Err(End::failed(format!(
                "step {step} could not be recorded: {}",
                s.message()
            ))),
        }
    }

    /// Stores the finding and the final status (storage keeps a cancellation that came first).
    async fn finish(&self, worker: &str, run: &st::Run, end: End, spent: &Spent, state: &RunState) {
        let mut runs = self.inner.runs.clone();
        if let Some(answer) = &end.answer {
            let f = finding::parse(answer);
            let parse = |v: &Vec<String>| {
                v.iter()
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect::<Vec<Value>>()
            };
            let req = st::AddFindingRequest {
                tenant_id: run.tenant_id.clone(),
                run_id: run.id.clone(),
                summary: f.summary,
                evidence_json: finding::evidence(
                    &parse(&state.model_calls),
                    &parse(&state.tool_calls),
                    &f.cited,
                ),
                suspected_cause: f.suspected_cause,
                confidence: f.confidence,
            };
            if let Err(s) = runs.add_finding(req).await {
                tracing::error!(run = %run.id, code = ?s.code(), "could not store a finding");
            }
        }
        let update = st::UpdateRunRequest {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
            status: end.status as i32,
            status_reason: end.reason.chars().take(2000).collect(),
            steps: spent.steps,
            worker: worker.to_owned(),
            usage: Some(usage_of(spent)),
        };
        match runs.update_run(update).await {
            Ok(r) => {
                let r = r.into_inner();
                tracing::info!(run = %run.id, status = st::RunStatus::try_from(r.status).map_or("?", |s| s.as_str_name()), steps = r.steps, "run finished");
            }
            Err(s) => {
                tracing::error!(run = %run.id, code = ?s.code(), "could not store a run's final status")
            }
        }
    }
}

/// Whether the gateway refused because the tenant has AI off (or is gone).
fn opted_out(s: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    s.code() == Code::FailedPrecondition
        && s.get_details_error_info()
            .is_some_and(|i| matches!(i.reason.as_str(), "OPT_IN_REQUIRED" | "TENANT_UNKNOWN"))
}

fn usage_of(spent: &Spent) -> st::RunUsage {
    st::RunUsage {
        input_tokens: spent.input_tokens,
        output_tokens: spent.output_tokens,
        tool_calls: spent.tool_calls,
        bytes_read: spent.bytes_read.clone().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_calls_have_one_signature_whatever_the_key_order() {
        assert_eq!(
            signature("query_logs", r#"{"service":"a","limit":3}"#),
            signature("query_logs", r#"{ "limit": 3, "service": "a" }"#)
        );
        assert_ne!(
            signature("query_logs", r#"{"service":"a"}"#),
            signature("query_logs", r#"{"service":"b"}"#)
        );
        assert_eq!(
            type_name(DataType::ConfigMetadata as i32),
            "config_metadata"
        );
    }
}
