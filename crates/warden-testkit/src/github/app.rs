//! GitHub App authentication as the mock does it: throwaway App keys, the checks GitHub
//! makes on an App JWT (RS256 signature with the App's public key, `iss`, `iat`, `exp` at
//! most ten minutes ahead), and which credential a request carried.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;

use super::{Auth, State};
use crate::{KitError, Recorded};

/// An RSA key pair standing in for a GitHub App's private key (PKCS#1 PEM, as GitHub
/// hands it out) and the public key GitHub keeps.
#[derive(Clone)]
pub struct TestAppKey {
    pub private_key_pem: String,
    pub public_key_pem: String,
}

impl std::fmt::Debug for TestAppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAppKey").finish_non_exhaustive()
    }
}

impl TestAppKey {
    /// A fresh 2048-bit key (slow in debug builds: prefer [`app_key`]).
    pub fn generate() -> Result<TestAppKey, KitError> {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| KitError::Key(e.to_string()))?;
        let private_key_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| KitError::Key(e.to_string()))?
            .to_string();
        let public_key_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KitError::Key(e.to_string()))?;
        Ok(TestAppKey {
            private_key_pem,
            public_key_pem,
        })
    }
}

fn cached(cell: &'static OnceLock<Result<TestAppKey, String>>) -> Result<TestAppKey, KitError> {
    cell.get_or_init(|| TestAppKey::generate().map_err(|e| e.to_string()))
        .clone()
        .map_err(KitError::Key)
}

/// The App key every test in this process shares (generated once).
pub fn app_key() -> Result<TestAppKey, KitError> {
    static KEY: OnceLock<Result<TestAppKey, String>> = OnceLock::new();
    cached(&KEY)
}

/// A second key, for JWTs signed by the wrong App.
pub fn other_app_key() -> Result<TestAppKey, KitError> {
    static KEY: OnceLock<Result<TestAppKey, String>> = OnceLock::new();
    cached(&KEY)
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Decides which credential `req` carried. Tokens are accepted as `Bearer` or `token`;
/// basic auth's password must be an accepted token; on the App endpoints a JWT is checked.
pub(super) fn authenticate(s: &State, req: &Recorded, path: &str, now: SystemTime) -> Auth {
    let Some(header) = req.header("authorization") else {
        return Auth::None;
    };
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => {
            if path.starts_with("/app/") || path == "/app" {
                return jwt_app(s, value, now).map_or(Auth::Refused, Auth::AppJwt);
            }
            if s.write_tokens.contains(value) {
                return Auth::WriteToken;
            }
            if s.tokens.contains(value) {
                return Auth::Token;
            }
            match s.minted.get(value) {
                Some(m) if m.expires > now => Auth::Installation(m.installation),
                _ => Auth::Refused,
            }
        }
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((_, password)) if s.tokens.contains(password) => Auth::Basic,
                _ => Auth::Refused,
            }
        }
        _ => Auth::Refused,
    }
}

/// The App id of a valid App JWT, as GitHub checks it.
fn jwt_app(s: &State, jwt: &str, now: SystemTime) -> Option<u64> {
    use jsonwebtoken::{Algorithm, Validation};
    let unverified = jsonwebtoken::decode_header(jwt).ok()?;
    if unverified.alg != Algorithm::RS256 {
        return None;
    }
    // `iss` first (unverified) to pick the App's key, then everything verified with it.
    let payload = jwt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    )
    .ok()?;
    let app_id = match claims.get("iss")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let app = s.apps.get(&app_id)?;
    let mut validation = Validation::new(Algorithm::RS256);
    // `iss` may be a number or a string (GitHub takes both); it was checked above.
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_aud = false;
    validation.leeway = 0;
    let verified = jsonwebtoken::decode::<Value>(jwt, &app.decoding, &validation).ok()?;
    let iat = verified.claims.get("iat")?.as_u64()?;
    let exp = verified.claims.get("exp")?.as_u64()?;
    let now = epoch(now);
    // GitHub: issued in the past (clock drift allowed), expiring at most ten minutes ahead.
    (iat <= now + 60 && exp > now && exp <= now + 600 && exp > iat).then_some(app_id)
}

/// `POST /app/installations/{id}/access_tokens` for a request authenticated as `app_id`.
pub(super) fn mint(
    s: &mut State,
    app_id: u64,
    installation: u64,
    now: SystemTime,
) -> Option<(String, u64)> {
    if !s.apps.get(&app_id)?.installations.contains(&installation) {
        return None;
    }
    let n = s.minted.len() + 1;
    let token = format!("ghs_mockinstallation{installation}x{n:04}");
    let expires = now + s.token_lifetime;
    s.minted.insert(
        token.clone(),
        super::Minted {
            installation,
            expires,
        },
    );
    Some((token, epoch(expires)))
}
