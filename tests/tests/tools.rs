//! The agent's tools as a model meets them: only the tools the tenant allows at that
//! moment are offered or run, a refusal is an explanation (never a failed run), every call
//! is scoped to the incident window and recorded with the run.
//!
//! The model is scripted (`warden_integration_tests::model`); everything else is real:
//! agent, gateway and storage over mTLS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use warden_integration_tests::model::{ScriptedModel, Step};
use warden_integration_tests::{Cluster, Options, enabled_tenant};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::storage::v1 as st;

async fn cluster(model: &std::sync::Arc<ScriptedModel>) -> Cluster {
    Cluster::start_with(Options {
        provider: Some(model.clone()),
        ..Default::default()
    })
    .await
}

fn trigger(tenant: &str, fingerprint: &str, occurred_ms: i64) -> ag::SubmitTriggerRequest {
    ag::SubmitTriggerRequest {
        tenant_id: tenant.into(),
        purpose: pb::Purpose::Alert as i32,
        fingerprint: fingerprint.into(),
        title: "checkout error rate above 5%".into(),
        service: "checkout".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: occurred_ms / 1000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn submit(c: &Cluster, t: ag::SubmitTriggerRequest) -> st::Run {
    let tenant = t.tenant_id.clone();
    let run = c
        .agent("agent")
        .submit_trigger(t)
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    model_steps(c.wait_run(&tenant, &run.id).await)
}

/// The run with only the tool calls the model asked for (step 0 holds the purpose's
/// first queries, made before the model was called; `first_queries_*` tests them).
fn model_steps(mut run: st::Run) -> st::Run {
    run.tool_calls.retain(|c| c.step > 0);
    run
}

#[tokio::test]
async fn a_logs_only_tenant_is_offered_no_metrics_tool_and_a_call_to_one_is_refused_not_fatal() {
    let model = ScriptedModel::new([
        Step::Tool("query_metrics", json!({"name": "http_requests_total"})),
        Step::Answer("checked what I could"),
    ]);
    let c = cluster(&model).await;
    c.set_tenant(enabled_tenant("acme")).await;
    let run = submit(&c, trigger("acme", "fp-logs-only", now_ms())).await;

    let seen = model.seen();
    assert_eq!(
        seen[0].offered,
        ["query_logs", "log_patterns", "propose_change"],
        "a logs-only tenant is offered the log tools (and proposals) only"
    );
    let (text, is_error) = seen[1].last_result.clone().unwrap();
    assert!(is_error, "{text}");
    assert!(
        text.contains("refused by the tenant's policy") && text.contains("metrics"),
        "{text}"
    );
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "a refused tool call is an explanation to the model, not a failed run: {}",
        run.status_reason
    );
    assert_eq!(run.tool_calls.len(), 1);
    let call = &run.tool_calls[0];
    assert_eq!(call.tool, "query_metrics");
    assert!(!call.allowed);
    assert!(call.reason.contains("metrics"), "{}", call.reason);
    assert_eq!(call.rows, 0);
    c.stop().await;
}

#[tokio::test]
async fn the_tools_follow_the_settings_of_the_moment_in_a_running_investigation() {
    let model = ScriptedModel::new([Step::Tool("log_patterns", json!({}))]);
    model.then_held(Step::Tool("log_patterns", json!({"service": "checkout"})));
    model.then(Step::Answer("done"));
    let c = cluster(&model).await;
    let mut s = enabled_tenant("acme");
    s.allowed_data_types.push(pb::DataType::Metrics as i32);
    c.set_tenant(s.clone()).await;
    let run = c
        .agent("agent")
        .submit_trigger(trigger("acme", "fp-moment", now_ms()))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    model.reached().await;
    // Logs are withdrawn while the model is thinking about its second call.
    s.allowed_data_types = vec![pb::DataType::Metrics as i32];
    c.set_tenant(s).await;
    model.release();
    let run = model_steps(c.wait_run("acme", &run.id).await);

    let seen = model.seen();
    assert!(seen[0].offered.contains(&"log_patterns".to_owned()));
    assert!(seen[0].offered.contains(&"query_metrics".to_owned()));
    let (text, is_error) = seen[2].last_result.clone().unwrap();
    assert!(is_error && text.contains("refused"), "{text}");
    // The first call's logs were withheld from every request after the withdrawal.
    assert!(
        seen[2]
            .results
            .iter()
            .all(|(t, _)| !t.contains("records in the window")),
        "{:?}",
        seen[2].results
    );
    assert!(
        !seen[2]
            .offered
            .iter()
            .any(|t| t.starts_with("query_logs") || t == "log_patterns"),
        "after logs are withdrawn no log tool is offered: {:?}",
        seen[2].offered
    );
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    let calls = &run.tool_calls;
    assert_eq!(calls.len(), 2);
    assert!(calls[0].allowed, "{:?}", calls[0]);
    assert!(
        !calls[1].allowed && calls[1].reason.contains("logs"),
        "{:?}",
        calls[1]
    );
    c.stop().await;
}

#[tokio::test]
async fn queries_cover_the_incident_window_unless_the_model_asks_otherwise() {
    let model = ScriptedModel::new([
        Step::Tool("query_logs", json!({"service": "checkout"})),
        Step::Tool("query_logs", json!({"since": "-15m", "until": "+5m"})),
        Step::Tool("query_logs", json!({"since": "last tuesday"})),
        Step::Answer("done"),
    ]);
    let c = cluster(&model).await;
    c.set_tenant(enabled_tenant("acme")).await;
    // The alert fired two hours ago.
    let fired = (now_ms() / 1000 - 7200) * 1000;
    let run = submit(&c, trigger("acme", "fp-window", fired)).await;
    let calls = &run.tool_calls;
    assert_eq!(calls.len(), 3, "{calls:?}");
    let ms = |t: &Option<prost_types::Timestamp>| t.as_ref().unwrap().seconds * 1000;
    let hour = 3_600_000;
    // Default: an hour (the lookback) before the trigger to a quarter of that after.
    assert_eq!(ms(&calls[0].since), fired - hour);
    assert_eq!(ms(&calls[0].until), fired + hour / 4);
    assert_eq!(ms(&calls[1].since), fired - 15 * 60_000);
    assert_eq!(ms(&calls[1].until), fired + 5 * 60_000);
    assert!(calls[2].reason.contains("RFC 3339"), "{:?}", calls[2]);
    let (text, is_error) = model.seen()[3].last_result.clone().unwrap();
    assert!(is_error && text.contains("since"), "{text}");
    assert_eq!(run.status, st::RunStatus::Succeeded as i32);
    c.stop().await;
}

#[tokio::test]
async fn the_metrics_tool_asks_the_tenants_real_prometheus_with_promql() {
    use warden_testkit::prometheus::{Prometheus, serve_target};
    let mut prom = Prometheus::scraping(serve_target());
    let source = pb::PrometheusSource {
        url: prom.url(),
        ..Default::default()
    };
    let client = warden_sources::prometheus::PrometheusClient::new(
        &source,
        None,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    prom.wait_for("two scrapes", async || {
        let r = client
            .query_instant(
                "count_over_time(warden_test_temperature_celsius[1m])",
                now_ms(),
            )
            .await?;
        Ok::<_, warden_sources::prometheus::SourceError>(
            r.series
                .first()
                .and_then(|s| s.points.first())
                .filter(|(_, v)| *v >= 12.0)
                .map(|_| ()),
        )
    })
    .await;

    let model = ScriptedModel::new([
        Step::Tool(
            "query_metrics",
            json!({"promql": "rate(warden_test_requests_total{method=\"GET\"}[10s])", "since": "-1m", "max_points": 10}),
        ),
        Step::Answer("GET traffic is steady"),
    ]);
    let c = cluster(&model).await;
    let mut s = enabled_tenant("acme");
    s.allowed_data_types = vec![pb::DataType::Metrics as i32];
    s.prometheus = Some(source);
    c.set_tenant(s).await;
    let run = submit(&c, trigger("acme", "fp-prom", now_ms())).await;

    let seen = model.seen();
    assert!(
        seen[0].offered.contains(&"query_metrics".to_owned()),
        "{:?}",
        seen[0].offered
    );
    let (text, is_error) = seen[1].last_result.clone().unwrap();
    assert!(!is_error, "{text}");
    assert!(
        text.contains("method=\"GET\"") && text.contains("job=\"shop\""),
        "{text}"
    );
    // The counter grows by 10 per 1 s scrape: the rate is about 10/s, never 0.
    let rate: f64 = text
        .split_whitespace()
        .rev()
        .find_map(|w| w.rsplit_once('=').and_then(|(_, v)| v.parse().ok()))
        .unwrap_or_else(|| panic!("no value in {text}"));
    assert!(rate > 1.0, "{text}");
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    let call = &run.tool_calls[0];
    assert!(call.allowed && call.rows == 1, "{call:?}");
    assert_eq!(call.data_type, pb::DataType::Metrics as i32);
    // The result went to the model as METRICS, through the gateway's gating and audit.
    let records = c.audit_records("acme").await;
    assert!(
        records
            .iter()
            .any(|r| r.data_types.contains(&(pb::DataType::Metrics as i32))),
        "no audited model call carried metrics"
    );
    c.stop().await;
}

/// A GitHub mock with one repository (acme/api) at two refs, and the tenant's settings
/// pointing at it with a token stored sealed through the Admin API.
async fn github_tenant(
    c: &Cluster,
    integration: bool,
) -> (
    warden_testkit::github::GitHubMock,
    warden_testkit::MockServer,
    pb::TenantSettings,
) {
    use warden_testkit::github::{GitHubMock, MockChange, MockCommit, sha_for};
    let ca = warden_testkit::TestCa::new().unwrap();
    let v1 = MockCommit::new(1, None, "first", vec![]);
    let v2 = MockCommit::new(
        2,
        Some(&sha_for(1)),
        "shorten the payment timeout",
        vec![MockChange::modified(
            "src/payments.rs",
            "@@ -1 +1 @@\n-const PAYMENT_TIMEOUT_S: u64 = 30;\n+const PAYMENT_TIMEOUT_S: u64 = 3;",
        )],
    );
    let mock = GitHubMock::new()
        .with_token("ghp_integrationtesttoken000000000000000")
        .with_file(
            "acme/api",
            "main",
            "src/payments.rs",
            "const PAYMENT_TIMEOUT_S: u64 = 3;\nfn charge() {}\n",
        )
        .with_commit("acme/api", v1)
        .with_commit("acme/api", v2)
        .with_ref("acme/api", "v2.4.0", &sha_for(1))
        .with_ref("acme/api", "v2.4.1", &sha_for(2));
    let server = mock.start(&ca).await.unwrap();
    let creds = c
        .source_token("acme", "ghp_integrationtesttoken000000000000000")
        .await;
    let mut s = enabled_tenant("acme");
    s.allowed_data_types.push(pb::DataType::SourceCode as i32);
    s.github_integration = integration;
    s.github = Some(pb::GitHubSource {
        api_url: server.url(),
        credentials_id: creds,
        repositories: vec![pb::ServiceRepository {
            service: "checkout".into(),
            repository: "acme/api".into(),
            default_ref: "main".into(),
        }],
        ca_pem: String::from_utf8(ca.ca_pem()).unwrap(),
        ..Default::default()
    });
    c.set_tenant(s.clone()).await;
    (mock, server, s)
}

#[tokio::test]
async fn code_tools_read_the_mapped_repository_and_stop_the_moment_the_integration_is_off() {
    let model = ScriptedModel::new([
        Step::Tool(
            "read_file",
            json!({"repository": "checkout", "path": "src/payments.rs"}),
        ),
        Step::Tool(
            "compare_refs",
            json!({"repository": "checkout", "base": "v2.4.0", "head": "v2.4.1"}),
        ),
    ]);
    model.then_held(Step::Tool(
        "read_file",
        json!({"repository": "checkout", "path": "src/payments.rs"}),
    ));
    model.then(Step::Answer("the timeout was shortened in 2.4.1"));
    let c = cluster(&model).await;
    let (github, _server, mut s) = github_tenant(&c, true).await;
    let run = c
        .agent("agent")
        .submit_trigger(trigger("acme", "fp-code", now_ms()))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    model.reached().await;
    let before_off = github.requests().len();
    assert!(before_off >= 2, "the first two calls reached GitHub");
    assert!(
        github
            .requests()
            .iter()
            .all(|r| r.auth == warden_testkit::github::Auth::Token),
        "every request carried the tenant's token: {:?}",
        github.requests()
    );
    s.github_integration = false;
    c.set_tenant(s).await;
    model.release();
    let run = model_steps(c.wait_run("acme", &run.id).await);

    let seen = model.seen();
    assert!(
        seen[0].offered.contains(&"read_file".to_owned()),
        "{:?}",
        seen[0].offered
    );
    let (file, is_error) = seen[1].last_result.clone().unwrap();
    assert!(
        !is_error && file.contains("PAYMENT_TIMEOUT_S: u64 = 3"),
        "{file}"
    );
    let (diff, is_error) = seen[2].last_result.clone().unwrap();
    assert!(
        !is_error && diff.contains("-const PAYMENT_TIMEOUT_S: u64 = 30;"),
        "{diff}"
    );
    // Off: the held call is refused, nothing more reaches GitHub, no code tool is offered,
    // and the code already read is withheld from every later request.
    let (text, is_error) = seen[3].last_result.clone().unwrap();
    assert!(is_error && text.contains("GitHub"), "{text}");
    assert_eq!(
        github.requests().len(),
        before_off,
        "nothing reached GitHub after the switch-off"
    );
    assert!(
        !seen[3].offered.iter().any(|t| [
            "read_file",
            "search_code",
            "show_commit",
            "compare_refs"
        ]
        .contains(&t.as_str())),
        "{:?}",
        seen[3].offered
    );
    assert!(
        seen[3]
            .results
            .iter()
            .all(|(t, _)| !t.contains("PAYMENT_TIMEOUT_S")),
        "{:?}",
        seen[3].results
    );
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    assert!(
        run.tool_calls[0].allowed && run.tool_calls[0].data_type == pb::DataType::SourceCode as i32
    );
    assert!(!run.tool_calls[2].allowed, "{:?}", run.tool_calls[2]);
    c.stop().await;
}

#[tokio::test]
async fn with_the_integration_off_no_code_tool_is_offered_and_nothing_reaches_github() {
    let model = ScriptedModel::new([
        Step::Tool(
            "search_code",
            json!({"repository": "checkout", "query": "PAYMENT_TIMEOUT"}),
        ),
        Step::Answer("no code access"),
    ]);
    let c = cluster(&model).await;
    let (github, _server, _) = github_tenant(&c, false).await;
    let run = submit(&c, trigger("acme", "fp-code-off", now_ms())).await;
    let seen = model.seen();
    assert!(
        !seen[0].offered.contains(&"search_code".to_owned()),
        "{:?}",
        seen[0].offered
    );
    let (text, is_error) = seen[1].last_result.clone().unwrap();
    assert!(is_error && text.contains("GitHub integration"), "{text}");
    assert!(github.requests().is_empty(), "{:?}", github.requests());
    assert_eq!(run.status, st::RunStatus::Succeeded as i32);
    c.stop().await;
}

#[tokio::test]
async fn an_investigation_reads_the_demo_incident_through_one_tool_per_data_type() {
    let model = ScriptedModel::new([
        Step::Tool(
            "log_patterns",
            json!({"service": "checkout", "min_severity": "error", "limit": 20}),
        ),
        Step::Tool(
            "query_metrics",
            json!({"name": "http.server.request.count", "aggregation": "rate",
                   "matchers": [{"label": "http.response.status_code", "op": "=", "value": "502"}]}),
        ),
        Step::Tool(
            "find_traces",
            json!({"service": "checkout", "order": "failed", "limit": 3}),
        ),
        Step::Tool("top_functions", json!({"service": "checkout"})),
        Step::Tool("query_cluster", json!({"namespace": "shop"})),
        Step::Tool(
            "query_config",
            json!({"namespace": "shop", "name": "checkout-config"}),
        ),
        Step::Answer("the 2.4.1 ConfigMap cut PAYMENT_TIMEOUT to 3s"),
    ]);
    let c = cluster(&model).await;
    c.issue(warden_tls::Role::Ingest, "otel-acme", &["acme"]);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    warden::demo::seed(c.channel("otel-acme", c.otlp_grpc_addr), now_ns)
        .await
        .unwrap();
    let mut s = enabled_tenant("acme");
    s.allowed_data_types = [
        pb::DataType::Logs,
        pb::DataType::Metrics,
        pb::DataType::Traces,
        pb::DataType::Profiles,
        pb::DataType::ClusterInfo,
        pb::DataType::ConfigMetadata,
    ]
    .iter()
    .map(|d| *d as i32)
    .collect();
    c.set_tenant(s).await;
    let run = submit(&c, trigger("acme", "fp-demo", now_ms())).await;
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );

    let seen = model.seen();
    let result = |i: usize| {
        let (text, is_error) = seen[i].last_result.clone().unwrap();
        assert!(!is_error, "step {i}: {text}");
        text
    };
    let patterns = result(1);
    assert!(
        patterns.contains("payment call failed for order"),
        "{patterns}"
    );
    let metrics = result(2);
    assert!(
        metrics.contains("http.response.status_code=\"502\""),
        "{metrics}"
    );
    assert!(metrics.contains("rate"), "{metrics}");
    let traces = result(3);
    assert!(
        traces.contains("first_error=") && traces.contains("spans=2"),
        "{traces}"
    );
    let profile = result(4);
    assert!(
        profile.contains("crypto/tls.(*Conn).Handshake"),
        "{profile}"
    );
    let cluster_state = result(5);
    assert!(
        cluster_state.contains("BackOff") && cluster_state.contains("checkout:2.4.1"),
        "{cluster_state}"
    );
    let config = result(6);
    assert!(
        config.contains("-PAYMENT_TIMEOUT: 30s") && config.contains("+PAYMENT_TIMEOUT: 3s"),
        "{config}"
    );
    // The database password in the ConfigMap and in a log line never reaches the model.
    for text in seen.iter().flat_map(|s| s.results.iter().map(|(t, _)| t)) {
        assert!(!text.contains("s3cr3t-pass"), "{text}");
    }
    // Each call was recorded with the run, typed with its real data type.
    let types: Vec<i32> = run.tool_calls.iter().map(|t| t.data_type).collect();
    assert_eq!(
        types,
        [
            pb::DataType::Logs,
            pb::DataType::Metrics,
            pb::DataType::Traces,
            pb::DataType::Profiles,
            pb::DataType::ClusterInfo,
            pb::DataType::ConfigMetadata
        ]
        .map(|d| d as i32)
    );
    assert!(
        run.tool_calls
            .iter()
            .all(|t| t.allowed && t.rows > 0 && t.bytes > 0),
        "{:?}",
        run.tool_calls
    );
    c.stop().await;
}

#[tokio::test]
async fn a_result_too_large_for_the_model_asks_it_to_narrow_the_query() {
    let model = ScriptedModel::new([
        Step::Tool("query_logs", json!({"service": "checkout", "limit": 200})),
        Step::Tool("query_logs", json!({"service": "checkout", "limit": 3})),
        Step::Answer("narrowed"),
    ]);
    let c = Cluster::start_with(Options {
        provider: Some(model.clone()),
        run_limits: Some(warden_agent::RunLimits {
            max_tool_result_bytes: 2048,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    c.issue(warden_tls::Role::Ingest, "otel-acme", &["acme"]);
    let lines: Vec<String> = (0..100)
        .map(|i| format!("payment call failed for order {i}: context deadline exceeded after 3s"))
        .collect();
    let bodies: Vec<&str> = lines.iter().map(String::as_str).collect();
    c.ingest_logs("otel-acme", "checkout", &bodies).await;
    c.set_tenant(enabled_tenant("acme")).await;
    let run = submit(&c, trigger("acme", "fp-large", now_ms())).await;

    let seen = model.seen();
    let (text, is_error) = seen[1].last_result.clone().unwrap();
    assert!(
        is_error && text.contains("narrow the query") && text.contains("2048"),
        "{text}"
    );
    assert!(
        !text.contains("order 7"),
        "no part of the oversized result reaches the model: {text}"
    );
    let (text, is_error) = seen[2].last_result.clone().unwrap();
    assert!(!is_error, "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("payment call failed"))
            .count(),
        3,
        "{text}"
    );
    assert!(
        run.tool_calls[0].reason.contains("narrow"),
        "{:?}",
        run.tool_calls[0]
    );
    assert_eq!(run.tool_calls[1].rows, 3);
    assert_eq!(run.status, st::RunStatus::Succeeded as i32);
    c.stop().await;
}
