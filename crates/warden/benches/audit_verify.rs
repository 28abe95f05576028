//! `warden audit verify`'s offline paths in records per second (issue 18): a provable
//! export of `WARDEN_BENCH_AUDIT_VERIFY` records (default 200 000) and the tlog-tiles
//! directory of the same log, each checked in process with the functions the command
//! calls (`verify_export`, `verify_tiles`), with the log key only.
//!
//! The log is written through `Storage::append_audit` on SQLite (64 concurrent
//! appenders), the export built from storage's own proofs (`AuditLog/Query` with
//! proofs, 1 000 records a page) into the gateway's lines (`provable_line`), and the
//! tiles written from storage's `AuditLog/ExportTiles`, as `warden audit export` does.
//! Only the verification is timed (the export: best of `WARDEN_BENCH_AUDIT_EXPORT_RUNS`
//! runs, default 3). Method and figures: docs/benchmarks/audit-log.md.
//!
//! ```text
//! cargo bench -p warden --bench audit_verify
//! ```
#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "a bench reports its figures on stdout")]

use std::path::Path;

// The allocator of the `warden` binary whose `audit verify` this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::StreamExt;
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::audit_log_server::AuditLog;
use warden_storage::{LogSigner, Storage, StorageOptions};

const ORIGIN: &str = "warden.bench/audit";
const TENANT: &str = "acme";
const APPENDERS: usize = 64;

/// A request as the gateway (platform scope) sends it.
fn as_gateway<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.extensions_mut().insert(warden_tls::Caller {
        role: warden_tls::Role::Gateway,
        name: "gateway".into(),
        scope: warden_tls::Scope::Platform,
        insecure_dev: false,
    });
    req
}

fn record(n: usize) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Intent as i32,
        tenant_id: TENANT.into(),
        caller: format!("agent/worker-{}", n % 32),
        purpose: 1,
        agent_run_id: format!("run-{n:06}"),
        decision: AuditDecision::Allowed as i32,
        reason: "ALLOWED".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet".into(),
        data_types: vec![1, 2],
        outcome: "pending".into(),
        ..Default::default()
    }
}

async fn fill(storage: &Storage, total: usize) {
    let per = total / APPENDERS;
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|a| {
            let storage = storage.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    storage.append_audit(record(a * per + n)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The provable export of the tenant's records, as `warden audit export` writes it.
async fn export(storage: &Storage) -> String {
    let c = AuditLog::get_checkpoint(
        storage,
        as_gateway(st::GetCheckpointRequest { tree_size: 0 }),
    )
    .await
    .unwrap()
    .into_inner();
    let header = serde_json::json!({
        "format": warden_gateway::PROVABLE_FORMAT,
        "tenant_id": TENANT,
        "origin": c.origin,
        "verifier_key": c.verifier_key,
        "tree_size": c.tree_size,
        "checkpoint": c.note,
    });
    let mut text = format!("{header}\n");
    let mut after = 0;
    loop {
        let page = AuditLog::query(
            storage,
            as_gateway(st::QueryRequest {
                tenant_id: TENANT.into(),
                limit: 1000,
                after_sequence: after,
                with_proofs: true,
                proof_tree_size: c.tree_size,
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_inner();
        let Some(last) = page.records.last() else {
            return text;
        };
        after = last.sequence;
        for (r, p) in page.records.iter().zip(&page.proofs) {
            text.push_str(&warden_gateway::provable_line(r, p));
        }
    }
}

/// The log as a tlog-tiles directory, as `warden audit export --tiles` writes it.
async fn tiles(storage: &Storage, dir: &Path) -> u64 {
    let mut stream = AuditLog::export_tiles(storage, as_gateway(st::ExportTilesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut files = 0;
    while let Some(f) = stream.next().await {
        let f = f.unwrap();
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.data).unwrap();
        files += 1;
    }
    files
}

/// User and system CPU time of this process so far (`/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn main() {
    let asked: usize = std::env::var("WARDEN_BENCH_AUDIT_VERIFY")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(200_000);
    // Each appender appends as many.
    let total = asked.div_ceil(APPENDERS).max(1) * APPENDERS;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (storage, verifier) = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let db = warden_storage::Db::connect(&url).await.unwrap();
        let signer =
            warden_storage::log_key_file(&db, &keys.path().join("audit-log.key"), ORIGIN, None)
                .await
                .unwrap();
        let verifier = signer.verifier();
        let storage = Storage::open_with(
            db,
            Arc::new(warden_storage::MemoryKeyProvider::new()),
            StorageOptions {
                log_signer: Some(Arc::new(signer)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        (storage, verifier)
    });
    let t = Instant::now();
    rt.block_on(fill(&storage, total));
    println!(
        "# {total} records appended in {:.1} s (64 appenders, SQLite, not the figure here); {} cores, load average {}",
        t.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let text = rt.block_on(export(&storage));
    // `WARDEN_BENCH_AUDIT_EXPORT_OUT=DIR`: the export and the verifier key written there,
    // to time `warden audit verify DIR/export.jsonl --verifier-key DIR/verifier.key`.
    if let Ok(out) = std::env::var("WARDEN_BENCH_AUDIT_EXPORT_OUT") {
        let out = Path::new(&out);
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(out.join("export.jsonl"), &text).unwrap();
        std::fs::write(out.join("verifier.key"), verifier.to_string()).unwrap();
    }
    // The best of `WARDEN_BENCH_AUDIT_EXPORT_RUNS` runs (default 3): the other workers on
    // the machine come and go.
    // What `warden audit verify FILE` does: the file (here in the page cache) read in pieces
    // while the first are checked.
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &text).unwrap();
    let runs: usize = std::env::var("WARDEN_BENCH_AUDIT_EXPORT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut took = std::time::Duration::MAX;
    let mut report = None;
    let cpu_before = cpu_seconds();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        report = Some(warden::audit_verify::verify_export(&text, &verifier, &|_| {}).unwrap());
        took = took.min(t.elapsed());
    }
    // CPU time is what the neighbours on a shared machine do not change much: the rate
    // the machine's cores would give if the verification had them to itself.
    let cpu_per_record = (cpu_seconds() - cpu_before) / (runs.max(1) * total) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = report.unwrap();
    assert_eq!(report.records as usize, total);
    println!(
        "verify_export, in memory: {} records, {:.1} MB ({} B a line), {:.0} ms: {:.0} records/s; CPU {:.2} µs a record: {:.0} records/s on {cores} cores to itself",
        report.records,
        text.len() as f64 / 1e6,
        text.len() / total,
        took.as_secs_f64() * 1e3,
        report.records as f64 / took.as_secs_f64(),
        cpu_per_record * 1e6,
        cores as f64 / cpu_per_record,
    );
    let mut took = std::time::Duration::MAX;
    let cpu_before = cpu_seconds();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let input = std::fs::File::open(&file).unwrap();
        let report = warden::audit_verify::verify_export_from(input, &verifier, &|_| {}).unwrap();
        took = took.min(t.elapsed());
        assert_eq!(report.records as usize, total);
    }
    let cpu_per_record = (cpu_seconds() - cpu_before) / (runs.max(1) * total) as f64;
    println!(
        "verify_export_from a file (warden audit verify FILE): {total} records, {:.0} ms: {:.0} records/s; CPU {:.2} µs a record: {:.0} records/s on {cores} cores to itself",
        took.as_secs_f64() * 1e3,
        total as f64 / took.as_secs_f64(),
        cpu_per_record * 1e6,
        cores as f64 / cpu_per_record,
    );

    // `WARDEN_BENCH_AUDIT_PATHS` (default `export,tiles,database`): which paths to time,
    // e.g. `export` alone under a profiler.
    let paths = std::env::var("WARDEN_BENCH_AUDIT_PATHS")
        .unwrap_or_else(|_| "export,tiles,database".into());
    if !paths.contains("tiles") && !paths.contains("database") {
        return;
    }
    let tiles_dir = dir.path().join("tiles");
    let files = rt.block_on(tiles(&storage, &tiles_dir));
    let t = Instant::now();
    let report =
        warden::audit_verify::verify_tiles(&tiles_dir, ORIGIN, &verifier, &|_| {}).unwrap();
    let took = t.elapsed();
    assert_eq!(report.tree_size as usize, total);
    println!(
        "verify_tiles (warden audit verify --tiles): {} records in {files} files, {:.0} ms: {:.0} records/s",
        report.tree_size,
        took.as_secs_f64() * 1e3,
        report.tree_size as f64 / took.as_secs_f64()
    );

    let t = Instant::now();
    let report = rt
        .block_on(warden_storage::verify_log(
            storage.db(),
            &verifier,
            ORIGIN,
            &[],
            &|_, _| {},
        ))
        .unwrap();
    let took = t.elapsed();
    assert_eq!(report.first_bad, None);
    println!(
        "verify_log (warden audit verify --database): {} records, {} checkpoints, {:.0} ms: {:.0} records/s",
        report.records,
        report.checkpoints,
        took.as_secs_f64() * 1e3,
        report.records as f64 / took.as_secs_f64()
    );
}
