//! `warden-load`: sends the same bounded load straight to a mock provider and through
//! the whole gateway (mTLS, settings, policy, redaction, audit intent and outcome in
//! storage), and prints throughput and latency percentiles for both, with their ratio.
//!
//! Everything runs on loopback in this process; the load stops by itself after
//! `--requests` calls per path.
//!
//! ```sh
//! cargo run --release -p warden-benches --bin warden-load -- --requests 2000 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use warden_benches::{Database, Rig, sample_logs};

/// The allocator the `warden` binary runs with, so the rig in this process measures what
/// a deployment runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Gateway overhead: the same load straight to a mock provider and through Warden")]
struct Args {
    /// Requests per path.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Bytes of logs in each request.
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
    /// Storage database: `sqlite` (a fresh file) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    database: String,
}

/// What one path measured.
struct Run {
    wall: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i]
    }
}

async fn drive<F, Fut>(requests: usize, concurrency: usize, call: F) -> Run
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let results: Vec<Result<Duration, anyhow::Error>> = futures::stream::iter(0..requests)
        .map(|_| {
            let fut = call();
            async move {
                let t = Instant::now();
                fut.await.map(|()| t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut latencies = Vec::with_capacity(results.len());
    let mut errors = 0;
    for r in results {
        match r {
            Ok(d) => latencies.push(d),
            Err(e) => {
                if errors == 0 {
                    eprintln!("first error: {e:#}");
                }
                errors += 1;
            }
        }
    }
    latencies.sort();
    Run {
        wall,
        latencies,
        errors,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn row(name: &str, r: &Run) -> String {
    format!(
        "| {name} | {:.0} | {} | {} | {} | {} | {} |",
        r.throughput(),
        ms(r.percentile(0.50)),
        ms(r.percentile(0.90)),
        ms(r.percentile(0.99)),
        ms(r.latencies.last().copied().unwrap_or_default()),
        r.errors
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let database = match args.database.as_str() {
        "sqlite" => Database::Sqlite,
        url if url.starts_with("postgres://") => Database::Postgres(url.to_owned()),
        other => bail!("--database must be `sqlite` or a postgres:// URL, not {other:?}"),
    };
    let rig = Arc::new(
        Rig::start(database)
            .await
            .context("starting storage, gateway and the mock provider")?,
    );
    let logs: Arc<str> = sample_logs(args.payload_bytes).into();

    // Warm both paths (TLS sessions, connection pools, SQLite pages) before measuring.
    for _ in 0..args.concurrency.max(20) {
        rig.direct(&logs).await?;
        rig.through_gateway(&logs).await?;
    }
    eprintln!(
        "{} requests per path, {} in flight, {} bytes of logs each",
        args.requests,
        args.concurrency,
        logs.len()
    );
    let direct = drive(args.requests, args.concurrency, || {
        let (rig, logs) = (rig.clone(), logs.clone());
        async move { rig.direct(&logs).await }
    })
    .await;
    let gateway = drive(args.requests, args.concurrency, || {
        let (rig, logs) = (rig.clone(), logs.clone());
        async move { rig.through_gateway(&logs).await }
    })
    .await;

    let mut out = String::new();
    out.push_str("| path | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    out.push_str(&row("straight to the mock provider", &direct));
    out.push('\n');
    out.push_str(&row("through the gateway", &gateway));
    out.push('\n');
    out.push_str(&format!(
        "\nthroughput ratio (gateway / direct): {:.3}\np50 latency ratio (gateway / direct): {:.2}; added p50 {} ms, added p99 {} ms\n",
        gateway.throughput() / direct.throughput(),
        gateway.percentile(0.5).as_secs_f64() / direct.percentile(0.5).as_secs_f64(),
        ms(gateway.percentile(0.5).saturating_sub(direct.percentile(0.5))),
        ms(gateway.percentile(0.99).saturating_sub(direct.percentile(0.99))),
    ));
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?;
    if let Ok(rig) = Arc::try_unwrap(rig) {
        rig.stop().await;
    }
    if direct.errors + gateway.errors > 0 {
        bail!("{} requests failed", direct.errors + gateway.errors);
    }
    Ok(())
}
