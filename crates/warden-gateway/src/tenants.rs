//! Tenant settings as the gateway sees them: cached, and kept true by a watch stream.
//!
//! **Mechanism.** Every gateway holds one `WatchTenantSettings` stream to storage. Storage
//! pushes each committed change to every stream, and the gateway overwrites its cache
//! entry with the new version at once. The cache is used only while the stream is live:
//! until the stream has said SYNC, and from the moment it breaks, every request reads
//! storage directly, and if storage cannot answer the request is refused (fail closed).
//! Fills from direct reads never overwrite a newer version, and fills that started in an
//! earlier watch epoch are discarded, so a stale read can't be cached after a reconnect.

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
}

#[derive(Clone)]
pub struct Tenants {
    inner: Arc<Inner>,
}

struct Inner {
    client: TenantStoreClient<Channel>,
    cache: Cache<String, Entry>,
    live: AtomicBool,
    epoch: AtomicU64,
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
                changed,
            }),
        }
    }

    /// Whether the watch stream is live (cache in use).
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Notifications of tenants whose settings changed.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.changed.subscribe()
    }

    /// The tenant's settings: `Ok(None)` for a tenant storage does not know.
    pub async fn get(
        &self,
        tenant_id: &str,
    ) -> Result<Option<Arc<TenantSettings>>, SettingsUnavailable> {
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let live = self.is_live();
        if live && let Some(e) = self.inner.cache.get(tenant_id).await {
            metrics::counter!("warden_gateway_settings_cache_total", "result" => "hit")
                .increment(1);
            return Ok(e.settings);
        }
        metrics::counter!("warden_gateway_settings_cache_total", "result" => "miss").increment(1);
        let entry = self.fetch(tenant_id).await?;
        if live && self.is_live() && self.inner.epoch.load(Ordering::Acquire) == epoch {
            self.put_if_newer(tenant_id, entry.clone()).await;
        }
        Ok(entry.settings)
    }

    async fn fetch(&self, tenant_id: &str) -> Result<Entry, SettingsUnavailable> {
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
                Ok(Entry {
                    settings: Some(Arc::new(settings)),
                    version,
                })
            }
            Ok(Err(status)) if status.code() == Code::NotFound => Ok(Entry {
                settings: None,
                version: 0,
            }),
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
                let keep = existing.is_some_and(|e| e.value().version > entry.version);
                std::future::ready(if keep { Op::Nop } else { Op::Put(entry) })
            })
            .await;
    }

    /// Applies a change this gateway learnt of (from the watch, or from its own Admin call).
    pub async fn apply_change(&self, pb: &warden_proto::common::v1::TenantSettings) {
        let tenant_id = pb.tenant_id.clone();
        match settings_from_proto(pb) {
            Ok(s) => {
                self.put_if_newer(
                    &tenant_id,
                    Entry {
                        settings: Some(Arc::new(s)),
                        version: pb.version,
                    },
                )
                .await;
            }
            Err(e) => {
                // Unreadable settings must not linger as a stale allow: drop the entry.
                tracing::error!(tenant = %tenant_id, error = %e, "pushed settings are invalid; dropping cache entry");
                self.inner.cache.invalidate(&tenant_id).await;
            }
        }
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
            let mut client = self.inner.client.clone();
            let attempt = async {
                let mut stream = client
                    .watch_tenant_settings(WatchTenantSettingsRequest {})
                    .await?
                    .into_inner();
                while let Some(msg) = stream.next().await {
                    let change = msg?;
                    if change.sync {
                        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
                        self.inner.live.store(true, Ordering::Release);
                        tracing::info!("tenant settings watch is live; cache enabled");
                        backoff = Duration::from_millis(100);
                    } else if let Some(s) = change.settings {
                        self.apply_change(&s).await;
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
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
