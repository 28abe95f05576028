//! Investigations driven end to end by a scripted model on the real Anthropic wire,
//! through the real gateway: long runs with several tool calls per step, tool errors,
//! every budget ending a run with its reason, cancellation and opt-out mid-step with a
//! model call in flight, structured findings, and the tenant's view of its runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::time::{Duration, Instant};

use serde_json::json;
use tonic::Code;
use warden_integration_tests::{Options, enabled_tenant};
use warden_proto::agent::v1 as ag;
use warden_proto::storage::v1 as st;
use warden_testkit::{ScriptHandle, Turn};

use warden_integration_tests::scripted::{Scripted, alert, submit};

async fn cluster(limits: warden_agent::RunLimits) -> Scripted {
    Scripted::start(Options {
        run_limits: Some(limits),
        ..Default::default()
    })
    .await
}

async fn run_to_end(s: &Scripted, marker: &str, turns: Vec<Turn>) -> (st::Run, ScriptHandle) {
    s.run_to_end(marker, turns).await
}

async fn logs_tenant(s: &Scripted) {
    s.logs_tenant().await
}

#[tokio::test]
async fn a_long_run_with_several_calls_per_step_and_tool_errors_ends_in_a_structured_finding() {
    let s = cluster(Default::default()).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(
        &s,
        "long-run-1",
        vec![
            Turn::tools([
                ("query_logs", json!({"service": "checkout", "limit": 5})),
                ("log_patterns", json!({"service": "checkout", "limit": 5})),
            ]),
            Turn::tools([
                ("query_logs", json!({"since": "last tuesday"})),
                ("query_metrics", json!({"name": "http_requests_total"})),
            ]),
            Turn::tool("query_logs", json!({"limit": 5, "service": "checkout"})),
            Turn::tool("log_patterns", json!({"service": "checkout", "min_severity": "error"})),
            Turn::answer(
                "Checked.\n{\"summary\": \"payment calls time out after 3s\", \"suspected_cause\": \"the payment timeout was cut to 3s\", \"confidence\": \"medium\", \"evidence\": [\"query_logs step 1\"]}",
            ),
        ],
    )
    .await;
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    assert_eq!(run.steps, 5);
    let calls = script.calls();
    assert_eq!(calls.len(), 5, "one model call per step, none repeated");
    // The alert's first queries reached the model with the trigger, before any tool call.
    let first = &calls[0];
    assert!(first.tool_results.is_empty());
    let model_calls: Vec<_> = run.tool_calls.iter().filter(|c| c.step > 0).collect();
    assert_eq!(model_calls.len(), 6, "{model_calls:?}");
    assert!(
        run.tool_calls
            .iter()
            .any(|c| c.step == 0 && c.tool == "log_patterns"),
        "first queries are recorded as step 0"
    );
    // Step 2: a bad window and a tool the tenant does not allow; both explained, the run goes on.
    let step2 = &calls[2].latest_tool_results;
    assert_eq!(step2.len(), 2);
    assert!(step2.iter().all(|r| r.is_error), "{step2:?}");
    assert!(
        step2[1].content.contains("refused by the tenant's policy"),
        "{}",
        step2[1].content
    );
    // Step 3 repeated step 1's first call (same arguments, other order): refused.
    let repeat = &calls[3].latest_tool_results[0];
    assert!(
        repeat.is_error && repeat.content.contains("already made"),
        "{}",
        repeat.content
    );
    assert_eq!(
        model_calls
            .iter()
            .map(|c| (c.step, c.index))
            .collect::<Vec<_>>(),
        [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (4, 0)]
    );
    // The finding is structured and links to the audit records of its model calls.
    let f = &run.findings[0];
    assert_eq!(f.summary, "payment calls time out after 3s");
    assert_eq!(f.suspected_cause, "the payment timeout was cut to 3s");
    assert_eq!(f.confidence, "medium");
    let evidence: serde_json::Value = serde_json::from_str(&f.evidence_json).unwrap();
    let audited: Vec<String> = evidence["model_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["audit_record_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(audited.len(), 5);
    let records = s.c.audit_records("acme").await;
    for id in &audited {
        assert!(
            records.iter().any(|r| &r.id == id),
            "audit record {id} exists"
        );
    }
    assert_eq!(
        evidence["tool_calls"].as_array().unwrap().len(),
        run.tool_calls.len()
    );
    let usage = run.usage.unwrap();
    assert_eq!(
        usage.input_tokens,
        script.input_tokens(),
        "usage is the provider's"
    );
    assert!(usage.bytes_read["logs"] > 0);
    s.c.stop().await;
}

fn limits(f: impl FnOnce(&mut warden_agent::Budget)) -> warden_agent::RunLimits {
    let mut l = warden_agent::RunLimits::default();
    f(&mut l.budget);
    l
}

/// An endless investigator: a different tool call every turn.
fn endless(n: usize) -> Vec<Turn> {
    (0..n)
        .map(|i| Turn::tool("query_logs", json!({"service": "checkout", "limit": i + 1})))
        .collect()
}

#[tokio::test]
async fn the_last_step_withdraws_the_tools_and_a_model_that_will_not_answer_fails_the_run() {
    let s = cluster(limits(|b| b.max_steps = 3)).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(&s, "steps-1", endless(3)).await;
    assert_eq!(run.status, st::RunStatus::Failed as i32);
    assert!(
        run.status_reason.contains("last of 3 model calls")
            && run.status_reason.contains("no final answer"),
        "{}",
        run.status_reason
    );
    let calls = script.calls();
    assert_eq!(calls.len(), 3, "never more than the step budget");
    assert!(!calls[1].offered_tools.is_empty());
    assert!(
        calls[2].offered_tools.is_empty(),
        "tools withdrawn at the last step"
    );

    let mut answered = endless(2);
    answered.push(Turn::answer(
        "{\"summary\": \"concluded in budget\", \"confidence\": \"low\"}",
    ));
    let (run, _) = run_to_end(&s, "steps-2", answered).await;
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    assert_eq!(run.findings[0].summary, "concluded in budget");
    s.c.stop().await;
}

#[tokio::test]
async fn tool_token_and_byte_budgets_each_end_a_run_with_the_reason() {
    // Tool calls: the third call of a step is refused, then the model must conclude.
    let s = cluster(limits(|b| b.max_tool_calls = 2)).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(
        &s,
        "tools-1",
        vec![
            Turn::tools([
                ("query_logs", json!({"limit": 1})),
                ("query_logs", json!({"limit": 2})),
                ("query_logs", json!({"limit": 3})),
            ]),
            Turn::answer("{\"summary\": \"enough\"}"),
        ],
    )
    .await;
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    let calls = script.calls();
    assert!(
        calls[1].tool_results[2]
            .content
            .contains("budget of 2 tool calls"),
        "{:?}",
        calls[1].tool_results
    );
    assert!(
        calls[1].offered_tools.is_empty(),
        "no tools once the tool budget is used up"
    );
    s.c.stop().await;

    // Output tokens: a verbose model exhausts them and the run stops there.
    let s = cluster(limits(|b| b.max_output_tokens = 500)).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(
        &s,
        "tokens-out",
        vec![Turn::tool("query_logs", json!({"limit": 1})).with_output_tokens(600)],
    )
    .await;
    assert_eq!(run.status, st::RunStatus::Failed as i32);
    assert!(
        run.status_reason.contains("output-token budget of 500"),
        "{}",
        run.status_reason
    );
    assert_eq!(script.calls().len(), 1);
    s.c.stop().await;

    // Input tokens: near the budget the model must conclude, tools withdrawn; one that
    // will not fails the run with the reason, and no call goes past the budget. (The
    // first call, brief and tool definitions, takes about 1 400 tokens: past 85 % of 1 600.)
    let s = cluster(limits(|b| b.max_input_tokens = 1600)).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(&s, "tokens-in", endless(3)).await;
    assert_eq!(run.status, st::RunStatus::Failed as i32);
    assert!(
        run.status_reason.contains("input-token budget"),
        "{}",
        run.status_reason
    );
    let calls = script.calls();
    assert!(
        calls.last().unwrap().offered_tools.is_empty(),
        "the last call offered no tools"
    );
    let before_last: u64 = calls[..calls.len() - 1]
        .iter()
        .map(|c| c.input_tokens)
        .sum();
    assert!(
        before_last < 1600,
        "a call starts only while within the budget: {before_last}"
    );
    s.c.stop().await;

    // Bytes per data type: logs beyond the budget are refused; the model is told why.
    let s = cluster(limits(|b| b.max_bytes_per_data_type = 1500)).await;
    logs_tenant(&s).await;
    let (run, script) = run_to_end(
        &s,
        "bytes-1",
        vec![
            Turn::tool("query_logs", json!({"service": "checkout", "limit": 40})),
            Turn::answer("{\"summary\": \"partial\"}"),
        ],
    )
    .await;
    assert_eq!(run.status, st::RunStatus::Succeeded as i32);
    let refused = &script.calls()[1].latest_tool_results[0];
    assert!(
        refused.is_error && refused.content.contains("budget for logs is 1500 bytes"),
        "{}",
        refused.content
    );
    assert!(
        run.usage
            .unwrap()
            .bytes_read
            .get("logs")
            .copied()
            .unwrap_or(0)
            <= 1500
    );
    s.c.stop().await;
}

#[tokio::test]
async fn the_wall_time_budget_ends_a_run_that_waits_too_long() {
    let s = cluster(limits(|b| b.max_wall = Duration::from_secs(2))).await;
    logs_tenant(&s).await;
    let script = s.model.script(
        "wall-1",
        vec![
            Turn::tool("query_logs", json!({"limit": 1})).held(),
            Turn::answer("late"),
        ],
    );
    let run = submit(&s.c, alert("acme", "wall-1")).await;
    script.reached().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    script.release();
    let run = s.c.wait_run("acme", &run.id).await;
    assert_eq!(run.status, st::RunStatus::Failed as i32);
    assert!(
        run.status_reason.contains("wall-time budget of 2 s"),
        "{}",
        run.status_reason
    );
    assert_eq!(script.calls().len(), 1, "no model call after the budget");
    s.c.stop().await;
}

#[tokio::test]
async fn cancelling_a_run_stops_it_mid_step_and_records_who_did() {
    let s = cluster(Default::default()).await;
    logs_tenant(&s).await;
    s.c.issue(warden_tls::Role::Admin, "ops-acme", &["acme"]);
    s.c.issue(warden_tls::Role::Admin, "ops-beta", &["beta"]);
    let script = s.model.script(
        "cancel-1",
        vec![
            Turn::tool("query_logs", json!({"limit": 1})),
            Turn::answer("never").held(),
        ],
    );
    let run = submit(&s.c, alert("acme", "cancel-1")).await;
    script.reached().await;
    let denied =
        s.c.agent("ops-beta")
            .cancel_run(ag::CancelRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
                reason: "not mine".into(),
            })
            .await
            .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let started = Instant::now();
    let cancelled =
        s.c.agent("ops-acme")
            .cancel_run(ag::CancelRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
                reason: "false alarm".into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(cancelled.status, st::RunStatus::Cancelled as i32);
    assert!(
        cancelled.status_reason.contains("admin/ops-acme")
            && cancelled.status_reason.contains("false alarm"),
        "{}",
        cancelled.status_reason
    );
    tokio::time::timeout(Duration::from_secs(1), script.dropped(1))
        .await
        .expect("the model call in flight is abandoned within a second");
    assert!(started.elapsed() < Duration::from_secs(1));
    let again =
        s.c.agent("ops-acme")
            .cancel_run(ag::CancelRunRequest {
                tenant_id: "acme".into(),
                run_id: run.id.clone(),
                reason: String::new(),
            })
            .await
            .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = s.c.wait_run("acme", &run.id).await;
    assert_eq!(
        after.status,
        st::RunStatus::Cancelled as i32,
        "the worker kept the cancellation"
    );
    assert_eq!(
        script.calls().len(),
        2,
        "no model call after the cancellation"
    );
    s.c.stop().await;
}

#[tokio::test]
async fn opting_out_cancels_a_run_within_a_second_with_a_model_call_in_flight() {
    let s = cluster(Default::default()).await;
    logs_tenant(&s).await;
    let script = s.model.script(
        "optout-1",
        vec![
            Turn::tool("query_logs", json!({"limit": 1})).held(),
            Turn::answer("never"),
        ],
    );
    let run = submit(&s.c, alert("acme", "optout-1")).await;
    script.reached().await;
    let started = Instant::now();
    let mut off = enabled_tenant("acme");
    off.enabled = false;
    s.c.set_tenant(off).await;
    tokio::time::timeout(Duration::from_secs(1), script.dropped(1))
        .await
        .expect("the model call in flight is abandoned within a second of the opt-out");
    let run = s.c.wait_run("acme", &run.id).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.status, st::RunStatus::Cancelled as i32);
    assert!(
        run.status_reason.contains("disabled"),
        "{}",
        run.status_reason
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(script.calls().len(), 1, "nothing more reached the model");
    s.c.stop().await;
}

#[tokio::test]
async fn a_tenant_reads_its_runs_and_findings_through_a_read_only_identity() {
    let s = cluster(Default::default()).await;
    logs_tenant(&s).await;
    s.c.issue(warden_tls::Role::Viewer, "viewer-acme", &["acme"]);
    s.c.issue(warden_tls::Role::Viewer, "viewer-beta", &["beta"]);
    let (done, _) = run_to_end(
        &s,
        "view-1",
        vec![Turn::answer("{\"summary\": \"all good\"}")],
    )
    .await;
    let mut viewer = s.c.agent("viewer-acme");
    let listed = viewer
        .list_runs(ag::ListRunsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, done.id);
    let read = viewer
        .get_run(ag::GetRunRequest {
            tenant_id: "acme".into(),
            run_id: done.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.findings[0].summary, "all good");
    let write = viewer
        .submit_trigger(alert("acme", "view-2"))
        .await
        .unwrap_err();
    assert_eq!(
        write.code(),
        Code::PermissionDenied,
        "a viewer changes nothing"
    );
    let cancel = viewer
        .cancel_run(ag::CancelRunRequest {
            tenant_id: "acme".into(),
            run_id: done.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::PermissionDenied);
    let other =
        s.c.agent("viewer-beta")
            .list_runs(ag::ListRunsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    s.c.stop().await;
}
