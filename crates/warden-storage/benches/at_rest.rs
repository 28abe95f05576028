//! What sealing at rest costs: on the telemetry ingest path, one OTLP export of 100 log
//! records through storage's real ingest path on SQLite (decoding, sealing under the
//! tenant's data key, storing) against sealing the same 100 bodies alone;
//! on the audit append path, one durable append (sealed, chained, committed with
//! `synchronous=FULL`) against sealing the same record alone. Both pairs in the same run.
//! Figures and method: docs/BENCHMARKS.md, "Sealing at rest".
#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

const LINE: &str = "2026-11-25T10:00:01Z checkout ERROR payment provider timeout after 30s order=81723 region=eu-central-1 attempt=2";

fn bodies() -> Vec<String> {
    (0..100).map(|i| format!("{LINE} seq={i}")).collect()
}

fn export() -> ExportLogsServiceRequest {
    let text = |s: String| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        })
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: text("checkout".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies()
                    .into_iter()
                    .map(|b| LogRecord {
                        time_unix_nano: 1_767_225_600_000_000_000,
                        severity_number: 17,
                        body: text(b),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn bench(c: &mut Criterion) {
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
    let mut group = c.benchmark_group("at_rest");
    let request = export();
    let limits = warden_storage::ingest::ItemLimits::default();
    group.bench_function("otlp_export_100_log_records_sealed", |b| {
        b.iter(|| {
            rt.block_on(storage.export_logs("acme", &request, &limits))
                .unwrap()
        })
    });
    let key = warden_keys::DataKey::new("dk-bench", warden_keys::Zeroizing::new([7u8; 32]));
    let bodies = bodies();
    group.bench_function("seal_100_bodies_alone", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(warden_keys::seal(&key, "acme", body.as_bytes()).unwrap());
            }
        })
    });
    let record = warden_proto::common::v1::AuditRecord {
        kind: warden_proto::common::v1::AuditKind::Intent as i32,
        tenant_id: "acme".into(),
        caller: "agent/worker-7".into(),
        purpose: 1,
        agent_run_id: "run-0192".into(),
        decision: 1,
        reason: "ALLOWED".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet".into(),
        data_types: vec![1, 2],
        outcome: "pending".into(),
        ..Default::default()
    };
    group.bench_function("audit_append_sealed", |b| {
        b.iter(|| rt.block_on(storage.append_audit(record.clone())).unwrap())
    });
    let encoded = prost::Message::encode_to_vec(&record);
    group.bench_function("seal_audit_record_alone", |b| {
        b.iter(|| black_box(warden_keys::seal(&key, "acme/audit", &encoded).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
