//! Unified diffs as proposals carry them: `git diff` output or plain `diff -u` with
//! `---`/`+++` headers, one or more files, parsed by `diffy` into one patch per file.
//! Paths are repository paths: git's `a/` and `b/` prefixes are removed. Renames, copies
//! and binary patches are refused, so what a reviewer reads is every byte that changes.

use std::collections::BTreeMap;

use diffy::patch_set::{FileOperation, ParseOptions, PatchKind, PatchSet};

/// What a diff does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Modify,
    Create,
    Delete,
}

/// One file a diff touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub op: Op,
}

/// Why a diff cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("the change is not a unified diff: {0}")]
    Malformed(String),
    #[error("the diff changes no file")]
    Empty,
    #[error("the diff {0} {1:?}; only modifications, new files and deletions can be proposed")]
    Unsupported(&'static str, String),
    #[error("the diff touches {0:?} twice")]
    Twice(String),
    #[error("the diff names an unsafe path {0:?}")]
    UnsafePath(String),
    #[error("the diff does not apply to {path:?} as it is now: {why}")]
    DoesNotApply { path: String, why: String },
}

fn options(diff: &str) -> ParseOptions {
    if diff.lines().any(|l| l.starts_with("diff --git ")) {
        ParseOptions::gitdiff()
    } else {
        ParseOptions::unidiff()
    }
}

/// A repository path from a diff header: `a/` or `b/` removed, relative, no `..`.
fn repo_path(raw: &str, prefix: &str) -> Result<String, DiffError> {
    let p = raw.strip_prefix(prefix).unwrap_or(raw);
    let unsafe_path = p.is_empty()
        || p.starts_with('/')
        || p.contains('\\')
        || p.contains('\0')
        || p.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if unsafe_path {
        return Err(DiffError::UnsafePath(raw.to_owned()));
    }
    Ok(p.to_owned())
}

type Parsed<'a> = Vec<(FileChange, diffy::Patch<'a, str>)>;

fn parse_all(diff: &str) -> Result<Parsed<'_>, DiffError> {
    let mut out: Parsed<'_> = Vec::new();
    for fp in PatchSet::parse(diff, options(diff)) {
        let fp = fp.map_err(|e| DiffError::Malformed(e.to_string()))?;
        let (path, op) = match fp.operation() {
            FileOperation::Modify { original, modified } => {
                let from = repo_path(original, "a/")?;
                let to = repo_path(modified, "b/")?;
                if from != to {
                    return Err(DiffError::Unsupported("renames", from));
                }
                (to, Op::Modify)
            }
            FileOperation::Create(p) => (repo_path(p, "b/")?, Op::Create),
            FileOperation::Delete(p) => (repo_path(p, "a/")?, Op::Delete),
            FileOperation::Rename { from, .. } => {
                return Err(DiffError::Unsupported("renames", from.to_string()));
            }
            FileOperation::Copy { from, .. } => {
                return Err(DiffError::Unsupported("copies", from.to_string()));
            }
        };
        let patch = match fp.into_patch() {
            PatchKind::Text(p) => p,
            PatchKind::Binary(_) => return Err(DiffError::Unsupported("patches binary", path)),
        };
        if patch.hunks().is_empty() && op == Op::Modify {
            return Err(DiffError::Unsupported("only changes the mode of", path));
        }
        if out.iter().any(|(f, _)| f.path == path) {
            return Err(DiffError::Twice(path));
        }
        out.push((FileChange { path, op }, patch));
    }
    if out.is_empty() {
        return Err(DiffError::Empty);
    }
    Ok(out)
}

/// The files a diff touches, in its order.
pub fn files(diff: &str) -> Result<Vec<FileChange>, DiffError> {
    Ok(parse_all(diff)?.into_iter().map(|(f, _)| f).collect())
}

/// Applies the diff to the files as they are (`bases`: path to content, for every file
/// modified or deleted). Returns each touched file's new content, `None` for a deletion.
/// Hunks must match exactly where they say (no fuzz).
pub fn apply(
    diff: &str,
    bases: &BTreeMap<String, String>,
) -> Result<Vec<(String, Option<String>)>, DiffError> {
    let mut out = Vec::new();
    for (file, patch) in parse_all(diff)? {
        let base = match file.op {
            Op::Create => "",
            Op::Modify | Op::Delete => {
                bases.get(&file.path).map(String::as_str).ok_or_else(|| {
                    DiffError::DoesNotApply {
                        path: file.path.clone(),
                        why: "the file does not exist".into(),
                    }
                })?
            }
        };
        let new = diffy::apply(base, &patch).map_err(|e| DiffError::DoesNotApply {
            path: file.path.clone(),
            why: e.to_string(),
        })?;
        match file.op {
            Op::Delete if !new.is_empty() => {
                return Err(DiffError::DoesNotApply {
                    path: file.path,
                    why: "the deletion does not remove the whole file".into(),
                });
            }
            Op::Delete => out.push((file.path, None)),
            _ => out.push((file.path, Some(new))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "diff --git a/config/app.yaml b/config/app.yaml
index 1111111..2222222 100644
--- a/config/app.yaml
+++ b/config/app.yaml
@@ -1,3 +1,3 @@
 name: checkout
-payment_timeout_s: 3
+payment_timeout_s: 30
 retries: 2
";

    #[test]
    fn a_git_diff_names_its_files_without_prefixes_and_applies_exactly() {
        assert_eq!(
            files(GIT).unwrap(),
            vec![FileChange {
                path: "config/app.yaml".into(),
                op: Op::Modify
            }]
        );
        let bases = BTreeMap::from([(
            "config/app.yaml".to_owned(),
            "name: checkout\npayment_timeout_s: 3\nretries: 2\n".to_owned(),
        )]);
        assert_eq!(
            apply(GIT, &bases).unwrap(),
            vec![(
                "config/app.yaml".to_owned(),
                Some("name: checkout\npayment_timeout_s: 30\nretries: 2\n".to_owned())
            )]
        );
    }

    #[test]
    fn a_diff_that_does_not_match_the_file_does_not_apply() {
        let bases = BTreeMap::from([(
            "config/app.yaml".to_owned(),
            "name: checkout\npayment_timeout_s: 5\nretries: 2\n".to_owned(),
        )]);
        assert!(matches!(
            apply(GIT, &bases),
            Err(DiffError::DoesNotApply { .. })
        ));
        assert!(matches!(
            apply(GIT, &BTreeMap::new()),
            Err(DiffError::DoesNotApply { .. })
        ));
    }

    #[test]
    fn plain_unified_diffs_new_files_and_several_files_parse() {
        let d = "--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+fn main() {}\n";
        let f = files(d).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].path, "src/new.rs");
        assert_eq!(f[1].op, Op::Create);
    }

    #[test]
    fn malformed_empty_unsafe_and_renamed_diffs_are_refused_with_the_reason() {
        assert!(matches!(
            files("this is not a diff"),
            Err(DiffError::Empty | DiffError::Malformed(_))
        ));
        assert!(matches!(
            files("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n"),
            Err(DiffError::Malformed(_))
        ));
        assert!(matches!(
            files("--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n"),
            Err(DiffError::UnsafePath(_))
        ));
        assert!(matches!(
            files("--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n"),
            Err(DiffError::Unsupported(..))
        ));
    }
}
