//! The audit log's Merkle tree (RFC 9162) kept in the database as C2SP tiles, and its
//! signed checkpoints.
//!
//! Each commit, inside its transaction and after its records are inserted: read the new
//! rows back, hash their leaf entries ([`LeafEntry`]), read the stored right edge of the
//! tiles (`audit_tiles`, one row per tile at its latest width: an older tree's partial
//! tile is a prefix of it), append the leaves to it, compute the root and the consistency
//! proof from the last checkpoint from what was read, and have the [`LogSigner`] sign
//! the new checkpoint, which refuses one that does not extend the last. A handful of
//! statements per commit, whatever its size ([`extend`]). The checkpoint row is
//! committed with the records, so no acknowledgement goes out before its checkpoint is
//! signed. Proofs are answered from a handful of tiles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sqlx::Row;
use warden_merkle::checkpoint::Checkpoint;
use warden_merkle::tiles::{self, SubtreeMemo, TILE_WIDTH, TileMap};
use warden_merkle::{Hash, TileId, note, root};

use crate::audit_entry::LeafEntry;
use crate::log_key::LogSigner;
use crate::{Db, DbError};

/// Why the tree could not be extended or read.
fn corrupt(what: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Protocol(format!("audit log tree: {}", what.into()))
}

/// The leaf entries of records `from..=to` (sequences), read from `conn`.
pub(crate) async fn entries(
    conn: &mut sqlx::AnyConnection,
    from: u64,
    to: u64,
) -> Result<Vec<LeafEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sequence, id, tenant_id, time_ms, decision, commitment, record FROM audit_log
         WHERE sequence >= $1 AND sequence <= $2 ORDER BY sequence",
    )
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let e = entry_of(r)?;
        if e.sequence != from + i as u64 {
            return Err(corrupt(format!("record {} is missing", from + i as u64)));
        }
        out.push(e);
    }
    if out.len() as u64 != to + 1 - from {
        return Err(corrupt(format!("records {from}..={to} are not all there")));
    }
    Ok(out)
}

/// The entry of a row `(sequence, id, tenant_id, time_ms, decision, commitment, record)`.
pub(crate) fn entry_of(r: &sqlx::any::AnyRow) -> Result<LeafEntry, sqlx::Error> {
    Ok(LeafEntry::of_row(
        r.try_get::<i64, _>(0)? as u64,
        &r.try_get::<String, _>(1)?,
        &r.try_get::<String, _>(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        &r.try_get::<String, _>(5)?,
        &r.try_get::<String, _>(6)?,
    ))
}

/// Appends `leaves` to the tree of `size` leaves whose right-edge tiles are `edge`
/// (`(level, index)` to hashes; the partial rightmost tile of each level). Returns every
/// tile that changed, with its whole content. Pure.
pub(crate) fn append(
    size: u64,
    mut edge: BTreeMap<(u8, u64), Vec<Hash>>,
    leaves: &[Hash],
) -> BTreeMap<(u8, u64), Vec<Hash>> {
    let mut changed = BTreeSet::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let mut pos = size + i as u64; // position at the current level
        let mut hash = *leaf;
        let mut level = 0u8;
        loop {
            let key = (level, pos / TILE_WIDTH);
            let tile = edge.entry(key).or_default();
            tile.push(hash);
            changed.insert(key);
            if tile.len() as u64 != TILE_WIDTH {
                break;
            }
            // A full tile's root is a hash of the level above.
            hash = root(tile);
            pos /= TILE_WIDTH;
            level += 1;
        }
    }
    changed
        .into_iter()
        .filter_map(|k| edge.remove(&k).map(|v| (k, v)))
        .collect()
}

/// A stored tile's hashes (`audit_tiles.hashes`, 32 bytes each).
pub(crate) fn hashes_of(bytes: &[u8]) -> Result<Vec<Hash>, sqlx::Error> {
    if !bytes.len().is_multiple_of(32) {
        return Err(corrupt("a tile is not whole hashes"));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

async fn read_tile(
    conn: &mut sqlx::AnyConnection,
    level: u8,
    index: u64,
) -> Result<Option<Vec<Hash>>, sqlx::Error> {
    let row = sqlx::query("SELECT hashes FROM audit_tiles WHERE level = $1 AND idx = $2")
        .bind(i64::from(level))
        .bind(index as i64)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| hashes_of(r.try_get::<&[u8], _>(0)?))
        .transpose()
}

/// The tiles `ids` (each cut to its width) from the database.
pub(crate) async fn load_tiles(
    conn: &mut sqlx::AnyConnection,
    ids: impl IntoIterator<Item = TileId>,
    into: &mut TileMap,
) -> Result<(), sqlx::Error> {
    for id in ids {
        if into.contains_key(&id) {
            continue;
        }
        let hashes = read_tile(conn, id.level, id.index)
            .await?
            .ok_or_else(|| corrupt(format!("{id} is missing")))?;
        let width = usize::from(id.width);
        if hashes.len() < width {
            return Err(corrupt(format!("{id} holds only {} hashes", hashes.len())));
        }
        into.insert(id, hashes[..width].concat());
    }
    Ok(())
}

/// The right edge of the tree of `size` leaves: `(level, index)` and width of the
/// partial rightmost tile of each level.
fn edge_keys(size: u64) -> Vec<((u8, u64), usize)> {
    let mut out = Vec::new();
    let mut count = size;
    let mut level = 0u8;
    while count > 0 {
        let width = count % TILE_WIDTH;
        if width != 0 {
            out.push(((level, count / TILE_WIDTH), width as usize));
        }
        count /= TILE_WIDTH;
        level += 1;
    }
    out
}

/// The stored tiles `keys` (those that are there), in one statement.
pub(crate) async fn read_tiles(
    conn: &mut sqlx::AnyConnection,
    keys: &BTreeSet<(u8, u64)>,
) -> Result<BTreeMap<(u8, u64), Vec<Hash>>, sqlx::Error> {
    let mut out = BTreeMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let filter = (0..keys.len())
        .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!("SELECT level, idx, hashes FROM audit_tiles WHERE {filter}");
    let mut q = sqlx::query(&sql);
    for (level, index) in keys {
        q = q.bind(i64::from(*level)).bind(*index as i64);
    }
    for r in q.fetch_all(&mut *conn).await? {
        let level = u8::try_from(r.try_get::<i64, _>(0)?).map_err(|_| corrupt("a tile level"))?;
        let index = r.try_get::<i64, _>(1)? as u64;
        out.insert((level, index), hashes_of(r.try_get::<&[u8], _>(2)?)?);
    }
    Ok(out)
}

/// A tile's place: `(level, index)`.
pub(crate) type TileKey = (u8, u64);

/// What a commit reads back before it signs, from whichever backend.
pub(crate) struct ReadBack {
    /// The new records' leaf entries, as stored.
    pub(crate) entries: Vec<LeafEntry>,
    /// The latest stored checkpoint: `(size, note)`.
    pub(crate) checkpoint: Option<(u64, String)>,
    /// The stored tiles read, each at its stored width.
    pub(crate) tiles: BTreeMap<TileKey, Vec<Hash>>,
}

impl ReadBack {
    pub(crate) fn with_capacity(records: usize) -> ReadBack {
        ReadBack {
            entries: Vec::with_capacity(records),
            checkpoint: None,
            tiles: BTreeMap::new(),
        }
    }
}

/// How records `size + 1 ..= new_size`, inserted in the current transaction, join the
/// tree: which stored tiles a backend reads back, and then, from what it read and
/// without any database, the changed tiles and the checkpoint to write ([`Plan::finish`]).
/// Every backend's commit goes through it, so what is signed is decided in one place.
pub(crate) struct Plan {
    size: u64,
    new_size: u64,
    signed: bool,
    /// The tree's right edge before the append, each tile with its width.
    edge: Vec<(TileKey, usize)>,
    /// Every tile asked for so far.
    keys: BTreeSet<TileKey>,
    /// The tiles the new root and the consistency proof read.
    wanted: BTreeSet<TileId>,
}

/// What a commit writes besides its records.
pub(crate) struct Extended {
    /// Every tile that changed, whole, at its new width.
    pub(crate) tiles: BTreeMap<TileKey, Vec<Hash>>,
    /// Of each changed tile, how many of its first hashes are the whole tile as stored
    /// (read back in this transaction): 0 for a new tile or one rewritten otherwise. A
    /// backend may then write only the hashes after them.
    pub(crate) kept: BTreeMap<TileKey, usize>,
    /// A newly signed checkpoint of the new size, to insert with the tiles.
    pub(crate) signed: Option<String>,
    /// The checkpoint of the new size (newly signed or already stored).
    pub(crate) note: Option<String>,
}

impl Plan {
    /// `signed`: a checkpoint is signed (a signer is configured). The tiles to read
    /// guess that the last checkpoint is at `size`, as every signed commit leaves it.
    pub(crate) fn new(size: u64, new_size: u64, signed: bool) -> Plan {
        let mut wanted = BTreeSet::new();
        if signed {
            wanted = tiles::tiles_for_root(new_size);
            if size > 0 && size < new_size {
                wanted.extend(tiles::tiles_for_consistency(size, new_size));
            }
        }
        let edge = edge_keys(size);
        let keys = edge
            .iter()
            .map(|(k, _)| *k)
            .chain(wanted.iter().map(|t| (t.level, t.index)))
            .collect();
        Plan {
            size,
            new_size,
            signed,
            edge,
            keys,
            wanted,
        }
    }

    pub(crate) fn signed(&self) -> bool {
        self.signed
    }

    /// The stored tiles to read back with the rows and the latest checkpoint.
    pub(crate) fn keys(&self) -> &BTreeSet<TileKey> {
        &self.keys
    }

    /// After the read-back: the tiles still to read because the last checkpoint is not
    /// at `size` (the first signed, or one signed before a restart); usually none.
    pub(crate) fn more_keys(&mut self, back: &ReadBack) -> BTreeSet<TileKey> {
        if !self.signed {
            return BTreeSet::new();
        }
        let mut wanted = tiles::tiles_for_root(self.new_size);
        if let Some((prev_size, _)) = &back.checkpoint
            && *prev_size > 0
            && *prev_size < self.new_size
        {
            wanted.extend(tiles::tiles_for_consistency(*prev_size, self.new_size));
        }
        let more = wanted
            .iter()
            .map(|t| (t.level, t.index))
            .filter(|k| self.keys.insert(*k))
            .collect();
        self.wanted = wanted;
        more
    }

    /// Appends the read-back leaves to the stored right edge and, with a signer, signs
    /// the new head from the root and the consistency proof computed from what was read
    /// back; the signer refuses a head that does not extend the last checkpoint. Pure.
    pub(crate) fn finish(
        self,
        back: ReadBack,
        signer: Option<&dyn LogSigner>,
        memo: &mut SubtreeMemo,
    ) -> Result<Extended, sqlx::Error> {
        let (size, new_size) = (self.size, self.new_size);
        for (i, e) in back.entries.iter().enumerate() {
            if e.sequence != size + 1 + i as u64 {
                return Err(corrupt(format!(
                    "record {} is missing",
                    size + 1 + i as u64
                )));
            }
        }
        if back.entries.len() as u64 != new_size.saturating_sub(size) {
            return Err(corrupt(format!(
                "records {}..={new_size} are not all there",
                size + 1
            )));
        }
        let leaves: Vec<Hash> = back.entries.iter().map(LeafEntry::leaf_hash).collect();
        let stored = back.tiles;
        let mut edge = BTreeMap::new();
        for ((level, index), width) in self.edge {
            let hashes = stored
                .get(&(level, index))
                .ok_or_else(|| corrupt(format!("tile {level}/{index} is missing")))?;
            let hashes = hashes
                .get(..width)
                .ok_or_else(|| corrupt(format!("tile {level}/{index} is short")))?;
            edge.insert((level, index), hashes.to_vec());
        }
        let changed = append(size, edge, &leaves);
        let kept = changed
            .iter()
            .map(|(key, hashes)| {
                let kept = stored
                    .get(key)
                    .filter(|old| hashes.starts_with(old))
                    .map_or(0, Vec::len);
                (*key, kept)
            })
            .collect();
        let unsigned = |tiles, kept, note| Extended {
            tiles,
            kept,
            signed: None,
            note,
        };
        let Some(signer) = signer.filter(|_| self.signed) else {
            return Ok(unsigned(changed, kept, None));
        };
        let previous = back.checkpoint;
        if let Some((prev_size, note)) = &previous
            && *prev_size == new_size
        {
            let note = Some(note.clone());
            return Ok(unsigned(changed, kept, note));
        }
        // The new tree's tiles: rewritten by this append, or as stored.
        let mut tile_map = TileMap::new();
        for id in self.wanted {
            let key = (id.level, id.index);
            let hashes = changed
                .get(&key)
                .or_else(|| stored.get(&key))
                .ok_or_else(|| corrupt(format!("{id} is missing")))?;
            let width = usize::from(id.width);
            if hashes.len() < width {
                return Err(corrupt(format!("{id} holds only {} hashes", hashes.len())));
            }
            tile_map.insert(id, hashes[..width].concat());
        }
        let note = sign_over(signer, previous.as_ref(), new_size, &tile_map, memo)?;
        Ok(Extended {
            tiles: changed,
            kept,
            signed: Some(note.clone()),
            note: Some(note),
        })
    }
}

/// The entries of records `from..=to`, the latest checkpoint (if `checkpoint`) and the
/// stored tiles `keys`, in one statement: each is a round trip, to PostgreSQL or to the
/// thread that runs a SQLite connection. Rows are `(what, number, number, number, text,
/// text, text, text, bytes)`.
async fn read_back(
    conn: &mut sqlx::AnyConnection,
    from: u64,
    to: u64,
    checkpoint: bool,
    keys: &BTreeSet<(u8, u64)>,
) -> Result<ReadBack, sqlx::Error> {
    let mut sql = String::from(
        "SELECT CAST(0 AS BIGINT), sequence, time_ms, decision, id, tenant_id, commitment, record, CAST(NULL AS BYTEA)
         FROM audit_log WHERE sequence >= $1 AND sequence <= $2",
    );
    if checkpoint {
        sql.push_str(
            " UNION ALL SELECT CAST(1 AS BIGINT), tree_size, CAST(0 AS BIGINT), CAST(0 AS BIGINT), note, '', '', '', CAST(NULL AS BYTEA)
             FROM (SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1) c",
        );
    }
    if !keys.is_empty() {
        let filter = (0..keys.len())
            .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 3, 2 * i + 4))
            .collect::<Vec<_>>()
            .join(" OR ");
        let _ = write!(
            sql,
            " UNION ALL SELECT CAST(2 AS BIGINT), level, idx, CAST(0 AS BIGINT), '', '', '', '', hashes
             FROM audit_tiles WHERE {filter}"
        );
    }
    sql.push_str(" ORDER BY 1, 2");
    let mut q = sqlx::query(&sql).bind(from as i64).bind(to as i64);
    for (level, index) in keys {
        q = q.bind(i64::from(*level)).bind(*index as i64);
    }
    let mut back = ReadBack::with_capacity((to + 1).saturating_sub(from) as usize);
    for r in q.fetch_all(&mut *conn).await? {
        read_back_row(&r, from, &mut back)?;
    }
    if back.entries.len() as u64 != to + 1 - from {
        return Err(corrupt(format!("records {from}..={to} are not all there")));
    }
    Ok(back)
}

/// One row of the read-back: `(0, sequence, time_ms, decision, id, tenant_id,
/// commitment, record, _)` for a new record (from `from` on, in order), `(1, size, _, _,
/// note, ..)` for the latest checkpoint, `(2, level, index, .., hashes)` for a tile.
pub(crate) fn read_back_row(
    r: &sqlx::any::AnyRow,
    from: u64,
    back: &mut ReadBack,
) -> Result<(), sqlx::Error> {
    let n = r.try_get::<i64, _>(1)?;
    match r.try_get::<i64, _>(0)? {
        0 => {
            let e = LeafEntry::of_row(
                n as u64,
                &r.try_get::<String, _>(4)?,
                &r.try_get::<String, _>(5)?,
                r.try_get(2)?,
                r.try_get(3)?,
                &r.try_get::<String, _>(6)?,
                &r.try_get::<String, _>(7)?,
            );
            let want = from + back.entries.len() as u64;
            if e.sequence != want {
                return Err(corrupt(format!("record {want} is missing")));
            }
            back.entries.push(e);
        }
        1 => back.checkpoint = Some((n as u64, r.try_get(4)?)),
        2 => {
            let level = u8::try_from(n).map_err(|_| corrupt("a tile level"))?;
            let index = r.try_get::<i64, _>(2)? as u64;
            back.tiles
                .insert((level, index), hashes_of(r.try_get::<&[u8], _>(8)?)?);
        }
        other => return Err(corrupt(format!("a read-back row of kind {other}"))),
    }
    Ok(())
}

/// How many leaves the stored tiles hold (from the level-0 tiles).
pub(crate) async fn tiled_size(conn: &mut sqlx::AnyConnection) -> Result<u64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT idx, hashes FROM audit_tiles WHERE level = 0 ORDER BY idx DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => {
            r.try_get::<i64, _>(0)? as u64 * TILE_WIDTH
                + hashes_of(r.try_get::<&[u8], _>(1)?)?.len() as u64
        }
        None => 0,
    })
}

/// The latest signed checkpoint: `(size, note)`.
pub(crate) async fn latest_checkpoint(
    conn: &mut sqlx::AnyConnection,
) -> Result<Option<(u64, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?)))
        .transpose()
}

/// The checkpoint signed at `size`, with its time.
pub(crate) async fn checkpoint_at(
    conn: &mut sqlx::AnyConnection,
    size: u64,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT note, time_ms FROM audit_checkpoints WHERE tree_size = $1")
        .bind(size as i64)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Adds records `size+1 ..= new_size` (already inserted in this transaction) to the tree
/// and, with a signer, signs and stores the checkpoint of `new_size`. Returns the note.
///
/// What is signed comes from storage, read back in this transaction, never from memory:
/// the new leaves are hashed from their rows as read back, the tree's right edge (and
/// any other tile the root or the consistency proof needs that this append does not
/// rewrite) from the stored tiles, all in one statement with the last checkpoint
/// ([`read_back`]). The root and the consistency
/// proof from the last checkpoint are computed from those, and the signer refuses a head
/// that does not extend that checkpoint, so a wrong stored tile or leaf can never be
/// signed over: it would not extend the checkpoint that was signed before it.
pub(crate) async fn extend(
    conn: &mut sqlx::AnyConnection,
    signer: Option<&dyn LogSigner>,
    size: u64,
    new_size: u64,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    if new_size <= size {
        return match signer {
            Some(signer) => sign_head(conn, signer, new_size, now_ms).await.map(Some),
            None => Ok(None),
        };
    }
    let mut plan = Plan::new(size, new_size, signer.is_some());
    // Read back what was written, not what was meant to be written: the new rows, the
    // last checkpoint and those tiles, in one statement.
    let mut back = read_back(conn, size + 1, new_size, plan.signed(), plan.keys()).await?;
    let more = plan.more_keys(&back);
    back.tiles.extend(read_tiles(conn, &more).await?);
    let extended = plan.finish(back, signer, &mut SubtreeMemo::default())?;
    match &extended.signed {
        Some(note) => store(conn, &extended.tiles, new_size, note, now_ms).await?,
        None => upsert_tiles(conn, &extended.tiles).await?,
    }
    Ok(extended.note)
}

/// Writes the changed `tiles` and the checkpoint: on PostgreSQL in one statement (each
/// is a round trip), on SQLite (no data-modifying WITH) in two.
async fn store(
    conn: &mut sqlx::AnyConnection,
    tiles: &BTreeMap<(u8, u64), Vec<Hash>>,
    size: u64,
    note: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if conn.backend_name() != "PostgreSQL" || tiles.is_empty() || tiles.len() > 64 {
        upsert_tiles(conn, tiles).await?;
        return insert_checkpoint(conn, size, note, now_ms).await;
    }
    let n = 3 * tiles.len();
    let sql = format!(
        "WITH t AS (INSERT INTO audit_tiles (level, idx, hashes) VALUES {}
             ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes)
         INSERT INTO audit_checkpoints (tree_size, note, time_ms) VALUES (${}, ${}, ${})",
        crate::audit_batch::values(3, tiles.len()),
        n + 1,
        n + 2,
        n + 3
    );
    let mut q = sqlx::query(&sql);
    for ((level, index), hashes) in tiles {
        q = q
            .bind(i64::from(*level))
            .bind(*index as i64)
            .bind(hashes.concat());
    }
    q.bind(size as i64)
        .bind(note)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes `tiles` (each whole, at its new width): one statement for a commit's few.
async fn upsert_tiles(
    conn: &mut sqlx::AnyConnection,
    tiles: &BTreeMap<(u8, u64), Vec<Hash>>,
) -> Result<(), sqlx::Error> {
    let tiles: Vec<_> = tiles.iter().collect();
    for run in crate::audit_batch::pow2_runs(tiles.len()) {
        let chunk = &tiles[run];
        let sql = format!(
            "INSERT INTO audit_tiles (level, idx, hashes) VALUES {}
             ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
            crate::audit_batch::values(3, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for ((level, index), hashes) in chunk {
            q = q
                .bind(i64::from(*level))
                .bind(*index as i64)
                .bind(hashes.concat());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Signs the checkpoint of the tree of `size` whose tiles are in `tiles` (those of its
/// root, and of the consistency proof from `previous`, the latest checkpoint): the
/// signer refuses a head that does not extend it. `memo` holds subtree hashes of earlier
/// commits' tiles, used only where these tiles' bytes are the same (`SubtreeMemo`), so a
/// commit hashes what it added, not its whole rightmost tile. Pure.
fn sign_over(
    signer: &dyn LogSigner,
    previous: Option<&(u64, String)>,
    size: u64,
    tiles: &TileMap,
    memo: &mut SubtreeMemo,
) -> Result<String, sqlx::Error> {
    let root =
        tiles::root_from_tiles_with(size, tiles, memo).map_err(|e| corrupt(e.to_string()))?;
    let proof = match previous {
        Some((prev_size, _)) if *prev_size > 0 && *prev_size < size => {
            tiles::consistency_proof_from_tiles_with(*prev_size, size, tiles, memo)
                .map_err(|e| corrupt(e.to_string()))?
        }
        _ => Vec::new(),
    };
    signer
        .sign(previous.map(|(_, n)| n.as_bytes()), size, root, &proof)
        .map_err(|e| corrupt(format!("checkpoint refused: {e}")))
}

async fn insert_checkpoint(
    conn: &mut sqlx::AnyConnection,
    size: u64,
    note: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_checkpoints (tree_size, note, time_ms) VALUES ($1, $2, $3)")
        .bind(size as i64)
        .bind(note)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Signs the checkpoint of the tree of `size` (root from the stored tiles) if it is not
/// signed yet, refusing one that does not extend the latest. Returns the note.
pub(crate) async fn sign_head(
    conn: &mut sqlx::AnyConnection,
    signer: &dyn LogSigner,
    size: u64,
    now_ms: i64,
) -> Result<String, sqlx::Error> {
    let previous = latest_checkpoint(conn).await?;
    if let Some((prev_size, note)) = &previous
        && *prev_size == size
    {
        return Ok(note.clone());
    }
    let mut tiles = TileMap::new();
    load_tiles(conn, tiles::tiles_for_root(size), &mut tiles).await?;
    if let Some((prev_size, _)) = &previous
        && *prev_size > 0
        && *prev_size < size
    {
        load_tiles(
            conn,
            tiles::tiles_for_consistency(*prev_size, size),
            &mut tiles,
        )
        .await?;
    }
    let note = sign_over(
        signer,
        previous.as_ref(),
        size,
        &tiles,
        &mut SubtreeMemo::default(),
    )?;
    insert_checkpoint(conn, size, &note, now_ms).await?;
    Ok(note)
}

/// Brings the tree up to `records` leaves (a log from before the tree) and checks the
/// signer against the last checkpoint: it must have signed it, for this origin, and the
/// tiles must give its root. Then signs the head if it is not signed yet.
pub(crate) async fn open(
    db: &Db,
    signer: Option<&dyn LogSigner>,
    records: u64,
) -> Result<(), DbError> {
    let mut tx = db.pool.begin().await?;
    let tiled = tiled_size(&mut tx).await?;
    if tiled > records {
        return Err(DbError::Corrupt(format!(
            "audit log: the tree holds {tiled} leaves but there are {records} records (records were deleted)"
        )));
    }
    if tiled < records {
        tracing::info!(
            from = tiled,
            to = records,
            "adding audit records to the Merkle tree"
        );
        extend(&mut tx, None, tiled, records, crate::util::now_ms()).await?;
    }
    if let Some(signer) = signer {
        if let Some((size, note)) = latest_checkpoint(&mut tx).await? {
            let (c, _) = Checkpoint::open(
                note.as_bytes(),
                signer.origin(),
                &signer.verifier(),
                &[],
            )
            .map_err(|e| {
                DbError::Corrupt(format!(
                    "audit log: the last checkpoint (size {size}) does not verify with this log key and origin ({e}); start storage with the key that signed it"
                ))
            })?;
            if size > records {
                return Err(DbError::Corrupt(format!(
                    "audit log: checkpoint {size} was signed but only {records} records are there (the tail was cut)"
                )));
            }
            let mut tiles = TileMap::new();
            load_tiles(&mut tx, tiles::tiles_for_root(size), &mut tiles).await?;
            let root = tiles::root_from_tiles(size, &tiles)
                .map_err(|e| DbError::Corrupt(format!("audit log: {e}")))?;
            if root != c.root {
                return Err(DbError::Corrupt(format!(
                    "audit log: the records do not give the root checkpoint {size} signed (run `warden audit verify`)"
                )));
            }
        }
        sign_head(&mut tx, signer, records, crate::util::now_ms()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Parses a stored note's checkpoint without checking its signature (it was checked
/// when storage opened and when it was signed).
pub(crate) fn parse_note(note_text: &str) -> Result<Checkpoint, sqlx::Error> {
    let n = note::parse(note_text.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    Checkpoint::parse(&n.text).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit whose last checkpoint is not at the size before it (here: records added
    /// without a signer in between) reads the tiles of that checkpoint's consistency
    /// proof besides, and signs the right root.
    #[tokio::test]
    async fn a_checkpoint_older_than_the_tree_is_extended_with_a_second_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let key = warden_merkle::SignerKey::from_seed("t.example/log", &[7; 32]).unwrap();
        let signer = crate::log_key::KeyFileSigner::from_key("t.example/log", key).unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        // 600 records: past the first level-0 tile, so the proof 3 -> 600 needs tiles the
        // append 500 -> 600 neither reads nor writes.
        for seq in 1..=600i64 {
            sqlx::query(
                "INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment)
                 VALUES ($1, $2, 'acme', $1, 1, 'r', 'h', 'c')",
            )
            .bind(seq)
            .bind(format!("id-{seq}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        extend(&mut conn, Some(&signer), 0, 3, 1).await.unwrap();
        extend(&mut conn, None, 3, 500, 2).await.unwrap();
        let note = extend(&mut conn, Some(&signer), 500, 600, 3)
            .await
            .unwrap()
            .unwrap();
        let (c, _) =
            Checkpoint::open(note.as_bytes(), "t.example/log", &signer.verifier(), &[]).unwrap();
        let leaves: Vec<Hash> = entries(&mut conn, 1, 600)
            .await
            .unwrap()
            .iter()
            .map(LeafEntry::leaf_hash)
            .collect();
        assert_eq!((c.size, c.root), (600, warden_merkle::root(&leaves)));
    }

    #[test]
    fn appending_in_batches_gives_the_tiles_of_the_whole_tree() {
        let leaves: Vec<Hash> = (0u32..70_000)
            .map(|i| warden_merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut stored: BTreeMap<(u8, u64), Vec<Hash>> = BTreeMap::new();
        let mut size = 0u64;
        for batch in [1usize, 254, 1, 300, 65_536, 3_904] {
            let mut e = BTreeMap::new();
            let mut count = size;
            let mut level = 0u8;
            while count > 0 {
                if !count.is_multiple_of(TILE_WIDTH) {
                    let k = (level, count / TILE_WIDTH);
                    let mut h = stored[&k].clone();
                    h.truncate((count % TILE_WIDTH) as usize);
                    e.insert(k, h);
                }
                count /= TILE_WIDTH;
                level += 1;
            }
            let end = size as usize + batch;
            stored.extend(append(size, e, &leaves[size as usize..end]));
            size = end as u64;
            let want = tiles::tiles(&leaves[..end]);
            let mut got = TileMap::new();
            for id in TileId::for_tree(size) {
                let h = &stored[&(id.level, id.index)];
                got.insert(id, h[..usize::from(id.width)].concat());
            }
            assert_eq!(got, want, "after {size} leaves");
            assert_eq!(
                tiles::root_from_tiles(size, &got).unwrap(),
                warden_merkle::root(&leaves[..end])
            );
        }
    }
}
