//! Durability proven by crashes: `warden serve storage` is killed with SIGKILL at a fresh
//! random moment while many gateways append to the audit log, and started again, over
//! and over. Afterwards every acknowledged record is in the log at the sequence its
//! receipt named, the log verifies offline, and every checkpoint that was published
//! before a crash has a consistency proof to the final head (no published tail was cut).
//!
//! Then syscall faults in the manner of Tessera's POSIX fault test: under `strace
//! -e inject=`, an EIO or a SIGKILL at the write or the fsync of one append's commit to
//! the SQLite write-ahead log leaves a writer that refused (and keeps refusing, while
//! storage's audit log and overall health answer NOT_SERVING) and, after a restart, a
//! log that verifies and holds every acknowledged record and none that was refused; and
//! the log is fsynced at least once per commit.
//!
//! One kill in ten lands while storage is still starting (opening the database, checking
//! the tree, reconciling). `WARDEN_CRASH_KILLS` sets the kills per backend (default 200).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod common;

use common::free_port;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_merkle::checkpoint::Checkpoint;
use warden_merkle::{Hash, VerifierKey, verify_consistency};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_rpc::Security;
use warden_tls::{Role, TlsFiles};

const ORIGIN: &str = "warden.example/audit";
/// Gateways appending at once.
const APPENDERS: usize = 16;
const TENANTS: [&str; 2] = ["acme", "globex"];
/// The SQLite database of the syscall fault tests, relative to storage's directory.
const SQLITE: &str = "sqlite://.warden/warden.db";

/// Kills the child when the test ends, however it ends.
struct Service(Child);

impl Service {
    /// SIGKILL: no shutdown path runs, nothing is flushed. Under strace, the traced
    /// storage process (strace's child) is killed first, as strace would not pass it on.
    fn kill9(mut self) {
        self.kill_children();
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    fn kill_children(&self) {
        let pid = self.0.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", child]).status();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill_children();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kills() -> usize {
    std::env::var("WARDEN_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A fresh random number (the hasher's keys are random per process and per call).
fn random(below: u64) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now()) % below.max(1)
}

/// The shipped storage config with free ports, `database`, and a published checkpoint file.
fn config(dir: &Path, database: &str, port: u16) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/storage.toml");
    let mut text = std::fs::read_to_string(shipped).unwrap();
    for (from, to) in [
        (7444, port),
        (9466, free_port()),
        (4317, free_port()),
        (4318, free_port()),
    ] {
        // Quoted, so that a new port never matches the start of another one.
        text = text.replace(
            &format!("\"127.0.0.1:{from}\""),
            &format!("\"127.0.0.1:{to}\""),
        );
    }
    text = text.replace(
        "database = \"sqlite://.warden/warden.db\"",
        &format!("database = \"{database}\""),
    );
    text = text.replace(
        "# audit_checkpoint_file = \"/var/lib/warden-witness/checkpoint\"",
        "audit_checkpoint_file = \"witness/checkpoint\"",
    );
    assert!(text.contains(database) && text.contains("witness/checkpoint"));
    let path = dir.join("storage.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(dir: &Path, config: &Path) -> Service {
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(["serve", "storage", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(stderr_log(dir))
        .spawn()
        .unwrap();
    Service(child)
}

/// Storage's errors in `dir/storage.log` (of its latest start).
fn stderr_log(dir: &Path) -> std::fs::File {
    std::fs::File::create(dir.join("storage.log")).unwrap()
}

fn identity(dir: &Path, name: &str) -> Security {
    let pki = dir.join(".warden/pki");
    Security::Mtls(TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{name}.pem")),
        key: pki.join(format!("{name}-key.pem")),
    })
}

fn gateway(dir: &Path, port: u16) -> AuditLogClient<tonic::transport::Channel> {
    let ch = warden_rpc::connect(
        &format!("127.0.0.1:{port}"),
        &identity(dir, "gateway"),
        Role::Storage,
        Duration::from_secs(5),
    )
    .unwrap();
    AuditLogClient::new(ch)
}

/// Starts storage with `spawn(config)` on fresh ports and waits until it serves. A port
/// that another process took while storage was down is the harness's problem, not
/// storage's: storage is then started again on other ports.
async fn start(dir: &Path, database: &str, spawn: impl Fn(&Path) -> Service) -> (Service, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut service = spawn(&config(dir, database, port));
        if wait_serving(dir, port, &mut service).await {
            return (service, port);
        }
    }
    panic!("storage found no free ports in five tries");
}

/// Waits (bounded) until storage answers its health check over mTLS; false if it
/// could not listen because its port was taken.
async fn wait_serving(dir: &Path, port: u16, service: &mut Service) -> bool {
    for _ in 0..1000 {
        let ch = warden_rpc::connect(
            &format!("127.0.0.1:{port}"),
            &identity(dir, "gateway"),
            Role::Storage,
            Duration::from_secs(1),
        )
        .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
        let ok = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == 1);
        if ok {
            return true;
        }
        if let Some(status) = service.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("storage.log")).unwrap_or_default();
            // Two fresh ports that turned out equal are refused by the config check; a
            // port taken meanwhile by the listener: either way, new ports.
            if log.contains("Address already in use") || log.contains("cannot share an address") {
                return false;
            }
            panic!("storage exited with {status} instead of starting after a crash:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("storage never became healthy");
}

fn intent(tenant: &str, n: u64) -> st::AppendRequest {
    st::AppendRequest {
        record: Some(AuditRecord {
            kind: AuditKind::Intent as i32,
            tenant_id: tenant.into(),
            caller: format!("agent/crash-{n}"),
            decision: AuditDecision::Allowed as i32,
            provider: "local".into(),
            ..Default::default()
        }),
    }
}

/// Every acknowledged record: id → (tenant, sequence).
type Acked = Arc<Mutex<BTreeMap<String, (String, u64)>>>;

/// One gateway appending until storage dies (or `stop`), remembering every receipt.
async fn appender(
    mut log: AuditLogClient<tonic::transport::Channel>,
    tenant: &'static str,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match log.append(intent(tenant, n)).await {
            Ok(r) => {
                let r = r.into_inner();
                let before = acked
                    .lock()
                    .unwrap()
                    .insert(r.id.clone(), (tenant.to_owned(), r.sequence));
                assert!(before.is_none(), "record id {} acknowledged twice", r.id);
            }
            // Killed mid-call: the outcome is unknown, so nothing is claimed.
            Err(_) => return,
        }
    }
}

fn open_checkpoint(note: &str, key: &VerifierKey) -> Checkpoint {
    Checkpoint::open(note.as_bytes(), ORIGIN, key, &[])
        .unwrap_or_else(|e| panic!("a published checkpoint does not verify: {e}\n{note}"))
        .0
}

/// The dev CA and the service certificates in `dir`.
fn certs(dir: &Path) {
    let init = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(["certs", "init"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
}

/// The crash loop on `database`, then the checks.
async fn crash_and_check(database: &str, dir: &Path) {
    certs(dir);
    let published_file = dir.join("witness/checkpoint");

    let acked: Acked = Arc::default();
    let mut published = BTreeSet::new();
    let started = Instant::now();
    let kills = kills();
    for round in 0..kills {
        if round > 0 && random(10) == 0 {
            let service = serve(dir, &dir.join("storage.toml"));
            tokio::time::sleep(Duration::from_micros(random(100_000))).await;
            service.kill9();
            continue;
        }
        let (service, port) = start(dir, database, |cfg| serve(dir, cfg)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let log = gateway(dir, port);
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|i| {
                tokio::spawn(appender(
                    log.clone(),
                    TENANTS[i % TENANTS.len()],
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // A fresh random moment: anywhere in the first 150 ms of appending.
        tokio::time::sleep(Duration::from_micros(random(150_000))).await;
        // What a witness holds at the moment of the crash.
        if let Ok(note) = std::fs::read_to_string(&published_file) {
            published.insert(note);
        }
        service.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }
    let crashed_for = started.elapsed();

    // Back up once more: every acknowledged record is there, at its sequence.
    let (service, port) = start(dir, database, |cfg| serve(dir, cfg)).await;
    let mut log = gateway(dir, port);
    let mut found = BTreeMap::new();
    for tenant in TENANTS {
        let mut after = 0;
        loop {
            let page = log
                .query(st::QueryRequest {
                    tenant_id: tenant.into(),
                    after_sequence: after,
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .records;
            let Some(last) = page.last() else { break };
            after = last.sequence;
            for r in page {
                found.insert(r.id, (r.tenant_id, r.sequence));
            }
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > kills,
        "too few appends were acknowledged ({}) for the test to mean anything",
        acked.len()
    );
    for (id, want) in &acked {
        assert_eq!(
            found.get(id),
            Some(want),
            "acknowledged record {id} (tenant, sequence) {want:?} was lost in a crash"
        );
    }

    // Every published checkpoint is consistent with the head after the last crash.
    let key = warden_storage::log_key::read_key(&dir.join(".warden-keys/audit-log.key"))
        .unwrap()
        .verifier();
    let head = log
        .get_checkpoint(st::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    let head_cp = open_checkpoint(&head.note, &key);
    assert!(head_cp.size >= found.len() as u64);
    assert!(
        published.len() > kills / 4,
        "only {} distinct checkpoints were published",
        published.len()
    );
    for note in &published {
        let old = open_checkpoint(note, &key);
        if old.size == 0 {
            // Every tree extends the empty one: there is nothing to prove.
            continue;
        }
        let proof = log
            .get_consistency_proof(st::GetConsistencyProofRequest {
                old_size: old.size,
                new_size: head_cp.size,
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<Hash> = proof
            .hashes
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        verify_consistency(old.size, head_cp.size, &old.root, &head_cp.root, &hashes)
            .unwrap_or_else(|e| {
                panic!(
                    "checkpoint of size {} published before a crash is not consistent with the head of size {}: {e}",
                    old.size, head_cp.size
                )
            });
    }
    service.kill9();

    // And the database verifies offline: every leaf, every root, every signature, and
    // every checkpoint the witness kept.
    let db = warden_storage::Db::connect(&absolute_sqlite(database, dir))
        .await
        .unwrap();
    let kept: Vec<String> = published.into_iter().collect();
    let report = warden_storage::verify_log(&db, &key, ORIGIN, &kept, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(report.first_bad, None, "{report:?}");
    assert_eq!(report.records, head_cp.size);
    eprintln!(
        "{kills} kills in {crashed_for:?}: {} records acknowledged, {} in the log, {} checkpoints published",
        acked.len(),
        head_cp.size,
        kept.len()
    );
}

/// A relative SQLite URL as seen from `dir` (where storage ran).
fn absolute_sqlite(database: &str, dir: &Path) -> String {
    match database.strip_prefix("sqlite://") {
        Some(path) if !path.starts_with('/') => format!("sqlite://{}", dir.join(path).display()),
        _ => database.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_storage_killed_mid_append_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_check("sqlite://.warden/warden.db", dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_storage_killed_mid_append_loses_no_acknowledged_record() {
    let Some(url) = warden_storage::test_pg::fresh_schema_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_and_check(&url, dir.path()).await;
}

/// `strace`, or None (SKIPPED) when it is not installed; under `CI=true` that fails.
fn strace() -> Option<&'static str> {
    if Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("strace");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and strace is not installed (scripts/test-deps installs it)");
    }
    eprintln!("SKIPPED: strace is not installed");
    None
}

/// Storage under strace: the calls in `syscalls` on `path` are traced to `out`, and the
/// `when`-th of them on each thread gets `inject` (e.g. `error=EIO`) unless it is empty.
fn serve_traced(
    dir: &Path,
    config: &Path,
    path: &Path,
    syscalls: &str,
    inject: &str,
    when: usize,
) -> Service {
    let mut cmd = Command::new(strace().unwrap());
    cmd.current_dir(dir)
        .args(["-f", "-qq", "-o"])
        .arg(dir.join("strace.out"))
        .arg("-P")
        .arg(path)
        .arg(format!("--trace={syscalls}"));
    if !inject.is_empty() {
        cmd.arg(format!("--inject={syscalls}:{inject}:when={when}"));
    }
    let child = cmd
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "storage", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(stderr_log(dir))
        .spawn()
        .unwrap();
    Service(child)
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// Storage's health status of `service` once it is `want`, or after five seconds
/// whatever it then is (health follows the writer from another task).
async fn health_after(dir: &Path, port: u16, service: &str, want: i32) -> i32 {
    let ch = warden_rpc::connect(
        &format!("127.0.0.1:{port}"),
        &identity(dir, "gateway"),
        Role::Storage,
        Duration::from_secs(1),
    )
    .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends one record as the gateway: its receipt's id, or the refusal.
async fn append_one(
    log: &mut AuditLogClient<tonic::transport::Channel>,
    caller: &str,
) -> Result<String, tonic::Status> {
    let mut req = intent("acme", 0);
    req.record.as_mut().unwrap().caller = caller.into();
    log.append(req).await.map(|r| r.into_inner().id)
}

/// Every record of acme: caller → id.
async fn callers(log: &mut AuditLogClient<tonic::transport::Channel>) -> BTreeMap<String, String> {
    log.query(st::QueryRequest {
        tenant_id: "acme".into(),
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .records
    .into_iter()
    .map(|r| (r.caller, r.id))
    .collect()
}

async fn verify_offline(dir: &Path) -> warden_storage::LogReport {
    let key = warden_storage::log_key::read_key(&dir.join(".warden-keys/audit-log.key"))
        .unwrap()
        .verifier();
    let db = warden_storage::Db::connect(&absolute_sqlite("sqlite://.warden/warden.db", dir))
        .await
        .unwrap();
    warden_storage::verify_log(&db, &key, ORIGIN, &[], &|_, _| {})
        .await
        .unwrap()
}

/// One append under the fault `inject` at the `when`-th of `syscalls` on the log's
/// write-ahead log, then the checks.
async fn fault_one_append(syscalls: &str, inject: &str, when: usize) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir);
    // A log with acknowledged records (and its write-ahead log file) before the fault.
    let (service, port) = start(dir, SQLITE, |cfg| serve(dir, cfg)).await;
    let mut log = gateway(dir, port);
    let mut acked = Vec::new();
    for i in 0..3 {
        acked.push(append_one(&mut log, &format!("acked-{i}")).await.unwrap());
    }
    service.kill9();

    let wal = dir.join(".warden/warden.db-wal");
    assert!(wal.exists(), "no write-ahead log at {}", wal.display());
    let (mut service, port) = start(dir, SQLITE, |cfg| {
        serve_traced(dir, cfg, &wal, syscalls, inject, when)
    })
    .await;
    let mut log = gateway(dir, port);
    let what = format!("{inject} at call {when} of {syscalls}");
    // Never acknowledged: refused (EIO) or cut off with the process (KILL).
    let err = append_one(&mut log, "faulted").await.unwrap_err();
    let refused = append_one(&mut log, "refused").await.unwrap_err();
    if inject.starts_with("error=") {
        assert_eq!(err.code(), tonic::Code::Unavailable, "{what}: {err:?}");
        assert_eq!(
            refused.code(),
            tonic::Code::Unavailable,
            "{what}: {refused:?}"
        );
        // Still up, and poisoned: the second append is refused without being tried.
        assert!(
            err.message()
                .contains("whether this record was written is unknown"),
            "{what}: {err:?}"
        );
        assert!(
            refused
                .message()
                .contains("accepts no records since a commit failed")
                && refused.message().contains("I/O error"),
            "{what}: {refused:?}"
        );
        assert!(service.0.try_wait().unwrap().is_none(), "{what}");
        // And out of service: a load balancer stops sending to it, an orchestrator
        // restarts it. The rest of storage still answers.
        for (name, want) in [
            ("warden.storage.v1.AuditLog", NOT_SERVING),
            ("", NOT_SERVING),
            ("warden.storage.v1.TenantStore", SERVING),
        ] {
            assert_eq!(
                health_after(dir, port, name, want).await,
                want,
                "{what}: health of {name:?}"
            );
        }
    } else {
        // strace exits with its tracee.
        let status = service.0.wait().unwrap();
        assert!(!status.success(), "{what}: {status}");
    }
    service.kill9();
    let trace = std::fs::read_to_string(dir.join("strace.out")).unwrap();
    // EIO: the call returned the injected error; KILL: it never returned.
    let injected = if inject.starts_with("error=") {
        trace.contains("(INJECTED)")
    } else {
        trace.lines().any(|l| l.ends_with("= ?"))
    };
    assert!(injected, "{what}: nothing was injected:\n{trace}");

    // After a restart: the log verifies, holds every acknowledged record and none that
    // was refused (the faulted one may or may not have landed: its caller was told so).
    let (service, port) = start(dir, SQLITE, |cfg| serve(dir, cfg)).await;
    let mut log = gateway(dir, port);
    append_one(&mut log, "restarted").await.unwrap();
    let found = callers(&mut log).await;
    for (i, id) in acked.iter().enumerate() {
        assert_eq!(
            found.get(&format!("acked-{i}")),
            Some(id),
            "{what}: {found:?}"
        );
    }
    assert!(!found.contains_key("refused"), "{what}: {found:?}");
    service.kill9();
    let report = verify_offline(dir).await;
    assert_eq!(report.first_bad, None, "{what}: {report:?}");
    assert_eq!(report.records, found.len() as u64, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eio_or_kill_at_each_write_and_fsync_of_an_append_leaves_a_refusing_writer_and_a_log_that_verifies()
 {
    if strace().is_none() {
        return;
    }
    // At each write and each fsync that one append's commit makes.
    for syscalls in ["pwrite64,write", "fsync,fdatasync"] {
        let calls = calls_per_append(syscalls).await;
        assert!(calls >= 1, "one append made no {syscalls} call on the log");
        eprintln!("one append: {calls} calls of {syscalls} on the write-ahead log");
        for when in 1..=calls {
            for inject in ["error=EIO", "signal=KILL"] {
                fault_one_append(syscalls, inject, when).await;
            }
        }
    }
}

/// How many of `syscalls` one append makes on the write-ahead log.
async fn calls_per_append(syscalls: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir);
    let (service, port) = start(dir, SQLITE, |cfg| serve(dir, cfg)).await;
    // The same log as `fault_one_append` faults: three records before.
    let mut log = gateway(dir, port);
    for i in 0..3 {
        append_one(&mut log, &format!("acked-{i}")).await.unwrap();
    }
    service.kill9();
    let wal = dir.join(".warden/warden.db-wal");
    let (service, port) = start(dir, SQLITE, |cfg| {
        serve_traced(dir, cfg, &wal, syscalls, "", 0)
    })
    .await;
    append_one(&mut gateway(dir, port), "second").await.unwrap();
    service.kill9();
    let trace = std::fs::read_to_string(dir.join("strace.out")).unwrap();
    trace
        .lines()
        .filter(|l| syscalls.split(',').any(|c| l.contains(&format!(" {c}("))))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_fsynced_at_least_once_per_commit() {
    if strace().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir);
    let (service, port) = start(dir, SQLITE, |cfg| serve(dir, cfg)).await;
    append_one(&mut gateway(dir, port), "first").await.unwrap();
    service.kill9();

    let wal = dir.join(".warden/warden.db-wal");
    let (service, port) = start(dir, SQLITE, |cfg| {
        serve_traced(dir, cfg, &wal, "fsync,fdatasync", "", 0)
    })
    .await;
    let mut log = gateway(dir, port);
    // One at a time: each append is a commit of its own.
    let commits = 20;
    for i in 0..commits {
        append_one(&mut log, &format!("c{i}")).await.unwrap();
    }
    service.kill9();
    let trace = std::fs::read_to_string(dir.join("strace.out")).unwrap();
    let syncs = trace
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count();
    eprintln!("{syncs} fsyncs of the write-ahead log for {commits} commits");
    assert!(
        syncs >= commits,
        "{syncs} fsyncs of the log for {commits} commits:\n{trace}"
    );
}
