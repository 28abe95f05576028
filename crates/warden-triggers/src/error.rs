//! Why a payload was refused, in words a person on the sending side can act on.
//!
//! Every message names where the problem is (which alert, which event, which field) and
//! what was expected. None quotes a secret or a header the caller did not choose to
//! show: signature headers never reach an error at all, and the few values that are
//! quoted (an unknown status, an unknown event name) are cut to a few dozen characters.

/// A webhook body that cannot become a trigger. Every variant is the sender's fault, so
/// a listener answers 4xx: Alertmanager retries 5xx until it succeeds, but not 4xx, so a
/// 5xx for a bad body would be re-sent forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON at all (or a newline-delimited value in it is not).
    #[error("{what} is not valid JSON ({reason})")]
    NotJson { what: &'static str, reason: String },
    /// The body is larger than [`crate::MAX_BODY_BYTES`].
    #[error("{what} is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    /// More alerts or events in one body than this crate accepts at once.
    #[error("{what} holds more than {limit} {items}; send fewer per request ({hint})")]
    TooMany {
        what: &'static str,
        items: &'static str,
        limit: usize,
        hint: &'static str,
    },
    /// The JSON parsed but a field is missing or has the wrong shape.
    /// Rendered as `"{at}: {problem}"`, e.g.
    /// `alertmanager payload: alert 2: startsAt is missing`.
    #[error("{at}: {problem}")]
    Invalid { at: String, problem: String },
    /// A GitHub event this crate does not turn into triggers.
    #[error(
        "github event `{0}` is not handled here: subscribe this webhook to `deployment_status` (and `pull_request`, for released proposals) only"
    )]
    UnsupportedGithubEvent(String),
    /// The `X-GitHub-Delivery` header, which the exactly-once key is made of, is missing
    /// or is not a delivery id.
    #[error(
        "github delivery id (X-GitHub-Delivery header) is missing or is not 1 to 128 printable ASCII characters"
    )]
    BadGithubDeliveryId,
}

pub(crate) fn invalid(at: impl Into<String>, problem: impl Into<String>) -> PayloadError {
    PayloadError::Invalid {
        at: at.into(),
        problem: problem.into(),
    }
}

/// A sender-chosen value quoted in an error: at most 40 characters, control characters
/// escaped, so a message stays one readable line.
pub(crate) fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_short_and_on_one_line() {
        assert_eq!(quoted("firing"), "\"firing\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(100);
        let q = quoted(&long);
        assert_eq!(q.chars().filter(|c| *c == 'x').count(), 40);
        assert!(q.ends_with("…\""));
    }

    #[test]
    fn invalid_renders_where_then_what() {
        let e = invalid("kubernetes event 3", "involvedObject.name is missing");
        assert_eq!(
            e.to_string(),
            "kubernetes event 3: involvedObject.name is missing"
        );
    }
}
