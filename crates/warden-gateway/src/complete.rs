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

use futures::StreamExt;
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

/// Everything decided before egress, once its intent is durable.
pub(crate) struct Prepared {
    req: ValidRequest,
    providers: Arc<crate::Providers>,
    profile: String,
    decision: Decision,
    minimized: Minimized,
    intent_id: String,
    caller: String,
    /// The HTTP front's API key the call came with (re-checked when its tenant changes).
    api_key: Option<String>,
    started: Instant,
    /// The tenant's concurrency slot, released when the call or its stream ends.
    _permit: warden_providers::TenantPermit,
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
            _permit: permit,
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

    /// A unary call. Everything from the intent on runs in its own task, awaited here:
    /// tonic drops this future when the caller goes away or its deadline passes, and a
    /// call whose intent may be committed must still record an outcome. A caller that
    /// goes away cancels the provider call (outcome `cancelled`).
    pub(crate) async fn complete(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<gw::CompleteResponse, GatewayError> {
        let admitted = self.admit(caller, req).await?;
        // Dropped with this future: the task sees the caller go away.
        let (_caller_here, caller_gone) = tokio::sync::oneshot::channel::<()>();
        let gw = self.clone();
        tokio::spawn(async move { gw.complete_admitted(admitted, caller_gone).await })
            .await
            .map_err(|_| GatewayError::Interrupted)?
    }

    async fn complete_admitted(
        &self,
        admitted: Admitted,
        mut caller_gone: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<gw::CompleteResponse, GatewayError> {
        let p = self.write_intent(admitted).await?;
        let mut attempts = Vec::new();
        let route = p.route();
        let result = tokio::select! {
            r = p.providers.complete(&route, &p.minimized.chat, &mut attempts) => Some(r),
            _ = &mut caller_gone => None,
        };
        let Some(result) = result else {
            // The caller went away: dropping the routing future cancels the provider call.
            self.record_outcome(&p, "", "", Usage::default(), "cancelled", attempts)
                .await;
            return Err(GatewayError::Cancelled);
        };
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

    /// A streamed call. As for [`Gateway::complete`], everything from the intent on runs
    /// in its own task; this future only waits for the stream to open (or fail).
    pub(crate) async fn complete_stream(
        &self,
        caller: &Caller,
        req: gw::CompleteRequest,
    ) -> Result<RelayStream, GatewayError> {
        self.complete_stream_keyed(caller, None, req).await
    }

    /// [`Gateway::complete_stream`] for a caller authenticated by an API key, which the
    /// relay re-checks whenever the tenant changes: a revoked key ends its open streams.
    pub(crate) async fn complete_stream_keyed(
        &self,
        caller: &Caller,
        api_key: Option<String>,
        req: gw::CompleteRequest,
    ) -> Result<RelayStream, GatewayError> {
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
        mut opened_tx: tokio::sync::oneshot::Sender<Result<RelayStream, GatewayError>>,
    ) {
        let p = match self.write_intent(admitted).await {
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
                self.record_outcome(&p, "", "", Usage::default(), "cancelled", attempts)
                    .await;
                return;
            }
            Some(Err(e)) => {
                let class = crate::routing::error_class(&e);
                let err = GatewayError::routed(e, &attempts);
                self.record_outcome(&p, "", "", Usage::default(), &class, attempts)
                    .await;
                let _ = opened_tx.send(Err(err));
                return;
            }
            Some(Ok(x)) => x,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let stalled = Arc::new(std::sync::Mutex::new(None));
        let relay = Relay {
            tx,
            idle: p.providers.stream_idle(&provider),
            stalled: stalled.clone(),
        };
        if opened_tx
            .send(Ok(RelayStream {
                rx,
                stalled,
                ended: false,
            }))
            .is_err()
        {
            drop(upstream);
            self.record_outcome(
                &p,
                &provider,
                &model,
                Usage::default(),
                "cancelled",
                attempts,
            )
            .await;
            return;
        }
        self.relay(p, provider, model, upstream, changes, attempts, relay)
            .await;
    }

    /// Relays one stream to its reader until it ends, the reader goes away or stops
    /// reading for the idle timeout, or the tenant opts out; then drops the upstream
    /// (cancelling the provider's request), records the outcome and frees the slot.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        p: Prepared,
        provider: String,
        mut model: String,
        mut upstream: warden_providers::EventStream,
        mut changes: tokio::sync::broadcast::Receiver<String>,
        attempts: Vec<pb::Attempt>,
        relay: Relay,
    ) {
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
                () = relay.tx.closed() => {
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
                            let _ = relay.send(Err(Status::unavailable(
                                "tenant settings can no longer be followed; the answer was stopped (fail closed)",
                            ))).await;
                            break;
                        }
                    };
                    if ours
                        && let Some(key) = &p.api_key
                        && matches!(
                            self.inner.api_keys.lookup(key).await,
                            Err(crate::api_keys::KeyError::Unknown)
                        )
                    {
                        outcome = "key_revoked".into();
                        let _ = relay.send(Err(Status::unauthenticated(
                            "the API key of this call was revoked; the answer was stopped",
                        ))).await;
                        break;
                    }
                    if ours && !self.tenant_still_enabled(&p.req.tenant_id).await
                    {
                        // Opt-out takes effect mid-answer too: stop relaying, cancel upstream.
                        outcome = "opted_out".into();
                        let _ = relay.send(Err(Status::failed_precondition(format!(
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
                            id: pseudonyms.restore(&id),
                            name: pseudonyms.restore(&name),
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
                    let _ = relay.send(Err(Status::from(GatewayError::from(e)))).await;
                    break;
                }
            }
            if let Err(ended) = relay.send_all(out).await {
                // Dropping `upstream` below cancels the provider call.
                outcome = ended.outcome().into();
                break;
            }
        }
        if outcome == "ok" {
            let mut rest = Vec::new();
            flush_text(&mut restorer, pseudonyms, &mut rest);
            flush_tools(&mut tools, pseudonyms, &mut rest);
            rest.push(gw::complete_stream_event::Event::End(gw::StreamEnd {
                stop_reason: stop_to_proto(stop) as i32,
                usage: Some(pb::Usage {
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                }),
                attempts: attempts.clone(),
            }));
            if let Err(ended) = relay.send_all(rest).await {
                outcome = ended.outcome().into();
            }
        }
        drop(upstream);
        drop(relay);
        self.record_outcome(&p, &provider, &model, usage, &outcome, attempts)
            .await;
        metrics::histogram!("warden_gateway_request_duration_seconds", "rpc" => "CompleteStream")
            .record(p.started.elapsed().as_secs_f64());
        // `p` (and with it the tenant's concurrency slot) is released here.
    }

    async fn tenant_still_enabled(&self, tenant_id: &str) -> bool {
        matches!(self.inner.tenants.get(tenant_id).await, Ok(Some(s)) if s.enabled)
    }
}

/// The sending end of one stream. Every send waits at most the stream idle timeout: a
/// reader that stops reading (the connection open, its window full) must not pin the
/// relay, the upstream request and the tenant's slot.
struct Relay {
    tx: tokio::sync::mpsc::Sender<Result<gw::CompleteStreamEvent, Status>>,
    idle: std::time::Duration,
    stalled: Arc<std::sync::Mutex<Option<Status>>>,
}

/// Why a relay stopped sending.
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// The reader went away.
    Gone,
    /// The reader took nothing for the idle timeout.
    Stalled,
}

impl Ended {
    fn outcome(self) -> &'static str {
        match self {
            Ended::Gone => "cancelled",
            Ended::Stalled => "reader_stalled",
        }
    }
}

// === impl Relay ===

impl Relay {
    async fn send(&self, item: Result<gw::CompleteStreamEvent, Status>) -> Result<(), Ended> {
        match tokio::time::timeout(self.idle, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ended::Gone),
            Err(_) => {
                // What is still queued is dropped: the reader, should it come back, gets
                // this error next and then the end of the stream.
                let status = Status::from(GatewayError::ReaderStalled {
                    idle_ms: self.idle.as_millis() as u64,
                });
                match self.stalled.lock() {
                    Ok(mut g) => *g = Some(status),
                    Err(poisoned) => *poisoned.into_inner() = Some(status),
                }
                metrics::counter!("warden_gateway_stream_reader_stalled_total").increment(1);
                Err(Ended::Stalled)
            }
        }
    }

    async fn send_all(&self, events: Vec<gw::complete_stream_event::Event>) -> Result<(), Ended> {
        for event in events {
            self.send(Ok(gw::CompleteStreamEvent { event: Some(event) }))
                .await?;
        }
        Ok(())
    }
}

/// The events of one stream, as tonic sends them to the reader. Once the relay has
/// given up on a reader that stopped reading, the reader gets one `READER_STALLED`
/// error instead of what was still queued, then the end.
pub struct RelayStream {
    rx: tokio::sync::mpsc::Receiver<Result<gw::CompleteStreamEvent, Status>>,
    stalled: Arc<std::sync::Mutex<Option<Status>>>,
    ended: bool,
}

// === impl RelayStream ===

impl futures::Stream for RelayStream {
    type Item = Result<gw::CompleteStreamEvent, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        let stalled = match self.stalled.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(status) = stalled {
            self.ended = true;
            self.rx.close();
            return std::task::Poll::Ready(Some(Err(status)));
        }
        self.rx.poll_recv(cx)
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
            Content::ToolUse { id, name, input } => {
                *id = pseudonyms.restore(id);
                *name = pseudonyms.restore(name);
                pseudonyms.restore_value(input);
            }
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
