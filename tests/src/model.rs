//! A scripted model: the one stand-in an investigation test needs (no model runs here).
//!
//! It answers each request with the next planned step (a tool call, or a final answer),
//! records what it was offered and every tool result it saw, and can hold a step until
//! the test releases it, so a test can change a tenant's settings in the middle of a run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Semaphore;
use warden_providers::{
    ChatRequest, ChatResponse, Content, EventStream, Provider, ProviderError, StopReason, Usage,
};

/// One planned answer.
pub enum Step {
    /// Call this tool with this input.
    Tool(&'static str, Value),
    /// Answer with this text (the run's finding).
    Answer(&'static str),
}

/// A planned answer that waits for [`ScriptedModel::release`] before it is given.
pub struct Held(pub Step);

/// What the model saw at one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Tool names offered.
    pub offered: Vec<String>,
    /// The latest tool result: (content, is_error), if the request ended with one.
    pub last_result: Option<(String, bool)>,
    /// Every tool result in the conversation: (content, is_error).
    pub results: Vec<(String, bool)>,
}

pub struct ScriptedModel {
    plan: Mutex<VecDeque<(Step, bool)>>,
    seen: Mutex<Vec<Seen>>,
    /// Permits to pass a held step.
    release: Arc<Semaphore>,
    /// Permits added each time a held step is reached.
    reached: Arc<Semaphore>,
}

impl ScriptedModel {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Arc<ScriptedModel> {
        let m = ScriptedModel {
            plan: Mutex::default(),
            seen: Mutex::default(),
            release: Arc::new(Semaphore::new(0)),
            reached: Arc::new(Semaphore::new(0)),
        };
        m.plan
            .lock()
            .unwrap()
            .extend(steps.into_iter().map(|s| (s, false)));
        Arc::new(m)
    }

    /// Appends a step that waits for [`ScriptedModel::release`].
    pub fn then_held(&self, step: Step) {
        self.plan.lock().unwrap().push_back((step, true));
    }

    /// Appends a step.
    pub fn then(&self, step: Step) {
        self.plan.lock().unwrap().push_back((step, false));
    }

    /// Waits until the run reaches a held step.
    pub async fn reached(&self) {
        self.reached.acquire().await.unwrap().forget();
    }

    /// Lets a held step through.
    pub fn release(&self) {
        self.release.add_permits(1);
    }

    /// What the model saw, one entry per request.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn next(&self, req: &ChatRequest) -> ChatResponse {
        let last_result = req.messages.last().and_then(|m| {
            m.content.iter().rev().find_map(|c| match c {
                Content::ToolResult {
                    content, is_error, ..
                } => Some((content.clone(), *is_error)),
                _ => None,
            })
        });
        let results = req
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .filter_map(|c| match c {
                Content::ToolResult {
                    content, is_error, ..
                } => Some((content.clone(), *is_error)),
                _ => None,
            })
            .collect();
        self.seen.lock().unwrap().push(Seen {
            offered: req.tools.iter().map(|t| t.name.clone()).collect(),
            last_result,
            results,
        });
        let next = self.plan.lock().unwrap().pop_front();
        let step = match next {
            Some((step, held)) => {
                if held {
                    self.reached.add_permits(1);
                    self.release.acquire().await.unwrap().forget();
                }
                step
            }
            None => Step::Answer("no more steps planned"),
        };
        let (content, stop_reason) = match step {
            Step::Tool(name, input) => (
                vec![Content::ToolUse {
                    id: format!("call-{}", req.messages.len()),
                    name: name.into(),
                    input,
                }],
                StopReason::ToolUse,
            ),
            Step::Answer(text) => (vec![Content::text(text)], StopReason::EndTurn),
        };
        ChatResponse {
            model: "scripted".into(),
            content,
            stop_reason,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 10,
            },
        }
    }
}

#[async_trait::async_trait]
impl Provider for ScriptedModel {
    fn name(&self) -> &str {
        "local"
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Ok(self.next(req).await)
    }

    /// The agent asks for whole answers; a stream is not part of any script.
    async fn stream(&self, _req: &ChatRequest) -> Result<EventStream, ProviderError> {
        Err(ProviderError::Invalid {
            provider: "local".into(),
            message: "the scripted model answers unary requests only".into(),
        })
    }
}
