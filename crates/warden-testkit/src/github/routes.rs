//! The GitHub REST endpoints the mock answers, in GitHub's JSON shapes.

use std::time::SystemTime;

use base64::Engine;
use serde_json::{Value, json};

use super::{Auth, MockCommit, Repo, State, app, error_reply, json_reply};
use crate::{Recorded, Reply};

const API: &str = "https://api.github.com";

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn not_found() -> Reply {
    error_reply(404, "Not Found", Vec::new())
}

/// Answers an authenticated-or-not request: refusals first, as GitHub orders them.
pub(super) fn answer(
    s: &mut State,
    req: &Recorded,
    path: &str,
    query: &[(String, String)],
    auth: &Auth,
    now: SystemTime,
) -> Reply {
    match auth {
        Auth::None => return error_reply(401, "Requires authentication", Vec::new()),
        Auth::Refused => return error_reply(401, "Bad credentials", Vec::new()),
        _ => {}
    }
    if req.header("user-agent").is_none_or(str::is_empty) {
        return error_reply(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
            Vec::new(),
        );
    }
    if let Some(v) = req.header("x-github-api-version")
        && v != "2022-11-28"
    {
        return error_reply(
            400,
            &format!("API version {v} is not supported."),
            Vec::new(),
        );
    }
    if let Some(reset) = s.rate_limit_reset {
        return error_reply(
            403,
            "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.",
            vec![
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-used".into(), "5000".into()),
                ("x-ratelimit-reset".into(), reset.to_string()),
                ("x-ratelimit-resource".into(), "core".into()),
            ],
        );
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let Auth::AppJwt(app_id) = auth else {
                return error_reply(401, "A JSON web token could not be decoded", Vec::new());
            };
            let Some(installation) = id.parse().ok() else {
                return not_found();
            };
            match app::mint(s, *app_id, installation, now) {
                Some((token, expires)) => json_reply(
                    201,
                    &json!({
                        "token": token,
                        "expires_at": rfc3339(expires),
                        "permissions": {"contents": "read", "metadata": "read"},
                        "repository_selection": "selected",
                    }),
                    Vec::new(),
                ),
                None => not_found(),
            }
        }
        (_, ["app", ..]) => not_found(),
        (_, ["repos", _, _, "git", ..] | ["repos", _, _, "pulls", ..]) => {
            super::writes::answer(s, req, &segs, auth)
        }
        ("GET", ["search", "code"]) => search(s, req, param("q"), param("per_page")),
        ("GET", ["repos", o, r, rest @ ..]) => {
            let key = format!("{}/{}", decode(o), decode(r)).to_ascii_lowercase();
            let Some(repo) = s.repos.get(&key) else {
                return not_found();
            };
            match rest {
                ["contents", path @ ..] => contents(repo, path, param("ref")),
                ["commits", git_ref] => {
                    let git_ref = decode(git_ref);
                    match resolve(repo, &git_ref) {
                        Some(c) => json_reply(200, &commit_json(repo, c, true), Vec::new()),
                        None => error_reply(
                            422,
                            &format!("No commit found for SHA: {git_ref}"),
                            Vec::new(),
                        ),
                    }
                }
                ["compare", basehead] => compare(repo, basehead),
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn rfc3339(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(epoch).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn blob_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..20])
}

fn contents(repo: &Repo, raw_path: &[&str], git_ref: Option<&str>) -> Reply {
    let git_ref = git_ref.unwrap_or(&repo.default_branch).to_owned();
    let path = raw_path
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| decode(s))
        .collect::<Vec<_>>()
        .join("/");
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    let url = format!(
        "{API}/repos/{}/contents/{path}?ref={git_ref}",
        repo.full_name
    );
    if let Some(bytes) = repo.files.get(&(git_ref.clone(), path.clone())) {
        let (encoding, content) = if bytes.len() > super::CONTENTS_INLINE_LIMIT {
            ("none", String::new())
        } else {
            // GitHub wraps the base64 at 60 characters.
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(60)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            ("base64", lines.join("\n") + "\n")
        };
        return json_reply(
            200,
            &json!({
                "type": "file", "encoding": encoding, "size": bytes.len(), "name": name,
                "path": path, "content": content, "sha": blob_sha(bytes), "url": url,
                "html_url": format!("https://github.com/{}/blob/{git_ref}/{path}", repo.full_name),
            }),
            Vec::new(),
        );
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut entries: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for ((r, p), bytes) in &repo.files {
        let Some(rest) = p.strip_prefix(&prefix).filter(|_| r == &git_ref) else {
            continue;
        };
        let (child, kind, size) = match rest.split_once('/') {
            Some((dir, _)) => (dir, "dir", 0),
            None => (rest, "file", bytes.len()),
        };
        if seen.insert(child.to_owned()) {
            entries.push(json!({
                "type": kind, "name": child, "path": format!("{prefix}{child}"), "size": size,
                "sha": blob_sha(child.as_bytes()),
            }));
        }
    }
    if entries.is_empty() {
        return not_found();
    }
    json_reply(200, &Value::Array(entries), Vec::new())
}

/// Splits a search query as GitHub does: whitespace-separated, double quotes grouping.
fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn search(s: &State, req: &Recorded, q: Option<&str>, per_page: Option<&str>) -> Reply {
    let per_page = per_page
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let mut scopes: Vec<(String, String)> = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    for t in tokens(q.unwrap_or_default()) {
        match t.split_once(':') {
            Some((k, v)) if ["repo", "org", "user"].contains(&k.to_ascii_lowercase().as_str()) => {
                scopes.push((
                    k.to_ascii_lowercase(),
                    v.trim_matches('"').to_ascii_lowercase(),
                ))
            }
            _ => terms.push(t.trim_matches('"').to_ascii_lowercase()),
        }
    }
    if terms.is_empty() {
        return error_reply(422, "Validation Failed", Vec::new());
    }
    let in_scope = |repo: &Repo| {
        let full = repo.full_name.to_ascii_lowercase();
        let owner = full.split('/').next().unwrap_or_default().to_owned();
        scopes.is_empty()
            || scopes.iter().any(|(k, v)| match k.as_str() {
                "repo" => *v == full,
                _ => *v == owner,
            })
    };
    let text_match = req
        .header("accept")
        .is_some_and(|a| a.contains("text-match"));
    let mut items = Vec::new();
    for repo in s.repos.values().filter(|r| in_scope(r)) {
        for ((r, path), bytes) in &repo.files {
            if *r != repo.default_branch {
                continue;
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            let lower = text.to_ascii_lowercase();
            if !terms.iter().all(|t| lower.contains(t.as_str())) {
                continue;
            }
            let mut item = json!({
                "name": path.rsplit('/').next().unwrap_or_default(), "path": path,
                "sha": blob_sha(bytes), "score": 1.0,
                "url": format!("{API}/repositories/1/contents/{path}"),
                "html_url": format!("https://github.com/{}/blob/main/{path}", repo.full_name),
                "repository": {"id": 1, "name": repo.full_name.split('/').nth(1), "full_name": repo.full_name},
            });
            if text_match {
                item["text_matches"] = text_matches(text, &lower, &terms);
            }
            items.push(item);
        }
    }
    let total = items.len();
    items.truncate(per_page);
    json_reply(
        200,
        &json!({"total_count": total, "incomplete_results": false, "items": items}),
        Vec::new(),
    )
}

/// One fragment per line holding the first term, with the matches' offsets in it.
fn text_matches(text: &str, lower: &str, terms: &[String]) -> Value {
    let first = terms.first().map(String::as_str).unwrap_or_default();
    let mut out = Vec::new();
    for (line, lower_line) in text.split_inclusive('\n').zip(lower.split_inclusive('\n')) {
        if let Some(i) = lower_line.find(first) {
            out.push(json!({
                "object_url": "", "object_type": "FileContent", "property": "content",
                "fragment": line,
                "matches": [{"text": &line[i..i + first.len()], "indices": [i, i + first.len()]}],
            }));
        }
    }
    Value::Array(out)
}

fn resolve<'a>(repo: &'a Repo, git_ref: &str) -> Option<&'a MockCommit> {
    let sha = repo.refs.get(git_ref).map_or(git_ref, String::as_str);
    let mut found = repo
        .commits
        .iter()
        .filter(|c| sha.len() >= 4 && c.sha.starts_with(sha));
    let one = found.next()?;
    found.next().is_none().then_some(one)
}

fn file_json(repo: &Repo, c: &super::MockChange) -> Value {
    let mut v = json!({
        "sha": blob_sha(c.filename.as_bytes()), "filename": c.filename, "status": c.status,
        "additions": c.additions, "deletions": c.deletions, "changes": c.additions + c.deletions,
        "blob_url": format!("https://github.com/{}/blob/x/{}", repo.full_name, c.filename),
    });
    if let Some(p) = &c.patch {
        v["patch"] = json!(p);
    }
    v
}

fn commit_json(repo: &Repo, c: &MockCommit, with_files: bool) -> Value {
    let person = json!({"name": c.author_name, "email": format!("{}@users.noreply.github.com", c.author_login), "date": c.date});
    let mut v = json!({
        "sha": c.sha, "node_id": "C_mock",
        "commit": {"author": person, "committer": person, "message": c.message,
                   "tree": {"sha": blob_sha(c.sha.as_bytes())}, "comment_count": 0},
        "url": format!("{API}/repos/{}/commits/{}", repo.full_name, c.sha),
        "html_url": format!("https://github.com/{}/commit/{}", repo.full_name, c.sha),
        "author": {"login": c.author_login, "id": 1, "type": "User"},
        "committer": {"login": c.author_login, "id": 1, "type": "User"},
        "parents": c.parent.iter().map(|p| json!({"sha": p})).collect::<Vec<_>>(),
    });
    if with_files {
        let (add, del) = c
            .files
            .iter()
            .fold((0, 0), |(a, d), f| (a + f.additions, d + f.deletions));
        v["stats"] = json!({"total": add + del, "additions": add, "deletions": del});
        v["files"] = c.files.iter().map(|f| file_json(repo, f)).collect();
    }
    v
}

/// The commits reachable from `from` back to (not including) `to`, newest first, or `None`
/// if `to` is not an ancestor.
fn walk<'a>(repo: &'a Repo, from: &'a MockCommit, to: &MockCommit) -> Option<Vec<&'a MockCommit>> {
    let mut out = Vec::new();
    let mut cur = from;
    while cur.sha != to.sha {
        out.push(cur);
        let parent = cur.parent.as_deref()?;
        cur = repo.commits.iter().find(|c| c.sha == parent)?;
    }
    Some(out)
}

fn compare(repo: &Repo, basehead: &str) -> Reply {
    let Some((base, head)) = basehead.split_once("...") else {
        return not_found();
    };
    let (Some(base), Some(head)) = (resolve(repo, &decode(base)), resolve(repo, &decode(head)))
    else {
        return not_found();
    };
    let (status, mut ahead, behind) = match (walk(repo, head, base), walk(repo, base, head)) {
        (Some(a), _) if a.is_empty() => ("identical", a, 0),
        (Some(a), _) => ("ahead", a, 0),
        (None, Some(b)) => ("behind", Vec::new(), b.len()),
        (None, None) => ("diverged", Vec::new(), 0),
    };
    ahead.reverse();
    // One entry per file across the range, as GitHub's three-dot diff shows it.
    let mut files: Vec<super::MockChange> = Vec::new();
    for c in &ahead {
        for f in &c.files {
            match files.iter_mut().find(|x| x.filename == f.filename) {
                Some(x) => {
                    x.additions += f.additions;
                    x.deletions += f.deletions;
                    x.patch = match (x.patch.take(), &f.patch) {
                        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
                        _ => None,
                    };
                }
                None => files.push(f.clone()),
            }
        }
    }
    json_reply(
        200,
        &json!({
            "url": format!("{API}/repos/{}/compare/{basehead}", repo.full_name),
            "html_url": format!("https://github.com/{}/compare/{basehead}", repo.full_name),
            "base_commit": commit_json(repo, base, false),
            "merge_base_commit": commit_json(repo, base, false),
            "status": status, "ahead_by": ahead.len(), "behind_by": behind,
            "total_commits": ahead.len(),
            "commits": ahead.iter().map(|c| commit_json(repo, c, false)).collect::<Vec<_>>(),
            "files": files.iter().map(|f| file_json(repo, f)).collect::<Vec<_>>(),
        }),
        Vec::new(),
    )
}
