//! GitHub's JSON, and the bounded values the client hands out.
//!
//! Pure conversions: every text is cut at a character boundary to its limit and says
//! so (`truncated`), every list keeps at most `max_items`, and patches share one budget,
//! so no answer grows past what [`Limits`] allows however large the commit.

use base64::Engine;
use serde::Deserialize;

use super::{
    CodeMatch, CodeSearch, Commit, CommitSummary, Comparison, Contents, DirEntry, Directory,
    EntryKind, FileChange, FileContent, Limits, SourceError,
};

/// At most this many fragments are kept per search match, each at most this long.
const MAX_FRAGMENTS: usize = 5;
const MAX_FRAGMENT_BYTES: usize = 2048;

/// Cuts `s` to at most `max` bytes at a character boundary; true if it cut.
pub(super) fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

#[derive(Deserialize)]
pub(super) struct WireFile {
    #[serde(rename = "type")]
    kind: String,
    encoding: Option<String>,
    #[serde(default)]
    size: u64,
    path: String,
    content: Option<String>,
    #[serde(default)]
    sha: String,
}

#[derive(Deserialize)]
pub(super) struct WireEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    path: String,
    #[serde(default)]
    size: u64,
}

/// A file, or a directory's listing.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum WireContents {
    File(WireFile),
    Directory(Vec<WireEntry>),
}

pub(super) fn contents(
    wire: WireContents,
    repository: &str,
    asked_path: &str,
    git_ref: Option<&str>,
    limits: &Limits,
) -> Result<Contents, SourceError> {
    let f = match wire {
        WireContents::Directory(mut entries) => {
            let truncated = entries.len() > limits.max_items;
            entries.truncate(limits.max_items);
            return Ok(Contents::Directory(Directory {
                repository: repository.to_owned(),
                path: asked_path.to_owned(),
                git_ref: git_ref.map(str::to_owned),
                entries: entries
                    .into_iter()
                    .map(|e| DirEntry {
                        kind: match e.kind.as_str() {
                            "dir" => EntryKind::Directory,
                            "symlink" => EntryKind::Symlink,
                            "submodule" => EntryKind::Submodule,
                            _ => EntryKind::File,
                        },
                        name: e.name,
                        path: e.path,
                        size: e.size,
                    })
                    .collect(),
                truncated,
            }));
        }
        WireContents::File(f) => f,
    };
    if f.kind != "file" {
        return Err(SourceError::Invalid {
            field: "path",
            problem: format!("{} is a {}, not a file", f.path, f.kind),
        });
    }
    let decode_error = || SourceError::Decode {
        what: format!("{repository}:{}", f.path),
    };
    let bytes = match (f.encoding.as_deref(), f.content.as_deref()) {
        (Some("base64"), Some(c)) => {
            let clean: String = c.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|_| decode_error())?
        }
        // GitHub sends files over 1 MiB without content (`encoding: none`).
        (Some("none"), _) | (_, None) => {
            return Err(SourceError::TooLarge {
                path: f.path,
                size: f.size,
            });
        }
        _ => return Err(decode_error()),
    };
    if bytes.contains(&0) {
        return Err(SourceError::Binary { path: f.path });
    }
    let mut text = String::from_utf8(bytes).map_err(|_| SourceError::Binary {
        path: f.path.clone(),
    })?;
    let truncated = cut(&mut text, limits.max_file_bytes);
    Ok(Contents::File(FileContent {
        repository: repository.to_owned(),
        path: f.path,
        git_ref: git_ref.map(str::to_owned),
        sha: f.sha,
        size: f.size,
        text,
        truncated,
    }))
}

#[derive(Deserialize)]
struct WireTextMatch {
    #[serde(default)]
    fragment: String,
}

#[derive(Deserialize)]
struct WireItem {
    path: String,
    #[serde(default)]
    text_matches: Vec<WireTextMatch>,
}

#[derive(Deserialize)]
pub(super) struct WireSearch {
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    incomplete_results: bool,
    #[serde(default)]
    items: Vec<WireItem>,
}

pub(super) fn search(
    wire: WireSearch,
    repository: &str,
    query: String,
    removed_qualifiers: Vec<String>,
    limit: usize,
) -> CodeSearch {
    let mut items = wire.items;
    let truncated = items.len() > limit || wire.total_count > limit as u64;
    items.truncate(limit);
    CodeSearch {
        repository: repository.to_owned(),
        query,
        removed_qualifiers,
        total_count: wire.total_count,
        incomplete: wire.incomplete_results,
        matches: items
            .into_iter()
            .map(|i| CodeMatch {
                path: i.path,
                fragments: i
                    .text_matches
                    .into_iter()
                    .take(MAX_FRAGMENTS)
                    .map(|m| {
                        let mut f = m.fragment;
                        cut(&mut f, MAX_FRAGMENT_BYTES);
                        f
                    })
                    .collect(),
            })
            .collect(),
        truncated,
    }
}

#[derive(Deserialize, Default)]
struct WirePerson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    date: String,
}

#[derive(Deserialize)]
struct WireGitCommit {
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<WirePerson>,
}

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WireSha {
    sha: String,
}

#[derive(Deserialize)]
struct WireChange {
    filename: String,
    previous_filename: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    patch: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireCommit {
    sha: String,
    commit: WireGitCommit,
    author: Option<WireUser>,
    #[serde(default)]
    parents: Vec<WireSha>,
    #[serde(default)]
    files: Vec<WireChange>,
}

/// Keeps at most `max_items` changes, each patch cut to `max_patch_bytes`, all patches
/// together to `budget` bytes (later patches are dropped, marked truncated).
fn changes(files: Vec<WireChange>, limits: &Limits) -> (Vec<FileChange>, bool) {
    let truncated = files.len() > limits.max_items;
    let mut budget = limits.max_total_patch_bytes;
    let out = files
        .into_iter()
        .take(limits.max_items)
        .map(|f| {
            let (patch, patch_truncated) = match f.patch {
                Some(mut p) => {
                    let cut_here = cut(&mut p, limits.max_patch_bytes.min(budget));
                    budget -= p.len();
                    if p.is_empty() && cut_here {
                        (None, true)
                    } else {
                        (Some(p), cut_here)
                    }
                }
                None => (None, false),
            };
            FileChange {
                filename: f.filename,
                previous_filename: f.previous_filename,
                status: f.status,
                additions: f.additions,
                deletions: f.deletions,
                patch,
                patch_truncated,
            }
        })
        .collect();
    (out, truncated)
}

fn summary(c: WireCommit, limits: &Limits) -> (CommitSummary, Vec<WireChange>) {
    let mut message = c.commit.message;
    let message_truncated = cut(&mut message, limits.max_message_bytes);
    let person = c.commit.author.unwrap_or_default();
    (
        CommitSummary {
            sha: c.sha,
            message,
            message_truncated,
            author: person.name,
            author_login: c.author.map(|u| u.login),
            date: person.date,
        },
        c.files,
    )
}

pub(super) fn commit(wire: WireCommit, limits: &Limits) -> Commit {
    let parents = wire.parents.iter().map(|p| p.sha.clone()).collect();
    let (summary, files) = summary(wire, limits);
    let (files, files_truncated) = changes(files, limits);
    Commit {
        summary,
        parents,
        files,
        files_truncated,
    }
}

#[derive(Deserialize)]
pub(super) struct WireCompare {
    #[serde(default)]
    status: String,
    #[serde(default)]
    ahead_by: u64,
    #[serde(default)]
    behind_by: u64,
    #[serde(default)]
    total_commits: u64,
    #[serde(default)]
    commits: Vec<WireCommit>,
    #[serde(default)]
    files: Vec<WireChange>,
}

pub(super) fn comparison(wire: WireCompare, base: &str, head: &str, limits: &Limits) -> Comparison {
    let commits_truncated =
        wire.commits.len() > limits.max_items || wire.total_commits > wire.commits.len() as u64;
    let commits = wire
        .commits
        .into_iter()
        .take(limits.max_items)
        .map(|c| summary(c, limits).0)
        .collect();
    let (files, files_truncated) = changes(wire.files, limits);
    Comparison {
        base: base.to_owned(),
        head: head.to_owned(),
        status: wire.status,
        ahead_by: wire.ahead_by,
        behind_by: wire.behind_by,
        total_commits: wire.total_commits,
        commits,
        commits_truncated,
        files,
        files_truncated,
    }
}

#[cfg(test)]
mod tests;
