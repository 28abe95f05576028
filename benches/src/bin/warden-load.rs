//! `warden-load`: sends the same load straight to a mock provider and through the whole
//! gateway (mTLS, settings, policy, redaction, audit intent and outcome in storage), and
//! prints latency percentiles for both, what the gateway added, and what it cost.
//!
//! Everything runs on loopback in this process. Modes:
//!
//! - closed loop (default): `--requests N` per path, `--concurrency C` in flight;
//! - open loop: `--rate R` (or `--rates R1,R2,..`) calls a second for `--duration S`,
//!   each timed from its scheduled start (so queueing is not hidden), both paths in turn;
//! - `--sweep`: open loop at rising rates until the added p99 reaches `--sweep-limit-ms`;
//! - `--stream`: with the open-loop modes, streamed calls timed to their first text
//!   (time to first token), `CompleteStream` against streaming straight to the mock;
//! - `--idle-streams N`: N streams held open after their first words on each path, and
//!   the resident memory each one costs.
//!
//! The mock answers after `--mock-delay-ms`. The time storage spent on audit appends
//! (queue to commit, server side, `warden_storage_audit_append_seconds`, whichever RPC
//! carried them) is printed for each gateway phase.
//!
//! ```sh
//! cargo run --release -p warden-benches --bin warden-load -- --requests 2000 --concurrency 16
//! cargo run --release -p warden-benches --bin warden-load -- --rates 500,1000,2000 --duration 10
//! cargo run --release -p warden-benches --bin warden-load -- --sweep
//! cargo run --release -p warden-benches --bin warden-load -- --stream --rate 1000
//! cargo run --release -p warden-benches --bin warden-load -- --idle-streams 1000
//! ```

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool whose output is its report"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use warden_benches::load::{Phase, ProcStat, open_loop, summary_sum};
use warden_benches::{Database, Rig, mock, sample_logs};

/// The allocator the `warden` binary runs with, so the rig in this process measures what
/// a deployment runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Gateway overhead: the same load straight to a mock provider and through Warden")]
struct Args {
    /// Closed loop: requests per path.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Closed loop: requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open loop: calls a second, for each path in turn.
    #[arg(long, conflicts_with = "rates")]
    rate: Option<f64>,
    /// Open loop: several rates, one after the other (e.g. 500,1000,2000).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Open loop: seconds of load per path and rate.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop: seconds of load per path before each measured phase, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Find the highest rate at which the added p99 stays under `--sweep-limit-ms`.
    #[arg(long)]
    sweep: bool,
    #[arg(long, default_value_t = 10.0)]
    sweep_limit_ms: f64,
    /// The sweep's first rate; each next one is 25 % higher.
    #[arg(long, default_value_t = 500.0)]
    sweep_from: f64,
    #[arg(long, default_value_t = 20_000.0)]
    sweep_to: f64,
    /// Streamed calls, timed to their first text.
    #[arg(long)]
    stream: bool,
    /// Hold this many streams open on each path and report memory per stream.
    #[arg(long)]
    idle_streams: Option<usize>,
    /// Bytes of logs in each request.
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
    /// The mock provider's answer delay.
    #[arg(long, default_value_t = 5.0)]
    mock_delay_ms: f64,
    /// Storage database: `sqlite` (a fresh file) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    database: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Direct,
    Gateway,
}

/// One path's call, as the open-loop driver wants it.
fn caller(
    rig: &Arc<Rig>,
    logs: &Arc<str>,
    path: Path,
    stream: bool,
) -> impl Fn() -> futures::future::BoxFuture<'static, anyhow::Result<Instant>> + Send + Sync + 'static
{
    let (rig, logs) = (rig.clone(), logs.clone());
    move || {
        let (rig, logs) = (rig.clone(), logs.clone());
        Box::pin(async move {
            match (path, stream) {
                (Path::Direct, false) => rig.direct(&logs).await.map(|()| Instant::now()),
                (Path::Gateway, false) => rig.through_gateway(&logs).await.map(|()| Instant::now()),
                (Path::Direct, true) => rig.direct_stream(&logs).await,
                (Path::Gateway, true) => rig.gateway_stream(&logs).await,
            }
        })
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    format!("{:+.2}", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A measured phase and what the process spent on it.
struct Measured {
    phase: Phase,
    cpu_per_call: Duration,
    /// Audit appends storage served during the phase, and their total time.
    appends: (f64, f64),
    after: ProcStat,
}

fn appends(metrics: &PrometheusHandle) -> (f64, f64) {
    summary_sum(
        &metrics.render(),
        "warden_storage_audit_append_seconds",
        &[],
    )
    .unwrap_or_default()
}

async fn measure(
    rig: &Arc<Rig>,
    logs: &Arc<str>,
    metrics: &PrometheusHandle,
    args: &Args,
    path: Path,
    rate: f64,
) -> anyhow::Result<Measured> {
    let drain = Duration::from_secs(30);
    if args.warmup > 0.0 {
        open_loop(
            rate,
            Duration::from_secs_f64(args.warmup),
            drain,
            caller(rig, logs, path, args.stream),
        )
        .await;
    }
    let before = ProcStat::me()?;
    let appended = appends(metrics);
    let phase = open_loop(
        rate,
        Duration::from_secs_f64(args.duration),
        drain,
        caller(rig, logs, path, args.stream),
    )
    .await;
    let after = ProcStat::me()?;
    let now = appends(metrics);
    if let Some(e) = &phase.first_error {
        eprintln!("{path:?} at {rate}/s: {} errors, first: {e}", phase.errors);
    }
    Ok(Measured {
        cpu_per_call: (after.cpu.saturating_sub(before.cpu)) / phase.calls().max(1) as u32,
        appends: (now.0 - appended.0, now.1 - appended.1),
        after,
        phase,
    })
}

fn row(rate: f64, name: &str, m: &Measured) -> String {
    let p = &m.phase;
    format!(
        "| {rate:.0} | {name} | {:.0} | {} | {} | {} | {} | {} | {:.3} | {} |\n",
        p.achieved(),
        ms(p.percentile(0.50)),
        ms(p.percentile(0.90)),
        ms(p.percentile(0.99)),
        ms(p.max()),
        p.errors,
        m.cpu_per_call.as_secs_f64() * 1e3,
        mib(m.after.rss),
    )
}

/// Measures both paths at `rate`; prints their rows; returns the added p99.
async fn at_rate(
    rig: &Arc<Rig>,
    logs: &Arc<str>,
    metrics: &PrometheusHandle,
    args: &Args,
    rate: f64,
) -> anyhow::Result<(Duration, Measured, Measured)> {
    let direct = measure(rig, logs, metrics, args, Path::Direct, rate).await?;
    let gateway = measure(rig, logs, metrics, args, Path::Gateway, rate).await?;
    let (d, g) = (&direct.phase, &gateway.phase);
    let mut out = row(rate, "direct", &direct);
    out.push_str(&row(rate, "gateway", &gateway));
    out.push_str(&format!(
        "| {rate:.0} | added | | {} | {} | {} | {} | | {} | |\n",
        signed_ms(g.percentile(0.50), d.percentile(0.50)),
        signed_ms(g.percentile(0.90), d.percentile(0.90)),
        signed_ms(g.percentile(0.99), d.percentile(0.99)),
        signed_ms(g.max(), d.max()),
        format_args!(
            "{:+.3}",
            (gateway.cpu_per_call.as_secs_f64() - direct.cpu_per_call.as_secs_f64()) * 1e3
        ),
    ));
    print!("{out}");
    let (count, secs) = (gateway.appends.1, gateway.appends.0);
    if count > 0.0 {
        eprintln!(
            "  {rate:.0}/s: storage served {count:.0} audit appends ({:.2} a call), {:.3} ms each on average (server side)",
            count / g.calls().max(1) as f64,
            secs / count * 1e3
        );
    }
    let added = g.percentile(0.99).saturating_sub(d.percentile(0.99));
    Ok((added, direct, gateway))
}

const HEADER: &str = "| rate/s | path | achieved/s | p50 ms | p90 ms | p99 ms | max ms | errors | process CPU ms/call | RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|";

async fn sweep(
    rig: &Arc<Rig>,
    logs: &Arc<str>,
    metrics: &PrometheusHandle,
    args: &Args,
) -> anyhow::Result<()> {
    println!("{HEADER}");
    let limit = Duration::from_secs_f64(args.sweep_limit_ms / 1e3);
    let mut rate = args.sweep_from;
    let mut held = None;
    while rate <= args.sweep_to {
        let (added, _, gateway) = at_rate(rig, logs, metrics, args, rate).await?;
        let g = &gateway.phase;
        let ok = added < limit && g.errors == 0 && g.achieved() >= 0.95 * rate;
        if !ok {
            break;
        }
        held = Some(rate);
        rate = (rate * 1.25).round();
    }
    match held {
        Some(r) => println!(
            "\nhighest rate with added p99 under {} ms, no errors and at least 95 % of the rate achieved: {r:.0}/s",
            args.sweep_limit_ms
        ),
        None => println!(
            "\nno rate from {} up held added p99 under {} ms",
            args.sweep_from, args.sweep_limit_ms
        ),
    }
    Ok(())
}

async fn idle_streams(rig: &Arc<Rig>, args: &Args, n: usize) -> anyhow::Result<()> {
    let logs = format!("{}{}", sample_logs(args.payload_bytes), mock::HOLD_MARKER);
    let settle = || tokio::time::sleep(Duration::from_secs(1));
    let mut rows = Vec::new();
    // The direct streams stay open while the gateway's open, so the second set cannot
    // reuse memory the allocator kept from the first.
    let mut kept = Vec::new();
    for path in [Path::Direct, Path::Gateway] {
        settle().await;
        let before = ProcStat::me()?;
        let opened: Vec<anyhow::Result<Box<dyn std::any::Any + Send>>> =
            futures::stream::iter(0..n)
                .map(|_| {
                    let (rig, logs) = (rig.clone(), logs.clone());
                    async move {
                        let held: Box<dyn std::any::Any + Send> = match path {
                            Path::Direct => Box::new(rig.direct_held(&logs).await?),
                            Path::Gateway => Box::new(rig.gateway_held(&logs).await?),
                        };
                        Ok(held)
                    }
                })
                .buffer_unordered(64)
                .collect()
                .await;
        let failed = opened.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
            bail!("{failed} of {n} {path:?} streams failed to open; first: {e:#}");
        }
        settle().await;
        let open = ProcStat::me()?;
        rows.push((path, before, open, rig.mock.open_streams()));
        kept.push(opened);
    }
    drop(kept);
    println!(
        "| path | streams open at the mock | RSS before MiB | RSS after opening {n} MiB | KiB per stream |\n|---|---|---|---|---|"
    );
    let per = |b: &ProcStat, o: &ProcStat| o.rss.saturating_sub(b.rss) as f64 / 1024.0 / n as f64;
    for (path, before, open, mock_open) in &rows {
        println!(
            "| {path:?} | {mock_open} | {} | {} | {:.1} |",
            mib(before.rss),
            mib(open.rss),
            per(before, open)
        );
    }
    if let [(_, db, dopen, _), (_, gb, gopen, _)] = rows.as_slice() {
        println!(
            "\nadded by the gateway per idle stream (client, gateway and mock share this process): {:.1} KiB",
            per(gb, gopen) - per(db, dopen)
        );
    }
    Ok(())
}

async fn closed_loop(rig: &Arc<Rig>, logs: &Arc<str>, args: &Args) -> anyhow::Result<usize> {
    let drive = |path: Path| async move {
        let call = caller(rig, logs, path, false);
        let started = Instant::now();
        let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..args.requests)
            .map(|_| {
                let t = Instant::now();
                let fut = call();
                async move { fut.await.map(|end| end - t) }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let mut phase = Phase {
            wall: started.elapsed(),
            ..Phase::default()
        };
        for r in results {
            match r {
                Ok(d) => phase.latencies.push(d),
                Err(e) => {
                    phase.errors += 1;
                    phase.first_error.get_or_insert(format!("{e:#}"));
                }
            }
        }
        phase.latencies.sort_unstable();
        phase
    };
    eprintln!(
        "{} requests per path, {} in flight, {} bytes of logs each",
        args.requests,
        args.concurrency,
        logs.len()
    );
    let direct = drive(Path::Direct).await;
    let gateway = drive(Path::Gateway).await;
    println!(
        "| path | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|"
    );
    for (name, r) in [
        ("straight to the mock provider", &direct),
        ("through the gateway", &gateway),
    ] {
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} | {} |",
            r.achieved(),
            ms(r.percentile(0.50)),
            ms(r.percentile(0.90)),
            ms(r.percentile(0.99)),
            ms(r.max()),
            r.errors
        );
        if let Some(e) = &r.first_error {
            eprintln!("{name}: first error: {e}");
        }
    }
    println!(
        "\nthroughput ratio (gateway / direct): {:.3}\np50 latency ratio (gateway / direct): {:.2}; added p50 {} ms, added p99 {} ms",
        gateway.achieved() / direct.achieved(),
        gateway.percentile(0.5).as_secs_f64() / direct.percentile(0.5).as_secs_f64(),
        signed_ms(gateway.percentile(0.5), direct.percentile(0.5)),
        signed_ms(gateway.percentile(0.99), direct.percentile(0.99)),
    );
    Ok(direct.errors + gateway.errors)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let mut rates = args.rates.clone();
    rates.extend(args.rate);
    if rates.iter().any(|r| *r <= 0.0) || args.duration <= 0.0 {
        bail!("rates and --duration must be positive");
    }
    let database = Database::fresh(&args.database)
        .await
        .context("preparing the database")?;
    // Every service in this process records its RPC timings here (storage's audit appends).
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let rig = Arc::new(
        Rig::start(database, Duration::from_secs_f64(args.mock_delay_ms / 1e3))
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
        "mock delay {} ms, {} bytes of logs a call, database {}",
        args.mock_delay_ms,
        logs.len(),
        args.database
    );
    let mut errors = 0;
    if let Some(n) = args.idle_streams {
        idle_streams(&rig, &args, n).await?;
    } else if args.sweep {
        sweep(&rig, &logs, &metrics, &args).await?;
    } else if !rates.is_empty() {
        println!("{HEADER}");
        for rate in rates {
            let (_, d, g) = at_rate(&rig, &logs, &metrics, &args, rate).await?;
            errors += d.phase.errors + g.phase.errors;
        }
        let me = ProcStat::me()?;
        println!(
            "\nwhole process: peak RSS {} MiB; `process CPU ms/call` is this process's CPU (client, mock, gateway and storage) over the calls of the phase; `added` is gateway - direct",
            mib(me.hwm)
        );
    } else {
        errors = closed_loop(&rig, &logs, &args).await?;
    }
    if let Ok(rig) = Arc::try_unwrap(rig) {
        rig.stop().await;
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
