//! Logs at volume, on SQLite and (with `WARDEN_BENCH_PG`) PostgreSQL: OTLP log ingest in
//! records per second through storage's real export path (decode, seal under the tenant's
//! data key, one transaction per request), and `QueryLogs` latency over a store holding
//! `WARDEN_BENCH_LOGS` records (default 20 000, so a run takes about a minute).
//!
//! Each figure has a baseline measured in the same run on the same database: the same
//! records inserted in the clear into a bare table with the same indexes, and the same
//! questions asked of it in plain SQL. The ratio is what Warden's sealing, decoding and
//! bounded, tenant-scoped answers cost over the database alone.
//!
//! ```text
//! WARDEN_BENCH_LOGS=1000000 cargo bench -p warden-storage --bench signals
//! WARDEN_BENCH_PG=postgres://postgres@127.0.0.1:5432/test WARDEN_BENCH_LOGS=1000000 \
//!     cargo bench -p warden-storage --bench signals
//! ```
#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sqlx::any::AnyPoolOptions;
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::telemetry_query_server::TelemetryQuery;
use warden_storage::ingest::ItemLimits;

const BATCH: usize = 1_000;
const T0_MS: i64 = 1_760_054_400_000;
const SERVICES: [&str; 4] = ["checkout", "cart", "payments", "frontend"];

fn text(s: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    })
}

fn body(i: usize) -> String {
    format!(
        "request {i} for order {} served in {} ms by pod checkout-7d9f-{}",
        i * 7,
        i % 900,
        i % 13
    )
}

fn time_ms(i: usize) -> i64 {
    // One record every 10 ms.
    T0_MS + i as i64 * 10
}

fn severity(i: usize) -> i32 {
    if i.is_multiple_of(50) { 17 } else { 9 }
}

/// Records `start..start + n` as one OTLP export, one resource per service.
fn export(start: usize, n: usize) -> ExportLogsServiceRequest {
    let resource_logs = SERVICES
        .iter()
        .enumerate()
        .map(|(k, service)| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    KeyValue {
                        key: "service.name".into(),
                        value: text((*service).into()),
                        ..Default::default()
                    },
                    KeyValue {
                        key: "k8s.namespace.name".into(),
                        value: text("shop".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (start..start + n)
                    .filter(|i| i % SERVICES.len() == k)
                    .map(|i| LogRecord {
                        time_unix_nano: time_ms(i) as u64 * 1_000_000,
                        severity_number: severity(i),
                        severity_text: if severity(i) == 17 { "ERROR" } else { "INFO" }.into(),
                        body: text(body(i)),
                        trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        attributes: vec![KeyValue {
                            key: "thread".into(),
                            value: text(format!("worker-{}", i % 8)),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// The same records in the clear, in one multi-row INSERT (the baseline).
async fn plain_insert(pool: &sqlx::AnyPool, tenant: &str, start: usize, n: usize) {
    let mut sql = String::from(
        "INSERT INTO bench_plain_logs (tenant_id, time_ms, service, severity, body) VALUES ",
    );
    for k in 0..n {
        let p = k * 5;
        if k > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
    }
    let mut q = sqlx::query(&sql);
    for i in start..start + n {
        q = q
            .bind(tenant.to_owned())
            .bind(time_ms(i))
            .bind(SERVICES[i % SERVICES.len()])
            .bind(i64::from(severity(i)))
            .bind(body(i));
    }
    let mut tx = pool.begin().await.unwrap();
    q.execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
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

/// The database URL of one backend: a fresh SQLite file, or a fresh PostgreSQL schema.
async fn database(backend: &str, dir: &std::path::Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}", dir.join("bench.db").display());
    }
    let base = std::env::var("WARDEN_BENCH_PG").unwrap();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap();
    let schema = format!("warden_bench_{}", std::process::id());
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn bench_backend(c: &mut Criterion, backend: &str, total: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (storage, plain) = rt.block_on(async {
        sqlx::any::install_default_drivers();
        let url = database(backend, dir.path()).await;
        let db = warden_storage::Db::connect(&url).await.unwrap();
        let storage =
            warden_storage::Storage::open(db, Arc::new(warden_storage::MemoryKeyProvider::new()))
                .await
                .unwrap();
        // The baseline's own connection to the same database, with storage's SQLite settings
        // (WAL, synchronous=FULL: a committed row survives power loss, as storage's do).
        let plain = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        if backend == "sqlite" {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&plain)
                .await
                .unwrap();
            sqlx::query("PRAGMA synchronous=FULL")
                .execute(&plain)
                .await
                .unwrap();
        }
        for stmt in [
            "CREATE TABLE IF NOT EXISTS bench_plain_logs (tenant_id TEXT NOT NULL, time_ms BIGINT NOT NULL, service TEXT NOT NULL, severity BIGINT NOT NULL, body TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS bench_plain_logs_time ON bench_plain_logs (tenant_id, time_ms)",
            "CREATE INDEX IF NOT EXISTS bench_plain_logs_service ON bench_plain_logs (tenant_id, service, time_ms)",
        ] {
            sqlx::query(stmt).execute(&plain).await.unwrap();
        }
        (storage, plain)
    });
    let lim = ItemLimits::default();

    let mut group = c.benchmark_group(format!("{backend}/ingest"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    // Appended after the preloaded records' times so the queries below see a fixed store.
    let mut next = total;
    group.bench_function("otlp_export_1000_log_records", |b| {
        b.iter(|| {
            let req = export(next, BATCH);
            next += BATCH;
            rt.block_on(storage.export_logs("acme", &req, &lim))
                .unwrap();
        })
    });
    let mut next_plain = total;
    group.bench_function("baseline_plain_insert_1000_rows", |b| {
        b.iter(|| {
            rt.block_on(plain_insert(&plain, "acme", next_plain, BATCH));
            next_plain += BATCH;
        })
    });
    group.finish();

    // The store under query: `total` records of tenant beta, in both forms.
    rt.block_on(async {
        for start in (0..total).step_by(BATCH) {
            let n = BATCH.min(total - start);
            storage
                .export_logs("beta", &export(start, n), &lim)
                .await
                .unwrap();
            plain_insert(&plain, "beta", start, n).await;
        }
    });
    let end = time_ms(total);
    let hour = 3_600_000;
    let mut group = c.benchmark_group(format!("{backend}/query_over_{total}_records"));
    group.sample_size(20);
    let query = |q: tm::QueryLogsRequest| {
        rt.block_on(TelemetryQuery::query_logs(&storage, request(q)))
            .unwrap()
    };
    let plain_select = |sql: &str, binds: (i64, i64)| {
        rt.block_on(
            sqlx::query(sql)
                .bind("beta")
                .bind(binds.0)
                .bind(binds.1)
                .fetch_all(&plain),
        )
        .unwrap()
    };
    group.bench_function("newest_100_last_hour", |b| {
        b.iter(|| {
            query(tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(end - hour, end),
                limit: 100,
                ..Default::default()
            })
        })
    });
    group.bench_function("baseline_newest_100_last_hour", |b| {
        b.iter(|| {
            plain_select(
                "SELECT time_ms, service, severity, body FROM bench_plain_logs WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3 ORDER BY time_ms DESC LIMIT 100",
                (end - hour, end),
            )
        })
    });
    group.bench_function("service_errors_last_hour", |b| {
        b.iter(|| {
            query(tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(end - hour, end),
                service: "checkout".into(),
                min_severity: 17,
                limit: 100,
                ..Default::default()
            })
        })
    });
    group.bench_function("baseline_service_errors_last_hour", |b| {
        b.iter(|| {
            plain_select(
                "SELECT time_ms, service, severity, body FROM bench_plain_logs WHERE tenant_id = $1 AND service = 'checkout' AND time_ms >= $2 AND time_ms < $3 AND severity >= 17 ORDER BY time_ms DESC LIMIT 100",
                (end - hour, end),
            )
        })
    });
    group.bench_function("text_in_last_hour", |b| {
        b.iter(|| {
            query(tm::QueryLogsRequest {
                tenant_id: "beta".into(),
                window: window(end - hour, end),
                contains: "ORDER 7".into(),
                limit: 100,
                ..Default::default()
            })
        })
    });
    group.bench_function("baseline_text_in_last_hour", |b| {
        b.iter(|| {
            plain_select(
                "SELECT time_ms, service, severity, body FROM bench_plain_logs WHERE tenant_id = $1 AND time_ms >= $2 AND time_ms < $3 AND LOWER(body) LIKE '%order 7%' ORDER BY time_ms DESC LIMIT 100",
                (end - hour, end),
            )
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let total: usize = std::env::var("WARDEN_BENCH_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if std::env::var("WARDEN_BENCH_PG").is_ok() {
        bench_backend(c, "postgres", total);
    } else {
        bench_backend(c, "sqlite", total);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
