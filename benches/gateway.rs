//! Criterion: the latency of one completion straight to the mock provider (baseline) and
//! through the whole gateway (mTLS, settings, policy, redaction, two durable audit
//! writes over gRPC to storage), in the same process, for two payload sizes.
//!
//! `cargo bench -p warden-benches --bench gateway`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench set-up")]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use warden_benches::{Database, Rig, sample_logs};

fn gateway_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rig = rt
        .block_on(Rig::start(Database::Sqlite, std::time::Duration::ZERO))
        .unwrap();
    let mut group = c.benchmark_group("complete");
    for bytes in [1024, 16 * 1024] {
        let logs = sample_logs(bytes);
        group.throughput(Throughput::Bytes(logs.len() as u64));
        group.bench_with_input(BenchmarkId::new("direct", bytes), &logs, |b, logs| {
            b.iter(|| rt.block_on(rig.direct(logs)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("gateway", bytes), &logs, |b, logs| {
            b.iter(|| rt.block_on(rig.through_gateway(logs)).unwrap());
        });
    }
    group.finish();
    rt.block_on(rig.stop());
}

criterion_group!(benches, gateway_overhead);
criterion_main!(benches);
