//! The audit log: append-only records, each a leaf of one Merkle tree (RFC 9162, see
//! `merkle_log.rs`) whose head is signed as a C2SP checkpoint in every commit, and each
//! linked to the one before by a SHA-256 hash chain.
//!
//! The tree is the proof: a checkpoint signed with a key the database does not hold pins
//! every record before it. The chain names the exact record that was changed, deleted,
//! reordered or inserted ([`Storage::verify_audit`]). Appends are serialized through one
//! committer task that owns the head (`committer.rs`; group commit: every append that
//! arrives during a commit joins the next transaction), and a record is acknowledged only
//! after its commit, which holds its checkpoint. The first commit that fails stops the writer
//! until restart (`durable.rs`).

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::audit_log_server::AuditLog;
use warden_proto::storage::v1::{
    AppendRequest, AuditReceipt, QueryRequest, QueryResponse, VerifyRequest, VerifyResponse,
};
use warden_tls::{Role, authorize};

use crate::audit_batch::NewRow;
use crate::keyring::Keyring;
use crate::log_key::LogSigner;
use crate::reconcile::Reconciled;
use crate::util::{check_len, check_tenant, ms_of, new_id, ts};
use crate::{Db, DbError, Storage};

/// The PostgreSQL advisory lock that serializes audit appends across storage replicas.
pub(crate) const AUDIT_APPEND_LOCK: i64 = 0x5741_5244_454e_4155; // "WARDENAU"

/// The audit log's name for gRPC health checking.
pub(crate) const AUDIT_LOG_SERVICE: &str = "warden.storage.v1.AuditLog";

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The end of the chain: the next sequence number and the last hash.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) next_sequence: u64,
    pub(crate) last_hash: String,
}

impl Head {
    /// The head of an empty log.
    pub(crate) fn genesis() -> Head {
        Head {
            next_sequence: 1,
            last_hash: GENESIS.to_owned(),
        }
    }

    pub(crate) async fn load(db: &Db) -> Result<Head, DbError> {
        let mut conn = db.pool.acquire().await?;
        Ok(Head::read(&mut conn).await?)
    }

    async fn read(conn: &mut sqlx::AnyConnection) -> Result<Head, sqlx::Error> {
        let row =
            sqlx::query("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
        Ok(match row {
            Some(r) => Head {
                next_sequence: r.try_get::<i64, _>(0)? as u64 + 1,
                last_hash: r.try_get(1)?,
            },
            None => Head::genesis(),
        })
    }
}

/// Version 2 (records sealed at rest): the hash covers the row's clear columns, the link
/// and the sealed bytes, so the chain verifies without any key, even after a tenant's
/// data key is destroyed; a changed tenant, time or decision column breaks it too.
fn sealed_hash(
    seq: u64,
    tenant_id: &str,
    time_ms: i64,
    decision: i64,
    prev: &str,
    sealed: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"warden-audit-v2\0");
    h.update(seq.to_be_bytes());
    h.update(time_ms.to_be_bytes());
    h.update(decision.to_be_bytes());
    for part in [tenant_id, prev, sealed] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whose data key seals a tenant's audit records: a key of its own, apart from the
/// tenant's data key, because re-encrypting a record would change the bytes its hash
/// covers. Rotating the tenant's data key leaves it alone (a KEK rotation re-wraps it);
/// shredding the tenant destroys it. Tenant ids never contain '/'.
pub(crate) fn audit_scope(tenant_id: &str) -> String {
    format!("{tenant_id}/audit")
}

/// A sealing failure inside a commit, as the commit's error.
pub(crate) fn seal_error(s: Status) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(std::io::Error::other(format!(
        "audit record could not be sealed: {}",
        s.message()
    ))))
}

/// Version 1 (before sealing): the hash of a record whose `hash` field is empty and
/// whose `prev_hash` is set.
fn record_hash(record: &AuditRecord) -> String {
    let mut unhashed = record.clone();
    unhashed.hash.clear();
    let mut h = Sha256::new();
    h.update(b"warden-audit-v1\0");
    h.update(unhashed.encode_to_vec());
    hex::encode(h.finalize())
}

/// Most records committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// One append waiting for the committer.
pub(crate) struct Pending {
    pub(crate) record: AuditRecord,
    pub(crate) done: oneshot::Sender<Result<AuditReceipt, Status>>,
}

/// A reconciliation waiting for the committer: close intents committed before `before_ms`.
pub(crate) struct ReconcileJob {
    pub(crate) before_ms: i64,
    pub(crate) done: oneshot::Sender<Result<Reconciled, Status>>,
}

/// The one writer of the chain (group commit). A single task owns the head; every
/// append that arrived while the previous commit ran goes into the next transaction,
/// so many records share one fsync, and each is acknowledged only after that commit.
/// The task, not the caller, commits: a caller that goes away mid-commit can neither
/// tear a batch nor leave the head behind the database. Reconciliations run in the same
/// task, so an outcome and the reconciler never race for one intent within a process.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    queue: mpsc::Sender<Pending>,
    reconcile: mpsc::Sender<ReconcileJob>,
    /// True while the writer takes appends; false for good once it is poisoned.
    writable: tokio::sync::watch::Receiver<bool>,
}

/// What signs and publishes the log's checkpoints (no signer: the tree is kept, unsigned).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogCtx {
    pub(crate) signer: Option<Arc<dyn LogSigner>>,
    pub(crate) publish: Option<tokio::sync::watch::Sender<String>>,
}

impl LogCtx {
    pub(crate) fn signer(&self) -> Option<&dyn LogSigner> {
        self.signer.as_deref()
    }

    /// Hands a committed checkpoint to the publisher (the latest one wins).
    pub(crate) fn published(&self, note: Option<String>) {
        if let (Some(tx), Some(note)) = (&self.publish, note) {
            let _ = tx.send(note);
        }
    }
}

/// Adds the records `start..next` inserted in `tx` to the Merkle tree and signs its new
/// head, inside the same transaction: the checkpoint commits with its records or not at all.
pub(crate) async fn extend_tree(
    tx: &mut sqlx::AnyConnection,
    log: &LogCtx,
    start: &Head,
    next: &Head,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    crate::merkle_log::extend(
        tx,
        log.signer(),
        start.next_sequence - 1,
        next.next_sequence - 1,
        now,
    )
    .await
}

pub(crate) fn unavailable() -> Status {
    Status::unavailable("the audit log could not be written; nothing was recorded")
}

impl Committer {
    pub(crate) fn start(db: Db, keys: Arc<Keyring>, head: Head, log: LogCtx) -> Committer {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let (reconcile, reconcile_rx) = mpsc::channel(4);
        let (writable_tx, writable) = tokio::sync::watch::channel(true);
        tokio::spawn(crate::committer::run(
            db,
            keys,
            head,
            log,
            rx,
            reconcile_rx,
            writable_tx,
        ));
        Committer {
            queue,
            reconcile,
            writable,
        }
    }

    /// Follows whether the writer takes appends (see [`Storage::audit_writable`]).
    pub(crate) fn writable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.writable.clone()
    }

    /// Queues `record` and waits for its commit. The wait is recorded whichever RPC
    /// carried the record (`Append` or a message of `AppendStream`).
    pub(crate) async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, Status> {
        let start = std::time::Instant::now();
        let (done, receipt) = oneshot::channel();
        self.queue
            .send(Pending { record, done })
            .await
            .map_err(|_| unavailable())?;
        let receipt = receipt.await.map_err(|_| unavailable())?;
        metrics::histogram!("warden_storage_audit_append_seconds")
            .record(start.elapsed().as_secs_f64());
        receipt
    }

    /// Closes every intent committed before `before_ms` that has no outcome yet.
    pub(crate) async fn reconcile(&self, before_ms: i64) -> Result<Reconciled, Status> {
        crate::reconcile::run(&self.reconcile, before_ms).await
    }

    /// A handle for a background task that must not keep the committer alive.
    pub(crate) fn reconcile_handle(&self) -> mpsc::WeakSender<ReconcileJob> {
        self.reconcile.downgrade()
    }
}

pub(crate) async fn reconcile_via(
    tx: &mpsc::Sender<ReconcileJob>,
    before_ms: i64,
) -> Result<Reconciled, Status> {
    let (done, report) = oneshot::channel();
    tx.send(ReconcileJob { before_ms, done })
        .await
        .map_err(|_| unavailable())?;
    report.await.map_err(|_| unavailable())?
}

/// The head to chain onto inside the transaction `tx`. Other storage replicas may append
/// to the same PostgreSQL chain: one appender at a time across all of them (an advisory
/// lock held until the transaction ends), continuing from the head the database holds.
/// On SQLite this process is the only writer and its committer's head is the truth.
pub(crate) async fn head_in(
    tx: &mut sqlx::AnyConnection,
    db: &Db,
    head: &Head,
) -> Result<Head, sqlx::Error> {
    if db.backend == crate::db::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
        Head::read(tx).await
    } else {
        Ok(head.clone())
    }
}

/// 32 random bytes: the salt that makes a record's commitment hiding.
fn salt() -> Vec<u8> {
    use aes_gcm::aead::OsRng;
    use aes_gcm::aead::rand_core::RngCore;
    let mut s = vec![0u8; 32];
    OsRng.fill_bytes(&mut s);
    s
}

/// Chains `record` onto `next` and inserts it; keeps the open-intent index in step (an
/// intent opens, the outcome naming it closes) in the same transaction.
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    keys: &Keyring,
    next: &mut Head,
    record: &mut AuditRecord,
    now: i64,
) -> Result<AuditReceipt, sqlx::Error> {
    let (stored, commitment) = chain(keys, next, record, now).await?;
    let row = NewRow {
        record,
        time_ms: now,
        stored,
        commitment,
    };
    crate::audit_batch::insert_rows(conn, std::slice::from_ref(&row)).await?;
    Ok(receipt(record))
}

/// Chains `record` onto `next`: sets what storage sets (id, sequence, time, link, salt),
/// seals it under its tenant's data key (open in memory: no database access) and hashes
/// it. Returns the sealed text and the commitment to insert with it.
pub(crate) async fn chain(
    keys: &Keyring,
    next: &mut Head,
    record: &mut AuditRecord,
    now: i64,
) -> Result<(String, String), sqlx::Error> {
    record.id = new_id();
    record.sequence = next.next_sequence;
    record.time = Some(ts(now));
    record.prev_hash.clone_from(&next.last_hash);
    record.hash.clear();
    record.salt = salt();
    let plain = record.encode_to_vec();
    let commitment = crate::audit_entry::commitment(&plain);
    let stored = keys
        .seal(&audit_scope(&record.tenant_id), &plain)
        .await
        .map_err(seal_error)?;
    record.hash = sealed_hash(
        record.sequence,
        &record.tenant_id,
        now,
        i64::from(record.decision),
        &record.prev_hash,
        &stored,
    );
    next.next_sequence += 1;
    next.last_hash.clone_from(&record.hash);
    Ok((stored, commitment))
}

pub(crate) fn receipt(record: &AuditRecord) -> AuditReceipt {
    AuditReceipt {
        id: record.id.clone(),
        sequence: record.sequence,
        hash: record.hash.clone(),
    }
}

impl Storage {
    /// Appends a record durably and returns its receipt (after its commit).
    pub async fn append_audit(&self, record: AuditRecord) -> Result<AuditReceipt, Status> {
        self.inner.audit.append(record).await
    }

    /// Follows whether the audit writer takes appends: true from the start, false for
    /// good from the moment a commit fails and poisons it (`durable.rs`), until storage
    /// restarts. A closed channel means the writer is gone.
    pub fn audit_writable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.audit.writable()
    }

    /// Begins the shutdown of long-lived append streams: each stops taking messages,
    /// answers the appends it took once they commit, and ends. Call it when the service
    /// begins to shut down, so that its graceful shutdown does not wait on callers that
    /// keep their stream open.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Health that follows the audit writer: `AuditLog` (and the overall status) answer
    /// NOT_SERVING once it is poisoned, so the replica is taken out and restarted.
    pub fn health_gate(&self) -> warden_rpc::HealthGate {
        warden_rpc::HealthGate {
            services: vec![AUDIT_LOG_SERVICE],
            healthy: self.audit_writable(),
        }
    }

    pub async fn query_audit(&self, q: &QueryRequest) -> Result<Vec<AuditRecord>, Status> {
        Ok(self
            .query_rows(q, 0)
            .await?
            .into_iter()
            .map(|r| r.record)
            .collect())
    }

    /// The records `q` asks for (none after sequence `up_to` unless it is 0), each with
    /// its encoding as sealed (None if its key was destroyed) and its leaf entry.
    pub(crate) async fn query_rows(
        &self,
        q: &QueryRequest,
        up_to: u64,
    ) -> Result<Vec<QueriedRow>, Status> {
        check_tenant(&q.tenant_id)?;
        let limit = match q.limit {
            0 => 100,
            n => n.min(1000),
        };
        let rows = sqlx::query(
            "SELECT sequence, id, tenant_id, time_ms, decision, commitment, record, hash FROM audit_log
             WHERE tenant_id = $1 AND sequence > $2 AND ($3 = 0 OR time_ms >= $3) AND ($4 = 0 OR time_ms < $4)
               AND ($5 = 0 OR decision = $5) AND ($7 = 0 OR sequence <= $7)
             ORDER BY sequence LIMIT $6",
        )
        .bind(&q.tenant_id)
        .bind(q.after_sequence as i64)
        .bind(ms_of(q.since.as_ref()).unwrap_or(0))
        .bind(ms_of(q.until.as_ref()).unwrap_or(0))
        .bind(i64::from(q.decision))
        .bind(i64::from(limit))
        .bind(up_to as i64)
        .fetch_all(&self.inner.db.pool)
        .await
        .map_err(DbError::from)?;
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            let entry = crate::merkle_log::entry_of(r).map_err(DbError::from)?;
            let text: String = r.try_get(6).map_err(DbError::from)?;
            let hash: String = r.try_get(7).map_err(DbError::from)?;
            let opened = open_plain(&self.inner.keys, &q.tenant_id, &text)
                .await
                .and_then(|plain| Ok((decode_plain(&plain, &hash)?, plain)));
            let (record, plain) = match opened {
                Ok((record, plain)) => (record, Some(plain)),
                // Crypto-shredded: what the clear columns say, and that the rest is gone.
                Err(s) if s.code() == tonic::Code::DataLoss => (
                    AuditRecord {
                        id: entry.id.clone(),
                        sequence: entry.sequence,
                        time: Some(ts(entry.time_ms)),
                        decision: entry.decision as i32,
                        tenant_id: q.tenant_id.clone(),
                        reason: "RECORD_SHREDDED".into(),
                        reason_message:
                            "sealed under a data key that was destroyed; its hash still verifies"
                                .into(),
                        hash,
                        ..Default::default()
                    },
                    None,
                ),
                Err(s) => return Err(s),
            };
            records.push(QueriedRow {
                record,
                plain,
                entry,
            });
        }
        Ok(records)
    }

    /// Walks the chain from `from` (inclusive) to `to` (inclusive, 0 = end) and reports
    /// the first record whose content, link or position is wrong.
    pub async fn verify_audit(&self, from: u64, to: u64) -> Result<VerifyResponse, Status> {
        let from = from.max(1);
        let mut expected_prev = if from == 1 {
            GENESIS.to_owned()
        } else {
            let row = sqlx::query("SELECT hash FROM audit_log WHERE sequence = $1")
                .bind((from - 1) as i64)
                .fetch_optional(&self.inner.db.pool)
                .await
                .map_err(DbError::from)?
                .ok_or_else(|| {
                    Status::invalid_argument(format!("record {} does not exist", from - 1))
                })?;
            row.try_get::<String, _>(0).map_err(DbError::from)?
        };
        let mut expected_seq = from;
        let mut checked = 0u64;
        let bad = |seq: u64, problem: String, checked: u64| VerifyResponse {
            ok: false,
            records_checked: checked,
            first_bad_sequence: seq,
            problem,
            head_hash: String::new(),
        };
        loop {
            let rows = sqlx::query(
                "SELECT sequence, record, hash, tenant_id, time_ms, decision FROM audit_log WHERE sequence >= $1 AND ($2 = 0 OR sequence <= $2) ORDER BY sequence LIMIT 1000",
            )
            .bind(expected_seq as i64)
            .bind(to as i64)
            .fetch_all(&self.inner.db.pool)
            .await
            .map_err(DbError::from)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq = row.try_get::<i64, _>(0).map_err(DbError::from)? as u64;
                if seq != expected_seq {
                    return Ok(bad(
                        expected_seq,
                        format!("record {expected_seq} is missing (next is {seq})"),
                        checked,
                    ));
                }
                let text: String = row.try_get(1).map_err(DbError::from)?;
                if text.starts_with("w2.") {
                    // Sealed: verified from the row as stored, with no key at all.
                    let hash: String = row.try_get(2).map_err(DbError::from)?;
                    let expected = sealed_hash(
                        seq,
                        &row.try_get::<String, _>(3).map_err(DbError::from)?,
                        row.try_get(4).map_err(DbError::from)?,
                        row.try_get(5).map_err(DbError::from)?,
                        &expected_prev,
                        &text,
                    );
                    if expected != hash {
                        return Ok(bad(
                            seq,
                            "content, columns or link do not match the record's hash (changed, moved, reordered, inserted or deleted)".into(),
                            checked,
                        ));
                    }
                    expected_prev = hash;
                    expected_seq += 1;
                    checked += 1;
                    continue;
                }
                let Ok(record) = decode_row_at(row, 1) else {
                    return Ok(bad(seq, "record cannot be decoded".into(), checked));
                };
                if record.sequence != seq {
                    return Ok(bad(
                        seq,
                        format!(
                            "record claims sequence {} but sits at {seq}",
                            record.sequence
                        ),
                        checked,
                    ));
                }
                if record.prev_hash != expected_prev {
                    return Ok(bad(
                        seq,
                        "link to the previous record is broken (reordered, inserted or deleted)"
                            .into(),
                        checked,
                    ));
                }
                if record_hash(&record) != record.hash {
                    return Ok(bad(
                        seq,
                        "content does not match its hash (a field was changed)".into(),
                        checked,
                    ));
                }
                expected_prev = record.hash.clone();
                expected_seq += 1;
                checked += 1;
            }
        }
        Ok(VerifyResponse {
            ok: true,
            records_checked: checked,
            first_bad_sequence: 0,
            problem: String::new(),
            head_hash: expected_prev,
        })
    }
}

/// What every append passes before it is queued, whichever RPC carried it: a record, a
/// valid tenant the caller's certificate covers, a kind its role may append, and the
/// `recorded_by` of that certificate (never of the request).
pub(crate) fn admit_append(
    auth: &warden_tls::Authorized,
    record: Option<AuditRecord>,
) -> Result<AuditRecord, Status> {
    let mut record = record.ok_or_else(|| Status::invalid_argument("record is required"))?;
    check_tenant(&record.tenant_id)?;
    let service = auth.for_tenant(&record.tenant_id)?;
    check_appended(&record, service.role)?;
    record.recorded_by = service.subject();
    Ok(record)
}

/// What a service may append: the gateway records calls (intents, outcomes, denials) and
/// admin actions; the agent service only admin actions (reviews are recorded by storage
/// itself). Every field is bounded, and the fields storage sets must be empty.
fn check_appended(record: &AuditRecord, service: Role) -> Result<(), Status> {
    let kind = AuditKind::try_from(record.kind)
        .ok()
        .filter(|k| *k != AuditKind::Unspecified)
        .ok_or_else(|| Status::invalid_argument("kind must be a known audit kind"))?;
    let allowed = match service {
        Role::Gateway => matches!(
            kind,
            AuditKind::Intent | AuditKind::Outcome | AuditKind::Denial | AuditKind::Admin
        ),
        Role::AgentService => kind == AuditKind::Admin,
        _ => false,
    };
    if !allowed {
        return Err(Status::permission_denied(format!(
            "{service} may not append {} records",
            kind.as_str_name()
        )));
    }
    if AuditDecision::try_from(record.decision).is_err() {
        return Err(Status::invalid_argument("decision is not a known value"));
    }
    if kind == AuditKind::Outcome && record.intent_id.is_empty() {
        return Err(Status::invalid_argument(
            "an OUTCOME record must name the INTENT it completes",
        ));
    }
    if !(record.id.is_empty()
        && record.sequence == 0
        && record.time.is_none()
        && record.prev_hash.is_empty()
        && record.hash.is_empty()
        && record.salt.is_empty()
        && record.recorded_by.is_empty())
    {
        return Err(Status::invalid_argument(
            "id, sequence, time, prev_hash, hash, salt and recorded_by are set by storage",
        ));
    }
    check_len("caller", &record.caller, 256)?;
    check_len("agent_run_id", &record.agent_run_id, 128)?;
    check_len("reason", &record.reason, 128)?;
    check_len("reason_message", &record.reason_message, 2048)?;
    check_len("provider", &record.provider, 128)?;
    check_len("model", &record.model, 256)?;
    check_len("outcome", &record.outcome, 128)?;
    check_len("intent_id", &record.intent_id, 64)?;
    if record.attempts.len() > 64 || record.data_types.len() > 64 {
        return Err(Status::invalid_argument(
            "at most 64 attempts and 64 data types per record",
        ));
    }
    if record.encoded_len() > 64 * 1024 {
        return Err(Status::invalid_argument(
            "an audit record is at most 64 KiB; it holds counts and ids, never payload",
        ));
    }
    Ok(())
}

/// One record a query found.
pub(crate) struct QueriedRow {
    pub(crate) record: AuditRecord,
    /// Its protobuf encoding as sealed (None: its data key was destroyed).
    pub(crate) plain: Option<Vec<u8>>,
    pub(crate) entry: crate::audit_entry::LeafEntry,
}

/// A stored record of `tenant_id`: opened under the tenant's data key (version 2) or
/// decoded as written before sealing (version 1); `hash` is its stored hash.
pub(crate) async fn open_record(
    keys: &Keyring,
    tenant_id: &str,
    text: &str,
    hash: &str,
) -> Result<AuditRecord, Status> {
    decode_plain(&open_plain(keys, tenant_id, text).await?, hash)
}

/// The protobuf encoding of a stored record.
async fn open_plain(keys: &Keyring, tenant_id: &str, text: &str) -> Result<Vec<u8>, Status> {
    if text.starts_with("w2.") {
        keys.open_value(&audit_scope(tenant_id), text).await
    } else {
        Ok(hex::decode(text).map_err(|_| DbError::Corrupt("audit record".into()))?)
    }
}

fn decode_plain(bytes: &[u8], hash: &str) -> Result<AuditRecord, Status> {
    let mut record =
        AuditRecord::decode(bytes).map_err(|_| DbError::Corrupt("audit record".into()))?;
    record.hash = hash.to_owned();
    Ok(record)
}

/// Decodes the record at column `at` with its stored hash at `at + 1`.
fn decode_row_at(row: &sqlx::any::AnyRow, at: usize) -> Result<AuditRecord, DbError> {
    let text: String = row.try_get(at)?;
    let hash: String = row.try_get(at + 1)?;
    let bytes = hex::decode(&text).map_err(|_| DbError::Corrupt("audit record".into()))?;
    let mut record = AuditRecord::decode(bytes.as_slice())
        .map_err(|_| DbError::Corrupt("audit record".into()))?;
    record.hash = hash;
    Ok(record)
}

#[tonic::async_trait]
impl AuditLog for Storage {
    async fn append(&self, req: Request<AppendRequest>) -> Result<Response<AuditReceipt>, Status> {
        let auth = authorize(&req, "warden.storage.v1.AuditLog/Append")?;
        let record = admit_append(&auth, req.into_inner().record)?;
        Ok(Response::new(self.append_audit(record).await?))
    }

    type AppendStreamStream = crate::audit_stream::AnswerStream;

    async fn append_stream(
        &self,
        req: Request<tonic::Streaming<st::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let auth = authorize(&req, "warden.storage.v1.AuditLog/AppendStream")?;
        Ok(Response::new(crate::audit_stream::serve(
            self.clone(),
            auth,
            req.into_inner(),
        )))
    }

    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/Query")?.platform()?;
        let q = req.get_ref();
        if q.with_proofs {
            return Ok(Response::new(self.query_with_proofs(q).await?));
        }
        let records = self.query_audit(q).await?;
        Ok(Response::new(QueryResponse {
            records,
            proofs: Vec::new(),
        }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<st::GetCheckpointRequest>,
    ) -> Result<Response<st::Checkpoint>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/GetCheckpoint")?.platform()?;
        Ok(Response::new(
            self.checkpoint(req.get_ref().tree_size).await?,
        ))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<st::GetInclusionProofRequest>,
    ) -> Result<Response<st::InclusionProof>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/GetInclusionProof")?.platform()?;
        Ok(Response::new(self.inclusion_proof(req.get_ref()).await?))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<st::GetConsistencyProofRequest>,
    ) -> Result<Response<st::ConsistencyProof>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/GetConsistencyProof")?.platform()?;
        let r = req.get_ref();
        Ok(Response::new(
            self.consistency_proof(r.old_size, r.new_size).await?,
        ))
    }

    type ExportTilesStream = crate::audit_proofs::TileStream;

    async fn export_tiles(
        &self,
        req: Request<st::ExportTilesRequest>,
    ) -> Result<Response<Self::ExportTilesStream>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/ExportTiles")?.platform()?;
        Ok(Response::new(self.export_tiles().await?))
    }

    async fn verify(
        &self,
        req: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        authorize(&req, "warden.storage.v1.AuditLog/Verify")?.platform()?;
        let r = req.get_ref();
        Ok(Response::new(
            self.verify_audit(r.from_sequence, r.to_sequence).await?,
        ))
    }
}
