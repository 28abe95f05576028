//! Verifying a live audit log from its database alone, with no server and no data key:
//! every record's leaf against the tree, every signed checkpoint (signature and root,
//! which makes successive checkpoints consistent), and any checkpoint the caller kept.
//! Used by `warden audit verify --database`.

use std::collections::BTreeMap;

use sqlx::Row;
use warden_merkle::checkpoint::Checkpoint;
use warden_merkle::tiles::TILE_WIDTH;
use warden_merkle::{Frontier, Hash, VerifierKey};

use crate::{Db, DbError};

/// What verification found; `first_bad` names the first bad record and what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    pub records: u64,
    pub checkpoints: u64,
    pub first_bad: Option<(u64, String)>,
}

/// Rows read per query.
const PAGE: i64 = 10_000;

/// Checks the log in `db` against the log key `verifier` and `origin`, and against
/// `kept` (signed checkpoints kept elsewhere, e.g. published ones). `progress(done,
/// total)` is called as records are checked.
pub async fn verify_log(
    db: &Db,
    verifier: &VerifierKey,
    origin: &str,
    kept: &[String],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<LogReport, DbError> {
    let mut report = LogReport::default();
    let bad = |mut r: LogReport, seq: u64, what: String| {
        r.first_bad = Some((seq, what));
        Ok(r)
    };
    // Every checkpoint to check, by size: the stored ones and those kept elsewhere.
    let mut checkpoints: BTreeMap<u64, Vec<(Hash, &'static str)>> = BTreeMap::new();
    let rows = sqlx::query("SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size")
        .fetch_all(&db.pool)
        .await?;
    let mut last_ok = 0u64;
    for r in &rows {
        let size = r.try_get::<i64, _>(0)? as u64;
        let note: String = r.try_get(1)?;
        match Checkpoint::open(note.as_bytes(), origin, verifier, &[]) {
            Ok((c, _)) if c.size == size => {
                checkpoints
                    .entry(size)
                    .or_default()
                    .push((c.root, "stored"));
                last_ok = size;
            }
            Ok(_) => {
                return bad(
                    report,
                    last_ok + 1,
                    format!("the checkpoint stored at size {size} names another size"),
                );
            }
            Err(e) => {
                return bad(
                    report,
                    last_ok + 1,
                    format!(
                        "the checkpoint of tree size {size} does not verify with the log key: {e} (the signing key was swapped or the checkpoint forged)"
                    ),
                );
            }
        }
    }
    for note in kept {
        match Checkpoint::open(note.as_bytes(), origin, verifier, &[]) {
            Ok((c, _)) => checkpoints
                .entry(c.size)
                .or_default()
                .push((c.root, "kept")),
            Err(e) => {
                return bad(
                    report,
                    0,
                    format!("a kept checkpoint does not verify with the log key: {e}"),
                );
            }
        }
    }
    report.checkpoints = checkpoints.values().map(|v| v.len() as u64).sum();
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&db.pool)
        .await?;
    let total = total as u64;
    let mut frontier = Frontier::new();
    let mut pending = checkpoints.iter().peekable();
    let mut tile: Option<(u64, Vec<Hash>)> = None;
    let mut checked_up_to = 0u64;
    // The empty tree's checkpoint (signed when the log started).
    if let Some((0, roots)) = pending.peek() {
        if roots.iter().any(|(r, _)| *r != warden_merkle::empty_root()) {
            return bad(
                report,
                1,
                "the checkpoint of the empty log has another root".into(),
            );
        }
        pending.next();
    }
    loop {
        let rows = sqlx::query(
            "SELECT sequence, id, tenant_id, time_ms, decision, commitment, record FROM audit_log
             WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(frontier.size() as i64)
        .bind(PAGE)
        .fetch_all(&db.pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let entry = crate::merkle_log::entry_of(r)?;
            let want = frontier.size() + 1;
            if entry.sequence != want {
                return bad(
                    report,
                    want,
                    format!(
                        "record {want} is missing (the next one is {})",
                        entry.sequence
                    ),
                );
            }
            let index = want - 1;
            let tile_index = index / TILE_WIDTH;
            if tile.as_ref().is_none_or(|(i, _)| *i != tile_index) {
                let mut conn = db.pool.acquire().await?;
                let hashes =
                    sqlx::query("SELECT hashes FROM audit_tiles WHERE level = 0 AND idx = $1")
                        .bind(tile_index as i64)
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|r| r.try_get::<Vec<u8>, _>(0))
                        .transpose()?
                        .unwrap_or_default();
                let hashes = hashes
                    .chunks_exact(32)
                    .map(|c| c.try_into().unwrap_or([0; 32]))
                    .collect();
                tile = Some((tile_index, hashes));
            }
            let leaf = entry.leaf_hash();
            let stored = tile
                .as_ref()
                .and_then(|(_, h)| h.get((index % TILE_WIDTH) as usize));
            match stored {
                None => {
                    return bad(
                        report,
                        want,
                        format!(
                            "record {want} is not in the Merkle tree (inserted after the fact)"
                        ),
                    );
                }
                Some(s) if *s != leaf => {
                    return bad(
                        report,
                        want,
                        format!(
                            "record {want} does not match its leaf in the tree: a column (tenant, time, decision, id) or its sealed content was changed, or records were reordered or replaced"
                        ),
                    );
                }
                Some(_) => {}
            }
            frontier.push(leaf);
            report.records += 1;
            while let Some((size, roots)) = pending.peek() {
                if **size != frontier.size() {
                    break;
                }
                let root = frontier.root();
                for (r, whose) in roots.iter() {
                    if *r != root {
                        return bad(
                            report,
                            checked_up_to + 1,
                            format!(
                                "records {}..={size} do not give the root of the {whose} checkpoint of size {size}: one of them was changed, inserted, deleted or reordered (and the tree rewritten to hide it)",
                                checked_up_to + 1
                            ),
                        );
                    }
                }
                checked_up_to = **size;
                pending.next();
            }
        }
        progress(report.records, total);
    }
    if let Some((size, _)) = pending.next() {
        let n = frontier.size();
        return bad(
            report,
            n + 1,
            format!(
                "records {}..={size} are missing: a checkpoint of size {size} signed them (the tail was cut)",
                n + 1
            ),
        );
    }
    if frontier.size() > checked_up_to {
        return bad(
            report,
            checked_up_to + 1,
            format!(
                "records {}..={} are not covered by any signed checkpoint (appended without the log key)",
                checked_up_to + 1,
                frontier.size()
            ),
        );
    }
    Ok(report)
}
