//! Starting each service: shared by `warden up` (all three) and `warden serve` (one).
//! The gateway and agent always reach storage over gRPC, never in-process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_gateway::{Gateway, Providers};
use warden_rpc::{Limits, Security, ServiceHost};

pub type Task = JoinHandle<anyhow::Result<()>>;

/// Resolves once `rx` turns true (or its sender is gone).
pub async fn shutdown_future(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub async fn start_storage(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    database_url: &str,
    master_key: &Path,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let db = warden_storage::Db::connect(database_url)
        .await
        .with_context(|| "cannot open the storage database")?;
    let sealer = warden_storage::Sealer::load_or_create(master_key)?;
    let storage = warden_storage::Storage::open(db, sealer).await?;
    let host = ServiceHost {
        component: "storage",
        security,
        limits,
    };
    let routes = storage.routes(&host);
    Ok(tokio::spawn(async move {
        host.serve(
            listener,
            routes,
            &warden_storage::Storage::SERVICES,
            shutdown_future(shutdown),
        )
        .await?;
        Ok(())
    }))
}

/// A gateway that reaches storage at `storage_addr` over gRPC with `security`.
pub fn gateway(
    storage_addr: &str,
    security: &Security,
    providers: Providers,
) -> anyhow::Result<Gateway> {
    let storage = warden_rpc::connect(storage_addr, security, Duration::from_secs(3))?;
    Ok(Gateway::new(storage, providers))
}

pub fn start_gateway(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    gateway: Gateway,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let watch = gateway.spawn_settings_watch(shutdown.clone());
    let host = ServiceHost {
        component: "gateway",
        security,
        limits,
    };
    let routes = gateway.routes(&host);
    Ok(tokio::spawn(async move {
        host.serve(
            listener,
            routes,
            &Gateway::SERVICES,
            shutdown_future(shutdown),
        )
        .await?;
        watch.abort();
        Ok(())
    }))
}

pub fn start_agent(
    listener: TcpListener,
    security: Security,
    limits: Limits,
    gateway_addr: &str,
    storage_addr: &str,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let gateway = warden_rpc::connect(gateway_addr, &security, Duration::from_secs(3))?;
    let storage = warden_rpc::connect(storage_addr, &security, Duration::from_secs(3))?;
    let agent = warden_agent::Agent::new(gateway, storage, warden_agent::RunLimits::default());
    let host = ServiceHost {
        component: "agent",
        security,
        limits,
    };
    let routes = agent.routes(&host);
    Ok(tokio::spawn(async move {
        host.serve(
            listener,
            routes,
            &warden_agent::Agent::SERVICES,
            shutdown_future(shutdown),
        )
        .await?;
        Ok(())
    }))
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    Ok(warden_rpc::bind(addr).await?)
}
