//! The inside of a completion. The order of the steps *is* the policy:
//!
//! 1. validate;
//! 2. tenant settings (fail closed);
//! 3. decide: opt-in, data types, eligible providers (pure);
//! 4. minimize;
//! 5. tenant rate and concurrency limits (a denial, no intent), then the audit intent,
//!    durable, before anything leaves (fail closed);
//! 6. provider, failover inside the eligible set;
//! 7. audit outcome;
//! 8. answer.

use std::collections::BTreeSet;
use std::time::Instant;

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use warden_policy::{Ask, Decision};
use warden_proto::common::v1::{self as pb, AuditDecision, AuditKind, AuditRecord};
use warden_proto::gateway::v1 as gw;
use warden_providers::{ChatResponse, Content, StopReason, StreamEvent, Usage};
use warden_tls::Caller;

use crate::Gateway;
use crate::convert::{ValidRequest, data_type_to_proto, validate};
use crate::minimize::{Minimized, StreamRestorer, minimize};
use crate::status::GatewayError;

/// Everything decided before egress.
pub(crate) struct Prepared {
    req: ValidRequest,
    providers: std::sync::Arc<crate::Providers>,
    profile: String,
    decision: Decision,
    minimized: Minimized,
    intent_id: String,
    caller: String,
    started: Instant,
    /// The tenant's concurrency slot, released when the call or its stream ends.
    _permit: warden_providers::TenantPermit,
}

impl Gateway {
    /// Steps 1 to 5: everything up to and including the durable audit intent.
    async fn prepare(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<Prepared, GatewayError> {
        let started = Instant::now();
        let req = validate(req).map_err(GatewayError::Invalid)?;
        let providers = self.providers();
        let profile = providers
            .profile(&req.routing_profile)
            .map_err(GatewayError::Invalid)?
            .to_owned();
        let settings = self.inner.tenants.get(&req.tenant_id).await?;
        let ask = Ask {
            tenant_id: req.tenant_id.clone(),
            data_types: req.data_types.clone(),
            preferred_provider: req.preferred_provider.clone(),
        };
        let decision = match warden_policy::decide(settings.as_deref(), &ask, providers.catalogue())
        {
            Ok(d) => d,
            Err(denied) => {
                self.record_denial(caller, &req, denied.rule.id(), &denied.message)
                    .await;
                return Err(denied.into());
            }
        };
        // `decide` returned Ok, so settings exist.
        let Some(settings) = settings else {
            return Err(GatewayError::Settings(crate::tenants::SettingsUnavailable));
        };
        // The tenant's own limits (checked below, before the intent).
        self.inner.limiter.set_limits(
            &req.tenant_id,
            warden_providers::Limits {
                max_concurrent: settings.budgets.max_concurrent_requests,
                requests_per_minute: settings.budgets.max_requests_per_minute,
            },
        );
        let engine = match self
            .inner
            .engines
            .for_rules(&settings.redaction_rules)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let e = GatewayError::TenantRules {
                    tenant: settings.tenant_id.clone(),
                    error: e.to_string(),
                };
                self.record_denial(caller, &req, e.reason(), &e.to_string())
                    .await;
                return Err(e);
            }
        };
        let minimized = match minimize(&engine, &settings, &req) {
            Ok(m) => m,
            Err(e) => {
                self.record_denial(caller, &req, e.reason(), &e.to_string())
                    .await;
                return Err(e);
            }
        };
        // Over the tenant's rate or concurrency limit: a denial, recorded as one, and
        // nothing is sent. The permit is held until the call or its stream ends.
        let permit = match self.inner.limiter.acquire(&req.tenant_id, Instant::now()) {
            Ok(p) => p,
            Err(e) => {
                let e = GatewayError::Provider(e);
                self.record_denial(caller, &req, e.reason(), &e.to_string())
                    .await;
                return Err(e);
            }
        };
        let intent = AuditRecord {
            kind: AuditKind::Intent as i32,
            tenant_id: req.tenant_id.clone(),
            caller: caller.subject(),
            purpose: req.purpose as i32,
            agent_run_id: req.agent_run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: "ALLOWED".into(),
            reason_message: format!("eligible providers: {}", decision.eligible.join(", ")),
            data_types: types(&minimized.types_sent),
            minimization: Some(minimized.summary.clone()),
            outcome: "pending".into(),
            ..Default::default()
        };
        // Audit before egress, fail closed: if this append fails, nothing leaves.
        let receipt = self.inner.audit.append(intent).await.inspect_err(|_| {
            metrics::counter!("warden_gateway_audit_fail_closed_total").increment(1);
        })?;
        Ok(Prepared {
            req,
            providers,
            profile,
            decision,
            minimized,
            intent_id: receipt.id,
            caller: caller.subject(),
            started,
            _permit: permit,
        })
    }

    async fn record_denial(
        &self,
        caller: &Caller,
        req: &ValidRequest,
        reason: &str,
        message: &str,
    ) {
        metrics::counter!("warden_gateway_denials_total", "reason" => reason.to_owned())
            .increment(1);
        let record = AuditRecord {
            kind: AuditKind::Denial as i32,
            tenant_id: req.tenant_id.clone(),
            caller: caller.subject(),
            purpose: req.purpose as i32,
            agent_run_id: req.agent_run_id.clone(),
            decision: AuditDecision::Denied as i32,
            reason: reason.to_owned(),
            reason_message: message.to_owned(),
            data_types: types(&req.data_types),
            outcome: "denied".into(),
            ..Default::default()
        };
        // The request is refused either way; a lost denial record is logged and counted.
        if self.inner.audit.append(record).await.is_err() {
            metrics::counter!("warden_gateway_audit_denial_lost_total").increment(1);
            tracing::error!(tenant = %req.tenant_id, reason, "could not record a denial in the audit log");
        }
    }

    async fn record_outcome(
        &self,
        p: &Prepared,
        provider: &str,
        model: &str,
        usage: Usage,
        outcome: &str,
        attempts: Vec<pb::Attempt>,
    ) {
        let record = AuditRecord {
            kind: AuditKind::Outcome as i32,
            tenant_id: p.req.tenant_id.clone(),
            caller: p.caller.clone(),
            purpose: p.req.purpose as i32,
            agent_run_id: p.req.agent_run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: "ALLOWED".into(),
            attempts,
            provider: provider.to_owned(),
            model: model.to_owned(),
            data_types: types(&p.minimized.types_sent),
            minimization: Some(p.minimized.summary.clone()),
            usage: Some(pb::Usage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
            }),
            latency_ms: p.started.elapsed().as_millis() as u64,
            outcome: outcome.to_owned(),
            intent_id: p.intent_id.clone(),
            ..Default::default()
        };
        // The data has left already; the intent record stands, and the gap is counted.
        if self.inner.audit.append(record).await.is_err() {
            metrics::counter!("warden_gateway_audit_outcome_lost_total").increment(1);
            tracing::error!(tenant = %p.req.tenant_id, intent = %p.intent_id, "could not record a call's outcome");
        }
    }

    pub(crate) async fn complete(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<gw::CompleteResponse, GatewayError> {
        let p = self.prepare(caller, req).await?;
        let mut attempts = Vec::new();
        let result = p
            .providers
            .complete(&p.route(), &p.minimized.chat, &mut attempts)
            .await;
        match result {
            Ok((provider, mut resp)) => {
                self.record_outcome(
                    &p,
                    &provider,
                    &resp.model,
                    resp.usage,
                    "ok",
                    attempts.clone(),
                )
                .await;
                restore(&p, &mut resp);
                metrics::histogram!("warden_gateway_request_duration_seconds", "rpc" => "Complete")
                    .record(p.started.elapsed().as_secs_f64());
                Ok(response(provider, resp, &p, attempts))
            }
            Err(e) => {
                let class = crate::routing::error_class(&e);
                let err = GatewayError::routed(e, &attempts);
                self.record_outcome(&p, "", "", Usage::default(), &class, attempts)
                    .await;
                Err(err)
            }
        }
    }

    pub(crate) async fn complete_stream(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<ReceiverStream<Result<gw::CompleteStreamEvent, Status>>, GatewayError> {
        let p = self.prepare(caller, req).await?;
        let mut changes = self.inner.tenants.subscribe_changes();
        let mut attempts = Vec::new();
        let opened = p
            .providers
            .stream(&p.route(), &p.minimized.chat, &mut attempts)
            .await;
        let (provider, model, mut upstream) = match opened {
            Ok(x) => x,
            Err(e) => {
                let class = crate::routing::error_class(&e);
                let err = GatewayError::routed(e, &attempts);
                self.record_outcome(&p, "", "", Usage::default(), &class, attempts)
                    .await;
                return Err(err);
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let gw = self.clone();
        tokio::spawn(async move {
            let mut model = model;
            let mut usage = Usage::default();
            let mut stop = StopReason::EndTurn;
            let mut outcome = "ok".to_owned();
            let mut restorer = StreamRestorer::default();
            let mut tools: std::collections::BTreeMap<u32, StreamRestorer> = Default::default();
            let pseudonyms = &p.minimized.pseudonyms;
            let mut started = false;
            loop {
                let next = tokio::select! {
                    ev = upstream.next() => ev,
                    () = tx.closed() => {
                        // The caller went away, perhaps while upstream is silent: stop now;
                        // dropping `upstream` below cancels the provider's HTTP request.
                        outcome = "cancelled".into();
                        break;
                    }
                    changed = changes.recv() => {
                        use tokio::sync::broadcast::error::RecvError;
                        // A lagged receiver may have missed this tenant's opt-out: re-read
                        // as if it had changed. A closed channel cannot tell us any more.
                        let ours = match &changed {
                            Ok(t) => *t == p.req.tenant_id,
                            Err(RecvError::Lagged(_)) => true,
                            Err(RecvError::Closed) => {
                                outcome = "settings_unavailable".into();
                                let _ = tx.send(Err(Status::unavailable(
                                    "tenant settings can no longer be followed; the answer was stopped (fail closed)",
                                ))).await;
                                break;
                            }
                        };
                        if ours && !gw.tenant_still_enabled(&p.req.tenant_id).await
                        {
                            // Opt-out takes effect mid-answer too: stop relaying, cancel upstream.
                            outcome = "opted_out".into();
                            let _ = tx.send(Err(Status::failed_precondition(format!(
                                "AI features were disabled for tenant {} during this call; the answer was stopped",
                                p.req.tenant_id
                            )))).await;
                            break;
                        }
                        continue;
                    }
                };
                let Some(ev) = next else { break };
                let mut out = Vec::new();
                if !started {
                    // The first event we relay is always StreamStart, with the audit id.
                    started = true;
                    if let Ok(StreamEvent::Start { model: m }) = &ev
                        && !m.is_empty()
                    {
                        model = m.clone();
                    }
                    out.push(gw::complete_stream_event::Event::Start(gw::StreamStart {
                        provider: provider.clone(),
                        model: model.clone(),
                        audit_record_id: p.intent_id.clone(),
                        minimization: Some(p.minimized.summary.clone()),
                    }));
                }
                match ev {
                    Ok(StreamEvent::TextDelta { text }) => {
                        flush_tools(&mut tools, pseudonyms, &mut out);
                        let text = restorer.push(pseudonyms, &text);
                        if !text.is_empty() {
                            out.push(gw::complete_stream_event::Event::TextDelta(gw::TextDelta {
                                text,
                            }));
                        }
                    }
                    Ok(StreamEvent::ToolCallStart { index, id, name }) => {
                        // A new block: what earlier blocks held back cannot complete any more.
                        flush_text(&mut restorer, pseudonyms, &mut out);
                        flush_tools(&mut tools, pseudonyms, &mut out);
                        tools.insert(index, StreamRestorer::json());
                        out.push(gw::complete_stream_event::Event::ToolCallDelta(
                            gw::ToolCallDelta {
                                index,
                                id,
                                name,
                                arguments_json_delta: String::new(),
                            },
                        ));
                    }
                    Ok(StreamEvent::ToolCallDelta {
                        index,
                        partial_json,
                    }) => {
                        let arguments_json_delta = tools
                            .entry(index)
                            .or_insert_with(StreamRestorer::json)
                            .push(pseudonyms, &partial_json);
                        if !arguments_json_delta.is_empty() {
                            out.push(gw::complete_stream_event::Event::ToolCallDelta(
                                gw::ToolCallDelta {
                                    index,
                                    arguments_json_delta,
                                    ..Default::default()
                                },
                            ));
                        }
                    }
                    Ok(StreamEvent::Usage { usage: u }) => usage = u,
                    Ok(StreamEvent::Stop { reason }) => stop = reason,
                    Ok(StreamEvent::Start { .. }) => {}
                    Err(e) => {
                        outcome = crate::routing::error_class(&e);
                        // After the first event there is no failover: the stream ends with the error.
                        let _ = tx.send(Err(Status::from(GatewayError::from(e)))).await;
                        break;
                    }
                }
                let mut gone = false;
                for event in out {
                    if tx
                        .send(Ok(gw::CompleteStreamEvent { event: Some(event) }))
                        .await
                        .is_err()
                    {
                        gone = true;
                        break;
                    }
                }
                if gone {
                    // The caller went away: dropping `upstream` cancels the provider call.
                    outcome = "cancelled".into();
                    break;
                }
            }
            if outcome == "ok" {
                let mut rest = Vec::new();
                flush_text(&mut restorer, pseudonyms, &mut rest);
                flush_tools(&mut tools, pseudonyms, &mut rest);
                for ev in rest {
                    let _ = tx
                        .send(Ok(gw::CompleteStreamEvent { event: Some(ev) }))
                        .await;
                }
                let end = gw::CompleteStreamEvent {
                    event: Some(gw::complete_stream_event::Event::End(gw::StreamEnd {
                        stop_reason: stop_to_proto(stop) as i32,
                        usage: Some(pb::Usage {
                            input_tokens: usage.input_tokens,
                            output_tokens: usage.output_tokens,
                        }),
                        attempts: attempts.clone(),
                    })),
                };
                let _ = tx.send(Ok(end)).await;
            }
            drop(upstream);
            gw.record_outcome(&p, &provider, &model, usage, &outcome, attempts)
                .await;
            metrics::histogram!("warden_gateway_request_duration_seconds", "rpc" => "CompleteStream")
                .record(p.started.elapsed().as_secs_f64());
        });
        Ok(ReceiverStream::new(rx))
    }

    async fn tenant_still_enabled(&self, tenant_id: &str) -> bool {
        matches!(self.inner.tenants.get(tenant_id).await, Ok(Some(s)) if s.enabled)
    }
}

impl Prepared {
    fn route(&self) -> warden_providers::RouteRequest<'_> {
        warden_providers::RouteRequest {
            tenant_id: &self.req.tenant_id,
            eligible: &self.decision.eligible,
            profile: &self.profile,
            deadline: self.providers.deadline(),
        }
    }
}

/// Puts pseudonymized identifiers back into the answer the agent receives. Secrets are
/// never restorable: their placeholders are not in the map.
fn restore(p: &Prepared, resp: &mut ChatResponse) {
    let pseudonyms = &p.minimized.pseudonyms;
    for c in &mut resp.content {
        match c {
            Content::Text { text } => *text = pseudonyms.restore(text),
            // A tool call names what the agent should look at: with the real identifiers.
            Content::ToolUse { input, .. } => pseudonyms.restore_value(input),
            Content::ToolResult { .. } => {}
        }
    }
}

/// The held-back ends of every tool call's arguments, as deltas (a block ended, or the stream).
fn flush_tools(
    tools: &mut std::collections::BTreeMap<u32, StreamRestorer>,
    pseudonyms: &warden_minimize::Pseudonyms,
    out: &mut Vec<gw::complete_stream_event::Event>,
) {
    for (index, r) in tools.iter_mut() {
        let rest = r.finish(pseudonyms);
        if !rest.is_empty() {
            out.push(gw::complete_stream_event::Event::ToolCallDelta(
                gw::ToolCallDelta {
                    index: *index,
                    arguments_json_delta: rest,
                    ..Default::default()
                },
            ));
        }
    }
}

/// The held-back end of the answer text, as a delta.
fn flush_text(
    restorer: &mut StreamRestorer,
    pseudonyms: &warden_minimize::Pseudonyms,
    out: &mut Vec<gw::complete_stream_event::Event>,
) {
    let rest = restorer.finish(pseudonyms);
    if !rest.is_empty() {
        out.push(gw::complete_stream_event::Event::TextDelta(gw::TextDelta {
            text: rest,
        }));
    }
}

fn types(set: &BTreeSet<warden_policy::DataType>) -> Vec<i32> {
    set.iter().map(|d| data_type_to_proto(*d) as i32).collect()
}

fn stop_to_proto(s: StopReason) -> gw::StopReason {
    match s {
        StopReason::EndTurn => gw::StopReason::EndTurn,
        StopReason::MaxTokens => gw::StopReason::MaxTokens,
        StopReason::ToolUse => gw::StopReason::ToolUse,
        StopReason::StopSequence => gw::StopReason::StopSequence,
        StopReason::ContentFilter => gw::StopReason::ContentFilter,
    }
}

fn response(
    provider: String,
    resp: ChatResponse,
    p: &Prepared,
    attempts: Vec<pb::Attempt>,
) -> gw::CompleteResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for c in resp.content {
        match c {
            Content::Text { text: t } => text.push_str(&t),
            Content::ToolUse { id, name, input } => {
                tool_calls.push(gw::ToolCall {
                    id,
                    name,
                    arguments_json: input.to_string(),
                });
            }
            Content::ToolResult { .. } => {}
        }
    }
    gw::CompleteResponse {
        text,
        tool_calls,
        stop_reason: stop_to_proto(resp.stop_reason) as i32,
        usage: Some(pb::Usage {
            input_tokens: resp.usage.input_tokens,
            output_tokens: resp.usage.output_tokens,
        }),
        provider,
        model: resp.model,
        audit_record_id: p.intent_id.clone(),
        minimization: Some(p.minimized.summary.clone()),
        attempts,
    }
}
