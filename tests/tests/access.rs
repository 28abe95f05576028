//! The access matrix, end to end: every RPC of every service, called over mTLS by every
//! kind of identity (the three services, platform-wide callers, callers scoped to the
//! tenant named and callers scoped to another tenant, ingest identities of one tenant),
//! is allowed or refused exactly as
//! the one table in `warden_tls::access` says, with `ErrorInfo` naming the rule.
//! Refused calls read and write nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::Code;
use tonic::codec::{DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic_types::StatusExt;
use warden_integration_tests::{Cluster, enabled_tenant, logs_request, otlp_logs};
use warden_proto::agent::v1 as ag;
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_proto::telemetry::v1 as tm;
use warden_tls::Role;
use warden_tls::access::{MATRIX, Rule, TenantCheck};

/// Sends and receives message bytes as they are, so one client can call any RPC.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

/// One kind of identity: its certificate file name, role and tenant scope.
#[derive(Debug, Clone)]
struct Who {
    file: String,
    role: Role,
    tenants: Vec<&'static str>,
}

const TENANT: &str = "acme";
const OTHER: &str = "beta";

/// Every identity kind: the services, each caller role platform-wide, scoped to the
/// tenant the requests name, and scoped to another tenant.
fn identities(c: &Cluster) -> Vec<Who> {
    let mut all = vec![
        Who {
            file: "gateway".into(),
            role: Role::Gateway,
            tenants: vec![],
        },
        Who {
            file: "storage".into(),
            role: Role::Storage,
            tenants: vec![],
        },
        Who {
            file: "agent-service".into(),
            role: Role::AgentService,
            tenants: vec![],
        },
    ];
    // A platform-wide viewer is not built in.
    c.issue(Role::Viewer, "viewer", &[]);
    for role in [
        Role::Agent,
        Role::Admin,
        Role::Compliance,
        Role::Reviewer,
        Role::Viewer,
    ] {
        all.push(Who {
            file: role.as_str().into(),
            role,
            tenants: vec![],
        });
        for t in [TENANT, OTHER] {
            let file = format!("{role}-{t}");
            c.issue(role, &file, &[t]);
            all.push(Who {
                file,
                role,
                tenants: vec![t],
            });
        }
    }
    // Ingest identities always name exactly one tenant.
    for t in [TENANT, OTHER] {
        let file = format!("ingest-{t}");
        c.issue(Role::Ingest, &file, &[t]);
        all.push(Who {
            file,
            role: Role::Ingest,
            tenants: vec![t],
        });
    }
    all
}

/// What the table says, worked out here from the row itself.
fn expected_allowed(rule: &Rule, who: &Who) -> Result<(), &'static str> {
    if !rule.allowed.contains(&who.role) {
        return Err("ROLE_NOT_ALLOWED");
    }
    match rule.tenant {
        TenantCheck::Named if who.tenants.is_empty() || who.tenants.contains(&TENANT) => Ok(()),
        TenantCheck::Named => Err("TENANT_OUT_OF_SCOPE"),
        TenantCheck::Platform if who.tenants.is_empty() => Ok(()),
        TenantCheck::Platform => Err("PLATFORM_SCOPE_REQUIRED"),
        TenantCheck::Own if who.tenants.len() == 1 => Ok(()),
        TenantCheck::Own => Err("SINGLE_TENANT_SCOPE_REQUIRED"),
    }
}

/// An admin action of tenant acme, as the services may append it.
fn admin_record() -> pb::AuditRecord {
    pb::AuditRecord {
        kind: pb::AuditKind::Admin as i32,
        tenant_id: TENANT.to_owned(),
        caller: "admin/matrix".into(),
        decision: pb::AuditDecision::Allowed as i32,
        reason: "MATRIX".into(),
        ..Default::default()
    }
}

/// A request for `rpc` that names tenant acme wherever the RPC names a tenant, and would
/// pass every check after authorization (or fail with something other than PERMISSION_DENIED).
fn body(rpc: &str) -> Vec<u8> {
    let t = || TENANT.to_owned();
    match rpc.rsplit_once('.').map_or(rpc, |(_, m)| m) {
        "Gateway/Complete" | "Gateway/CompleteStream" => {
            logs_request(TENANT, "checkout ERROR").encode_to_vec()
        }
        "Admin/GetTenantSettings" => {
            gw::GetTenantSettingsRequest { tenant_id: t() }.encode_to_vec()
        }
        "Admin/SetTenantSettings" => gw::SetTenantSettingsRequest {
            settings: Some(enabled_tenant(TENANT)),
            expected_version: 0,
        }
        .encode_to_vec(),
        "Admin/PutCustomerCredentials" => gw::PutCustomerCredentialsRequest {
            tenant_id: t(),
            access_key_id: "AKIDEXAMPLEMATRIX".into(),
            secret_access_key: "matrix-secret".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Audit/QueryAuditRecords" => gw::QueryAuditRecordsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Audit/ExportAuditRecords" => gw::ExportAuditRecordsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/SubmitTrigger" => ag::SubmitTriggerRequest {
            tenant_id: t(),
            purpose: pb::Purpose::Alert as i32,
            title: "matrix".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/GetRun" => ag::GetRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
        }
        .encode_to_vec(),
        "Agent/ListProposals" => ag::ListProposalsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/ReviewProposal" => ag::ReviewProposalRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
            approve: true,
            digest: "sha256:none".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/GetProposal" => ag::GetProposalRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
        }
        .encode_to_vec(),
        "Releases/ReleaseProposal" => gw::ReleaseProposalRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Admin/PutReleaseCredentials" => gw::PutSourceCredentialsRequest {
            tenant_id: t(),
            credentials: None,
        }
        .encode_to_vec(),
        "TenantStore/GetTenantSettings" => {
            st::GetTenantSettingsRequest { tenant_id: t() }.encode_to_vec()
        }
        "TenantStore/PutTenantSettings" => st::PutTenantSettingsRequest {
            settings: Some(enabled_tenant(TENANT)),
            expected_version: 0,
            changed_by: "admin/matrix".into(),
        }
        .encode_to_vec(),
        "TenantStore/PutCustomerCredentials" => st::PutCustomerCredentialsRequest {
            tenant_id: t(),
            access_key_id: "AKIDEXAMPLEMATRIX".into(),
            secret_access_key: "matrix-secret".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TenantStore/GetCustomerCredentials" => st::GetCustomerCredentialsRequest {
            tenant_id: t(),
            credentials_id: "none".into(),
        }
        .encode_to_vec(),
        "AuditLog/Append" => st::AppendRequest {
            record: Some(admin_record()),
        }
        .encode_to_vec(),
        "AuditLog/AppendStream" => st::AppendStreamRequest {
            call: 1,
            record: Some(admin_record()),
        }
        .encode_to_vec(),
        "AuditLog/Query" => st::QueryRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "RunStore/CreateRun" => st::CreateRunRequest {
            tenant_id: t(),
            purpose: pb::Purpose::Alert as i32,
            status: st::RunStatus::Skipped as i32,
            ..Default::default()
        }
        .encode_to_vec(),
        "RunStore/UpdateRun" => st::UpdateRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
            status: st::RunStatus::Failed as i32,
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/ListRuns" => ag::ListRunsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "Agent/CancelRun" => ag::CancelRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
            reason: "matrix".into(),
        }
        .encode_to_vec(),
        "RunStore/ListRuns" => st::ListRunsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "RunStore/CancelRun" => st::CancelRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
            reason: "matrix".into(),
        }
        .encode_to_vec(),
        "RunStore/LeaseRun" => st::LeaseRunRequest {
            worker: "matrix".into(),
            lease_ms: 1000,
            ..Default::default()
        }
        .encode_to_vec(),
        "RunStore/RenewLease" => st::RenewLeaseRequest {
            tenant_id: t(),
            run_id: "none".into(),
            worker: "matrix".into(),
            lease_ms: 1000,
        }
        .encode_to_vec(),
        "RunStore/CheckpointRun" => st::CheckpointRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
            worker: "matrix".into(),
            step: 1,
            ..Default::default()
        }
        .encode_to_vec(),
        "RunStore/AttachRunEvent" => st::AttachRunEventRequest {
            tenant_id: t(),
            key: "none".into(),
            event: Some(st::RunEvent {
                kind: "resolved".into(),
                detail_json: "{}".into(),
                ..Default::default()
            }),
        }
        .encode_to_vec(),
        "RunStore/GetRun" => st::GetRunRequest {
            tenant_id: t(),
            run_id: "none".into(),
        }
        .encode_to_vec(),
        "RunStore/AddFinding" => st::AddFindingRequest {
            tenant_id: t(),
            run_id: "none".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/CreateProposal" => st::CreateProposalRequest {
            tenant_id: t(),
            run_id: "none".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/ListProposals" => st::ListProposalsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/GetProposal" => st::GetProposalRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
        }
        .encode_to_vec(),
        "ProposalStore/ReviewProposal" => st::ReviewProposalRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
            reviewer: "reviewer/matrix".into(),
            approve: true,
            digest: "sha256:none".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/ClaimRelease" => st::ClaimReleaseRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
            actor: "reviewer/matrix".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/CompleteRelease" => st::CompleteReleaseRequest {
            tenant_id: t(),
            proposal_id: "none".into(),
            actor: "reviewer/matrix".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/RecordOutcome" => st::RecordOutcomeRequest {
            tenant_id: t(),
            release_url: "https://github.com/acme/api/pull/0".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/PutReleaseCredentials" => st::PutReleaseCredentialsRequest {
            tenant_id: t(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ProposalStore/GetReleaseCredentials" => st::GetReleaseCredentialsRequest {
            tenant_id: t(),
            credentials_id: "none".into(),
        }
        .encode_to_vec(),
        "IngestTokens/CreateIngestToken" => tm::CreateIngestTokenRequest {
            tenant_id: t(),
            description: "matrix".into(),
        }
        .encode_to_vec(),
        // Credentials left out: refused on their merits after the access check.
        "Admin/PutSourceCredentials" => gw::PutSourceCredentialsRequest {
            tenant_id: t(),
            credentials: None,
        }
        .encode_to_vec(),
        "TenantStore/PutSourceCredentials" => st::PutSourceCredentialsRequest {
            tenant_id: t(),
            credentials: None,
        }
        .encode_to_vec(),
        "TenantStore/GetSourceCredentials" => st::GetSourceCredentialsRequest {
            tenant_id: t(),
            credentials_id: "none".into(),
        }
        .encode_to_vec(),
        "ApiKeys/CreateApiKey" => st::CreateApiKeyRequest {
            tenant_id: t(),
            identity: "matrix-bot".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "ApiKeys/ListApiKeys" => st::ListApiKeysRequest { tenant_id: t() }.encode_to_vec(),
        "ApiKeys/RevokeApiKey" => st::RevokeApiKeyRequest {
            tenant_id: t(),
            key_id: "none".into(),
        }
        .encode_to_vec(),
        "ApiKeys/ResolveApiKey" => st::ResolveApiKeyRequest {
            key: "wdn_key_none".into(),
        }
        .encode_to_vec(),
        "IngestTokens/ListIngestTokens" => {
            tm::ListIngestTokensRequest { tenant_id: t() }.encode_to_vec()
        }
        "IngestTokens/RevokeIngestToken" => tm::RevokeIngestTokenRequest {
            tenant_id: t(),
            token_id: "none".into(),
        }
        .encode_to_vec(),
        "LogsService/Export" => otlp_logs("checkout", &[], &["matrix line"]).encode_to_vec(),
        "TelemetryQuery/QueryLogs" => tm::QueryLogsRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/LogPatterns" => tm::LogPatternsRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/ListMetrics" => tm::ListMetricsRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/QueryMetrics" => tm::QueryMetricsRequest {
            tenant_id: t(),
            window: telemetry_window(),
            name: "http_requests_total".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/GetTrace" => tm::GetTraceRequest {
            tenant_id: t(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        }
        .encode_to_vec(),
        "TelemetryQuery/FindTraces" => tm::FindTracesRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/TopFunctions" => tm::TopFunctionsRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/QueryCluster" => tm::QueryClusterRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        "TelemetryQuery/QueryConfig" => tm::QueryConfigRequest {
            tenant_id: t(),
            window: telemetry_window(),
            ..Default::default()
        }
        .encode_to_vec(),
        // Verify, checkpoints, proofs, watch: the empty request.
        _ => Vec::new(),
    }
}

/// The last hour before a fixed instant: a window every telemetry query accepts.
fn telemetry_window() -> Option<tm::Window> {
    let until = 1_760_054_400;
    Some(tm::Window {
        since: Some(prost_types::Timestamp {
            seconds: until - 3600,
            nanos: 0,
        }),
        until: Some(prost_types::Timestamp {
            seconds: until,
            nanos: 0,
        }),
    })
}

/// The server-streaming RPCs, from the published descriptors.
fn streaming(rpc: &str) -> bool {
    methods().into_iter().any(|(name, s)| name == rpc && s)
}

/// Every method of every Warden service as `package.Service/Method`, with whether it
/// streams its answer.
fn methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(warden_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        if !package.starts_with("warden.") {
            continue;
        }
        for svc in &file.service {
            for m in &svc.method {
                out.push((
                    format!("{package}.{}/{}", svc.name(), m.name()),
                    m.server_streaming(),
                ));
            }
        }
    }
    // The agent service's webhooks (HTTPS routes, one matrix row).
    out.push(("warden.agent.v1.Webhooks/Deliver".to_owned(), false));
    // The OTLP collector services storage's ingest listener serves, as the OpenTelemetry
    // protocol names them (from the published `opentelemetry-proto` definitions).
    for signal in [
        "logs.v1.LogsService",
        "metrics.v1.MetricsService",
        "trace.v1.TraceService",
    ] {
        out.push((
            format!("opentelemetry.proto.collector.{signal}/Export"),
            false,
        ));
    }
    out
}

/// Posts an Alertmanager notification to the webhook listener as `who`, and reads the
/// answer back as the gRPC status the same decision would have been.
async fn deliver_webhook(c: &Cluster, rule: &Rule, who: &Who) -> Result<(), tonic::Status> {
    let ca = std::fs::read(c.pki.ca_cert_path()).unwrap();
    let dir = c.pki.dir();
    let mut pem = std::fs::read(dir.join(format!("{}.pem", who.file))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("{}-key.pem", who.file))).unwrap());
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .resolve("agent.warden.internal", c.webhooks_addr)
        .build()
        .unwrap();
    let body = serde_json::json!({"version": "4", "status": "firing", "receiver": "warden", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Matrix"}, "startsAt": "2026-12-05T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": format!("matrix{}", who.file)}]});
    let res = http
        .post(format!(
            "https://agent.warden.internal:{}/webhooks/alertmanager",
            c.webhooks_addr.port()
        ))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let status = res.status().as_u16();
    let v: serde_json::Value = res.json().await.unwrap_or_default();
    let code = match status {
        200..=299 => return Ok(()),
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        _ => Code::Unknown,
    };
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        text("rpc"),
        if code == Code::PermissionDenied {
            rule.rpc
        } else {
            ""
        }
    );
    Err(tonic::Status::with_error_details(
        code,
        text("error"),
        tonic_types::ErrorDetails::with_error_info(
            text("reason"),
            "warden",
            [("rpc".to_owned(), text("rpc"))],
        ),
    ))
}

/// Calls `rule.rpc` as `who` on the service that serves it.
async fn call(c: &Cluster, rule: &Rule, who: &Who) -> Result<(), tonic::Status> {
    if rule.rpc == "warden.agent.v1.Webhooks/Deliver" {
        return deliver_webhook(c, rule, who).await;
    }
    let addr = match rule.rpc.split('.').nth(1) {
        Some("gateway") => c.gateway_addr,
        Some("agent") => c.agent_addr,
        Some("storage") => c.storage_addr,
        // Storage's ingest listener: the OTLP services and warden.telemetry.v1.Ingest.
        Some("proto") => c.otlp_grpc_addr,
        Some("telemetry") if rule.rpc.starts_with("warden.telemetry.v1.Ingest/") => {
            c.otlp_grpc_addr
        }
        // Telemetry queries and ingest tokens are served by storage.
        Some("telemetry") => c.storage_addr,
        other => panic!("no service for {other:?}"),
    };
    let mut grpc = tonic::client::Grpc::new(c.channel(&who.file, addr));
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_str(&format!("/{}", rule.rpc)).unwrap();
    let req = tonic::Request::new(body(rule.rpc));
    if streaming(rule.rpc) {
        grpc.server_streaming(req, path, Raw).await.map(|_| ())
    } else {
        grpc.unary(req, path, Raw).await.map(|_| ())
    }
}

/// Row counts (and settings) of every table, to prove a refused call wrote nothing.
async fn snapshot(c: &Cluster) -> Vec<(String, String)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&c.db_url).await.unwrap();
    let mut out = Vec::new();
    for table in [
        "tenant_settings",
        "tenant_settings_history",
        "customer_credentials",
        "audit_log",
        "runs",
        "findings",
        "proposals",
        "proposal_approvals",
        "proposal_history",
        "release_credentials",
        "ingest_tokens",
        "log_records",
        "metric_series",
        "metric_points",
        "spans",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        out.push((table.to_owned(), n.to_string()));
    }
    let settings: Vec<String> =
        sqlx::query_scalar("SELECT settings FROM tenant_settings ORDER BY tenant_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    out.push(("settings".into(), settings.join(";")));
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_of_every_service_is_in_the_matrix() {
    let rows: Vec<&str> = MATRIX.iter().map(|r| r.rpc).collect();
    let served: Vec<String> = methods().into_iter().map(|(m, _)| m).collect();
    for m in &served {
        assert!(
            rows.contains(&m.as_str()),
            "{m} has no row in the access matrix"
        );
    }
    for r in &rows {
        assert!(served.iter().any(|m| m == r), "matrix row {r} names no RPC");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_holds_for_every_rpc_and_every_identity_kind() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant(TENANT)).await;
    let who = identities(&c);
    let calls_before = c.local.calls();
    let before = snapshot(&c).await;

    // First every call the table refuses: each is PERMISSION_DENIED naming its rule, and
    // none of them reads or writes anything.
    let mut refused = 0;
    for rule in MATRIX {
        for w in &who {
            let Err(reason) = expected_allowed(rule, w) else {
                continue;
            };
            let err = call(&c, rule, w).await.expect_err(rule.rpc);
            assert_eq!(
                err.code(),
                Code::PermissionDenied,
                "{} as {w:?}: {err:?}",
                rule.rpc
            );
            let info = err.get_details_error_info().expect("ErrorInfo");
            assert_eq!(
                info.reason,
                reason,
                "{} as {w:?}: {}",
                rule.rpc,
                err.message()
            );
            assert_eq!(info.metadata.get("rpc").map(String::as_str), Some(rule.rpc));
            if reason == "TENANT_OUT_OF_SCOPE" {
                assert!(err.message().contains(TENANT), "{}", err.message());
            }
            refused += 1;
        }
    }
    assert!(
        refused > 200,
        "only {refused} refusals: the identity kinds are not all there"
    );
    assert_eq!(
        snapshot(&c).await,
        before,
        "a refused call changed the database"
    );
    assert_eq!(
        c.local.calls(),
        calls_before,
        "a refused call reached the provider"
    );

    // Then every call the table allows: never PERMISSION_DENIED (it may still fail on
    // its own merits, e.g. NOT_FOUND for a run that does not exist).
    for rule in MATRIX {
        for w in &who {
            if expected_allowed(rule, w).is_err() {
                continue;
            }
            if let Err(err) = call(&c, rule, w).await {
                assert!(
                    !matches!(err.code(), Code::PermissionDenied | Code::Unauthenticated),
                    "{} as {w:?} should be allowed: {err:?}",
                    rule.rpc
                );
            }
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_scoped_to_another_tenant_read_and_write_nothing() {
    let c = Cluster::start().await;
    c.set_tenant(enabled_tenant(TENANT)).await;
    let who = identities(&c);
    let others: Vec<&Who> = who.iter().filter(|w| w.tenants == [OTHER]).collect();
    assert_eq!(others.len(), 6);
    let before = snapshot(&c).await;
    let mut named = 0;
    for rule in MATRIX.iter().filter(|r| r.tenant == TenantCheck::Named) {
        for w in &others {
            let err = call(&c, rule, w).await.expect_err(rule.rpc);
            assert_eq!(err.code(), Code::PermissionDenied, "{} as {w:?}", rule.rpc);
            named += 1;
        }
    }
    assert!(named >= 6 * 15, "{named}");
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(c.local.calls(), 0, "nothing reached the provider");
    c.stop().await;
}
