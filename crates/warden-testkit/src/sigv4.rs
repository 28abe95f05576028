//! An independent AWS SigV4 verifier for the Bedrock and STS mocks.
//!
//! Recomputes the canonical request, the string to sign and the signing key from the
//! credentials the mock expects, and compares signatures in constant time. Written from
//! the SigV4 spec (not with `aws-sigv4`, which is what signs the requests under test), so
//! a pass means the SDK really signed with the key we think it did.
//!
//! Non-S3 services canonicalise the *already-encoded* path encoded once more
//! (`%3A` → `%253A`), which is what Bedrock model ids with `:` exercise.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// A key pair the mock accepts, with the session token temporary credentials must present.
#[derive(Clone)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKey {
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        AwsKey {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.map(str::to_owned),
        }
    }
}

/// Why a signature was refused (the mock answers 403 with this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("missing or malformed Authorization header")]
    Malformed,
    #[error("The security token included in the request is invalid (unknown access key)")]
    UnknownKey,
    #[error("credential scope names service {0}")]
    WrongService(String),
    #[error("session token missing or wrong")]
    Token,
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
}

struct Auth {
    akid: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_auth(v: &str) -> Option<Auth> {
    let rest = v.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let (k, val) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => sig = Some(val),
            _ => {}
        }
    }
    let mut c = cred?.split('/');
    let (akid, date, region, service, term) =
        (c.next()?, c.next()?, c.next()?, c.next()?, c.next()?);
    if term != "aws4_request" {
        return None;
    }
    Some(Auth {
        akid: akid.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: sig?.to_owned(),
    })
}

const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                utf8_percent_encode(&dec(k), QUERY).to_string(),
                utf8_percent_encode(&dec(v), QUERY).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Verifies a request. `path_and_query` is as sent; `headers` are (lowercase name, value).
/// Returns the access key id that signed it.
pub fn verify(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    expected_service: &str,
    keys: &[AwsKey],
) -> Result<String, SigError> {
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    let auth = parse_auth(header("authorization").ok_or(SigError::Malformed)?)
        .ok_or(SigError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| k.access_key_id == auth.akid)
        .ok_or(SigError::UnknownKey)?;
    if auth.service != expected_service {
        return Err(SigError::WrongService(auth.service));
    }
    if let Some(token) = &key.session_token
        && header("x-amz-security-token") != Some(token.as_str())
    {
        return Err(SigError::Token);
    }
    let amz_date = header("x-amz-date").ok_or(SigError::Malformed)?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigError::Malformed);
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let canonical_uri = utf8_percent_encode(path, PATH).to_string();
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch);
        }
        let joined = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{joined}\n"));
    }
    let payload_hash = match header("x-amz-content-sha256") {
        Some(h) => h.to_owned(),
        None => hex::encode(Sha256::digest(body)),
    };
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        canonical_query(query),
        auth.signed_headers.join(";")
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        auth.date.as_bytes(),
    );
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    let (a, b) = (expected.as_bytes(), auth.signature.as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(key.access_key_id.clone())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AWS SigV4 test-suite case "get-vanilla" (service "service", region us-east-1).
    #[test]
    fn aws_test_suite_get_vanilla() {
        let key = AwsKey::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let headers = vec![
            ("host".to_owned(), "example.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "authorization".to_owned(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".to_owned(),
            ),
        ];
        assert_eq!(
            verify(
                "GET",
                "/",
                &headers,
                b"",
                "service",
                std::slice::from_ref(&key)
            ),
            Ok("AKIDEXAMPLE".into())
        );
        let mut tampered = headers.clone();
        tampered[1].1 = "20150830T123601Z".into();
        assert_eq!(
            verify(
                "GET",
                "/",
                &tampered,
                b"",
                "service",
                std::slice::from_ref(&key)
            ),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify("GET", "/", &headers, b"", "bedrock", &[key]),
            Err(SigError::WrongService("service".into()))
        );
    }
}
