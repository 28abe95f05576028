//! `propose_change`: records a structured proposal for a human reviewer; nothing is ever
//! applied by the agent.
//!
//! The model writes the kind, the target (a Kubernetes object at the resourceVersion it
//! read, or files of a repository at the branch head it read), the exact change (a unified
//! diff, or a JSON / strategic-merge patch) and the rationale. It does not write the
//! evidence: storage fills that in from the run's own records, redacts the model's text,
//! validates it (a refusal comes back to the model with the reason, so it can correct
//! itself) and gives the content its digest.

use serde_json::{Map, Value, json};
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::proposal_target::Target;

use super::args::Args;
use super::{Found, ToolError};
use crate::Agent;

/// The tool's arguments, as the model sees them.
pub(crate) fn schema() -> Value {
    let text = |d: &str| json!({"type": "string", "description": d});
    json!({
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["config_change", "code_fix", "runbook_action"]},
            "title": text("one line, at most 200 characters"),
            "rationale": text("why this change fixes what the investigation found, citing the evidence"),
            "target": {
                "type": "object",
                "description": "exactly one of repository or kubernetes",
                "properties": {
                    "repository": {
                        "type": "object",
                        "properties": {
                            "repository": text("owner/name of a mapped repository, or the service whose repository it is"),
                            "branch": text("the branch the change is for"),
                            "head_sha": text("the 40-hex commit at the head of that branch when you read the files (show_commit with the branch name gives it)"),
                            "paths": {"type": "array", "items": {"type": "string"}, "description": "every file the diff touches"}
                        },
                        "required": ["repository", "branch", "head_sha", "paths"],
                        "additionalProperties": false
                    },
                    "kubernetes": {
                        "type": "object",
                        "properties": {
                            "cluster": {"type": "string"},
                            "namespace": {"type": "string"},
                            "kind": text("e.g. ConfigMap, Deployment"),
                            "name": {"type": "string"},
                            "resource_version": text("metadata.resourceVersion of the object as you read it")
                        },
                        "required": ["kind", "name", "resource_version"],
                        "additionalProperties": false
                    }
                },
                "additionalProperties": false
            },
            "change": {
                "type": "object",
                "properties": {
                    "format": {"type": "string", "enum": ["unified_diff", "json_patch", "strategic_merge_patch"]},
                    "content": text("the exact change: a unified diff (git diff) for a repository, an RFC 6902 JSON patch or a strategic-merge patch for a Kubernetes object")
                },
                "required": ["format", "content"],
                "additionalProperties": false
            }
        },
        "required": ["kind", "title", "rationale", "target", "change"],
        "additionalProperties": false
    })
}

fn object<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a Map<String, Value>, ToolError> {
    v.and_then(Value::as_object)
        .ok_or_else(|| ToolError(format!("{what} must be an object")))
}

fn string(m: &Map<String, Value>, key: &str) -> Result<String, ToolError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ToolError(format!("{key} must be a string"))),
    }
}

/// The content as the model wrote it, with a service name resolved to its repository.
fn content(
    a: &Args<'_>,
    repositories: &[warden_proto::common::v1::ServiceRepository],
) -> Result<st::ProposalContent, ToolError> {
    let kind = match a.required("kind")? {
        "config_change" => st::ProposalKind::ConfigChange,
        "code_fix" => st::ProposalKind::CodeFix,
        "runbook_action" => st::ProposalKind::RunbookAction,
        _ => return Err("kind must be config_change, code_fix or runbook_action".into()),
    };
    let target = object(a.0.get("target"), "target")?;
    let target = match (target.get("repository"), target.get("kubernetes")) {
        (Some(r), None) => {
            let r = object(Some(r), "target.repository")?;
            let named = string(r, "repository")?;
            let repository = repositories
                .iter()
                .find(|m| m.service == named)
                .map_or(named, |m| m.repository.clone());
            let paths = match r.get("paths") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("target.repository.paths must be strings")?,
                _ => return Err("target.repository.paths must be a list of files".into()),
            };
            Target::Repository(st::RepositoryTarget {
                repository,
                branch: string(r, "branch")?,
                head_sha: string(r, "head_sha")?,
                paths,
            })
        }
        (None, Some(k)) => {
            let k = object(Some(k), "target.kubernetes")?;
            Target::Kubernetes(st::KubernetesTarget {
                cluster: string(k, "cluster")?,
                namespace: string(k, "namespace")?,
                kind: string(k, "kind")?,
                name: string(k, "name")?,
                resource_version: string(k, "resource_version")?,
            })
        }
        _ => return Err("target needs exactly one of repository or kubernetes".into()),
    };
    let change = object(a.0.get("change"), "change")?;
    let format = match string(change, "format")?.as_str() {
        "unified_diff" => st::ChangeFormat::UnifiedDiff,
        "json_patch" => st::ChangeFormat::JsonPatch,
        "strategic_merge_patch" => st::ChangeFormat::StrategicMergePatch,
        _ => {
            return Err(
                "change.format must be unified_diff, json_patch or strategic_merge_patch".into(),
            );
        }
    };
    Ok(st::ProposalContent {
        kind: kind as i32,
        title: a.required("title")?.to_owned(),
        rationale: a.required("rationale")?.to_owned(),
        target: Some(st::ProposalTarget {
            target: Some(target),
        }),
        change: Some(st::ProposalChange {
            format: format as i32,
            content: string(change, "content")?,
        }),
        ..Default::default()
    })
}

pub(crate) async fn run(
    agent: &Agent,
    tenant_id: &str,
    run_id: &str,
    a: &Args<'_>,
) -> Result<Found, ToolError> {
    let settings = agent.tenant_settings(tenant_id).await?;
    let repositories = settings
        .github
        .as_ref()
        .map(|g| g.repositories.clone())
        .unwrap_or_default();
    let content = content(a, &repositories)?;
    let p = agent
        .proposal_store()
        .create_proposal(st::CreateProposalRequest {
            tenant_id: tenant_id.to_owned(),
            run_id: run_id.to_owned(),
            content: Some(content),
        })
        .await
        .map_err(|s| {
            ToolError(format!(
                "the proposal could not be recorded: {}",
                s.message()
            ))
        })?
        .into_inner();
    Ok(Found {
        text: format!(
            "proposal {} recorded ({}); it awaits a human reviewer and will not be applied automatically",
            p.id, p.digest
        ),
        rows: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_becomes_its_repository_and_evidence_is_not_the_models() {
        let args = json!({
            "kind": "code_fix", "title": "t", "rationale": "r",
            "target": {"repository": {"repository": "checkout", "branch": "main", "head_sha": "a", "paths": ["x"]}},
            "change": {"format": "unified_diff", "content": "d"},
            "evidence": {"audit_record_ids": ["forged"]}
        });
        let map = args.as_object().unwrap();
        let repos = vec![warden_proto::common::v1::ServiceRepository {
            service: "checkout".into(),
            repository: "acme/api".into(),
            default_ref: String::new(),
        }];
        let Ok(c) = content(&Args(map), &repos) else {
            panic!("valid arguments")
        };
        assert!(c.evidence.is_none());
        let Some(Target::Repository(r)) = c.target.and_then(|t| t.target) else {
            panic!("a repository target")
        };
        assert_eq!(r.repository, "acme/api");
    }

    #[test]
    fn a_target_must_be_one_thing() {
        let args = json!({"kind": "config_change", "title": "t", "rationale": "r",
            "target": {}, "change": {"format": "json_patch", "content": "[]"}});
        let e = content(&Args(args.as_object().unwrap()), &[])
            .err()
            .unwrap();
        assert!(e.0.contains("exactly one"), "{}", e.0);
    }
}
