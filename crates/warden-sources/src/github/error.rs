//! What can go wrong talking to GitHub, and how GitHub's answers map onto it.
//!
//! Every message names what was asked for (a repository, a path, a ref) and what to do;
//! none carries a credential: GitHub's own error text is cut short and scrubbed of every
//! secret the client holds before it is kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a GitHub call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("GitHub source is misconfigured: {0}")]
    Config(String),
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(
        "repository {repository} is not mapped to any of the tenant's services; only mapped repositories can be read"
    )]
    NotMapped { repository: String },
    #[error("GitHub refused the credentials (401): {hint}")]
    Unauthenticated { hint: &'static str },
    #[error("GitHub denied access to {what} (403): {message}")]
    Forbidden { what: String, message: String },
    #[error("GitHub's rate limit is exhausted{}", reset_text(*.reset_at))]
    RateLimited {
        /// When GitHub will accept requests again (Unix seconds), if it said.
        reset_at: Option<u64>,
    },
    #[error("{what} not found on GitHub")]
    NotFound { what: String },
    #[error("GitHub rejected the request for {what} (422): {message}")]
    Rejected { what: String, message: String },
    #[error("{path} is a binary file; only text files can be read")]
    Binary { path: String },
    #[error("{path} is {size} bytes, more than GitHub's contents API returns")]
    TooLarge { path: String, size: u64 },
    #[error("GitHub's answer for {what} is larger than {limit} bytes")]
    ResponseTooLarge { what: String, limit: usize },
    #[error("GitHub answered {status} for {what}: {message}")]
    Http {
        status: u16,
        what: String,
        message: String,
    },
    #[error("GitHub did not answer for {what} within {seconds} s")]
    Timeout { what: String, seconds: u64 },
    #[error("GitHub could not be reached for {what}: {detail}")]
    Transport { what: String, detail: String },
    #[error("GitHub's answer for {what} was not understood")]
    Decode { what: String },
}

impl SourceError {
    /// Worth retrying later (rate limits, timeouts, GitHub's 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::RateLimited { .. }
            | SourceError::Timeout { .. }
            | SourceError::Transport { .. } => true,
            SourceError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

fn reset_text(reset_at: Option<u64>) -> String {
    let Some(at) = reset_at else {
        return "; try again later".to_owned();
    };
    let when = i64::try_from(at)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string());
    format!("; it resets at {when}")
}

/// At most this much of GitHub's own error text is kept.
const MAX_MESSAGE_CHARS: usize = 300;

/// GitHub's `message`, cut short, on one line, with every secret replaced.
pub(super) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut m: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        m = m.replace(s, "[redacted]");
    }
    if m.chars().count() > MAX_MESSAGE_CHARS {
        m = m.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    m
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Maps a non-success answer from GitHub. `what` names what was asked for.
pub(super) fn from_status(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    what: &str,
    unauthenticated_hint: &'static str,
    secrets: &[&str],
    now: SystemTime,
) -> SourceError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(|m| scrub(m, secrets)))
        .unwrap_or_else(|| "no message".to_owned());
    // Primary limit: remaining 0 and the reset time; secondary: Retry-After.
    let exhausted = header(headers, "x-ratelimit-remaining") == Some("0");
    let retry_after = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok());
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match status {
        401 => SourceError::Unauthenticated {
            hint: unauthenticated_hint,
        },
        403 | 429 if exhausted || retry_after.is_some() => SourceError::RateLimited {
            reset_at: retry_after.map(|s| now_s + s).or_else(|| {
                header(headers, "x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
            }),
        },
        429 => SourceError::RateLimited { reset_at: None },
        403 => SourceError::Forbidden {
            what: what.to_owned(),
            message,
        },
        404 => SourceError::NotFound {
            what: what.to_owned(),
        },
        422 if message.starts_with("No commit found") => SourceError::NotFound {
            what: what.to_owned(),
        },
        422 => SourceError::Rejected {
            what: what.to_owned(),
            message,
        },
        _ => SourceError::Http {
            status,
            what: what.to_owned(),
            message,
        },
    }
}

/// Maps a transport failure; reqwest's text is kept without the URL.
pub(super) fn from_reqwest(e: reqwest::Error, what: &str, timeout: Duration) -> SourceError {
    if e.is_timeout() {
        return SourceError::Timeout {
            what: what.to_owned(),
            seconds: timeout.as_secs().max(1),
        };
    }
    // reqwest's own text is generic ("error sending request"); the cause says what failed.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    SourceError::Transport {
        what: what.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn map(status: u16, headers: &[(&'static str, &str)], body: &str) -> SourceError {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        from_status(
            status,
            &h,
            body.as_bytes(),
            "acme/api:src/x",
            "check the token",
            &["ghp_secret123"],
            UNIX_EPOCH + Duration::from_secs(1_000),
        )
    }

    #[test]
    fn github_statuses_map_to_reasons() {
        assert_eq!(
            map(401, &[], r#"{"message":"Bad credentials"}"#).to_string(),
            "GitHub refused the credentials (401): check the token"
        );
        assert_eq!(
            map(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1772366400")
                ],
                "{}"
            ),
            SourceError::RateLimited {
                reset_at: Some(1_772_366_400)
            }
        );
        assert_eq!(
            map(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1772366400")
                ],
                "{}"
            )
            .to_string(),
            "GitHub's rate limit is exhausted; it resets at 2026-03-01T12:00:00Z"
        );
        assert_eq!(
            map(429, &[("retry-after", "30")], "{}"),
            SourceError::RateLimited {
                reset_at: Some(1_030)
            }
        );
        assert_eq!(
            map(
                403,
                &[("x-ratelimit-remaining", "4999")],
                r#"{"message":"Resource not accessible by integration"}"#
            )
            .to_string(),
            "GitHub denied access to acme/api:src/x (403): Resource not accessible by integration"
        );
        assert_eq!(
            map(404, &[], "{}").to_string(),
            "acme/api:src/x not found on GitHub"
        );
        assert!(matches!(
            map(422, &[], r#"{"message":"No commit found for SHA: x"}"#),
            SourceError::NotFound { .. }
        ));
        assert_eq!(
            map(502, &[], "<html>bad gateway</html>").to_string(),
            "GitHub answered 502 for acme/api:src/x: no message"
        );
    }

    #[test]
    fn messages_are_scrubbed_and_bounded() {
        let e = map(500, &[], r#"{"message":"token ghp_secret123 was\nbad"}"#).to_string();
        assert_eq!(
            e,
            "GitHub answered 500 for acme/api:src/x: token [redacted] was bad"
        );
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        assert!(map(500, &[], &long).to_string().len() < 400);
    }
}
