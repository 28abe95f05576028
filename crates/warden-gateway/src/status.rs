//! The one place where gateway errors become gRPC statuses.
//!
//! Every status carries `ErrorInfo.reason`: the rule id that the audit record and
//! ARCHITECTURE.md use. Messages name tenants, fields, types and providers, never payload
//! or credential bytes. The match has no `_` arm: a new error must choose its status.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use warden_policy::Rule;
use warden_providers::ProviderError;

use crate::audit_sink::AuditUnavailable;
use crate::tenants::SettingsUnavailable;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Denied(#[from] warden_policy::Denied),
    #[error(transparent)]
    Settings(#[from] SettingsUnavailable),
    #[error("the audit log could not be written, so nothing was sent (fail closed)")]
    Audit(#[from] AuditUnavailable),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// Routing gave up: `error` decided it, `tried` names every attempt (provider and
    /// error class, never a credential or payload).
    #[error("{error}; providers tried: {tried}")]
    Routed { error: ProviderError, tried: String },
    #[error("{0}")]
    Minimize(String),
    #[error(
        "the redaction rules of tenant {tenant} do not compile ({error}); nothing was sent (fail closed)"
    )]
    TenantRules { tenant: String, error: String },
    #[error("tenant {tenant} is over its rate limit")]
    RateLimited { tenant: String },
    /// The caller went away (or its deadline passed) before the answer; the outcome is
    /// recorded as `cancelled`. Nobody receives this status but the metrics.
    #[error("the caller went away before the answer; the call was cancelled")]
    Cancelled,
    /// The stream's reader did not take the next event for the idle timeout.
    #[error(
        "the stream's reader took nothing for {idle_ms} ms (the stream idle timeout); the stream was ended"
    )]
    ReaderStalled { idle_ms: u64 },
    /// The task that carries a call past its intent ended without an answer (the
    /// runtime is shutting down).
    #[error("the gateway stopped before the call finished; its outcome is in the audit log")]
    Interrupted,
}

impl GatewayError {
    /// The rule id: for metrics labels, audit records and `ErrorInfo.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::Invalid(_) => "INVALID_REQUEST",
            GatewayError::Denied(d) => d.rule.id(),
            GatewayError::Settings(_) => "SETTINGS_UNAVAILABLE",
            GatewayError::Audit(_) => "AUDIT_FAIL_CLOSED",
            GatewayError::Provider(p) | GatewayError::Routed { error: p, .. } => match p {
                ProviderError::RateLimited { .. } => "TENANT_RATE_LIMITED",
                p if p.is_rate_limited() => "PROVIDER_RATE_LIMITED",
                _ => "PROVIDER_UNAVAILABLE",
            },
            GatewayError::Minimize(_) => "MINIMIZATION_FAILED",
            GatewayError::TenantRules { .. } => "REDACTION_RULES_INVALID",
            GatewayError::RateLimited { .. } => "TENANT_RATE_LIMITED",
            GatewayError::Cancelled => "CANCELLED",
            GatewayError::ReaderStalled { .. } => "READER_STALLED",
            GatewayError::Interrupted => "INTERRUPTED",
        }
    }

    pub fn code(&self) -> Code {
        match self {
            GatewayError::Invalid(_) => Code::InvalidArgument,
            GatewayError::Denied(d) => match d.rule {
                Rule::TenantUnknown | Rule::OptInRequired | Rule::NoEligibleProvider => {
                    Code::FailedPrecondition
                }
                Rule::DataTypeNotAllowed | Rule::SourceCodeRequiresGithub => Code::PermissionDenied,
                Rule::InstructionBudgetExceeded => Code::ResourceExhausted,
            },
            GatewayError::Settings(_) | GatewayError::Audit(_) => Code::Unavailable,
            GatewayError::Provider(p) | GatewayError::Routed { error: p, .. }
                if p.is_rate_limited() =>
            {
                Code::ResourceExhausted
            }
            GatewayError::Provider(_) | GatewayError::Routed { .. } => Code::Unavailable,
            GatewayError::Minimize(_) | GatewayError::TenantRules { .. } => {
                Code::FailedPrecondition
            }
            GatewayError::RateLimited { .. } => Code::ResourceExhausted,
            GatewayError::Cancelled => Code::Cancelled,
            GatewayError::ReaderStalled { .. } => Code::DeadlineExceeded,
            GatewayError::Interrupted => Code::Unavailable,
        }
    }
}

impl GatewayError {
    /// A routing failure, naming every provider attempt in order: `anthropic (http_503,
    /// http_503), openai (timeout)`. Without attempts (a tenant limit refused it before
    /// any), just the error.
    pub fn routed(error: ProviderError, attempts: &[warden_proto::common::v1::Attempt]) -> Self {
        if attempts.is_empty() {
            return GatewayError::Provider(error);
        }
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for a in attempts {
            match groups.last_mut() {
                Some((p, outcomes)) if *p == a.provider => outcomes.push(&a.outcome),
                _ => groups.push((&a.provider, vec![&a.outcome])),
            }
        }
        let tried = groups
            .iter()
            .map(|(p, o)| format!("{p} ({})", o.join(", ")))
            .collect::<Vec<_>>()
            .join(", ");
        GatewayError::Routed { error, tried }
    }

    /// How long the caller should wait before retrying, when somebody said so: a
    /// provider's `Retry-After`, a tenant limit's refill time, an open breaker's rest.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            GatewayError::Provider(p) | GatewayError::Routed { error: p, .. } => p.retry_after(),
            _ => None,
        }
    }
}

impl From<GatewayError> for Status {
    fn from(err: GatewayError) -> Self {
        let mut details = ErrorDetails::with_error_info(err.reason(), "warden", HashMap::new());
        if err.code() == Code::ResourceExhausted
            && let Some(wait) = err.retry_after()
        {
            details.set_retry_info(Some(wait));
        }
        Status::with_error_details(err.code(), err.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_names_its_reason() {
        let denied = warden_policy::decide(
            None,
            &warden_policy::Ask {
                tenant_id: "acme".into(),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        let s: Status = GatewayError::from(denied).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            s.message(),
            "AI features are not enabled for tenant acme (tenant unknown)"
        );
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some("TENANT_UNKNOWN".to_owned())
        );
        let s: Status = GatewayError::routed(
            ProviderError::Status {
                provider: "anthropic".into(),
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(7)),
                message: "rate_limit_error".into(),
            },
            &[warden_proto::common::v1::Attempt {
                provider: "anthropic".into(),
                outcome: "http_429".into(),
                ..Default::default()
            }],
        )
        .into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(std::time::Duration::from_secs(7))
        );
        assert!(
            s.message()
                .ends_with("providers tried: anthropic (http_429)"),
            "{}",
            s.message()
        );
        let s: Status = GatewayError::Audit(AuditUnavailable).into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some("AUDIT_FAIL_CLOSED".to_owned())
        );
        let s: Status = GatewayError::ReaderStalled { idle_ms: 800 }.into();
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some("READER_STALLED".to_owned())
        );
    }
}
