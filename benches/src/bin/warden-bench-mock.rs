//! `warden-bench-mock`: the benchmarks' OpenAI-compatible mock provider as its own
//! process, for gateways that run as their own processes (Warden under `warden serve`,
//! LiteLLM, Portkey) and a load generator such as `oha`. Plain HTTP on loopback, so every
//! gateway and the direct baseline reach it the same way; answers after `--delay-ms`.
//!
//! ```sh
//! warden-bench-mock --listen 127.0.0.1:18080 --delay-ms 5
//! curl -s http://127.0.0.1:18080/v1/chat/completions -d '{"model":"m","messages":[]}'
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use warden_benches::mock::{BenchMock, MockOptions};

#[derive(Debug, Parser)]
#[command(about = "OpenAI-compatible mock provider answering after a fixed delay")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Time from the whole request to the answer's head.
    #[arg(long, default_value_t = 5.0)]
    delay_ms: f64,
    /// Worker threads (default: one).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mock = BenchMock::start(
            args.listen,
            None,
            MockOptions {
                delay: Duration::from_secs_f64(args.delay_ms / 1e3),
                expected_key: None,
            },
        )
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "mock provider on {}/v1, delay {} ms",
            mock.url(),
            args.delay_ms
        );
        tokio::signal::ctrl_c().await?;
        eprintln!("{} calls served", mock.calls());
        Ok(())
    })
}
