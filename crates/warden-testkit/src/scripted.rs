//! A scripted model on the real Anthropic Messages wire (JSON and SSE), so integration
//! tests — and separate `warden serve` processes — drive long investigations through the
//! real gateway and its real Anthropic adapter, with every answer planned by the test.
//!
//! The turn answered is derived from the request, never from server state: it is the
//! number of assistant messages already in `messages`. A retried request, or a run resumed
//! on another agent replica after a crash, therefore gets the same answer for the same
//! position. Several conversations run at once: each script is chosen by a marker that
//! must occur in the system prompt or the first user message. Anything unplanned (no
//! script matches, several match, the position is past the end) is answered with a 500 in
//! Anthropic's error shape naming the problem, so a test fails loudly instead of hanging.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_testkit::KitError> {
//! use serde_json::json;
//! use warden_testkit::{MockServer, ScriptedAnthropic, TestCa, Turn};
//!
//! let ca = TestCa::new()?;
//! let model = ScriptedAnthropic::new("sk-ant-test");
//! let run = model.script(
//!     "incident-7f3a",
//!     vec![
//!         Turn::tools([("query_logs", json!({})), ("log_patterns", json!({}))]),
//!         Turn::tool("find_traces", json!({"order": "failed"})).held(),
//!         Turn::answer("The payment timeout was lowered to 3 s.").with_output_tokens(900),
//!     ],
//! );
//! let server = MockServer::start(&ca, model.clone()).await?;
//! // ... point the gateway's `anthropic` provider at server.url(), trust ca.ca_pem() ...
//! assert_eq!(run.reached().await, 1);
//! run.release();
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::anthropic::{
    accept, error_reply, fragments, message_end, message_reply, message_start, sse, stream_reply,
    text_block, tool_block, wants_stream,
};
use crate::{MockApi, Recorded, Reply};

/// Output tokens reported for an answered turn that does not set its own
/// ([`Turn::with_output_tokens`]) when the model was not given another default.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 16;

/// One planned answer, at one position of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Call these tools, all in one response (one `tool_use` block each, in order).
    Tools(Vec<(String, Value)>),
    /// Answer with this text (`stop_reason: end_turn`).
    Answer(String),
    /// Answer with this HTTP status (400–599) and Anthropic's error body for it.
    Fail(u16),
    /// Answer with the inner turn only once the test released it ([`ScriptHandle::release`]).
    Hold(Box<Turn>),
    /// The inner turn, reporting this many output tokens.
    OutputTokens(u64, Box<Turn>),
}

impl Turn {
    /// One tool call.
    pub fn tool(name: impl Into<String>, input: Value) -> Turn {
        Turn::Tools(vec![(name.into(), input)])
    }

    /// Several tool calls in one response.
    pub fn tools<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Turn {
        Turn::Tools(calls.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }

    pub fn answer(text: impl Into<String>) -> Turn {
        Turn::Answer(text.into())
    }

    /// This turn, held until [`ScriptHandle::release`].
    pub fn held(self) -> Turn {
        Turn::Hold(Box::new(self))
    }

    /// This turn, reporting `output_tokens` (so a test can exhaust a token budget).
    pub fn with_output_tokens(self, output_tokens: u64) -> Turn {
        Turn::OutputTokens(output_tokens, Box::new(self))
    }
}

/// A `tool_result` block as a request carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub tool_use_id: String,
    /// The text: the string content, or the `text` blocks joined (other blocks as JSON).
    pub content: String,
    pub is_error: bool,
}

/// One request a script answered (or refused), as the scripted model saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The turn index: assistant messages already in the conversation.
    pub position: usize,
    pub model: String,
    pub streamed: bool,
    /// Names of the tools the request offered, in order.
    pub offered_tools: Vec<String>,
    /// Every `tool_result` block of the conversation, oldest first.
    pub tool_results: Vec<ToolResult>,
    /// The `tool_result` blocks of the last message only (what the latest step returned).
    pub latest_tool_results: Vec<ToolResult>,
    /// Reported input tokens: request body bytes / 4, rounded up.
    pub input_tokens: u64,
    /// Reported output tokens (0 for an error answer).
    pub output_tokens: u64,
    /// The HTTP status it was (or, while held, will be) answered with.
    pub status: u16,
    /// The request waited for [`ScriptHandle::release`].
    pub held: bool,
}

/// The scripted model. Cheap to clone: clones share the scripts, so a test keeps one and
/// gives a clone to [`crate::MockServer::start`]; scripts may be added while it serves.
#[derive(Clone)]
pub struct ScriptedAnthropic {
    inner: Arc<Inner>,
}

struct Inner {
    api_key: String,
    default_output_tokens: AtomicU64,
    scripts: Mutex<Vec<Arc<Script>>>,
    problems: Mutex<Vec<String>>,
}

struct Script {
    id: usize,
    marker: String,
    turns: Vec<Turn>,
    calls: Mutex<Vec<ScriptedCall>>,
    holds: watch::Sender<Holds>,
    /// Held hits already returned by [`ScriptHandle::reached`].
    observed: AtomicUsize,
}

#[derive(Debug, Default)]
struct Holds {
    /// Positions of held requests, in arrival order.
    hits: Vec<usize>,
    /// Positions released: requests there are answered at once.
    released: BTreeSet<usize>,
    waiting: usize,
    dropped: usize,
}

/// The test's side of one script: what it received, and its held turns.
#[derive(Clone)]
pub struct ScriptHandle {
    script: Arc<Script>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for ScriptedAnthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let markers: Vec<String> = lock(&self.inner.scripts)
            .iter()
            .map(|s| s.marker.clone())
            .collect();
        f.debug_struct("ScriptedAnthropic")
            .field("markers", &markers)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ScriptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptHandle")
            .field("marker", &self.script.marker)
            .finish_non_exhaustive()
    }
}

impl ScriptedAnthropic {
    /// A model that accepts only `api_key` (in `x-api-key`, or `Authorization: Bearer`).
    pub fn new(api_key: impl Into<String>) -> Self {
        ScriptedAnthropic {
            inner: Arc::new(Inner {
                api_key: api_key.into(),
                default_output_tokens: AtomicU64::new(DEFAULT_OUTPUT_TOKENS),
                scripts: Mutex::new(Vec::new()),
                problems: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Output tokens reported by turns that do not set their own.
    pub fn with_output_tokens(self, output_tokens: u64) -> Self {
        self.inner
            .default_output_tokens
            .store(output_tokens, Ordering::SeqCst);
        self
    }

    /// Plans the conversation whose system prompt or first user message contains `marker`.
    /// Markers must be unique and must not contain one another: a request matching two
    /// scripts is refused. Pick a marker minimization leaves alone (no e-mail, IP, secret).
    pub fn script(&self, marker: impl Into<String>, turns: Vec<Turn>) -> ScriptHandle {
        let mut scripts = lock(&self.inner.scripts);
        let script = Arc::new(Script {
            id: scripts.len(),
            marker: marker.into(),
            turns,
            calls: Mutex::new(Vec::new()),
            holds: watch::Sender::new(Holds::default()),
            observed: AtomicUsize::new(0),
        });
        scripts.push(script.clone());
        ScriptHandle { script }
    }

    /// Every unplanned request, as the message of the 500 it was answered with.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.inner.problems).clone()
    }

    fn problem(&self, message: String) -> Reply {
        let reply = error_reply(500, &message, None);
        lock(&self.inner.problems).push(message);
        reply
    }

    fn select(&self, body: &Value) -> Result<Arc<Script>, String> {
        let scripts = lock(&self.inner.scripts);
        let (system, first_user) = (system_text(body), first_user_text(body));
        let matching: Vec<&Arc<Script>> = scripts
            .iter()
            .filter(|s| system.contains(&s.marker) || first_user.contains(&s.marker))
            .collect();
        match matching.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => Err(format!(
                "scripted model: no script's marker occurs in the system prompt or first user message (markers: {:?})",
                scripts.iter().map(|s| &s.marker).collect::<Vec<_>>()
            )),
            several => Err(format!(
                "scripted model: the request matches several scripts' markers: {:?}",
                several.iter().map(|s| &s.marker).collect::<Vec<_>>()
            )),
        }
    }
}

impl MockApi for ScriptedAnthropic {
    fn handle(&self, req: &mut Recorded) -> Reply {
        let body = match accept(req, Some(&self.inner.api_key)) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let script = match self.select(&body) {
            Ok(script) => script,
            Err(problem) => return self.problem(problem),
        };
        let position = position(&body);
        let results = tool_results(&body);
        let mut call = ScriptedCall {
            position,
            model: body["model"].as_str().unwrap_or_default().to_owned(),
            streamed: wants_stream(&body),
            offered_tools: offered_tools(&body),
            latest_tool_results: results.latest,
            tool_results: results.all,
            input_tokens: (req.body.len() as u64).div_ceil(4),
            output_tokens: 0,
            status: 200,
            held: false,
        };
        let Some(turn) = script.turns.get(position) else {
            call.status = 500;
            script.record(call);
            return self.problem(format!(
                "scripted model: script {:?} has {} turn(s); the request is at position {position} (assistant messages so far)",
                script.marker,
                script.turns.len()
            ));
        };
        let plan = plan(turn);
        let output_tokens = plan
            .output_tokens
            .unwrap_or_else(|| self.inner.default_output_tokens.load(Ordering::SeqCst));
        let reply = match plan.what {
            What::Fail(status) => {
                call.status = status;
                error_reply(
                    status,
                    &format!(
                        "scripted failure at position {position} of {:?}",
                        script.marker
                    ),
                    None,
                )
            }
            What::Tools([]) => {
                call.status = 500;
                script.record(call);
                return self.problem(format!(
                    "scripted model: Turn::Tools at position {position} of {:?} names no tool",
                    script.marker
                ));
            }
            What::Tools(tools) => {
                call.output_tokens = output_tokens;
                let calls: Vec<(String, &str, &Value)> = tools
                    .iter()
                    .enumerate()
                    .map(|(i, (name, input))| {
                        (tool_use_id(script.id, position, i), name.as_str(), input)
                    })
                    .collect();
                render_tools(&call, &calls)
            }
            What::Answer(text) => {
                call.output_tokens = output_tokens;
                render_answer(&call, text)
            }
        };
        let gate = plan.held.then(|| script.hold(position)).flatten();
        call.held = gate.is_some();
        script.record(call);
        match gate {
            Some(gate) => Reply::Deferred(Box::pin(gate.pass(reply))),
            None => reply,
        }
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        error_reply(status, "scripted fault", retry_after)
    }

    fn malformed_event(&self) -> bytes::Bytes {
        bytes::Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n")
    }

    fn stream_error_event(&self) -> bytes::Bytes {
        sse(
            "error",
            &json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        )
    }
}

impl Script {
    fn record(&self, call: ScriptedCall) {
        lock(&self.calls).push(call);
    }

    /// Registers a held request at `position`, unless that position was already released.
    fn hold(self: &Arc<Self>, position: usize) -> Option<Gate> {
        let mut gate = None;
        self.holds.send_modify(|h| {
            if !h.released.contains(&position) {
                h.hits.push(position);
                h.waiting += 1;
                gate = Some(Gate {
                    script: self.clone(),
                    position,
                    passed: false,
                });
            }
        });
        gate
    }
}

/// A held request. Dropped before its position is released (the client went away), it
/// counts as dropped while held.
struct Gate {
    script: Arc<Script>,
    position: usize,
    passed: bool,
}

impl Gate {
    async fn pass(mut self, reply: Reply) -> Reply {
        let mut holds = self.script.holds.subscribe();
        let position = self.position;
        // The sender lives in the script this gate holds, so waiting cannot fail.
        let _ = holds.wait_for(|h| h.released.contains(&position)).await;
        self.passed = true;
        reply
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let passed = self.passed;
        self.script.holds.send_modify(|h| {
            h.waiting = h.waiting.saturating_sub(1);
            if !passed {
                h.dropped += 1;
            }
        });
    }
}

impl ScriptHandle {
    pub fn marker(&self) -> &str {
        &self.script.marker
    }

    /// Every request this script received, oldest first.
    pub fn calls(&self) -> Vec<ScriptedCall> {
        lock(&self.script.calls).clone()
    }

    /// Input tokens reported over all answered requests.
    pub fn input_tokens(&self) -> u64 {
        self.calls()
            .iter()
            .filter(|c| c.status == 200)
            .map(|c| c.input_tokens)
            .sum()
    }

    /// Output tokens reported over all answered requests.
    pub fn output_tokens(&self) -> u64 {
        self.calls().iter().map(|c| c.output_tokens).sum()
    }

    /// Waits for the next held request (each call waits for one more) and returns its
    /// position. Wrap it in a timeout: it waits as long as no held turn is reached.
    pub async fn reached(&self) -> usize {
        let n = self.script.observed.fetch_add(1, Ordering::SeqCst);
        let mut holds = self.script.holds.subscribe();
        loop {
            if let Some(&position) = holds.borrow_and_update().hits.get(n) {
                return position;
            }
            if holds.changed().await.is_err() {
                // The sender lives in the script this handle holds: unreachable in practice.
                return std::future::pending().await;
            }
        }
    }

    /// Answers every held request reached so far, and from now on any request at those
    /// positions (a retry) at once. Held turns at positions not reached yet still hold.
    pub fn release(&self) {
        self.script.holds.send_modify(|h| {
            let reached: Vec<usize> = h.hits.clone();
            h.released.extend(reached);
        });
    }

    /// Requests waiting on a held turn right now.
    pub fn held(&self) -> usize {
        self.script.holds.borrow().waiting
    }

    /// Held requests whose client went away (the connection was dropped) before release.
    /// (A held request answered by a [`crate::Fault::Status`] fault also counts: its held
    /// answer is dropped unsent.)
    pub fn dropped_while_held(&self) -> usize {
        self.script.holds.borrow().dropped
    }

    /// Waits until at least `n` held requests were dropped by their client. Wrap it in a
    /// timeout.
    pub async fn dropped(&self, n: usize) {
        let mut holds = self.script.holds.subscribe();
        let _ = holds.wait_for(|h| h.dropped >= n).await;
    }
}

/// A turn with its wrappers taken off.
struct Plan<'a> {
    held: bool,
    /// The outermost [`Turn::OutputTokens`], if any.
    output_tokens: Option<u64>,
    what: What<'a>,
}

enum What<'a> {
    Tools(&'a [(String, Value)]),
    Answer(&'a str),
    Fail(u16),
}

fn plan(turn: &Turn) -> Plan<'_> {
    let (mut held, mut output_tokens, mut turn) = (false, None, turn);
    loop {
        let what = match turn {
            Turn::Hold(inner) => {
                held = true;
                turn = inner;
                continue;
            }
            Turn::OutputTokens(n, inner) => {
                output_tokens = output_tokens.or(Some(*n));
                turn = inner;
                continue;
            }
            Turn::Tools(calls) => What::Tools(calls),
            Turn::Answer(text) => What::Answer(text),
            Turn::Fail(status) => What::Fail(*status),
        };
        return Plan {
            held,
            output_tokens,
            what,
        };
    }
}

/// Unique per (script, position, index), in the `toolu_` form Anthropic uses.
fn tool_use_id(script: usize, position: usize, index: usize) -> String {
    format!("toolu_01S{script}P{position}I{index}")
}

/// The turn index: assistant messages already in the conversation.
fn position(body: &Value) -> usize {
    messages(body)
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .count()
}

fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A string, or the `text` of `text` blocks joined; other blocks as their JSON.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(
                |b| match (b.get("type").and_then(Value::as_str), b.get("text")) {
                    (Some("text"), Some(Value::String(t))) => t.clone(),
                    _ => b.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn system_text(body: &Value) -> String {
    text_of(body.get("system"))
}

fn first_user_text(body: &Value) -> String {
    let first = messages(body)
        .iter()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    text_of(first.and_then(|m| m.get("content")))
}

fn offered_tools(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

struct Results {
    all: Vec<ToolResult>,
    latest: Vec<ToolResult>,
}

fn tool_results(body: &Value) -> Results {
    let of_message = |m: &Value| -> Vec<ToolResult> {
        m.get("content")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| ToolResult {
                tool_use_id: b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                content: text_of(b.get("content")),
                is_error: b.get("is_error").and_then(Value::as_bool) == Some(true),
            })
            .collect()
    };
    let messages = messages(body);
    Results {
        all: messages.iter().flat_map(of_message).collect(),
        latest: messages.last().map(of_message).unwrap_or_default(),
    }
}

fn render_tools(call: &ScriptedCall, calls: &[(String, &str, &Value)]) -> Reply {
    if !call.streamed {
        let content: Vec<Value> = calls
            .iter()
            .map(|(id, name, input)| json!({"type":"tool_use","id":id,"name":name,"input":input}))
            .collect();
        return message_reply(
            &call.model,
            Value::Array(content),
            "tool_use",
            call.input_tokens,
            call.output_tokens,
        );
    }
    let mut events = vec![
        message_start(&call.model, call.input_tokens),
        sse("ping", &json!({"type":"ping"})),
    ];
    for (index, (id, name, input)) in calls.iter().enumerate() {
        // As the real API does: an empty first fragment, then the JSON in small pieces.
        let pieces: Vec<String> = std::iter::once(String::new())
            .chain(fragments(&input.to_string(), 8))
            .collect();
        events.extend(tool_block(index, id, name, &pieces));
    }
    events.extend(message_end(
        "tool_use",
        call.input_tokens,
        call.output_tokens / 2,
        call.output_tokens,
    ));
    stream_reply(events)
}

fn render_answer(call: &ScriptedCall, text: &str) -> Reply {
    if !call.streamed {
        return message_reply(
            &call.model,
            json!([{"type":"text","text":text}]),
            "end_turn",
            call.input_tokens,
            call.output_tokens,
        );
    }
    let mut events = vec![message_start(&call.model, call.input_tokens)];
    events.extend(text_block(0, text, true));
    events.extend(message_end(
        "end_turn",
        call.input_tokens,
        call.output_tokens / 2,
        call.output_tokens,
    ));
    stream_reply(events)
}

#[cfg(test)]
mod tests;
