//! The foundation's promises, end to end over mTLS: opt-in, roles, bad input, fail-closed audit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::sync::Arc;

use tonic::Code;
use warden_integration_tests::{
    BrokenAudit, Cluster, Options, enabled_tenant, logs_request, reason,
};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;

#[tokio::test]
async fn opt_in_walk_unknown_enable_complete_disable() {
    let c = Cluster::start().await;
    let mut gw = c.gateway("agent");

    // Unknown tenant: refused, and nothing reaches the provider.
    let err = gw
        .complete(logs_request("acme", "checkout ERROR timeout"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("AI features are not enabled for tenant acme"),
        "{}",
        err.message()
    );
    assert_eq!(reason(&err), "TENANT_UNKNOWN");
    assert_eq!(c.local.calls(), 0);

    // Enable: the call succeeds through the allowed provider, with an audit record id.
    let saved = c.set_tenant(enabled_tenant("acme")).await;
    assert_eq!(saved.version, 1);
    assert_eq!(saved.updated_by, "admin/admin");
    let ok = gw
        .complete(logs_request("acme", "checkout ERROR timeout"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.provider, "local");
    assert!(!ok.audit_record_id.is_empty());
    assert!(ok.text.contains("offline local provider"), "{}", ok.text);
    let summary = ok.minimization.unwrap();
    assert_eq!(summary.bytes_before, "checkout ERROR timeout".len() as u64);
    assert_eq!(c.local.calls(), 1);
    // The outcome record follows the answer; let it land before the next change, so the
    // log's order below is fixed.
    c.settled_audit_records("acme").await;

    // Disable: the very next call is refused.
    let mut off = enabled_tenant("acme");
    off.enabled = false;
    c.set_tenant(off).await;
    let err = gw
        .complete(logs_request("acme", "checkout ERROR timeout"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "AI features are not enabled for tenant acme");
    assert_eq!(reason(&err), "OPT_IN_REQUIRED");

    // The provider saw exactly one request in the whole walk.
    assert_eq!(c.local.calls(), 1);

    // The audit log holds the denials, the intent, the outcome and the settings changes, and verifies.
    let mut audit = c.audit("compliance");
    let records = c.audit_records("acme").await;
    let kinds: Vec<_> = records
        .iter()
        .map(|r| (pb::AuditKind::try_from(r.kind).unwrap(), r.reason.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (pb::AuditKind::Denial, "TENANT_UNKNOWN"),
            (pb::AuditKind::Admin, "SETTINGS_CHANGE"),
            (pb::AuditKind::Intent, "ALLOWED"),
            (pb::AuditKind::Outcome, "ALLOWED"),
            (pb::AuditKind::Admin, "SETTINGS_CHANGE"),
            (pb::AuditKind::Denial, "OPT_IN_REQUIRED"),
        ]
    );
    assert_eq!(
        records[2].id, ok.audit_record_id,
        "the response names the intent written before egress"
    );
    assert_eq!(records[3].intent_id, ok.audit_record_id);
    let v = audit
        .verify_audit_log(gw::VerifyAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{}", v.problem);
    assert_eq!(v.records_checked, 6);
    c.stop().await;
}

#[tokio::test]
async fn wrong_role_is_refused_naming_the_role() {
    let c = Cluster::start().await;
    let err = c
        .admin("agent")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "warden.gateway.v1.Admin/SetTenantSettings requires role admin; caller agent/agent has role agent"
    );
    // Nothing changed: the tenant is still off.
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!s.enabled);
    // Admin cannot ask for completions, compliance cannot change settings, agent cannot read audit.
    let err = c
        .gateway("admin")
        .complete(logs_request("acme", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("requires role agent"),
        "{}",
        err.message()
    );
    let err = c
        .audit("agent")
        .query_audit_records(gw::QueryAuditRecordsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("requires role compliance"),
        "{}",
        err.message()
    );
    c.stop().await;
}

#[tokio::test]
async fn certificate_from_a_foreign_ca_fails_the_handshake() {
    let c = Cluster::start().await;
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign =
        warden_tls::DevPki::create_foreign(foreign_dir.path(), warden_tls::Role::Admin, "mallory")
            .unwrap();
    // Trust Warden's CA (so the server is accepted) but present a certificate from another CA.
    let mut files = foreign.files("mallory");
    files.ca = c.pki.ca_cert_path();
    let ch = warden_rpc::connect(
        &c.gateway_addr.to_string(),
        &warden_rpc::Security::Mtls(files),
        warden_tls::Role::Gateway,
        std::time::Duration::from_secs(3),
    )
    .unwrap();
    let err = warden_proto::gateway::v1::admin_client::AdminClient::new(ch)
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    // The server refuses the handshake: rustls reports the client's CA as unknown.
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");
    let s = c
        .admin("admin")
        .get_tenant_settings(gw::GetTenantSettingsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap();
    assert!(!s.into_inner().enabled, "the foreign admin changed nothing");
    c.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_status_and_the_server_keeps_serving() {
    let c = Cluster::start_with(Options {
        max_message_bytes: 4 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    c.set_tenant(enabled_tenant("acme")).await;
    let mut gw = c.gateway("agent");

    let err = gw.complete(logs_request("", "x")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "tenant_id is required")
    );

    let mut req = logs_request("acme", "x");
    req.messages[0].parts[0].data_type = 99;
    let err = gw.complete(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("messages[0].parts[0].unknown data_type value 99"),
        "{}",
        err.message()
    );

    let mut req = logs_request("acme", "x");
    req.messages.clear();
    let err = gw.complete(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "messages is empty: a completion needs at least one message"
    );

    let mut req = logs_request("acme", "x");
    req.tools.push(gw::ToolDefinition {
        name: "t".into(),
        description: String::new(),
        input_schema_json: "{not json".into(),
    });
    let err = gw.complete(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("tools[0].input_schema_json is not valid JSON"),
        "{}",
        err.message()
    );

    let huge = "a".repeat(100 * 1024 * 1024);
    let err = gw.complete(logs_request("acme", &huge)).await.unwrap_err();
    drop(huge);
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("larger than this server's limit of 4194304 bytes"),
        "{}",
        err.message()
    );

    // Nothing bad reached the provider, and the server still serves.
    assert_eq!(c.local.calls(), 0);
    let ok = c
        .gateway("agent")
        .complete(logs_request("acme", "still here"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.provider, "local");
    assert_eq!(c.local.calls(), 1);
    c.stop().await;
}

#[tokio::test]
async fn a_github_source_that_cannot_work_is_refused_naming_every_problem() {
    let c = Cluster::start().await;
    let repo = |service: &str, repository: &str| pb::ServiceRepository {
        service: service.into(),
        repository: repository.into(),
        default_ref: String::new(),
    };
    let mut acme = enabled_tenant("acme");
    acme.github_integration = true;
    acme.github = Some(pb::GitHubSource {
        api_url: "http://github.example.com".into(),
        credentials_id: "cred-1".into(),
        repositories: vec![repo("api", "acme"), repo("web", "acme/web")],
        ..Default::default()
    });
    let err = c
        .admin("admin")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(acme.clone()),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("github: api_url \"http://github.example.com\" is plain http")
            && err
                .message()
                .contains("repositories[0].repository \"acme\""),
        "{}",
        err.message()
    );
    assert_eq!(
        c.db_count("SELECT COUNT(*) FROM tenant_settings").await,
        0,
        "nothing was saved"
    );

    acme.github = Some(pb::GitHubSource {
        api_url: String::new(),
        credentials_id: "cred-1".into(),
        repositories: vec![repo("api", "acme/api")],
        ..Default::default()
    });
    let saved = c
        .admin("admin")
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(acme),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(saved.github.unwrap().repositories[0].repository, "acme/api");
    c.stop().await;
}

#[tokio::test]
async fn audit_outage_blocks_egress() {
    let c = Cluster::start_with(Options {
        audit_sink: Some(Arc::new(BrokenAudit)),
        second_gateway: true,
        ..Options::default()
    })
    .await;
    // The admin change itself needs an audit record, so it goes through the healthy gateway.
    gw::admin_client::AdminClient::new(c.channel("admin", c.gateway2_addr.unwrap()))
        .set_tenant_settings(gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant("acme")),
            expected_version: 0,
        })
        .await
        .unwrap();
    let err = c
        .gateway("agent")
        .complete(logs_request("acme", "checkout ERROR"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "AUDIT_FAIL_CLOSED");
    assert_eq!(c.local.calls(), 0, "nothing may leave when audit is down");
    c.stop().await;
}

#[tokio::test]
async fn data_types_the_tenant_did_not_allow_are_refused_by_name() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let mut req = logs_request("acme", "fn main() {}");
    req.messages[0].parts[0].data_type = pb::DataType::SourceCode as i32;
    let err = c.gateway("agent").complete(req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "SOURCE_CODE_REQUIRES_GITHUB");
    let mut req = logs_request("acme", "cpu=0.9");
    req.messages[0].parts[0].data_type = pb::DataType::Metrics as i32;
    let err = c.gateway("agent").complete(req).await.unwrap_err();
    assert_eq!(
        err.message(),
        "tenant acme does not allow data type metrics to be sent to a model"
    );
    assert_eq!(c.local.calls(), 0);
    c.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls_then_refuses_new_ones() {
    let c = Cluster::start_with(Options {
        provider_delay: Some(std::time::Duration::from_millis(400)),
        ..Options::default()
    })
    .await;
    c.set_tenant(enabled_tenant("acme")).await;
    let mut client = c.gateway("agent");
    let in_flight =
        tokio::spawn(async move { client.complete(logs_request("acme", "slow one")).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let gateway = c.gateway_addr;
    let fresh = c.channel("agent", gateway);
    c.stop().await;
    let ok = in_flight
        .await
        .unwrap()
        .expect("the in-flight call finishes during shutdown");
    assert_eq!(ok.into_inner().provider, "local");
    let err = warden_proto::gateway::v1::gateway_client::GatewayClient::new(fresh)
        .complete(logs_request("acme", "too late"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test]
async fn secrets_are_redacted_before_the_provider_sees_them() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant("acme")).await;
    let secret = "AKIAIOSFODNN7EXAMPLE";
    let line = format!("deploy failed: aws_access_key_id={secret} user=jane.doe@example.com");
    let ok = c
        .gateway("agent")
        .complete(logs_request("acme", &line))
        .await
        .unwrap()
        .into_inner();
    let sent = c.local.requests();
    let text = format!("{:?}", sent[0]);
    assert!(
        !text.contains(secret),
        "the key reached the provider: {text}"
    );
    assert!(
        !text.contains("jane.doe@example.com"),
        "the email reached the provider: {text}"
    );
    let kinds: Vec<_> = ok
        .minimization
        .unwrap()
        .redactions
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"aws_access_key_id".to_owned()), "{kinds:?}");
    // Neither the answer nor the audit log carries the secret.
    assert!(!ok.text.contains(secret));
    let records = c.audit_records("acme").await;
    assert!(!format!("{records:?}").contains(secret));
    c.stop().await;
}
