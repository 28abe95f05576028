//! Tenant settings as the gateway sees them: cached, and kept true by a watch stream.
//!
//! **Mechanism.** Every gateway holds one `WatchTenantSettings` stream to storage. Storage
//! pushes each committed change to every stream, and the gateway overwrites its cache
//! entry with the new version at once. The cache is used only while the stream is live:
//! until the stream has said SYNC, and from the moment it breaks, every request reads
//! storage directly, and if storage cannot answer the request is refused (fail closed).
//!
//! **Why nothing stale survives.** Each SYNC starts a new *epoch* and empties the cache,
//! and an entry is served only if it was written in the current epoch: by a change pushed
//! on the current stream, or by a direct read or an Admin reply that *began* after this
//! epoch's SYNC. Storage subscribes the stream before it sends SYNC, so every change
//! committed after SYNC arrives on it, and versions order the rest (a fill never
//! overwrites a newer version). Anything learnt while the watch was down (an Admin change
//! through this gateway included) carries an older epoch and is never served. A stream
//! that fell behind is ended by storage, which puts this gateway back to "dark" until the
//! next SYNC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use moka::ops::compute::Op;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use warden_policy::TenantSettings;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_proto::storage::v1::{GetTenantSettingsRequest, WatchTenantSettingsRequest};

use crate::convert::settings_from_proto;

/// Storage could not confirm a tenant's settings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tenant settings could not be confirmed with storage; refusing the request (fail closed)")]
pub struct SettingsUnavailable;

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: storage knows no such tenant (treated as disabled).
    settings: Option<Arc<TenantSettings>>,
    version: u64,
    /// The watch epoch this entry was learnt in; only the current epoch's entries are served.
    epoch: u64,
}

/// What [`Tenants::ticket`] hands out before a write to storage: the watch epoch it began
/// in, if the watch was live. [`Tenants::apply_admin_change`] uses it so that a change made
/// while the watch was down (or across a reconnect) never enters the cache.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

#[derive(Clone)]
pub struct Tenants {
    inner: Arc<Inner>,
}

struct Inner {
    client: TenantStoreClient<Channel>,
    cache: Cache<String, Entry>,
    live: AtomicBool,
    epoch: AtomicU64,
    /// Fault injection: while true the watch is held down (tests break one gateway's watch).
    suspended: tokio::sync::watch::Sender<bool>,
    /// How many times the watch has gone live (SYNC received), for tests and operators.
    syncs: AtomicU64,
    /// Tenant ids whose settings changed, for streams that must stop on opt-out.
    changed: tokio::sync::broadcast::Sender<String>,
}

impl Tenants {
    pub fn new(client: TenantStoreClient<Channel>) -> Tenants {
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        Tenants {
            inner: Arc::new(Inner {
                client,
                // The TTL is a backstop only; the watch stream is what keeps entries true.
                cache: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(300))
                    .build(),
                live: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                suspended: tokio::sync::watch::channel(false).0,
                syncs: AtomicU64::new(0),
                changed,
            }),
        }
    }

    /// Whether the watch stream is live (cache in use).
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// How many times the watch has gone live (each SYNC starts a fresh cache).
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Acquire)
    }

    /// Fault injection: `true` breaks the watch and holds it down (the gateway goes dark and
    /// reads storage directly); `false` lets it reconnect. Also usable by an operator who
    /// wants a gateway to stop trusting its cache.
    pub fn suspend_watch(&self, suspended: bool) {
        self.inner.suspended.send_replace(suspended);
    }

    /// Notifications of tenants whose settings changed. A receiver that lags must
    /// re-read the settings of whatever it watches (it may have missed an opt-out).
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.changed.subscribe()
    }

    /// The tenant's settings: `Ok(None)` for a tenant storage does not know.
    pub async fn get(
        &self,
        tenant_id: &str,
    ) -> Result<Option<Arc<TenantSettings>>, SettingsUnavailable> {
        let ticket = self.ticket();
        if let Some(epoch) = ticket.0
            && let Some(e) = self.inner.cache.get(tenant_id).await
            && e.epoch == epoch
        {
            metrics::counter!("warden_gateway_settings_cache_total", "result" => "hit")
                .increment(1);
            return Ok(e.settings);
        }
        metrics::counter!("warden_gateway_settings_cache_total", "result" => "miss").increment(1);
        let (settings, version) = self.fetch(tenant_id).await?;
        self.fill(tenant_id, settings.clone(), version, ticket)
            .await;
        Ok(settings)
    }

    /// Taken before reading or writing storage: the epoch the operation began in, if live.
    pub fn ticket(&self) -> Ticket {
        // Epoch, live, epoch again: equal epochs around a live flag mean the flag belongs
        // to that epoch (every transition bumps the epoch).
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let live = self.is_live();
        let same = self.inner.epoch.load(Ordering::Acquire) == epoch;
        Ticket((live && same).then_some(epoch))
    }

    /// Caches what an operation that began at `ticket` learnt, if the watch has stayed
    /// live in that epoch throughout; otherwise drops it.
    async fn fill(
        &self,
        tenant_id: &str,
        settings: Option<Arc<TenantSettings>>,
        version: u64,
        ticket: Ticket,
    ) {
        let Some(epoch) = ticket.0 else { return };
        if !self.is_live() || self.inner.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        self.put_if_newer(
            tenant_id,
            Entry {
                settings,
                version,
                epoch,
            },
        )
        .await;
    }

    async fn fetch(
        &self,
        tenant_id: &str,
    ) -> Result<(Option<Arc<TenantSettings>>, u64), SettingsUnavailable> {
        let mut client = self.inner.client.clone();
        let req = tonic::Request::new(GetTenantSettingsRequest {
            tenant_id: tenant_id.to_owned(),
        });
        match tokio::time::timeout(Duration::from_secs(5), client.get_tenant_settings(req)).await {
            Ok(Ok(resp)) => {
                let pb = resp.into_inner();
                let version = pb.version;
                let settings = settings_from_proto(&pb).map_err(|e| {
                    tracing::error!(tenant = tenant_id, error = %e, "stored tenant settings are invalid; refusing");
                    SettingsUnavailable
                })?;
                Ok((Some(Arc::new(settings)), version))
            }
            Ok(Err(status)) if status.code() == Code::NotFound => Ok((None, 0)),
            Ok(Err(status)) => {
                tracing::warn!(tenant = tenant_id, code = ?status.code(), "storage did not return tenant settings");
                Err(SettingsUnavailable)
            }
            Err(_) => {
                tracing::warn!(
                    tenant = tenant_id,
                    "storage timed out returning tenant settings"
                );
                Err(SettingsUnavailable)
            }
        }
    }

    async fn put_if_newer(&self, tenant_id: &str, entry: Entry) {
        let _ = self
            .inner
            .cache
            .entry(tenant_id.to_owned())
            .and_compute_with(|existing| {
                // An entry of an older epoch is dead whatever its version; within one
                // epoch the newer version wins.
                let keep = existing.is_some_and(|e| {
                    e.value().epoch == entry.epoch && e.value().version > entry.version
                });
                std::future::ready(if keep { Op::Nop } else { Op::Put(entry) })
            })
            .await;
    }

    /// Applies a change this gateway made itself through the Admin API, if the watch was
    /// live in one epoch from before the write (`ticket`) until now. A change made while
    /// the watch was down never enters the cache: after the next SYNC, storage is read.
    pub async fn apply_admin_change(
        &self,
        pb: &warden_proto::common::v1::TenantSettings,
        ticket: Ticket,
    ) {
        self.apply(pb, ticket).await;
    }

    /// Applies a change pushed on the watch stream of epoch `epoch`.
    async fn apply_pushed(&self, pb: &warden_proto::common::v1::TenantSettings, epoch: u64) {
        self.apply(pb, Ticket(Some(epoch))).await;
    }

    async fn apply(&self, pb: &warden_proto::common::v1::TenantSettings, ticket: Ticket) {
        let tenant_id = pb.tenant_id.clone();
        match settings_from_proto(pb) {
            Ok(s) => {
                self.fill(&tenant_id, Some(Arc::new(s)), pb.version, ticket)
                    .await;
            }
            Err(e) => {
                // Unreadable settings must not linger as a stale allow: drop the entry.
                tracing::error!(tenant = %tenant_id, error = %e, "pushed settings are invalid; dropping cache entry");
                self.inner.cache.invalidate(&tenant_id).await;
            }
        }
        // Always announced, cached or not: streams re-read the settings and stop on opt-out.
        let _ = self.inner.changed.send(tenant_id);
    }

    fn go_dark(&self) {
        self.inner.live.store(false, Ordering::Release);
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        self.inner.cache.invalidate_all();
    }

    /// Runs the watch loop until `shutdown` fires: connect, wait for SYNC, apply changes;
    /// on any break go dark (no cache) and reconnect with backoff.
    pub async fn watch(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut suspended = self.inner.suspended.subscribe();
            if *suspended.borrow_and_update() {
                tokio::select! {
                    _ = suspended.wait_for(|s| !*s) => {}
                    _ = shutdown.changed() => { self.go_dark(); return; }
                }
            }
            let mut client = self.inner.client.clone();
            let attempt = async {
                let mut epoch = 0;
                let mut stream = client
                    .watch_tenant_settings(WatchTenantSettingsRequest {})
                    .await?
                    .into_inner();
                while let Some(msg) = stream.next().await {
                    let change = msg?;
                    if change.sync {
                        // A fresh cache per SYNC: nothing learnt before it is served after it.
                        self.inner.live.store(false, Ordering::Release);
                        epoch = self.inner.epoch.fetch_add(1, Ordering::AcqRel) + 1;
                        self.inner.cache.invalidate_all();
                        self.inner.live.store(true, Ordering::Release);
                        self.inner.syncs.fetch_add(1, Ordering::AcqRel);
                        tracing::info!("tenant settings watch is live; cache enabled");
                        backoff = Duration::from_millis(100);
                    } else if let Some(s) = change.settings {
                        self.apply_pushed(&s, epoch).await;
                    }
                }
                Ok::<(), tonic::Status>(())
            };
            tokio::select! {
                res = attempt => {
                    self.go_dark();
                    match res {
                        Ok(()) => tracing::warn!("tenant settings watch ended; cache disabled until it is back"),
                        Err(s) => tracing::warn!(code = ?s.code(), "tenant settings watch failed; cache disabled until it is back"),
                    }
                }
                _ = shutdown.changed() => { self.go_dark(); return; }
                _ = suspended.wait_for(|s| *s) => {
                    self.go_dark();
                    tracing::warn!("tenant settings watch suspended; cache disabled until it is resumed");
                    continue;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
