//! Answers from the audit log's Merkle tree: signed checkpoints, inclusion and
//! consistency proofs (RFC 9162 §2.1.3, §2.1.4, computed from the stored tiles), a
//! tenant's records each with a C2SP tlog-proof, and the whole log as tlog-tiles files.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::Status;
use warden_merkle::TlogProof;
use warden_merkle::tiles::{self, TileMap};
use warden_proto::storage::v1 as st;

use crate::merkle_log::{self, checkpoint_at, latest_checkpoint, load_tiles, parse_note};
use crate::util::ts;
use crate::{DbError, Storage};

pub type TileStream = Pin<Box<dyn Stream<Item = Result<st::TileFile, Status>> + Send>>;

fn db(e: sqlx::Error) -> Status {
    Status::from(DbError::from(e))
}

fn tile_err(e: warden_merkle::TileError) -> Status {
    Status::from(DbError::Corrupt(format!("audit log tree: {e}")))
}

impl Storage {
    fn signer(&self) -> Result<&dyn crate::LogSigner, Status> {
        self.inner.log.signer().ok_or_else(|| {
            Status::failed_precondition(
                "this storage has no audit log signing key, so it signs no checkpoints",
            )
        })
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, Status> {
        self.inner.db.pool.acquire().await.map_err(db)
    }

    /// The checkpoint signed at `size` (0: the latest).
    pub async fn checkpoint(&self, size: u64) -> Result<st::Checkpoint, Status> {
        let signer = self.signer()?;
        let mut conn = self.conn().await?;
        let found = if size == 0 {
            match latest_checkpoint(&mut conn).await.map_err(db)? {
                Some((s, _)) => checkpoint_at(&mut conn, s).await.map_err(db)?,
                None => None,
            }
        } else {
            checkpoint_at(&mut conn, size).await.map_err(db)?
        };
        let (note, time_ms) = found.ok_or_else(|| {
            Status::not_found(format!("no checkpoint was signed at tree size {size}"))
        })?;
        let c = parse_note(&note).map_err(db)?;
        let verifier = signer.verifier();
        Ok(st::Checkpoint {
            note,
            tree_size: c.size,
            root_hash: c.root.to_vec(),
            origin: c.origin,
            verifier_key: verifier.to_string(),
            key_id: verifier.key_id(),
            time: Some(ts(time_ms)),
        })
    }

    /// The size to prove against: `size`, or the latest checkpoint's; never beyond it.
    async fn proof_size(
        &self,
        conn: &mut sqlx::AnyConnection,
        size: u64,
    ) -> Result<(u64, String), Status> {
        let (latest, latest_note) = latest_checkpoint(conn)
            .await
            .map_err(db)?
            .ok_or_else(|| Status::failed_precondition("no checkpoint was signed yet"))?;
        if size == 0 || size == latest {
            return Ok((latest, latest_note));
        }
        if size > latest {
            return Err(Status::out_of_range(format!(
                "tree size {size} is beyond the latest checkpoint ({latest})"
            )));
        }
        let note = checkpoint_at(conn, size)
            .await
            .map_err(db)?
            .map(|(n, _)| n)
            .unwrap_or_default();
        Ok((size, note))
    }

    pub async fn inclusion_proof(
        &self,
        r: &st::GetInclusionProofRequest,
    ) -> Result<st::InclusionProof, Status> {
        self.signer()?;
        let mut conn = self.conn().await?;
        let sequence = match (r.record_id.is_empty(), r.sequence) {
            (false, 0) => {
                crate::util::check_len("record_id", &r.record_id, 64)?;
                let seq: Option<i64> =
                    sqlx::query_scalar("SELECT sequence FROM audit_log WHERE id = $1")
                        .bind(&r.record_id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db)?;
                seq.ok_or_else(|| Status::not_found("no audit record has that id"))? as u64
            }
            (true, s) if s > 0 => s,
            _ => {
                return Err(Status::invalid_argument(
                    "name the record by record_id or by sequence (one of them)",
                ));
            }
        };
        let (size, checkpoint) = self.proof_size(&mut conn, r.tree_size).await?;
        if sequence > size {
            return Err(Status::out_of_range(format!(
                "record {sequence} is not in the tree of size {size}"
            )));
        }
        let index = sequence - 1;
        let entry = merkle_log::entries(&mut conn, sequence, sequence)
            .await
            .map_err(db)?
            .remove(0);
        let mut tiles = TileMap::new();
        load_tiles(
            &mut conn,
            tiles::tiles_for_inclusion(index, size),
            &mut tiles,
        )
        .await
        .map_err(db)?;
        let hashes = tiles::inclusion_proof_from_tiles(index, size, &tiles).map_err(tile_err)?;
        Ok(st::InclusionProof {
            leaf_index: index,
            tree_size: size,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
            leaf_hash: entry.leaf_hash().to_vec(),
            entry: entry.encode(),
            checkpoint,
        })
    }

    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<st::ConsistencyProof, Status> {
        self.signer()?;
        let mut conn = self.conn().await?;
        let (new_size, new_checkpoint) = self.proof_size(&mut conn, new_size).await?;
        if old_size > new_size {
            return Err(Status::invalid_argument(format!(
                "old_size {old_size} is larger than new_size {new_size}"
            )));
        }
        let mut tiles = TileMap::new();
        load_tiles(
            &mut conn,
            tiles::tiles_for_consistency(old_size, new_size),
            &mut tiles,
        )
        .await
        .map_err(db)?;
        let hashes =
            tiles::consistency_proof_from_tiles(old_size, new_size, &tiles).map_err(tile_err)?;
        let old_checkpoint = checkpoint_at(&mut conn, old_size)
            .await
            .map_err(db)?
            .map(|(n, _)| n)
            .unwrap_or_default();
        Ok(st::ConsistencyProof {
            old_size,
            new_size,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
            old_checkpoint,
            new_checkpoint,
        })
    }

    /// A page of a tenant's records, each with its tlog-proof against one checkpoint
    /// (records after it are left for a later export).
    pub(crate) async fn query_with_proofs(
        &self,
        q: &st::QueryRequest,
    ) -> Result<st::QueryResponse, Status> {
        self.signer()?;
        let (size, checkpoint) = {
            let mut conn = self.conn().await?;
            self.proof_size(&mut conn, q.proof_tree_size).await?
        };
        if checkpoint.is_empty() {
            return Err(Status::invalid_argument(format!(
                "no checkpoint was signed at tree size {size}"
            )));
        }
        let rows = self.query_rows(q, size.max(1)).await?;
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| r.entry.sequence <= size)
            .collect();
        let mut conn = self.conn().await?;
        let mut tiles = TileMap::new();
        let mut records = Vec::with_capacity(rows.len());
        let mut proofs = Vec::with_capacity(rows.len());
        for row in rows {
            let index = row.entry.sequence - 1;
            load_tiles(
                &mut conn,
                tiles::tiles_for_inclusion(index, size),
                &mut tiles,
            )
            .await
            .map_err(db)?;
            let hashes =
                tiles::inclusion_proof_from_tiles(index, size, &tiles).map_err(tile_err)?;
            let proof = TlogProof {
                extra: None,
                index,
                hashes,
                checkpoint: checkpoint.clone(),
            };
            proofs.push(st::RecordProof {
                record: row.plain.unwrap_or_default(),
                entry: row.entry.encode(),
                tlog_proof: proof.to_text(),
            });
            records.push(row.record);
        }
        Ok(st::QueryResponse { records, proofs })
    }

    /// The whole log up to the latest checkpoint as tlog-tiles files: `checkpoint`, every
    /// hash tile and every entry bundle (entries are leaf entries, never record content).
    pub(crate) async fn export_tiles(&self) -> Result<TileStream, Status> {
        self.signer()?;
        let mut conn = self.conn().await?;
        let (size, note) = self.proof_size(&mut conn, 0).await?;
        drop(conn);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let storage = self.clone();
        tokio::spawn(async move {
            let send = |path: String, data: Vec<u8>| {
                let tx = tx.clone();
                async move { tx.send(Ok(st::TileFile { path, data })).await.is_ok() }
            };
            if !send("checkpoint".into(), note.into_bytes()).await {
                return;
            }
            let result = async {
                let mut conn = storage.conn().await?;
                for id in warden_merkle::TileId::for_tree(size) {
                    let mut map = TileMap::new();
                    load_tiles(&mut conn, [id], &mut map).await.map_err(db)?;
                    let data = map.remove(&id).unwrap_or_default();
                    if !send(id.path(), data).await {
                        return Ok(());
                    }
                    if id.level == 0 {
                        let first = id.index * tiles::TILE_WIDTH + 1;
                        let last = first + u64::from(id.width) - 1;
                        let entries: Vec<Vec<u8>> = merkle_log::entries(&mut conn, first, last)
                            .await
                            .map_err(db)?
                            .iter()
                            .map(crate::audit_entry::LeafEntry::encode)
                            .collect();
                        let bundle = tiles::encode_bundle(&entries).map_err(tile_err)?;
                        if !send(id.entries_path(), bundle).await {
                            return Ok(());
                        }
                    }
                }
                Ok::<(), Status>(())
            }
            .await;
            if let Err(s) = result {
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}
