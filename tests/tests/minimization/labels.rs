//! Data-type labels that cannot be laundered, replayed as attacks: code hidden behind a
//! logs part of the system prompt, secrets in tool definitions, names and ids, over-long
//! tool names and ids, and telemetry relabelled as instructions. Each is checked at the
//! provider (what left the gateway) and in the audit log.

use super::*;
use warden_providers::Content;

const CODE: &str = "fn charge(card: &Card) -> Result<Receipt> { gateway::capture(card) }";

/// `[LOGS, SOURCE_CODE]` system parts, then an instruction.
fn logs_then_code(tenant: &str) -> gw::CompleteRequest {
    request(
        tenant,
        vec![
            message(
                gw::Role::System,
                vec![
                    text(pb::DataType::Logs, "checkout ERROR timeout after 30s"),
                    text(pb::DataType::SourceCode, CODE),
                ],
            ),
            message(
                gw::Role::User,
                vec![text(pb::DataType::Instruction, "Why did checkout fail?")],
            ),
        ],
    )
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn system_parts_keep_their_own_type_so_drop_mode_never_sends_code() {
    bounded(async {
        let c = Cluster::start().await;
        // GitHub off, drop mode: the code part must be dropped, whatever part precedes it.
        c.set_tenant(pb::TenantSettings {
            on_disallowed_data: pb::OnDisallowedData::Drop as i32,
            ..enabled_tenant("acme")
        })
        .await;
        let ok = c
            .gateway("agent")
            .complete(logs_then_code("acme"))
            .await
            .unwrap()
            .into_inner();
        let reached = c.local.requests();
        assert_eq!(reached.len(), 1);
        let system = reached[0].system.clone().unwrap_or_default();
        assert_eq!(system, "checkout ERROR timeout after 30s");
        let all = format!("{reached:?}");
        assert!(
            !all.contains("gateway::capture"),
            "code reached the provider: {all}"
        );

        // The summary and both audit records list the dropped code part, and the types
        // that left are exactly the ones that left.
        let summary = ok.minimization.unwrap();
        let code = summary
            .by_data_type
            .iter()
            .find(|d| d.data_type == pb::DataType::SourceCode as i32)
            .expect("the code part is in the summary");
        assert_eq!(
            (
                code.parts,
                code.dropped_parts,
                code.bytes_before,
                code.bytes_after
            ),
            (1, 1, CODE.len() as u64, 0)
        );
        let logs = summary
            .by_data_type
            .iter()
            .find(|d| d.data_type == pb::DataType::Logs as i32)
            .unwrap();
        assert_eq!((logs.parts, logs.dropped_parts), (1, 0));
        let records = audit_records(&c, "acme").await;
        let sent_types = vec![pb::DataType::Instruction as i32, pb::DataType::Logs as i32];
        for kind in [pb::AuditKind::Intent, pb::AuditKind::Outcome] {
            let r = records
                .iter()
                .find(|r| r.kind == kind as i32)
                .unwrap_or_else(|| panic!("no {kind:?} record: {records:?}"));
            assert_eq!(sorted(r.data_types.clone()), sent_types, "{kind:?}");
            assert_eq!(r.minimization.as_ref(), Some(&summary), "{kind:?}");
        }
        assert!(!format!("{records:?}").contains("gateway::capture"));

        // Refuse mode (the default): the same request is refused by the code part's own
        // type, nothing reaches the provider, and the denial names both types.
        c.set_tenant(enabled_tenant("globex")).await;
        let err = c
            .gateway("agent")
            .complete(logs_then_code("globex"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(reason(&err), "SOURCE_CODE_REQUIRES_GITHUB");
        assert_eq!(c.local.calls(), 1, "nothing more may reach the provider");
        let denial = audit_records(&c, "globex")
            .await
            .into_iter()
            .find(|r| r.kind == pb::AuditKind::Denial as i32)
            .expect("the refusal is audited");
        assert_eq!(denial.reason, "SOURCE_CODE_REQUIRES_GITHUB");
        assert_eq!(
            sorted(denial.data_types),
            [
                pb::DataType::Instruction as i32,
                pb::DataType::Logs as i32,
                pb::DataType::SourceCode as i32
            ]
        );
        c.stop().await;
    })
    .await;
}

/// A tool loop with a secret in every label: the tool's name, description and schema, the
/// tool call's id and name, and the tool result's id.
fn tool_loop_with_secrets(tenant: &str) -> gw::CompleteRequest {
    let id = format!("call-{AWS_KEY}");
    let name = format!("lookup-{AWS_KEY}");
    let mut req = request(
        tenant,
        vec![
            message(
                gw::Role::User,
                vec![text(
                    pb::DataType::Instruction,
                    "Which user failed to log in?",
                )],
            ),
            message(
                gw::Role::Assistant,
                vec![part(
                    pb::DataType::Logs,
                    gw::content_part::Content::ToolCall(gw::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments_json: r#"{"limit":20}"#.into(),
                    }),
                )],
            ),
            message(
                gw::Role::User,
                vec![part(
                    pb::DataType::Logs,
                    gw::content_part::Content::ToolResult(gw::ToolResult {
                        tool_call_id: id,
                        content: "login failed for user 42".into(),
                        is_error: false,
                    }),
                )],
            ),
        ],
    );
    req.tools = vec![gw::ToolDefinition {
        name,
        description: format!("Searches logs. Authenticate with {AWS_KEY}."),
        input_schema_json: format!(
            r#"{{"type":"object","properties":{{"limit":{{"type":"integer","description":"key {AWS_KEY}"}}}}}}"#
        ),
    }];
    req
}

#[tokio::test]
async fn secrets_in_tool_definitions_names_and_ids_are_redacted_before_the_provider() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(enabled_tenant("acme")).await;
        let req = tool_loop_with_secrets("acme");
        let def_bytes = {
            let t = &req.tools[0];
            (t.name.len() + t.description.len() + t.input_schema_json.len()) as u64
        };
        let ok = c.gateway("agent").complete(req).await.unwrap().into_inner();
        let reached = c.local.requests().pop().unwrap();
        let all = format!("{reached:?}");
        assert!(
            !all.contains(AWS_KEY),
            "the key reached the provider: {all}"
        );

        // Each label on its own: redacted in place, the rest of it kept.
        let tool = &reached.tools[0];
        assert!(
            tool.name.starts_with("lookup-[SECRET:aws_access_key_id:"),
            "{}",
            tool.name
        );
        assert!(
            tool.description
                .starts_with("Searches logs. Authenticate with [SECRET:"),
            "{}",
            tool.description
        );
        let schema_note = tool.input_schema["properties"]["limit"]["description"]
            .as_str()
            .unwrap();
        assert!(schema_note.starts_with("key [SECRET:"), "{schema_note}");
        assert_eq!(tool.input_schema["type"], "object", "the schema stays JSON");
        let (call_id, call_name) = reached
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .find_map(|c| match c {
                Content::ToolUse { id, name, .. } => Some((id.clone(), name.clone())),
                _ => None,
            })
            .expect("the tool call reached the provider");
        let result_id = reached
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .find_map(|c| match c {
                Content::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                _ => None,
            })
            .expect("the tool result reached the provider");
        assert!(call_id.starts_with("call-[SECRET:"), "{call_id}");
        assert_eq!(call_name, tool.name, "one value, one placeholder");
        assert_eq!(result_id, call_id, "the result still answers its call");

        // Counted like any other text: every occurrence in the redaction counts, the tool
        // definition as one instruction part with its bytes, in the answer and the audit.
        let summary = ok.minimization.unwrap();
        let keys = summary
            .redactions
            .iter()
            .find(|r| r.kind == "aws_access_key_id")
            .map(|r| r.count);
        assert_eq!(keys, Some(6), "{summary:?}");
        let instruction = summary
            .by_data_type
            .iter()
            .find(|d| d.data_type == pb::DataType::Instruction as i32)
            .unwrap();
        let question = "Which user failed to log in?".len() as u64;
        assert_eq!(instruction.parts, 2, "the question and the tool definition");
        assert_eq!(instruction.bytes_before, question + def_bytes);
        let records = audit_records(&c, "acme").await;
        let intent = records
            .iter()
            .find(|r| r.kind == pb::AuditKind::Intent as i32)
            .unwrap();
        assert_eq!(intent.minimization.as_ref(), Some(&summary));
        assert!(!format!("{records:?}").contains(AWS_KEY));
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn over_long_tool_names_and_ids_are_refused_naming_the_field() {
    bounded(async {
        let c = Cluster::start().await;
        c.set_tenant(enabled_tenant("acme")).await;
        let long_name = format!("n{}", "x".repeat(64));
        let long_id = format!("{AWS_KEY}{}", "1".repeat(300));
        type Edit = fn(&mut gw::CompleteRequest, &str);
        fn tool_call(r: &mut gw::CompleteRequest) -> &mut gw::ToolCall {
            match r.messages[1].parts[0].content.as_mut() {
                Some(gw::content_part::Content::ToolCall(tc)) => tc,
                _ => panic!("messages[1].parts[0] is the tool call"),
            }
        }
        fn tool_result(r: &mut gw::CompleteRequest) -> &mut gw::ToolResult {
            match r.messages[2].parts[0].content.as_mut() {
                Some(gw::content_part::Content::ToolResult(tr)) => tr,
                _ => panic!("messages[2].parts[0] is the tool result"),
            }
        }
        let cases: [(&str, &str, Edit); 6] = [
            ("tools[0].name", &long_name, |r, v| {
                r.tools[0].name = v.into()
            }),
            ("tools[0].description", "", |r, _| {
                r.tools[0].description = "d".repeat(16 * 1024 + 1);
            }),
            ("messages[1].parts[0].tool_call.name", &long_name, |r, v| {
                tool_call(r).name = v.into()
            }),
            ("messages[1].parts[0].tool_call.id", &long_id, |r, v| {
                tool_call(r).id = v.into();
            }),
            (
                "messages[2].parts[0].tool_result.tool_call_id",
                &long_id,
                |r, v| tool_result(r).tool_call_id = v.into(),
            ),
            ("messages[1].parts[0].tool_call.name", "", |r, _| {
                tool_call(r).name = String::new();
            }),
        ];
        let mut gw = c.gateway("agent");
        for (field, value, edit) in cases {
            let mut req = tool_loop_with_secrets("acme");
            edit(&mut req, value);
            let err = gw.complete(req).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
            assert!(
                err.message().starts_with(field),
                "{field}: {}",
                err.message()
            );
            assert!(
                !err.message().contains(AWS_KEY) && !err.message().contains("xxxx"),
                "the value is never echoed: {}",
                err.message()
            );
        }
        assert_eq!(c.local.calls(), 0, "nothing may reach the provider");
        // The server keeps serving, and the same request within the limits goes through.
        gw.complete(tool_loop_with_secrets("acme")).await.unwrap();
        assert_eq!(c.local.calls(), 1);
        c.stop().await;
    })
    .await;
}

/// Telemetry sent as an instruction: `lines` log lines (about 65 bytes each) labelled
/// INSTRUCTION.
fn telemetry_as_instruction(tenant: &str, lines: usize) -> gw::CompleteRequest {
    let logs: String = (0..lines)
        .map(|i| format!("2024-05-01 10:00:00 ERROR payment {i} declined for card bin 4111\n"))
        .collect();
    request(
        tenant,
        vec![
            message(
                gw::Role::System,
                vec![text(pb::DataType::Instruction, "You are an SRE assistant.")],
            ),
            message(gw::Role::User, vec![text(pb::DataType::Instruction, &logs)]),
        ],
    )
}

fn instruction_budget(tenant: &str, mode: pb::OnDisallowedData) -> pb::TenantSettings {
    pb::TenantSettings {
        on_disallowed_data: mode as i32,
        budgets: Some(pb::Budgets {
            data_type_budgets: vec![pb::DataTypeBudget {
                data_type: pb::DataType::Instruction as i32,
                max_bytes: 2000,
            }],
            ..Default::default()
        }),
        ..enabled_tenant(tenant)
    }
}

#[tokio::test]
async fn telemetry_relabelled_as_instructions_is_bounded_by_the_instruction_budget() {
    bounded(async {
        let c = Cluster::start().await;
        let mut gw = c.gateway("agent");

        // Refuse mode: refused by name, nothing sent, the denial audited.
        c.set_tenant(instruction_budget("acme", pb::OnDisallowedData::Refuse))
            .await;
        let err = gw
            .complete(telemetry_as_instruction("acme", 300))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(reason(&err), "INSTRUCTION_BUDGET_EXCEEDED");
        assert!(
            err.message().contains("instruction budget of 2000 bytes"),
            "{}",
            err.message()
        );
        assert_eq!(c.local.calls(), 0, "nothing may reach the provider");
        let records = audit_records(&c, "acme").await;
        let calls: Vec<_> = records
            .iter()
            .filter(|r| r.kind == pb::AuditKind::Intent as i32)
            .collect();
        assert!(calls.is_empty(), "no intent for a refused call: {calls:?}");
        let denials: Vec<_> = records
            .iter()
            .filter(|r| r.kind == pb::AuditKind::Denial as i32)
            .collect();
        assert_eq!(denials.len(), 1, "{records:?}");
        assert_eq!(denials[0].reason, "INSTRUCTION_BUDGET_EXCEEDED");
        assert!(!format!("{records:?}").contains("declined"));

        // Drop mode: cut to the budget, and the cut is in the summary and the audit record.
        c.set_tenant(instruction_budget("globex", pb::OnDisallowedData::Drop))
            .await;
        let req = telemetry_as_instruction("globex", 300);
        let before: u64 = req
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .map(|p| match &p.content {
                Some(gw::content_part::Content::Text(t)) => t.len() as u64,
                _ => 0,
            })
            .sum();
        let ok = gw.complete(req).await.unwrap().into_inner();
        let reached = c.local.requests().pop().unwrap();
        let sent: usize = reached.system.as_deref().map_or(0, str::len)
            + reached
                .messages
                .iter()
                .flat_map(|m| &m.content)
                .map(|c| match c {
                    Content::Text { text } => text.len(),
                    _ => 0,
                })
                .sum::<usize>();
        assert!(
            sent <= 2000,
            "{sent} instruction bytes left for a 2000-byte budget"
        );
        assert_eq!(
            reached.system.as_deref(),
            Some("You are an SRE assistant."),
            "the small part is kept whole"
        );
        let summary = ok.minimization.unwrap();
        assert_eq!(summary.budget_cuts.len(), 1, "{summary:?}");
        let cut = &summary.budget_cuts[0];
        assert_eq!(cut.data_type, pb::DataType::Instruction as i32);
        assert_eq!(cut.method, "truncate");
        let system = "You are an SRE assistant.".len() as u64;
        assert_eq!(
            cut.bytes_before,
            before - system,
            "the telemetry part was cut"
        );
        assert_eq!(cut.bytes_after, sent as u64 - system, "{cut:?}");
        let instruction = &summary.by_data_type[0];
        assert_eq!(instruction.data_type, pb::DataType::Instruction as i32);
        assert_eq!(
            (instruction.bytes_before, instruction.bytes_after),
            (before, sent as u64)
        );
        let intent = audit_records(&c, "globex")
            .await
            .into_iter()
            .find(|r| r.kind == pb::AuditKind::Intent as i32)
            .unwrap();
        assert_eq!(intent.minimization.as_ref(), Some(&summary));

        // Without a budget of its own a tenant has the platform's default (64 KiB): sane for
        // prompts, not a hiding place for 100 KB of telemetry.
        c.set_tenant(enabled_tenant("initech")).await;
        gw.complete(telemetry_as_instruction("initech", 10))
            .await
            .unwrap();
        let calls = c.local.calls();
        let err = gw
            .complete(telemetry_as_instruction("initech", 1500))
            .await
            .unwrap_err();
        assert_eq!(reason(&err), "INSTRUCTION_BUDGET_EXCEEDED");
        assert!(
            err.message().contains("budget of 65536 bytes"),
            "{}",
            err.message()
        );
        assert_eq!(c.local.calls(), calls);
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_pseudonymized_tool_name_is_restored_in_the_answer_but_a_secret_never() {
    bounded(async {
        // The local provider calls the first tool offered that needs no arguments, by the
        // name it was shown.
        let c = Cluster::start().await;
        c.set_tenant(pseudonymizing("acme")).await;
        let with_tool = |name: &str| {
            let mut req = logs_request("acme", "login failed");
            req.tools = vec![gw::ToolDefinition {
                name: name.into(),
                description: "mail a user".into(),
                input_schema_json: r#"{"type":"object"}"#.into(),
            }];
            req
        };
        let mut gw = c.gateway("agent");
        let ok = gw
            .complete(with_tool("ann@example.com"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(c.local.requests()[0].tools[0].name, "[EMAIL:1]");
        assert_eq!(ok.tool_calls.len(), 1, "{ok:?}");
        assert_eq!(ok.tool_calls[0].name, "ann@example.com");

        let mut stream = gw
            .complete_stream(with_tool("ann@example.com"))
            .await
            .unwrap()
            .into_inner();
        let mut names = Vec::new();
        while let Some(ev) = stream.message().await.unwrap() {
            if let Some(gw::complete_stream_event::Event::ToolCallDelta(d)) = ev.event
                && !d.name.is_empty()
            {
                names.push(d.name);
            }
        }
        assert_eq!(names, ["ann@example.com"]);

        let ok = gw
            .complete(with_tool(&format!("lookup-{AWS_KEY}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.tool_calls[0].name, "lookup-[SECRET:aws_access_key_id:1]");
        assert!(!format!("{:?}", c.local.requests()).contains(AWS_KEY));
        c.stop().await;
    })
    .await;
}
