//! The audit committer: the one task that owns the chain's head and turns appends into
//! commits (group commit), on SQLite pipelined with the writer thread.
//!
//! Why pipelined: on SQLite this process is the only writer and the committer's head is
//! the truth, so a record can be chained (id, sequence and link set, sealed, hashed) the
//! moment it arrives, while the previous commit is still on the writer thread
//! (`audit_sqlite.rs`). When that commit returns, the records that arrived meanwhile are
//! rows already and the next transaction starts at once: chaining no longer sits between
//! two commits, and a record that arrives mid-commit waits for that commit and its own,
//! nothing else. Nothing is acknowledged before its own commit returns. If a commit is
//! rolled back, the records chained behind it are chained again from the head the
//! database holds; if it fails, they are refused with every later append (`durable.rs`).
//!
//! On PostgreSQL other storage replicas may append to the same log, so the head is read
//! inside the transaction under an advisory lock (`audit_pg.rs`) and records are chained
//! there, one commit at a time.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use warden_merkle::tiles::SubtreeMemo;

use crate::audit::{Head, LogCtx, MAX_BATCH, Pending, ReconcileJob, audit_scope, seal_error};
use crate::audit_sqlite::{Answer, Row, SqliteWriter};
use crate::durable::{self, CommitError};
use crate::keyring::Keyring;
use crate::util::now_ms;
use crate::wal_checkpoint::WalCheckpoints;
use crate::{Db, DbError};

/// What the committer keeps whichever the backend.
struct Shared {
    db: Db,
    keys: Arc<Keyring>,
    log: LogCtx,
    /// True while the writer takes appends; false for good once it is poisoned.
    writable: watch::Sender<bool>,
    /// Set by the first failed commit; from then on every append is refused.
    poisoned: Option<String>,
}

/// Runs the committer until every handle on its queue is gone.
pub(crate) async fn run(
    db: Db,
    keys: Arc<Keyring>,
    head: Head,
    log: LogCtx,
    rx: mpsc::Receiver<Pending>,
    reconcile_rx: mpsc::Receiver<ReconcileJob>,
    writable: watch::Sender<bool>,
) {
    let mut shared = Shared {
        db,
        keys,
        log,
        writable,
        poisoned: None,
    };
    match shared.db.backend {
        crate::db::Backend::Sqlite => match SqliteWriter::start(&shared.db) {
            Ok(writer) => run_sqlite(shared, &writer, head, rx, reconcile_rx).await,
            Err(e) => {
                shared.poison(format!("the audit writer could not start: {e}"), 0);
                run_postgres(shared, head, rx, reconcile_rx).await;
            }
        },
        crate::db::Backend::Postgres => run_postgres(shared, head, rx, reconcile_rx).await,
    }
}

impl Shared {
    /// Stops the writer for good (until restart): see `durable.rs` for why it never
    /// retries. Storage's health follows (`writable`), before any caller hears of it.
    fn poison(&mut self, reason: String, records: usize) {
        tracing::error!(
            error = %reason,
            records,
            "an audit commit failed; the audit log refuses every append until storage restarts and `warden audit verify --database` passes"
        );
        metrics::gauge!("warden_storage_audit_poisoned").set(1.0);
        self.writable.send_replace(false);
        self.poisoned = Some(reason);
    }

    /// Tells every append of `batch` why it was refused (poisoned: nothing was written).
    fn refuse_poisoned(&self, batch: impl IntoIterator<Item = Pending>) {
        let reason = self.poisoned.as_deref().unwrap_or("the writer stopped");
        refuse(batch, || durable::poisoned(reason));
    }

    /// A reconciliation, between two commits (`reconcile.rs`).
    async fn reconcile(&mut self, head: &mut Head, job: ReconcileJob) {
        if let Some(reason) = &self.poisoned {
            let _ = job.done.send(Err(durable::poisoned(reason)));
            return;
        }
        match crate::reconcile::close_pending(&self.db, &self.keys, &self.log, head, job.before_ms)
            .await
        {
            Ok((next, report, note)) => {
                *head = next;
                self.log.published(note);
                let _ = job.done.send(Ok(report));
            }
            Err(CommitError::RolledBack(e)) => {
                tracing::error!(error = %e, "audit reconciliation failed");
                let _ = job.done.send(Err(crate::audit::unavailable()));
                *head = reload(&self.db, head).await;
            }
            Err(CommitError::Durability(reason)) => {
                self.poison(reason, 0);
                let _ = job.done.send(Err(durable::outcome_unknown()));
            }
        }
    }

    /// Every tenant of `batch` has its audit data key (and it is open) before a record
    /// of it is sealed: making one is a write of its own.
    async fn prepare_keys(&self, batch: &[Pending]) -> Result<(), CommitError> {
        let tenants: std::collections::BTreeSet<&str> =
            batch.iter().map(|p| p.record.tenant_id.as_str()).collect();
        for t in tenants {
            self.keys
                .prepare(&audit_scope(t))
                .await
                .map_err(seal_error)?;
        }
        Ok(())
    }
}

fn refuse(batch: impl IntoIterator<Item = Pending>, status: impl Fn() -> Status) {
    for p in batch {
        let _ = p.done.send(Err(status()));
    }
}

fn acknowledge(batch: impl IntoIterator<Item = Pending>) {
    for p in batch {
        let receipt = crate::audit::receipt(&p.record);
        let _ = p.done.send(Ok(receipt));
    }
}

/// After a commit that was rolled back: start again from what the database holds, so
/// the chain never forks.
async fn reload(db: &Db, head: &Head) -> Head {
    match Head::load(db).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "audit head could not be reloaded");
            head.clone()
        }
    }
}

/// A commit on the SQLite writer's thread, and the appends it acknowledges.
struct Flight {
    batch: Vec<Pending>,
    /// The head once it commits.
    next: Head,
    answer: oneshot::Receiver<Answer>,
}

/// Records chained onto `tip` (the head after the commit in flight), waiting for it.
struct Staged {
    batch: Vec<Pending>,
    rows: Vec<Row>,
    tip: Head,
}

impl Staged {
    /// Chains `incoming` onto the tip; an append whose record cannot be sealed is
    /// refused alone, and the tip stays as it was.
    async fn chain(&mut self, shared: &Shared, incoming: &mut Vec<Pending>) {
        if let Err(e) = shared.prepare_keys(incoming).await {
            tracing::error!(error = %e, records = incoming.len(), "audit append failed");
            refuse(incoming.drain(..), crate::audit::unavailable);
            return;
        }
        let now = now_ms();
        for mut p in incoming.drain(..) {
            match crate::audit::chain(&shared.keys, &mut self.tip, &mut p.record, now).await {
                Ok((stored, commitment)) => {
                    self.rows.push(Row::new(&p.record, now, stored, commitment));
                    self.batch.push(p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit append failed");
                    let _ = p.done.send(Err(crate::audit::unavailable()));
                }
            }
        }
    }

    /// Chains everything staged again, onto `head` (after a rollback or a
    /// reconciliation moved the head under it).
    async fn rechain(&mut self, shared: &Shared, head: &Head) {
        self.rows.clear();
        self.tip = head.clone();
        let mut again = std::mem::take(&mut self.batch);
        self.chain(shared, &mut again).await;
    }

    /// Refuses everything staged: the writer is poisoned, and none of it was written.
    fn refuse_poisoned(&mut self, shared: &Shared) {
        self.rows.clear();
        shared.refuse_poisoned(self.batch.drain(..));
    }

    /// Hands everything staged to the writer as one commit onto `head`.
    fn launch(&mut self, shared: &Shared, writer: &SqliteWriter, head: &Head) -> Option<Flight> {
        if self.batch.is_empty() {
            return None;
        }
        metrics::histogram!("warden_storage_audit_batch_records").record(self.batch.len() as f64);
        let rows = std::mem::take(&mut self.rows);
        let answer = writer.submit(
            rows,
            head.next_sequence - 1,
            shared.log.signer.clone(),
            now_ms(),
        );
        Some(Flight {
            batch: std::mem::take(&mut self.batch),
            next: self.tip.clone(),
            answer,
        })
    }
}

/// SQLite: chain while the previous commit runs; commit as soon as it returns.
async fn run_sqlite(
    mut shared: Shared,
    writer: &SqliteWriter,
    mut head: Head,
    mut rx: mpsc::Receiver<Pending>,
    mut reconcile_rx: mpsc::Receiver<ReconcileJob>,
) {
    // WAL checkpoints on another connection, after acknowledgements.
    let mut wal = WalCheckpoints::start(&shared.db);
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    let mut staged = Staged {
        batch: Vec::with_capacity(MAX_BATCH),
        rows: Vec::with_capacity(MAX_BATCH),
        tip: head.clone(),
    };
    // Invariant: with no commit in flight nothing is staged (it would have been launched).
    let mut flight: Option<Flight> = None;
    // A reconciliation that arrived mid-commit runs as soon as the commit returns.
    let mut reconcile: Option<ReconcileJob> = None;
    loop {
        tokio::select! {
            biased;
            Some(reason) = async { wal.as_mut()?.failed.recv().await }, if shared.poisoned.is_none() => {
                shared.poison(reason, 0);
                staged.refuse_poisoned(&shared);
            }
            answer = async {
                match flight.as_mut() {
                    Some(f) => (&mut f.answer).await,
                    None => std::future::pending().await,
                }
            }, if flight.is_some() => {
                let Some(f) = flight.take() else { continue };
                // The thread went away mid-commit (it panicked): the outcome is unknown.
                let answer = answer.unwrap_or_else(|_| Err(crate::audit_sqlite::gone()));
                match answer {
                    Ok(note) => {
                        head = f.next;
                        shared.log.published(note);
                        acknowledge(f.batch);
                        if let Some(wal) = wal.as_mut() {
                            wal.committed();
                        }
                    }
                    Err(CommitError::RolledBack(e)) => {
                        tracing::error!(error = %e, records = f.batch.len(), "audit append failed");
                        refuse(f.batch, crate::audit::unavailable);
                        head = reload(&shared.db, &head).await;
                        staged.rechain(&shared, &head).await;
                    }
                    Err(CommitError::Durability(reason)) => {
                        shared.poison(reason, f.batch.len());
                        refuse(f.batch, durable::outcome_unknown);
                    }
                }
                if shared.poisoned.is_some() {
                    staged.refuse_poisoned(&shared);
                    if let Some(job) = reconcile.take() {
                        shared.reconcile(&mut head, job).await;
                    }
                    continue;
                }
                if let Some(job) = reconcile.take() {
                    shared.reconcile(&mut head, job).await;
                    staged.rechain(&shared, &head).await;
                }
                flight = staged.launch(&shared, writer, &head);
            }
            n = rx.recv_many(&mut incoming, MAX_BATCH - staged.batch.len()), if staged.batch.len() < MAX_BATCH => {
                if n == 0 {
                    break;
                }
                if shared.poisoned.is_some() {
                    shared.refuse_poisoned(incoming.drain(..));
                    continue;
                }
                staged.chain(&shared, &mut incoming).await;
                if flight.is_none() {
                    flight = staged.launch(&shared, writer, &head);
                }
            }
            Some(job) = reconcile_rx.recv(), if reconcile.is_none() => {
                if flight.is_some() {
                    reconcile = Some(job);
                } else {
                    shared.reconcile(&mut head, job).await;
                    staged.tip = head.clone();
                }
            }
        }
    }
}

/// PostgreSQL (and a SQLite writer that could not start): one commit at a time.
async fn run_postgres(
    mut shared: Shared,
    mut head: Head,
    mut rx: mpsc::Receiver<Pending>,
    mut reconcile_rx: mpsc::Receiver<ReconcileJob>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The committer's own connection: no pool checkout (and its ping) in every commit.
    let mut conn: Option<PoolConnection<sqlx::Any>> = None;
    // Subtree hashes of earlier commits' tiles, checked against each read-back.
    let mut memo = SubtreeMemo::default();
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
                if shared.poisoned.is_some() {
                    shared.refuse_poisoned(batch.drain(..));
                    continue;
                }
                metrics::histogram!("warden_storage_audit_batch_records").record(batch.len() as f64);
                match commit_postgres(&shared, &mut conn, &head, &mut batch, &mut memo).await {
                    Ok((next, note)) => {
                        head = next;
                        shared.log.published(note);
                        acknowledge(batch.drain(..));
                    }
                    Err(CommitError::RolledBack(e)) => {
                        tracing::error!(error = %e, records = batch.len(), "audit append failed");
                        refuse(batch.drain(..), crate::audit::unavailable);
                        // The next commit starts on a fresh connection.
                        if let Some(c) = conn.take() {
                            let _ = c.close().await;
                        }
                        head = reload(&shared.db, &head).await;
                    }
                    Err(CommitError::Durability(reason)) => {
                        shared.poison(reason, batch.len());
                        refuse(batch.drain(..), durable::outcome_unknown);
                    }
                }
            }
            Some(job) = reconcile_rx.recv() => shared.reconcile(&mut head, job).await,
        }
    }
}

/// Chains and inserts `batch` in one transaction with the checkpoint that covers it, on
/// the committer's own connection (`conn`, taken from the pool when there is none;
/// `audit_pg.rs`); returns the new head and the checkpoint.
async fn commit_postgres(
    shared: &Shared,
    conn: &mut Option<PoolConnection<sqlx::Any>>,
    head: &Head,
    batch: &mut [Pending],
    memo: &mut SubtreeMemo,
) -> Result<(Head, Option<String>), CommitError> {
    shared.prepare_keys(batch).await?;
    if conn.is_none() {
        *conn = Some(shared.db.pool.acquire().await?);
    }
    let Some(conn) = conn.as_mut() else {
        return Err(CommitError::RolledBack(DbError::Corrupt(
            "the audit writer has no connection".into(),
        )));
    };
    crate::audit_pg::commit(conn, &shared.keys, &shared.log, head, batch, memo).await
}

#[cfg(test)]
mod tests;
