#![allow(clippy::unwrap_used)]

use super::*;
use std::sync::Arc;
use warden_proto::common::v1::{AuditKind, AuditRecord};

use crate::MemoryKeyProvider;
use crate::test_support::{LOG_ORIGIN as ORIGIN, log_signer as signer, open_signed as storage};

/// Every row of the four audit tables, as text, in key order (the tiles' hashes as
/// hex, whether stored as bytes or as hex text).
async fn audit_rows(db: &Db) -> Vec<String> {
    let mut all = Vec::new();
    for (table, order) in [
        ("audit_log", "sequence"),
        ("audit_tiles", "level, idx"),
        ("audit_checkpoints", "tree_size"),
        ("audit_open_intents", "intent_id"),
    ] {
        let columns = AUDIT_TABLES
            .iter()
            .find(|t| t.name == table)
            .unwrap()
            .column_names()
            .replace(", ", " || '|' || ")
            .replace(
                "hashes",
                "CASE WHEN typeof(hashes) = 'blob' THEN lower(hex(hashes)) ELSE hashes END",
            );
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT '{table}|' || {columns} FROM {table} ORDER BY {order}"
        ))
        .fetch_all(&db.pool)
        .await
        .unwrap();
        all.extend(rows);
    }
    all
}

/// The log of `records` records verifies (`verify_audit`, `verify_log`) and takes the
/// next append as record `records + 1`, which verifies too.
async fn verifies_and_goes_on(s: &crate::Storage, records: u64) {
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok && v.records_checked == records, "{v:?}");
    let next = s
        .append_audit(crate::test_support::intent("acme", "after"))
        .await
        .unwrap();
    assert_eq!(next.sequence, records + 1);
    let report = crate::verify_log(&s.inner.db, &signer().verifier(), ORIGIN, &[], &|_, _| {})
        .await
        .unwrap();
    assert_eq!((report.records, report.first_bad), (records + 1, None));
}

/// `(create statement, root page)` of each audit table.
async fn audit_table_forms(db: &Db) -> Vec<(String, i64)> {
    let mut forms = Vec::new();
    for t in &AUDIT_TABLES {
        let row: (String, i64) = sqlx::query_as(
            "SELECT sql, rootpage FROM sqlite_master WHERE type = 'table' AND name = $1",
        )
        .bind(t.name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        forms.push(row);
    }
    forms
}

/// A SQLite database written before the audit tables had their SQLite form (their
/// keys a separate index, the tiles' hashes hex text) is rebuilt in it once, at
/// start: every record, tile, checkpoint and open intent is still there byte for
/// byte, the log verifies, appends go on from the same head, and the next start
/// leaves the tables as they are.
#[tokio::test]
async fn sqlite_audit_tables_from_before_their_sqlite_form_are_rebuilt_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let keys = Arc::new(MemoryKeyProvider::new());
    let s = storage(&url, &keys).await;
    let mut intents = Vec::new();
    for i in 0..30 {
        let r = s
            .append_audit(crate::test_support::intent("acme", &format!("c{i}")))
            .await
            .unwrap();
        intents.push(r.id);
    }
    for id in &intents[..10] {
        let outcome = AuditRecord {
            kind: AuditKind::Outcome as i32,
            intent_id: id.clone(),
            ..crate::test_support::intent("acme", "c")
        };
        s.append_audit(outcome).await.unwrap();
    }
    drop(s);

    // The tables as the previous version created them.
    let db = Db::connect(&url).await.unwrap();
    let before = audit_rows(&db).await;
    let count = |rows: &[String], table: &str| {
        rows.iter()
            .filter(|r| r.starts_with(&format!("{table}|")))
            .count()
    };
    assert_eq!(count(&before, "audit_log"), 40);
    assert!(count(&before, "audit_checkpoints") > 1);
    assert_eq!(count(&before, "audit_open_intents"), 20);
    assert!(count(&before, "audit_tiles") > 0);
    sqlx::raw_sql(
        "BEGIN IMMEDIATE;
         CREATE TABLE old_log (sequence BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            tenant_id TEXT NOT NULL, time_ms BIGINT NOT NULL, decision BIGINT NOT NULL,
            record TEXT NOT NULL, hash TEXT NOT NULL, commitment TEXT NOT NULL DEFAULT '');
         INSERT INTO old_log SELECT * FROM audit_log;
         DROP TABLE audit_log;
         ALTER TABLE old_log RENAME TO audit_log;
         CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, time_ms);
         CREATE TABLE old_tiles (level BIGINT NOT NULL, idx BIGINT NOT NULL,
            hashes TEXT NOT NULL, PRIMARY KEY (level, idx));
         INSERT INTO old_tiles SELECT level, idx, lower(hex(hashes)) FROM audit_tiles;
         DROP TABLE audit_tiles;
         ALTER TABLE old_tiles RENAME TO audit_tiles;
         CREATE TABLE old_cp (tree_size BIGINT PRIMARY KEY, note TEXT NOT NULL,
            time_ms BIGINT NOT NULL);
         INSERT INTO old_cp SELECT * FROM audit_checkpoints;
         DROP TABLE audit_checkpoints;
         ALTER TABLE old_cp RENAME TO audit_checkpoints;
         CREATE TABLE old_open (intent_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
            time_ms BIGINT NOT NULL);
         INSERT INTO old_open SELECT * FROM audit_open_intents;
         DROP TABLE audit_open_intents;
         ALTER TABLE old_open RENAME TO audit_open_intents;
         CREATE INDEX audit_open_intents_time ON audit_open_intents (time_ms);
         COMMIT;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let old = audit_table_forms(&db).await;
    for ((sql, _), t) in old.iter().zip(&AUDIT_TABLES) {
        assert!(!t.sqlite_form_of(sql), "{sql}");
    }
    assert_eq!(audit_rows(&db).await, before);

    let s = storage(&url, &keys).await;
    let rebuilt = audit_table_forms(&s.inner.db).await;
    for ((sql, _), t) in rebuilt.iter().zip(&AUDIT_TABLES) {
        assert!(t.sqlite_form_of(sql), "{sql}");
    }
    assert_eq!(audit_rows(&s.inner.db).await, before);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'audit_%'
         AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name",
    )
    .fetch_all(&s.inner.db.pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        ["audit_log_tenant_time", "audit_open_intents_time"]
    );
    verifies_and_goes_on(&s, 40).await;
    drop(s);

    // Once: a later start copies nothing (the root pages stay where they were).
    let s = storage(&url, &keys).await;
    assert_eq!(audit_table_forms(&s.inner.db).await, rebuilt);
    let rows = audit_rows(&s.inner.db).await;
    assert_eq!(count(&rows, "audit_log"), 41);
    assert_eq!(count(&rows, "audit_open_intents"), 21);
}

/// On PostgreSQL the sealed records and the tiles are stored out of line without
/// compression, from the first migration on and after a second one (a restart).
#[tokio::test]
async fn postgres_stores_records_and_tiles_uncompressed() {
    let Some(url) = crate::test_pg::fresh_schema_url().await else {
        return;
    };
    Db::connect(&url).await.unwrap().migrate().await.unwrap();
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    for (table, column) in [("audit_log", "record"), ("audit_tiles", "hashes")] {
        let storage: String = sqlx::query_scalar(
            "SELECT CAST(a.attstorage AS TEXT) FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(storage, "e", "{table}.{column}");
    }
}

/// Columns added by later versions are added to a PostgreSQL database that lacks
/// them, found in one lookup; a later start finds them all and goes on.
#[tokio::test]
async fn postgres_columns_of_later_versions_are_added_once() {
    let Some(url) = crate::test_pg::fresh_schema_url().await else {
        return;
    };
    Db::connect(&url).await.unwrap().migrate().await.unwrap();
    let db = Db::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "ALTER TABLE audit_log DROP COLUMN commitment;
         ALTER TABLE runs DROP COLUMN usage_json;
         ALTER TABLE proposal_approvals DROP COLUMN digest",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let present = db.columns_present().await.unwrap().unwrap();
    assert!(present.contains(&("runs".to_owned(), "budget_json".to_owned())));
    assert!(!present.contains(&("runs".to_owned(), "usage_json".to_owned())));
    db.migrate().await.unwrap();
    let present = db.columns_present().await.unwrap().unwrap();
    for (table, column) in [
        ("audit_log", "commitment"),
        ("runs", "usage_json"),
        ("proposal_approvals", "digest"),
    ] {
        assert!(
            present.contains(&(table.to_owned(), column.to_owned())),
            "{table}.{column}"
        );
    }
    Db::connect(&url).await.unwrap().migrate().await.unwrap();
}

/// A PostgreSQL database whose tiles were hex text (earlier versions) has them as
/// bytes after the next start, once: the same hashes, a log that verifies, appends
/// from the same head.
#[tokio::test]
async fn postgres_tiles_from_before_as_hex_text_are_converted_once() {
    let Some(url) = crate::test_pg::fresh_schema_url().await else {
        return;
    };
    let keys = Arc::new(MemoryKeyProvider::new());
    let s = storage(&url, &keys).await;
    for i in 0..300 {
        s.append_audit(crate::test_support::intent("acme", &format!("c{i}")))
            .await
            .unwrap();
    }
    let tiles = "SELECT level, idx, encode(hashes, 'hex') FROM audit_tiles ORDER BY level, idx";
    let before: Vec<(i64, i64, String)> = sqlx::query_as(tiles)
        .fetch_all(&s.inner.db.pool)
        .await
        .unwrap();
    assert!(before.len() >= 2, "{before:?}");
    let column_type = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = to_regclass('audit_tiles') AND attname = 'hashes'";
    sqlx::query(
        "ALTER TABLE audit_tiles ALTER COLUMN hashes TYPE TEXT USING encode(hashes, 'hex')",
    )
    .execute(&s.inner.db.pool)
    .await
    .unwrap();
    drop(s);

    let s = storage(&url, &keys).await;
    let db = &s.inner.db;
    let now: String = sqlx::query_scalar(column_type)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(now, "bytea");
    let after: Vec<(i64, i64, String)> = sqlx::query_as(tiles).fetch_all(&db.pool).await.unwrap();
    assert_eq!(after, before);
    verifies_and_goes_on(&s, 300).await;
    // A second start finds bytes and leaves them (decoding them again would fail).
    drop(s);
    let s = storage(&url, &keys).await;
    let v = s.verify_audit(0, 0).await.unwrap();
    assert!(v.ok && v.records_checked == 301, "{v:?}");
}
