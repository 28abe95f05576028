//! The trust boundary replayed as an attacker would: each hole of the old design, tried
//! again over real mTLS, now fails, and nothing is forged, decided, sent or stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use warden_integration_tests::proposals::{config_change, moves, review};
use warden_integration_tests::{
    BrokenAudit, Cluster, Options, enabled_tenant, logs_request, reason,
};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_proto::storage::v1::proposal_store_client::ProposalStoreClient;
use warden_rpc::{Limits, Security, ServiceHost};
use warden_tls::Role;

/// A run and a pending proposal for `tenant`, recorded as the agent service does.
async fn proposal(c: &Cluster, tenant: &str) -> st::Proposal {
    c.propose(tenant, config_change("raise payment timeout"))
        .await
        .unwrap()
}

async fn proposal_status(c: &Cluster, id: &str) -> i64 {
    let p = c.db().await;
    let s: i64 = sqlx::query_scalar("SELECT status FROM proposals WHERE id = $1")
        .bind(id)
        .fetch_one(&p)
        .await
        .unwrap();
    p.close().await;
    s
}

async fn audit_reasons(c: &Cluster, tenant: &str) -> Vec<(String, String, String)> {
    c.audit_records(tenant)
        .await
        .into_iter()
        .map(|r| (r.reason, r.caller, r.recorded_by))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_or_agent_certificate_can_approve_a_proposal() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let p = proposal(&c, "acme").await;
    // An agent worker straight at storage, naming a human reviewer: refused by role.
    let mut as_agent = ProposalStoreClient::new(c.channel("agent", c.storage_addr));
    let err = as_agent
        .review_proposal(st::ReviewProposalRequest {
            tenant_id: "acme".into(),
            proposal_id: p.id.clone(),
            approve: true,
            reviewer: "reviewer/alice".into(),
            digest: p.digest.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "ROLE_NOT_ALLOWED");
    // Even the agent service cannot name a non-reviewer, or a reviewer of another tenant.
    let mut as_service = c.proposal_store();
    for (reviewer, tenants) in [
        ("agent-service/agent-service", vec![]),
        ("admin/admin", vec![]),
        ("reviewer/mallory", vec!["beta".to_owned()]),
    ] {
        let err = as_service
            .review_proposal(st::ReviewProposalRequest {
                tenant_id: "acme".into(),
                proposal_id: p.id.clone(),
                approve: true,
                reviewer: reviewer.into(),
                reviewer_tenants: tenants,
                digest: p.digest.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{reviewer}: {err:?}");
    }
    // Through the agent service, only a reviewer identity: the agent and admin are refused.
    for who in ["agent", "admin"] {
        let err = c
            .agent(who)
            .review_proposal(review("acme", &p, true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}");
    }
    assert_eq!(
        proposal_status(&c, &p.id).await,
        st::ProposalStatus::PendingReview as i64
    );
    assert!(
        !audit_reasons(&c, "acme")
            .await
            .iter()
            .any(|(r, _, _)| r.starts_with("PROPOSAL_") && r != "PROPOSAL_CREATED"),
        "no decision was recorded"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_decides_only_proposals_of_tenants_in_its_scope() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    c.issue(Role::Reviewer, "bob", &["beta"]);
    c.issue(Role::Reviewer, "alice", &["acme"]);
    let p = proposal(&c, "acme").await;
    let err = c
        .agent("bob")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "TENANT_OUT_OF_SCOPE");
    assert!(err.message().contains("acme"), "{}", err.message());
    assert_eq!(
        proposal_status(&c, &p.id).await,
        st::ProposalStatus::PendingReview as i64
    );
    let decided = c
        .agent("alice")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.status, st::ProposalStatus::Approved as i32);
    assert_eq!(decided.approvals, vec!["reviewer/alice".to_owned()]);
    assert_eq!(
        moves(&decided).last().unwrap(),
        &(
            st::ProposalStatus::Approved,
            "reviewer/alice".to_owned(),
            "PROPOSAL_APPROVED".to_owned()
        )
    );
    let records = audit_reasons(&c, "acme").await;
    assert!(
        records.contains(&(
            "PROPOSAL_APPROVED".into(),
            "reviewer/alice".into(),
            "agent-service/agent-service".into()
        )),
        "{records:?}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_can_require_two_distinct_reviewers() {
    let c = Cluster::start().await;
    c.set_tenant(pb::TenantSettings {
        required_reviewers: 2,
        ..enabled_tenant("acme")
    })
    .await;
    c.issue(Role::Reviewer, "alice", &["acme"]);
    c.issue(Role::Reviewer, "carol", &[]);
    let p = proposal(&c, "acme").await;
    assert_eq!(p.required_approvals, 2);
    let first = c
        .agent("alice")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, st::ProposalStatus::PendingReview as i32);
    assert_eq!(first.approvals, vec!["reviewer/alice".to_owned()]);
    // The same reviewer twice is still one approval.
    let err = c
        .agent("alice")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let second = c
        .agent("carol")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.status, st::ProposalStatus::Approved as i32);
    assert_eq!(
        second.approvals,
        vec!["reviewer/alice".to_owned(), "reviewer/carol".to_owned()]
    );
    let reasons: Vec<String> = audit_reasons(&c, "acme")
        .await
        .into_iter()
        .map(|(r, _, _)| r)
        .filter(|r| r.starts_with("PROPOSAL_") && r != "PROPOSAL_CREATED")
        .collect();
    assert_eq!(
        reasons,
        vec!["PROPOSAL_APPROVAL_RECORDED", "PROPOSAL_APPROVED"]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_cannot_be_audited_is_not_recorded() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let p = proposal(&c, "acme").await;
    // The audit table refuses every insert, as a failing disk would.
    let db = c.db().await;
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    let err = c
        .agent("reviewer")
        .review_proposal(review("acme", &p, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        proposal_status(&c, &p.id).await,
        st::ProposalStatus::PendingReview as i64,
        "no audit record, no decision"
    );
    assert_eq!(
        c.db_count("SELECT COUNT(*) FROM proposal_approvals").await,
        0
    );
    sqlx::query("DROP TRIGGER audit_down")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let decided = c
        .agent("reviewer")
        .review_proposal(review("acme", &p, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.status, st::ProposalStatus::Rejected as i32);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_cannot_be_forged() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let before = c.db_count("SELECT COUNT(*) FROM audit_log").await;
    let forged = |kind: pb::AuditKind| pb::AuditRecord {
        kind: kind as i32,
        tenant_id: "acme".into(),
        caller: "reviewer/alice".into(),
        decision: pb::AuditDecision::Allowed as i32,
        reason: "PROPOSAL_APPROVED".into(),
        ..Default::default()
    };
    // An agent worker's certificate cannot append at all.
    let err = AuditLogClient::new(c.channel("agent", c.storage_addr))
        .append(st::AppendRequest {
            record: Some(forged(pb::AuditKind::Admin)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // The agent service may not write call records, only its own admin actions.
    let mut as_service = AuditLogClient::new(c.channel("agent-service", c.storage_addr));
    for kind in [
        pb::AuditKind::Intent,
        pb::AuditKind::Outcome,
        pb::AuditKind::Denial,
    ] {
        let err = as_service
            .append(st::AppendRequest {
                record: Some(forged(kind)),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{kind:?}");
    }
    // Nobody sets what storage sets, and nothing is unbounded.
    let mut as_gateway = AuditLogClient::new(c.channel("gateway", c.storage_addr));
    for bad in [
        pb::AuditRecord {
            recorded_by: "gateway/somebody-else".into(),
            ..forged(pb::AuditKind::Admin)
        },
        pb::AuditRecord {
            hash: "00".into(),
            ..forged(pb::AuditKind::Admin)
        },
        pb::AuditRecord {
            reason: "X".repeat(10_000),
            ..forged(pb::AuditKind::Admin)
        },
        pb::AuditRecord {
            intent_id: String::new(),
            ..forged(pb::AuditKind::Outcome)
        },
    ] {
        let err = as_gateway
            .append(st::AppendRequest { record: Some(bad) })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert_eq!(c.db_count("SELECT COUNT(*) FROM audit_log").await, before);
    // A real call's records name the caller the gateway authenticated and the gateway
    // that vouches for it.
    c.gateway("agent")
        .complete(logs_request("acme", "checkout ERROR"))
        .await
        .unwrap();
    let records = audit_reasons(&c, "acme").await;
    let (_, caller, by) = records.last().unwrap();
    assert_eq!(
        (caller.as_str(), by.as_str()),
        ("agent/agent", "gateway/gateway")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_not_committed_without_their_audit_record() {
    let c = Cluster::start_with(Options {
        audit_sink: Some(Arc::new(BrokenAudit)),
        ..Options::default()
    })
    .await;
    let err = c
        .admin("admin")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "AUDIT_FAIL_CLOSED");
    let err = c
        .admin("admin")
        .put_customer_credentials(gw::PutCustomerCredentialsRequest {
            tenant_id: "acme".into(),
            access_key_id: "AKIDEXAMPLEAUDIT".into(),
            secret_access_key: "never-stored".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let err = c
        .audit("compliance")
        .export_audit_records(gw::ExportAuditRecordsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(c.db_count("SELECT COUNT(*) FROM tenant_settings").await, 0);
    assert_eq!(
        c.db_count("SELECT COUNT(*) FROM customer_credentials")
            .await,
        0
    );
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!s.enabled, "the refused change did not happen");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_changes_only_its_own_tenant() {
    let c = Cluster::start().await;
    c.issue(Role::Admin, "acme-admin", &["acme"]);
    let mut admin = c.admin("acme-admin");
    admin
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 0,
        })
        .await
        .unwrap();
    let err = admin
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(pb::TenantSettings {
                github_integration: true,
                ..enabled_tenant("beta")
            }),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "TENANT_OUT_OF_SCOPE");
    assert!(err.message().contains("beta"), "{}", err.message());
    assert_eq!(
        c.db_count("SELECT COUNT(*) FROM tenant_settings WHERE tenant_id = 'beta'")
            .await,
        0
    );
    // An agent scoped to acme cannot spend beta's account either.
    c.set_tenant(enabled_tenant("beta")).await;
    c.issue(Role::Agent, "acme-worker", &["acme"]);
    let err = c
        .gateway("acme-worker")
        .complete(logs_request("beta", "checkout ERROR"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(c.local.calls(), 0, "nothing reached the provider");
    c.gateway("acme-worker")
        .complete(logs_request("acme", "checkout ERROR"))
        .await
        .unwrap();
    assert_eq!(c.local.calls(), 1);
    c.stop().await;
}

/// Serves only health on a loopback port with `security`; returns its address.
async fn impostor(security: Security) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = warden_rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = ServiceHost {
        component: "impostor",
        security,
        limits: Limits::default(),
    };
    tokio::spawn(async move {
        let _ = host
            .serve(
                listener,
                tonic::service::RoutesBuilder::default(),
                &[],
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    (addr, stop)
}

async fn health(c: &Cluster, addr: std::net::SocketAddr, expect: Role) -> Result<(), String> {
    let ch = warden_rpc::connect(
        &addr.to_string(),
        &Security::Mtls(c.pki.files("gateway")),
        expect,
        Duration::from_secs(3),
    )
    .unwrap();
    tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_a_peer_that_is_not_the_service_they_meant() {
    let c = Cluster::start().await;
    // The real storage is accepted as storage.
    health(&c, c.storage_addr, Role::Storage).await.unwrap();
    // The gateway (a real service of the same CA) cannot pose as storage.
    let err = health(&c, c.gateway_addr, Role::Storage).await.unwrap_err();
    assert!(err.contains("NotValidForName"), "{err}");
    // A caller's certificate cannot serve at all: it names no service and may only call.
    for caller in ["admin", "agent", "reviewer"] {
        let (addr, _stop) = impostor(Security::Mtls(c.pki.files(caller))).await;
        let err = health(&c, addr, Role::Storage).await.unwrap_err();
        assert!(
            err.contains("NotValidForName") || err.contains("InvalidPurpose"),
            "{caller}: {err}"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_dev_refuses_a_non_loopback_address() {
    let (listener, _) = warden_rpc::bind("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let host = ServiceHost {
        component: "storage",
        security: Security::InsecureDev,
        limits: Limits::default(),
    };
    let err = host
        .serve(
            listener,
            tonic::service::RoutesBuilder::default(),
            &[],
            async {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("loopback only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_counts_only_for_the_content_it_was_given_on() {
    let c = Cluster::start().await;
    c.set_tenant(pb::TenantSettings {
        required_reviewers: 2,
        ..enabled_tenant("acme")
    })
    .await;
    c.issue(Role::Reviewer, "alice", &["acme"]);
    c.issue(Role::Reviewer, "carol", &["acme"]);
    let a = proposal(&c, "acme").await;
    let b = c
        .propose("acme", config_change("something else entirely"))
        .await
        .unwrap();
    let first = c
        .agent("alice")
        .review_proposal(review("acme", &a, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.approvals, vec!["reviewer/alice".to_owned()]);
    // A's stored content is swapped for B's behind storage's back.
    c.swap_proposal_content(&b.id, &a.id).await;
    // Carol approves what is stored now: alice's approval was of other content, so one
    // approval of two, and nothing is approved.
    let swapped = c
        .agent("carol")
        .get_proposal(ag::GetProposalRequest {
            tenant_id: "acme".into(),
            proposal_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(swapped.digest, a.digest);
    assert!(swapped.approvals.is_empty(), "{:?}", swapped.approvals);
    let second = c
        .agent("carol")
        .review_proposal(review("acme", &swapped, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.status, st::ProposalStatus::PendingReview as i32);
    assert_eq!(second.approvals, vec!["reviewer/carol".to_owned()]);
    c.stop().await;
}
