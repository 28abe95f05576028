//! Time to learn a baseline from seven days of one-minute samples and to scan one day against
//! it: what one series costs the agent per evaluation.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use warden_anomaly::{DetectorConfig, Point, baseline, detect};

const MIN: i64 = 60_000;

fn series(days: i64) -> Vec<Point> {
    let mut state: u64 = 7;
    (0..days * 1440)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
            let phase = (i % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            Point {
                t_ms: i * MIN,
                value: 1000.0 + 300.0 * phase.sin() + 40.0 * noise,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = DetectorConfig::default();
    let all = series(8);
    let (history, recent) = all.split_at(7 * 1440);
    let base = baseline(history, &cfg).unwrap_or_else(|e| unreachable!("{e}"));
    c.bench_function("baseline_7_days_1_min", |b| {
        b.iter(|| baseline(black_box(history), &cfg))
    });
    c.bench_function("detect_1_day_1_min", |b| {
        b.iter(|| detect(&base, black_box(recent), &cfg))
    });
    let last_hour = &recent[recent.len() - 60..];
    c.bench_function("detect_last_hour_1_min", |b| {
        b.iter(|| detect(&base, black_box(last_hour), &cfg))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
