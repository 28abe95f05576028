//! The database: SQLite (embedded default) or PostgreSQL, through one sqlx `Any` pool.
//!
//! Every statement is written once in the dialect both accept (`$n` parameters, TEXT
//! and BIGINT columns); the few differences live in [`Db::migrate`].

use std::collections::HashSet;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// From the SQLite audit writer's own connection (`audit_sqlite.rs`).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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

#[derive(Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
    /// For the PostgreSQL change listener's own connection. Never logged (it may hold a password).
    pub(crate) url: String,
    /// Set once [`Db::migrate`] has brought the schema to its current form on this pool.
    migrated: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
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
            opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // An audit record is acknowledged only after its commit is durable,
                    // whatever the server's or the role's default says.
                    conn.execute("SET synchronous_commit = on").await?;
                    Ok(())
                })
            })
        };
        let pool = opts.connect(&url).await?;
        Ok(Db {
            pool,
            backend,
            url,
            migrated: std::sync::Arc::default(),
        })
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`IMMEDIATE`), waiting for it under `busy_timeout`: a deferred transaction that
    /// reads first and writes later fails at once with "database is locked" when another
    /// writer (the audit committer's own connection, say) committed in between.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Creates the schema if it is not there, and brings tables of earlier versions to
    /// their current form. Idempotent; once per pool: the key file, the log key and
    /// storage each make sure of the schema at start, and on PostgreSQL every pass is
    /// some sixty statements, each a round trip and a catalogue lock.
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.migrated
            .get_or_try_init(|| self.bring_schema_up())
            .await
            .map(|_| ())
    }

    async fn bring_schema_up(&self) -> Result<(), DbError> {
        // The tables and indexes in one message, not one round trip each. On PostgreSQL
        // the message is one implicit transaction: under a lock, so replicas starting
        // together on a new database do not race to create the same table, and without
        // the server's "already exists, skipping" notice for every table at every start.
        let mut batch = String::new();
        if self.backend == Backend::Postgres {
            batch.push_str(&format!(
                "SET client_min_messages = warning; SELECT pg_advisory_xact_lock({SCHEMA_LOCK});\n"
            ));
        }
        for stmt in SCHEMA {
            batch.push_str(stmt);
            batch.push_str(";\n");
        }
        for table in &AUDIT_TABLES {
            batch.push_str(&table.create(self.backend, table.name));
            batch.push_str(";\n");
            for index in table.indexes {
                batch.push_str(index);
                batch.push_str(";\n");
            }
        }
        if self.backend == Backend::Postgres {
            batch.push_str("RESET client_min_messages;");
        }
        sqlx::raw_sql(&batch).execute(&self.pool).await?;
        let present = self.columns_present().await?;
        // Added with the Merkle log: the record's commitment (see `audit_entry.rs`).
        self.add_column(
            present.as_ref(),
            "audit_log",
            "commitment",
            "TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        match self.backend {
            Backend::Sqlite => {
                for table in &AUDIT_TABLES {
                    self.rebuild_sqlite(table).await?;
                }
            }
            Backend::Postgres => self.tiles_as_bytes_pg().await?,
        }
        // Added with the durable run queue (`run_queue.rs`).
        for (table, column, decl) in [
            ("runs", "lease_owner", "TEXT NOT NULL DEFAULT ''"),
            ("runs", "lease_until_ms", "BIGINT NOT NULL DEFAULT 0"),
            ("runs", "attempts", "BIGINT NOT NULL DEFAULT 0"),
            ("runs", "state_sealed", "TEXT NOT NULL DEFAULT ''"),
            ("runs", "usage_json", "TEXT NOT NULL DEFAULT '{}'"),
            ("runs", "budget_json", "TEXT NOT NULL DEFAULT '{}'"),
            ("runs", "sandbox_sealed", "TEXT NOT NULL DEFAULT ''"),
            ("run_tool_calls", "step", "BIGINT NOT NULL DEFAULT 0"),
            ("run_tool_calls", "idx", "BIGINT NOT NULL DEFAULT 0"),
            // Structured proposals (`proposals.rs`): the content's digest, the digest
            // approved, expiry, the release claim and where the release went.
            ("proposals", "digest", "TEXT NOT NULL DEFAULT ''"),
            ("proposals", "approved_digest", "TEXT NOT NULL DEFAULT ''"),
            ("proposals", "expires_ms", "BIGINT NOT NULL DEFAULT 0"),
            ("proposals", "updated_ms", "BIGINT NOT NULL DEFAULT 0"),
            ("proposals", "claim_ms", "BIGINT NOT NULL DEFAULT 0"),
            ("proposals", "release_sealed", "TEXT NOT NULL DEFAULT ''"),
            ("proposals", "release_key", "TEXT NOT NULL DEFAULT ''"),
            ("proposals", "redactions", "BIGINT NOT NULL DEFAULT 0"),
            // The digest each reviewer approved: only approvals of the content as stored
            // now count.
            ("proposal_approvals", "digest", "TEXT NOT NULL DEFAULT ''"),
        ] {
            self.add_column(present.as_ref(), table, column, decl)
                .await?;
        }
        // Dedupe moved from a unique fingerprint to `run_keys` (a fingerprint may now
        // start a new run once its earlier one was skipped).
        sqlx::query("DROP INDEX IF EXISTS runs_tenant_fingerprint")
            .execute(&self.pool)
            .await?;
        sqlx::query("CREATE INDEX IF NOT EXISTS runs_queue ON runs (status, created_ms)")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS runs_tenant_created ON runs (tenant_id, created_ms)",
        )
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO run_keys (tenant_id, key, run_id, created_ms)
             SELECT tenant_id, fingerprint, id, created_ms FROM runs WHERE fingerprint <> '' AND status <> 4
             ON CONFLICT DO NOTHING",
        )
        .execute(&self.pool)
        .await?;
        // PostgreSQL compresses long values before moving them out of line: a sealed
        // record does not compress, and the level-0 tile rewritten in every audit commit
        // cost the server ~14 % of its CPU in pglz. Stored out of line uncompressed.
        if self.backend == Backend::Postgres {
            for (table, column) in [("audit_log", "record"), ("audit_tiles", "hashes")] {
                self.store_uncompressed(table, column).await?;
            }
        }
        Ok(())
    }

    /// PostgreSQL: `SET STORAGE EXTERNAL` once (looked up first, so a restart takes no
    /// lock); it applies to values written from then on.
    async fn store_uncompressed(&self, table: &str, column: &str) -> Result<(), DbError> {
        let storage: Option<String> = sqlx::query_scalar(
            "SELECT CAST(attstorage AS TEXT) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_optional(&self.pool)
        .await?;
        if storage.as_deref() != Some("e") {
            sqlx::query(&format!(
                "ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL"
            ))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// SQLite: a table of [`AUDIT_TABLES`] created before it had its SQLite form is
    /// rebuilt in it, once, in one transaction (copied, dropped, renamed, indexed again), so
    /// a crash leaves the old table or the new one, never a mix.
    async fn rebuild_sqlite(&self, table: &AuditTable) -> Result<(), DbError> {
        let sql: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table.name)
                .fetch_optional(&self.pool)
                .await?;
        if sql.is_none_or(|sql| table.sqlite_form_of(&sql)) {
            return Ok(());
        }
        let name = table.name;
        let rebuilt = format!("{name}_rebuilt");
        // About 20 s a million records, and free disk of twice the table's size while it
        // runs (docs/benchmarks/audit-log.md).
        tracing::warn!(
            table = name,
            "rebuilding an audit table in its SQLite form, once: this start takes longer and needs free disk of about twice the table's size"
        );
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!("DROP TABLE IF EXISTS {rebuilt}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&table.create(Backend::Sqlite, &rebuilt))
            .execute(&mut *tx)
            .await?;
        let columns = table.column_names();
        let copied = match table.copied_from_earlier {
            "" => columns.as_str(),
            copied => copied,
        };
        sqlx::query(&format!(
            "INSERT INTO {rebuilt} ({columns}) SELECT {copied} FROM {name}"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DROP TABLE {name}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {rebuilt} RENAME TO {name}"))
            .execute(&mut *tx)
            .await?;
        for index in table.indexes {
            sqlx::query(index).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// PostgreSQL: the tiles' hashes from hex text (earlier versions) to `BYTEA`, once.
    /// Looked up again under the table's lock, so two replicas starting at once on one
    /// database convert it once and a restart takes no lock.
    async fn tiles_as_bytes_pg(&self) -> Result<(), DbError> {
        const TYPE: &str = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = to_regclass('audit_tiles') AND attname = 'hashes'";
        let text = |t: Option<String>| t.as_deref() == Some("text");
        if !text(sqlx::query_scalar(TYPE).fetch_optional(&self.pool).await?) {
            return Ok(());
        }
        tracing::warn!("converting the audit tiles from hex text to bytes, once");
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE audit_tiles IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        if text(sqlx::query_scalar(TYPE).fetch_optional(&mut *tx).await?) {
            sqlx::query(
                "ALTER TABLE audit_tiles ALTER COLUMN hashes TYPE BYTEA USING decode(hashes, 'hex')",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// PostgreSQL: every `(table, column)` of the current schema, in one round trip (one
    /// lookup a column was a third of a start). SQLite: `None`; each column is probed.
    async fn columns_present(&self) -> Result<Option<HashSet<(String, String)>>, DbError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT)
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(rows.into_iter().collect()))
    }

    /// `ALTER TABLE .. ADD COLUMN` once: looked up first (in `present` on PostgreSQL), so
    /// a restart takes no lock.
    async fn add_column(
        &self,
        present: Option<&HashSet<(String, String)>>,
        table: &str,
        column: &str,
        decl: &str,
    ) -> Result<(), DbError> {
        let missing = match present {
            Some(present) => !present.contains(&(table.to_owned(), column.to_owned())),
            None => sqlx::query(&format!("SELECT {column} FROM {table} LIMIT 1"))
                .fetch_optional(&self.pool)
                .await
                .is_err(),
        };
        if missing {
            // Two replicas may start at once on one PostgreSQL database.
            let guard = match self.backend {
                Backend::Postgres => "IF NOT EXISTS ",
                Backend::Sqlite => "",
            };
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD COLUMN {guard}{column} {decl}"
            ))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

/// A table of the audit log whose form differs by backend, each byte of it written in
/// every audit commit. On SQLite a one-column key is the table's rowid (`INTEGER PRIMARY
/// KEY`) and a text key clusters its table (`WITHOUT ROWID`); otherwise every row also
/// goes into a separate key index, one more WAL page a commit. PostgreSQL keeps `BIGINT`
/// (its `INTEGER` is 32 bits). Hashes are bytes (`BLOB`, `BYTEA`), not hex text: the
/// partial tile rewritten in every commit is half the size.
struct AuditTable {
    name: &'static str,
    /// The columns after `CREATE TABLE name (`, `{key}` standing for the key's type and
    /// `{bytes}` for the backend's binary type.
    columns: &'static str,
    /// Appended on SQLite.
    sqlite_suffix: &'static str,
    /// What SQLite's stored `CREATE` text holds once the table has this form.
    sqlite_marker: &'static str,
    /// The `SELECT` list that reads a row of the earlier SQLite form as a row of this
    /// one; empty where the columns are the same.
    copied_from_earlier: &'static str,
    indexes: &'static [&'static str],
}

impl AuditTable {
    fn create(&self, backend: Backend, name: &str) -> String {
        let (key, bytes, suffix) = match backend {
            Backend::Sqlite => ("INTEGER PRIMARY KEY", "BLOB", self.sqlite_suffix),
            Backend::Postgres => ("BIGINT PRIMARY KEY", "BYTEA", ""),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {name} ({}){suffix}",
            self.columns.replace("{key}", key).replace("{bytes}", bytes)
        )
    }

    /// The column names, comma-separated (not the words of a table constraint).
    fn column_names(&self) -> String {
        self.columns
            .split(',')
            .filter_map(|c| c.split_whitespace().next())
            .filter(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a SQLite table created as `sql` already has this form.
    fn sqlite_form_of(&self, sql: &str) -> bool {
        sql.contains(self.sqlite_marker)
    }
}

const AUDIT_TABLES: [AuditTable; 4] = [
    AuditTable {
        name: "audit_log",
        columns: "sequence {key},
            id TEXT NOT NULL UNIQUE,
            tenant_id TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            decision BIGINT NOT NULL,
            record TEXT NOT NULL,
            hash TEXT NOT NULL,
            commitment TEXT NOT NULL DEFAULT ''",
        sqlite_suffix: "",
        sqlite_marker: "INTEGER PRIMARY KEY",
        copied_from_earlier: "",
        indexes: &[
            "CREATE INDEX IF NOT EXISTS audit_log_tenant_time ON audit_log (tenant_id, time_ms)",
        ],
    },
    // The Merkle tree as C2SP tiles, each at its latest width (see `merkle_log.rs`).
    // Earlier versions kept the hashes as hex text.
    AuditTable {
        name: "audit_tiles",
        columns: "level BIGINT NOT NULL,
            idx BIGINT NOT NULL,
            hashes {bytes} NOT NULL,
            PRIMARY KEY (level, idx)",
        sqlite_suffix: "",
        sqlite_marker: "BLOB",
        copied_from_earlier: "level, idx, unhex(hashes)",
        indexes: &[],
    },
    // The checkpoint signed in each commit (see `merkle_log.rs`).
    AuditTable {
        name: "audit_checkpoints",
        columns: "tree_size {key},
            note TEXT NOT NULL,
            time_ms BIGINT NOT NULL",
        sqlite_suffix: "",
        sqlite_marker: "INTEGER PRIMARY KEY",
        copied_from_earlier: "",
        indexes: &[],
    },
    // Intents without an outcome yet, kept in the same transactions as the chain (an
    // intent adds its row, the outcome naming it removes it), for the reconciler.
    AuditTable {
        name: "audit_open_intents",
        columns: "intent_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            time_ms BIGINT NOT NULL",
        sqlite_suffix: " WITHOUT ROWID",
        sqlite_marker: "WITHOUT ROWID",
        copied_from_earlier: "",
        indexes: &[
            "CREATE INDEX IF NOT EXISTS audit_open_intents_time ON audit_open_intents (time_ms)",
        ],
    },
];

/// PostgreSQL advisory lock held while the tables are created ("WARDENSC").
const SCHEMA_LOCK: i64 = 0x5741_5244_454e_5343;

const SCHEMA: &[&str] = &[
    // Each tenant's data keys, wrapped by the key provider's KEK `kek_id`; one active.
    "CREATE TABLE IF NOT EXISTS data_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        kek_id TEXT NOT NULL,
        wrapped TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        active BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS data_keys_one_active ON data_keys (tenant_id) WHERE active = 1",
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
    // One external id per tenant and AWS account, generated by storage, never chosen by a
    // client: a party who learns another tenant's id cannot make the gateway use it.
    "CREATE TABLE IF NOT EXISTS tenant_external_ids (
        tenant_id TEXT NOT NULL,
        aws_account TEXT NOT NULL,
        external_id TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, aws_account))",
    "CREATE TABLE IF NOT EXISTS customer_credentials (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    // Prometheus and GitHub credentials (SourceCredentials, sealed).
    "CREATE TABLE IF NOT EXISTS source_credentials (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    // The audit log itself, its Merkle tree's tiles, its signed checkpoints and its
    // open intents: see [`AUDIT_TABLES`].
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
    // Exactly-once keys of triggers (alert fingerprint and start, delivery ids, ...): a
    // key belongs to the first run that claimed it. Skipped runs claim none.
    "CREATE TABLE IF NOT EXISTS run_keys (
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, key))",
    "CREATE INDEX IF NOT EXISTS run_keys_run ON run_keys (tenant_id, run_id)",
    // What happened to a run after it was created (resolved notifications, resumption,
    // cancellation); `sealed` under the tenant's key.
    "CREATE TABLE IF NOT EXISTS run_events (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        sealed TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS run_events_run ON run_events (tenant_id, run_id, time_ms)",
    "CREATE TABLE IF NOT EXISTS findings (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS findings_run ON findings (tenant_id, run_id)",
    "CREATE TABLE IF NOT EXISTS run_tool_calls (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS run_tool_calls_run ON run_tool_calls (tenant_id, run_id, created_ms)",
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
    // Every transition of a proposal (state, actor, time, digest, reason), sealed.
    "CREATE TABLE IF NOT EXISTS proposal_history (
        tenant_id TEXT NOT NULL,
        proposal_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        time_ms BIGINT NOT NULL,
        sealed TEXT NOT NULL,
        PRIMARY KEY (tenant_id, proposal_id, seq))",
    // Credentials that can write to a customer's systems (a GitHub token with write scope,
    // a webhook signing key): read back only by the gateway, never by the agent service.
    "CREATE TABLE IF NOT EXISTS release_credentials (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL)",
    // The records of the removed `warden.storage.v1.Telemetry` service: nothing reads them
    // any more, and their sealed bodies would otherwise outlive every key rotation.
    "DROP TABLE IF EXISTS telemetry",
    // Per-tenant ingest tokens: only the SHA-256 of a token is kept; revocation sets
    // `revoked_ms`, and every request looks its token up again, so it takes effect at once.
    "CREATE TABLE IF NOT EXISTS ingest_tokens (
        token_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ingest_tokens_tenant ON ingest_tokens (tenant_id, created_ms)",
    // Per-tenant API keys of the gateway's HTTP front, kept as their SHA-256 (api_keys.rs).
    "CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        key_sha256 TEXT NOT NULL UNIQUE,
        identity TEXT NOT NULL,
        default_data_type BIGINT NOT NULL,
        description TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id, created_ms)",
    // Tenants that ever sent telemetry: the ones retention prunes.
    "CREATE TABLE IF NOT EXISTS ingest_tenants (
        tenant_id TEXT PRIMARY KEY,
        first_ms BIGINT NOT NULL)",
    // Profiles as per-function aggregates, one row per profile and sample type (the raw
    // pprof is not kept); `summary` is the sealed JSON of unit, total and functions.
    "CREATE TABLE IF NOT EXISTS profiles (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        service TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        sample_type TEXT NOT NULL,
        is_default BIGINT NOT NULL,
        summary TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS profiles_tenant_time ON profiles (tenant_id, service, time_ms)",
    // Kubernetes objects as reported (a bounded history per object; the newest is its
    // state); `json` sealed.
    "CREATE TABLE IF NOT EXISTS cluster_objects (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        observed_ms BIGINT NOT NULL,
        json TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cluster_objects_key ON cluster_objects (tenant_id, kind, namespace, name, observed_ms)",
    // One row per Event object (a repeated report updates it); `event` sealed.
    "CREATE TABLE IF NOT EXISTS cluster_events (
        tenant_id TEXT NOT NULL,
        cluster TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (tenant_id, cluster, namespace, name))",
    "CREATE INDEX IF NOT EXISTS cluster_events_time ON cluster_events (tenant_id, time_ms)",
    // Configuration snapshots, secrets already replaced by digests; content and diff sealed.
    "CREATE TABLE IF NOT EXISTS config_snapshots (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        observed_ms BIGINT NOT NULL,
        content TEXT NOT NULL,
        diff TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS config_snapshots_key ON config_snapshots (tenant_id, kind, namespace, name, observed_ms)",
    // Logs, metrics and traces (`signals/`): the clear columns are what queries filter
    // on; `sealed`, `meta`, `labels` and `histogram` are sealed under the tenant's data key.
    "CREATE TABLE IF NOT EXISTS log_records (
        tenant_id TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        service TEXT NOT NULL,
        severity BIGINT NOT NULL,
        sealed TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS log_records_tenant_time ON log_records (tenant_id, time_ms)",
    "CREATE INDEX IF NOT EXISTS log_records_tenant_service_time ON log_records (tenant_id, service, time_ms)",
    // One row per series: id = SHA-256(tenant, name, labels), so writers agree without a lookup.
    "CREATE TABLE IF NOT EXISTS metric_series (
        tenant_id TEXT NOT NULL,
        series_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        meta TEXT NOT NULL,
        labels TEXT NOT NULL,
        first_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, series_id))",
    "CREATE INDEX IF NOT EXISTS metric_series_tenant_name ON metric_series (tenant_id, name)",
    "CREATE TABLE IF NOT EXISTS metric_points (
        tenant_id TEXT NOT NULL,
        series_id TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        histogram TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS metric_points_series_time ON metric_points (tenant_id, series_id, time_ms)",
    "CREATE INDEX IF NOT EXISTS metric_points_tenant_time ON metric_points (tenant_id, time_ms)",
    "CREATE TABLE IF NOT EXISTS spans (
        tenant_id TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT NOT NULL,
        service TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        duration_us BIGINT NOT NULL,
        error BIGINT NOT NULL,
        sealed TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS spans_tenant_trace ON spans (tenant_id, trace_id)",
    "CREATE INDEX IF NOT EXISTS spans_tenant_time ON spans (tenant_id, start_ms)",
    "CREATE INDEX IF NOT EXISTS spans_tenant_service_time ON spans (tenant_id, service, start_ms)",
];

#[cfg(test)]
mod tests;
