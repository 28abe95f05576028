//! The database: SQLite (embedded default) or PostgreSQL, through one sqlx `Any` pool.
//!
//! Every statement is written once in the dialect both accept (`$n` parameters, TEXT
//! and BIGINT columns); the few differences live in [`Db::migrate`].

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("unsupported database URL (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl,
    #[error("stored record {0} is corrupt")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Connects to `url`: `sqlite://PATH` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let opts = AnyPoolOptions::new().max_connections(match backend {
            // One writer at a time is SQLite's nature; a small pool avoids lock storms.
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL for concurrent readers, FULL sync so a committed audit record survives power loss.
                    conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts.connect(&url).await?;
        Ok(Db { pool, backend })
    }

    /// Creates the schema if it is not there. Idempotent.
    pub async fn migrate(&self) -> Result<(), DbError> {
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&self.pool).await?;
        }
        Ok(())
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS tenant_settings (
        tenant_id TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        enabled BIGINT NOT NULL,
        settings TEXT NOT NULL,
        updated_ms BIGINT NOT NULL,
        updated_by TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tenant_settings_history (
        tenant_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        settings TEXT NOT NULL,
        changed_ms BIGINT NOT NULL,
        changed_by TEXT NOT NULL,
        PRIMARY KEY (tenant_id, version))",
    "CREATE TABLE IF NOT EXISTS customer_credentials (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_log (
        sequence BIGINT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        decision BIGINT NOT NULL,
        record TEXT NOT NULL,
        hash TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_log_tenant_time ON audit_log (tenant_id, time_ms)",
    // Intents without an outcome yet, kept in the same transactions as the chain (an
    // intent adds its row, the outcome naming it removes it), for the reconciler.
    "CREATE TABLE IF NOT EXISTS audit_open_intents (
        intent_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        time_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_open_intents_time ON audit_open_intents (time_ms)",
    "CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        purpose BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        status BIGINT NOT NULL,
        status_reason TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        steps BIGINT NOT NULL,
        trigger_sealed TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_tenant_fingerprint ON runs (tenant_id, fingerprint) WHERE fingerprint <> ''",
    "CREATE TABLE IF NOT EXISTS findings (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS findings_run ON findings (tenant_id, run_id)",
    "CREATE TABLE IF NOT EXISTS proposals (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status BIGINT NOT NULL,
        sealed TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        review_sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        reviewed_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS proposals_tenant_status ON proposals (tenant_id, status)",
    "CREATE TABLE IF NOT EXISTS proposal_approvals (
        tenant_id TEXT NOT NULL,
        proposal_id TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        approved_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, proposal_id, reviewer))",
    "CREATE TABLE IF NOT EXISTS telemetry (
        tenant_id TEXT NOT NULL,
        data_type BIGINT NOT NULL,
        time_ms BIGINT NOT NULL,
        service TEXT NOT NULL,
        body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS telemetry_tenant_type_time ON telemetry (tenant_id, data_type, time_ms)",
];
