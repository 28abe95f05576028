//! The relay's rules, event by event, without sockets or clocks.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use tonic::Code;
use warden_minimize::{Engine, Placeholders, Pseudonyms};
use warden_providers::{ProviderError, StopReason, StreamEvent, Usage};

use super::*;
use crate::outcome::ProviderFailure;

/// The pseudonyms of a request that named `ann@example.com` and `203.0.113.9`:
/// `[EMAIL:1]` and `[IPV4:2]`.
fn pseudonyms() -> Pseudonyms {
    let engine = Engine::builtin().unwrap();
    let text = "ann@example.com from 203.0.113.9";
    let mut table = Placeholders::new(true);
    let replaced = table.replace(text, &engine.find_spans(text));
    assert_eq!(replaced, "[EMAIL:1] from [IPV4:2]");
    table.into_pseudonyms()
}

fn start() -> gw::StreamStart {
    gw::StreamStart {
        provider: "openai".into(),
        model: "gpt-configured".into(),
        audit_record_id: "intent-1".into(),
        minimization: None,
    }
}

fn sent(step: Step) -> Vec<Event> {
    match step {
        Step::Send(events) => events,
        Step::Fail { error, outcome } => panic!("unexpected failure {outcome}: {error:?}"),
    }
}

fn text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

fn text_delta(t: &str) -> Result<StreamEvent, ProviderError> {
    Ok(StreamEvent::TextDelta { text: t.into() })
}

#[test]
fn the_start_with_the_audit_id_comes_first_and_names_the_model_that_answered() {
    let ps = Pseudonyms::default();
    let mut m = Machine::new(start(), &ps);
    let events = sent(m.upstream(Ok(StreamEvent::Start {
        model: "gpt-actual".into(),
    })));
    let [Event::Start(s)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (s.audit_record_id.as_str(), s.model.as_str()),
        ("intent-1", "gpt-actual")
    );
    assert_eq!(m.model(), "gpt-actual");
    // A later Start (a confused provider) changes nothing and sends nothing.
    assert!(
        sent(m.upstream(Ok(StreamEvent::Start {
            model: "other".into()
        })))
        .is_empty()
    );
    assert_eq!(m.model(), "gpt-actual");
}

#[test]
fn a_stream_whose_first_event_is_text_still_starts_with_the_start() {
    let ps = Pseudonyms::default();
    let mut m = Machine::new(start(), &ps);
    let events = sent(m.upstream(text_delta("hello")));
    assert!(matches!(&events[0], Event::Start(s) if s.model == "gpt-configured"));
    assert_eq!(text(&events), "hello");
    // An empty stream ends with Start then End.
    let mut empty = Machine::new(start(), &ps);
    let events = empty.finish(&[]);
    assert!(matches!(
        events.as_slice(),
        [Event::Start(_), Event::End(_)]
    ));
}

#[test]
fn a_placeholder_split_across_deltas_is_restored_whole() {
    let ps = pseudonyms();
    let mut m = Machine::new(start(), &ps);
    let mut all = Vec::new();
    for piece in ["Mail [EM", "AIL:", "1] about [IP", "V4:2] now"] {
        let events = sent(m.upstream(text_delta(piece)));
        // No event ever carries half a placeholder.
        assert!(!text(&events).contains("[EM") && !text(&events).contains("[IP"));
        all.extend(events);
    }
    all.extend(m.finish(&[]));
    assert_eq!(text(&all), "Mail ann@example.com about 203.0.113.9 now");
}

#[test]
fn text_held_back_at_the_end_is_sent_before_the_end() {
    let ps = pseudonyms();
    let mut m = Machine::new(start(), &ps);
    let events = sent(m.upstream(text_delta("look at [not a placeholder")));
    assert_eq!(text(&events), "look at ");
    let end = m.finish(&[]);
    assert_eq!(text(&end), "[not a placeholder");
    assert!(matches!(end.last(), Some(Event::End(_))));
}

#[test]
fn tool_arguments_are_restored_as_json_and_flushed_when_the_block_changes() {
    let ps = pseudonyms();
    let mut m = Machine::new(start(), &ps);
    let mut events = sent(m.upstream(Ok(StreamEvent::ToolCallStart {
        index: 0,
        id: "call_1".into(),
        name: "query_logs".into(),
    })));
    events.extend(sent(m.upstream(Ok(StreamEvent::ToolCallDelta {
        index: 0,
        partial_json: r#"{"host":"[IPV4"#.into(),
    }))));
    // The next block: the held-back end of the first one's arguments goes out first.
    let next = sent(m.upstream(text_delta("done")));
    events.extend(next);
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallDelta(d) if d.index == 0 => Some(d.arguments_json_delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        args, r#"{"host":"[IPV4"#,
        "an unfinished placeholder is not one"
    );
    let ps_events = sent({
        let mut m = Machine::new(start(), &ps);
        let _ = m.upstream(Ok(StreamEvent::ToolCallStart {
            index: 3,
            id: "c".into(),
            name: "n".into(),
        }));
        m.upstream(Ok(StreamEvent::ToolCallDelta {
            index: 3,
            partial_json: r#"{"who":"[EMAIL:1]"}"#.into(),
        }))
    });
    assert!(
        matches!(ps_events.as_slice(), [Event::ToolCallDelta(d)] if d.arguments_json_delta == r#"{"who":"ann@example.com"}"#),
        "{ps_events:?}"
    );
}

#[test]
fn the_end_carries_the_stop_reason_usage_and_attempts() {
    let ps = Pseudonyms::default();
    let mut m = Machine::new(start(), &ps);
    let _ = sent(m.upstream(text_delta("x")));
    let usage = Usage {
        input_tokens: 12,
        output_tokens: 3,
    };
    let _ = sent(m.upstream(Ok(StreamEvent::Usage { usage })));
    let _ = sent(m.upstream(Ok(StreamEvent::Stop {
        reason: StopReason::MaxTokens,
    })));
    let attempts = vec![pb::Attempt {
        provider: "openai".into(),
        outcome: "ok".into(),
        ..Default::default()
    }];
    let events = m.finish(&attempts);
    let [Event::End(end)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(end.stop_reason, gw::StopReason::MaxTokens as i32);
    assert_eq!(end.usage.unwrap().output_tokens, 3);
    assert_eq!(end.attempts, attempts);
    assert_eq!(m.usage(), usage);
}

#[test]
fn a_provider_error_mid_stream_ends_it_with_the_error_and_its_class() {
    let ps = Pseudonyms::default();
    let mut m = Machine::new(start(), &ps);
    let _ = sent(m.upstream(text_delta("partial")));
    let step = m.upstream(Err(ProviderError::Status {
        provider: "openai".into(),
        status: 502,
        retry_after: None,
        message: "bad gateway".into(),
    }));
    let Step::Fail { error, outcome } = step else {
        panic!("{step:?}")
    };
    assert_eq!(outcome, Outcome::Provider(ProviderFailure::Status(502)));
    assert_eq!(outcome.to_string(), "http_502");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
}

#[test]
fn a_tenant_change_stops_the_stream_only_when_it_must() {
    assert!(
        stop_for(
            TenantNow::Read {
                key_revoked: false,
                enabled: true
            },
            "acme"
        )
        .is_none()
    );
    let (outcome, status) = stop_for(
        TenantNow::Read {
            key_revoked: false,
            enabled: false,
        },
        "acme",
    )
    .unwrap();
    assert_eq!(outcome, Outcome::OptedOut);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("acme"));
    // A revoked key is named first, even if the tenant also opted out.
    let (outcome, status) = stop_for(
        TenantNow::Read {
            key_revoked: true,
            enabled: false,
        },
        "acme",
    )
    .unwrap();
    assert_eq!(outcome, Outcome::KeyRevoked);
    assert_eq!(status.code(), Code::Unauthenticated);
    // Fail closed when changes can no longer be followed.
    let (outcome, status) = stop_for(TenantNow::Unfollowable, "acme").unwrap();
    assert_eq!(outcome, Outcome::SettingsUnavailable);
    assert_eq!(status.code(), Code::Unavailable);
}
