//! The settings watch: every committed change, to every watching gateway, from every
//! storage replica; and "resynchronise" whenever a watcher could have missed one.
//!
//! Within one replica a change is pushed on an in-process broadcast right after its
//! commit. Across replicas on one PostgreSQL database, the commit also sends a `NOTIFY`
//! (inside the transaction, so it is delivered exactly when the change becomes visible);
//! each replica's listener re-reads the tenant's settings and pushes them on its own
//! broadcast. Whenever a watcher may have missed a change (it lagged behind the
//! broadcast, or the listener lost its connection, during which notifications are lost),
//! its stream is ended with an error: the gateway drops its cache and watches again,
//! receiving a fresh SYNC. While the listener is down a replica refuses new watches.

use std::pin::Pin;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::Digest;
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::Status;
use warden_proto::common::v1::TenantSettings;
use warden_proto::storage::v1::TenantSettingsChange;

use crate::db::Backend;
use crate::{Db, Inner, Storage};

/// What the in-process broadcast carries.
#[derive(Debug, Clone)]
pub(crate) enum WatchEvent {
    Change(Box<TenantSettingsChange>),
    /// Changes may have been missed: every watcher must drop its cache and watch again.
    Resync,
}

/// Whether changes from other replicas are being followed (always, on SQLite).
pub(crate) struct Following(AtomicBool);

pub(crate) type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<TenantSettingsChange, Status>> + Send>>;

/// Aborts the listener task when the storage it serves is dropped.
pub(crate) struct ListenerTask(tokio::task::JoinHandle<()>);

/// Ends after the first error: a watcher that missed something must not continue.
struct Changes {
    rx: BroadcastStream<WatchEvent>,
    done: bool,
}

impl Following {
    pub(crate) fn new(backend: Backend) -> Following {
        Following(AtomicBool::new(backend == Backend::Sqlite))
    }
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Stream for Changes {
    type Item = Result<TenantSettingsChange, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.rx).poll_next(cx) {
            Poll::Ready(Some(Ok(WatchEvent::Change(c)))) => Poll::Ready(Some(Ok(*c))),
            Poll::Ready(Some(Ok(WatchEvent::Resync))) => {
                self.done = true;
                metrics::counter!("warden_storage_watch_resyncs_total", "cause" => "listener")
                    .increment(1);
                Poll::Ready(Some(Err(Status::unavailable(
                    "storage lost track of changes made through other replicas; drop cached settings and watch again",
                ))))
            }
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                self.done = true;
                metrics::counter!("warden_storage_watch_resyncs_total", "cause" => "lagged")
                    .increment(1);
                tracing::warn!(
                    missed = n,
                    "a settings watcher fell behind; ending its stream"
                );
                Poll::Ready(Some(Err(Status::aborted(
                    "this watcher fell behind and missed changes; drop cached settings and watch again",
                ))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Storage {
    /// A watch: SYNC first, then every change committed after it (through any replica),
    /// ending with an error as soon as a change may have been missed.
    pub(crate) fn watch_changes(&self) -> Result<ChangeStream, Status> {
        // Subscribe first, then check and announce SYNC: no change can fall between.
        let rx = self.inner.changes.subscribe();
        if !self.inner.following.0.load(Ordering::Acquire) {
            return Err(Status::unavailable(
                "storage is not following changes made through other replicas right now (PostgreSQL LISTEN is down); retry",
            ));
        }
        let sync = TenantSettingsChange {
            sync: true,
            ..Default::default()
        };
        let changes = Changes {
            rx: BroadcastStream::new(rx),
            done: false,
        };
        Ok(Box::pin(tokio_stream::StreamExt::chain(
            tokio_stream::once(Ok(sync)),
            changes,
        )))
    }

    /// Tells every watcher of this replica to resynchronise.
    pub(crate) fn resync_watchers(&self) {
        let _ = self.inner.changes.send(WatchEvent::Resync);
    }

    /// Pushes a tenant's current settings to this replica's watchers (none watching is
    /// fine: no gateway is connected yet).
    pub(crate) fn push_change(&self, tenant_id: String, settings: TenantSettings) {
        let _ = self
            .inner
            .changes
            .send(WatchEvent::Change(Box::new(TenantSettingsChange {
                tenant_id,
                version: settings.version,
                settings: Some(settings),
                sync: false,
            })));
    }

    /// On PostgreSQL, tells every replica's listener that `tenant_id` changed; on `conn`
    /// in a transaction it is delivered when (and only if) that commits. Nothing on
    /// SQLite, which has one replica.
    pub(crate) async fn notify_replicas(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant_id: &str,
    ) -> Result<(), crate::DbError> {
        if let Some(channel) = &self.inner.notify_channel {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(tenant_id)
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}

/// Where a replica listens: the NOTIFY channel of this database and schema (replicas on
/// other schemas of the same database, e.g. tests, do not hear each other), and the
/// listener connection's `application_name` (`warden-listener:<schema>`, for operators).
pub(crate) struct Channel {
    pub(crate) name: String,
    application_name: String,
}

pub(crate) async fn channel(db: &Db) -> Result<Channel, crate::DbError> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&db.pool)
        .await?;
    let digest = sha2::Sha256::digest(schema.as_bytes());
    let mut application_name = format!("warden-listener:{schema}");
    // PostgreSQL keeps 63 bytes of it.
    while application_name.len() > 63 {
        application_name.pop();
    }
    Ok(Channel {
        name: format!("warden_settings_{}", hex::encode(&digest[..8])),
        application_name,
    })
}

/// Starts following other replicas' changes (PostgreSQL only).
pub(crate) fn spawn_listener(inner: Weak<Inner>, url: String, channel: Channel) -> ListenerTask {
    ListenerTask(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match listen(&url, &channel).await {
                Ok(mut listener) => {
                    let Some(storage) = upgrade(&inner) else {
                        return;
                    };
                    // Watchers of the time before were ended when it was lost, and none
                    // was accepted since: from here on, nothing committed is missed.
                    storage.inner.following.0.store(true, Ordering::Release);
                    drop(storage);
                    tracing::info!("following settings changes of other storage replicas");
                    backoff = Duration::from_millis(50);
                    follow(&inner, &mut listener).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for settings changes of other replicas; retrying");
                }
            }
            let Some(storage) = upgrade(&inner) else {
                return;
            };
            storage.inner.following.0.store(false, Ordering::Release);
            storage.resync_watchers();
            drop(storage);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }))
}

fn upgrade(inner: &Weak<Inner>) -> Option<Storage> {
    inner.upgrade().map(|inner| Storage { inner })
}

async fn listen(url: &str, channel: &Channel) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    use std::str::FromStr;
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)?
        .application_name(&channel.application_name);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(&channel.name).await?;
    Ok(listener)
}

/// Pushes each notified tenant's current settings until the connection is lost or a
/// change cannot be read (either way, the caller resynchronises the watchers).
async fn follow(inner: &Weak<Inner>, listener: &mut sqlx::postgres::PgListener) {
    loop {
        let tenant_id = match listener.try_recv().await {
            Ok(Some(n)) => n.payload().to_owned(),
            Ok(None) => {
                tracing::warn!("lost the PostgreSQL LISTEN connection; watchers resynchronise");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL LISTEN failed; watchers resynchronise");
                return;
            }
        };
        let Some(storage) = upgrade(inner) else {
            return;
        };
        match storage.tenant_settings(&tenant_id).await {
            Ok(Some(settings)) => storage.push_change(tenant_id, settings),
            // Not ours (should not happen with a per-schema channel): nothing to push.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a changed tenant's settings; watchers resynchronise");
                return;
            }
        }
    }
}
