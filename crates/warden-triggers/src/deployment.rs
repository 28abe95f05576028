//! A finished deployment, from GitHub or Argo CD: what changed where, and when. A
//! deployment right before an incident is the first suspect, so it is a trigger of its
//! own and context for the others.

use serde::{Deserialize, Serialize};

/// Who reported the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploySource {
    GitHub,
    ArgoCd,
}

impl DeploySource {
    /// `github` or `argocd`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploySource::GitHub => "github",
            DeploySource::ArgoCd => "argocd",
        }
    }
}

/// One finished deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub source: DeploySource,
    /// The exactly-once key: `gh-delivery:<X-GitHub-Delivery>` for GitHub (a redelivery
    /// repeats the GUID); for Argo CD
    /// `argocd:<application>@<revision>:<finishedAt ms>:<state>` (see
    /// [`crate::argocd_notification`]).
    pub dedupe_key: String,
    /// GitHub: the repository's name. Argo CD: the application's name.
    pub service: String,
    /// GitHub: the deployment's environment. Argo CD: the destination namespace.
    pub environment: String,
    /// The commit (or Helm chart version) deployed.
    pub revision: String,
    /// What ran before, when the sender says (Argo CD's Application history).
    pub previous_revision: Option<String>,
    /// `success`, `failure` or `error`; Argo CD adds `degraded` for a sync that
    /// succeeded but left the application Degraded.
    pub state: String,
    pub deployed_at_ms: i64,
    /// Where a person looks at it: the log or target URL, else the application page or
    /// the repository.
    pub url: String,
    /// GitHub: `owner/name`. Argo CD: the source `repoURL`.
    pub repository: String,
}
