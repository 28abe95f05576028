//! One leased run, brokered: the agent service's trusted side of an investigation.
//!
//! The run's worker ([`crate::isolation`]) builds prompts and decides tool calls; this
//! broker admits it (sandbox and escape checks against the operator's and tenant's
//! minimums, recorded with the run before anything is sent to it), then answers its
//! requests one by one. It alone holds the gateway and storage clients, fills in the
//! tenant and run, keeps the budget (steps, time, tokens, tool calls, bytes: enforced
//! here, outside the model and outside the worker), runs only tools it offered for the
//! step, records each step in storage before the next begins, and writes the finding
//! with evidence from its own ledger of calls. A worker that breaks the protocol or dies
//! fails the run with the reason; a cancelled or handed-over run's worker is killed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::watch;
use tonic::Code;
use warden_proto::common::v1::Purpose;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;

use crate::brief::{self, Trigger};
use crate::budget::{self, Budget, Next, Spent};
use crate::isolation;
use crate::isolation::protocol::{self, FrameError, Reply, Start, reply, request};
use crate::tools::{self, RunScope, window};
use crate::worker::{Halt, halted};
use crate::{Agent, finding};

/// What the broker carries from one step to the next (and to the next replica), with
/// the worker's own state inside it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Ledger {
    /// One JSON object per model call: step, audit record, provider, model.
    #[prost(string, repeated, tag = "2")]
    pub model_calls: Vec<String>,
    /// One JSON object per tool call: step, index, tool, arguments, outcome.
    #[prost(string, repeated, tag = "3")]
    pub tool_calls: Vec<String>,
    #[prost(int64, tag = "5")]
    pub trigger_ms: i64,
    #[prost(int64, tag = "6")]
    pub since_ms: i64,
    #[prost(int64, tag = "7")]
    pub until_ms: i64,
    /// Wall time spent by earlier workers.
    #[prost(uint64, tag = "8")]
    pub wall_ms: u64,
    /// The worker's conversation at this checkpoint (opaque here).
    #[prost(bytes = "vec", tag = "9")]
    pub conversation: Vec<u8>,
}

/// "logs" for `DATA_TYPE_LOGS`: the budget's key.
fn type_name(d: i32) -> String {
    warden_proto::common::v1::DataType::try_from(d)
        .map_or("unspecified", |d| d.as_str_name())
        .trim_start_matches("DATA_TYPE_")
        .to_ascii_lowercase()
}

/// How a run ended.
struct End {
    status: st::RunStatus,
    reason: String,
    finding: Option<Box<request::Finish>>,
}

impl End {
    fn failed(reason: impl Into<String>) -> Self {
        End {
            status: st::RunStatus::Failed,
            reason: reason.into(),
            finding: None,
        }
    }

    fn cancelled(reason: String) -> Self {
        End {
            status: st::RunStatus::Cancelled,
            reason,
            finding: None,
        }
    }
}

/// Where the run is within a step, so only the request that may come next is served.
#[derive(Debug)]
enum Phase {
    /// Before the first plan: self checks may come.
    Starting,
    /// A plan was given for `step`; a model turn (or, before the first turn, the
    /// purpose's first queries as step 0) may come.
    Planned {
        step: u32,
        offered: Vec<String>,
        final_answer: bool,
    },
    /// The model answered `step` asking for `asked` (name, arguments): the worker may
    /// relay exactly those (a tool not offered is refused, not run), then a checkpoint.
    Calling {
        step: u32,
        offered: Vec<String>,
        asked: Vec<(String, String)>,
    },
    /// The model answered `step` with its answer: a checkpoint, then the finish.
    Answered { step: u32, recorded: bool },
}

struct Broker<'a> {
    agent: &'a Agent,
    worker: &'a str,
    run: &'a st::Run,
    purpose: Purpose,
    budget: Budget,
    spent: Spent,
    ledger: Ledger,
    started: Instant,
    /// When the run's brief is evaluated (its window is in the ledger).
    now_ms: i64,
    phase: Phase,
    /// (step, index) of every tool call made, so none is recorded twice.
    calls: HashSet<(u32, u32)>,
}

/// The worker broke the protocol: the run fails with what it did.
fn violation(what: impl std::fmt::Display) -> End {
    End::failed(format!("the run's worker broke the protocol: {what}"))
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
        let mut broker = match Broker::new(self, worker, &run, &state, started) {
            Ok(b) => b,
            Err(end) => {
                let spent = Spent::default();
                self.finish(worker, &run, end, &spent, &Ledger::default())
                    .await;
                return;
            }
        };
        let end = tokio::select! {
            end = broker.serve() => end,
            why = halted(&mut halt) => match why {
                Halt::Cancelled(reason) => {
                    tracing::info!(run = %run.id, step = broker.spent.steps, "run stopped mid-step: {reason}");
                    End::cancelled(reason)
                }
                Halt::LeaseLost | Halt::Shutdown => {
                    tracing::warn!(run = %run.id, ?why, "run left to another worker");
                    return;
                }
            },
        };
        broker.ledger.wall_ms += started.elapsed().as_millis() as u64;
        let (spent, ledger) = (broker.spent.clone(), broker.ledger.clone());
        self.finish(worker, &run, end, &spent, &ledger).await;
    }

    /// Stores the finding and the final status (storage keeps a cancellation that came first).
    async fn finish(&self, worker: &str, run: &st::Run, end: End, spent: &Spent, ledger: &Ledger) {
        let mut runs = self.inner.runs.clone();
        if let Some(f) = &end.finding {
            let parse = |v: &Vec<String>| {
                v.iter()
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect::<Vec<Value>>()
            };
            let bound = |s: &str, n: usize| s.chars().take(n).collect::<String>();
            let cited: Vec<String> = f.cited.iter().take(100).map(|c| bound(c, 2000)).collect();
            let req = st::AddFindingRequest {
                tenant_id: run.tenant_id.clone(),
                run_id: run.id.clone(),
                summary: bound(&f.summary, 32 * 1024),
                // From the broker's own ledger: a worker cannot claim calls it did not make.
                evidence_json: finding::evidence(
                    &parse(&ledger.model_calls),
                    &parse(&ledger.tool_calls),
                    &cited,
                ),
                suspected_cause: bound(&f.suspected_cause, 8 * 1024),
                confidence: match f.confidence.as_str() {
                    c @ ("high" | "medium" | "low") => c.to_owned(),
                    _ => "unknown".into(),
                },
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

impl<'a> Broker<'a> {
    fn new(
        agent: &'a Agent,
        worker: &'a str,
        run: &'a st::Run,
        state: &[u8],
        started: Instant,
    ) -> Result<Self, End> {
        let purpose = Purpose::try_from(run.purpose).unwrap_or(Purpose::Unspecified);
        let usage = run.usage.clone().unwrap_or_default();
        let spent = Spent {
            steps: run.steps,
            wall: Duration::ZERO,
            tool_calls: usage.tool_calls,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            bytes_read: usage.bytes_read.into_iter().collect(),
        };
        let now_ms = window::millis(std::time::SystemTime::now());
        let ledger = if state.is_empty() {
            let trigger = Trigger::from_json(&run.trigger_json);
            let b = brief::brief(purpose, &trigger, agent.inner.limits.lookback, now_ms);
            Ledger {
                trigger_ms: Some(trigger.occurred_at_ms)
                    .filter(|ms| *ms > 0 && *ms <= now_ms)
                    .unwrap_or(now_ms),
                since_ms: b.window.since_ms,
                until_ms: b.window.until_ms,
                ..Default::default()
            }
        } else {
            Ledger::decode(state).map_err(|_| {
                End::failed("the run's recorded state is unreadable; it cannot be resumed")
            })?
        };
        let calls = ledger
            .tool_calls
            .iter()
            .filter_map(|c| serde_json::from_str::<Value>(c).ok())
            .filter_map(|v| Some((v["step"].as_u64()? as u32, v["index"].as_u64()? as u32)))
            .collect();
        Ok(Broker {
            agent,
            worker,
            run,
            purpose,
            budget: Budget::from_proto(run.budget.as_ref()),
            spent,
            ledger,
            started,
            now_ms,
            phase: Phase::Starting,
            calls,
        })
    }

    /// Starts and admits the worker, serves it until the run ends, then ends it.
    async fn serve(&mut self) -> End {
        let isolation = &self.agent.inner.isolation;
        let settings = match self.agent.tenant_settings(&self.run.tenant_id).await {
            Ok(s) => s,
            Err(reason) => return End::failed(format!("not started: {reason}")),
        };
        let mut started = match isolation.start().await {
            Ok(s) => s,
            Err(reason) => return End::failed(reason),
        };
        let end = self.serve_worker(&mut started, &settings).await;
        started.keeper.stop().await;
        end
    }

    async fn serve_worker(
        &mut self,
        started: &mut isolation::Started,
        settings: &warden_proto::common::v1::TenantSettings,
    ) -> End {
        let isolation = &self.agent.inner.isolation;
        let checks = isolation.self_checks().to_vec();
        let start = Start {
            purpose: self.purpose as i32,
            trigger_json: self.run.trigger_json.clone(),
            lookback_ms: self.agent.inner.limits.lookback.as_millis() as u64,
            // The brief is evaluated at the time the ledger's window was.
            now_ms: self.now_ms,
            state: self.ledger.conversation.clone(),
            context_tokens: self.budget.model_context_tokens,
            self_checks: checks
                .iter()
                .filter_map(|c| serde_json::to_string(c).ok())
                .collect(),
        };
        let io = &mut started.io;
        if let Err(e) = protocol::write(io, &start).await {
            let how = started.keeper.ended().await;
            return End::failed(format!(
                "the run's worker could not be given its run ({e}); {how}"
            ));
        }
        let outcomes = if checks.is_empty() {
            Vec::new()
        } else {
            match self.self_checks(started, &checks).await {
                Ok(o) => o,
                Err(end) => return end,
            }
        };
        let (operator, accept_weaker) = isolation.operator_minimum();
        let tenant = isolation::tenant_minimum(settings.sandbox_minimum.as_ref());
        let admitted = isolation::admit(
            started.attestation.as_ref(),
            operator,
            accept_weaker,
            tenant,
            &outcomes,
        );
        let (mut record, refusal) = match admitted {
            Ok(r) => (r, None),
            Err((r, why)) => (r, Some(why)),
        };
        record.pid = started.pid;
        if record.accepted_below_minimum && refusal.is_none() {
            tracing::warn!(run = %self.run.id, shortfall = ?record.shortfall, "run started in a sandbox below the operator's minimum, as configured");
        }
        // Recorded before the worker is given anything more; without the record, no run.
        let mut runs = self.agent.inner.runs.clone();
        if let Err(s) = runs
            .attest_run(st::AttestRunRequest {
                tenant_id: self.run.tenant_id.clone(),
                run_id: self.run.id.clone(),
                worker: self.worker.to_owned(),
                sandbox: Some(record),
            })
            .await
        {
            return End::failed(format!(
                "not started: the run's sandbox could not be recorded ({})",
                s.message()
            ));
        }
        if let Some(why) = refusal {
            return End::failed(why);
        }
        loop {
            let req: protocol::Request = match protocol::read(&mut started.io).await {
                Ok(r) => r,
                Err(FrameError::Closed | FrameError::Io(_)) => {
                    let how = started.keeper.ended().await;
                    return End::failed(format!(
                        "the run's sandboxed worker ended unexpectedly at step {}: {how}",
                        self.spent.steps + 1
                    ));
                }
                Err(e) => return violation(e),
            };
            let reply = match req.kind {
                Some(request::Kind::Plan(_)) => self.plan().await,
                Some(request::Kind::Complete(c)) => self.complete(c).await,
                Some(request::Kind::Tool(t)) => self.tool(t).await,
                Some(request::Kind::Checkpoint(c)) => self.checkpoint(c).await,
                Some(request::Kind::Finish(f)) => return self.finished(f),
                Some(request::Kind::SelfChecked(_)) => Err(violation("self checks twice")),
                None => Err(violation("an empty request")),
            };
            let reply = match reply {
                Ok(r) => r,
                Err(end) => return end,
            };
            if let Err(e) = protocol::write(&mut started.io, &Reply { kind: Some(reply) }).await {
                let how = started.keeper.ended().await;
                return End::failed(format!(
                    "the run's sandboxed worker ended unexpectedly ({e}): {how}"
                ));
            }
        }
    }

    /// Reads the worker's self-check outcomes, in the order asked.
    async fn self_checks(
        &self,
        started: &mut isolation::Started,
        checks: &[warden_sandbox::selfcheck::Check],
    ) -> Result<
        Vec<(
            warden_sandbox::selfcheck::Check,
            warden_sandbox::selfcheck::Outcome,
        )>,
        End,
    > {
        let req: protocol::Request = match protocol::read(&mut started.io).await {
            Ok(r) => r,
            Err(e) => {
                let how = started.keeper.ended().await;
                return Err(End::failed(format!(
                    "the run's sandboxed worker ended before reporting its self checks ({e}): {how}"
                )));
            }
        };
        let Some(request::Kind::SelfChecked(done)) = req.kind else {
            return Err(violation("it did not report its self checks first"));
        };
        if done.outcomes.len() != checks.len() {
            return Err(violation("it reported a different number of self checks"));
        }
        let mut out = Vec::with_capacity(checks.len());
        for (check, text) in checks.iter().zip(&done.outcomes) {
            let outcome = serde_json::from_str(text)
                .map_err(|_| violation("a self-check outcome is unreadable"))?;
            out.push((check.clone(), outcome));
        }
        let ack = Reply {
            kind: Some(reply::Kind::Ack(reply::Ack {})),
        };
        if protocol::write(&mut started.io, &ack).await.is_err() {
            let how = started.keeper.ended().await;
            return Err(End::failed(format!(
                "the run's sandboxed worker ended after its self checks: {how}"
            )));
        }
        Ok(out)
    }

    /// The next step's tools and budget, from the tenant's settings as they are now.
    async fn plan(&mut self) -> Result<reply::Kind, End> {
        match &self.phase {
            Phase::Starting | Phase::Calling { .. } => {}
            Phase::Planned { .. } if self.spent.steps == 0 => {}
            other => return Err(violation(format!("a plan asked for while {other:?}"))),
        }
        let step = self.spent.steps + 1;
        self.spent.wall = Duration::from_millis(self.ledger.wall_ms) + self.started.elapsed();
        let access = match self.agent.tenant_settings(&self.run.tenant_id).await {
            Ok(s) if !s.enabled => {
                return Err(End::cancelled(format!(
                    "stopped at step {step}: AI features were disabled for the tenant"
                )));
            }
            Ok(s) => tools::access_of(&s),
            Err(reason) => return Err(End::failed(format!("stopped at step {step}: {reason}"))),
        };
        let (offered, final_answer) = match budget::next(&self.budget, &self.spent) {
            Next::Stop(reason) => return Err(End::failed(reason)),
            Next::FinalAnswer(why) => (Vec::new(), why),
            Next::Continue => (tools::catalog::offered(&access), String::new()),
        };
        self.phase = Phase::Planned {
            step,
            offered: offered.iter().map(|t| t.name.to_owned()).collect(),
            final_answer: !final_answer.is_empty(),
        };
        Ok(reply::Kind::Plan(reply::Plan {
            step,
            tools: offered
                .iter()
                .map(|t| gw::ToolDefinition {
                    name: t.name.to_owned(),
                    description: t.description.to_owned(),
                    input_schema_json: t.schema.to_string(),
                })
                .collect(),
            withheld: tools::withheld(&access)
                .into_iter()
                .map(|(d, reason)| reply::Withheld {
                    data_type: d as i32,
                    reason,
                })
                .collect(),
            final_answer,
        }))
    }

    /// One model turn through the gateway, for this run's tenant, with the plan's tools.
    async fn complete(&mut self, c: request::Complete) -> Result<reply::Kind, End> {
        let Phase::Planned {
            step,
            offered,
            final_answer,
        } = &self.phase
        else {
            return Err(violation("a model turn without a plan"));
        };
        let (step, offered) = (*step, offered.clone());
        let final_step = *final_answer || c.final_answer;
        let tools = if final_step {
            Vec::new()
        } else {
            let access = match self.agent.tenant_settings(&self.run.tenant_id).await {
                Ok(s) => tools::access_of(&s),
                Err(reason) => {
                    return Err(End::failed(format!("stopped at step {step}: {reason}")));
                }
            };
            tools::catalog::offered(&access)
                .into_iter()
                .filter(|t| offered.iter().any(|o| o == t.name))
                .map(|t| gw::ToolDefinition {
                    name: t.name.to_owned(),
                    description: t.description.to_owned(),
                    input_schema_json: t.schema.to_string(),
                })
                .collect()
        };
        let remaining_out = self
            .budget
            .max_output_tokens
            .saturating_sub(self.spent.output_tokens);
        let req = gw::CompleteRequest {
            tenant_id: self.run.tenant_id.clone(),
            purpose: self.purpose as i32,
            agent_run_id: self.run.id.clone(),
            messages: c.messages,
            tools,
            max_output_tokens: remaining_out.clamp(1, 4096) as u32,
            ..Default::default()
        };
        let mut gateway = self.agent.inner.gateway.clone();
        let resp = match gateway.complete(req).await {
            Ok(r) => r.into_inner(),
            // The tenant opted out between our check and the gateway's: a cancellation.
            Err(s) if opted_out(&s) => {
                return Err(End::cancelled(format!(
                    "stopped at step {step}: {}",
                    s.message()
                )));
            }
            Err(s) => {
                return Err(End::failed(format!(
                    "gateway refused step {step}: {}",
                    s.message()
                )));
            }
        };
        self.spent.steps = step;
        if let Some(u) = &resp.usage {
            self.spent.input_tokens += u.input_tokens;
            self.spent.output_tokens += u.output_tokens;
        }
        self.ledger.model_calls.push(
            json!({"step": step, "audit_record_id": resp.audit_record_id, "provider": resp.provider, "model": resp.model})
                .to_string(),
        );
        self.phase = if resp.tool_calls.is_empty() || final_step {
            Phase::Answered {
                step,
                recorded: false,
            }
        } else {
            let asked = resp
                .tool_calls
                .iter()
                .map(|c| (c.name.clone(), c.arguments_json.clone()))
                .collect();
            Phase::Calling {
                step,
                offered,
                asked,
            }
        };
        Ok(reply::Kind::Completion(resp))
    }

    /// One tool call: one of the purpose's first queries among the tools offered, or one
    /// the model asked for at this step, exactly as it asked. Run for the run's own tenant
    /// and window, within the budget, recorded before its result is given; a tool the
    /// broker did not offer is refused and recorded, never run.
    async fn tool(&mut self, t: request::Tool) -> Result<reply::Kind, End> {
        let name = t.name.chars().take(64).collect::<String>();
        let offered = match &self.phase {
            // The purpose's first queries, before the first model turn.
            Phase::Planned { step, offered, .. }
                if self.spent.steps == 0 && *step == 1 && t.step == 0 =>
            {
                if !offered.contains(&t.name) {
                    return Err(violation(format!("a first query of {name:?}, not offered")));
                }
                true
            }
            Phase::Calling {
                step,
                offered,
                asked,
            } if t.step == *step => {
                let as_asked = asked
                    .get(t.index as usize)
                    .is_some_and(|(n, a)| *n == t.name && *a == t.arguments_json);
                if !as_asked {
                    return Err(violation(format!(
                        "call {} of step {} ({name:?}) is not the one the model asked for",
                        t.index, t.step
                    )));
                }
                offered.contains(&t.name)
            }
            _ => {
                return Err(violation(format!(
                    "a call of {name:?} at step {} while {:?}",
                    t.step, self.phase
                )));
            }
        };
        if t.index > 1024 || !self.calls.insert((t.step, t.index)) {
            return Err(violation(format!(
                "call {} of step {} made twice",
                t.index, t.step
            )));
        }
        let refusal = if !offered {
            Some(format!(
                "refused: {name} was not offered at this step; use the tools you were given"
            ))
        } else if !t.refusal.is_empty() {
            Some(t.refusal.chars().take(500).collect())
        } else if t.step > 0 && self.spent.tool_calls >= self.budget.max_tool_calls {
            Some(format!(
                "refused: this run's budget of {} tool calls is used up",
                self.budget.max_tool_calls
            ))
        } else {
            None
        };
        let budget = self.budget;
        let spent = self.spent.clone();
        let bytes_left = move |data_type: i32, bytes: u64| {
            budget::tool_bytes_allowed(&budget, &spent, &type_name(data_type), bytes)
        };
        let scope = RunScope {
            tenant_id: &self.run.tenant_id,
            run_id: &self.run.id,
            worker: self.worker,
            step: t.step,
            index: t.index,
            trigger_ms: self.ledger.trigger_ms,
            incident: window::Window {
                since_ms: self.ledger.since_ms,
                until_ms: self.ledger.until_ms,
            },
            result_cap: self.agent.inner.limits.tool_result_bytes(&self.budget),
            bytes_left: &bytes_left,
            refused_by_run: refusal,
        };
        let out = self
            .agent
            .run_tool(&scope, &t.name, &t.arguments_json)
            .await;
        self.spent.tool_calls += 1;
        if !out.is_error {
            *self
                .spent
                .bytes_read
                .entry(type_name(out.data_type as i32))
                .or_default() += out.text.len() as u64;
        }
        self.ledger.tool_calls.push(
            json!({"step": t.step, "index": t.index, "tool": t.name, "arguments": t.arguments_json.chars().take(16 * 1024).collect::<String>(), "error": out.is_error}).to_string(),
        );
        Ok(reply::Kind::ToolResult(reply::ToolResult {
            data_type: out.data_type as i32,
            text: out.text,
            is_error: out.is_error,
        }))
    }

    /// Records the step just completed, with the worker's state, before the next begins.
    async fn checkpoint(&mut self, c: request::Checkpoint) -> Result<reply::Kind, End> {
        let step = match &self.phase {
            Phase::Calling { step, .. }
            | Phase::Answered {
                step,
                recorded: false,
            } => *step,
            other => return Err(violation(format!("a checkpoint while {other:?}"))),
        };
        if c.step != step {
            return Err(violation(format!(
                "a checkpoint of step {} during step {step}",
                c.step
            )));
        }
        self.ledger.conversation = c.state;
        let wall = Duration::from_millis(self.ledger.wall_ms) + self.started.elapsed();
        let ledger = Ledger {
            wall_ms: wall.as_millis() as u64,
            ..self.ledger.clone()
        };
        let mut runs = self.agent.inner.runs.clone();
        if let Err(s) = runs
            .checkpoint_run(st::CheckpointRunRequest {
                tenant_id: self.run.tenant_id.clone(),
                run_id: self.run.id.clone(),
                worker: self.worker.to_owned(),
                step,
                state: ledger.encode_to_vec(),
                usage: Some(usage_of(&self.spent)),
            })
            .await
        {
            return Err(End::failed(format!(
                "step {step} could not be recorded: {}",
                s.message()
            )));
        }
        if let Phase::Answered { recorded, .. } = &mut self.phase {
            *recorded = true;
        }
        Ok(reply::Kind::Ack(reply::Ack {}))
    }

    /// The worker's end of the run: an answer only after the model gave one and it was
    /// recorded; otherwise the failure it reports.
    fn finished(&mut self, f: request::Finish) -> End {
        if !f.failure.is_empty() {
            return End::failed(f.failure.chars().take(2000).collect::<String>());
        }
        match self.phase {
            Phase::Answered { recorded: true, .. } => End {
                status: st::RunStatus::Succeeded,
                reason: String::new(),
                finding: Some(Box::new(f)),
            },
            _ => violation("a finding before the model's answer was recorded"),
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
    fn data_type_names_are_the_budget_keys() {
        assert_eq!(
            type_name(warden_proto::common::v1::DataType::ConfigMetadata as i32),
            "config_metadata"
        );
    }
}
