//! PostgreSQL only: the audit committer's transaction in three round trips.
//!
//! Why: every statement was a network round trip (six a commit: `BEGIN` with the append
//! lock, the head, the rows, the read-back, the tiles with the checkpoint, `COMMIT`), and
//! the committer waits for each, while PostgreSQL shares the two cores. Now:
//!
//! 1. `BEGIN` and the append lock (the simple query protocol: two statements, one trip);
//! 2. one prepared statement: the rows, the intents they open and close, inserted only if
//!    the stored head is the one they were chained onto, and in the same answer the rows
//!    as the database inserted them (`RETURNING`), the stored head, the latest checkpoint
//!    and the stored tiles the tree's [`Plan`] reads;
//! 3. the changed tiles, the checkpoint signed from what was read back, and `COMMIT`
//!    (the simple protocol again: these statements cannot be prepared with `COMMIT`).
//!
//! The second stays prepared on purpose: as unprepared text (one round trip fewer) its
//! planning and the lexing of the rows as a literal cost more than a round trip here.
//! The simple protocol takes no parameters, so in the third every value is written into
//! the SQL by this file, never text from a record: numbers formatted by Rust, tiles as
//! hex digits, the checkpoint's note as a hex literal the server decodes
//! (`convert_from(decode('..', 'hex'), 'UTF8')`).
//!
//! Other storage replicas may append to the same chain. The rows are inserted only if the
//! database's head is the one they were chained onto, read after the lock was taken; if
//! another replica moved it, nothing was inserted, the answer says where the head is, and
//! the batch is chained again onto it and inserted in the same transaction (the lock is
//! still held, so the second attempt cannot miss). The chain never forks.

use std::fmt::Write as _;

use sqlx::Row;
use warden_merkle::tiles::SubtreeMemo;

use crate::audit::{AUDIT_APPEND_LOCK, Head, LogCtx, Pending};
use crate::audit_batch::NewRow;
use crate::durable::CommitError;
use crate::keyring::Keyring;
use crate::merkle_log::{Extended, Plan, ReadBack};
use crate::{DbError, util::now_ms};

/// The kind of the stored head's row in the read-back (beside `merkle_log`'s 0..=2).
const HEAD: i64 = 3;

fn corrupt(what: impl Into<String>) -> CommitError {
    CommitError::RolledBack(DbError::Corrupt(what.into()))
}

/// `text` as a SQL literal that the server decodes: hex digits only.
fn text_literal(text: &str) -> String {
    format!(
        "convert_from(decode('{}', 'hex'), 'UTF8')",
        hex::encode(text.as_bytes())
    )
}

/// Chains and inserts `batch` onto `head` (or wherever another replica moved the head),
/// extends the tree, signs the checkpoint and commits, on `conn`. Returns the new head
/// and the checkpoint.
pub(crate) async fn commit(
    conn: &mut sqlx::AnyConnection,
    keys: &Keyring,
    log: &LogCtx,
    head: &Head,
    batch: &mut [Pending],
    memo: &mut SubtreeMemo,
) -> Result<(Head, Option<String>), CommitError> {
    let signer = log.signer();
    let now = now_ms();
    let mut start = head.clone();
    let mut first = true;
    let (next, plan, mut back) = loop {
        let mut next = start.clone();
        let mut sealed = Vec::with_capacity(batch.len());
        for p in batch.iter_mut() {
            sealed.push(crate::audit::chain(keys, &mut next, &mut p.record, now).await?);
        }
        let rows: Vec<NewRow<'_>> = batch
            .iter()
            .zip(sealed)
            .map(|(p, (stored, commitment))| NewRow {
                record: &p.record,
                time_ms: now,
                stored,
                commitment,
            })
            .collect();
        let size = start.next_sequence - 1;
        let new_size = next.next_sequence - 1;
        let plan = Plan::new(size, new_size, signer.is_some());
        if first {
            let lock = format!("BEGIN; SELECT pg_advisory_xact_lock({AUDIT_APPEND_LOCK})");
            execute_raw(conn, &lock).await?;
        }
        let found = insert_and_read_back(conn, &rows, &start, &plan).await?;
        let mut back = ReadBack::with_capacity(rows.len());
        let mut db_head = Head::genesis();
        for r in &found {
            if r.try_get::<i64, _>(0)? == HEAD {
                db_head = Head {
                    next_sequence: r.try_get::<i64, _>(1)? as u64 + 1,
                    last_hash: r.try_get(4)?,
                };
            } else {
                crate::merkle_log::read_back_row(r, size + 1, &mut back)?;
            }
        }
        match back.entries.len() {
            n if n == batch.len() => break (next, plan, back),
            // Another replica moved the head: chain onto it, under the lock now held.
            0 if first => {
                tracing::info!(
                    expected = size,
                    found = db_head.next_sequence - 1,
                    "another storage replica appended to the audit log; chaining onto its head"
                );
                start = db_head;
                first = false;
            }
            other => {
                return Err(corrupt(format!(
                    "audit append inserted {other} of {} rows",
                    batch.len()
                )));
            }
        }
    };
    let mut plan = plan;
    let more = plan.more_keys(&back);
    if !more.is_empty() {
        back.tiles
            .extend(crate::merkle_log::read_tiles(conn, &more).await?);
    }
    let extended = plan.finish(back, signer, memo)?;
    let sql = store_sql(&extended, next.next_sequence - 1, now);
    if let Err(e) = execute_raw(conn, &sql).await {
        return Err(failed_commit(conn, e).await);
    }
    Ok((next, extended.note))
}

/// `sql` (several statements, no parameters) in one round trip: the simple query
/// protocol. A named lifetime, not a generic executor: the committer's future must be
/// `Send` for every lifetime, which sqlx's generic `raw_sql` cannot prove.
fn execute_raw<'c>(
    conn: &'c mut sqlx::AnyConnection,
    sql: &'c str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    use sqlx::Executor as _;
    Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(|_| ()) })
}

/// After the last round trip failed: if the transaction is still open (in error), the
/// failure came before `COMMIT` and nothing was written; if not, `COMMIT` itself failed
/// and the outcome is unknown (`durable.rs`). The connection is dropped either way.
async fn failed_commit(conn: &mut sqlx::AnyConnection, e: sqlx::Error) -> CommitError {
    if crate::durable::is_io(&e) {
        return CommitError::from(e);
    }
    let aborted = match execute_raw(conn, "SELECT 1").await {
        // 25P02: "current transaction is aborted": COMMIT never ran.
        Err(sqlx::Error::Database(d)) => d.code().as_deref() == Some("25P02"),
        _ => false,
    };
    if aborted {
        CommitError::RolledBack(DbError::Sql(e))
    } else {
        CommitError::Durability(format!("the commit failed: {e}"))
    }
}

/// [`insert_and_read_back`]'s statement: `$1` the rows' JSON and `$7` their sealed
/// records (`audit_batch`), `$2`..`$4` the head they were chained onto, `$5` whether a
/// checkpoint is signed, `$6` the tile keys as JSON.
static INSERT_AND_READ_BACK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH b AS (SELECT * FROM {}),
            ok AS (SELECT 1 AS y WHERE COALESCE((SELECT max(sequence) FROM audit_log), 0) = $2
                AND COALESCE((SELECT hash FROM audit_log WHERE sequence = $2), $3) = $4),
            a AS (INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment)
                SELECT s, id, t, ms, d, r, h, c FROM b, ok ORDER BY s
                RETURNING sequence, time_ms, decision, id, tenant_id, commitment, record),
            o AS (INSERT INTO audit_open_intents (intent_id, tenant_id, time_ms)
                SELECT id, t, ms FROM b, ok WHERE k = 1),
            q AS (DELETE FROM audit_open_intents AS q USING b, ok
                WHERE b.k = 2 AND q.intent_id = b.i AND q.tenant_id = b.t),
            tk AS (SELECT * FROM json_to_recordset($6::json) AS y(l BIGINT, i BIGINT))
        SELECT CAST(0 AS BIGINT), sequence, time_ms, decision, id, tenant_id, commitment, record, CAST(NULL AS BYTEA) FROM a
        UNION ALL SELECT CAST(3 AS BIGINT), sequence, CAST(0 AS BIGINT), CAST(0 AS BIGINT), hash, '', '', '', CAST(NULL AS BYTEA)
            FROM (SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1) h
        UNION ALL SELECT CAST(1 AS BIGINT), tree_size, CAST(0 AS BIGINT), CAST(0 AS BIGINT), note, '', '', '', CAST(NULL AS BYTEA)
            FROM (SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1) c
            WHERE $5 = 1
        UNION ALL SELECT CAST(2 AS BIGINT), level, idx, CAST(0 AS BIGINT), '', '', '', '', hashes
            FROM audit_tiles JOIN tk ON level = tk.l AND idx = tk.i
        ORDER BY 1, 2",
        crate::audit_batch::pg_batch_rows(1, 7)
    )
});

/// The second round trip: inserts `rows` (and the intents they open and close) if the
/// stored head is `start`, and answers with `merkle_log`'s read-back rows (the inserted
/// rows as the database inserted them, the latest checkpoint, the stored tiles the plan
/// names) and the stored head before the insert (kind 3). One statement of one shape:
/// the rows travel as JSON beside their sealed records, a record a line (`audit_batch`),
/// and the tile keys as JSON.
async fn insert_and_read_back(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
    start: &Head,
    plan: &Plan,
) -> Result<Vec<sqlx::any::AnyRow>, CommitError> {
    fn encode(e: impl std::error::Error + Send + Sync + 'static) -> CommitError {
        CommitError::RolledBack(DbError::Sql(sqlx::Error::Encode(Box::new(e))))
    }
    let json = crate::audit_batch::rows_json(rows).map_err(encode)?;
    let records = crate::audit_batch::records_text(rows).map_err(encode)?;
    let keys: Vec<serde_json::Value> = plan
        .keys()
        .iter()
        .map(|(level, index)| serde_json::json!({ "l": level, "i": index }))
        .collect();
    let keys = serde_json::to_string(&keys).map_err(encode)?;
    let found = sqlx::query(&INSERT_AND_READ_BACK)
        .bind(json)
        .bind((start.next_sequence - 1) as i64)
        .bind(crate::audit::GENESIS)
        .bind(start.last_hash.as_str())
        .bind(i64::from(plan.signed()))
        .bind(keys)
        .bind(records)
        .fetch_all(&mut *conn)
        .await?;
    Ok(found)
}

/// The changed tiles, the new checkpoint (if one was signed) and `COMMIT`. A tile that
/// extends the one read back in this transaction (under the append lock, so still the
/// one stored) gets only its new hashes appended; a new tile, or one rewritten
/// otherwise, is written whole. Most commits only append to the rightmost tiles, so the
/// statement carries a few hashes, not the up to 8 KB of a whole level-0 tile, and the
/// server lexes and decodes that much less.
fn store_sql(extended: &Extended, size: u64, now: i64) -> String {
    // A bytea literal in hex; hex::encode writes hex digits only.
    let literal = |hashes: &[warden_merkle::Hash]| format!("'\\x{}'", hex::encode(hashes.concat()));
    let (mut appended, mut whole) = (Vec::new(), Vec::new());
    for (key @ (level, index), hashes) in &extended.tiles {
        match extended.kept.get(key).copied().unwrap_or(0) {
            0 => whole.push(format!("({level}, {index}, {})", literal(hashes))),
            kept => appended.push(format!(
                "({level}, {index}, {}::bytea)",
                literal(&hashes[kept..])
            )),
        }
    }
    let mut writes = Vec::new();
    if !appended.is_empty() {
        writes.push(format!(
            "UPDATE audit_tiles AS u SET hashes = u.hashes || v.h
             FROM (VALUES {}) AS v(l, i, h) WHERE u.level = v.l AND u.idx = v.i",
            appended.join(", ")
        ));
    }
    if !whole.is_empty() {
        writes.push(format!(
            "INSERT INTO audit_tiles (level, idx, hashes) VALUES {}
             ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
            whole.join(", ")
        ));
    }
    let mut sql = String::new();
    match &extended.signed {
        Some(note) => {
            for (n, write) in writes.iter().enumerate() {
                let _ = write!(
                    sql,
                    "{} t{n} AS ({write}) ",
                    if n == 0 { "WITH" } else { "," }
                );
            }
            let _ = write!(
                sql,
                "INSERT INTO audit_checkpoints (tree_size, note, time_ms) VALUES ({size}, {}, {now}); ",
                text_literal(note)
            );
        }
        None => {
            for write in &writes {
                let _ = write!(sql, "{write}; ");
            }
        }
    }
    sql.push_str("COMMIT");
    sql
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};

    use super::*;
    use crate::test_pg::fresh_schema_url as fresh_schema;
    use crate::test_support::{
        LOG_ORIGIN as ORIGIN, intent as intent_of, log_signer as signer, open_signed as replica,
    };
    use crate::{MemoryKeyProvider, Storage};

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            kind: AuditKind::Admin as i32,
            tenant_id: "acme".into(),
            caller: format!("caller-{i}"),
            decision: AuditDecision::Allowed as i32,
            ..Default::default()
        }
    }

    /// Two storage replicas on one PostgreSQL chain: each commit of one finds the head
    /// the other moved, chains onto it under the append lock, and the log stays one
    /// chain with a signed checkpoint that extends the one before, in every commit.
    #[tokio::test]
    async fn two_replicas_append_to_one_chain_without_forking_it() {
        let Some(url) = fresh_schema().await else {
            return;
        };
        let keys = Arc::new(MemoryKeyProvider::new());
        let a = replica(&url, &keys).await;
        let b = replica(&url, &keys).await;
        let mut sequences = Vec::new();
        // Alternating: every append after the first finds the head moved by the other.
        for i in 0..20 {
            let s = if i % 2 == 0 { &a } else { &b };
            sequences.push(s.append_audit(record(i)).await.unwrap().sequence);
        }
        assert_eq!(sequences, (1..=20).collect::<Vec<u64>>());
        // And at once, from both.
        let mut tasks = Vec::new();
        for i in 20..100 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { s.append_audit(record(i)).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let v = a.verify_audit(0, 0).await.unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records_checked, 100);
        let report = crate::verify_log(a.db(), &signer().verifier(), ORIGIN, &[], &|_, _| {})
            .await
            .unwrap();
        assert_eq!(report.first_bad, None, "{report:?}");
        assert_eq!(report.records, 100);
        // A third replica reads back the tree both wrote and takes appends.
        let c = replica(&url, &keys).await;
        assert_eq!(c.append_audit(record(100)).await.unwrap().sequence, 101);
    }

    /// Tiles grow by their new hashes alone (`store_sql`), one record a commit and many,
    /// across the boundaries of level-0 tiles: each stored tile holds exactly its hashes,
    /// the level-1 tile the roots of the full level-0 tiles, and the log verifies.
    #[tokio::test]
    async fn tiles_grow_by_their_new_hashes_across_tile_boundaries() {
        let Some(url) = fresh_schema().await else {
            return;
        };
        let keys = Arc::new(MemoryKeyProvider::new());
        let s = replica(&url, &keys).await;
        for i in 0..300 {
            s.append_audit(record(i)).await.unwrap();
        }
        let many = (300..700).map(|i| s.append_audit(record(i)));
        for done in futures::future::join_all(many).await {
            done.unwrap();
        }
        let tiles: Vec<(i64, i64, Vec<u8>)> =
            sqlx::query_as("SELECT level, idx, hashes FROM audit_tiles ORDER BY level, idx")
                .fetch_all(&s.db().pool)
                .await
                .unwrap();
        let hashes = |t: &[u8]| crate::merkle_log::hashes_of(t).unwrap();
        let widths: Vec<(i64, i64, usize)> = tiles
            .iter()
            .map(|(l, i, h)| (*l, *i, hashes(h).len()))
            .collect();
        assert_eq!(widths, [(0, 0, 256), (0, 1, 256), (0, 2, 188), (1, 0, 2)]);
        let roots: Vec<_> = tiles[..2]
            .iter()
            .map(|(_, _, h)| warden_merkle::root(&hashes(h)))
            .collect();
        assert_eq!(hashes(&tiles[3].2), roots);
        let report = crate::verify_log(s.db(), &signer().verifier(), ORIGIN, &[], &|_, _| {})
            .await
            .unwrap();
        assert_eq!((report.records, report.first_bad), (700, None));
        let v = s.verify_audit(0, 0).await.unwrap();
        assert!(v.ok && v.records_checked == 700, "{v:?}");
    }

    /// The batch's rows arrive as they were sent, in batches of one and of many: tenants
    /// of every allowed character, intents named with commas, quotes and non-ASCII text,
    /// records naming no intent; and the intents their outcomes name are closed.
    #[tokio::test]
    async fn rows_arrive_as_sent_whatever_their_text_and_batch() {
        let Some(url) = fresh_schema().await else {
            return;
        };
        let keys = Arc::new(MemoryKeyProvider::new());
        let s = replica(&url, &keys).await;
        let tenant = "a.b-c_D9";
        let intent = |tenant: &str| intent_of(tenant, "gateway");
        let outcome = |tenant: &str, intent_id: &str| AuditRecord {
            kind: AuditKind::Outcome as i32,
            intent_id: intent_id.into(),
            ..intent_of(tenant, "gateway")
        };
        // One-row batches: an admin record (no intent), an intent, its outcome.
        s.append_audit(record(0)).await.unwrap();
        let first = s.append_audit(intent(tenant)).await.unwrap().id;
        s.append_audit(outcome(tenant, &first)).await.unwrap();
        // Many-row batches: intents of two tenants, outcomes closing every other one,
        // and outcomes naming intents that are not there.
        let mut opened = Vec::new();
        for i in 0..40 {
            let t = if i % 2 == 0 { tenant } else { "acme" };
            opened.push((t, s.append_audit(intent(t)).await.unwrap().id));
        }
        let mut tasks = Vec::new();
        for (n, (t, id)) in opened.iter().enumerate() {
            let (closer, t) = (s.clone(), t.to_string());
            let named = match n % 4 {
                0 | 2 => id.clone(),
                1 => format!("{id},x,'\"é—"),
                _ => ",".to_string(),
            };
            tasks.push(tokio::spawn(async move {
                closer.append_audit(outcome(&t, &named)).await
            }));
            let admin = s.clone();
            tasks.push(tokio::spawn(
                async move { admin.append_audit(record(n)).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let mut still_open: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, intent_id FROM audit_open_intents")
                .fetch_all(&s.db().pool)
                .await
                .unwrap();
        still_open.sort();
        let mut want: Vec<(String, String)> = opened
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 4 == 1 || n % 4 == 3)
            .map(|(_, (t, id))| (t.to_string(), id.clone()))
            .collect();
        want.sort();
        assert_eq!(still_open, want);
        let tenants: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tenant_id FROM audit_log ORDER BY tenant_id")
                .fetch_all(&s.db().pool)
                .await
                .unwrap();
        assert_eq!(tenants, [tenant, "acme"]);
        let report = crate::verify_log(s.db(), &signer().verifier(), ORIGIN, &[], &|_, _| {})
            .await
            .unwrap();
        assert_eq!((report.records, report.first_bad), (3 + 40 + 80, None));
    }

    #[test]
    fn text_is_written_into_the_sql_as_hex_digits_only() {
        let lit = text_literal("x'); DROP TABLE audit_log; --\n— é");
        let inner = lit
            .strip_prefix("convert_from(decode('")
            .and_then(|l| l.strip_suffix("', 'hex'), 'UTF8')"))
            .unwrap();
        assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()), "{lit}");
    }

    async fn exec(s: &Storage, sql: &str) {
        sqlx::raw_sql(sql).execute(&s.db().pool).await.unwrap();
    }

    /// A statement of the last round trip refused before `COMMIT` ran: nothing was
    /// written and the writer carries on. A `COMMIT` that fails (a deferred foreign key
    /// a trigger violates): the outcome is unknown and the writer refuses until restart.
    #[tokio::test]
    async fn a_refusal_before_commit_rolls_back_and_a_failed_commit_poisons() {
        let Some(url) = fresh_schema().await else {
            return;
        };
        let keys = Arc::new(MemoryKeyProvider::new());
        let s = replica(&url, &keys).await;
        s.append_audit(record(0)).await.unwrap();
        exec(
            &s,
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE INSERT ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await;
        let err = s.append_audit(record(1)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains("nothing was recorded"), "{err:?}");
        assert!(*s.audit_writable().borrow());
        exec(&s, "DROP TRIGGER refuse ON audit_checkpoints").await;
        assert_eq!(s.append_audit(record(2)).await.unwrap().sequence, 2);

        exec(
            &s,
            "CREATE TABLE trap_target (id TEXT PRIMARY KEY);
             CREATE TABLE trap (id TEXT REFERENCES trap_target (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE FUNCTION trap() RETURNS trigger AS $$ BEGIN INSERT INTO trap VALUES ('missing'); RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER trap AFTER INSERT ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION trap();",
        )
        .await;
        let err = s.append_audit(record(3)).await.unwrap_err();
        assert!(
            err.message()
                .contains("whether this record was written is unknown"),
            "{err:?}"
        );
        assert!(!*s.audit_writable().borrow());
        exec(&s, "DROP TRIGGER trap ON audit_checkpoints").await;
        let err = s.append_audit(record(4)).await.unwrap_err();
        assert!(
            err.message()
                .contains("accepts no records since a commit failed"),
            "{err:?}"
        );
        drop(s);
        let s = replica(&url, &keys).await;
        assert_eq!(s.append_audit(record(5)).await.unwrap().sequence, 3);
        let v = s.verify_audit(0, 0).await.unwrap();
        assert!(v.ok && v.records_checked == 3, "{v:?}");
    }
}
