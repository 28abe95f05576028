//! Is a proposal's content well formed? Each refusal is one sentence naming the field,
//! for the model (which can correct itself) and for a reviewer's tooling.

use serde_json::Value;
use warden_proto::storage::v1::{
    ChangeFormat, KubernetesTarget, ProposalContent, ProposalKind, RepositoryTarget,
    proposal_target::Target,
};

use crate::diff;

/// Why content is not a valid proposal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(why.into()))
}

const MAX_TITLE: usize = 200;
const MAX_RATIONALE: usize = 64 * 1024;
const MAX_CHANGE: usize = 512 * 1024;
const MAX_PATHS: usize = 100;

fn bounded(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.trim().is_empty() {
        return invalid(format!("{field} is required"));
    }
    if s.len() > max {
        return invalid(format!("{field} is longer than {max} bytes"));
    }
    Ok(())
}

/// Checks everything the model wrote; evidence, tenant and run are not its to write.
pub fn validate(c: &ProposalContent) -> Result<(), Invalid> {
    let kind = ProposalKind::try_from(c.kind).unwrap_or(ProposalKind::Unspecified);
    if kind == ProposalKind::Unspecified {
        return invalid("kind must be CONFIG_CHANGE, CODE_FIX or RUNBOOK_ACTION");
    }
    bounded("title", &c.title, MAX_TITLE)?;
    bounded("rationale", &c.rationale, MAX_RATIONALE)?;
    let change = c.change.clone().unwrap_or_default();
    bounded("change.content", &change.content, MAX_CHANGE)?;
    let format = ChangeFormat::try_from(change.format).unwrap_or(ChangeFormat::Unspecified);
    match c.target.as_ref().and_then(|t| t.target.as_ref()) {
        None => invalid("target is required: a Kubernetes object or a repository's files"),
        Some(Target::Repository(r)) => {
            repository(r)?;
            if format != ChangeFormat::UnifiedDiff {
                return invalid("a change to a repository must be a unified diff");
            }
            diff_within(&change.content, &r.paths)
        }
        Some(Target::Kubernetes(k)) => {
            if kind == ProposalKind::CodeFix {
                return invalid("a code fix targets a repository, not a Kubernetes object");
            }
            kubernetes(k)?;
            match format {
                ChangeFormat::JsonPatch => json_patch(&change.content),
                ChangeFormat::StrategicMergePatch => merge_patch(&change.content),
                _ => invalid(
                    "a change to a Kubernetes object must be a JSON patch or a strategic-merge patch",
                ),
            }
        }
    }
}

fn name_like(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    bounded(field, s, max)?;
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        || s.contains("..")
    {
        return invalid(format!("{field} {s:?} is not a valid name"));
    }
    Ok(())
}

fn repository(r: &RepositoryTarget) -> Result<(), Invalid> {
    let mut parts = r.repository.split('/');
    let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty());
    if !ok {
        return invalid(format!(
            "target.repository {:?} must be owner/name",
            r.repository
        ));
    }
    name_like("target.repository", &r.repository, 200)?;
    name_like("target.branch", &r.branch, 255)?;
    if r.head_sha.len() != 40 || !r.head_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return invalid("target.head_sha must be the 40-hex commit the change was made against");
    }
    if r.paths.is_empty() || r.paths.len() > MAX_PATHS {
        return invalid(format!("target.paths must name 1 to {MAX_PATHS} files"));
    }
    for p in &r.paths {
        if p.is_empty()
            || p.starts_with('/')
            || p.split('/').any(|s| s == ".." || s == ".")
            || p.len() > 1024
        {
            return invalid(format!(
                "target.paths holds {p:?}, which is not a relative repository path"
            ));
        }
    }
    Ok(())
}

/// Every file the diff touches is one of `paths` (or under one ending in `/`).
fn diff_within(content: &str, paths: &[String]) -> Result<(), Invalid> {
    let files = diff::files(content).map_err(|e| Invalid(e.to_string()))?;
    for f in files {
        let inside = paths
            .iter()
            .any(|p| *p == f.path || (p.ends_with('/') && f.path.starts_with(p.as_str())));
        if !inside {
            return invalid(format!(
                "the diff touches {:?}, which is not among the target's paths",
                f.path
            ));
        }
    }
    Ok(())
}

fn kubernetes(k: &KubernetesTarget) -> Result<(), Invalid> {
    name_like("target.kind", &k.kind, 128)?;
    name_like("target.name", &k.name, 253)?;
    if !k.namespace.is_empty() {
        name_like("target.namespace", &k.namespace, 63)?;
    }
    if !k.cluster.is_empty() {
        name_like("target.cluster", &k.cluster, 253)?;
    }
    bounded(
        "target.resource_version (the object's resourceVersion the change was made against)",
        &k.resource_version,
        64,
    )
}

fn json_patch(content: &str) -> Result<(), Invalid> {
    let v: Value = serde_json::from_str(content)
        .map_err(|e| Invalid(format!("the JSON patch is not JSON: {e}")))?;
    let Value::Array(ops) = v else {
        return invalid("a JSON patch is an array of operations (RFC 6902)");
    };
    if ops.is_empty() {
        return invalid("the JSON patch has no operation");
    }
    for (i, op) in ops.iter().enumerate() {
        let field = |k: &str| op.get(k).and_then(Value::as_str);
        let pointer = |k: &str| match field(k) {
            Some(p) if p.is_empty() || p.starts_with('/') => Ok(()),
            _ => invalid(format!(
                "operation {i} needs a JSON pointer \"{k}\" (RFC 6901)"
            )),
        };
        pointer("path")?;
        match field("op") {
            Some("add" | "replace" | "test") if op.get("value").is_some() => {}
            Some("add" | "replace" | "test") => {
                return invalid(format!("operation {i} needs a \"value\""));
            }
            Some("remove") => {}
            Some("move" | "copy") => pointer("from")?,
            _ => {
                return invalid(format!(
                    "operation {i}: \"op\" must be add, remove, replace, move, copy or test"
                ));
            }
        }
    }
    Ok(())
}

fn merge_patch(content: &str) -> Result<(), Invalid> {
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(m)) if !m.is_empty() => Ok(()),
        Ok(_) => invalid("a strategic-merge patch is a non-empty JSON object"),
        Err(e) => invalid(format!("the strategic-merge patch is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_proto::storage::v1::{ProposalChange, ProposalTarget};

    fn code_fix(diff: &str, paths: &[&str]) -> ProposalContent {
        ProposalContent {
            kind: ProposalKind::CodeFix as i32,
            title: "t".into(),
            rationale: "r".into(),
            target: Some(ProposalTarget {
                target: Some(Target::Repository(RepositoryTarget {
                    repository: "acme/api".into(),
                    branch: "main".into(),
                    head_sha: "a".repeat(40),
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                })),
            }),
            change: Some(ProposalChange {
                format: ChangeFormat::UnifiedDiff as i32,
                content: diff.into(),
            }),
            ..Default::default()
        }
    }

    fn k8s(format: ChangeFormat, content: &str) -> ProposalContent {
        ProposalContent {
            kind: ProposalKind::ConfigChange as i32,
            title: "t".into(),
            rationale: "r".into(),
            target: Some(ProposalTarget {
                target: Some(Target::Kubernetes(KubernetesTarget {
                    cluster: "prod".into(),
                    namespace: "shop".into(),
                    kind: "ConfigMap".into(),
                    name: "checkout".into(),
                    resource_version: "4711".into(),
                })),
            }),
            change: Some(ProposalChange {
                format: format as i32,
                content: content.into(),
            }),
            ..Default::default()
        }
    }

    const DIFF: &str = "--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-a\n+b\n";

    #[test]
    fn a_diff_within_the_target_paths_is_valid() {
        validate(&code_fix(DIFF, &["src/a.rs"])).unwrap();
        validate(&code_fix(DIFF, &["src/"])).unwrap();
    }

    #[test]
    fn a_diff_outside_the_target_or_malformed_is_refused_naming_why() {
        let e = validate(&code_fix(DIFF, &["src/b.rs"])).unwrap_err();
        assert!(
            e.0.contains("\"src/a.rs\"") && e.0.contains("not among"),
            "{e}"
        );
        let e = validate(&code_fix("nonsense", &["src/a.rs"])).unwrap_err();
        assert!(e.0.contains("diff"), "{e}");
        let mut c = code_fix(DIFF, &["src/a.rs"]);
        if let Some(Target::Repository(r)) = c.target.as_mut().and_then(|t| t.target.as_mut()) {
            r.head_sha = "main".into();
        }
        assert!(validate(&c).unwrap_err().0.contains("head_sha"));
    }

    #[test]
    fn kubernetes_changes_are_json_patches_or_merge_patches() {
        validate(&k8s(
            ChangeFormat::JsonPatch,
            r#"[{"op":"replace","path":"/data/timeout","value":"30s"}]"#,
        ))
        .unwrap();
        validate(&k8s(
            ChangeFormat::StrategicMergePatch,
            r#"{"data":{"timeout":"30s"}}"#,
        ))
        .unwrap();
        for (format, content, needle) in [
            (ChangeFormat::JsonPatch, "{", "not JSON"),
            (ChangeFormat::JsonPatch, r#"{"op":"add"}"#, "array"),
            (
                ChangeFormat::JsonPatch,
                r#"[{"op":"add","path":"/x"}]"#,
                "value",
            ),
            (
                ChangeFormat::JsonPatch,
                r#"[{"op":"jump","path":"/x"}]"#,
                "op",
            ),
            (ChangeFormat::StrategicMergePatch, "[]", "object"),
            (ChangeFormat::UnifiedDiff, DIFF, "JSON patch"),
        ] {
            let e = validate(&k8s(format, content)).unwrap_err();
            assert!(e.0.contains(needle), "{content}: {e}");
        }
        let mut c = k8s(ChangeFormat::JsonPatch, "[]");
        c.kind = ProposalKind::CodeFix as i32;
        assert!(validate(&c).unwrap_err().0.contains("code fix"));
    }
}
