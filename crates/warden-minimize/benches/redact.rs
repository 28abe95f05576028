//! Redaction throughput (MB/s, one core): the seven Loghub 2k logs concatenated (real logs, few
//! secrets: the common case the keyword prefilter is built for) and the labelled corpus (dense
//! secrets: the worst realistic case). Skips a group with a message when its data is absent.
//! Figures and method: docs/BENCHMARKS.md, section "Redaction".
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
use warden_minimize::{Engine, Placeholders};

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

criterion_group!(benches, bench);

/// `WARDEN_BENCH_RUNS=N cargo bench -p warden-minimize --bench redact` skips criterion and runs
/// `find_spans` N times over each input, printing the bytes scanned, so that
/// `perf stat -e task-clock` gives CPU-time throughput, which a busy machine disturbs less; it
/// also prints the fastest and the median run's wall-clock throughput.
fn main() {
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
