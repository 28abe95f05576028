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
//!
//! Steps 1 to 5 up to the intent run in the handler's future; from the intent on, the
//! call runs in its own task, because tonic drops the handler's future when the caller
//! goes away and an intent must always be followed by an outcome.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use warden_policy::{Ask, Decision};
use warden_proto::common::v1::{self as pb, AuditDecision, AuditKind, AuditRecord};
use warden_proto::gateway::v1 as gw;
use warden_providers::{ChatResponse, Content, StopReason, Usage};
use warden_tls::Caller;

use crate::Gateway;
use crate::convert::{ValidRequest, data_type_to_proto, validate};
use crate::minimize::{Minimized, minimize};
use crate::outcome::Outcome;
use crate::relay::Outbox;
use crate::status::GatewayError;

/// Everything decided before egress, once its intent is durable.
pub(crate) struct Prepared {
    pub(crate) req: ValidRequest,
    providers: Arc<crate::Providers>,
    profile: String,
    decision: Decision,
    pub(crate) minimized: Minimized,
    pub(crate) intent_id: String,
    caller: String,
    /// The HTTP front's API key the call came with (re-checked when its tenant changes).
    pub(crate) api_key: Option<String>,
    started: Instant,
    /// The tenant's concurrency slot, held while the provider works on the call
    /// (released by [`Prepared::end`]).
    permit: Option<warden_providers::TenantPermit>,
}

/// A call that passed every check and holds its tenant slot, before its intent.
pub(crate) struct Admitted(Prepared);

impl Gateway {
    /// Steps 1 to 5 up to (not including) the durable audit intent: nothing here leaves
    /// a call open in the audit log, so it may run in the handler's future.
    async fn admit(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<Admitted, GatewayError> {
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
        Ok(Admitted(Prepared {
            req,
            providers,
            profile,
            decision,
            minimized,
            intent_id: String::new(),
            caller: caller.subject(),
            api_key: None,
            started,
            permit: Some(permit),
        }))
    }

    /// Step 5's durable intent. Runs in the call's own task (see [`Gateway::complete`]):
    /// once the intent may be committed, an outcome must follow whatever the caller does.
    async fn write_intent(&self, admitted: Admitted) -> Result<Prepared, GatewayError> {
        let Admitted(mut p) = admitted;
        let intent = AuditRecord {
            kind: AuditKind::Intent as i32,
            tenant_id: p.req.tenant_id.clone(),
            caller: p.caller.clone(),
            purpose: p.req.purpose as i32,
            agent_run_id: p.req.agent_run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: "ALLOWED".into(),
            reason_message: format!("eligible providers: {}", p.decision.eligible.join(", ")),
            data_types: types(&p.minimized.types_sent),
            minimization: Some(p.minimized.summary.clone()),
            outcome: "pending".into(),
            ..Default::default()
        };
        // Audit before egress, fail closed: if this append fails, nothing leaves.
        let receipt = self.inner.audit.append(intent).await.inspect_err(|_| {
            metrics::counter!("warden_gateway_audit_fail_closed_total").increment(1);
        })?;
        p.intent_id = receipt.id;
        Ok(p)
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

    pub(crate) async fn record_outcome(&self, p: &Prepared, end: CallEnd) {
        let record = AuditRecord {
            kind: AuditKind::Outcome as i32,
            tenant_id: p.req.tenant_id.clone(),
            caller: p.caller.clone(),
            purpose: p.req.purpose as i32,
            agent_run_id: p.req.agent_run_id.clone(),
            decision: AuditDecision::Allowed as i32,
            reason: "ALLOWED".into(),
            attempts: end.attempts,
            provider: end.provider,
            model: end.model,
            data_types: types(&p.minimized.types_sent),
            minimization: Some(p.minimized.summary.clone()),
            usage: Some(pb::Usage {
                input_tokens: end.usage.input_tokens,
                output_tokens: end.usage.output_tokens,
            }),
            latency_ms: end.latency.as_millis() as u64,
            outcome: end.outcome.to_string(),
            intent_id: p.intent_id.clone(),
            ..Default::default()
        };
        // The data has left already; the intent record stands, and the gap is counted.
        if self.inner.audit.append(record).await.is_err() {
            metrics::counter!("warden_gateway_audit_outcome_lost_total").increment(1);
            tracing::error!(tenant = %p.req.tenant_id, intent = %p.intent_id, "could not record a call's outcome");
        }
    }

    /// A unary call. Everything from the intent on runs in its own task: tonic drops this
    /// future when the caller goes away or its deadline passes, and a call whose intent
    /// may be committed must still record an outcome. A caller that goes away cancels the
    /// provider call (outcome `cancelled`). The answer goes back as soon as it is ready;
    /// the outcome record follows it rather than delaying it.
    pub(crate) async fn complete(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<gw::CompleteResponse, GatewayError> {
        let admitted = self.admit(caller, req).await?;
        // Dropped with this future: the task sees the caller go away.
        let (_caller_here, caller_gone) = tokio::sync::oneshot::channel::<()>();
        let (answer_tx, answer) = tokio::sync::oneshot::channel();
        let gw = self.clone();
        tokio::spawn(async move { gw.complete_admitted(admitted, caller_gone, answer_tx).await });
        answer.await.map_err(|_| GatewayError::Interrupted)?
    }

    async fn complete_admitted(
        &self,
        admitted: Admitted,
        mut caller_gone: tokio::sync::oneshot::Receiver<()>,
        answer: tokio::sync::oneshot::Sender<Result<gw::CompleteResponse, GatewayError>>,
    ) {
        let mut p = match self.write_intent(admitted).await {
            Ok(p) => p,
            Err(e) => {
                let _ = answer.send(Err(e));
                return;
            }
        };
        let mut attempts = Vec::new();
        let route = p.route();
        let result = tokio::select! {
            r = p.providers.complete(&route, &p.minimized.chat, &mut attempts) => Some(r),
            _ = &mut caller_gone => None,
        };
        let (answered, end) = match result {
            // The caller went away: dropping the routing future cancelled the provider call.
            None => (
                Err(GatewayError::Cancelled),
                p.end(Outcome::Cancelled, attempts),
            ),
            Some(Ok((provider, mut resp))) => {
                let end = p.end(Outcome::Ok, attempts.clone()).answered_by(
                    &provider,
                    &resp.model,
                    resp.usage,
                );
                restore(&p, &mut resp);
                metrics::histogram!("warden_gateway_request_duration_seconds", "rpc" => "Complete")
                    .record(end.latency.as_secs_f64());
                (Ok(response(provider, resp, &p, attempts)), end)
            }
            Some(Err(e)) => {
                let end = p.end(Outcome::from(&e), attempts.clone());
                (Err(GatewayError::routed(e, &attempts)), end)
            }
        };
        let _ = answer.send(answered);
        self.record_outcome(&p, end).await;
    }

    /// A streamed call. As for [`Gateway::complete`], everything from the intent on runs
    /// in its own task; this future only waits for the stream to open (or fail).
    pub(crate) async fn complete_stream(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<crate::relay::RelayStream, GatewayError> {
        self.complete_stream_keyed(caller, None, req).await
    }

    /// [`Gateway::complete_stream`] for a caller authenticated by an API key, which the
    /// relay re-checks whenever the tenant changes: a revoked key ends its open streams.
    pub(crate) async fn complete_stream_keyed(
        &self,
        caller: &Caller,
        api_key: Option<String>,
        req: gw::CompleteRequest,
    ) -> Result<crate::relay::RelayStream, GatewayError> {
        let mut admitted = self.admit(caller, req).await?;
        admitted.0.api_key = api_key;
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let gw = self.clone();
        tokio::spawn(async move { gw.stream_admitted(admitted, opened_tx).await });
        opened.await.map_err(|_| GatewayError::Interrupted)?
    }

    async fn stream_admitted(
        self,
        admitted: Admitted,
        mut opened_tx: tokio::sync::oneshot::Sender<
            Result<crate::relay::RelayStream, GatewayError>,
        >,
    ) {
        let mut p = match self.write_intent(admitted).await {
            Ok(p) => p,
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        let changes = self.inner.tenants.subscribe_changes();
        let mut attempts = Vec::new();
        let route = p.route();
        let opened = tokio::select! {
            r = p.providers.stream(&route, &p.minimized.chat, &mut attempts) => Some(r),
            () = opened_tx.closed() => None,
        };
        let (provider, model, upstream) = match opened {
            None => {
                let end = p.end(Outcome::Cancelled, attempts);
                self.record_outcome(&p, end).await;
                return;
            }
            Some(Err(e)) => {
                let end = p.end(Outcome::from(&e), attempts.clone());
                let _ = opened_tx.send(Err(GatewayError::routed(e, &attempts)));
                self.record_outcome(&p, end).await;
                return;
            }
            Some(Ok(x)) => x,
        };
        let (outbox, stream) = Outbox::new(p.providers.stream_idle(&provider));
        if opened_tx.send(Ok(stream)).is_err() {
            drop(upstream);
            let end = p.end(Outcome::Cancelled, attempts).answered_by(
                &provider,
                &model,
                Usage::default(),
            );
            self.record_outcome(&p, end).await;
            return;
        }
        let opened = Opened {
            provider,
            model,
            upstream,
            attempts,
        };
        self.relay(p, opened, changes, outbox).await;
    }
}

/// How a call that passed its intent ended: what its outcome record says.
pub(crate) struct CallEnd {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) usage: Usage,
    pub(crate) outcome: Outcome,
    pub(crate) attempts: Vec<pb::Attempt>,
    pub(crate) latency: std::time::Duration,
}

impl CallEnd {
    /// The provider and model that answered, and what it used.
    pub(crate) fn answered_by(self, provider: &str, model: &str, usage: Usage) -> CallEnd {
        CallEnd {
            provider: provider.to_owned(),
            model: model.to_owned(),
            usage,
            ..self
        }
    }
}

/// A stream the provider opened, before its first event.
pub(crate) struct Opened {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) upstream: warden_providers::EventStream,
    pub(crate) attempts: Vec<pb::Attempt>,
}

impl Prepared {
    /// The provider is done with this call: frees the tenant's concurrency slot (before
    /// the outcome record, which does not occupy the provider) and says how it ended, as
    /// no provider answered; [`CallEnd::answered_by`] adds who did.
    pub(crate) fn end(&mut self, outcome: Outcome, attempts: Vec<pb::Attempt>) -> CallEnd {
        self.permit = None;
        CallEnd {
            provider: String::new(),
            model: String::new(),
            usage: Usage::default(),
            outcome,
            attempts,
            latency: self.started.elapsed(),
        }
    }

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
            Content::ToolUse { id, name, input } => {
                *id = pseudonyms.restore(id);
                *name = pseudonyms.restore(name);
                pseudonyms.restore_value(input);
            }
            Content::ToolResult { .. } => {}
        }
    }
}

fn types(set: &BTreeSet<warden_policy::DataType>) -> Vec<i32> {
    set.iter().map(|d| data_type_to_proto(*d) as i32).collect()
}

pub(crate) fn stop_to_proto(s: StopReason) -> gw::StopReason {
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
