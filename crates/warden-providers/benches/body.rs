//! The adapters' own CPU per call, without HTTP: the request body for a 4 KiB log question
//! turned into the bytes sent (OpenAI, Anthropic), a 1 KiB answer parsed (both), and the
//! events of a stream read (both). Figures and method: docs/benchmarks/gateway-speed.md, sections "Gateway
//! CPU per request" and "Provider JSON".
//!
//! `WARDEN_BENCH_BODY=N cargo bench -p warden-providers --bench body` skips criterion and runs
//! each N times, for callgrind: the instructions of N = 1001 minus those of N = 1, over 1000,
//! are one call's (each case's own, from the inclusive count of its `bench_support` function).
#![expect(clippy::print_stdout, reason = "criterion reports on stdout")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use secrecy::SecretString;
use warden_providers::bench_support::{
    anthropic_parse_response, anthropic_request_bytes, anthropic_stream, openai_parse_response,
    openai_request_bytes, openai_stream,
};
use warden_providers::{AnthropicConfig, ChatRequest, Content, Message, MessageRole, OpenAiConfig};

/// About 4 KiB of service log lines as the gateway's load bodies carry them (the shapes of
/// `warden_benches::sample_logs`, after minimization: a placeholder where the credential was),
/// and every tenth line a JSON log line, whose quotes JSON escaping meets.
fn logs() -> String {
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < 4096 {
        let (m, s) = (i / 60 % 60, i % 60);
        out.push_str(&match i % 10 {
            0 => format!(
                "2026-11-30T10:{m:02}:{s:02}Z checkout ERROR db connect failed url=postgres://app:[SECRET:url_credentials:{i}]@10.0.0.7:5432/orders\n"
            ),
            1..=3 => format!(
                "2026-11-30T10:{m:02}:{s:02}Z checkout WARN payment timeout after {} ms order={:08x} client=[IPV4:{}]\n",
                800 + i * 7 % 900,
                i * 2_654_435_761 % 0xffff_ffff,
                i % 250
            ),
            9 => format!(
                "{{\"ts\":\"2026-11-30T10:{m:02}:{s:02}Z\",\"level\":\"info\",\"msg\":\"cart updated\",\"items\":{}}}\n",
                i % 9
            ),
            _ => format!(
                "2026-11-30T10:{m:02}:{s:02}Z checkout INFO request served path=/api/cart/{} status=200 took={}ms trace={:016x}\n",
                i % 97,
                10 + i % 40,
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ),
        });
        i += 1;
    }
    out
}

fn request() -> ChatRequest {
    ChatRequest {
        model: Some("bench-model".into()),
        messages: vec![Message {
            role: MessageRole::User,
            content: vec![Content::text(logs())],
        }],
        max_tokens: 1024,
        ..Default::default()
    }
}

/// About 1 KiB of answer text.
fn answer_text() -> String {
    "The checkout service served every request with status 200; latency stayed between 10 and 49 ms. ".repeat(10)
}

/// A chat completion as OpenAI answers one: about 1 KiB of text and the usual fields.
fn answer() -> Vec<u8> {
    let text = answer_text();
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
        "created": 1_741_569_952u64, "model": "gpt-4.1-2025-04-14",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
            "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1117, "completion_tokens": 210, "total_tokens": 1327,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_b2d0c4b1a4"
    }))
    .unwrap_or_default()
}

/// The `data:` payloads of an OpenAI stream of the same answer, as the API sends them: the
/// role, 32 text deltas of a few words, the finish reason, the usage, `[DONE]`.
fn stream() -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value, usage: serde_json::Value| {
        serde_json::json!({"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk", "created": 1_741_569_952u64,
            "model": "gpt-4.1-2025-04-14", "service_tier": "default",
            "system_fingerprint": "fp_b2d0c4b1a4",
            "choices": if usage.is_null() { serde_json::json!([{"index": 0, "delta": delta,
                "logprobs": null, "finish_reason": finish}]) } else { serde_json::json!([]) },
            "usage": usage, "obfuscation": "x3Kq"})
        .to_string()
    };
    let null = serde_json::Value::Null;
    let mut out = vec![chunk(
        serde_json::json!({"role": "assistant", "content": "", "refusal": null}),
        null.clone(),
        null.clone(),
    )];
    let text = answer_text();
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for part in words.chunks(words.len().div_ceil(32)) {
        out.push(chunk(
            serde_json::json!({"content": part.concat()}),
            null.clone(),
            null.clone(),
        ));
    }
    out.push(chunk(serde_json::json!({}), "stop".into(), null.clone()));
    out.push(chunk(
        null.clone(),
        null,
        serde_json::json!({"prompt_tokens": 1117, "completion_tokens": 210, "total_tokens": 1327}),
    ));
    out.push("[DONE]".into());
    out
}

/// A Messages answer as Anthropic sends one: the same text and the usual fields.
fn anthropic_answer() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": answer_text()}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1117, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0}, "output_tokens": 210, "service_tier": "standard"}
    }))
    .unwrap_or_default()
}

/// The `(event, data)` pairs of an Anthropic stream of the same answer followed by a tool
/// call, as the API sends them (36 events): `message_start`, the text block's start, a `ping`,
/// 23 text deltas of a few words, its stop, the `tool_use` block's start, 5 `input_json_delta`
/// pieces, its stop, `message_delta` with the stop reason and usage, `message_stop`.
fn anthropic_stream_events() -> Vec<(String, String)> {
    use serde_json::json;
    let mut out = Vec::new();
    let mut push = |event: &str, data: serde_json::Value| {
        out.push((event.to_owned(), data.to_string()));
    };
    push(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 1117, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 0,
                "ephemeral_1h_input_tokens": 0}, "output_tokens": 1, "service_tier": "standard"}}}),
    );
    push(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
    );
    push("ping", json!({"type": "ping"}));
    let text = answer_text();
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for part in words.chunks(words.len().div_ceil(23)) {
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": part.concat()}}),
        );
    }
    push(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    push(
        "content_block_start",
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "create_ticket", "input": {}}}),
    );
    for piece in [
        "",
        "{\"service\": \"checkout\"",
        ", \"severity\": \"warn\", \"summ",
        "ary\": \"payment timeouts after 800 ms\"",
        "}",
    ] {
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": piece}}),
        );
    }
    push(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    );
    push(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
            "stop_sequence": null}, "usage": {"output_tokens": 262}}),
    );
    push("message_stop", json!({"type": "message_stop"}));
    out
}

fn anthropic_config() -> AnthropicConfig {
    AnthropicConfig::new("anthropic", SecretString::from("bench"), "bench")
}

fn bench(c: &mut Criterion) {
    let (req, cfg, body) = (
        request(),
        OpenAiConfig::new("openai", None, "bench"),
        answer(),
    );
    let mut group = c.benchmark_group("openai");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(req.content_bytes() as u64));
    group.bench_function("request_bytes", |b| {
        b.iter(|| black_box(openai_request_bytes(black_box(&req), &cfg, false)))
    });
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_response", |b| {
        b.iter(|| black_box(openai_parse_response(black_box(&body)).is_ok()))
    });
    let chunks = stream();
    group.throughput(Throughput::Elements(chunks.len() as u64));
    group.bench_function("stream", |b| {
        b.iter(|| black_box(openai_stream(black_box(&chunks)).is_ok()))
    });
    group.finish();
    let (acfg, abody) = (anthropic_config(), anthropic_answer());
    let mut group = c.benchmark_group("anthropic");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(req.content_bytes() as u64));
    group.bench_function("request_bytes", |b| {
        b.iter(|| black_box(anthropic_request_bytes(black_box(&req), &acfg, false)))
    });
    group.throughput(Throughput::Bytes(abody.len() as u64));
    group.bench_function("parse_response", |b| {
        b.iter(|| black_box(anthropic_parse_response(black_box(&abody)).is_ok()))
    });
    let aevents = anthropic_stream_events();
    group.throughput(Throughput::Elements(aevents.len() as u64));
    group.bench_function("stream", |b| {
        b.iter(|| black_box(anthropic_stream(black_box(&aevents)).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Some(runs) = std::env::var("WARDEN_BENCH_BODY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (req, cfg, body) = (
            request(),
            OpenAiConfig::new("openai", None, "bench"),
            answer(),
        );
        let (chunks, acfg, abody) = (stream(), anthropic_config(), anthropic_answer());
        let aevents = anthropic_stream_events();
        let (mut sent, mut parsed, mut events, mut asent, mut aparsed) = (0, 0, 0, 0, 0);
        let mut astreamed = 0;
        for _ in 0..runs {
            sent = openai_request_bytes(black_box(&req), &cfg, false).len();
            parsed = openai_parse_response(black_box(&body)).map_or(0, |r| r.content.len());
            events = openai_stream(black_box(&chunks)).unwrap_or(0);
            asent = anthropic_request_bytes(black_box(&req), &acfg, false).len();
            aparsed = anthropic_parse_response(black_box(&abody)).map_or(0, |r| r.content.len());
            astreamed = anthropic_stream(black_box(&aevents)).unwrap_or(0);
        }
        println!(
            "openai: {runs} x ({sent} bytes sent, {parsed} parts parsed, {} chunks read into {events} events)",
            chunks.len()
        );
        println!(
            "anthropic: {runs} x ({asent} bytes sent, {aparsed} parts parsed, {} stream events read into {astreamed} events)",
            aevents.len()
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
