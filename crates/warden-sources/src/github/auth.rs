//! The `Authorization` header for GitHub: a token as `Bearer`, basic auth (a token as the
//! password), or a GitHub App's installation token, minted by signing an RS256 JWT with
//! the App's key and exchanging it at `POST /app/installations/{id}/access_tokens`.
//!
//! Installation tokens are kept until shortly before GitHub's `expires_at`, behind one
//! lock so concurrent calls mint once. Every header value is marked sensitive, and no
//! secret (token, JWT, key) is ever put into an error, a log line or a `Debug` output.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use warden_proto::common::v1::SourceCredentials;
use warden_proto::common::v1::source_credentials::Credentials;

use super::SourceError;

/// A minted token is renewed this long before GitHub says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// App JWTs are backdated for clock drift, as GitHub recommends.
const JWT_BACKDATE: u64 = 60;
/// GitHub accepts App JWTs that expire at most ten minutes ahead; stay under that.
const JWT_LIFETIME: u64 = 9 * 60;

pub(super) enum Auth {
    Token(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
    App(AppAuth),
}

pub(super) struct AppAuth {
    pub(super) app_id: u64,
    pub(super) installation_id: u64,
    key: jsonwebtoken::EncodingKey,
    minted: tokio::sync::Mutex<Option<Minted>>,
}

pub(super) struct Minted {
    token: SecretString,
    renew_at: SystemTime,
}

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

#[derive(Deserialize)]
pub(super) struct InstallationToken {
    token: String,
    expires_at: Option<String>,
}

impl Auth {
    pub(super) fn from_credentials(c: &SourceCredentials) -> Result<Auth, SourceError> {
        let config = |m: &str| SourceError::Config(m.to_owned());
        match &c.credentials {
            None => Err(config(
                "the stored credentials are empty; upload a token or GitHub App credentials",
            )),
            Some(Credentials::BearerToken(t)) if t.trim().is_empty() => {
                Err(config("the stored token is empty"))
            }
            Some(Credentials::BearerToken(t)) => {
                Ok(Auth::Token(SecretString::from(t.trim().to_owned())))
            }
            Some(Credentials::Basic(b)) if b.username.is_empty() || b.password.is_empty() => Err(
                config("basic credentials need a username and a token as the password"),
            ),
            Some(Credentials::Basic(b)) => Ok(Auth::Basic {
                username: b.username.clone(),
                password: SecretString::from(b.password.clone()),
            }),
            Some(Credentials::GithubApp(a)) => {
                if a.app_id == 0 || a.installation_id == 0 {
                    return Err(config("github_app needs app_id and installation_id"));
                }
                // The key's bytes never reach the error: jsonwebtoken's text is not kept.
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(a.private_key_pem.as_bytes())
                    .map_err(|_| {
                        config("github_app.private_key_pem is not an RSA private key in PEM")
                    })?;
                Ok(Auth::App(AppAuth {
                    app_id: a.app_id,
                    installation_id: a.installation_id,
                    key,
                    minted: tokio::sync::Mutex::new(None),
                }))
            }
        }
    }

    /// What a 401 most likely means for this kind of credential.
    pub(super) fn hint(&self) -> &'static str {
        match self {
            Auth::Token(_) => "the token is wrong, expired or revoked; upload a new one",
            Auth::Basic { .. } => {
                "the username or token is wrong, expired or revoked; upload new credentials"
            }
            Auth::App(_) => {
                "the installation token was refused; check that the App is still installed"
            }
        }
    }

    /// The static secrets, to scrub from anything GitHub says back.
    pub(super) fn secrets(&self) -> Vec<&str> {
        match self {
            Auth::Token(t) => vec![t.expose_secret()],
            Auth::Basic { password, .. } => vec![password.expose_secret()],
            Auth::App(_) => Vec::new(),
        }
    }
}

pub(super) fn sensitive(value: &str) -> Result<HeaderValue, SourceError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        SourceError::Config(
            "the stored credentials contain characters a header cannot carry".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// `Authorization` for a static credential; `None` for an App (see [`AppAuth`]).
pub(super) fn static_header(auth: &Auth) -> Result<Option<HeaderValue>, SourceError> {
    match auth {
        Auth::Token(t) => sensitive(&format!("Bearer {}", t.expose_secret())).map(Some),
        Auth::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose_secret());
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            sensitive(&format!("Basic {b64}")).map(Some)
        }
        Auth::App(_) => Ok(None),
    }
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AppAuth {
    /// A signed App JWT: `iss` the App id, `iat` a minute ago, `exp` nine minutes ahead.
    pub(super) fn jwt(&self, now: SystemTime) -> Result<SecretString, SourceError> {
        let now = epoch(now);
        let claims = Claims {
            iat: now.saturating_sub(JWT_BACKDATE),
            exp: now + JWT_LIFETIME,
            iss: self.app_id.to_string(),
        };
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(|_| SourceError::Config("the GitHub App key could not sign a JWT".into()))
    }

    /// The cached installation token, if it is not due for renewal. Holding the guard
    /// while minting makes concurrent callers wait for one exchange.
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<Minted>> {
        self.minted.lock().await
    }
}

/// The header from a cached token still good at `now`.
pub(super) fn cached_header(
    slot: &Option<Minted>,
    now: SystemTime,
) -> Result<Option<HeaderValue>, SourceError> {
    match slot {
        Some(m) if now < m.renew_at => {
            sensitive(&format!("Bearer {}", m.token.expose_secret())).map(Some)
        }
        _ => Ok(None),
    }
}

/// Keeps a fresh token (unless it expires too soon to be worth keeping) and returns its header.
pub(super) fn store(
    slot: &mut Option<Minted>,
    answer: InstallationToken,
    now: SystemTime,
) -> Result<HeaderValue, SourceError> {
    let header = sensitive(&format!("Bearer {}", answer.token))?;
    let expires = answer.expires_at.as_deref().and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    });
    *slot = expires
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .and_then(|at| at.checked_sub(RENEW_BEFORE))
        .filter(|renew_at| *renew_at > now)
        .map(|renew_at| Minted {
            token: SecretString::from(answer.token),
            renew_at,
        });
    Ok(header)
}
