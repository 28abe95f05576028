//! Bedrock Runtime mock: `POST /model/{modelId}/converse` (JSON) and `/converse-stream`
//! (binary eventstream), with SigV4 verification of every request.
//!
//! Faithful to the reference: percent-decoded model ids, signing name `bedrock`, double-
//! encoded canonical paths, no `contentBlockStart` for text, `metadata` after `messageStop`,
//! random-length `p` padding, header order `:event-type`, `:content-type`, `:message-type`,
//! errors as `x-amzn-ErrorType: Name:http://internal.amazon.com/coral/com.amazon.bedrock/`
//! with `{"message":…}`, stream exceptions as `:message-type: exception` frames.
//! A request not signed by one of the expected keys gets a 403 and is recorded unsigned.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::eventstream;
use crate::sigv4::{AwsKey, verify};
use crate::{MockApi, Recorded, Reply};

/// The mock. `keys`: the credentials whose signatures it accepts.
#[derive(Debug, Clone)]
pub struct BedrockMock {
    pub keys: Vec<AwsKey>,
}

fn error_name(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

fn aws_error(status: u16, name: &str, message: &str, retry_after: Option<&str>) -> Reply {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "x-amzn-ErrorType".to_owned(),
            format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ),
        (
            "x-amzn-RequestId".to_owned(),
            "ca47a5ce-e260-4824-aa0e-2e62669d5d6e".to_owned(),
        ),
    ];
    if let Some(ra) = retry_after {
        headers.push(("retry-after".into(), ra.into()));
    }
    Reply::Whole {
        status,
        headers,
        body: Bytes::from(json!({ "message": message }).to_string()),
    }
}

fn pad(n: usize) -> String {
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012"
        .chars()
        .take(n % 50 + 2)
        .collect()
}

/// The text inside the first toolResult of the conversation, if any.
fn tool_result(body: &Value) -> Option<String> {
    body.get("messages")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .find_map(|b| {
            let r = b.get("toolResult")?;
            let c = r.get("content")?.as_array()?.first()?;
            Some(c.get("text").and_then(Value::as_str).map_or_else(
                || c.get("json").map(Value::to_string).unwrap_or_default(),
                str::to_owned,
            ))
        })
}

impl MockApi for BedrockMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        match verify(
            &req.method,
            &req.path,
            &req.headers,
            &req.body,
            "bedrock",
            &self.keys,
        ) {
            Ok(akid) => req.signed_by = Some(akid),
            Err(e) => {
                let name = if matches!(e, crate::sigv4::SigError::UnknownKey) {
                    "UnrecognizedClientException"
                } else {
                    "InvalidSignatureException"
                };
                return aws_error(403, name, &e.to_string(), None);
            }
        }
        let path = req.path.split('?').next().unwrap_or_default().to_owned();
        let Some(rest) = path.strip_prefix("/model/") else {
            return aws_error(404, "UnknownOperationException", "unknown operation", None);
        };
        let Some((model_enc, op)) = rest.rsplit_once('/') else {
            return aws_error(404, "UnknownOperationException", "unknown operation", None);
        };
        let model = percent_encoding::percent_decode_str(model_enc)
            .decode_utf8_lossy()
            .into_owned();
        let body = req.json();
        if body
            .get("messages")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            return aws_error(
                400,
                "ValidationException",
                "messages: must not be empty",
                None,
            );
        }
        let tool = body
            .pointer("/toolConfig/tools/0/toolSpec/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let answer = tool_result(&body);
        let (text, call) = match (answer, tool) {
            (Some(r), _) => (Some(format!("The tool said: {r}")), None),
            (None, Some(t)) => (None, Some(t)),
            (None, None) => (
                Some(format!("Hello from the Bedrock mock ({model}).")),
                None,
            ),
        };
        let input_tokens = (req.body.len() as i64 + 3) / 4;
        let usage = json!({"inputTokens":input_tokens,"outputTokens":5,"totalTokens":input_tokens+5,"serverToolUsage":{}});
        let stop = if call.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        let request_id = (
            "x-amzn-RequestId".to_owned(),
            "6f1c1d1e-0000-4000-8000-00000000mock".to_owned(),
        );
        match op {
            "converse" => {
                let content = match (&text, &call) {
                    (_, Some(name)) => {
                        json!([{"toolUse":{"toolUseId":"tooluse_mock123","name":name,"input":{"city":"Paris"}}}])
                    }
                    (Some(t), None) => json!([{"text": t}]),
                    (None, None) => json!([]),
                };
                let v = json!({"metrics":{"latencyMs":12},"output":{"message":{"content":content,"role":"assistant"}},
                    "stopReason":stop,"usage":usage});
                let Reply::Whole {
                    status,
                    mut headers,
                    body,
                } = Reply::json(200, &v)
                else {
                    return aws_error(500, "InternalServerException", "", None);
                };
                headers.push(request_id);
                Reply::Whole {
                    status,
                    headers,
                    body,
                }
            }
            "converse-stream" => {
                let mut events = vec![eventstream::event(
                    "messageStart",
                    &json!({"p": pad(1), "role": "assistant"}),
                )];
                if let Some(t) = &text {
                    for (i, piece) in t.split_inclusive(' ').enumerate() {
                        events.push(eventstream::event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex":0,"delta":{"text":piece},"p":pad(i)}),
                        ));
                    }
                    events.push(eventstream::event(
                        "contentBlockStop",
                        &json!({"contentBlockIndex":0,"p":pad(3)}),
                    ));
                }
                if let Some(name) = &call {
                    events.push(eventstream::event(
                        "contentBlockStart",
                        &json!({"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"tooluse_mock123","name":name}},"p":pad(4)}),
                    ));
                    for piece in ["{\"city\":", "\"Paris\"}"] {
                        events.push(eventstream::event("contentBlockDelta", &json!({"contentBlockIndex":0,"delta":{"toolUse":{"input":piece}},"p":pad(5)})));
                    }
                    events.push(eventstream::event(
                        "contentBlockStop",
                        &json!({"contentBlockIndex":0,"p":pad(6)}),
                    ));
                }
                events.push(eventstream::event(
                    "messageStop",
                    &json!({"additionalModelResponseFields":{"delta":{"stop_sequence":null}},"p":pad(7),"stopReason":stop}),
                ));
                events.push(eventstream::event(
                    "metadata",
                    &json!({"metrics":{"latencyMs":802},"p":pad(8),"usage":usage}),
                ));
                Reply::Stream {
                    headers: vec![
                        (
                            "content-type".into(),
                            "application/vnd.amazon.eventstream".into(),
                        ),
                        request_id,
                    ],
                    events,
                }
            }
            _ => aws_error(404, "UnknownOperationException", "unknown operation", None),
        }
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        let message = if status == 429 {
            "Too many requests, please wait before trying again."
        } else {
            "mock error"
        };
        aws_error(status, error_name(status), message, retry_after)
    }

    fn malformed_event(&self) -> Bytes {
        let f = eventstream::event(
            "contentBlockDelta",
            &json!({"contentBlockIndex":0,"delta":{"text":"garbled"}}),
        );
        let mut v = f.to_vec();
        let at = v.len() - 5;
        v[at] ^= 0xff; // the message CRC no longer matches
        Bytes::from(v)
    }

    fn stream_error_event(&self) -> Bytes {
        eventstream::exception(
            "throttlingException",
            "Too many tokens, please wait before trying again.",
        )
    }
}

/// Starts the Bedrock mock accepting signatures from `keys`.
pub async fn start(
    ca: &crate::TestCa,
    keys: Vec<AwsKey>,
) -> Result<crate::MockServer, crate::KitError> {
    crate::MockServer::start(ca, BedrockMock { keys }).await
}
