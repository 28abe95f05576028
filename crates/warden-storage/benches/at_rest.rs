//! What sealing at rest costs: on the telemetry ingest path, one ingest of 100 log
//! records through storage's real handler on SQLite (sealing each body under the
//! tenant's data key, then one transaction) against sealing the same 100 bodies alone;
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
use warden_proto::common::v1::DataType;
use warden_proto::storage::v1::telemetry_server::Telemetry;
use warden_proto::storage::v1::{IngestRequest, TelemetryRecord};

const LINE: &str = "2026-11-25T10:00:01Z checkout ERROR payment provider timeout after 30s order=81723 region=eu-central-1 attempt=2";

fn records() -> Vec<TelemetryRecord> {
    (0..100)
        .map(|i| TelemetryRecord {
            tenant_id: "acme".into(),
            data_type: DataType::Logs as i32,
            service: "checkout".into(),
            body: format!("{LINE} seq={i}"),
            time: None,
        })
        .collect()
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
    let caller = warden_tls::Caller {
        role: warden_tls::Role::AgentService,
        name: "agent-service".into(),
        scope: warden_tls::Scope::Platform,
        insecure_dev: false,
    };
    let mut group = c.benchmark_group("at_rest");
    group.bench_function("ingest_100_records_sealed", |b| {
        b.iter(|| {
            let mut req = tonic::Request::new(IngestRequest { records: records() });
            req.extensions_mut().insert(caller.clone());
            rt.block_on(Telemetry::ingest(&storage, req)).unwrap();
        })
    });
    let key = warden_keys::DataKey::new("dk-bench", warden_keys::Zeroizing::new([7u8; 32]));
    let bodies: Vec<String> = records().into_iter().map(|r| r.body).collect();
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
