//! How a call that got past its audit intent ended, as the outcome record names it.
//!
//! One closed set, so the audit log, metrics labels and tests agree on every spelling
//! and no label can carry free text (a provider's message, a tenant id).

use std::fmt;

use warden_providers::ProviderError;

/// How one call ended, after its intent was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer reached the caller (unary), or the stream's end did.
    Ok,
    /// The caller went away (its deadline, a dropped stream): the provider call was
    /// cancelled.
    Cancelled,
    /// The stream's reader took nothing for the stream idle timeout.
    ReaderStalled,
    /// The tenant opted out while the answer was streaming.
    OptedOut,
    /// The API key the call came with was revoked while the answer was streaming.
    KeyRevoked,
    /// The tenant's settings could no longer be followed mid-stream (fail closed).
    SettingsUnavailable,
    /// Every eligible provider failed, or the stream failed after it started.
    Provider(ProviderFailure),
}

/// A provider error reduced to a bounded label: its HTTP status, or its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFailure {
    /// The provider answered with this HTTP status.
    Status(u16),
    /// Anything else: `timeout`, `connect`, `protocol`, `circuit_open`, ...
    Kind(&'static str),
}

impl Outcome {
    /// The label the audit record and metrics carry.
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::Borrowed;
        match self {
            Outcome::Ok => Borrowed("ok"),
            Outcome::Cancelled => Borrowed("cancelled"),
            Outcome::ReaderStalled => Borrowed("reader_stalled"),
            Outcome::OptedOut => Borrowed("opted_out"),
            Outcome::KeyRevoked => Borrowed("key_revoked"),
            Outcome::SettingsUnavailable => Borrowed("settings_unavailable"),
            Outcome::Provider(f) => f.label(),
        }
    }
}

impl ProviderFailure {
    /// `http_503`, `timeout`, ...
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        match self {
            ProviderFailure::Status(status) => format!("http_{status}").into(),
            ProviderFailure::Kind(kind) => (*kind).into(),
        }
    }
}

impl From<&ProviderError> for ProviderFailure {
    fn from(e: &ProviderError) -> Self {
        match e {
            ProviderError::Status { status, .. } => ProviderFailure::Status(*status),
            other => ProviderFailure::Kind(other.kind()),
        }
    }
}

impl From<&ProviderError> for Outcome {
    fn from(e: &ProviderError) -> Self {
        Outcome::Provider(e.into())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl fmt::Display for ProviderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_audit_logs_spellings() {
        let cases = [
            (Outcome::Ok, "ok"),
            (Outcome::Cancelled, "cancelled"),
            (Outcome::ReaderStalled, "reader_stalled"),
            (Outcome::OptedOut, "opted_out"),
            (Outcome::KeyRevoked, "key_revoked"),
            (Outcome::SettingsUnavailable, "settings_unavailable"),
        ];
        for (outcome, label) in cases {
            assert_eq!(outcome.to_string(), label);
        }
    }

    #[test]
    fn a_provider_error_becomes_its_status_or_its_kind_never_its_message() {
        let status = ProviderError::Status {
            provider: "openai".into(),
            status: 503,
            retry_after: None,
            message: "sk-live-secret in a message".into(),
        };
        assert_eq!(Outcome::from(&status).to_string(), "http_503");
        let timeout = ProviderError::Timeout {
            provider: "openai".into(),
        };
        assert_eq!(Outcome::from(&timeout).to_string(), "timeout");
        let connect = ProviderError::Connect {
            provider: "anthropic".into(),
            message: "10.0.0.7 refused".into(),
        };
        assert_eq!(
            Outcome::from(&connect),
            Outcome::Provider(ProviderFailure::Kind("connect"))
        );
    }
}
