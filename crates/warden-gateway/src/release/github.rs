//! A code fix (or configuration kept in Git) released as one pull request, through the
//! GitHub REST API (2022-11-28) with the tenant's release token.
//!
//! Reads first, writes last: the branch head must still be the commit the proposal was
//! made against; the files are read at that commit and the approved diff is applied to
//! them exactly (`warden_proposals::diff::apply`, no fuzz); only then a tree, a commit
//! whose parent is that head, the branch `warden/proposal-<id>` (GitHub refuses it if it
//! exists, so a retried release cannot open a second pull request) and the pull request.
//! Modified files keep mode 100644.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use warden_proposals::diff::{self, Op};
use warden_proto::common::v1::GitHubSource;
use warden_proto::storage::v1 as st;

use super::ReleaseError;

const TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Writer {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn path_of(p: &str) -> String {
    p.split('/').map(seg).collect::<Vec<_>>().join("/")
}

fn repo_path(repository: &str) -> Result<String, ReleaseError> {
    match repository.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => {
            Ok(format!("/repos/{}/{}", seg(o), seg(n)))
        }
        _ => Err(ReleaseError::Refused(format!(
            "repository {repository:?} is not owner/name"
        ))),
    }
}

impl Writer {
    pub fn new(source: &GitHubSource, token: &str) -> Result<Writer, ReleaseError> {
        let base = warden_sources::github::check_api_url(&source.api_url)
            .map_err(ReleaseError::Refused)?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(base.starts_with("https://"))
            .connect_timeout(Duration::from_secs(10))
            .timeout(TIMEOUT)
            // A redirect could carry the token somewhere the tenant did not configure.
            .redirect(reqwest::redirect::Policy::none());
        if !source.ca_pem.is_empty() {
            let cert = reqwest::Certificate::from_pem(source.ca_pem.as_bytes()).map_err(|_| {
                ReleaseError::Refused("the GitHub source's ca_pem is not a PEM certificate".into())
            })?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| {
            ReleaseError::Unavailable(format!("TLS setup failed: {}", e.without_url()))
        })?;
        Ok(Writer {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), ReleaseError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "warden-release");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| {
            ReleaseError::Unavailable(format!("GitHub could not be reached: {}", e.without_url()))
        })?;
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok((status, v)),
            401 | 403 | 404 | 409 | 422 => Err(ReleaseError::Refused(format!(
                "GitHub answered {status} to {path}: {}",
                v["message"].as_str().unwrap_or("no message")
            ))),
            _ => Err(ReleaseError::Unavailable(format!(
                "GitHub answered {status} to {path}: {}",
                v["message"].as_str().unwrap_or("no message")
            ))),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, ReleaseError> {
        Ok(self.call(reqwest::Method::GET, path, None).await?.1)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, ReleaseError> {
        Ok(self.call(reqwest::Method::POST, path, Some(body)).await?.1)
    }

    fn sha(v: &Value, pointer: &str, what: &str) -> Result<String, ReleaseError> {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ReleaseError::Unavailable(format!("GitHub's answer has no {what}")))
    }

    /// The text of `path` at commit `sha`.
    async fn file_at(&self, repo: &str, path: &str, sha: &str) -> Result<String, ReleaseError> {
        let v = self
            .get(&format!(
                "{repo}/contents/{}?ref={}",
                path_of(path),
                seg(sha)
            ))
            .await?;
        let encoded: String = v["content"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                ReleaseError::Unavailable(format!(
                    "GitHub sent {path} in a form this release cannot read"
                ))
            })?;
        String::from_utf8(bytes).map_err(|_| {
            ReleaseError::Refused(format!(
                "{path} is not text; a diff cannot be applied to it"
            ))
        })
    }

    pub async fn open_pull_request(
        &self,
        p: &st::Proposal,
        t: &st::RepositoryTarget,
        actor: &str,
    ) -> Result<String, ReleaseError> {
        let repo = repo_path(&t.repository)?;
        let content = p.content.clone().unwrap_or_default();
        let change = content.change.clone().unwrap_or_default();
        // 3. The target has not moved.
        let head = self
            .get(&format!("{repo}/git/ref/heads/{}", path_of(&t.branch)))
            .await?;
        let now = Self::sha(&head, "/object/sha", "branch head")?;
        if !now.eq_ignore_ascii_case(&t.head_sha) {
            return Err(ReleaseError::Refused(format!(
                "branch {} of {} moved: its head is {now}, the proposal was made against {}; nothing was released, propose again",
                t.branch, t.repository, t.head_sha
            )));
        }
        // The approved diff, applied exactly to the files at that commit.
        let files =
            diff::files(&change.content).map_err(|e| ReleaseError::Refused(e.to_string()))?;
        let mut bases = BTreeMap::new();
        for f in files.iter().filter(|f| f.op != Op::Create) {
            bases.insert(
                f.path.clone(),
                self.file_at(&repo, &f.path, &t.head_sha).await?,
            );
        }
        let changed = diff::apply(&change.content, &bases)
            .map_err(|e| ReleaseError::Refused(e.to_string()))?;
        let commit = self
            .get(&format!("{repo}/git/commits/{}", seg(&t.head_sha)))
            .await?;
        let base_tree = Self::sha(&commit, "/tree/sha", "tree")?;
        // 4. The writes.
        let entries: Vec<Value> = changed
            .iter()
            .map(|(path, text)| match text {
                Some(text) => {
                    json!({"path": path, "mode": "100644", "type": "blob", "content": text})
                }
                None => json!({"path": path, "mode": "100644", "type": "blob", "sha": null}),
            })
            .collect();
        let tree = self
            .post(
                &format!("{repo}/git/trees"),
                json!({"base_tree": base_tree, "tree": entries}),
            )
            .await?;
        let tree = Self::sha(&tree, "/sha", "tree")?;
        let message = format!(
            "{}\n\nWarden proposal {}\nContent digest: {}\nApproved by: {}\nReleased by: {actor}",
            content.title,
            p.id,
            p.approved_digest,
            p.approvals.join(", ")
        );
        let new = self
            .post(
                &format!("{repo}/git/commits"),
                json!({"message": message, "tree": tree, "parents": [t.head_sha]}),
            )
            .await?;
        let new = Self::sha(&new, "/sha", "commit")?;
        let branch = format!("warden/proposal-{}", p.id);
        self.post(
            &format!("{repo}/git/refs"),
            json!({"ref": format!("refs/heads/{branch}"), "sha": new}),
        )
        .await?;
        let body = format!(
            "{}\n\n---\nProposed by a Warden investigation (run `{}`), approved by {} on content digest `{}`, released by {actor}.\nEvidence: {} tool calls, {} audit records.\n",
            content.rationale,
            p.run_id,
            p.approvals.join(", "),
            p.approved_digest,
            content.evidence.as_ref().map_or(0, |e| e.tool_calls.len()),
            content
                .evidence
                .as_ref()
                .map_or(0, |e| e.audit_record_ids.len()),
        );
        let pr = self
            .post(
                &format!("{repo}/pulls"),
                json!({"title": content.title, "head": branch, "base": t.branch, "body": body}),
            )
            .await?;
        pr["html_url"].as_str().map(str::to_owned).ok_or_else(|| {
            ReleaseError::Unavailable("GitHub's answer has no pull request URL".into())
        })
    }
}
