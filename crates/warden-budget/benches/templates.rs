//! Template mining throughput (lines/s) on the concatenated Loghub logs.
//!
//! Why: budgets run on every log request, so mining must stay cheap and linear. Skips with a
//! message when `../shared/data/loghub` is absent.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden_budget::mine;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/loghub");
const SETS: [&str; 7] = [
    "HDFS",
    "Apache",
    "OpenSSH",
    "Linux",
    "Zookeeper",
    "Spark",
    "OpenStack",
];

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(DATA);
    let mut all = String::new();
    for name in SETS {
        match std::fs::read_to_string(dir.join(format!("{name}_2k.log"))) {
            Ok(text) => all.push_str(&text),
            Err(_) => {
                eprintln!("SKIP templates bench: {} is absent", dir.display());
                return;
            }
        }
    }
    let lines: Vec<&str> = all.lines().collect();
    let mut group = c.benchmark_group("templates");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("mine_loghub_14k_lines", |b| {
        b.iter(|| mine(lines.iter().copied()).line_templates.len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
