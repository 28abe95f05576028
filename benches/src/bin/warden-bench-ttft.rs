//! `warden-bench-ttft`: time to first token over HTTP, open loop. Sends a streamed
//! OpenAI Chat Completions request `--rate` times a second for `--duration` seconds and
//! times each from its scheduled start to the first `data:` event that carries content
//! (coordinated-omission corrected, like `oha --latency-correction`), reading every
//! stream to its end. `oha` times whole responses only; this is its streaming twin, so
//! the same targets (the mock, Warden's HTTP front, LiteLLM, Portkey) can be compared.
//!
//! ```sh
//! warden-bench-ttft --url http://127.0.0.1:18080/v1/chat/completions --body stream.json --rate 200
//! ```

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool whose output is its report"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use warden_benches::load::open_loop;

#[derive(Debug, Parser)]
#[command(about = "Open-loop time to first token of streamed chat completions")]
struct Args {
    #[arg(long)]
    url: String,
    /// The JSON request body (with "stream": true).
    #[arg(long)]
    body: PathBuf,
    /// Extra header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// A CA certificate (PEM) to trust besides the system's.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Do not check the server's certificate (TLS still runs), like `oha --insecure`:
    /// for a server whose certificate names a service, not the loopback address.
    #[arg(long)]
    insecure: bool,
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured run, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// Reads the stream; returns when the first content arrived. Content is a `data:` event
/// with a non-empty `"content"` string (OpenAI chunks) or a `text_delta` (Anthropic).
async fn first_token(resp: reqwest::Response) -> anyhow::Result<Instant> {
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        );
    }
    let mut body = resp.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if first.is_none() {
            seen.extend_from_slice(&chunk);
            let text = String::from_utf8_lossy(&seen);
            let has_content = text.lines().any(|l| {
                l.starts_with("data:")
                    && (l.contains("\"text_delta\"")
                        || (l.contains("\"content\":\"") && !l.contains("\"content\":\"\"")))
            });
            if has_content {
                first = Some(Instant::now());
                seen = Vec::new();
            }
        }
    }
    first.context("the stream ended without content")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = bytes::Bytes::from(
        std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not `name: value`"))?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(v.trim())?,
        );
    }
    let mut client = reqwest::Client::builder()
        .default_headers(headers)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024);
    if let Some(ca) = &args.cacert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    if args.insecure {
        client = client.danger_accept_invalid_certs(true);
    }
    let client = client.build()?;
    let call = {
        let (client, url, body) = (client.clone(), args.url.clone(), body.clone());
        move || {
            let req = client.post(&url).body(body.clone());
            async move { first_token(req.send().await?).await }
        }
    };
    let drain = Duration::from_secs(30);
    if args.warmup > 0.0 {
        open_loop(
            args.rate,
            Duration::from_secs_f64(args.warmup),
            drain,
            call.clone(),
        )
        .await;
    }
    let phase = open_loop(
        args.rate,
        Duration::from_secs_f64(args.duration),
        drain,
        call,
    )
    .await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if let Some(e) = &phase.first_error {
        eprintln!("{} errors; first: {e}", phase.errors);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"rate": args.rate, "achieved": phase.achieved(),
                "p50_ms": ms(phase.percentile(0.5)), "p90_ms": ms(phase.percentile(0.9)),
                "p99_ms": ms(phase.percentile(0.99)), "max_ms": ms(phase.max()),
                "ok": phase.latencies.len(), "errors": phase.errors})
        );
    } else {
        println!(
            "rate {:.0}/s achieved {:.0}/s ttft p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms, {} ok, {} errors",
            args.rate,
            phase.achieved(),
            ms(phase.percentile(0.5)),
            ms(phase.percentile(0.9)),
            ms(phase.percentile(0.99)),
            ms(phase.max()),
            phase.latencies.len(),
            phase.errors
        );
    }
    Ok(())
}
