//! Shared HTTP plumbing for the adapters: https-only endpoints, the rustls client,
//! timeouts, `Retry-After` parsing and transport-error mapping.
//!
//! Owns the rule that a provider endpoint is `https://` unless the platform config says
//! `allow_plain_http = true` (tests, local models). Knows nothing of any provider's JSON.

use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};

use crate::ProviderError;

/// Why an adapter could not be built. Names the provider and the problem, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "provider {provider}: endpoint {url} is plain http; use https:// or set allow_plain_http = true (tests and local models only)"
    )]
    PlainHttp { provider: String, url: String },
    #[error("provider {provider}: endpoint {url} is not an http(s) URL")]
    BadUrl { provider: String, url: String },
    #[error("provider {provider}: {message}")]
    Tls { provider: String, message: String },
    #[error("provider {provider}: {message}")]
    Config { provider: String, message: String },
}

/// Time limits for one provider call. `first_byte` bounds connect + request + response
/// headers (and, for streams, the first event); `idle` bounds the gap between stream
/// chunks; `total` bounds a whole unary call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(300),
        }
    }
}

/// Transport settings shared by every adapter.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    pub timeouts: Timeouts,
    /// Permit `http://` endpoints. Only for tests and local models; the config says so explicitly.
    pub allow_plain_http: bool,
    /// Extra trust anchors (PEM), e.g. a test CA or a corporate proxy CA. Added to the webpki roots.
    pub extra_root_ca_pem: Vec<Vec<u8>>,
}

/// Checks that `url` is https (or plain http when allowed) and returns it without a trailing slash.
pub(crate) fn checked_base_url(
    provider: &str,
    url: &str,
    allow_plain_http: bool,
) -> Result<String, BuildError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") {
        if !allow_plain_http {
            return Err(BuildError::PlainHttp {
                provider: provider.into(),
                url: url.into(),
            });
        }
    } else if !lower.starts_with("https://") || url.len() <= "https://".len() {
        return Err(BuildError::BadUrl {
            provider: provider.into(),
            url: url.into(),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The URL a request goes to, parsed once when the adapter is built (not on every call:
/// parsing checks the host through IDNA), so a URL that cannot be parsed is refused with
/// the configuration, not at the first call.
pub(crate) fn endpoint(
    provider: &str,
    base_url: &str,
    path: &str,
) -> Result<reqwest::Url, BuildError> {
    let url = format!("{base_url}{path}");
    reqwest::Url::parse(&url).map_err(|_| BuildError::BadUrl {
        provider: provider.into(),
        url,
    })
}

/// The one reqwest client constructor: rustls only, https only unless allowed, timeouts set.
pub(crate) fn client(
    provider: &str,
    settings: &HttpSettings,
) -> Result<reqwest::Client, BuildError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(!settings.allow_plain_http)
        .connect_timeout(settings.timeouts.connect)
        .read_timeout(settings.timeouts.idle.max(settings.timeouts.first_byte))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    for pem in &settings.extra_root_ca_pem {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|_| BuildError::Tls {
            provider: provider.into(),
            message: "extra root CA is not valid PEM".into(),
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| BuildError::Tls {
        provider: provider.into(),
        message: e.without_url().to_string(),
    })
}

/// `Retry-After` (seconds or HTTP date) and the `retry-after-ms` extension Anthropic's SDKs honour.
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(v, now)
}

pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_millis((secs * 1000.0) as u64));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps a reqwest transport error. The URL is stripped; only the error's kind is kept.
pub(crate) fn transport_error(provider: &str, e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        return ProviderError::Timeout {
            provider: provider.into(),
        };
    }
    let message = if e.is_connect() {
        "connection failed".to_owned()
    } else if e.is_body() || e.is_decode() {
        "connection closed while reading the response".to_owned()
    } else if e.is_request() {
        "connection closed before a response".to_owned()
    } else {
        "transport error".to_owned()
    };
    ProviderError::Connect {
        provider: provider.into(),
        message,
    }
}

/// A provider's error answer, as read for its own error mapping.
pub(crate) struct Refusal<'a> {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    /// The body, read within the idle timeout (empty if it did not come).
    pub(crate) body: &'a [u8],
    pub(crate) request_id: Option<&'a str>,
}

/// Sends `request` and waits for the answer's head within the first-byte timeout. A
/// success is handed back to be read; any other status is read (body within the idle
/// timeout, `Retry-After`, the request id in `request_id_header`) and turned into the
/// provider's own error by `refused`.
pub(crate) async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
    timeouts: &Timeouts,
    request_id_header: &str,
    refused: impl FnOnce(Refusal<'_>) -> ProviderError,
) -> Result<reqwest::Response, ProviderError> {
    let resp = tokio::time::timeout(timeouts.first_byte, request.send())
        .await
        .map_err(|_| ProviderError::Timeout {
            provider: provider.into(),
        })?
        .map_err(|e| transport_error(provider, e))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers(), SystemTime::now());
    let request_id = resp
        .headers()
        .get(request_id_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = tokio::time::timeout(timeouts.idle, resp.bytes())
        .await
        .ok()
        .and_then(Result::ok);
    Err(refused(Refusal {
        status,
        retry_after,
        body: body.as_deref().unwrap_or_default(),
        request_id: request_id.as_deref(),
    }))
}

/// A unary call: the answer `send` starts, read whole and parsed by `parse`, all within
/// `total`.
pub(crate) async fn unary<T>(
    provider: &str,
    total: Duration,
    send: impl Future<Output = Result<reqwest::Response, ProviderError>>,
    parse: impl FnOnce(&[u8]) -> Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    let work = async {
        let body = send
            .await?
            .bytes()
            .await
            .map_err(|e| transport_error(provider, e))?;
        parse(&body)
    };
    tokio::time::timeout(total, work).await.unwrap_or_else(|_| {
        Err(ProviderError::Timeout {
            provider: provider.into(),
        })
    })
}

/// Takes a byte stream and enforces `idle` between chunks: a stall becomes `Timeout`.
pub(crate) fn idle_guarded<S>(
    provider: String,
    idle: Duration,
    body: S,
) -> impl Stream<Item = Result<bytes::Bytes, ProviderError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    futures::stream::unfold(Some(body), move |state| {
        let provider = provider.clone();
        async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => Some((Err(ProviderError::Timeout { provider }), None)),
                Ok(None) => None,
                Ok(Some(Ok(b))) => Some((Ok(b), Some(body))),
                Ok(Some(Err(e))) => Some((Err(transport_error(&provider, e)), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_required_unless_allowed() {
        assert!(matches!(
            checked_base_url("a", "http://x", false),
            Err(BuildError::PlainHttp { .. })
        ));
        assert_eq!(
            checked_base_url("a", "http://x/", true).unwrap(),
            "http://x"
        );
        assert_eq!(
            checked_base_url("a", "https://api.example.com/v1/", false).unwrap(),
            "https://api.example.com/v1"
        );
        assert!(matches!(
            checked_base_url("a", "ftp://x", true),
            Err(BuildError::BadUrl { .. })
        ));
        assert!(matches!(
            checked_base_url("a", "https://", true),
            Err(BuildError::BadUrl { .. })
        ));
        assert!(matches!(
            checked_base_url("a", "HTTP://x", false),
            Err(BuildError::PlainHttp { .. })
        ));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
    }
}
