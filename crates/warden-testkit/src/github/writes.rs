//! The Git data and pull-request endpoints a release uses, in GitHub's shapes:
//! `GET git/ref/heads/{branch}`, `GET git/commits/{sha}`, `POST git/trees` (with
//! `base_tree`, inline `content` or `sha: null` to delete), `POST git/commits`,
//! `POST git/refs` (422 when the ref exists) and `POST pulls` (422 when the head has one).
//! Writes need a write token; GitHub answers a read-only credential with 403.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Auth, Repo, State, error_reply, json_reply};
use crate::{Recorded, Reply};

/// A pull request opened on the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockPull {
    pub repository: String,
    pub number: u64,
    pub title: String,
    /// The branch with the change.
    pub head: String,
    /// The branch it is for.
    pub base: String,
    pub body: String,
    pub html_url: String,
}

#[derive(Debug, Clone, Default)]
struct Tree {
    base: Option<String>,
    /// path -> content (None: deleted)
    entries: BTreeMap<String, Option<Vec<u8>>>,
}

#[derive(Debug, Clone)]
struct Commit {
    tree: String,
    parent: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Written {
    trees: BTreeMap<String, Tree>,
    commits: BTreeMap<String, Commit>,
    pub(super) pulls: Vec<MockPull>,
}

fn sha_of(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..20])
}

/// The tree of a commit the mock was given (files registered at its sha).
fn given_tree(sha: &str) -> String {
    sha_of(&format!("tree of {sha}"))
}

fn known_commit(repo: &Repo, sha: &str) -> bool {
    repo.written.commits.contains_key(sha)
        || repo.refs.values().any(|s| s == sha)
        || repo.commits.iter().any(|c| c.sha == sha)
}

/// `path` at branch (or commit) `at`, following written commits down to given files.
pub(super) fn file_at(repo: &Repo, at: &str, path: &str) -> Option<Vec<u8>> {
    let mut sha = repo.refs.get(at).cloned().unwrap_or_else(|| at.to_owned());
    loop {
        let Some(c) = repo.written.commits.get(&sha) else {
            return repo.files.get(&(sha, path.to_owned())).cloned();
        };
        let mut tree = repo.written.trees.get(&c.tree);
        while let Some(t) = tree {
            if let Some(entry) = t.entries.get(path) {
                return entry.clone();
            }
            tree = t.base.as_ref().and_then(|b| repo.written.trees.get(b));
        }
        sha = c.parent.clone()?;
    }
}

fn forbidden() -> Reply {
    error_reply(
        403,
        "Resource not accessible by personal access token",
        Vec::new(),
    )
}

fn invalid(message: &str) -> Reply {
    error_reply(422, message, Vec::new())
}

pub(super) fn answer(s: &mut State, req: &Recorded, segs: &[&str], auth: &Auth) -> Reply {
    let decode = |x: &str| {
        percent_encoding::percent_decode_str(x)
            .decode_utf8_lossy()
            .into_owned()
    };
    let [_, o, r, rest @ ..] = segs else {
        return error_reply(404, "Not Found", Vec::new());
    };
    let key = format!("{}/{}", decode(o), decode(r)).to_ascii_lowercase();
    let Some(repo) = s.repos.get_mut(&key) else {
        return error_reply(404, "Not Found", Vec::new());
    };
    if req.method != "GET" && *auth != Auth::WriteToken {
        return forbidden();
    }
    let body = req.json();
    match (req.method.as_str(), rest) {
        ("GET", ["git", "ref", "heads", branch @ ..]) => {
            let branch = branch
                .iter()
                .map(|b| decode(b))
                .collect::<Vec<_>>()
                .join("/");
            match repo.refs.get(&branch) {
                Some(sha) => json_reply(
                    200,
                    &json!({"ref": format!("refs/heads/{branch}"), "object": {"sha": sha, "type": "commit"}}),
                    Vec::new(),
                ),
                None => error_reply(404, "Not Found", Vec::new()),
            }
        }
        ("GET", ["git", "commits", sha]) => {
            let sha = decode(sha);
            if !known_commit(repo, &sha) {
                return error_reply(404, "Not Found", Vec::new());
            }
            let tree = repo
                .written
                .commits
                .get(&sha)
                .map_or_else(|| given_tree(&sha), |c| c.tree.clone());
            json_reply(200, &json!({"sha": sha, "tree": {"sha": tree}}), Vec::new())
        }
        ("POST", ["git", "trees"]) => {
            let base = body["base_tree"].as_str().map(str::to_owned);
            let mut tree = Tree {
                base: base.clone(),
                entries: BTreeMap::new(),
            };
            let Some(entries) = body["tree"].as_array() else {
                return invalid("Invalid request: tree is not an array");
            };
            for e in entries {
                let Some(path) = e["path"].as_str() else {
                    return invalid("Invalid request: path is missing");
                };
                let content = match (&e["content"], &e["sha"]) {
                    (Value::String(c), _) => Some(c.clone().into_bytes()),
                    (_, Value::Null) if e.get("sha").is_some() => None,
                    _ => return invalid("Invalid request: content or sha is required"),
                };
                tree.entries.insert(path.to_owned(), content);
            }
            let sha = sha_of(&format!("{body}"));
            repo.written.trees.insert(sha.clone(), tree);
            json_reply(201, &json!({"sha": sha}), Vec::new())
        }
        ("POST", ["git", "commits"]) => {
            let (Some(tree), Some(parents)) = (body["tree"].as_str(), body["parents"].as_array())
            else {
                return invalid("Invalid request: tree and parents are required");
            };
            let parent = parents.first().and_then(Value::as_str).map(str::to_owned);
            if parent.as_deref().is_some_and(|p| !known_commit(repo, p)) {
                return invalid("Invalid request: parent is not a commit");
            }
            // A tree of a given commit is its tree; a written one must exist.
            if !repo.written.trees.contains_key(tree) {
                return invalid("Invalid request: tree does not exist");
            }
            let sha = sha_of(&format!("commit {body}"));
            repo.written.commits.insert(
                sha.clone(),
                Commit {
                    tree: tree.to_owned(),
                    parent,
                },
            );
            json_reply(201, &json!({"sha": sha, "tree": {"sha": tree}}), Vec::new())
        }
        ("POST", ["git", "refs"]) => {
            let (Some(name), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
                return invalid("Invalid request: ref and sha are required");
            };
            let Some(branch) = name.strip_prefix("refs/heads/") else {
                return invalid("Reference name is invalid");
            };
            if repo.refs.contains_key(branch) {
                return invalid("Reference already exists");
            }
            if !known_commit(repo, sha) {
                return invalid("Object does not exist");
            }
            repo.refs.insert(branch.to_owned(), sha.to_owned());
            json_reply(
                201,
                &json!({"ref": name, "object": {"sha": sha, "type": "commit"}}),
                Vec::new(),
            )
        }
        ("POST", ["pulls"]) => {
            let field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
            let (head, base) = (field("head"), field("base"));
            if !repo.refs.contains_key(&head) || !repo.refs.contains_key(&base) {
                return invalid("Validation Failed: head or base is not a branch");
            }
            if repo.written.pulls.iter().any(|p| p.head == head) {
                return invalid(&format!("A pull request already exists for {head}."));
            }
            let number = repo.written.pulls.len() as u64 + 1;
            let pull = MockPull {
                repository: repo.full_name.clone(),
                number,
                title: field("title"),
                head,
                base,
                body: field("body"),
                html_url: format!("https://github.com/{}/pull/{number}", repo.full_name),
            };
            let v = json!({"number": number, "html_url": pull.html_url, "state": "open", "title": pull.title});
            repo.written.pulls.push(pull);
            json_reply(201, &v, Vec::new())
        }
        _ => error_reply(404, "Not Found", Vec::new()),
    }
}
