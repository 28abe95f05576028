//! A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics) queried
//! with PromQL, for tenants whose metrics already live there.
//!
//! The client speaks only to the tenant's URL (https, or http to loopback; redirects to
//! elsewhere are not followed; no proxy from the environment), trusts only the tenant's CA
//! when it names one, and bounds every answer: the body is read up to a byte cap, range
//! queries choose their step so no series has more than the points asked for, and the
//! number of series is capped with a `truncated` flag. Credentials live in [`SecretString`]s
//! sent as sensitive headers and appear in no error.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, Url, redirect};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use warden_proto::common::v1::source_credentials::Credentials;
use warden_proto::common::v1::{PrometheusSource, SourceCredentials};

mod error;
mod response;
mod settings;

pub use error::SourceError;
pub use response::{MetricNames, QueryResult, ResultKind, Series};
pub use settings::check_source;

use response::{Data, Envelope};

/// The most series one answer keeps unless [`PrometheusClient::with_max_series`] says otherwise.
pub const DEFAULT_MAX_SERIES: usize = 200;
/// The largest body read unless [`PrometheusClient::with_max_body_bytes`] says otherwise.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Prometheus refuses range queries of more points per series than this.
pub const MAX_POINTS_PER_SERIES: usize = 11_000;
const MAX_QUERY_BYTES: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 5;

/// A client for one tenant's Prometheus source, built for one tool call.
#[derive(Debug)]
pub struct PrometheusClient {
    http: reqwest::Client,
    /// The configured URL; API paths are appended to its path.
    base: Url,
    /// `host:port`, as errors name the server.
    host: String,
    auth: Auth,
    timeout: Duration,
    max_series: usize,
    max_body_bytes: usize,
}

#[derive(Debug)]
enum Auth {
    None,
    Bearer(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
}

// === impl PrometheusClient ===

impl PrometheusClient {
    /// A client for `source`, authenticating with `credentials` (those stored under
    /// `source.credentials_id`), each request bounded by `timeout`.
    pub fn new(
        source: &PrometheusSource,
        credentials: Option<&SourceCredentials>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        if source.url.is_empty() {
            return Err(SourceError::Config(
                "prometheus.url is empty (the tenant uses the embedded store)".into(),
            ));
        }
        check_source(source).map_err(SourceError::Config)?;
        let base = settings::parse_url(&source.url).map_err(SourceError::Config)?;
        let roots = settings::parse_ca(&source.ca_pem).map_err(SourceError::Config)?;
        let auth = match credentials.and_then(|c| c.credentials.as_ref()) {
            None if !source.credentials_id.is_empty() => {
                return Err(SourceError::Config(
                    "prometheus.credentials_id is set but no credentials were given for it".into(),
                ));
            }
            None => Auth::None,
            Some(Credentials::BearerToken(t)) => Auth::Bearer(SecretString::from(t.as_str())),
            Some(Credentials::Basic(b)) => Auth::Basic {
                username: b.username.clone(),
                password: SecretString::from(b.password.as_str()),
            },
            Some(Credentials::GithubApp(_)) => {
                return Err(SourceError::Config(
                    "the credentials are a GitHub App key; a Prometheus source takes a bearer_token or basic auth".into(),
                ));
            }
        };
        if timeout.is_zero() {
            return Err(SourceError::Arguments(
                "the timeout must be positive".into(),
            ));
        }
        let host = match base.port_or_known_default() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        let origin = base.origin();
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS || attempt.url().origin() != origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(policy)
            .no_proxy()
            .https_only(base.scheme() == "https")
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")));
        if !roots.is_empty() {
            // Only the tenant's CA: a certificate from any public CA is refused.
            builder = builder.tls_built_in_root_certs(false);
            for der in &roots {
                let cert = reqwest::Certificate::from_der(der).map_err(|_| {
                    SourceError::Config("prometheus.ca_pem holds an unusable certificate".into())
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| {
            SourceError::Config(format!("cannot build an HTTP client: {}", root_cause(&e)))
        })?;
        Ok(PrometheusClient {
            http,
            base,
            host,
            auth,
            timeout,
            max_series: DEFAULT_MAX_SERIES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// Keeps at most `n` (at least 1) series of any answer.
    #[must_use]
    pub fn with_max_series(mut self, n: usize) -> Self {
        self.max_series = n.max(1);
        self
    }

    /// Refuses answers larger than `n` bytes.
    #[must_use]
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Evaluates `promql` over `[start_ms, end_ms]` (milliseconds since the epoch) at a
    /// step chosen so each series has at most `max_points` points (the step is at least 1s).
    pub async fn query_range(
        &self,
        promql: &str,
        start_ms: i64,
        end_ms: i64,
        max_points: usize,
    ) -> Result<QueryResult, SourceError> {
        check_promql(promql)?;
        let step_ms = step_ms(start_ms, end_ms, max_points)?;
        let req = self.http.post(self.endpoint("api/v1/query_range")).form(&[
            ("query", promql),
            ("start", &seconds(start_ms)),
            ("end", &seconds(end_ms)),
            ("step", &seconds(step_ms as i64)),
            ("timeout", &seconds(self.timeout.as_millis() as i64)),
        ]);
        let (data, warnings) = self.call::<Data>(req).await?;
        let mut result = response::into_result(data, self.max_series, max_points)
            .map_err(|reason| self.bad_response(reason))?;
        result.step_ms = Some(step_ms);
        result.warnings = warnings;
        Ok(result)
    }

    /// Evaluates `promql` at `at_ms` (milliseconds since the epoch).
    pub async fn query_instant(
        &self,
        promql: &str,
        at_ms: i64,
    ) -> Result<QueryResult, SourceError> {
        check_promql(promql)?;
        let req = self.http.post(self.endpoint("api/v1/query")).form(&[
            ("query", promql),
            ("time", &seconds(at_ms)),
            ("timeout", &seconds(self.timeout.as_millis() as i64)),
        ]);
        let (data, warnings) = self.call::<Data>(req).await?;
        let mut result = response::into_result(data, self.max_series, 1)
            .map_err(|reason| self.bad_response(reason))?;
        result.warnings = warnings;
        Ok(result)
    }

    /// The names of metrics with data in `[start_ms, end_ms]`, sorted, at most `limit`.
    pub async fn metric_names(
        &self,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<MetricNames, SourceError> {
        if end_ms < start_ms {
            return Err(SourceError::Arguments("end is before start".into()));
        }
        if limit == 0 {
            return Err(SourceError::Arguments("limit must be at least 1".into()));
        }
        let req = self
            .http
            .get(self.endpoint("api/v1/label/__name__/values"))
            .query(&[("start", seconds(start_ms)), ("end", seconds(end_ms))]);
        let (mut names, warnings) = self.call::<Vec<String>>(req).await?;
        names.sort_unstable();
        let truncated = names.len() > limit;
        names.truncate(limit);
        Ok(MetricNames {
            names,
            truncated,
            warnings,
        })
    }

    /// `base` + `/` + `path`, keeping a base path (`https://mimir.example/prometheus`).
    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}/{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    /// Sends `req` with the credentials and reads a bounded Prometheus API answer.
    async fn call<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<(T, Vec<String>), SourceError> {
        let req = match &self.auth {
            Auth::None => req,
            // reqwest marks both headers sensitive (left out of its Debug output).
            Auth::Bearer(t) => req.bearer_auth(t.expose_secret()),
            Auth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
        };
        let mut resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(SourceError::AuthenticationRefused {
                host: self.host.clone(),
                status: status.as_u16(),
            });
        }
        if status.is_redirection() {
            return Err(SourceError::Redirected {
                host: self.host.clone(),
            });
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(self.too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        match response::envelope::<T>(&body) {
            Ok(Envelope::Success { data, warnings }) => Ok((data, warnings)),
            Ok(Envelope::Error { error_type, error }) => {
                Err(response::api_error(&error_type, error))
            }
            Err(_) if !status.is_success() => Err(SourceError::Http {
                host: self.host.clone(),
                status: status.as_u16(),
                hint: if status == StatusCode::NOT_FOUND {
                    " (is the URL the API's base, e.g. https://prometheus.example:9090?)"
                } else {
                    ""
                },
            }),
            Err(reason) => Err(self.bad_response(reason)),
        }
    }

    fn transport(&self, e: &reqwest::Error) -> SourceError {
        let host = self.host.clone();
        if e.is_timeout() {
            SourceError::Timeout {
                host,
                after: self.timeout,
            }
        } else if let Some(reason) = tls_failure(e) {
            SourceError::Tls { host, reason }
        } else if e.is_redirect() {
            SourceError::Redirected { host }
        } else {
            SourceError::Unreachable {
                host,
                reason: root_cause(e),
            }
        }
    }

    fn too_large(&self) -> SourceError {
        SourceError::TooLarge {
            host: self.host.clone(),
            limit: self.max_body_bytes,
        }
    }

    fn bad_response(&self, reason: String) -> SourceError {
        SourceError::BadResponse {
            host: self.host.clone(),
            reason,
        }
    }
}

/// The step (ms, whole seconds, at least 1s) at which `[start_ms, end_ms]` has at most
/// `max_points` points: a range query returns `floor(range / step) + 1` of them.
pub fn step_ms(start_ms: i64, end_ms: i64, max_points: usize) -> Result<u64, SourceError> {
    if end_ms < start_ms {
        return Err(SourceError::Arguments("end is before start".into()));
    }
    if max_points == 0 {
        return Err(SourceError::Arguments(
            "max_points must be at least 1".into(),
        ));
    }
    let max_points = max_points.min(MAX_POINTS_PER_SERIES) as u64;
    let range = end_ms.abs_diff(start_ms);
    let step = if max_points == 1 {
        range + 1
    } else {
        range.div_ceil(max_points - 1)
    };
    Ok(step.div_ceil(1000).max(1) * 1000)
}

fn check_promql(promql: &str) -> Result<(), SourceError> {
    if promql.trim().is_empty() {
        return Err(SourceError::Arguments("the query is empty".into()));
    }
    if promql.len() > MAX_QUERY_BYTES {
        return Err(SourceError::Arguments(format!(
            "the query is {} bytes; the limit is {MAX_QUERY_BYTES}",
            promql.len()
        )));
    }
    Ok(())
}

/// Milliseconds as Prometheus' decimal seconds (`1700000000.123`).
fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// The rustls error under `e`, if the failure was the TLS handshake. rustls errors come
/// wrapped in (nested) `io::Error`s, whose `source()` skips the error they wrap.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let mut layer = err;
        loop {
            if let Some(t) = layer.downcast_ref::<rustls::Error>() {
                return Some(t.to_string());
            }
            match layer
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => layer = inner,
                None => break,
            }
        }
        next = err.source();
    }
    None
}

/// The innermost cause (e.g. "Connection refused (os error 111)"), never the URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut text = None;
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = Some(c.to_string());
        cause = c.source();
    }
    text.unwrap_or_else(|| "the request failed".into())
}

#[cfg(test)]
mod tests;
