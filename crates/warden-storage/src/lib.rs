//! Storage: the only Warden service that touches a database.
//!
//! It holds tenant settings (and pushes every change to watching gateways), customer
//! credentials and agent results sealed with AES-256-GCM, the hash-chained audit log,
//! agent runs and proposals, and telemetry for the agents' tools, received on an ingest
//! listener of its own (OTLP/gRPC and OTLP/HTTP, see [`ingest`]). One [`Db`] runs on
//! SQLite (the embedded default) or PostgreSQL, chosen by URL.
//!
//! **Invariant:** an audit append returns only after its record is committed, so the
//! gateway's "audit before egress" holds across crashes.

mod api_keys;
mod audit;
mod audit_batch;
pub mod audit_entry;
mod audit_pg;
mod audit_proofs;
mod audit_sqlite;
mod audit_stream;
mod bearer;
mod cluster;
mod committer;
mod db;
mod durable;
pub mod ingest;
pub mod ingest_auth;
mod keyring;
mod keys_admin;
pub mod log_key;
mod merkle_log;
mod proposals;
mod reconcile;
mod run_queue;
mod runs;
mod seal;
mod signals;
mod telemetry_query;
mod tenants;
#[cfg(any(test, feature = "test-pg"))]
#[doc(hidden)]
pub mod test_pg;
#[cfg(test)]
mod test_support;
mod util;
pub mod verify_log;
mod wal_checkpoint;
mod watch;

use std::sync::Arc;

pub use db::{Db, DbError};
pub use ingest::IngestOptions;
pub use keyring::{KeyringError, key_file_provider};
pub use log_key::{KeyFileSigner, LogSigner, Publish, log_key_file};
pub use reconcile::{RECONCILER, ReconcileOptions, Reconciled};
pub use seal::{SealError, Sealer};
pub use verify_log::{LogReport, verify_log};
pub use warden_keys::{FileKeyProvider, KeyProvider, MemoryKeyProvider};
pub use warden_merkle;

use warden_proto::storage::v1::audit_log_server::AuditLogServer;
use warden_proto::storage::v1::proposal_store_server::ProposalStoreServer;
use warden_proto::storage::v1::run_store_server::RunStoreServer;
use warden_proto::storage::v1::tenant_store_server::TenantStoreServer;
use warden_proto::telemetry::v1::ingest_tokens_server::IngestTokensServer;
use warden_proto::telemetry::v1::telemetry_query_server::TelemetryQueryServer;
use warden_rpc::ServiceHost;

/// The storage service's state, shared by its gRPC services and its ingest listener.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Seals what storage keeps: per-tenant data keys wrapped by the key provider.
    keys: Arc<keyring::Keyring>,
    changes: tokio::sync::broadcast::Sender<watch::WatchEvent>,
    /// Whether changes committed through other replicas reach `changes` (PostgreSQL LISTEN).
    following: watch::Following,
    /// The PostgreSQL listener, aborted when the storage is dropped.
    listener: std::sync::OnceLock<watch::ListenerTask>,
    /// The NOTIFY channel commits signal on (PostgreSQL only).
    notify_channel: Option<String>,
    audit: audit::Committer,
    /// Tenants this process has noted as telemetry senders (for retention).
    ingest_noted: ingest::retention::Noted,
    log: audit::LogCtx,
    /// Turns true when the service begins to shut down: long-lived streams (appends)
    /// stop taking messages, answer what they took and end, so the shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
}

/// Tuning of [`Storage::open_with`].
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// How many changes a settings watcher may fall behind before its stream is ended.
    pub watch_capacity: usize,
    /// When intents left without an outcome are closed as `unknown`.
    pub reconcile: ReconcileOptions,
    /// The master key of stores from before envelope encryption: values it sealed still open.
    pub legacy_master_key: Option<Sealer>,
    /// How often telemetry past each tenant's retention is pruned.
    pub retention_every: std::time::Duration,
    /// How often proposals past their time are expired (they are also expired before
    /// each list and refused on every action once due).
    pub proposal_expiry_every: std::time::Duration,
    /// Signs the audit log's checkpoints (one per commit). Without it the Merkle tree is
    /// kept but no checkpoint is signed and proofs are refused; `warden serve` always sets it.
    pub log_signer: Option<Arc<dyn LogSigner>>,
    /// Where each new checkpoint is published.
    pub publish: Publish,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            watch_capacity: 1024,
            reconcile: ReconcileOptions::default(),
            legacy_master_key: None,
            retention_every: std::time::Duration::from_secs(3600),
            proposal_expiry_every: std::time::Duration::from_secs(60),
            log_signer: None,
            publish: Publish::default(),
        }
    }
}

impl Storage {
    /// Opens the store (running migrations) and loads the audit chain's head, with the
    /// default reconciliation of intents left without an outcome.
    pub async fn open(db: Db, keys: Arc<dyn KeyProvider>) -> Result<Storage, KeyringError> {
        Storage::open_with(db, keys, StorageOptions::default()).await
    }

    /// [`Storage::open`] with tuning. Intents left open for longer than
    /// `opts.reconcile.reconcile_after` are closed as `unknown`: once before it returns
    /// (so before it serves), then every `reconcile_every` (see `reconcile.rs` for why the
    /// age alone decides). On PostgreSQL it also starts following the changes other
    /// replicas commit (LISTEN/NOTIFY), so every watcher of every replica sees them.
    ///
    /// Refuses to open unless `keys` opens the data keys of every key-encryption key the
    /// database names.
    pub async fn open_with(
        db: Db,
        keys: Arc<dyn KeyProvider>,
        opts: StorageOptions,
    ) -> Result<Storage, KeyringError> {
        db.migrate().await?;
        let keys = Arc::new(
            keyring::Keyring::open(db.clone(), keys, opts.legacy_master_key.clone()).await?,
        );
        let head = audit::Head::load(&db).await?;
        // The tree covers every record, and the log key signed the last checkpoint.
        merkle_log::open(&db, opts.log_signer.as_deref(), head.next_sequence - 1).await?;
        let log = audit::LogCtx {
            signer: opts.log_signer.clone(),
            publish: log_key::spawn_publisher(opts.publish.clone()),
        };
        if let (Some(tx), Some(signer)) = (&log.publish, &log.signer) {
            let mut conn = db.pool.acquire().await.map_err(DbError::from)?;
            if let Some((_, note)) = merkle_log::latest_checkpoint(&mut conn)
                .await
                .map_err(DbError::from)?
            {
                tracing::info!(origin = signer.origin(), "publishing audit checkpoints");
                let _ = tx.send(note);
            }
        }
        let (changes, _) = tokio::sync::broadcast::channel(opts.watch_capacity.max(1));
        let audit = audit::Committer::start(db.clone(), keys.clone(), head, log.clone());
        reconcile::report(
            audit
                .reconcile(reconcile::cutoff(opts.reconcile.reconcile_after))
                .await,
        );
        reconcile::spawn_periodic(audit.reconcile_handle(), opts.reconcile);
        let channel = match db.backend {
            db::Backend::Postgres => Some(watch::channel(&db).await?),
            db::Backend::Sqlite => None,
        };
        let storage = Storage {
            inner: Arc::new(Inner {
                following: watch::Following::new(db.backend),
                db,
                keys,
                changes,
                listener: std::sync::OnceLock::new(),
                notify_channel: channel.as_ref().map(|c| c.name.clone()),
                audit,
                ingest_noted: Default::default(),
                log,
                closing: tokio::sync::watch::Sender::new(false),
            }),
        };
        ingest::retention::spawn(Arc::downgrade(&storage.inner), opts.retention_every);
        proposals::spawn_expiry(Arc::downgrade(&storage.inner), opts.proposal_expiry_every);
        if let Some(channel) = channel {
            let task = watch::spawn_listener(
                Arc::downgrade(&storage.inner),
                storage.inner.db.url.clone(),
                channel,
            );
            let _ = storage.inner.listener.set(task);
        }
        Ok(storage)
    }

    /// Closes, now, every intent committed longer than `older_than` ago that has no
    /// outcome, as `unknown`, and audits the reconciliation.
    pub async fn reconcile_audit(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Reconciled, tonic::Status> {
        self.inner
            .audit
            .reconcile(reconcile::cutoff(older_than))
            .await
    }

    /// Seals `plain` for `tenant_id` under its data key (UNAVAILABLE, and nothing stored,
    /// if that cannot be done).
    pub(crate) async fn seal(
        &self,
        tenant_id: &str,
        plain: &[u8],
    ) -> Result<String, tonic::Status> {
        self.inner.keys.seal(tenant_id, plain).await
    }

    /// Opens a value sealed for `tenant_id` (DATA_LOSS if the keys cannot open it).
    pub(crate) async fn unseal(
        &self,
        tenant_id: &str,
        sealed: &str,
    ) -> Result<Vec<u8>, tonic::Status> {
        self.inner.keys.open_value(tenant_id, sealed).await
    }

    /// [`Storage::seal`] for text columns: empty stays empty (nothing to hide).
    pub(crate) async fn seal_nonempty(
        &self,
        tenant_id: &str,
        text: &str,
    ) -> Result<String, tonic::Status> {
        if text.is_empty() {
            return Ok(String::new());
        }
        self.seal(tenant_id, text.as_bytes()).await
    }

    /// Opens a column sealed since envelope encryption, or returns text stored before as is.
    pub(crate) async fn unseal_or_legacy(
        &self,
        tenant_id: &str,
        stored: &str,
    ) -> Result<Vec<u8>, tonic::Status> {
        if stored.starts_with("w2.") {
            self.unseal(tenant_id, stored).await
        } else {
            Ok(stored.as_bytes().to_vec())
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The gRPC routes of the storage service, each behind the identity interceptor.
    pub fn routes(&self, host: &ServiceHost) -> tonic::service::RoutesBuilder {
        let id = host.identify();
        let max = host.limits.max_message_bytes;
        let mut routes = tonic::service::RoutesBuilder::default();
        routes
            .add_service(tonic::service::interceptor::InterceptedService::new(
                TenantStoreServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                AuditLogServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                RunStoreServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                ProposalStoreServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                warden_proto::storage::v1::keys_server::KeysServer::new(self.clone())
                    .max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                IngestTokensServer::new(self.clone()).max_decoding_message_size(max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                api_keys::service(self.clone(), max),
                id.clone(),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                TelemetryQueryServer::new(self.clone()).max_decoding_message_size(max),
                id,
            ));
        routes
    }

    /// Names for gRPC health checking.
    pub const SERVICES: [&'static str; 8] = [
        "warden.storage.v1.ApiKeys",
        "warden.storage.v1.Keys",
        "warden.storage.v1.TenantStore",
        audit::AUDIT_LOG_SERVICE,
        "warden.storage.v1.RunStore",
        "warden.storage.v1.ProposalStore",
        "warden.telemetry.v1.IngestTokens",
        "warden.telemetry.v1.TelemetryQuery",
    ];
}
