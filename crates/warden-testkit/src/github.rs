//! A mock of the GitHub REST API (version 2022-11-28) for the code tools.
//!
//! Serves a small in-memory set of repositories: file contents at refs
//! (`GET /repos/{o}/{r}/contents/{path}?ref=`, base64 as GitHub sends it, directories as
//! listings), commits with patches (`GET /repos/{o}/{r}/commits/{ref}`), comparisons
//! (`GET /repos/{o}/{r}/compare/{base}...{head}`), code search with text-match fragments
//! (`GET /search/code?q=`), and the GitHub App installation-token exchange
//! (`POST /app/installations/{id}/access_tokens`), which verifies the App JWT's RS256
//! signature with the App's public key, its `iss` and its `exp`.
//!
//! Every request is authenticated as GitHub does (a personal token, an installation token
//! the mock minted and that has not expired, or basic auth with a token as password);
//! anything else gets 401 in GitHub's error shape. Every request is recorded with the kind
//! of credential it carried ([`GitHubRequest`]) before it is answered, so a test can prove
//! exactly what reached GitHub, including nothing.
//!
//! Pull requests too (`writes.rs`): the branch head (`GET git/ref/heads/{branch}`), a
//! commit's tree, and trees, commits, refs and pulls created with `POST`, only with a
//! token the mock was told may write ([`GitHubMock::with_write_token`]); a read-only
//! credential gets 403 as GitHub answers it. [`GitHubMock::pulls`] and
//! [`GitHubMock::file_at`] show what a pull request would merge.
//!
//! Runs on [`crate::MockServer`] (HTTPS on loopback with the [`crate::TestCa`] certificate),
//! so scripted [`crate::Fault`]s work too; a status fault answers in GitHub's error shape,
//! and a 403 or 429 with `Retry-After` is GitHub's secondary rate limit.

mod app;
mod routes;
mod writes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;

pub use app::{TestAppKey, app_key, other_app_key};
pub use writes::MockPull;

use crate::{KitError, MockApi, MockServer, Recorded, Reply, TestCa};

/// The kind of credential a request carried, as the mock judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// A personal (or fine-grained) token the mock was told to accept, as Bearer or `token`.
    Token,
    /// Basic auth whose password is an accepted token.
    Basic,
    /// An installation token minted by the mock for this installation.
    Installation(u64),
    /// A valid App JWT for this App id.
    AppJwt(u64),
    /// A token the mock was told may write (contents and pull requests).
    WriteToken,
    /// Credentials the mock refused (answered 401).
    Refused,
}

/// One request as the GitHub mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubRequest {
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    pub auth: Auth,
    /// The request body as sent (JSON for writes; empty for reads).
    pub body: String,
}

impl GitHubRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One file changed by a commit, as GitHub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockChange {
    pub filename: String,
    /// `added`, `modified`, `removed`, `renamed`.
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
    /// Unified diff hunk(s); `None` for a binary file (GitHub then omits `patch`).
    pub patch: Option<String>,
}

impl MockChange {
    pub fn modified(filename: &str, patch: &str) -> MockChange {
        let additions = patch.lines().filter(|l| l.starts_with('+')).count() as u64;
        let deletions = patch.lines().filter(|l| l.starts_with('-')).count() as u64;
        MockChange {
            filename: filename.to_owned(),
            status: "modified".to_owned(),
            additions,
            deletions,
            patch: Some(patch.to_owned()),
        }
    }
}

/// A commit in a mock repository's (linear) history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCommit {
    /// 40 hex digits.
    pub sha: String,
    pub parent: Option<String>,
    pub message: String,
    pub author_name: String,
    pub author_login: String,
    /// RFC 3339, e.g. `2026-03-01T12:00:00Z`.
    pub date: String,
    pub files: Vec<MockChange>,
}

impl MockCommit {
    /// A commit whose sha is derived from `seed` (so tests can name commits by number).
    pub fn new(seed: u32, parent: Option<&str>, message: &str, files: Vec<MockChange>) -> Self {
        MockCommit {
            sha: sha_for(seed),
            parent: parent.map(str::to_owned),
            message: message.to_owned(),
            author_name: "Ada Lovelace".to_owned(),
            author_login: "ada".to_owned(),
            date: format!("2026-03-{:02}T12:00:00Z", seed % 28 + 1),
            files,
        }
    }
}

/// The 40-hex sha [`MockCommit::new`] gives commit `seed`.
pub fn sha_for(seed: u32) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("commit {seed}").as_bytes());
    hex::encode(&d[..20])
}

#[derive(Debug, Default)]
struct Repo {
    full_name: String,
    default_branch: String,
    /// (ref, path) -> bytes
    files: BTreeMap<(String, String), Vec<u8>>,
    commits: Vec<MockCommit>,
    /// branch or tag name -> commit sha
    refs: HashMap<String, String>,
    /// What was written: trees, commits and pull requests (`writes.rs`).
    written: writes::Written,
}

struct App {
    decoding: jsonwebtoken::DecodingKey,
    installations: HashSet<u64>,
}

struct Minted {
    installation: u64,
    expires: SystemTime,
}

struct State {
    tokens: HashSet<String>,
    write_tokens: HashSet<String>,
    apps: HashMap<u64, App>,
    minted: HashMap<String, Minted>,
    token_lifetime: Duration,
    repos: BTreeMap<String, Repo>,
    requests: Vec<GitHubRequest>,
    rate_limit_reset: Option<u64>,
}

/// The GitHub mock. Cheap to clone; clones share state, so a test keeps one to configure
/// and inspect while [`GitHubMock::start`] serves another.
#[derive(Clone)]
pub struct GitHubMock {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for GitHubMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubMock").finish_non_exhaustive()
    }
}

impl Default for GitHubMock {
    fn default() -> Self {
        GitHubMock::new()
    }
}

/// Largest file GitHub's contents API returns inline; larger ones come with `encoding: none`.
pub const CONTENTS_INLINE_LIMIT: usize = 1024 * 1024;

impl GitHubMock {
    pub fn new() -> GitHubMock {
        GitHubMock {
            state: Arc::new(Mutex::new(State {
                tokens: HashSet::new(),
                write_tokens: HashSet::new(),
                apps: HashMap::new(),
                minted: HashMap::new(),
                token_lifetime: Duration::from_secs(3600),
                repos: BTreeMap::new(),
                requests: Vec::new(),
                rate_limit_reset: None,
            })),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Accepts `token` (as `Bearer`, `token`, or a basic-auth password).
    pub fn with_token(self, token: &str) -> Self {
        self.with_state(|s| s.tokens.insert(token.to_owned()));
        self
    }

    /// Accepts `token` for reads and writes (a token with contents and pull-request write).
    pub fn with_write_token(self, token: &str) -> Self {
        self.with_state(|s| s.write_tokens.insert(token.to_owned()));
        self
    }

    /// Every pull request opened so far.
    pub fn pulls(&self) -> Vec<MockPull> {
        self.with_state(|s| {
            s.repos
                .values()
                .flat_map(|r| r.written.pulls.clone())
                .collect()
        })
    }

    /// The content of `path` at the head of `branch` (a branch the mock was given, or one
    /// created through the API): what merging a pull request from it would bring.
    pub fn file_at(&self, full_name: &str, branch: &str, path: &str) -> Option<Vec<u8>> {
        self.with_state(|s| {
            let repo = s.repos.get(&full_name.to_ascii_lowercase())?;
            writes::file_at(repo, branch, path)
        })
    }

    /// Every request that was not a read (POST, PATCH, PUT, DELETE).
    pub fn writes(&self) -> Vec<GitHubRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .collect()
    }

    /// Registers GitHub App `app_id` (its RSA public key, PEM) installed as `installation_id`.
    pub fn with_app(
        self,
        app_id: u64,
        installation_id: u64,
        public_key_pem: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())?;
        self.with_state(|s| {
            s.apps
                .entry(app_id)
                .or_insert_with(|| App {
                    decoding,
                    installations: HashSet::new(),
                })
                .installations
                .insert(installation_id)
        });
        Ok(self)
    }

    /// How long minted installation tokens live (GitHub: one hour).
    pub fn with_token_lifetime(self, lifetime: Duration) -> Self {
        self.with_state(|s| s.token_lifetime = lifetime);
        self
    }

    fn repo_mut<'a>(s: &'a mut State, full_name: &str) -> &'a mut Repo {
        s.repos
            .entry(full_name.to_ascii_lowercase())
            .or_insert_with(|| Repo {
                full_name: full_name.to_owned(),
                default_branch: "main".to_owned(),
                ..Repo::default()
            })
    }

    /// Adds repository `owner/name` (default branch `main`) if it is not there yet.
    pub fn with_repo(self, full_name: &str) -> Self {
        self.with_state(|s| {
            GitHubMock::repo_mut(s, full_name);
        });
        self
    }

    /// Puts a file at `git_ref` (a branch, tag or sha as the client will ask for it).
    pub fn with_file(
        self,
        full_name: &str,
        git_ref: &str,
        path: &str,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        self.with_state(|s| {
            GitHubMock::repo_mut(s, full_name)
                .files
                .insert((git_ref.to_owned(), path.to_owned()), content.into())
        });
        self
    }

    /// Appends a commit to the repository's history.
    pub fn with_commit(self, full_name: &str, commit: MockCommit) -> Self {
        self.with_state(|s| GitHubMock::repo_mut(s, full_name).commits.push(commit));
        self
    }

    /// Points branch or tag `name` at commit `sha`.
    pub fn with_ref(self, full_name: &str, name: &str, sha: &str) -> Self {
        self.with_state(|s| {
            GitHubMock::repo_mut(s, full_name)
                .refs
                .insert(name.to_owned(), sha.to_owned())
        });
        self
    }

    /// From now on every authenticated request gets GitHub's primary rate-limit answer
    /// (403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset: reset`).
    pub fn exhaust_rate_limit(&self, reset_epoch_seconds: u64) {
        self.with_state(|s| s.rate_limit_reset = Some(reset_epoch_seconds));
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<GitHubRequest> {
        self.with_state(|s| s.requests.clone())
    }

    /// How many installation tokens the mock has minted.
    pub fn minted_tokens(&self) -> usize {
        self.with_state(|s| s.minted.len())
    }

    /// Starts serving (a clone of) this mock over HTTPS on a loopback port.
    pub async fn start(&self, ca: &TestCa) -> Result<MockServer, KitError> {
        MockServer::start(ca, self.clone()).await
    }
}

/// GitHub's error body: `{"message", "documentation_url", "status"}`.
pub(crate) fn error_reply(status: u16, message: &str, headers: Vec<(String, String)>) -> Reply {
    let v = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.to_string(),
    });
    json_reply(status, &v, headers)
}

pub(crate) fn json_reply(
    status: u16,
    v: &serde_json::Value,
    mut headers: Vec<(String, String)>,
) -> Reply {
    headers.push((
        "content-type".to_owned(),
        "application/json; charset=utf-8".to_owned(),
    ));
    headers.push(("x-github-api-version-selected".into(), "2022-11-28".into()));
    headers.push(("x-github-request-id".into(), "MOCK:0001".into()));
    Reply::Whole {
        status,
        headers,
        body: Bytes::from(v.to_string()),
    }
}

fn split_query(raw: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    (path.to_owned(), query)
}

impl MockApi for GitHubMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        let (path, query) = split_query(&req.path);
        let now = SystemTime::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let auth = app::authenticate(&s, req, &path, now);
        s.requests.push(GitHubRequest {
            method: req.method.clone(),
            path: path.clone(),
            query: query.clone(),
            auth: auth.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        routes::answer(&mut s, req, &path, &query, &auth, now)
    }

    fn error(&self, status: u16, retry_after: Option<&str>) -> Reply {
        let mut headers = Vec::new();
        let message = match (status, retry_after) {
            (403 | 429, Some(ra)) => {
                headers.push(("retry-after".to_owned(), ra.to_owned()));
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            }
            (401, _) => "Bad credentials",
            (403, None) => "Resource not accessible by integration",
            (404, _) => "Not Found",
            (422, _) => "Validation Failed",
            (503, _) => "Service Unavailable",
            _ => "Server Error",
        };
        error_reply(status, message, headers)
    }

    fn malformed_event(&self) -> Bytes {
        Bytes::from_static(b"{\"message\":")
    }

    fn stream_error_event(&self) -> Bytes {
        Bytes::from_static(b"{\"message\":\"Server Error\"}")
    }
}

#[cfg(test)]
mod tests;
