use super::*;

#[test]
fn json_and_documents_round_trip() {
    let v = serde_json::json!({"a": [1, -2, 2.5, true, null, "s"], "b": {"c": {}}});
    assert_eq!(to_json(&to_document(&v)), v);
}

fn keys() -> StaticKeys {
    StaticKeys {
        access_key_id: "AKIAEXAMPLE123".into(),
        secret_access_key: SecretString::from("wJalrSECRET"),
        session_token: Some(SecretString::from("TOKENsecret")),
    }
}

#[test]
fn refuses_plain_http_endpoints_and_redacts_debug() {
    let mut cfg = BedrockConfig::new(
        "bedrock",
        "us-east-1",
        "m",
        BedrockCredentials::Platform(Identity::Static(keys())),
    );
    cfg.endpoint_url = Some("http://127.0.0.1:9".into());
    assert!(matches!(
        Bedrock::new(cfg.clone()),
        Err(BuildError::PlainHttp { .. })
    ));
    cfg.endpoint_url = None;
    cfg.sts_endpoint_url = Some("http://127.0.0.1:9".into());
    assert!(matches!(
        Bedrock::new(cfg.clone()),
        Err(BuildError::PlainHttp { .. })
    ));
    cfg.http.allow_plain_http = true;
    let b = Bedrock::new(cfg).unwrap();
    let dbg = format!("{b:?}");
    assert!(
        !dbg.contains("wJalrSECRET")
            && !dbg.contains("TOKENsecret")
            && !dbg.contains("AKIAEXAMPLE123"),
        "{dbg}"
    );
    let role = AccountCredentials::AssumeRole {
        role_arn: "arn:aws:iam::1:role/r".into(),
        external_id: SecretString::from("ext-SECRET"),
        session_name: "s".into(),
    };
    assert!(!format!("{role:?}").contains("ext-SECRET"));
}

#[test]
fn maps_stream_events_and_ends_at_metadata() {
    let mut m = StreamMapper {
        model: "m".into(),
        ..Default::default()
    };
    let start = bt::ContentBlockStartEvent::builder()
        .content_block_index(1)
        .start(bt::ContentBlockStart::ToolUse(
            bt::ToolUseBlockStart::builder()
                .tool_use_id("t1")
                .name("get_weather")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let delta = bt::ContentBlockDeltaEvent::builder()
        .content_block_index(1)
        .delta(bt::ContentBlockDelta::ToolUse(
            bt::ToolUseBlockDelta::builder()
                .input("{\"city\":1}")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let stop = bt::MessageStopEvent::builder()
        .stop_reason(bt::StopReason::ToolUse)
        .build()
        .unwrap();
    let usage = bt::TokenUsage::builder()
        .input_tokens(3)
        .output_tokens(4)
        .total_tokens(7)
        .build()
        .unwrap();
    let meta = bt::ConverseStreamMetadataEvent::builder()
        .usage(usage)
        .build();
    let mut out = m.on_event(bt::ConverseStreamOutput::ContentBlockStart(start));
    out.extend(m.on_event(bt::ConverseStreamOutput::ContentBlockDelta(delta)));
    out.extend(m.on_event(bt::ConverseStreamOutput::MessageStop(stop)));
    assert!(!m.done);
    out.extend(m.on_event(bt::ConverseStreamOutput::Metadata(meta)));
    assert!(m.done);
    assert_eq!(
        out,
        vec![
            StreamEvent::ToolCallStart {
                index: 0,
                id: "t1".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                partial_json: "{\"city\":1}".into()
            },
            StreamEvent::Usage {
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4
                }
            },
            StreamEvent::Stop {
                reason: StopReason::ToolUse
            },
        ]
    );
}

#[test]
fn classifies_modeled_errors() {
    assert!(matches!(
        classify("b", 400, "ValidationException", None, None),
        ProviderError::Invalid { .. }
    ));
    assert!(matches!(
        classify("b", 400, "ServiceQuotaExceededException", None, None),
        ProviderError::QuotaExhausted { .. }
    ));
    let e = classify(
        "b",
        429,
        "ThrottlingException",
        Some("rid"),
        Some(Duration::from_secs(2)),
    );
    assert!(e.is_rate_limited() && e.retry_after() == Some(Duration::from_secs(2)));
    assert_eq!(
        e.to_string(),
        "provider b answered HTTP 429: ThrottlingException (x-amzn-RequestId rid)"
    );
    assert!(classify("b", 429, "ModelNotReadyException", None, None).is_retryable());
    // A model the account lacks is this provider's problem: not retried, but failed over.
    let e = classify("b", 404, "ResourceNotFoundException", None, None);
    assert_eq!(
        crate::next_step(&e, 1, &crate::RetryPolicy::default(), 0.0),
        crate::Step::Failover
    );
    assert!(!classify("b", 424, "ModelErrorException", None, None).is_retryable());
}
