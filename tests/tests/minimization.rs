//! Minimization end to end over mTLS: tenant redaction rules, tool calls, budgets per data
//! type, reversible pseudonymization and drop mode, each checked at the provider (what left
//! the gateway), in the answer and in the audit log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::future::Future;
use std::time::Duration;

use tonic::Code;
use warden_integration_tests::{Cluster, enabled_tenant, logs_request, reason};
use warden_proto::common::v1 as pb;
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;

/// Every test is bounded: a hang is a failure, not a stuck CI job.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test did not finish within 60 s")
}

/// Everything the provider received, as one string (requests are plain data).
fn sent(c: &Cluster) -> String {
    format!("{:?}", c.local.requests())
}

async fn audit_records(c: &Cluster, tenant: &str) -> Vec<pb::AuditRecord> {
    c.audit_records(tenant).await
}

const TICKET_RULES: &str = r#"
# Acme's customer ticket numbers are confidential.
[[pattern]]
id = "acme_ticket"
kind = "acme_ticket"
class = "secret"
keywords = ["ACME-"]
regex = 'ACME-[0-9]{6}'
"#;

#[tokio::test]
async fn tenant_redaction_rules_apply_to_that_tenant_only() {
    bounded(async {
        let c = Cluster::start().await;
        let mut acme = enabled_tenant("acme");
        acme.redaction_rules = TICKET_RULES.into();
        c.set_tenant(acme).await;
        c.set_tenant(enabled_tenant("globex")).await;
        let line = "refund failed for ticket ACME-204931";
        let mut gw = c.gateway("agent");

        let ok = gw
            .complete(logs_request("acme", line))
            .await
            .unwrap()
            .into_inner();
        let to_provider = sent(&c);
        assert!(
            !to_provider.contains("ACME-204931"),
            "the ticket reached the provider: {to_provider}"
        );
        assert!(
            to_provider.contains("ticket [SECRET:acme_ticket:1]"),
            "{to_provider}"
        );
        let kinds: Vec<_> = ok
            .minimization
            .unwrap()
            .redactions
            .into_iter()
            .map(|r| (r.kind, r.count))
            .collect();
        assert_eq!(kinds, [("acme_ticket".to_owned(), 1)]);

        // Another tenant without the pattern is unaffected: its text leaves as it came.
        let ok = gw
            .complete(logs_request("globex", line))
            .await
            .unwrap()
            .into_inner();
        let last = c.local.requests().pop().unwrap();
        assert!(format!("{last:?}").contains(line), "{last:?}");
        assert!(ok.minimization.unwrap().redactions.is_empty());
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn broken_tenant_rules_are_refused_naming_rule_and_line() {
    bounded(async {
        let c = Cluster::start().await;
        let mut acme = enabled_tenant("acme");
        acme.redaction_rules = TICKET_RULES.replace("'ACME-[0-9]{6}'", "'ACME-[0-9'");
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
            err.message().starts_with(
                "redaction_rules do not compile: redaction_rules:8: rule \"acme_ticket\""
            ),
            "{}",
            err.message()
        );

        // Rules that reach a gateway but do not compile there (written by an older release,
        // say) refuse the tenant's requests: nothing leaves without the tenant's rules.
        TenantStoreClient::new(c.channel("gateway", c.storage_addr))
            .put_tenant_settings(st::PutTenantSettingsRequest {
                settings: Some(acme),
                expected_version: 0,
                changed_by: "test".into(),
            })
            .await
            .unwrap();
        let err = c
            .gateway("agent")
            .complete(logs_request("acme", "refund failed for ticket ACME-204931"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(reason(&err), "REDACTION_RULES_INVALID");
        assert!(
            err.message().contains("acme_ticket") && err.message().contains("fail closed"),
            "{}",
            err.message()
        );
        assert_eq!(c.local.calls(), 0, "nothing may reach the provider");
        let denials: Vec<_> = audit_records(&c, "acme")
            .await
            .into_iter()
            .filter(|r| r.reason == "REDACTION_RULES_INVALID")
            .collect();
        assert_eq!(denials.len(), 1);
        c.stop().await;
    })
    .await;
}

fn part(data_type: pb::DataType, content: gw::content_part::Content) -> gw::ContentPart {
    gw::ContentPart {
        data_type: data_type as i32,
        content: Some(content),
    }
}

fn text(data_type: pb::DataType, t: &str) -> gw::ContentPart {
    part(data_type, gw::content_part::Content::Text(t.into()))
}

fn request(tenant: &str, messages: Vec<gw::Message>) -> gw::CompleteRequest {
    gw::CompleteRequest {
        tenant_id: tenant.into(),
        purpose: pb::Purpose::Alert as i32,
        agent_run_id: "run-1".into(),
        messages,
        ..Default::default()
    }
}

fn message(role: gw::Role, parts: Vec<gw::ContentPart>) -> gw::Message {
    gw::Message {
        role: role as i32,
        parts,
    }
}

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

#[tokio::test]
async fn tool_call_arguments_in_the_request_are_redacted_and_stay_json() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(enabled_tenant("acme")).await;
        let args = format!(
            r#"{{"user":"ann@example.com","env":"aws_access_key_id={AWS_KEY}","limit":20}}"#
        );
        let req = request(
            "acme",
            vec![
                message(
                    gw::Role::User,
                    vec![text(pb::DataType::Logs, "why did ann's login fail?")],
                ),
                message(
                    gw::Role::Assistant,
                    vec![part(
                        pb::DataType::Logs,
                        gw::content_part::Content::ToolCall(gw::ToolCall {
                            id: "call-1".into(),
                            name: "query_logs".into(),
                            arguments_json: args,
                        }),
                    )],
                ),
                message(
                    gw::Role::User,
                    vec![part(
                        pb::DataType::Logs,
                        gw::content_part::Content::ToolResult(gw::ToolResult {
                            tool_call_id: "call-1".into(),
                            content: "login failed for ann@example.com".into(),
                            is_error: false,
                        }),
                    )],
                ),
            ],
        );
        let ok = c.gateway("agent").complete(req).await.unwrap().into_inner();
        let sent = c.local.requests().pop().unwrap();
        let input = sent
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .find_map(|c| match c {
                warden_providers::Content::ToolUse { input, .. } => Some(input.clone()),
                _ => None,
            })
            .expect("the tool call reached the provider");
        // Still JSON with the same shape; the same email got the same placeholder as in the
        // tool result; the key never left.
        let user = input["user"].as_str().unwrap();
        assert!(user.starts_with("[EMAIL:") && user.ends_with(']'), "{user}");
        assert_eq!(input["limit"], 20);
        let env = input["env"].as_str().unwrap();
        assert!(env.starts_with("aws_access_key_id=[SECRET:"), "{env}");
        let all = format!("{sent:?}");
        assert!(
            !all.contains(AWS_KEY) && !all.contains("ann@example.com"),
            "{all}"
        );
        assert!(all.contains(&format!("login failed for {user}")), "{all}");
        let kinds: Vec<_> = ok
            .minimization
            .unwrap()
            .redactions
            .into_iter()
            .map(|r| (r.kind, r.count))
            .collect();
        assert!(kinds.contains(&("email".to_owned(), 2)), "{kinds:?}");
        assert!(
            kinds.iter().any(|(k, _)| k == "aws_access_key_id"),
            "{kinds:?}"
        );
        c.stop().await;
    })
    .await;
}

fn pseudonymizing(tenant: &str) -> pb::TenantSettings {
    pb::TenantSettings {
        pseudonymize: true,
        ..enabled_tenant(tenant)
    }
}

const LOGIN_LINE: &str =
    "login failed for ann@example.com from 203.0.113.9 aws_access_key_id=AKIAIOSFODNN7EXAMPLE";

#[tokio::test]
async fn pseudonyms_are_restored_in_the_answer_but_secrets_never() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(pseudonymizing("acme")).await;
        let mut gw = c.gateway("agent");

        // Unary. The local provider quotes its input back, placeholders and all.
        let ok = gw
            .complete(logs_request("acme", LOGIN_LINE))
            .await
            .unwrap()
            .into_inner();
        let to_provider = sent(&c);
        for value in ["ann@example.com", "203.0.113.9", AWS_KEY] {
            assert!(
                !to_provider.contains(value),
                "{value} reached the provider: {to_provider}"
            );
        }
        assert!(to_provider.contains("[EMAIL:1]") && to_provider.contains("[IPV4:2]"));
        assert!(
            ok.text
                .contains("login failed for ann@example.com from 203.0.113.9"),
            "identifiers are restored: {}",
            ok.text
        );
        assert!(
            !ok.text.contains(AWS_KEY),
            "a secret was restored: {}",
            ok.text
        );
        assert!(
            ok.text.contains("[SECRET:aws_access_key_id:3]"),
            "{}",
            ok.text
        );

        // Stream: the same, across deltas.
        let mut stream = gw
            .complete_stream(logs_request("acme", LOGIN_LINE))
            .await
            .unwrap()
            .into_inner();
        let mut answer = String::new();
        while let Some(ev) = stream.message().await.unwrap() {
            if let Some(gw::complete_stream_event::Event::TextDelta(d)) = ev.event {
                answer.push_str(&d.text);
            }
        }
        assert!(
            answer.contains("login failed for ann@example.com from 203.0.113.9"),
            "{answer}"
        );
        assert!(!answer.contains(AWS_KEY), "{answer}");
        assert!(answer.contains("[SECRET:aws_access_key_id:3]"), "{answer}");

        // Without pseudonymization nothing is restored.
        c.set_tenant(enabled_tenant("globex")).await;
        let ok = gw
            .complete(logs_request("globex", LOGIN_LINE))
            .await
            .unwrap()
            .into_inner();
        assert!(
            ok.text.contains("login failed for [EMAIL:1] from [IPV4:2]"),
            "{}",
            ok.text
        );
        c.stop().await;
    })
    .await;
}

/// A cluster whose `local` provider is the real Anthropic adapter talking to the testkit's
/// Anthropic mock, which calls a tool with `tool_input`.
async fn cluster_with_anthropic(tool_input: &str) -> (Cluster, warden_testkit::MockServer) {
    let ca = warden_testkit::TestCa::new().unwrap();
    let mock = warden_testkit::MockServer::start(
        &ca,
        warden_testkit::anthropic::AnthropicMock {
            expected_key: Some("sk-ant-test".into()),
            tool_input: Some(tool_input.into()),
        },
    )
    .await
    .unwrap();
    let mut cfg = warden_providers::AnthropicConfig::new(
        "local",
        secrecy::SecretString::from("sk-ant-test"),
        "claude-test",
    );
    cfg.base_url = mock.url();
    cfg.http.extra_root_ca_pem = vec![ca.ca_pem()];
    let provider = warden_providers::Anthropic::new(cfg).unwrap();
    let c = Cluster::start_with(warden_integration_tests::Options {
        provider: Some(std::sync::Arc::new(provider)),
        ..Default::default()
    })
    .await;
    (c, mock)
}

fn with_tool(mut req: gw::CompleteRequest) -> gw::CompleteRequest {
    req.tools = vec![gw::ToolDefinition {
        name: "query_logs".into(),
        description: "search a user's logs".into(),
        input_schema_json: r#"{"type":"object","properties":{"user":{"type":"string"}}}"#.into(),
    }];
    req
}

#[tokio::test]
async fn pseudonyms_are_restored_in_tool_call_arguments_but_secrets_never() {
    bounded(async {
        // The model calls a tool with the placeholders it was shown.
        let (c, mock) = cluster_with_anthropic(
            r#"{"user":"[EMAIL:1]","from":"[IPV4:2]","key":"[SECRET:aws_access_key_id:3]"}"#,
        )
        .await;
        c.set_tenant(pseudonymizing("acme")).await;
        let mut gw = c.gateway("agent");
        let want = serde_json::json!({
            "user": "ann@example.com",
            "from": "203.0.113.9",
            "key": "[SECRET:aws_access_key_id:3]",
        });

        let ok = gw
            .complete(with_tool(logs_request("acme", LOGIN_LINE)))
            .await
            .unwrap()
            .into_inner();
        let body = String::from_utf8_lossy(&mock.requests()[0].body).into_owned();
        assert!(
            body.contains("[EMAIL:1]") && body.contains("[IPV4:2]") && !body.contains(AWS_KEY),
            "{body}"
        );
        assert_eq!(ok.tool_calls.len(), 1, "{ok:?}");
        let args: serde_json::Value =
            serde_json::from_str(&ok.tool_calls[0].arguments_json).unwrap();
        assert_eq!(args, want);

        // Stream: the arguments arrive in 4-byte fragments, placeholders split across them.
        let mut stream = gw
            .complete_stream(with_tool(logs_request("acme", LOGIN_LINE)))
            .await
            .unwrap()
            .into_inner();
        let mut json = String::new();
        let mut names = Vec::new();
        while let Some(ev) = stream.message().await.unwrap() {
            if let Some(gw::complete_stream_event::Event::ToolCallDelta(d)) = ev.event {
                if !d.name.is_empty() {
                    names.push(d.name);
                }
                json.push_str(&d.arguments_json_delta);
            }
        }
        assert_eq!(names, ["query_logs"]);
        let args: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(args, want);
        assert!(!json.contains(AWS_KEY));
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn drop_mode_removes_the_part_before_the_provider_and_reports_it() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(pb::TenantSettings {
            on_disallowed_data: pb::OnDisallowedData::Drop as i32,
            ..enabled_tenant("acme")
        })
        .await;
        let metrics = "payments_failed_total{card_bin=\"411111\"} 42";
        let req = request(
            "acme",
            vec![message(
                gw::Role::User,
                vec![
                    text(pb::DataType::Logs, "checkout ERROR timeout"),
                    text(pb::DataType::Metrics, metrics),
                ],
            )],
        );
        let ok = c.gateway("agent").complete(req).await.unwrap().into_inner();
        let to_provider = sent(&c);
        assert!(
            !to_provider.contains("payments_failed_total"),
            "{to_provider}"
        );
        assert!(
            to_provider.contains("checkout ERROR timeout"),
            "{to_provider}"
        );
        let summary = ok.minimization.unwrap();
        let m = summary
            .by_data_type
            .iter()
            .find(|d| d.data_type == pb::DataType::Metrics as i32)
            .unwrap();
        assert_eq!((m.parts, m.dropped_parts, m.bytes_after), (1, 1, 0));
        assert_eq!(m.bytes_before, metrics.len() as u64);
        // The audit intent says so too, and lists only the types that left.
        let intent = audit_records(&c, "acme")
            .await
            .into_iter()
            .find(|r| r.kind == pb::AuditKind::Intent as i32)
            .unwrap();
        assert_eq!(intent.minimization.as_ref(), Some(&summary));
        assert_eq!(intent.data_types, [pb::DataType::Logs as i32]);

        // Refuse mode (the default) refuses the same request, and nothing is sent.
        c.set_tenant(enabled_tenant("globex")).await;
        let calls = c.local.calls();
        let err = c
            .gateway("agent")
            .complete(request(
                "globex",
                vec![message(
                    gw::Role::User,
                    vec![
                        text(pb::DataType::Logs, "checkout ERROR timeout"),
                        text(pb::DataType::Metrics, metrics),
                    ],
                )],
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(c.local.calls(), calls);
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_data_type_budget_covers_all_its_parts_and_the_cut_is_audited() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(pb::TenantSettings {
            budgets: Some(pb::Budgets {
                data_type_budgets: vec![pb::DataTypeBudget {
                    data_type: pb::DataType::Logs as i32,
                    max_bytes: 1000,
                }],
                ..Default::default()
            }),
            ..enabled_tenant("acme")
        })
        .await;
        let logs: String = (0..200)
            .map(|i| {
                format!(
                    "2024-05-01 10:00:{:02} INFO worker {i} finished job in {i} ms\n",
                    i % 60
                )
            })
            .collect();
        let req = request(
            "acme",
            vec![message(
                gw::Role::User,
                vec![
                    text(pb::DataType::Logs, &logs),
                    text(pb::DataType::Logs, &logs),
                ],
            )],
        );
        let ok = c.gateway("agent").complete(req).await.unwrap().into_inner();
        let sent_logs: usize = c.local.requests()[0]
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .map(|c| match c {
                warden_providers::Content::Text { text } => text.len(),
                _ => 0,
            })
            .sum();
        assert!(
            sent_logs <= 1000,
            "{sent_logs} bytes of logs left for a 1000-byte budget"
        );
        let summary = ok.minimization.unwrap();
        assert_eq!(summary.budget_cuts.len(), 2, "{summary:?}");
        for cut in &summary.budget_cuts {
            assert_eq!(cut.data_type, pb::DataType::Logs as i32);
            assert_eq!(cut.method, "log_templates");
            assert_eq!(cut.bytes_before, logs.len() as u64);
        }
        let after: u64 = summary.budget_cuts.iter().map(|c| c.bytes_after).sum();
        assert_eq!(after, sent_logs as u64);
        assert_eq!(summary.bytes_after, sent_logs as u64);
        // The audit record holds the same cut (counts only, no log text).
        let records = audit_records(&c, "acme").await;
        let intent = records
            .iter()
            .find(|r| r.kind == pb::AuditKind::Intent as i32)
            .unwrap();
        assert_eq!(intent.minimization.as_ref(), Some(&summary));
        assert!(!format!("{records:?}").contains("finished job"));

        // Two budgets for one type are refused, naming the field.
        let err = c
            .admin("admin")
            .set_tenant_settings(gw::SetTenantSettingsRequest {
                settings: Some(pb::TenantSettings {
                    budgets: Some(pb::Budgets {
                        data_type_budgets: vec![
                            pb::DataTypeBudget {
                                data_type: pb::DataType::Logs as i32,
                                max_bytes: 1000,
                            },
                            pb::DataTypeBudget {
                                data_type: pb::DataType::Logs as i32,
                                max_bytes: 2000,
                            },
                        ],
                        ..Default::default()
                    }),
                    ..enabled_tenant("acme")
                }),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .starts_with("budgets.data_type_budgets[1]: a second budget for logs"),
            "{}",
            err.message()
        );
        c.stop().await;
    })
    .await;
}

#[path = "minimization/labels.rs"]
mod labels;
