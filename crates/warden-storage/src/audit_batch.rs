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
//! rows as one text a column and data-modifying WITH clauses ([`insert_rows_pg`]).
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

/// The batch as the table `b (s, id, t, ms, d, r, h, c, k, i)` (sequence, id, tenant,
/// time, decision, sealed record, hash, commitment, intent kind, intent closed) from
/// parameters `$1..=$10`, one a column ([`batch_columns`]), each split at commas.
///
/// Why not JSON: PostgreSQL reads `json_to_recordset($1::json)` a character at a time,
/// twice (to check the text, then to read it), about 14 µs of the server's CPU a record
/// of hex-sealed text, where a commit's records are one server process's serial work.
/// Splitting a column at commas costs about 1 µs a record.
///
/// `string_to_array('', ',')` is the empty array, so a batch of one row whose `i` is
/// empty reads it as NULL (`unnest` pads): hence the `COALESCE`.
pub(crate) const BATCH_PG: &str = "SELECT s, id, convert_from(decode(t, 'hex'), 'UTF8') AS t,
        ms, d, r, h, c, k, convert_from(decode(COALESCE(i, ''), 'hex'), 'UTF8') AS i
    FROM unnest(string_to_array($1, ',')::bigint[], string_to_array($2, ','),
        string_to_array($3, ','), string_to_array($4, ',')::bigint[],
        string_to_array($5, ',')::bigint[], string_to_array($6, ','), string_to_array($7, ','),
        string_to_array($8, ','), string_to_array($9, ',')::bigint[], string_to_array($10, ','))
        AS x(s, id, t, ms, d, r, h, c, k, i)";

/// `rows` as the ten parameters of [`BATCH_PG`], in order. The tenant and the intent
/// closed go as hex (a caller names the intent); the id (a UUID), the sealed record
/// (`prefix.key.hex`), the hash and the commitment (hex) are made by storage and hold no
/// comma, which is checked here.
pub(crate) fn batch_columns(rows: &[NewRow<'_>]) -> Result<[String; 10], sqlx::Error> {
    let mut cols: [String; 10] = Default::default();
    for (n, row) in rows.iter().enumerate() {
        let r = row.record;
        let k = if r.kind == AuditKind::Intent as i32 {
            1
        } else if r.kind == AuditKind::Outcome as i32 && !r.intent_id.is_empty() {
            2
        } else {
            0
        };
        for (name, text) in [
            ("id", r.id.as_str()),
            ("record", row.stored.as_str()),
            ("hash", r.hash.as_str()),
            ("commitment", row.commitment.as_str()),
        ] {
            if text.contains(',') {
                return Err(sqlx::Error::Encode(
                    format!("an audit row's {name} holds a comma").into(),
                ));
            }
        }
        if n > 0 {
            for c in &mut cols {
                c.push(',');
            }
        }
        let [s, id, t, ms, d, rec, h, c, kind, i] = &mut cols;
        let _ = write!(s, "{}", r.sequence);
        id.push_str(&r.id);
        t.push_str(&hex::encode(&r.tenant_id));
        let _ = write!(ms, "{}", row.time_ms);
        let _ = write!(d, "{}", r.decision);
        rec.push_str(&row.stored);
        h.push_str(&r.hash);
        c.push_str(&row.commitment);
        let _ = write!(kind, "{k}");
        i.push_str(&hex::encode(&r.intent_id));
    }
    Ok(cols)
}

/// PostgreSQL: the three statements as one, whatever the batch's size: the rows travel
/// as one text a column ([`BATCH_PG`]), and data-modifying WITH clauses insert and delete. They all see
/// the snapshot from before the statement, which is what inserting before deleting gave
/// (an outcome never closes an intent of its own batch, see the module's documentation).
async fn insert_rows_pg(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "WITH b AS ({BATCH_PG}),
            a AS (INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment)
                SELECT s, id, t, ms, d, r, h, c FROM b ORDER BY s),
            o AS (INSERT INTO audit_open_intents (intent_id, tenant_id, time_ms)
                SELECT id, t, ms FROM b WHERE k = 1)
        DELETE FROM audit_open_intents AS q USING b WHERE b.k = 2 AND q.intent_id = b.i AND q.tenant_id = b.t"
    );
    let mut q = sqlx::query(&sql);
    for column in batch_columns(rows)? {
        q = q.bind(column);
    }
    q.execute(&mut *conn).await?;
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
    fn placeholders_number_every_parameter_once() {
        assert_eq!(values(3, 2), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            pairs(2),
            "(intent_id = $1 AND tenant_id = $2) OR (intent_id = $3 AND tenant_id = $4)"
        );
    }
}
