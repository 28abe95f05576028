//! GitHub REST: files at a ref, code search, commits and comparisons, for the code tools.
//!
//! A [`GitHubClient`] is built from a tenant's [`GitHubSource`] and its (unsealed)
//! [`SourceCredentials`]. It reads only the repositories the tenant mapped to its
//! services: any other `owner/name` is refused before a request is made, and so is any
//! path or ref that could step outside what was asked ([`input`]). Search is always
//! scoped by the client (`repo:owner/name`), whatever qualifiers the query brings.
//!
//! Every answer is bounded ([`Limits`]): the response body is read up to a cap, lists
//! keep at most `max_items`, file text and patches are cut and say so. Errors
//! ([`SourceError`]) name what was asked for and never carry a token, JWT or key.
//!
//! Whether the tenant's GitHub integration is on is not this module's business: the
//! caller checks that before building a client and before each call.

mod auth;
mod error;
mod input;
mod wire;

use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, USER_AGENT};
use serde::de::DeserializeOwned;
use warden_proto::common::v1::{GitHubSource, ServiceRepository, SourceCredentials};

pub use error::SourceError;
pub use input::{MAX_REPOSITORIES, check_api_url, check_source};

use auth::Auth;

/// Where GitHub.com's REST API lives; GitHub Enterprise Server uses `https://HOST/api/v3`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";
const JSON: &str = "application/vnd.github+json";
const TEXT_MATCH: &str = "application/vnd.github.text-match+json";
const AGENT: &str = concat!("warden/", env!("CARGO_PKG_VERSION"));

/// How much one call may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes read from one GitHub response; more is an error, not a cut.
    pub max_response_bytes: usize,
    /// File text kept by [`GitHubClient::read_file`]; longer is cut (`truncated`).
    pub max_file_bytes: usize,
    /// Entries, matches, commits or changed files kept from one answer.
    pub max_items: usize,
    /// One file's patch.
    pub max_patch_bytes: usize,
    /// All patches of one commit or comparison together.
    pub max_total_patch_bytes: usize,
    /// One commit message.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_response_bytes: 8 * 1024 * 1024,
            max_file_bytes: 256 * 1024,
            max_items: 100,
            max_patch_bytes: 32 * 1024,
            max_total_patch_bytes: 256 * 1024,
            max_message_bytes: 8 * 1024,
        }
    }
}

/// A file's text at a ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub repository: String,
    pub path: String,
    /// The ref read; `None`: the repository's default branch.
    pub git_ref: Option<String>,
    /// The blob's sha.
    pub sha: String,
    /// The whole file's size in bytes.
    pub size: u64,
    pub text: String,
    /// `text` was cut to [`Limits::max_file_bytes`].
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Submodule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// A directory's listing at a ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub repository: String,
    /// As asked, without leading or trailing `/` (empty: the root).
    pub path: String,
    pub git_ref: Option<String>,
    pub entries: Vec<DirEntry>,
    /// More entries than [`Limits::max_items`].
    pub truncated: bool,
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    File(FileContent),
    Directory(Directory),
}

/// One file that matched a code search, with GitHub's text-match fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMatch {
    pub path: String,
    pub fragments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSearch {
    pub repository: String,
    /// The query as sent to GitHub, scope qualifier included.
    pub query: String,
    /// Tokens of the caller's query that were dropped (scope qualifiers, operators).
    pub removed_qualifiers: Vec<String>,
    pub total_count: u64,
    /// GitHub did not search everything in time.
    pub incomplete: bool,
    pub matches: Vec<CodeMatch>,
    /// More matches exist than were returned.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub sha: String,
    pub message: String,
    pub message_truncated: bool,
    /// The git author's name.
    pub author: String,
    /// The GitHub account of the author, when GitHub knows it.
    pub author_login: Option<String>,
    /// The author date, RFC 3339.
    pub date: String,
}

/// One changed file of a commit or comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub filename: String,
    pub previous_filename: Option<String>,
    /// `added`, `modified`, `removed`, `renamed`, ...
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
    /// The unified diff; `None` when GitHub has none (binary, too large) or the budget ran out.
    pub patch: Option<String>,
    /// The patch was cut or dropped by [`Limits`].
    pub patch_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub summary: CommitSummary,
    pub parents: Vec<String>,
    pub files: Vec<FileChange>,
    /// More changed files than [`Limits::max_items`].
    pub files_truncated: bool,
}

/// What changed between two refs (for example two deployments), as `base...head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub base: String,
    pub head: String,
    /// `ahead`, `behind`, `identical` or `diverged`.
    pub status: String,
    pub ahead_by: u64,
    pub behind_by: u64,
    pub total_commits: u64,
    /// Oldest first.
    pub commits: Vec<CommitSummary>,
    pub commits_truncated: bool,
    pub files: Vec<FileChange>,
    pub files_truncated: bool,
}

/// A client for one tenant's GitHub installation.
pub struct GitHubClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    repositories: Vec<ServiceRepository>,
    limits: Limits,
    timeout: Duration,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("base", &self.base)
            .field("repositories", &self.repositories.len())
            .finish_non_exhaustive()
    }
}

impl GitHubClient {
    /// A client trusting the webpki roots. `timeout` bounds each request, body included.
    pub fn new(
        source: &GitHubSource,
        credentials: &SourceCredentials,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        GitHubClient::build(source, credentials, timeout, None)
    }

    /// A client that also trusts `ca_pem` (a GitHub Enterprise Server's private CA, a test CA).
    pub fn with_root_ca(
        source: &GitHubSource,
        credentials: &SourceCredentials,
        timeout: Duration,
        ca_pem: &[u8],
    ) -> Result<Self, SourceError> {
        GitHubClient::build(source, credentials, timeout, Some(ca_pem))
    }

    fn build(
        source: &GitHubSource,
        credentials: &SourceCredentials,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, SourceError> {
        check_source(source).map_err(SourceError::Config)?;
        let base = input::check_api_url(&source.api_url).map_err(SourceError::Config)?;
        let auth = Auth::from_credentials(credentials)?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(base.starts_with("https://"))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            // A redirect could carry the request somewhere the tenant did not configure.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|_| SourceError::Config("the root CA is not a PEM certificate".into()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| SourceError::Config(format!("TLS setup failed: {}", e.without_url())))?;
        Ok(GitHubClient {
            http,
            base,
            auth,
            repositories: source.repositories.clone(),
            limits: Limits::default(),
            timeout,
        })
    }

    /// Replaces the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Every service-to-repository mapping.
    pub fn repositories(&self) -> &[ServiceRepository] {
        &self.repositories
    }

    /// The repository mapped to `service` (telemetry's `service.name`).
    pub fn repository_for(&self, service: &str) -> Option<&ServiceRepository> {
        self.repositories.iter().find(|r| r.service == service)
    }

    /// The mapping of `repository` (GitHub's names are case-insensitive), or a refusal.
    fn mapped(&self, repository: &str) -> Result<&ServiceRepository, SourceError> {
        input::parse_repository(repository)?;
        self.repositories
            .iter()
            .find(|r| r.repository.eq_ignore_ascii_case(repository))
            .ok_or_else(|| SourceError::NotMapped {
                repository: repository.to_owned(),
            })
    }

    fn repo_path(mapping: &ServiceRepository) -> Result<String, SourceError> {
        let (owner, name) = input::parse_repository(&mapping.repository)?;
        Ok(format!(
            "/repos/{}/{}",
            input::encode(owner),
            input::encode(name)
        ))
    }

    /// A file's text, or a directory's listing, at `git_ref` (`None`: the mapping's
    /// default ref, else the repository's default branch).
    pub async fn read_file(
        &self,
        repository: &str,
        path: &str,
        git_ref: Option<&str>,
    ) -> Result<Contents, SourceError> {
        let mapping = self.mapped(repository)?;
        let path = input::check_path(path)?;
        let git_ref = match git_ref {
            Some(r) => Some(r),
            None if !mapping.default_ref.is_empty() => Some(mapping.default_ref.as_str()),
            None => None,
        };
        if let Some(r) = git_ref {
            input::check_ref("ref", r)?;
        }
        let mut url = format!("{}/contents", GitHubClient::repo_path(mapping)?);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            url.push('/');
            url.push_str(&input::encode(seg));
        }
        let what = match git_ref {
            Some(r) => format!("{}:{path} at {r}", mapping.repository),
            None => format!("{}:{path}", mapping.repository),
        };
        let query: Vec<(&str, &str)> = git_ref.map(|r| ("ref", r)).into_iter().collect();
        let wire: wire::WireContents = self.get(&what, &url, &query, JSON).await?;
        wire::contents(wire, &mapping.repository, &path, git_ref, &self.limits)
    }

    /// Code search in one mapped repository (GitHub searches its default branch).
    /// Scope qualifiers and boolean operators in `query` are dropped and reported.
    pub async fn search_code(
        &self,
        repository: &str,
        query: &str,
        limit: usize,
    ) -> Result<CodeSearch, SourceError> {
        let mapping = self.mapped(repository)?;
        let (q, removed) = input::scoped_query(query, &mapping.repository)?;
        let limit = limit.clamp(1, self.limits.max_items.clamp(1, 100));
        let per_page = limit.to_string();
        let what = format!("code search in {}", mapping.repository);
        let wire: wire::WireSearch = self
            .get(
                &what,
                "/search/code",
                &[("q", q.as_str()), ("per_page", per_page.as_str())],
                TEXT_MATCH,
            )
            .await?;
        Ok(wire::search(wire, &mapping.repository, q, removed, limit))
    }

    /// One commit (a sha or any ref) with its changed files and patches.
    pub async fn commit(&self, repository: &str, sha: &str) -> Result<Commit, SourceError> {
        let mapping = self.mapped(repository)?;
        input::check_ref("sha", sha)?;
        let url = format!(
            "{}/commits/{}",
            GitHubClient::repo_path(mapping)?,
            input::encode(sha)
        );
        let what = format!("commit {sha} in {}", mapping.repository);
        let per_page = self.limits.max_items.clamp(1, 300).to_string();
        let wire: wire::WireCommit = self
            .get(&what, &url, &[("per_page", per_page.as_str())], JSON)
            .await?;
        Ok(wire::commit(wire, &self.limits))
    }

    /// The commits and changed files from `base` to `head` (for example the refs of two
    /// deployments), as GitHub's three-dot comparison.
    pub async fn compare(
        &self,
        repository: &str,
        base: &str,
        head: &str,
    ) -> Result<Comparison, SourceError> {
        let mapping = self.mapped(repository)?;
        input::check_ref("base", base)?;
        input::check_ref("head", head)?;
        let url = format!(
            "{}/compare/{}...{}",
            GitHubClient::repo_path(mapping)?,
            input::encode(base),
            input::encode(head)
        );
        let what = format!("comparison {base}...{head} in {}", mapping.repository);
        let per_page = self.limits.max_items.clamp(1, 250).to_string();
        let wire: wire::WireCompare = self
            .get(&what, &url, &[("per_page", per_page.as_str())], JSON)
            .await?;
        Ok(wire::comparison(wire, base, head, &self.limits))
    }

    /// The `Authorization` header: the static credential, or a (cached) installation token.
    async fn authorization(&self) -> Result<HeaderValue, SourceError> {
        if let Some(h) = auth::static_header(&self.auth)? {
            return Ok(h);
        }
        let Auth::App(app) = &self.auth else {
            return Err(SourceError::Config("no credentials".into()));
        };
        let mut slot = app.lock().await;
        let now = SystemTime::now();
        if let Some(h) = auth::cached_header(&slot, now)? {
            return Ok(h);
        }
        let jwt = app.jwt(now)?;
        let bearer = auth::sensitive(&format!(
            "Bearer {}",
            secrecy::ExposeSecret::expose_secret(&jwt)
        ))?;
        let what = format!(
            "installation {} of GitHub App {}",
            app.installation_id, app.app_id
        );
        let url = format!("/app/installations/{}/access_tokens", app.installation_id);
        let answer: auth::InstallationToken = self
            .send(
                reqwest::Method::POST,
                &what,
                &url,
                &[],
                JSON,
                bearer,
                "GitHub refused the App's JWT; check the App id and that the private key is the App's current one",
            )
            .await?;
        auth::store(&mut slot, answer, now)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
        accept: &'static str,
    ) -> Result<T, SourceError> {
        let authorization = self.authorization().await?;
        let result = self
            .send(
                reqwest::Method::GET,
                what,
                path,
                query,
                accept,
                authorization,
                self.auth.hint(),
            )
            .await;
        // A revoked installation token is not used again: the next call mints a new one.
        if let (Err(SourceError::Unauthenticated { .. }), Auth::App(app)) = (&result, &self.auth) {
            *app.lock().await = None;
        }
        result
    }

    #[expect(clippy::too_many_arguments, reason = "one private request helper")]
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
        accept: &'static str,
        authorization: HeaderValue,
        unauthenticated_hint: &'static str,
    ) -> Result<T, SourceError> {
        tracing::debug!(%method, %what, "github request");
        let mut resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .header(ACCEPT, accept)
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(USER_AGENT, AGENT)
            .header(AUTHORIZATION, authorization.clone())
            .send()
            .await
            .map_err(|e| error::from_reqwest(e, what, self.timeout))?;
        let status = resp.status();
        let cap = self.limits.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(SourceError::ResponseTooLarge {
                what: what.to_owned(),
                limit: cap,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| error::from_reqwest(e, what, self.timeout))?
        {
            if body.len() + chunk.len() > cap {
                return Err(SourceError::ResponseTooLarge {
                    what: what.to_owned(),
                    limit: cap,
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(%what, status = status.as_u16(), bytes = body.len(), "github answer");
        if !status.is_success() {
            let current = authorization.to_str().unwrap_or_default();
            let mut secrets = self.auth.secrets();
            secrets.push(current.split_once(' ').map_or(current, |(_, v)| v));
            return Err(error::from_status(
                status.as_u16(),
                resp.headers(),
                &body,
                what,
                unauthenticated_hint,
                &secrets,
                SystemTime::now(),
            ));
        }
        serde_json::from_slice(&body).map_err(|_| SourceError::Decode {
            what: what.to_owned(),
        })
    }
}
