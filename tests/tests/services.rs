//! Settings propagation across gateways, both database backends, the agent's runs and
//! reviews, health and reflection, and tamper evidence: all over real mTLS sockets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::time::{Duration, Instant};

use tonic::Code;
use warden_integration_tests::{
    Cluster, Options, enabled_tenant, fresh_postgres_schema, logs_request,
};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;

#[tokio::test]
async fn opt_out_reaches_another_gateway_at_once() {
    let c = Cluster::start_with(Options {
        second_gateway: true,
        ..Options::default()
    })
    .await;
    let addr2 = c.gateway2_addr.unwrap();
    let mut other =
        warden_proto::gateway::v1::gateway_client::GatewayClient::new(c.channel("agent", addr2));
    c.set_tenant(enabled_tenant("acme")).await;
    // Enabling through gateway 1 reaches gateway 2 through the watch.
    let mut ok = false;
    for _ in 0..100 {
        if other
            .complete(logs_request("acme", "warm the cache"))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "gateway 2 never saw the tenant enabled");
    // Gateway 2 now has acme cached as enabled. Disable through gateway 1's Admin API...
    let mut off = enabled_tenant("acme");
    off.enabled = false;
    let changed = Instant::now();
    c.set_tenant(off).await;
    // ...and gateway 2 refuses within a second (the watch pushes the change; no TTL wait).
    let mut refused_after = None;
    while changed.elapsed() < Duration::from_secs(1) {
        match other.complete(logs_request("acme", "after opt-out")).await {
            Err(e) if e.code() == Code::FailedPrecondition => {
                refused_after = Some(changed.elapsed());
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    let after = refused_after.expect("gateway 2 still served a disabled tenant after 1 s");
    eprintln!("opt-out propagation to the second gateway: {after:?}");
    let calls_at_opt_out = c.local.calls();
    assert!(other.complete(logs_request("acme", "again")).await.is_err());
    assert_eq!(
        c.local.calls(),
        calls_at_opt_out,
        "nothing reached the provider after the refusal"
    );
    c.stop().await;
}

async fn walk_on(c: &Cluster) {
    let mut gw = c.gateway("agent");
    assert_eq!(
        gw.complete(logs_request("acme", "x"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    c.set_tenant(enabled_tenant("acme")).await;
    let ok = gw
        .complete(logs_request("acme", "checkout ERROR"))
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.audit_record_id.is_empty());
    // Optimistic concurrency: a stale expected_version is refused.
    let err = c
        .admin("admin")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let mut off = enabled_tenant("acme");
    off.enabled = false;
    let saved = c
        .admin("admin")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(off),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(saved.version, 2);
    assert_eq!(
        gw.complete(logs_request("acme", "x"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    assert_eq!(c.local.calls(), 1);
    let v = c
        .audit("compliance")
        .verify_audit_log(gw::VerifyAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{}", v.problem);
}

#[tokio::test]
async fn walk_on_sqlite() {
    let c = Cluster::start().await;
    walk_on(&c).await;
    c.stop().await;
}

#[tokio::test]
async fn walk_on_postgres() {
    let Some(url) = fresh_postgres_schema().await else {
        return;
    };
    let c = Cluster::start_with(Options {
        database_url: Some(url),
        ..Options::default()
    })
    .await;
    walk_on(&c).await;
    c.stop().await;
}

#[tokio::test]
async fn every_service_answers_health_and_reflection() {
    use tonic_health_client::*;
    let c = Cluster::start().await;
    let common = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    for (addr, served) in [
        (c.gateway_addr, &warden_gateway::Gateway::SERVICES[..]),
        (c.storage_addr, &warden_storage::Storage::SERVICES[..]),
        (c.agent_addr, &warden_agent::Agent::SERVICES[..]),
    ] {
        let mut health = HealthClient::new(c.channel("agent", addr));
        for service in served.iter().copied().chain([""]) {
            let resp = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(resp.status, 1, "{service:?} is SERVING");
        }
        // Reflection advertises exactly what this listener serves, nothing of its neighbours.
        let mut listed = reflection_list(c.channel("agent", addr)).await;
        listed.sort();
        let mut expected: Vec<String> = served
            .iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        // Error details resolve, so grpcurl prints ErrorInfo.reason instead of raw bytes.
        assert!(
            reflection_knows_symbol(c.channel("agent", addr), "google.rpc.ErrorInfo").await,
            "google.rpc.ErrorInfo unknown to reflection on {addr}"
        );
    }
    c.stop().await;
}

mod tonic_health_client {
    pub use tonic_health::pb::HealthCheckRequest;
    pub use tonic_health::pb::health_client::HealthClient;
}

async fn reflection_list(ch: tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    match msg.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn reflection_knows_symbol(ch: tonic::transport::Channel, symbol: &str) -> bool {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    matches!(
        msg.message_response,
        Some(MessageResponse::FileDescriptorResponse(_))
    )
}

async fn wait_for_run(c: &Cluster, tenant: &str, run_id: &str) -> st::Run {
    c.wait_run(tenant, run_id).await
}

fn trigger(tenant: &str, fingerprint: &str) -> ag::SubmitTriggerRequest {
    ag::SubmitTriggerRequest {
        tenant_id: tenant.into(),
        purpose: pb::Purpose::Alert as i32,
        fingerprint: fingerprint.into(),
        title: "checkout error rate above 5%".into(),
        service: "checkout".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn triggers_for_disabled_tenants_are_skipped_and_enabled_ones_investigated() {
    let c = Cluster::start().await;
    let mut agent = c.agent("agent");
    let skipped = agent
        .submit_trigger(trigger("acme", "fp-1"))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(skipped.status, st::RunStatus::Skipped as i32);
    assert!(
        skipped
            .status_reason
            .contains("not enabled for tenant acme"),
        "{}",
        skipped.status_reason
    );
    assert_eq!(c.local.calls(), 0, "a skipped run calls no model");

    c.set_tenant(enabled_tenant("acme")).await;
    let started = agent
        .submit_trigger(trigger("acme", "fp-2"))
        .await
        .unwrap()
        .into_inner();
    assert!(!started.duplicate);
    let run_id = started.run.unwrap().id;
    let again = agent
        .submit_trigger(trigger("acme", "fp-2"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate, "same fingerprint, same run");
    assert_eq!(again.run.unwrap().id, run_id);
    let run = wait_for_run(&c, "acme", &run_id).await;
    assert_eq!(
        run.status,
        st::RunStatus::Succeeded as i32,
        "{}",
        run.status_reason
    );
    // The offline model calls each log tool once (a logs-only tenant is offered no other
    // tool it may call: proposals are never made offline), then answers.
    assert_eq!(run.steps, 3, "query_logs, log_patterns, then the answer");
    assert_eq!(run.findings.len(), 1);
    let summary = &run.findings[0].summary;
    assert!(
        summary.contains("query_logs (") && summary.contains("log_patterns ("),
        "the finding names the tools consulted: {summary}"
    );
    // Every model call went through the gateway: each tool result arrived with the next call.
    let reqs = c.local.requests();
    assert_eq!(reqs.len(), 3);
    let results = |i: usize| {
        reqs[i]
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .filter(|p| matches!(p, warden_providers::Content::ToolResult { .. }))
            .count()
    };
    assert_eq!((results(0), results(1), results(2)), (0, 1, 2));
    c.stop().await;
}

#[tokio::test]
async fn only_a_reviewer_can_decide_a_proposal() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let run = c
        .agent("agent")
        .submit_trigger(trigger("acme", "fp-3"))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    // The agent service records a proposal through storage (as its propose_change tool does).
    let p = c
        .proposal_store()
        .create_proposal(st::CreateProposalRequest {
            tenant_id: "acme".into(),
            run_id: run.id.clone(),
            content: Some(warden_integration_tests::proposals::config_change(
                "raise payment timeout",
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.status, st::ProposalStatus::PendingReview as i32);
    let review = |approve| warden_integration_tests::proposals::review("acme", &p, approve);
    for who in ["agent", "admin"] {
        let err = c
            .agent(who)
            .review_proposal(review(true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}");
        assert!(
            err.message().contains("requires role reviewer"),
            "{}",
            err.message()
        );
    }
    let decided = c
        .agent("reviewer")
        .review_proposal(review(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.status, st::ProposalStatus::Approved as i32);
    assert_eq!(decided.approvals, vec!["reviewer/reviewer".to_owned()]);
    assert_eq!(decided.approved_digest, p.digest);
    let err = c
        .agent("reviewer")
        .review_proposal(review(false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "decided once only");
    c.stop().await;
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_named() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    for _ in 0..3 {
        c.gateway("agent")
            .complete(logs_request("acme", "x"))
            .await
            .unwrap();
    }
    let mut audit = c.audit("compliance");
    assert!(
        audit
            .verify_audit_log(gw::VerifyAuditLogRequest::default())
            .await
            .unwrap()
            .into_inner()
            .ok
    );
    // Change one stored record behind Warden's back: swap record 3's content for record 4's.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&c.db_url).await.unwrap();
    sqlx::query("UPDATE audit_log SET record = (SELECT record FROM audit_log WHERE sequence = 4) WHERE sequence = 3")
        .execute(&pool)
        .await
        .unwrap();
    let v = audit
        .verify_audit_log(gw::VerifyAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!v.ok);
    assert_eq!(v.first_bad_sequence, 3);
    assert_eq!(v.records_checked, 2);
    // Deleting a record is named too.
    sqlx::query("DELETE FROM audit_log WHERE sequence = 2")
        .execute(&pool)
        .await
        .unwrap();
    let v = audit
        .verify_audit_log(gw::VerifyAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((v.ok, v.first_bad_sequence), (false, 2));
    assert!(v.problem.contains("missing"), "{}", v.problem);
    c.stop().await;
}

#[tokio::test]
async fn customer_credentials_are_sealed_at_rest_and_never_echoed() {
    let c = Cluster::start().await;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let id = c
        .admin("admin")
        .put_customer_credentials(gw::PutCustomerCredentialsRequest {
            tenant_id: "acme".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .credentials_id;
    assert!(!id.is_empty());
    // Not in the database file (or its WAL) in plaintext.
    for f in std::fs::read_dir(c.dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret found at rest"
        );
    }
    // Storage hands them only to the gateway role.
    let mut ts = warden_proto::storage::v1::tenant_store_client::TenantStoreClient::new(
        c.channel("agent", c.storage_addr),
    );
    let err = ts
        .get_customer_credentials(st::GetCustomerCredentialsRequest {
            tenant_id: "acme".into(),
            credentials_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(!err.message().contains(secret));
    let mut ts = warden_proto::storage::v1::tenant_store_client::TenantStoreClient::new(
        c.channel("gateway", c.storage_addr),
    );
    let got = ts
        .get_customer_credentials(st::GetCustomerCredentialsRequest {
            tenant_id: "acme".into(),
            credentials_id: id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.secret_access_key, secret);
    c.stop().await;
}

/// Group commit: many appends in flight at once share transactions, every one is
/// acknowledged with its own place in one unbroken chain, and the chain continues from
/// the right head after a restart.
#[tokio::test]
async fn concurrent_audit_appends_form_one_chain_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let keys = std::sync::Arc::new(warden_storage::MemoryKeyProvider::new());
    let open = || async {
        let db = warden_storage::Db::connect(&url).await.unwrap();
        warden_storage::Storage::open(db, keys.clone())
            .await
            .unwrap()
    };
    let record = |i: usize| pb::AuditRecord {
        tenant_id: format!("t{}", i % 7),
        decision: pb::AuditDecision::Allowed as i32,
        reason: "ALLOWED".into(),
        outcome: "ok".into(),
        ..Default::default()
    };
    let storage = open().await;
    let appends = (0..300).map(|i| {
        let s = storage.clone();
        async move { s.append_audit(record(i)).await }
    });
    let receipts: Vec<_> = futures::future::join_all(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut sequences: Vec<u64> = receipts.iter().map(|r| r.sequence).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=300).collect::<Vec<u64>>());
    let verified = storage.verify_audit(0, 0).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.records_checked, 300);
    drop(storage);

    let storage = open().await;
    let next = storage.append_audit(record(300)).await.unwrap();
    assert_eq!(next.sequence, 301);
    let verified = storage.verify_audit(0, 0).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.records_checked, 301);
}
