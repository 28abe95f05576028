//! The content digest: SHA-256 over the content's canonical JSON.
//!
//! The canonical form is RFC 8785 (JCS) JSON of a fixed shape: every field present (empty
//! strings and lists included), enums by their proto names, keys sorted, no whitespace,
//! integers only. All keys are ASCII and all numbers are small integers, so serde_json's
//! compact output of objects built with sorted keys is the JCS form (its string escaping,
//! `\n` and `\u001f` style, is the one JCS prescribes). A field added to the content later
//! must be added here with a new `v`, so old digests stay what they were.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use warden_proto::common::v1::DataType;
use warden_proto::storage::v1::{
    ChangeFormat, ProposalContent, ProposalKind, proposal_target::Target,
};

fn sorted(pairs: Vec<(&str, Value)>) -> Value {
    let mut pairs = pairs;
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(E) -> &'static str) -> Value {
    match E::try_from(v) {
        Ok(e) => Value::String(name(e).to_owned()),
        Err(_) => json!(v),
    }
}

fn target(c: &ProposalContent) -> Value {
    match c.target.as_ref().and_then(|t| t.target.as_ref()) {
        Some(Target::Kubernetes(k)) => sorted(vec![(
            "kubernetes",
            sorted(vec![
                ("cluster", json!(k.cluster)),
                ("namespace", json!(k.namespace)),
                ("kind", json!(k.kind)),
                ("name", json!(k.name)),
                ("resource_version", json!(k.resource_version)),
            ]),
        )]),
        Some(Target::Repository(r)) => sorted(vec![(
            "repository",
            sorted(vec![
                ("repository", json!(r.repository)),
                ("branch", json!(r.branch)),
                ("head_sha", json!(r.head_sha)),
                ("paths", json!(r.paths)),
            ]),
        )]),
        None => Value::Null,
    }
}

/// The canonical JSON bytes of a proposal's content.
pub fn canonical_json(c: &ProposalContent) -> Vec<u8> {
    let change = c.change.clone().unwrap_or_default();
    let evidence = c.evidence.clone().unwrap_or_default();
    let tool_calls: Vec<Value> = evidence
        .tool_calls
        .iter()
        .map(|t| {
            sorted(vec![
                ("step", json!(t.step)),
                ("index", json!(t.index)),
                ("tool", json!(t.tool)),
                (
                    "data_type",
                    enum_name(t.data_type, |d: DataType| d.as_str_name()),
                ),
                ("allowed", json!(t.allowed)),
            ])
        })
        .collect();
    let v = sorted(vec![
        ("v", json!(1)),
        ("tenant_id", json!(c.tenant_id)),
        ("run_id", json!(c.run_id)),
        ("kind", enum_name(c.kind, |k: ProposalKind| k.as_str_name())),
        ("title", json!(c.title)),
        ("target", target(c)),
        (
            "change",
            sorted(vec![
                (
                    "format",
                    enum_name(change.format, |f: ChangeFormat| f.as_str_name()),
                ),
                ("content", json!(change.content)),
            ]),
        ),
        ("rationale", json!(c.rationale)),
        (
            "evidence",
            sorted(vec![
                ("finding_ids", json!(evidence.finding_ids)),
                ("tool_calls", Value::Array(tool_calls)),
                ("audit_record_ids", json!(evidence.audit_record_ids)),
            ]),
        ),
    ]);
    v.to_string().into_bytes()
}

/// `sha256:` and the hex SHA-256 of [`canonical_json`].
pub fn digest(c: &ProposalContent) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(canonical_json(c))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_proto::storage::v1::{
        ProposalChange, ProposalEvidence, ProposalTarget, RepositoryTarget, ToolCallRef,
    };

    fn content() -> ProposalContent {
        ProposalContent {
            tenant_id: "acme".into(),
            run_id: "r1".into(),
            kind: ProposalKind::CodeFix as i32,
            title: "raise the timeout".into(),
            target: Some(ProposalTarget {
                target: Some(Target::Repository(RepositoryTarget {
                    repository: "acme/api".into(),
                    branch: "main".into(),
                    head_sha: "ab".repeat(20),
                    paths: vec!["src/a.rs".into()],
                })),
            }),
            change: Some(ProposalChange {
                format: ChangeFormat::UnifiedDiff as i32,
                content: "--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-a\n+b\n".into(),
            }),
            rationale: "\"quoted\"\ttab\u{1f}".into(),
            evidence: Some(ProposalEvidence {
                finding_ids: vec![],
                tool_calls: vec![ToolCallRef {
                    step: 1,
                    index: 0,
                    tool: "read_file".into(),
                    data_type: DataType::SourceCode as i32,
                    allowed: true,
                }],
                audit_record_ids: vec!["a1".into()],
            }),
        }
    }

    #[test]
    fn the_canonical_form_is_sorted_compact_jcs() {
        let text = String::from_utf8(canonical_json(&content())).unwrap();
        assert!(text.starts_with(
            r#"{"change":{"content":"--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-a\n+b\n","format":"CHANGE_FORMAT_UNIFIED_DIFF"},"evidence":{"audit_record_ids":["a1"],"finding_ids":[],"tool_calls":[{"allowed":true,"data_type":"DATA_TYPE_SOURCE_CODE","index":0,"step":1,"tool":"read_file"}]},"kind":"PROPOSAL_KIND_CODE_FIX","rationale":"\"quoted\"\ttab\u001f","run_id":"r1","#
        ), "{text}");
        assert!(
            text.ends_with(r#""title":"raise the timeout","v":1}"#),
            "{text}"
        );
    }

    #[test]
    fn every_field_changes_the_digest_and_nothing_else_does() {
        let base = digest(&content());
        assert!(base.starts_with("sha256:") && base.len() == 7 + 64);
        assert_eq!(digest(&content()), base, "deterministic");
        let edits: Vec<fn(&mut ProposalContent)> = vec![
            |c| c.tenant_id = "beta".into(),
            |c| c.run_id = "r2".into(),
            |c| c.kind = ProposalKind::ConfigChange as i32,
            |c| c.title.push('!'),
            |c| c.rationale.push(' '),
            |c| {
                if let Some(ch) = c.change.as_mut() {
                    ch.content.push('\n');
                }
            },
            |c| {
                if let Some(Target::Repository(r)) =
                    c.target.as_mut().and_then(|t| t.target.as_mut())
                {
                    r.head_sha = "cd".repeat(20);
                }
            },
            |c| {
                if let Some(e) = c.evidence.as_mut() {
                    e.audit_record_ids.push("a2".into());
                }
            },
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            let mut c = content();
            edit(&mut c);
            assert_ne!(digest(&c), base, "edit {i} must change the digest");
        }
    }
}
