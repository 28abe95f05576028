//! Audit log throughput (issue 18): appends per second and the latency of each append
//! call with 1, 16 and 64 concurrent appenders, through `Storage::append_audit`, the
//! path the gRPC `AuditLog/Append` handler calls (sealing, chaining, the Merkle tile
//! update and a signed checkpoint in every commit, group commit), on SQLite (WAL,
//! `synchronous=FULL`, a file in a temporary directory) and, with `WARDEN_BENCH_PG`, on
//! PostgreSQL (`synchronous_commit=on`, a fresh schema). Then `verify_log` (what
//! `warden audit verify --database` runs) over the whole log, and proof sizes at one
//! million records from warden-merkle's functions over a tree in memory. (The export and
//! tiles paths of `warden audit verify` live in the binary crate: `crates/warden/benches/
//! audit_verify.rs`.)
//!
//! Every figure has a baseline measured in the same run: a plain write of 128 bytes
//! plus `fsync` (and `fdatasync`) of a file in the same temporary directory, which is
//! what the latency goal ("at most one fsync plus 1 ms at p99") is stated against, and
//! one plain-SQL `INSERT` per transaction with the same durability settings, one
//! appender. Each run appends a fixed count of records; the figures are printed as a
//! table (method and results: docs/benchmarks/audit-log.md).
//!
//! ```text
//! cargo bench -p warden-storage --bench audit
//! WARDEN_BENCH_PG=postgres://postgres@127.0.0.1:5432/test cargo bench -p warden-storage --bench audit
//! ```
//!
//! Knobs: `WARDEN_BENCH_AUDIT_RECORDS` (records per run, default 20 000),
//! `WARDEN_BENCH_AUDIT_APPENDERS` (default `1,16,64`), `WARDEN_BENCH_AUDIT_VERIFY`
//! (records the log holds when verified, default 100 000), `WARDEN_BENCH_AUDIT_FSYNCS`
//! (default 2 000), `WARDEN_BENCH_AUDIT_PROOF_LEAVES` (default 1 000 000),
//! `WARDEN_BENCH_AUDIT_PLAIN` (plain-SQL baseline rows, default the records per run),
//! `WARDEN_BENCH_AUDIT_SKIP_SQLITE=1` (PostgreSQL alone).
#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "a bench reports its figures on stdout")]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use warden_merkle::VerifierKey;
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_storage::{LogSigner, Storage, StorageOptions};

const ORIGIN: &str = "warden.bench/audit";
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// p50, p99 and the maximum of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy)]
struct Spread {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Spread {
        samples.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[i - 1]
        };
        Spread {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// One measured run: how many records (or rows, or syncs) in how long, and each call's latency.
struct Run {
    what: String,
    count: usize,
    wall: Duration,
    latency: Spread,
    /// Records per commit, where commits can be counted (one checkpoint each).
    per_commit: Option<f64>,
    /// CPU seconds (user + system) of this process and of every `postgres` process
    /// during the run: less disturbed by a busy machine than the wall clock.
    cpu: Cpu,
}

/// CPU time of this process and of the PostgreSQL server's processes, in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    bench: f64,
    postgres: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let mut postgres = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let dir = entry.path();
            let is_pg =
                std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "postgres");
            if is_pg {
                postgres += cpu_seconds(&dir.join("stat"));
            }
        }
        Cpu {
            bench: cpu_seconds(Path::new("/proc/self/stat")),
            postgres,
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        Cpu {
            bench: self.bench - start.bench,
            postgres: self.postgres - start.postgres,
        }
    }
}

/// utime + stime of `/proc/PID/stat`, in seconds (clock ticks of 1/100 s).
fn cpu_seconds(stat: &Path) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64()
    }

    fn print(&self, baseline: Option<&Run>) {
        let ratio = baseline.map_or(String::new(), |b| {
            format!("{:.2}", self.per_sec() / b.per_sec())
        });
        let per_commit = self.per_commit.map_or(String::new(), |p| format!("{p:.1}"));
        let us = |s: f64| format!("{:.1}", s * 1e6 / self.count.max(1) as f64);
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            self.what,
            self.count,
            self.per_sec(),
            ratio,
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.max),
            per_commit,
            us(self.cpu.bench),
            us(self.cpu.postgres),
        );
    }
}

fn table_header(what: &str) {
    println!();
    println!(
        "| {what} | count | per s | ratio to 1-appender plain SQL | p50 ms | p99 ms | max ms | records per commit | CPU µs each, bench process | CPU µs each, postgres |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// A write of 128 bytes appended to a file in `dir`, then `fsync` (`data_only`: `fdatasync`).
fn sync_baseline(dir: &Path, n: usize, data_only: bool) -> Run {
    let path = dir.join(if data_only { "fdatasync" } else { "fsync" });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let line = [b'x'; 128];
    let mut samples = Vec::with_capacity(n);
    let cpu = Cpu::now();
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        file.write_all(&line).unwrap();
        if data_only {
            file.sync_data().unwrap();
        } else {
            file.sync_all().unwrap();
        }
        samples.push(t.elapsed());
    }
    let wall = start.elapsed();
    let cpu = Cpu::now().since(cpu);
    std::fs::remove_file(&path).unwrap();
    Run {
        what: format!(
            "write 128 B + {}",
            if data_only { "fdatasync" } else { "fsync" }
        ),
        count: n,
        wall,
        latency: Spread::of(samples),
        per_commit: None,
        cpu,
    }
}

/// The database URL of one backend: a fresh SQLite file, or a fresh PostgreSQL schema.
async fn database(backend: &str, dir: &Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}?mode=rwc", dir.join("audit.db").display());
    }
    let base = std::env::var("WARDEN_BENCH_PG").unwrap();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap();
    let schema = schema_name();
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

fn schema_name() -> String {
    format!("warden_bench_audit_{}", std::process::id())
}

/// One INSERT of a row shaped like an audit row per transaction, one connection with
/// storage's durability settings: what the database alone costs per durable commit.
async fn plain_baseline(backend: &str, url: &str, n: usize) -> Run {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let settings: &[&str] = if backend == "sqlite" {
        &["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"]
    } else {
        &["SET synchronous_commit = on"]
    };
    for s in settings {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "CREATE TABLE bench_plain_audit (sequence BIGINT PRIMARY KEY, id TEXT NOT NULL, tenant_id TEXT NOT NULL, time_ms BIGINT NOT NULL, decision BIGINT NOT NULL, record TEXT NOT NULL, hash TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // About the size of a sealed record and its hash.
    let record = "r".repeat(360);
    let hash = "h".repeat(64);
    let mut samples = Vec::with_capacity(n);
    let cpu = Cpu::now();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO bench_plain_audit (sequence, id, tenant_id, time_ms, decision, record, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(i as i64 + 1)
            .bind(format!("{i:032x}"))
            .bind(TENANTS[i % TENANTS.len()])
            .bind(1_767_225_600_000i64 + i as i64)
            .bind(1i64)
            .bind(&record)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        samples.push(t.elapsed());
    }
    let wall = start.elapsed();
    let cpu = Cpu::now().since(cpu);
    sqlx::query("DROP TABLE bench_plain_audit")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    Run {
        what: "plain SQL, 1 INSERT per transaction, 1 appender".into(),
        count: n,
        wall,
        latency: Spread::of(samples),
        per_commit: None,
        cpu,
    }
}

/// Storage on `url` with a log signing key in `key_dir`, as `warden serve storage` opens
/// it, and the key that verifies its checkpoints.
async fn open_storage(url: &str, key_dir: &Path) -> (Storage, VerifierKey) {
    let db = warden_storage::Db::connect(url).await.unwrap();
    let key_file = key_dir.join("audit-log.key");
    let signer = warden_storage::log_key_file(&db, &key_file, ORIGIN, None)
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
}

/// A gateway's intent before a provider call, then its outcome naming the intent.
fn record(tenant: &str, n: usize, intent_id: Option<String>) -> AuditRecord {
    let outcome = intent_id.is_some();
    AuditRecord {
        kind: if outcome {
            AuditKind::Outcome
        } else {
            AuditKind::Intent
        } as i32,
        tenant_id: tenant.into(),
        caller: format!("agent/worker-{}", n % 32),
        purpose: 1,
        agent_run_id: format!("run-{:06}", n / 2),
        decision: AuditDecision::Allowed as i32,
        reason: "ALLOWED".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet".into(),
        data_types: vec![1, 2],
        outcome: if outcome { "ok" } else { "pending" }.into(),
        intent_id: intent_id.unwrap_or_default(),
        ..Default::default()
    }
}

/// Checkpoints signed so far: one per commit.
async fn checkpoints(reader: &AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints")
        .fetch_one(reader)
        .await
        .unwrap()
}

/// `total` appends by `appenders` concurrent callers, each an intent then its outcome,
/// every call timed from the call to its receipt. With a `rate` (records/s, all callers
/// together) the load is open: caller `a`'s `n`-th append is due at
/// `(n * appenders + a) / rate` seconds from the start, and a call made late because the
/// caller's previous call had not returned is timed from when it was due (no coordinated
/// omission); one made after sleeping is timed from the call (the timer's own lateness,
/// up to a millisecond, is the bench's, not the log's).
async fn appends(
    storage: &Storage,
    reader: &AnyPool,
    appenders: usize,
    total: usize,
    rate: Option<f64>,
    what: String,
) -> Run {
    let per = total.div_ceil(appenders);
    let before = checkpoints(reader).await;
    let cpu = Cpu::now();
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let tenant = TENANTS[a % TENANTS.len()];
                let mut samples = Vec::with_capacity(per);
                let mut open: Option<String> = None;
                for n in 0..per {
                    let r = record(tenant, n, open.take());
                    let mut t = Instant::now();
                    if let Some(rate) = rate {
                        let due =
                            start + Duration::from_secs_f64((n * appenders + a) as f64 / rate);
                        if due > t {
                            tokio::time::sleep_until(due.into()).await;
                            t = Instant::now();
                        } else {
                            t = due;
                        }
                    }
                    let receipt = storage.append_audit(r).await.unwrap();
                    samples.push(t.elapsed());
                    if n % 2 == 0 {
                        open = Some(receipt.id);
                    }
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(per * appenders);
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    let cpu = Cpu::now().since(cpu);
    let commits = checkpoints(reader).await - before;
    Run {
        what,
        count: samples.len(),
        wall,
        latency: Spread::of(samples),
        per_commit: (commits > 0).then(|| (per * appenders) as f64 / commits as f64),
        cpu,
    }
}

async fn records(reader: &AnyPool) -> usize {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(reader)
        .await
        .unwrap();
    n as usize
}

struct Backend {
    fsync: Run,
    plain: Run,
    runs: Vec<(usize, Run)>,
    /// 64 appenders offering the throughput goal's rate.
    paced: Run,
    rate_goal: f64,
}

async fn bench_backend(backend: &str, dir: &Path, counts: &Counts, rate_goal: f64) -> Backend {
    sqlx::any::install_default_drivers();
    let url = database(backend, dir).await;
    let key_dir = tempfile::tempdir().unwrap();
    println!();
    println!("## {backend}");
    table_header("baseline");
    let fsync = sync_baseline(dir, counts.fsyncs, false);
    fsync.print(None);
    sync_baseline(dir, counts.fsyncs, true).print(None);
    // SQLite: a file of its own, so the log's file is made by storage, with its settings.
    let plain_url = if backend == "sqlite" {
        format!("sqlite://{}?mode=rwc", dir.join("plain.db").display())
    } else {
        url.clone()
    };
    let plain = plain_baseline(backend, &plain_url, counts.plain).await;
    plain.print(Some(&plain));

    let (storage, verifier) = open_storage(&url, key_dir.path()).await;
    // The bench's own connection, for counting.
    let reader = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    table_header("Storage::append_audit");
    let mut runs = Vec::new();
    for &appenders in &counts.appenders {
        let run = appends(
            &storage,
            &reader,
            appenders,
            counts.records,
            None,
            format!("{appenders} appenders"),
        )
        .await;
        run.print(Some(&plain));
        runs.push((appenders, run));
    }
    // The latency goal holds at the throughput goal: 64 callers offering that rate.
    let paced = appends(
        &storage,
        &reader,
        64,
        counts.records,
        Some(rate_goal),
        format!("64 appenders offering {rate_goal:.0}/s (open loop)"),
    )
    .await;
    paced.print(Some(&plain));
    let held = records(&reader).await;
    if held < counts.verify {
        let run = appends(
            &storage,
            &reader,
            64,
            counts.verify - held,
            None,
            format!("64 appenders, log growing from {held} to {}", counts.verify),
        )
        .await;
        run.print(Some(&plain));
    }
    let held = records(&reader).await;
    let t = Instant::now();
    let report = warden_storage::verify_log(storage.db(), &verifier, ORIGIN, &[], &|_, _| {})
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(report.first_bad, None, "the benched log does not verify");
    assert_eq!(report.records as usize, held);
    println!();
    println!(
        "verify_log (warden audit verify --database): {} records and {} checkpoints in {} ms: {:.0} records/s",
        report.records,
        report.checkpoints,
        ms(took),
        report.records as f64 / took.as_secs_f64()
    );
    drop(storage);
    reader.close().await;
    if backend == "postgres" {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&std::env::var("WARDEN_BENCH_PG").unwrap())
            .await
            .unwrap();
        let dropped = sqlx::query(&format!("DROP SCHEMA {} CASCADE", schema_name()))
            .execute(&pool)
            .await;
        if let Err(e) = dropped {
            println!("(the bench schema {} stays: {e})", schema_name());
        }
    }
    Backend {
        fsync,
        plain,
        runs,
        paced,
        rate_goal,
    }
}

/// Inclusion and consistency proof sizes over a tree of `n` leaves held in memory, each
/// proof checked against the root.
fn proof_sizes(n: usize) {
    let leaves: Vec<warden_merkle::Hash> = (0..n as u64)
        .map(|i| warden_merkle::leaf_hash(&i.to_be_bytes()))
        .collect();
    let root = warden_merkle::root(&leaves);
    let bound = (n as f64).log2().ceil() as usize;
    println!();
    println!("## proofs over {n} leaves (ceil(log2 n) = {bound})");
    println!();
    println!("| proof | hashes | bytes |");
    println!("|---|---|---|");
    for index in [0, n / 3, n / 2, n - 2, n - 1] {
        let proof = warden_merkle::inclusion_proof(&leaves, index).unwrap();
        warden_merkle::verify_inclusion(index as u64, n as u64, &leaves[index], &proof, &root)
            .unwrap();
        println!(
            "| inclusion of leaf {index} | {} | {} |",
            proof.len(),
            proof.len() * 32
        );
    }
    for old in [1, 2, 1000, 4096, n / 2, n / 2 + 1, n - 1000, n - 1] {
        let proof = warden_merkle::consistency_proof(&leaves, old).unwrap();
        let old_root = warden_merkle::root(&leaves[..old]);
        warden_merkle::verify_consistency(old as u64, n as u64, &old_root, &root, &proof).unwrap();
        println!(
            "| consistency {old} → {n} | {} | {} |",
            proof.len(),
            proof.len() * 32
        );
    }
}

struct Counts {
    records: usize,
    appenders: Vec<usize>,
    verify: usize,
    fsyncs: usize,
    plain: usize,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Issue 18's goals: records/s with 64 appenders (closed loop), and the p99 of an append
/// with 64 appenders offering that rate, against one fsync + 1 ms.
fn goals(backend: &str, b: &Backend) {
    let allowed = b.fsync.latency.p99 + Duration::from_millis(1);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for (appenders, run) in &b.runs {
        let throughput = if *appenders == 64 {
            format!(
                "; throughput {:.0}/s against ≥ {:.0}/s: {}",
                run.per_sec(),
                b.rate_goal,
                verdict(run.per_sec() >= b.rate_goal)
            )
        } else {
            String::new()
        };
        println!(
            "{backend}, {appenders} appenders: p99 {} ms ({} ms over a plain one-row commit's p99 of {} ms){throughput}",
            ms(run.latency.p99),
            ms(run.latency.p99.saturating_sub(b.plain.latency.p99)),
            ms(b.plain.latency.p99),
        );
    }
    let p = &b.paced;
    println!(
        "{backend}, 64 appenders offering {:.0}/s ({:.0}/s achieved): p99 {} ms against one fsync (p99 {} ms) + 1 ms = {} ms: {}",
        b.rate_goal,
        p.per_sec(),
        ms(p.latency.p99),
        ms(b.fsync.latency.p99),
        ms(allowed),
        verdict(p.latency.p99 <= allowed && p.per_sec() >= 0.98 * b.rate_goal),
    );
}

/// Issue 18's throughput goals, records/s with 64 appenders on two cores.
const SQLITE_GOAL: f64 = 20_000.0;
const POSTGRES_GOAL: f64 = 15_000.0;

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let records = knob("WARDEN_BENCH_AUDIT_RECORDS", 20_000);
    let counts = Counts {
        records,
        appenders: std::env::var("WARDEN_BENCH_AUDIT_APPENDERS")
            .unwrap_or_else(|_| "1,16,64".into())
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .filter(|a| *a > 0)
            .collect(),
        verify: knob("WARDEN_BENCH_AUDIT_VERIFY", 100_000),
        fsyncs: knob("WARDEN_BENCH_AUDIT_FSYNCS", 2_000),
        plain: knob("WARDEN_BENCH_AUDIT_PLAIN", records),
    };
    let leaves = knob("WARDEN_BENCH_AUDIT_PROOF_LEAVES", 1_000_000).max(4096);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# audit log bench: {} records per run, appenders {:?}, {cores} cores, load average {} at start",
        counts.records,
        counts.appenders,
        load_average()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `WARDEN_BENCH_AUDIT_SKIP_SQLITE=1`: PostgreSQL alone (profiling its path).
    let sqlite = (knob("WARDEN_BENCH_AUDIT_SKIP_SQLITE", 0) == 0)
        .then(|| rt.block_on(bench_backend("sqlite", dir.path(), &counts, SQLITE_GOAL)));
    let postgres = std::env::var("WARDEN_BENCH_PG").is_ok().then(|| {
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(bench_backend(
            "postgres",
            dir.path(),
            &counts,
            POSTGRES_GOAL,
        ))
    });
    let t = Instant::now();
    proof_sizes(leaves);
    println!("(proofs computed and checked in {} ms)", ms(t.elapsed()));
    println!();
    println!("## goals (issue 18)");
    if let Some(sqlite) = &sqlite {
        goals("sqlite", sqlite);
    }
    if let Some(pg) = &postgres {
        goals("postgres", pg);
    }
    println!();
    println!("load average at the end: {}", load_average());
}
