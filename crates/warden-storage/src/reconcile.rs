//! Closing intents that will never get an outcome.
//!
//! A gateway writes an intent before anything leaves and the outcome after the call. If
//! it crashes in between, or storage is down when the outcome is appended, the intent
//! stays open. The reconciler appends, for each intent left open for longer than
//! `reconcile_after`, an OUTCOME record with outcome `unknown` linked to it, and one
//! RECONCILE record per tenant naming how many and which intents it closed, all in one
//! transaction through the committer (so the chain stays one chain).
//!
//! **Why the age, and only the age, decides.** Storage cannot see whether a call is still
//! running on some gateway. "Committed before this storage process started" proves
//! nothing: gateways outlive a storage restart and append their outcomes once it is back.
//! What bounds a call is its own lifetime: a unary call ends within the gateway's request
//! timeout (300 s by default, and the routing deadline inside it), and a stream that
//! relays nothing for the idle timeout is ended (a stalled provider or a reader that
//! stopped reading). So `reconcile_after` (1 hour by default) must exceed the longest
//! call the deployment runs; an intent older than that has lost its outcome for good.
//! Ages are measured on storage's clock against the intent's commit time, so no gateway
//! clock is trusted. Should a real outcome still arrive later, it is appended as usual
//! and linked to the same intent: the log then shows both, in order.
//!
//! It runs once when storage starts (before serving) and then every `reconcile_every`.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::mpsc;
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};

use crate::audit::{
    Head, LogCtx, ReconcileJob, extend_tree, head_in, insert, open_record, reconcile_via,
};
use crate::durable::CommitError;
use crate::keyring::Keyring;
use crate::util::now_ms;
use crate::{Db, DbError};

/// Who the reconciler's records name as their caller.
pub const RECONCILER: &str = "warden-storage/reconciler";

/// Most intents closed in one transaction (a larger backlog takes several).
const MAX_PER_RUN: i64 = 500;

/// Most intent ids named in one RECONCILE record (its message stays short).
const IDS_PER_RECORD: usize = 40;

/// When intents without an outcome are closed.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileOptions {
    /// An intent open for longer than this is closed as `unknown`. Must exceed the
    /// longest call any gateway runs (see the module docs).
    pub reconcile_after: Duration,
    /// How often to look again after the run at start.
    pub reconcile_every: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            reconcile_after: Duration::from_secs(3600),
            reconcile_every: Duration::from_secs(300),
        }
    }
}

/// What one reconciliation closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The intents closed, oldest first.
    pub closed: Vec<String>,
    /// RECONCILE records written (one per tenant and per 40 intents).
    pub reconcile_records: u64,
}

/// Closes every intent committed before `before_ms` that has no outcome yet (in batches).
pub(crate) async fn run(
    tx: &mpsc::Sender<ReconcileJob>,
    before_ms: i64,
) -> Result<Reconciled, tonic::Status> {
    let mut all = Reconciled::default();
    loop {
        let r = reconcile_via(tx, before_ms).await?;
        let n = r.closed.len();
        all.closed.extend(r.closed);
        all.reconcile_records += r.reconcile_records;
        if (n as i64) < MAX_PER_RUN {
            return Ok(all);
        }
    }
}

/// The run at start, then one every `every`, until the committer is gone.
pub(crate) fn spawn_periodic(handle: mpsc::WeakSender<ReconcileJob>, opts: ReconcileOptions) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(opts.reconcile_every).await;
            let Some(tx) = handle.upgrade() else { return };
            report(run(&tx, cutoff(opts.reconcile_after)).await);
        }
    });
}

pub(crate) fn cutoff(after: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn report(r: Result<Reconciled, tonic::Status>) {
    match r {
        Ok(r) if r.closed.is_empty() => {}
        Ok(r) => {
            metrics::counter!("warden_storage_audit_intents_reconciled_total")
                .increment(r.closed.len() as u64);
            tracing::warn!(
                closed = r.closed.len(),
                "closed audit intents left without an outcome as unknown"
            );
        }
        Err(e) => tracing::error!(code = ?e.code(), "audit reconciliation failed"),
    }
}

/// In one transaction: an `unknown` outcome for each open intent committed before
/// `before_ms`, then a RECONCILE record per tenant naming them. Runs in the committer.
pub(crate) async fn close_pending(
    db: &Db,
    keys: &Keyring,
    log: &LogCtx,
    head: &Head,
    before_ms: i64,
) -> Result<(Head, Reconciled, Option<String>), CommitError> {
    // Each tenant's data key is open before the transaction (see `audit::commit`).
    let tenants: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM audit_open_intents WHERE time_ms < $1")
            .bind(before_ms)
            .fetch_all(&db.pool)
            .await?;
    for t in &tenants {
        keys.prepare(&crate::audit::audit_scope(t))
            .await
            .map_err(|s| {
                DbError::Corrupt(format!("no data key for tenant {t}: {}", s.message()))
            })?;
    }
    let mut tx = db.begin_write().await?;
    let start = head_in(&mut tx, db, head).await?;
    let mut next = start.clone();
    let rows = sqlx::query(
        "SELECT o.intent_id, o.tenant_id, o.time_ms, a.record FROM audit_open_intents o
         LEFT JOIN audit_log a ON a.id = o.intent_id
         WHERE o.time_ms < $1 ORDER BY o.time_ms, a.sequence LIMIT $2",
    )
    .bind(before_ms)
    .bind(MAX_PER_RUN)
    .fetch_all(&mut *tx)
    .await?;
    let now = now_ms();
    let mut closed = Vec::with_capacity(rows.len());
    let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        let intent_id: String = row.try_get(0)?;
        let tenant_id: String = row.try_get(1)?;
        let opened_ms: i64 = row.try_get(2)?;
        // The intent itself, for what the outcome repeats (caller, purpose, run, types).
        // A record that cannot be read (tampered) still gets closed; verify names it.
        // A record whose tenant was shredded cannot be opened: the outcome says less.
        let intent = match row.try_get::<Option<String>, _>(3)? {
            Some(text) => open_record(keys, &tenant_id, &text, "")
                .await
                .unwrap_or_default(),
            None => AuditRecord::default(),
        };
        let mut outcome = AuditRecord {
            kind: AuditKind::Outcome as i32,
            tenant_id: tenant_id.clone(),
            caller: intent.caller,
            purpose: intent.purpose,
            agent_run_id: intent.agent_run_id,
            decision: AuditDecision::Allowed as i32,
            reason: "AUDIT_RECONCILED".into(),
            reason_message: format!(
                "no outcome was recorded within {} s; closed by storage's reconciler, the call's result is unknown",
                (now - opened_ms) / 1000
            ),
            data_types: intent.data_types,
            minimization: intent.minimization,
            outcome: "unknown".into(),
            intent_id: intent_id.clone(),
            ..Default::default()
        };
        insert(&mut tx, keys, &mut next, &mut outcome, now).await?;
        by_tenant
            .entry(tenant_id)
            .or_default()
            .push(intent_id.clone());
        closed.push(intent_id);
    }
    let mut reconcile_records = 0;
    for (tenant_id, ids) in by_tenant {
        for chunk in ids.chunks(IDS_PER_RECORD) {
            let mut record = AuditRecord {
                kind: AuditKind::Reconcile as i32,
                tenant_id: tenant_id.clone(),
                caller: RECONCILER.into(),
                decision: AuditDecision::Unspecified as i32,
                reason: "AUDIT_RECONCILE".into(),
                reason_message: format!(
                    "closed {} intent(s) left without an outcome as unknown: {}",
                    chunk.len(),
                    chunk.join(", ")
                ),
                outcome: "closed".into(),
                ..Default::default()
            };
            insert(&mut tx, keys, &mut next, &mut record, now).await?;
            reconcile_records += 1;
        }
    }
    let note = extend_tree(&mut tx, log, &start, &next, now).await?;
    crate::durable::commit(tx).await?;
    Ok((
        next,
        Reconciled {
            closed,
            reconcile_records,
        },
        note,
    ))
}

#[cfg(test)]
mod tests;
