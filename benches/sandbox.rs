//! Criterion: what running each investigation in its own confined worker costs, against
//! the same investigation with its conversation on a task inside the agent service
//! (`isolation = "none"`), in the same process and run, over the whole path (queue,
//! lease, broker, gateway over mTLS with durable audit, storage, the offline `local`
//! model).
//!
//! - `run/1-step`: a tenant whose settings offer no tools, so the model answers at once:
//!   worker start (spawn, confinement, attestation checked against /proc, self checks,
//!   the record stored with the run) is the difference between the two.
//! - `run/3-steps`: the `local` model calls the two tools it can (no arguments needed), one per step, then answers; the
//!   difference minus the 1-step one, over two steps, is what each step adds.
//!
//! `cargo bench -p warden-benches --bench sandbox`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench set-up")]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden_agent::isolation::Isolation;
use warden_integration_tests::{Cluster, Options, enabled_tenant};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;

/// `isolation` `None`: the real sandbox, as `warden serve agent` sets it up, with `worker`.
async fn cluster(isolation: Option<Isolation>, worker: std::path::PathBuf) -> Cluster {
    // No per-tenant start rate or queue limit in the way of the measurement.
    let limits = warden_agent::RunLimits {
        max_started_per_minute: 100_000,
        max_queued_per_tenant: 100_000,
        ..Default::default()
    };
    let c = Cluster::start_with(Options {
        isolation,
        worker_program: Some(worker),
        run_limits: Some(limits),
        ..Default::default()
    })
    .await;
    // Tools: logs (the local model calls up to four, one per step). None: it answers.
    c.set_tenant(enabled_tenant("tools")).await;
    c.set_tenant(pb::TenantSettings {
        allowed_data_types: vec![],
        ..enabled_tenant("quiet")
    })
    .await;
    c
}

/// Submits one investigation and waits (polling every 200 µs) until it ends.
async fn one_run(c: &Cluster, tenant: &str, n: u64, steps: u32) -> Duration {
    let mut agent = c.agent("agent");
    let started = Instant::now();
    let run = agent
        .submit_trigger(ag::SubmitTriggerRequest {
            tenant_id: tenant.into(),
            purpose: pb::Purpose::UserQuestion as i32,
            title: format!("why is checkout slow ({n})"),
            fingerprint: format!("bench-{tenant}-{n}-{}", uuid_like()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    loop {
        let r = agent
            .get_run(ag::GetRunRequest {
                tenant_id: tenant.into(),
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.status != st::RunStatus::Running as i32 && r.status != st::RunStatus::Queued as i32 {
            assert_eq!(
                r.status,
                st::RunStatus::Succeeded as i32,
                "{}",
                r.status_reason
            );
            assert_eq!(r.steps, steps, "the run took the steps it is measured for");
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn sandbox_cost(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let worker = std::path::PathBuf::from(env!("CARGO_BIN_EXE_warden-bench-worker"));
    let mut group = c.benchmark_group("run");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (name, isolation) in [
        ("in-process", Some(Isolation::InProcess)),
        ("sandboxed", None),
    ] {
        let cl = rt.block_on(cluster(isolation, worker.clone()));
        let mut n = 0u64;
        for (label, tenant, steps) in [("1-step", "quiet", 1), ("3-steps", "tools", 3)] {
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            n += 1;
                            total += one_run(&cl, tenant, n, steps).await;
                        }
                        total
                    })
                });
            });
        }
        rt.block_on(cl.stop());
    }
    group.finish();
}

criterion_group!(benches, sandbox_cost);
criterion_main!(benches);
