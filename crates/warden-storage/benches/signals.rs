//! Logs at volume: `store_logs` throughput (records per second, batches of 1 000 sealed
//! and written in one transaction each) and `QueryLogs` latency over a store holding
//! `WARDEN_BENCH_LOGS` records (default 20 000, so a run takes well under a minute), on
//! SQLite through storage's real handlers.
//!
//! At one million records (the figure docs/BENCHMARKS.md reports):
//!
//! ```text
//! WARDEN_BENCH_LOGS=1000000 cargo bench -p warden-storage --bench signals
//! ```
#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::telemetry_query_server::TelemetryQuery;
use warden_telemetry::model::LogRow;

const BATCH: usize = 1_000;
const T0: i64 = 1_760_054_400_000;
const SERVICES: [&str; 4] = ["checkout", "cart", "payments", "frontend"];

fn rows(start: usize, n: usize) -> Vec<LogRow> {
    (start..start + n)
        .map(|i| LogRow {
            // One record every 10 ms.
            time_ms: T0 + i as i64 * 10,
            service: SERVICES[i % SERVICES.len()].into(),
            severity_number: if i % 50 == 0 { 17 } else { 9 },
            severity_text: if i % 50 == 0 { "ERROR" } else { "INFO" }.into(),
            body: format!(
                "request {i} for order {} served in {} ms by pod checkout-7d9f-{}",
                i * 7,
                i % 900,
                i % 13
            ),
            trace_id: format!("{i:032x}"),
            span_id: format!("{i:016x}"),
            attributes: [("thread".to_owned(), format!("worker-{}", i % 8))].into(),
            resource: [
                (
                    "service.name".to_owned(),
                    SERVICES[i % SERVICES.len()].to_owned(),
                ),
                ("k8s.namespace.name".to_owned(), "shop".to_owned()),
            ]
            .into(),
        })
        .collect()
}

fn request(q: tm::QueryLogsRequest) -> tonic::Request<tm::QueryLogsRequest> {
    let mut req = tonic::Request::new(q);
    req.extensions_mut().insert(warden_tls::Caller {
        role: warden_tls::Role::AgentService,
        name: "agent-service".into(),
        scope: warden_tls::Scope::Platform,
        insecure_dev: false,
    });
    req
}

fn window(since_ms: i64, until_ms: i64) -> Option<tm::Window> {
    let ts = |ms: i64| prost_types::Timestamp {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    };
    Some(tm::Window {
        since: Some(ts(since_ms)),
        until: Some(ts(until_ms)),
    })
}

fn bench(c: &mut Criterion) {
    let total: usize = std::env::var("WARDEN_BENCH_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = rt.block_on(async {
        let db = warden_storage::Db::connect(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await
        .unwrap();
        warden_storage::Storage::open(db, Arc::new(warden_storage::MemoryKeyProvider::new()))
            .await
            .unwrap()
    });

    let mut group = c.benchmark_group("signals");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Appended after the preloaded records' times so queries below see a fixed store.
    let mut next = total;
    group.bench_function("store_logs_1000_records", |b| {
        b.iter(|| {
            let batch = rows(next, BATCH);
            next += BATCH;
            rt.block_on(storage.store_logs("acme", &batch)).unwrap();
        })
    });
    group.finish();

    // The store under query: `total` records of tenant acme (the batches above come after).
    rt.block_on(async {
        for start in (0..total).step_by(BATCH) {
            let batch = rows(start, BATCH.min(total - start));
            storage.store_logs("beta", &batch).await.unwrap();
        }
    });
    let end = T0 + total as i64 * 10;
    let hour = 3_600_000;
    let mut group = c.benchmark_group(format!("query_logs_over_{total}_records"));
    group.bench_function("newest_100_last_hour", |b| {
        b.iter(|| {
            let q = tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(end - hour, end),
                ..Default::default()
            };
            rt.block_on(TelemetryQuery::query_logs(&storage, request(q)))
                .unwrap()
        })
    });
    group.bench_function("service_and_errors_last_hour", |b| {
        b.iter(|| {
            let q = tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(end - hour, end),
                service: "checkout".into(),
                min_severity: 17,
                ..Default::default()
            };
            rt.block_on(TelemetryQuery::query_logs(&storage, request(q)))
                .unwrap()
        })
    });
    group.bench_function("text_filter_whole_store", |b| {
        b.iter(|| {
            let q = tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(T0, end),
                contains: "ORDER 7 SERVED".into(),
                ..Default::default()
            };
            rt.block_on(TelemetryQuery::query_logs(&storage, request(q)))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
