//! The same conformance cases for every adapter, against its warden-testkit mock over TLS:
//! unary, stream, tool-call round trips, and the fault matrix (each injected fault gives
//! the expected error, and nothing hangs past its timeout).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use warden_providers::{Content, Message, MessageRole, ProviderError, StopReason, StreamEvent};
use warden_testkit::Fault;

async fn unary(h: Harness) {
    let resp = h.provider.complete(&hello()).await.unwrap();
    let [Content::Text { text }] = resp.content.as_slice() else {
        panic!("{resp:?}")
    };
    assert!(text.starts_with("Hello from the"), "{text}");
    assert_eq!(resp.stop_reason, StopReason::EndTurn);
    assert!(
        resp.usage.input_tokens > 0 && resp.usage.output_tokens > 0,
        "{:?}",
        resp.usage
    );
    assert!(!resp.model.is_empty());
    assert_eq!(h.mock.calls(), 1);
}

async fn stream(h: Harness) {
    let (events, err) = collect(h.provider.as_ref(), &hello()).await;
    assert_eq!(err, None);
    assert!(
        matches!(events.first(), Some(StreamEvent::Start { .. })),
        "{events:?}"
    );
    assert!(text_of(&events).starts_with("Hello from the"), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Usage { usage } if usage.input_tokens > 0 && usage.output_tokens > 0)));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Stop {
            reason: StopReason::EndTurn
        })
    );
}

/// Model asks for the tool; we answer with a tool result; the model's reply quotes it.
/// Proves the adapter encodes tool_use and tool_result in the provider's own wire shape.
async fn tool_round_trip(h: Harness) {
    let mut req = weather();
    let first = h.provider.complete(&req).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    let (id, name, input) = first
        .content
        .iter()
        .find_map(|c| match c {
            Content::ToolUse { id, name, input } => Some((id.clone(), name.clone(), input.clone())),
            _ => None,
        })
        .expect("a tool call");
    assert_eq!(name, "get_weather");
    assert_eq!(input, serde_json::json!({"city": "Paris"}));
    req.messages.push(Message {
        role: MessageRole::Assistant,
        content: first.content.clone(),
    });
    req.messages.push(Message {
        role: MessageRole::User,
        content: vec![Content::ToolResult {
            tool_use_id: id.clone(),
            content: "18C, sunny".into(),
            is_error: false,
        }],
    });
    let second = h.provider.complete(&req).await.unwrap();
    assert_eq!(
        second.content,
        vec![Content::text("The tool said: 18C, sunny")]
    );
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    // The second request carried the tool call id back to the provider.
    let sent = String::from_utf8_lossy(&h.mock.requests()[1].body).into_owned();
    assert!(sent.contains(&id), "{sent}");
}

async fn tool_stream(h: Harness) {
    let (events, err) = collect(h.provider.as_ref(), &weather()).await;
    assert_eq!(err, None);
    let start = events.iter().find_map(|e| match e {
        StreamEvent::ToolCallStart { index, name, .. } => Some((*index, name.clone())),
        _ => None,
    });
    assert_eq!(start, Some((0, "get_weather".to_owned())), "{events:?}");
    let json: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                partial_json,
            } => Some(partial_json.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!({"city": "Paris"})
    );
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Stop {
            reason: StopReason::ToolUse
        })
    );
}

type Expect = dyn Fn(&ProviderError) -> bool;

/// The status-fault half of the matrix: status in, error class out.
async fn status_faults(h: Harness) {
    let cases: &[(Fault, &Expect)] = &[
        (Fault::status_retry_after(429, "7"), &|e| {
            e.is_rate_limited()
                && e.is_retryable()
                && e.retry_after() == Some(Duration::from_secs(7))
        }),
        (Fault::status(529), &|e| {
            matches!(e, ProviderError::Status { status: 529, .. }) && e.is_retryable()
        }),
        (Fault::status(503), &|e| {
            matches!(e, ProviderError::Status { status: 503, .. }) && e.is_retryable()
        }),
        (Fault::status(500), &|e| {
            matches!(e, ProviderError::Status { status: 500, .. }) && e.is_retryable()
        }),
        (Fault::status(401), &|e| {
            matches!(e, ProviderError::Status { status: 401, .. }) && !e.is_retryable()
        }),
        (Fault::status(400), &|e| {
            matches!(e, ProviderError::Invalid { .. }) && !e.is_retryable()
        }),
    ];
    for (fault, expected) in cases {
        h.mock.script([fault.clone()]);
        let err = h.provider.complete(&hello()).await.unwrap_err();
        assert!(expected(&err), "{}: {fault:?} gave {err:?}", h.kind);
        h.mock.script([fault.clone()]);
        let (events, err) = collect(h.provider.as_ref(), &hello()).await;
        assert!(events.is_empty(), "{events:?}");
        let err = err.expect("stream error");
        assert!(expected(&err), "{} stream: {fault:?} gave {err:?}", h.kind);
    }
}

async fn slow_first_byte(h: Harness) {
    h.mock
        .script([Fault::SlowFirstByte(Duration::from_secs(5))]);
    let t0 = Instant::now();
    let err = h.provider.complete(&hello()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "first-byte timeout took {:?}",
        t0.elapsed()
    );
    h.mock
        .script([Fault::SlowFirstByte(Duration::from_secs(5))]);
    let (_, err) = collect(h.provider.as_ref(), &hello()).await;
    assert!(
        matches!(err, Some(ProviderError::Timeout { .. })),
        "{err:?}"
    );
    // A short delay inside the budget is fine.
    h.mock
        .script([Fault::SlowFirstByte(Duration::from_millis(200))]);
    h.provider.complete(&hello()).await.unwrap();
}

async fn stall(h: Harness) {
    h.mock.script([Fault::StallAfter(2)]);
    let t0 = Instant::now();
    let (events, err) = collect(h.provider.as_ref(), &hello()).await;
    assert!(
        matches!(err, Some(ProviderError::Timeout { .. })),
        "{err:?}"
    );
    assert!(!events.is_empty(), "events before the stall are delivered");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "idle timeout took {:?}",
        t0.elapsed()
    );
    // Unary: half a body, then silence.
    h.mock.script([Fault::StallAfter(0)]);
    let err = h.provider.complete(&hello()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
}

async fn malformed(h: Harness) {
    h.mock.script([Fault::MalformedAfter(2)]);
    let (events, err) = collect(h.provider.as_ref(), &hello()).await;
    assert!(
        matches!(err, Some(ProviderError::Protocol { .. })),
        "{}: {err:?}",
        h.kind
    );
    assert!(!matches!(events.last(), Some(StreamEvent::Stop { .. })));
}

async fn mid_stream_error(h: Harness) {
    h.mock.script([Fault::StreamErrorAfter(2)]);
    let (events, err) = collect(h.provider.as_ref(), &hello()).await;
    let err = err.expect("mid-stream error");
    assert!(
        matches!(err, ProviderError::Status { .. }) && err.is_retryable(),
        "{}: {err:?}",
        h.kind
    );
    assert!(err.to_string().contains("mid-stream"), "{err}");
    assert!(matches!(events.first(), Some(StreamEvent::Start { .. })));
}

async fn reset(h: Harness) {
    h.mock.script([Fault::Reset]);
    let err = h.provider.complete(&hello()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Connect { .. }) && err.is_retryable(),
        "{}: {err:?}",
        h.kind
    );
    h.mock.script([Fault::Reset]);
    let (_, err) = collect(h.provider.as_ref(), &hello()).await;
    assert!(
        err.as_ref().is_some_and(ProviderError::is_retryable),
        "{err:?}"
    );
    h.mock.script([Fault::ResetAfter(2)]);
    let (events, err) = collect(h.provider.as_ref(), &hello()).await;
    assert!(err.is_some(), "a reset mid-stream must surface: {events:?}");
    assert!(!matches!(events.last(), Some(StreamEvent::Stop { .. })));
}

/// Credentials never appear in errors or Debug output, even when the provider echoes them.
async fn secret_not_in_error(h: Harness) {
    let dbg = h.debug.clone();
    assert!(dbg.contains("[REDACTED]"), "{dbg}");
    for fault in [
        Fault::status(401),
        Fault::status(403),
        Fault::status(500),
        Fault::Reset,
        Fault::status(400),
    ] {
        h.mock.script([fault]);
        let err = h.provider.complete(&hello()).await.unwrap_err();
        let shown = format!("{err} {err:?} {dbg}");
        for s in &h.secrets {
            assert!(
                !shown.contains(s.as_str()),
                "{}: secret leaked in {shown}",
                h.kind
            );
        }
    }
}

macro_rules! conformance {
    ($name:ident, $setup:path) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn unary() {
                bounded(super::unary($setup().await)).await
            }
            #[tokio::test]
            async fn stream() {
                bounded(super::stream($setup().await)).await
            }
            #[tokio::test]
            async fn tool_round_trip() {
                bounded(super::tool_round_trip($setup().await)).await
            }
            #[tokio::test]
            async fn tool_stream() {
                bounded(super::tool_stream($setup().await)).await
            }
            #[tokio::test]
            async fn status_faults() {
                bounded(super::status_faults($setup().await)).await
            }
            #[tokio::test]
            async fn slow_first_byte() {
                bounded(super::slow_first_byte($setup().await)).await
            }
            #[tokio::test]
            async fn stall() {
                bounded(super::stall($setup().await)).await
            }
            #[tokio::test]
            async fn malformed() {
                bounded(super::malformed($setup().await)).await
            }
            #[tokio::test]
            async fn mid_stream_error() {
                bounded(super::mid_stream_error($setup().await)).await
            }
            #[tokio::test]
            async fn reset() {
                bounded(super::reset($setup().await)).await
            }
            #[tokio::test]
            async fn secret_not_in_error() {
                bounded(super::secret_not_in_error($setup().await)).await
            }
        }
    };
}

conformance!(anthropic, common::anthropic);
conformance!(openai, common::openai);
conformance!(bedrock, common::bedrock);
