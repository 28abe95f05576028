//! What the storage crate's own tests share: a storage on a fresh SQLite file, audit
//! records, raw SQL, and who the log holds.

use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::storage::v1::QueryRequest;

use std::sync::Arc;

use crate::log_key::{KeyFileSigner, LogSigner};
use crate::{Db, MemoryKeyProvider, Storage, StorageOptions};

/// The origin of the test log key ([`log_signer`]).
pub(crate) const LOG_ORIGIN: &str = "t.example/log";

/// A log signer for [`LOG_ORIGIN`] from a fixed seed.
pub(crate) fn log_signer() -> Arc<dyn LogSigner> {
    let key = warden_merkle::SignerKey::from_seed(LOG_ORIGIN, &[9; 32]).expect("seed");
    Arc::new(KeyFileSigner::from_key(LOG_ORIGIN, key).expect("signer"))
}

/// Storage on the database at `url` with the data keys of `keys` and [`log_signer`]: a
/// replica, or the same storage again after a restart.
pub(crate) async fn open_signed(url: &str, keys: &Arc<MemoryKeyProvider>) -> Storage {
    let opts = StorageOptions {
        log_signer: Some(log_signer()),
        ..StorageOptions::default()
    };
    Storage::open_with(Db::connect(url).await.expect("connect"), keys.clone(), opts)
        .await
        .expect("open storage")
}

/// Storage on `a.db` in `dir`, with keys of its own.
pub(crate) async fn open_sqlite(dir: &tempfile::TempDir) -> Storage {
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    Storage::open(
        Db::connect(&url).await.expect("connect"),
        Arc::new(MemoryKeyProvider::new()),
    )
    .await
    .expect("open storage")
}

/// An allowed INTENT of `tenant` by `caller`.
pub(crate) fn intent(tenant: &str, caller: &str) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::Intent as i32,
        tenant_id: tenant.into(),
        caller: caller.into(),
        decision: AuditDecision::Allowed as i32,
        ..Default::default()
    }
}

/// Makes every COMMIT that inserted an audit record fail at COMMIT, not before (a
/// deferred foreign key that a trigger on `audit_log` violates), the way a failed fsync
/// of the write-ahead log does.
pub(crate) const FAIL_COMMITS: &str = "
    CREATE TABLE trap_target (id TEXT PRIMARY KEY);
    CREATE TABLE trap (id TEXT REFERENCES trap_target (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TRIGGER trap_commit AFTER INSERT ON audit_log BEGIN INSERT INTO trap VALUES ('missing'); END;";

/// Runs `sql` (several statements) on the storage's own pool.
pub(crate) async fn exec(s: &Storage, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&s.inner.db.pool)
        .await
        .expect("test SQL");
}

/// The callers of `tenant`'s audit records, in the log's order.
pub(crate) async fn callers(s: &Storage, tenant: &str) -> Vec<String> {
    s.query_audit(&QueryRequest {
        tenant_id: tenant.into(),
        limit: 1000,
        ..Default::default()
    })
    .await
    .expect("query the audit log")
    .into_iter()
    .map(|r| r.caller)
    .collect()
}
