//! Workers: each replica runs `workers` loops that lease runs from storage's queue,
//! keep the lease alive while they execute, and stop a run the moment it is cancelled —
//! by a person (seen at the next renewal, or at once on the replica that took the
//! request), or because its tenant opted out (pushed to every replica by the tenant
//! settings watch), a model call in flight included: the call's future is dropped,
//! which cancels the gRPC stream to the gateway and the gateway's provider request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::Code;
use warden_proto::storage::v1 as st;

use crate::Agent;

/// Why a run stops before it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halt {
    /// Cancelled (the run's status in storage already says so, with this reason).
    Cancelled(String),
    /// Another worker holds the run now; this one must not write anything more.
    LeaseLost,
    /// This replica is shutting down; another takes the run over after the lease.
    Shutdown,
}

/// A run this replica executes: its tenant, and the signal that stops it.
type Entry = (String, watch::Sender<Option<Halt>>);

/// The runs this replica executes, by run id.
#[derive(Default)]
pub(crate) struct Running {
    runs: Mutex<HashMap<String, Entry>>,
}

impl Running {
    fn insert(&self, run_id: &str, tenant: &str) -> watch::Receiver<Option<Halt>> {
        let (tx, rx) = watch::channel(None);
        self.lock()
            .insert(run_id.to_owned(), (tenant.to_owned(), tx));
        rx
    }

    fn remove(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops one run if this replica executes it.
    pub(crate) fn halt(&self, run_id: &str, why: Halt) -> bool {
        match self.lock().get(run_id) {
            Some((_, tx)) => {
                tx.send_if_modified(|h| {
                    h.is_none() && {
                        *h = Some(why);
                        true
                    }
                });
                true
            }
            None => false,
        }
    }

    /// Stops every run of the tenant that this replica executes.
    pub(crate) fn halt_tenant(&self, tenant_id: &str, why: &str) -> usize {
        let runs = self.lock();
        let mut n = 0;
        for (tenant, tx) in runs.values() {
            if tenant == tenant_id {
                tx.send_if_modified(|h| {
                    h.is_none() && {
                        *h = Some(Halt::Cancelled(why.to_owned()));
                        true
                    }
                });
                n += 1;
            }
        }
        n
    }

    fn halt_all(&self, why: Halt) {
        for (_, tx) in self.lock().values() {
            tx.send_if_modified(|h| {
                h.is_none() && {
                    *h = Some(why.clone());
                    true
                }
            });
        }
    }
}

/// Resolves when the run must stop, with why.
pub(crate) async fn halted(rx: &mut watch::Receiver<Option<Halt>>) -> Halt {
    match rx.wait_for(Option::is_some).await {
        Ok(h) => h.clone().unwrap_or(Halt::Shutdown),
        Err(_) => Halt::Shutdown,
    }
}

impl Agent {
    /// Starts this replica's workers and its tenant-settings watch; they stop when
    /// `shutdown` turns true (runs in flight are left to be resumed elsewhere).
    pub fn spawn_workers(&self, shutdown: watch::Receiver<bool>) {
        for slot in 0..self.inner.limits.workers.max(1) {
            let agent = self.clone();
            let shutdown = shutdown.clone();
            let worker = format!("{}/{slot}", self.inner.replica);
            tokio::spawn(async move { agent.work(worker, shutdown).await });
        }
        let agent = self.clone();
        tokio::spawn(async move { agent.watch_opt_outs(shutdown).await });
    }

    async fn work(self, worker: String, mut shutdown: watch::Receiver<bool>) {
        let limits = self.inner.limits;
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut runs = self.inner.runs.clone();
            let leased = runs
                .lease_run(st::LeaseRunRequest {
                    worker: worker.clone(),
                    lease_ms: limits.lease.as_millis() as u64,
                    max_running_per_tenant: limits.max_running_per_tenant,
                    max_attempts: limits.max_attempts,
                })
                .await;
            let idle = match leased {
                Ok(r) => match r.into_inner() {
                    st::LeaseRunResponse {
                        run: Some(run),
                        state,
                    } => {
                        backoff = Duration::from_millis(100);
                        self.drive(&worker, run, state, &shutdown).await;
                        continue;
                    }
                    _ => Duration::from_millis(500),
                },
                Err(s) => {
                    tracing::warn!(code = ?s.code(), worker = %worker, "could not lease a run; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Executes one leased run, renewing its lease until it ends.
    async fn drive(
        &self,
        worker: &str,
        run: st::Run,
        state: Vec<u8>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let halt = self.inner.running.insert(&run.id, &run.tenant_id);
        let renewer = {
            let agent = self.clone();
            let (worker, tenant, run_id) =
                (worker.to_owned(), run.tenant_id.clone(), run.id.clone());
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let lease = agent.inner.limits.lease;
                let every = (lease / 3).min(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = shutdown.changed() => {
                            agent.inner.running.halt(&run_id, Halt::Shutdown);
                            return;
                        }
                    }
                    let mut runs = agent.inner.runs.clone();
                    match runs
                        .renew_lease(st::RenewLeaseRequest {
                            tenant_id: tenant.clone(),
                            run_id: run_id.clone(),
                            worker: worker.clone(),
                            lease_ms: lease.as_millis() as u64,
                        })
                        .await
                    {
                        Ok(r) => {
                            let r = r.into_inner();
                            if r.status != st::RunStatus::Running as i32 {
                                agent
                                    .inner
                                    .running
                                    .halt(&run_id, Halt::Cancelled(r.status_reason));
                                return;
                            }
                        }
                        Err(s) if s.code() == Code::FailedPrecondition => {
                            agent.inner.running.halt(&run_id, Halt::LeaseLost);
                            return;
                        }
                        // Storage unreachable: keep trying until the lease runs out; the
                        // run's own writes fail closed meanwhile.
                        Err(s) => {
                            tracing::warn!(run = %run_id, code = ?s.code(), "could not renew a lease")
                        }
                    }
                }
            })
        };
        self.execute(worker, run.clone(), state, halt).await;
        renewer.abort();
        self.inner.running.remove(&run.id);
    }

    /// Cancels the tenant's runs on this replica when its settings say it opted out
    /// (storage already marked them CANCELLED in the same transaction).
    async fn watch_opt_outs(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut tenants = self.inner.tenants.clone();
            let attempt = async {
                let mut stream = tenants
                    .watch_tenant_settings(st::WatchTenantSettingsRequest {})
                    .await?
                    .into_inner();
                while let Some(change) = stream.next().await {
                    let change = change?;
                    if let Some(s) = change.settings.filter(|s| !s.enabled) {
                        let why = format!(
                            "cancelled: AI features were disabled for tenant {} (settings version {})",
                            s.tenant_id, s.version
                        );
                        let n = self.inner.running.halt_tenant(&s.tenant_id, &why);
                        if n > 0 {
                            tracing::info!(tenant = %s.tenant_id, runs = n, "stopped runs: the tenant opted out");
                        }
                    }
                }
                Ok::<(), tonic::Status>(())
            };
            tokio::select! {
                res = attempt => {
                    if let Err(s) = res {
                        tracing::warn!(code = ?s.code(), "tenant settings watch failed; reconnecting");
                    }
                }
                _ = shutdown.changed() => {
                    self.inner.running.halt_all(Halt::Shutdown);
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
