//! The mock refuses what GitHub refuses: JWTs GitHub would not accept, unknown tokens,
//! requests without a User-Agent or with an unsupported API version; and records each.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::*;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn req(method: &str, path: &str, auth: Option<&str>) -> Recorded {
    let mut headers = vec![("user-agent".to_owned(), "test".to_owned())];
    if let Some(a) = auth {
        headers.push(("authorization".to_owned(), a.to_owned()));
    }
    Recorded {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Bytes::new(),
        signed_by: None,
    }
}

fn status(r: &Reply) -> u16 {
    match r {
        Reply::Whole { status, .. } => *status,
        Reply::Stream { .. } => 200,
        // The GitHub mock never defers; 0 fails any status assertion.
        Reply::Deferred(_) => 0,
    }
}

fn jwt(key: &TestAppKey, alg: jsonwebtoken::Algorithm, claims: serde_json::Value) -> String {
    let k = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &k).unwrap()
}

#[test]
fn only_jwts_github_would_accept_mint_tokens() {
    let key = app_key().unwrap();
    let mock = GitHubMock::new()
        .with_app(7, 42, &key.public_key_pem)
        .unwrap();
    let path = "/app/installations/42/access_tokens";
    let t = now();
    let exchange = |token: String| {
        status(&mock.handle(&mut req("POST", path, Some(&format!("Bearer {token}")))))
    };
    use jsonwebtoken::Algorithm::{RS256, RS512};
    assert_eq!(
        exchange(jwt(
            &key,
            RS256,
            json!({"iat": t - 60, "exp": t + 540, "iss": "7"})
        )),
        201
    );
    assert_eq!(
        exchange(jwt(
            &key,
            RS256,
            json!({"iat": t - 60, "exp": t + 540, "iss": 7})
        )),
        201
    );
    assert_eq!(mock.minted_tokens(), 2);
    for (why, token) in [
        (
            "an hour ahead",
            jwt(&key, RS256, json!({"iat": t, "exp": t + 3600, "iss": "7"})),
        ),
        (
            "expired",
            jwt(
                &key,
                RS256,
                json!({"iat": t - 700, "exp": t - 100, "iss": "7"}),
            ),
        ),
        (
            "another app",
            jwt(&key, RS256, json!({"iat": t, "exp": t + 60, "iss": "8"})),
        ),
        (
            "no iat",
            jwt(&key, RS256, json!({"exp": t + 60, "iss": "7"})),
        ),
        (
            "not RS256",
            jwt(&key, RS512, json!({"iat": t, "exp": t + 60, "iss": "7"})),
        ),
        (
            "other key",
            jwt(
                &other_app_key().unwrap(),
                RS256,
                json!({"iat": t, "exp": t + 60, "iss": "7"}),
            ),
        ),
        ("a token", "ghp_x".to_owned()),
    ] {
        assert_eq!(exchange(token), 401, "{why}");
    }
    assert_eq!(mock.minted_tokens(), 2);
    let other = "/app/installations/43/access_tokens";
    let good = jwt(
        &key,
        RS256,
        json!({"iat": t - 60, "exp": t + 540, "iss": "7"}),
    );
    assert_eq!(
        status(&mock.handle(&mut req("POST", other, Some(&format!("Bearer {good}"))))),
        404
    );
}

#[test]
fn every_request_is_authenticated_and_recorded() {
    let mock = GitHubMock::new()
        .with_token("ghp_good")
        .with_file("acme/api", "main", "a.txt", "hi");
    let path = "/repos/acme/api/contents/a.txt?ref=main";
    assert_eq!(
        status(&mock.handle(&mut req("GET", path, Some("Bearer ghp_good")))),
        200
    );
    assert_eq!(
        status(&mock.handle(&mut req("GET", path, Some("token ghp_good")))),
        200
    );
    assert_eq!(
        status(&mock.handle(&mut req("GET", path, Some("Bearer ghp_bad")))),
        401
    );
    assert_eq!(status(&mock.handle(&mut req("GET", path, None))), 401);
    let mut no_agent = req("GET", path, Some("Bearer ghp_good"));
    no_agent.headers.retain(|(k, _)| k != "user-agent");
    assert_eq!(status(&mock.handle(&mut no_agent)), 403);
    let mut old = req("GET", path, Some("Bearer ghp_good"));
    old.headers
        .push(("x-github-api-version".into(), "1999-01-01".into()));
    assert_eq!(status(&mock.handle(&mut old)), 400);
    let auths: Vec<Auth> = mock.requests().into_iter().map(|r| r.auth).collect();
    assert_eq!(
        auths,
        [
            Auth::Token,
            Auth::Token,
            Auth::Refused,
            Auth::None,
            Auth::Token,
            Auth::Token
        ]
    );
    let r = &mock.requests()[0];
    assert_eq!(
        (r.path.as_str(), r.param("ref")),
        ("/repos/acme/api/contents/a.txt", Some("main"))
    );
}
