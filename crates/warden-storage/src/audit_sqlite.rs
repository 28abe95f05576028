//! SQLite only: the audit committer's whole transaction in one hand-off.
//!
//! Why: sqlx runs every SQLite statement on its connection's own worker thread, so each
//! statement of a commit was a hand-off and a wake-up there and back (eight a commit);
//! on two cores shared with the appenders those wake-ups, not SQL, hashing or crypto,
//! were what a commit cost. Here one thread owns a rusqlite connection on the same
//! database file and runs the committer's transaction synchronously: `BEGIN IMMEDIATE`,
//! the rows, the read-back, the tiles, the checkpoint signed from what was read back, and
//! `COMMIT`, answering the committer once. rusqlite is the well-kept synchronous SQLite
//! binding, and the version here links the same `libsqlite3-sys` as sqlx, so the process
//! holds one copy of SQLite and its file locks agree across both connections.
//!
//! The connection has the pool's durability settings (`db.rs`: WAL, `synchronous=FULL`,
//! the busy timeout, foreign keys) and the writer's WAL bound (`wal_checkpoint.rs`). What
//! the tree and the checkpoint are is decided by `merkle_log`'s backend-neutral [`Plan`];
//! this file only reads and writes. Failures are told apart as in `durable.rs`: before
//! `COMMIT` the transaction is rolled back and the writer carries on, unless SQLite
//! reported an I/O error or corruption; a failed `COMMIT` poisons it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;
use warden_merkle::Hash;
use warden_merkle::tiles::SubtreeMemo;
use warden_proto::common::v1::{AuditKind, AuditRecord};

use crate::audit_entry::LeafEntry;
use crate::durable::CommitError;
use crate::log_key::LogSigner;
use crate::merkle_log::{Plan, ReadBack, TileKey, hashes_of};
use crate::{Db, DbError};

/// One chained, sealed record to insert, as plain data.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) sequence: i64,
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) time_ms: i64,
    pub(crate) decision: i64,
    pub(crate) stored: String,
    pub(crate) hash: String,
    pub(crate) commitment: String,
    /// An intent: it opens an entry of `audit_open_intents`.
    pub(crate) opens: bool,
    /// An outcome: the intent it closes.
    pub(crate) closes: Option<String>,
}

impl Row {
    /// `record` as chained by the committer, with its sealed text and commitment.
    pub(crate) fn new(
        record: &AuditRecord,
        time_ms: i64,
        stored: String,
        commitment: String,
    ) -> Row {
        let outcome = record.kind == AuditKind::Outcome as i32 && !record.intent_id.is_empty();
        Row {
            sequence: record.sequence as i64,
            id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            time_ms,
            decision: i64::from(record.decision),
            stored,
            hash: record.hash.clone(),
            commitment,
            opens: record.kind == AuditKind::Intent as i32,
            closes: outcome.then(|| record.intent_id.clone()),
        }
    }
}

/// One commit for the writer thread.
struct Job {
    rows: Vec<Row>,
    /// The tree's size before these rows.
    size: u64,
    signer: Option<Arc<dyn LogSigner>>,
    now_ms: i64,
    done: oneshot::Sender<Answer>,
}

/// The committer's handle on its writer thread; the thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Starts the writer thread for the database of `db` (SQLite). The connection is
    /// opened by the first commit (and again after a failure to open).
    pub(crate) fn start(db: &Db) -> Result<SqliteWriter, DbError> {
        let path = path_of(db)?;
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("audit-sqlite".into())
            .spawn(move || run(&path, &rx))
            .map_err(|e| DbError::Corrupt(format!("the audit writer thread: {e}")))?;
        Ok(SqliteWriter { jobs })
    }

    /// Hands the writer `rows` (records `size + 1 ..`) to insert, extend the tree with
    /// and sign its head over, in one transaction; the answer is the checkpoint once it
    /// is committed. The caller goes on meanwhile (`committer.rs`).
    pub(crate) fn submit(
        &self,
        rows: Vec<Row>,
        size: u64,
        signer: Option<Arc<dyn LogSigner>>,
        now_ms: i64,
    ) -> oneshot::Receiver<Answer> {
        let (done, answer) = oneshot::channel();
        // A thread that stopped drops the job, and with it `done`: the answer says so.
        let _ = self.jobs.send(Job {
            rows,
            size,
            signer,
            now_ms,
            done,
        });
        answer
    }
}

/// What a commit on the writer thread comes to: its checkpoint, once committed.
pub(crate) type Answer = Result<Option<String>, CommitError>;

/// The file of a SQLite database.
pub(crate) fn path_of(db: &Db) -> Result<PathBuf, DbError> {
    use std::str::FromStr as _;
    Ok(sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)?
        .get_filename()
        .to_path_buf())
}

/// The answer when the thread went away (it panicked): whether it committed is unknown.
pub(crate) fn gone() -> CommitError {
    CommitError::Durability("the audit writer thread stopped".into())
}

fn run(path: &Path, jobs: &mpsc::Receiver<Job>) {
    let mut conn: Option<Connection> = None;
    // Subtree hashes of the tiles of earlier commits, checked against each commit's
    // read-back before use (`merkle_log::sign_over`).
    let mut memo = SubtreeMemo::default();
    while let Ok(job) = jobs.recv() {
        if conn.is_none() {
            match open(path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let _ = job.done.send(Err(failed(e)));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        let result = commit(c, &job, &mut memo);
        let stop = matches!(result, Err(CommitError::Durability(_)));
        let _ = job.done.send(result);
        if stop {
            // Poisoned: the committer sends no more; nothing more is written here.
            return;
        }
    }
}

/// A connection with the pool's settings (`db.rs`) and the writer's WAL bound: the
/// writer's, and the WAL checkpoint thread's (`wal_checkpoint.rs`).
pub(crate) fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_millis(5000))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; {};",
        crate::wal_checkpoint::writer_pragma()
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// A failure before COMMIT: rolled back, unless the disk failed (`durable.rs`).
fn failed(e: rusqlite::Error) -> CommitError {
    if is_io(&e) {
        CommitError::Durability(format!("the database reported an I/O error: {e}"))
    } else {
        CommitError::RolledBack(DbError::Sqlite(e))
    }
}

/// SQLite's `SQLITE_IOERR` and `SQLITE_CORRUPT` families (`durable.rs`).
pub(crate) fn is_io(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if crate::durable::io_code(&f.extended_code.to_string()))
}

fn exec(conn: &Connection, sql: &str) -> Result<(), CommitError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(failed)
}

fn commit(
    conn: &Connection,
    job: &Job,
    memo: &mut SubtreeMemo,
) -> Result<Option<String>, CommitError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let note = match in_transaction(conn, job, memo) {
        Ok(note) => note,
        Err(e) => {
            rollback(conn)?;
            return Err(e);
        }
    };
    if let Err(e) = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        // The outcome is unknown: poisoned, whatever the rollback does (`durable.rs`).
        let _ = rollback(conn);
        return Err(CommitError::Durability(format!("the commit failed: {e}")));
    }
    Ok(note)
}

/// Ends a transaction that failed before COMMIT (SQLite may have ended it already).
fn rollback(conn: &Connection) -> Result<(), CommitError> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("ROLLBACK").map_err(|e| {
        CommitError::Durability(format!(
            "a failed audit transaction could not be rolled back: {e}"
        ))
    })
}

fn in_transaction(
    conn: &Connection,
    job: &Job,
    memo: &mut SubtreeMemo,
) -> Result<Option<String>, CommitError> {
    insert_rows(conn, &job.rows).map_err(failed)?;
    let new_size = job.size + job.rows.len() as u64;
    let signer = job.signer.as_deref();
    let mut plan = Plan::new(job.size, new_size, signer.is_some());
    let mut back = read_back(conn, &plan, job.size + 1, new_size)?;
    let more = plan.more_keys(&back);
    for key in more {
        if let Some(hashes) = read_tile(conn, key)? {
            back.tiles.insert(key, hashes);
        }
    }
    let extended = plan.finish(back, signer, memo)?;
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO audit_tiles (level, idx, hashes) VALUES (?1, ?2, ?3)
             ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
        )
        .map_err(failed)?;
    for ((level, index), hashes) in &extended.tiles {
        upsert
            .execute(params![i64::from(*level), *index as i64, hashes.concat()])
            .map_err(failed)?;
    }
    if let Some(note) = &extended.signed {
        conn.prepare_cached(
            "INSERT INTO audit_checkpoints (tree_size, note, time_ms) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![new_size as i64, note, job.now_ms]))
        .map_err(failed)?;
    }
    Ok(extended.note)
}

/// The rows, then the intents they open, then those their outcomes close (an outcome
/// never closes an intent of its own batch: `audit_batch.rs`).
fn insert_rows(conn: &Connection, rows: &[Row]) -> Result<(), rusqlite::Error> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in rows {
        insert.execute(params![
            r.sequence,
            r.id,
            r.tenant_id,
            r.time_ms,
            r.decision,
            r.stored,
            r.hash,
            r.commitment
        ])?;
    }
    let mut open = conn.prepare_cached(
        "INSERT INTO audit_open_intents (intent_id, tenant_id, time_ms) VALUES (?1, ?2, ?3)",
    )?;
    for r in rows.iter().filter(|r| r.opens) {
        open.execute(params![r.id, r.tenant_id, r.time_ms])?;
    }
    let mut close = conn
        .prepare_cached("DELETE FROM audit_open_intents WHERE intent_id = ?1 AND tenant_id = ?2")?;
    for r in rows {
        if let Some(intent) = &r.closes {
            close.execute(params![intent, r.tenant_id])?;
        }
    }
    Ok(())
}

/// What was written, as the database holds it: the rows `from..=to`, the latest
/// checkpoint (when signing) and the stored tiles the plan names.
fn read_back(conn: &Connection, plan: &Plan, from: u64, to: u64) -> Result<ReadBack, CommitError> {
    let mut back = ReadBack::with_capacity((to + 1).saturating_sub(from) as usize);
    let mut rows = conn
        .prepare_cached(
            "SELECT sequence, id, tenant_id, time_ms, decision, commitment, record FROM audit_log
             WHERE sequence >= ?1 AND sequence <= ?2 ORDER BY sequence",
        )
        .map_err(failed)?;
    let mut found = rows
        .query(params![from as i64, to as i64])
        .map_err(failed)?;
    while let Some(r) = found.next().map_err(failed)? {
        back.entries.push(entry_of(r).map_err(failed)?);
    }
    if plan.signed() {
        back.checkpoint = conn
            .prepare_cached(
                "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                    .optional()
            })
            .map_err(failed)?;
    }
    for key in plan.keys() {
        if let Some(hashes) = read_tile(conn, *key)? {
            back.tiles.insert(*key, hashes);
        }
    }
    Ok(back)
}

fn entry_of(r: &rusqlite::Row<'_>) -> Result<LeafEntry, rusqlite::Error> {
    Ok(LeafEntry::of_row(
        r.get::<_, i64>(0)? as u64,
        r.get_ref(1)?.as_str()?,
        r.get_ref(2)?.as_str()?,
        r.get(3)?,
        r.get(4)?,
        r.get_ref(5)?.as_str()?,
        r.get_ref(6)?.as_str()?,
    ))
}

/// The stored tile `(level, index)`, if there is one.
fn read_tile(conn: &Connection, (level, index): TileKey) -> Result<Option<Vec<Hash>>, CommitError> {
    let mut stmt = conn
        .prepare_cached("SELECT hashes FROM audit_tiles WHERE level = ?1 AND idx = ?2")
        .map_err(failed)?;
    let hashes = stmt
        .query_row(params![i64::from(level), index as i64], |r| {
            Ok(hashes_of(r.get_ref(0)?.as_blob()?))
        })
        .optional()
        .map_err(failed)?;
    Ok(hashes.transpose()?)
}
