//! GitHub's `pull_request` event, for one thing only: a pull request Warden opened for a
//! released proposal was closed, merged (the change is applied) or not (it failed).

use serde_json::Value;

use crate::error::{PayloadError, invalid};
use crate::json::{parse_body, text};

const WHAT: &str = "github pull_request";

/// A pull request that was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestClosed {
    /// `pull_request.html_url`: what a release recorded as where it went.
    pub html_url: String,
    pub merged: bool,
}

/// The closed pull request of a `pull_request` delivery; `Ok(None)` for every other
/// action (opened, edited, synchronize, ...). Check the signature first.
pub fn github_pull_request_closed(body: &[u8]) -> Result<Option<PullRequestClosed>, PayloadError> {
    let root = parse_body(WHAT, body)?;
    if text(&root, &["action"]) != Some("closed") {
        return Ok(None);
    }
    let pr = root
        .get("pull_request")
        .filter(|v| v.is_object())
        .ok_or_else(|| invalid(WHAT, "pull_request is missing or not an object"))?;
    let html_url = text(pr, &["html_url"])
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| invalid(WHAT, "pull_request.html_url is missing"))?;
    let merged = pr.get("merged").and_then(Value::as_bool).unwrap_or(false);
    Ok(Some(PullRequestClosed { html_url, merged }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_pull_request_counts_and_merged_says_how() {
        let closed = |merged: bool| {
            serde_json::json!({"action": "closed", "number": 1,
                "pull_request": {"html_url": "https://github.com/acme/api/pull/1", "merged": merged}})
            .to_string()
        };
        assert_eq!(
            github_pull_request_closed(closed(true).as_bytes()).unwrap(),
            Some(PullRequestClosed {
                html_url: "https://github.com/acme/api/pull/1".into(),
                merged: true
            })
        );
        assert!(
            !github_pull_request_closed(closed(false).as_bytes())
                .unwrap()
                .unwrap()
                .merged
        );
        assert_eq!(
            github_pull_request_closed(br#"{"action":"opened","pull_request":{}}"#).unwrap(),
            None
        );
        assert!(github_pull_request_closed(br#"{"action":"closed"}"#).is_err());
        assert!(github_pull_request_closed(b"nope").is_err());
    }
}
