//! A commit's audit rows in a few statements: one multi-row INSERT into `audit_log`, one
//! into `audit_open_intents` for the batch's intents and one DELETE for the intents its
//! outcomes close, instead of one or two statements per record.
//!
//! Why: every statement is a round trip (to PostgreSQL, or to the thread sqlx runs a
//! SQLite connection on), and with 32 records in a commit the per-record statements were
//! most of what a commit cost besides its fsync. Batches are cut into runs of a power of
//! two rows (32 rows: one statement; 33: two), so a connection's statement cache holds a
//! handful of shapes rather than one per batch size. On PostgreSQL, where each
//! statement is a network round trip, the three are one statement of one shape: the
//! rows as a JSON array and data-modifying WITH clauses ([`insert_rows_pg`]). The sealed
//! records, most of a row's bytes, travel beside the JSON as one text, a record a line
//! ([`records_text`]): PostgreSQL reads a JSON string a character at a time into a
//! buffer, and splits a text at a separator with `memchr`-like scans.
//!
//! Doing all inserts before all deletes gives what record-by-record order gave: an
//! outcome can only close an intent acknowledged before (its id is made by storage when
//! the intent is chained), so never one inserted by the same batch.

use std::fmt::Write as _;
use std::ops::Range;

use warden_proto::common::v1::{AuditKind, AuditRecord};

/// One record ready to insert: chained and hashed (`record`), its sealed text and its
/// commitment.
pub(crate) struct NewRow<'a> {
    pub(crate) record: &'a AuditRecord,
    pub(crate) time_ms: i64,
    pub(crate) stored: String,
    pub(crate) commitment: String,
}

/// Most rows in one statement (8 parameters a row stays far below both databases'
/// limits on parameters).
const MAX_ROWS: usize = 256;

/// `n` as consecutive runs of a power of two, largest first (at most `MAX_ROWS` each).
pub(crate) fn pow2_runs(n: usize) -> impl Iterator<Item = Range<usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let left = n - at;
        if left == 0 {
            return None;
        }
        let len = (1usize << left.ilog2()).min(MAX_ROWS);
        at += len;
        Some(at - len..at)
    })
}

/// `($1, .., $cols), ($cols+1, ..), ..`: `rows` groups of `cols` placeholders.
pub(crate) fn values(cols: usize, rows: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "${}", r * cols + c + 1);
        }
        out.push(')');
    }
    out
}

/// `(intent_id = $1 AND tenant_id = $2) OR ..`, `rows` times.
fn pairs(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            format!(
                "(intent_id = ${} AND tenant_id = ${})",
                2 * r + 1,
                2 * r + 2
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Inserts `rows` and keeps the open-intent index in step (an intent opens, the outcome
/// naming it closes), in the caller's transaction.
pub(crate) async fn insert_rows(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "PostgreSQL" {
        return insert_rows_pg(conn, rows).await;
    }
    for run in pow2_runs(rows.len()) {
        let chunk = &rows[run];
        let sql = format!(
            "INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment) VALUES {}",
            values(8, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            let r = row.record;
            q = q
                .bind(r.sequence as i64)
                .bind(r.id.as_str())
                .bind(r.tenant_id.as_str())
                .bind(row.time_ms)
                .bind(i64::from(r.decision))
                .bind(row.stored.as_str())
                .bind(r.hash.as_str())
                .bind(row.commitment.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    let opened: Vec<&NewRow<'_>> = rows
        .iter()
        .filter(|r| r.record.kind == AuditKind::Intent as i32)
        .collect();
    for run in pow2_runs(opened.len()) {
        let chunk = &opened[run];
        let sql = format!(
            "INSERT INTO audit_open_intents (intent_id, tenant_id, time_ms) VALUES {}",
            values(3, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            q = q
                .bind(row.record.id.as_str())
                .bind(row.record.tenant_id.as_str())
                .bind(row.time_ms);
        }
        q.execute(&mut *conn).await?;
    }
    let closed: Vec<&AuditRecord> = rows
        .iter()
        .map(|r| r.record)
        .filter(|r| r.kind == AuditKind::Outcome as i32 && !r.intent_id.is_empty())
        .collect();
    for run in pow2_runs(closed.len()) {
        let chunk = &closed[run];
        let sql = format!(
            "DELETE FROM audit_open_intents WHERE {}",
            pairs(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(r.intent_id.as_str()).bind(r.tenant_id.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One row of [`insert_rows_pg`]'s JSON.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    s: i64,
    id: &'a str,
    t: &'a str,
    ms: i64,
    d: i64,
    h: &'a str,
    c: &'a str,
    /// 1: an intent (opens), 2: an outcome naming `i` (closes), 0: neither.
    k: i64,
    i: &'a str,
}

/// `rows`, but for their sealed records ([`records_text`]), as the JSON array
/// [`insert_rows_pg`] (and `audit_pg.rs`) hand PostgreSQL's `json_to_recordset`.
pub(crate) fn rows_json(rows: &[NewRow<'_>]) -> Result<String, serde_json::Error> {
    let json: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|row| {
            let r = row.record;
            let k = if r.kind == AuditKind::Intent as i32 {
                1
            } else if r.kind == AuditKind::Outcome as i32 && !r.intent_id.is_empty() {
                2
            } else {
                0
            };
            JsonRow {
                s: r.sequence as i64,
                id: &r.id,
                t: &r.tenant_id,
                ms: row.time_ms,
                d: i64::from(r.decision),
                h: &r.hash,
                c: &row.commitment,
                k,
                i: &r.intent_id,
            }
        })
        .collect();
    serde_json::to_string(&json)
}

/// The rows' sealed records, one a line, in the rows' order: `ROWS FROM` pairs the
/// `n`-th line (`unnest(string_to_array(.., E'\n'))`) with the `n`-th JSON row. A sealed
/// record is `warden_keys`' `PREFIX.key.hex`, never empty nor a newline; one that held a
/// newline would shift every row after it (and PostgreSQL splits an empty text into no
/// lines at all), so either is refused, never sent.
pub(crate) fn records_text(rows: &[NewRow<'_>]) -> Result<String, UnfitRecord> {
    let mut out = String::with_capacity(rows.iter().map(|r| r.stored.len() + 1).sum());
    for (n, row) in rows.iter().enumerate() {
        if row.stored.is_empty() || row.stored.contains('\n') {
            return Err(UnfitRecord);
        }
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&row.stored);
    }
    Ok(out)
}

/// A sealed record that cannot travel in [`records_text`].
#[derive(Debug, thiserror::Error)]
#[error("a sealed audit record is empty or holds a newline")]
pub(crate) struct UnfitRecord;

/// The rows of a batch as PostgreSQL reads them, from parameter `$json` ([`rows_json`])
/// and `$records` ([`records_text`]): the columns of `audit_log` and what each row
/// opens or closes.
pub(crate) fn pg_batch_rows(json: usize, records: usize) -> String {
    format!(
        "ROWS FROM (
            json_to_recordset(${json}::json)
                AS (s BIGINT, id TEXT, t TEXT, ms BIGINT, d BIGINT, h TEXT, c TEXT, k BIGINT, i TEXT),
            unnest(string_to_array(${records}, E'\\n'))) AS x(s, id, t, ms, d, h, c, k, i, r)"
    )
}

/// [`insert_rows_pg`]'s statement: `$1` the rows' JSON, `$2` their sealed records.
static INSERT_ROWS_PG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH b AS (SELECT * FROM {}),
            a AS (INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment)
                SELECT s, id, t, ms, d, r, h, c FROM b ORDER BY s),
            o AS (INSERT INTO audit_open_intents (intent_id, tenant_id, time_ms)
                SELECT id, t, ms FROM b WHERE k = 1)
        DELETE FROM audit_open_intents AS q USING b WHERE b.k = 2 AND q.intent_id = b.i AND q.tenant_id = b.t",
        pg_batch_rows(1, 2)
    )
});

/// PostgreSQL: the three statements as one, whatever the batch's size: the rows travel
/// as one JSON array with their records beside it, and data-modifying WITH clauses insert and delete. They all see
/// the snapshot from before the statement, which is what inserting before deleting gave
/// (an outcome never closes an intent of its own batch, see the module's documentation).
async fn insert_rows_pg(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
) -> Result<(), sqlx::Error> {
    let json = rows_json(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let records = records_text(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(&INSERT_ROWS_PG)
        .bind(json)
        .bind(records)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_row_once_in_powers_of_two() {
        for n in 0..=600 {
            let runs: Vec<Range<usize>> = pow2_runs(n).collect();
            let mut at = 0;
            for r in &runs {
                assert_eq!(r.start, at, "n = {n}");
                assert!(r.len().is_power_of_two() && r.len() <= MAX_ROWS, "n = {n}");
                at = r.end;
            }
            assert_eq!(at, n);
            if n <= MAX_ROWS {
                assert_eq!(runs.len(), n.count_ones() as usize, "n = {n}");
            }
        }
    }

    #[test]
    fn records_travel_a_line_each_in_order_and_unfit_ones_are_refused() {
        let record = AuditRecord::default();
        let row = |stored: &str| NewRow {
            record: &record,
            time_ms: 0,
            stored: stored.to_owned(),
            commitment: String::new(),
        };
        let rows = [row("w1.k1.00ff"), row("w1.k1.01"), row("w1.k2.abcd")];
        let text = records_text(&rows).expect("fit records");
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines, ["w1.k1.00ff", "w1.k1.01", "w1.k2.abcd"]);
        assert_eq!(
            records_text(&rows[..1]).expect("one").as_str(),
            "w1.k1.00ff"
        );
        assert!(records_text(&[row("w1.k1.00"), row("w1.k1\n.00")]).is_err());
        assert!(records_text(&[row("w1.k1.00"), row("")]).is_err());
        assert!(records_text(&[row("")]).is_err());
    }

    #[test]
    fn placeholders_number_every_parameter_once() {
        assert_eq!(values(3, 2), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            pairs(2),
            "(intent_id = $1 AND tenant_id = $2) OR (intent_id = $3 AND tenant_id = $4)"
        );
    }
}
