//! The relay of one streamed answer, from the provider to the reader.
//!
//! Split in two so the rules can be tested without sockets or clocks:
//! - [`Machine`] is pure: a provider event in, the events for the reader (or the error
//!   that ends the stream, with the call's [`Outcome`]) out. It restores pseudonymized
//!   identifiers across event boundaries, holds back the ends of text and tool arguments
//!   that may be the start of a placeholder, sends `StreamStart` (with the audit id)
//!   first and `StreamEnd` last. [`stop_for`] decides whether a tenant change ends the
//!   stream.
//! - [`Gateway::relay`] drives it: it waits for whichever comes first of the next
//!   provider event, the reader going away, or a tenant change; sends with the idle
//!   timeout ([`Outbox`]); and when the stream ends drops the upstream (cancelling the
//!   provider's request), records the outcome and frees the tenant's slot.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use tonic::Status;
use warden_minimize::Pseudonyms;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::gateway::v1::complete_stream_event::Event;
use warden_providers::{ProviderError, StopReason, StreamEvent, Usage};

use crate::Gateway;
use crate::complete::{Prepared, stop_to_proto};
use crate::minimize::StreamRestorer;
use crate::outcome::Outcome;
use crate::status::GatewayError;

/// What the driver does after one provider event.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send these events (perhaps none) and wait for the next.
    Send(Vec<Event>),
    /// Send this error and end the stream; the call ends with `outcome`.
    Fail { error: Status, outcome: Outcome },
}

/// One stream's relay state: everything between the provider's events and the reader's.
pub(crate) struct Machine<'p> {
    pseudonyms: &'p Pseudonyms,
    /// Sent before anything else; `None` once sent.
    start: Option<gw::StreamStart>,
    model: String,
    text: StreamRestorer,
    /// Each open tool call's arguments, by the provider's block index.
    tools: BTreeMap<u32, StreamRestorer>,
    usage: Usage,
    stop: StopReason,
}

impl<'p> Machine<'p> {
    /// `start` is what the reader gets first; its model is replaced by the one the
    /// provider names in its own first event, if it names one.
    pub(crate) fn new(start: gw::StreamStart, pseudonyms: &'p Pseudonyms) -> Self {
        Machine {
            pseudonyms,
            model: start.model.clone(),
            start: Some(start),
            text: StreamRestorer::default(),
            tools: BTreeMap::new(),
            usage: Usage::default(),
            stop: StopReason::EndTurn,
        }
    }

    /// The model that answered, as far as the stream has told.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// The usage the provider reported last.
    pub(crate) fn usage(&self) -> Usage {
        self.usage
    }

    /// One provider event.
    pub(crate) fn upstream(&mut self, ev: Result<StreamEvent, ProviderError>) -> Step {
        let ev = match ev {
            Ok(ev) => ev,
            // After the first event there is no failover: the stream ends with the error.
            Err(e) => {
                return Step::Fail {
                    outcome: Outcome::from(&e),
                    error: Status::from(GatewayError::from(e)),
                };
            }
        };
        let mut out = Vec::new();
        if let StreamEvent::Start { model } = &ev
            && self.start.is_some()
            && !model.is_empty()
        {
            self.model = model.clone();
        }
        self.started(&mut out);
        let pseudonyms = self.pseudonyms;
        match ev {
            StreamEvent::TextDelta { text } => {
                self.flush_tools(&mut out);
                let text = self.text.push(pseudonyms, &text);
                if !text.is_empty() {
                    out.push(Event::TextDelta(gw::TextDelta { text }));
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                // A new block: what earlier blocks held back cannot complete any more.
                self.flush_text(&mut out);
                self.flush_tools(&mut out);
                self.tools.insert(index, StreamRestorer::json());
                out.push(Event::ToolCallDelta(gw::ToolCallDelta {
                    index,
                    id: pseudonyms.restore(&id),
                    name: pseudonyms.restore(&name),
                    arguments_json_delta: String::new(),
                }));
            }
            StreamEvent::ToolCallDelta {
                index,
                partial_json,
            } => {
                let arguments_json_delta = self
                    .tools
                    .entry(index)
                    .or_insert_with(StreamRestorer::json)
                    .push(pseudonyms, &partial_json);
                if !arguments_json_delta.is_empty() {
                    out.push(Event::ToolCallDelta(gw::ToolCallDelta {
                        index,
                        arguments_json_delta,
                        ..Default::default()
                    }));
                }
            }
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Stop { reason } => self.stop = reason,
            StreamEvent::Start { .. } => {}
        }
        Step::Send(out)
    }

    /// The provider's stream ended: what was held back, then `StreamEnd`.
    pub(crate) fn finish(&mut self, attempts: &[pb::Attempt]) -> Vec<Event> {
        let mut out = Vec::new();
        self.started(&mut out);
        self.flush_text(&mut out);
        self.flush_tools(&mut out);
        out.push(Event::End(gw::StreamEnd {
            stop_reason: stop_to_proto(self.stop) as i32,
            usage: Some(pb::Usage {
                input_tokens: self.usage.input_tokens,
                output_tokens: self.usage.output_tokens,
            }),
            attempts: attempts.to_vec(),
        }));
        out
    }

    /// `StreamStart` goes first, whatever the provider's first event is.
    fn started(&mut self, out: &mut Vec<Event>) {
        if let Some(mut start) = self.start.take() {
            start.model.clone_from(&self.model);
            out.push(Event::Start(start));
        }
    }

    /// The held-back ends of every tool call's arguments (a block ended, or the stream).
    fn flush_tools(&mut self, out: &mut Vec<Event>) {
        for (index, r) in self.tools.iter_mut() {
            let rest = r.finish(self.pseudonyms);
            if !rest.is_empty() {
                out.push(Event::ToolCallDelta(gw::ToolCallDelta {
                    index: *index,
                    arguments_json_delta: rest,
                    ..Default::default()
                }));
            }
        }
    }

    /// The held-back end of the answer text.
    fn flush_text(&mut self, out: &mut Vec<Event>) {
        let rest = self.text.finish(self.pseudonyms);
        if !rest.is_empty() {
            out.push(Event::TextDelta(gw::TextDelta { text: rest }));
        }
    }
}

/// The tenant as it stands after a change was announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantNow {
    /// Changes can no longer be followed (the watch ended).
    Unfollowable,
    /// Re-read: whether the call's API key (if it came with one) was revoked, and whether
    /// AI is still enabled.
    Read { key_revoked: bool, enabled: bool },
}

/// Whether a stream must end after its tenant changed, with the reader's error.
pub(crate) fn stop_for(now: TenantNow, tenant_id: &str) -> Option<(Outcome, Status)> {
    match now {
        TenantNow::Unfollowable => Some((
            Outcome::SettingsUnavailable,
            Status::unavailable(
                "tenant settings can no longer be followed; the answer was stopped (fail closed)",
            ),
        )),
        TenantNow::Read {
            key_revoked: true, ..
        } => Some((
            Outcome::KeyRevoked,
            Status::unauthenticated("the API key of this call was revoked; the answer was stopped"),
        )),
        // Opt-out takes effect mid-answer too.
        TenantNow::Read { enabled: false, .. } => Some((
            Outcome::OptedOut,
            Status::failed_precondition(format!(
                "AI features were disabled for tenant {tenant_id} during this call; the answer was stopped"
            )),
        )),
        TenantNow::Read { .. } => None,
    }
}

impl Gateway {
    /// Relays one stream to its reader until it ends, the reader goes away or stops
    /// reading for the idle timeout, or the tenant opts out; then drops the upstream
    /// (cancelling the provider's request), records the outcome and frees the slot.
    pub(crate) async fn relay(
        &self,
        mut p: Prepared,
        opened: crate::complete::Opened,
        mut changes: tokio::sync::broadcast::Receiver<String>,
        outbox: Outbox,
    ) {
        let crate::complete::Opened {
            provider,
            model,
            mut upstream,
            attempts,
        } = opened;
        let start = gw::StreamStart {
            provider: provider.clone(),
            model,
            audit_record_id: p.intent_id.clone(),
            minimization: Some(p.minimized.summary.clone()),
        };
        let mut machine = Machine::new(start, &p.minimized.pseudonyms);
        let tenant_id = p.req.tenant_id.as_str();
        let outcome = loop {
            let next = tokio::select! {
                ev = upstream.next() => ev,
                // The caller went away, perhaps while upstream is silent: stop now.
                () = outbox.tx.closed() => break Outcome::Cancelled,
                changed = changes.recv() => {
                    use tokio::sync::broadcast::error::RecvError;
                    let now = match changed {
                        Ok(t) if t != tenant_id => continue,
                        // A lagged receiver may have missed this tenant's change.
                        Ok(_) | Err(RecvError::Lagged(_)) => self.tenant_now(&p).await,
                        Err(RecvError::Closed) => TenantNow::Unfollowable,
                    };
                    match stop_for(now, tenant_id) {
                        Some((outcome, error)) => {
                            let _ = outbox.send(Err(error)).await;
                            break outcome;
                        }
                        None => continue,
                    }
                }
            };
            let step = match next {
                Some(ev) => machine.upstream(ev),
                None => match outbox.send_all(machine.finish(&attempts)).await {
                    Ok(()) => break Outcome::Ok,
                    Err(ended) => break ended,
                },
            };
            match step {
                Step::Send(events) => {
                    if let Err(ended) = outbox.send_all(events).await {
                        break ended;
                    }
                }
                Step::Fail { error, outcome } => {
                    let _ = outbox.send(Err(error)).await;
                    break outcome;
                }
            }
        };
        // Dropping the upstream cancels the provider's request, if it is still open.
        drop(upstream);
        drop(outbox);
        let (model, usage) = (machine.model().to_owned(), machine.usage());
        let end = p
            .end(outcome, attempts)
            .answered_by(&provider, &model, usage);
        metrics::histogram!("warden_gateway_request_duration_seconds", "rpc" => "CompleteStream")
            .record(end.latency.as_secs_f64());
        self.record_outcome(&p, end).await;
    }

    /// Re-reads what a tenant change may have changed for this call.
    async fn tenant_now(&self, p: &Prepared) -> TenantNow {
        let key_revoked = match &p.api_key {
            Some(key) => matches!(
                self.inner.api_keys.lookup(key).await,
                Err(crate::api_keys::KeyError::Unknown)
            ),
            None => false,
        };
        let enabled = matches!(
            self.inner.tenants.get(&p.req.tenant_id).await,
            Ok(Some(s)) if s.enabled
        );
        TenantNow::Read {
            key_revoked,
            enabled,
        }
    }
}

/// The sending end of one stream. Every send waits at most the stream idle timeout: a
/// reader that stops reading (the connection open, its window full) must not pin the
/// relay, the upstream request and the tenant's slot.
pub(crate) struct Outbox {
    tx: tokio::sync::mpsc::Sender<Result<gw::CompleteStreamEvent, Status>>,
    idle: std::time::Duration,
    stalled: Arc<std::sync::Mutex<Option<Status>>>,
}

// === impl Outbox ===

impl Outbox {
    /// An outbox, and the stream tonic (or the HTTP front) reads from it.
    pub(crate) fn new(idle: std::time::Duration) -> (Outbox, RelayStream) {
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let stalled = Arc::new(std::sync::Mutex::new(None));
        let outbox = Outbox {
            tx,
            idle,
            stalled: stalled.clone(),
        };
        let stream = RelayStream {
            rx,
            stalled,
            ended: false,
        };
        (outbox, stream)
    }

    /// Sends one item; `Err` with the outcome when the reader went away or stalled.
    async fn send(&self, item: Result<gw::CompleteStreamEvent, Status>) -> Result<(), Outcome> {
        match tokio::time::timeout(self.idle, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Outcome::Cancelled),
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
                Err(Outcome::ReaderStalled)
            }
        }
    }

    async fn send_all(&self, events: Vec<Event>) -> Result<(), Outcome> {
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

#[cfg(test)]
#[path = "relay/tests.rs"]
mod tests;
