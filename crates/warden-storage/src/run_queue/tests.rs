//! The run queue on SQLite and PostgreSQL, through the real RunStore handlers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tonic::Code;
use warden_proto::common::v1::{Purpose, TenantSettings};
use warden_proto::storage::v1::run_store_server::RunStore;
use warden_proto::storage::v1::*;

use crate::Storage;
use crate::signals::tests::agent;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                let store = crate::signals::tests::sqlite().await;
                super::$case(&store.s).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(store) = crate::signals::tests::postgres().await else { return };
                super::$case(&store.s).await;
            }
        }
    )*};
}

on_both_backends!(
    a_run_is_leased_by_one_worker_and_resumed_after_its_lease_expires,
    keys_make_each_event_one_run_and_a_skipped_run_holds_none,
    cancelling_and_opting_out_stop_queued_and_running_runs,
    queue_depth_rate_and_per_tenant_concurrency_are_enforced,
    a_run_whose_workers_keep_dying_is_failed_not_left_running,
    runs_are_listed_newest_first_with_filters_and_pages,
);

async fn create(s: &Storage, tenant: &str, keys: &[&str]) -> CreateRunResponse {
    s.create_run(agent(CreateRunRequest {
        tenant_id: tenant.into(),
        purpose: Purpose::Alert as i32,
        trigger_json: r#"{"title":"t"}"#.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
}

async fn lease(s: &Storage, worker: &str, lease_ms: u64) -> LeaseRunResponse {
    s.lease_run(agent(LeaseRunRequest {
        worker: worker.into(),
        lease_ms,
        max_running_per_tenant: 0,
        max_attempts: 3,
    }))
    .await
    .unwrap()
    .into_inner()
}

fn checkpoint(
    tenant: &str,
    run: &str,
    worker: &str,
    step: u32,
    state: &[u8],
) -> CheckpointRunRequest {
    CheckpointRunRequest {
        tenant_id: tenant.into(),
        run_id: run.into(),
        worker: worker.into(),
        step,
        state: state.to_vec(),
        usage: Some(RunUsage {
            input_tokens: 10 * u64::from(step),
            ..Default::default()
        }),
    }
}

fn tool_call(
    tenant: &str,
    run: &str,
    worker: &str,
    step: u32,
    index: u32,
    tool: &str,
) -> RecordToolCallRequest {
    RecordToolCallRequest {
        tenant_id: tenant.into(),
        run_id: run.into(),
        worker: worker.into(),
        call: Some(ToolCallRecord {
            step,
            index,
            tool: tool.into(),
            allowed: true,
            ..Default::default()
        }),
    }
}

async fn a_run_is_leased_by_one_worker_and_resumed_after_its_lease_expires(s: &Storage) {
    let created = create(s, "acme", &["am:fp1@1"]).await;
    let run = created.run.unwrap();
    assert_eq!(run.status, RunStatus::Queued as i32);
    let first = lease(s, "w1", 1000).await;
    let leased = first.run.expect("w1 gets the queued run");
    assert_eq!((leased.id.as_str(), leased.attempts), (run.id.as_str(), 1));
    assert!(first.state.is_empty(), "nothing recorded yet");
    assert!(
        lease(s, "w2", 1000).await.run.is_none(),
        "a leased run is not leased twice"
    );
    s.record_tool_call(agent(tool_call("acme", &run.id, "w1", 1, 0, "query_logs")))
        .await
        .unwrap();
    s.checkpoint_run(agent(checkpoint("acme", &run.id, "w1", 1, b"after step 1")))
        .await
        .unwrap();
    let again = s
        .checkpoint_run(agent(checkpoint("acme", &run.id, "w1", 1, b"again")))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    let foreign = s
        .checkpoint_run(agent(checkpoint("acme", &run.id, "w2", 2, b"x")))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::FailedPrecondition, "{foreign:?}");
    // w1 stops renewing (it died): after the lease, w2 takes the run over from step 1.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = lease(s, "w2", 5000).await;
    let resumed = second.run.expect("an expired lease is leasable again");
    assert_eq!(resumed.id, run.id);
    assert_eq!(resumed.attempts, 2);
    assert_eq!(resumed.steps, 1);
    assert_eq!(second.state, b"after step 1", "the last recorded state");
    assert!(resumed.events.iter().any(|e| e.kind == "resumed"));
    // The dead worker can no longer write anything.
    let renew = s
        .renew_lease(agent(RenewLeaseRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
            worker: "w1".into(),
            lease_ms: 1000,
        }))
        .await
        .unwrap_err();
    assert_eq!(renew.code(), Code::FailedPrecondition);
    let late = s
        .record_tool_call(agent(tool_call("acme", &run.id, "w1", 2, 0, "query_logs")))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    // w2 re-runs step 2 twice (a retry): one record per (step, index).
    for tool in ["query_metrics", "get_trace"] {
        s.record_tool_call(agent(tool_call("acme", &run.id, "w2", 2, 0, tool)))
            .await
            .unwrap();
    }
    s.checkpoint_run(agent(checkpoint("acme", &run.id, "w2", 2, b"after step 2")))
        .await
        .unwrap();
    let done = s
        .update_run(agent(UpdateRunRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
            status: RunStatus::Succeeded as i32,
            worker: "w2".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, RunStatus::Succeeded as i32);
    assert_eq!(done.steps, 2);
    assert_eq!(done.usage.unwrap().input_tokens, 20);
    let tools: Vec<_> = done
        .tool_calls
        .iter()
        .map(|c| (c.step, c.tool.as_str()))
        .collect();
    assert_eq!(tools, vec![(1, "query_logs"), (2, "get_trace")]);
    assert!(
        lease(s, "w3", 1000).await.run.is_none(),
        "a finished run is never leased"
    );
}

async fn keys_make_each_event_one_run_and_a_skipped_run_holds_none(s: &Storage) {
    let a = create(s, "acme", &["k1", "k2"]).await;
    assert!(!a.duplicate);
    let repeat = create(s, "acme", &["k2", "k1"]).await;
    assert!(repeat.duplicate, "a repeat notification starts nothing");
    assert_eq!(repeat.run.unwrap().id, a.run.as_ref().unwrap().id);
    let partly_new = create(s, "acme", &["k2", "k3"]).await;
    assert!(
        !partly_new.duplicate,
        "a new alert in the group is a new run"
    );
    assert_eq!(partly_new.run.unwrap().keys, vec!["k3".to_owned()]);
    // Another tenant's identical key is its own.
    assert!(!create(s, "beta", &["k1"]).await.duplicate);
    // While AI is off, the event is recorded as SKIPPED and claims nothing.
    let skipped = s
        .create_run(agent(CreateRunRequest {
            tenant_id: "acme".into(),
            purpose: Purpose::Alert as i32,
            keys: vec!["k9".into()],
            status: RunStatus::Skipped as i32,
            status_reason: "AI is off".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(skipped.run.unwrap().status, RunStatus::Skipped as i32);
    let later = create(s, "acme", &["k9"]).await;
    assert!(
        !later.duplicate,
        "fired while AI was off, investigated once it is on"
    );
    let event = s
        .attach_run_event(agent(AttachRunEventRequest {
            tenant_id: "acme".into(),
            key: "k1".into(),
            event: Some(RunEvent {
                kind: "resolved".into(),
                detail_json: r#"{"endsAt":"2026-12-05T10:00:00Z"}"#.into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(event.id, a.run.unwrap().id);
    assert_eq!(event.events.last().unwrap().kind, "resolved");
    let missing = s
        .attach_run_event(agent(AttachRunEventRequest {
            tenant_id: "beta".into(),
            key: "k2".into(),
            event: Some(RunEvent {
                kind: "resolved".into(),
                detail_json: "{}".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "keys never cross tenants");
}

async fn cancelling_and_opting_out_stop_queued_and_running_runs(s: &Storage) {
    s.put_tenant_settings(
        TenantSettings {
            tenant_id: "acme".into(),
            enabled: true,
            ..Default::default()
        },
        0,
        "admin/test",
    )
    .await
    .unwrap();
    let queued = create(s, "acme", &[]).await.run.unwrap();
    let cancelled = s
        .cancel_run(agent(CancelRunRequest {
            tenant_id: "acme".into(),
            run_id: queued.id.clone(),
            reason: "cancelled by admin/ops: noisy alert".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, RunStatus::Cancelled as i32);
    assert!(cancelled.status_reason.contains("noisy alert"));
    let twice = s
        .cancel_run(agent(CancelRunRequest {
            tenant_id: "acme".into(),
            run_id: queued.id.clone(),
            reason: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert!(
        lease(s, "w1", 5000).await.run.is_none(),
        "a cancelled run is never leased"
    );

    let running = create(s, "acme", &[]).await.run.unwrap();
    let waiting = create(s, "acme", &[]).await.run.unwrap();
    let other = create(s, "beta", &[]).await.run.unwrap();
    assert_eq!(lease(s, "w1", 5000).await.run.unwrap().id, running.id);
    s.put_tenant_settings(
        TenantSettings {
            tenant_id: "acme".into(),
            enabled: false,
            ..Default::default()
        },
        0,
        "admin/test",
    )
    .await
    .unwrap();
    for id in [&running.id, &waiting.id] {
        let r = s.load_run("acme", id).await.unwrap();
        assert_eq!(r.status, RunStatus::Cancelled as i32, "{id}");
        assert!(r.status_reason.contains("disabled"), "{}", r.status_reason);
    }
    let renewed = s
        .renew_lease(agent(RenewLeaseRequest {
            tenant_id: "acme".into(),
            run_id: running.id.clone(),
            worker: "w1".into(),
            lease_ms: 5000,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        renewed.status,
        RunStatus::Cancelled as i32,
        "the worker sees it at renewal"
    );
    let step = s
        .checkpoint_run(agent(checkpoint("acme", &running.id, "w1", 1, b"x")))
        .await
        .unwrap_err();
    assert_eq!(step.code(), Code::FailedPrecondition);
    let fin = s
        .update_run(agent(UpdateRunRequest {
            tenant_id: "acme".into(),
            run_id: running.id.clone(),
            status: RunStatus::Succeeded as i32,
            worker: "w1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fin.status,
        RunStatus::Cancelled as i32,
        "a cancelled run stays cancelled"
    );
    let beta = s.load_run("beta", &other.id).await.unwrap();
    assert_eq!(
        beta.status,
        RunStatus::Queued as i32,
        "other tenants are untouched"
    );
}

async fn queue_depth_rate_and_per_tenant_concurrency_are_enforced(s: &Storage) {
    let limited = |max_queued, max_started_per_minute| CreateRunRequest {
        tenant_id: "acme".into(),
        purpose: Purpose::Alert as i32,
        max_queued,
        max_started_per_minute,
        ..Default::default()
    };
    for _ in 0..2 {
        s.create_run(agent(limited(2, 0))).await.unwrap();
    }
    let deep = s.create_run(agent(limited(2, 0))).await.unwrap_err();
    assert_eq!(deep.code(), Code::ResourceExhausted);
    assert!(deep.message().contains("queued"), "{}", deep.message());
    let fast = s.create_run(agent(limited(0, 2))).await.unwrap_err();
    assert_eq!(fast.code(), Code::ResourceExhausted);
    assert!(fast.message().contains("last minute"), "{}", fast.message());
    let beta = create(s, "beta", &[]).await.run.unwrap();
    let one_each = |worker: &'static str| LeaseRunRequest {
        worker: worker.into(),
        lease_ms: 5000,
        max_running_per_tenant: 1,
        max_attempts: 3,
    };
    let a = s
        .lease_run(agent(one_each("w1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.run.unwrap().tenant_id, "acme");
    let b = s
        .lease_run(agent(one_each("w2")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        b.run.unwrap().id,
        beta.id,
        "acme is at its limit; beta's run goes next"
    );
    let none = s
        .lease_run(agent(one_each("w3")))
        .await
        .unwrap()
        .into_inner();
    assert!(none.run.is_none(), "acme's second run waits for its first");
}

async fn a_run_whose_workers_keep_dying_is_failed_not_left_running(s: &Storage) {
    let run = create(s, "acme", &[]).await.run.unwrap();
    for worker in ["w1", "w2", "w3"] {
        assert!(lease(s, worker, 1000).await.run.is_some(), "{worker}");
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    assert!(lease(s, "w4", 1000).await.run.is_none());
    let failed = s.load_run("acme", &run.id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed as i32);
    assert!(
        failed.status_reason.contains("stopped 3 times"),
        "{}",
        failed.status_reason
    );
}

async fn runs_are_listed_newest_first_with_filters_and_pages(s: &Storage) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(s, "acme", &[]).await.run.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    create(s, "beta", &[]).await;
    let list =
        |status: RunStatus, limit: u32, before: Option<prost_types::Timestamp>| ListRunsRequest {
            tenant_id: "acme".into(),
            status: status as i32,
            limit,
            before,
        };
    let all = s
        .list_runs(agent(list(RunStatus::Unspecified, 0, None)))
        .await
        .unwrap()
        .into_inner()
        .runs;
    let got: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
    let want: Vec<_> = ids.iter().rev().map(|r| r.id.clone()).collect();
    assert_eq!(got, want, "newest first, only acme's");
    let page = s
        .list_runs(agent(list(RunStatus::Unspecified, 1, all[0].created_at)))
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(page[0].id, ids[1].id);
    let running = s
        .list_runs(agent(list(RunStatus::Running, 0, None)))
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(running.is_empty());
}
