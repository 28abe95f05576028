//! Redaction throughput (MB/s, one core): the seven Loghub 2k logs concatenated (real logs, few
//! secrets: the common case the keyword prefilter is built for) and the labelled corpus (dense
//! secrets: the worst realistic case), and one gateway request's worth of minimization: a 4 KiB
//! log body (Loghub lines of all seven systems, one labelled credential line in twenty) through
//! `minimize_request`, as the gateway runs it per request. Skips a group with a message when its
//! data is absent. Figures and method: docs/BENCHMARKS.md, "Redaction", and docs/benchmarks/
//! gateway-speed.md, "Gateway CPU per request".
#![expect(
    clippy::unwrap_used,
    reason = "a bench without its rule pack has nothing to measure"
)]
#![expect(
    clippy::print_stdout,
    reason = "criterion reports on stdout; the skip notice goes with it"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use warden_budget::Limits;
use warden_minimize::{Engine, Placeholders, RequestPart, minimize_request};
use warden_policy::{DataType, TenantSettings};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");
const LOGS: [&str; 7] = [
    "Apache",
    "HDFS",
    "Linux",
    "OpenSSH",
    "OpenStack",
    "Spark",
    "Zookeeper",
];

fn loghub() -> Option<String> {
    let mut all = String::new();
    for name in LOGS {
        all.push_str(&std::fs::read_to_string(format!("{DATA}/loghub/{name}_2k.log")).ok()?);
    }
    Some(all)
}

fn labelled() -> Option<String> {
    let corpus = std::fs::read_to_string(format!("{DATA}/secrets/labelled-dev.jsonl")).ok()?;
    let mut all = String::new();
    for line in corpus.lines() {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        all.push_str(v["text"].as_str()?);
        all.push('\n');
    }
    Some(all)
}

/// About 4 KiB of whole lines, as one gateway request carries: Loghub lines taken in turn from
/// the seven logs, and every twentieth line a one-line labelled document with a secret or
/// personal datum (the corpus's own, in file order).
/// `WARDEN_BENCH_BODY_FILE` replaces it with a file's text (the gateway load's own body, say).
fn request_4k() -> Option<String> {
    if let Ok(path) = std::env::var("WARDEN_BENCH_BODY_FILE") {
        return std::fs::read_to_string(path).ok();
    }
    let logs: Vec<String> = LOGS
        .iter()
        .map(|name| std::fs::read_to_string(format!("{DATA}/loghub/{name}_2k.log")).ok())
        .collect::<Option<_>>()?;
    let mut logs: Vec<_> = logs.iter().map(|l| l.lines()).collect();
    let corpus = std::fs::read_to_string(format!("{DATA}/secrets/labelled-dev.jsonl")).ok()?;
    let mut secrets = corpus.lines().filter_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = v["text"].as_str()?;
        let labelled = v["labels"].as_array().is_some_and(|l| !l.is_empty());
        (labelled && !text.contains('\n')).then(|| text.to_owned())
    });
    let mut out = String::new();
    for i in 0.. {
        let line = if i % 20 == 19 {
            secrets.next()?
        } else {
            logs[i % LOGS.len()].next()?.to_owned()
        };
        if out.len() + line.len() + 1 > 4096 {
            break;
        }
        out.push_str(&line);
        out.push('\n');
    }
    Some(out)
}

/// A tenant that allows logs, as the gateway's bench tenant does.
fn logs_tenant() -> TenantSettings {
    let mut settings = TenantSettings::disabled("bench");
    settings.enabled = true;
    settings.allowed_data_types.insert(DataType::Logs);
    settings
}

/// What the gateway does with one request's content: one part of logs.
fn minimize_once(engine: &Engine, settings: &TenantSettings, limits: &Limits, body: &str) -> usize {
    let parts = vec![RequestPart::text(DataType::Logs, body)];
    minimize_request(engine, settings, limits, parts)
        .map_or(0, |out| out.parts.iter().map(|p| p.text.len()).sum())
}

fn bench_request(c: &mut Criterion) {
    let Some(body) = request_4k() else {
        println!("SKIPPED request_4k: {DATA} is absent");
        return;
    };
    let engine = Engine::builtin().unwrap();
    let (settings, limits) = (logs_tenant(), Limits::default());
    let mut group = c.benchmark_group("request_4k");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("find_spans", |b| {
        b.iter(|| black_box(engine.find_spans(black_box(&body))))
    });
    group.bench_function("minimize_request", |b| {
        b.iter(|| black_box(minimize_once(&engine, &settings, &limits, black_box(&body))))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let engine = Engine::builtin().unwrap();
    let inputs = [("loghub_clean", loghub()), ("labelled_dense", labelled())];
    let mut group = c.benchmark_group("redact");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, text) in inputs {
        let Some(text) = text else {
            println!("SKIPPED {name}: {DATA} is absent");
            continue;
        };
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("find_spans/{name}"), |b| {
            b.iter(|| black_box(engine.find_spans(black_box(&text))))
        });
        group.bench_function(format!("find_spans_by_line/{name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for line in text.lines() {
                    n += engine.find_spans(black_box(line)).len();
                }
                black_box(n)
            })
        });
        group.bench_function(format!("redact/{name}"), |b| {
            b.iter(|| {
                let spans = engine.find_spans(&text);
                black_box(Placeholders::new(false).replace(&text, &spans))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_request);

/// `WARDEN_BENCH_RUNS=N cargo bench -p warden-minimize --bench redact` skips criterion and runs
/// `find_spans` N times over each input, printing the bytes scanned, so that
/// `perf stat -e task-clock` gives CPU-time throughput, which a busy machine disturbs less; it
/// also prints the fastest and the median run's wall-clock throughput.
///
/// `WARDEN_BENCH_MINIMIZE=N` runs `minimize_request` N times over the 4 KiB request body, for
/// callgrind: the instructions of N = 1001 minus those of N = 1, over 1000, are one request's.
fn main() {
    if let Some(runs) = std::env::var("WARDEN_BENCH_MINIMIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let engine = Engine::builtin().unwrap();
        let (settings, limits) = (logs_tenant(), Limits::default());
        let Some(body) = request_4k() else {
            println!("SKIPPED request_4k: {DATA} is absent");
            return;
        };
        let mut sent = 0;
        for _ in 0..runs {
            sent = minimize_once(&engine, &settings, &limits, black_box(&body));
        }
        println!(
            "request_4k: {runs} x {} bytes, {sent} bytes sent",
            body.len()
        );
        return;
    }
    if let Some(runs) = std::env::var("WARDEN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let engine = Engine::builtin().unwrap();
        let which = std::env::var("WARDEN_BENCH_INPUT").unwrap_or_default();
        for (name, text) in [("loghub_clean", loghub()), ("labelled_dense", labelled())] {
            let Some(text) = text.filter(|_| which.is_empty() || which == name) else {
                continue;
            };
            let mut secs = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = std::time::Instant::now();
                black_box(engine.find_spans(black_box(&text)));
                secs.push(t.elapsed().as_secs_f64());
            }
            println!(
                "{name}: scanned {} bytes ({runs} x {})",
                runs * text.len(),
                text.len()
            );
            // The fastest runs are the ones the other load on a shared machine disturbed least.
            secs.sort_by(f64::total_cmp);
            if let (Some(min), Some(median)) = (secs.first(), secs.get(secs.len() / 2)) {
                let mb = text.len() as f64 / 1e6;
                println!(
                    "{name}: fastest run {:.0} MB/s, median run {:.0} MB/s (wall)",
                    mb / min,
                    mb / median
                );
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
