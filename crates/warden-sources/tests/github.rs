//! The GitHub client against the GitHub mock (real HTTPS on loopback): every method's
//! happy path, the App flow, refusals that must make no request at all, GitHub's errors,
//! and that no error carries a credential.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::time::Duration;

use common::*;
use warden_proto::common::v1::ServiceRepository;
use warden_sources::github::{
    Contents, EntryKind, GitHubClient, Limits, SourceError, check_source,
};
use warden_testkit::Fault;
use warden_testkit::github::{Auth, GitHubMock, app_key, other_app_key, sha_for};

fn file(c: Contents) -> warden_sources::github::FileContent {
    match c {
        Contents::File(f) => f,
        Contents::Directory(d) => panic!("expected a file, got directory {}", d.path),
    }
}

#[tokio::test]
async fn reads_a_file_at_a_ref_with_githubs_headers() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let f = file(
        gh.read_file("acme/api", "src/main.rs", Some("v1"))
            .await
            .unwrap(),
    );
    assert_eq!(f.text, "fn main() {\n    serve();\n}\n");
    assert_eq!(
        (f.path.as_str(), f.git_ref.as_deref(), f.truncated),
        ("src/main.rs", Some("v1"), false)
    );
    assert_eq!(f.size, 27);
    assert_eq!(f.sha.len(), 40);

    let reqs = env.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", "/repos/acme/api/contents/src/main.rs")
    );
    assert_eq!(reqs[0].query, [("ref".to_owned(), "v1".to_owned())]);
    assert_eq!(reqs[0].auth, Auth::Token);
    let raw = &env.server.requests()[0];
    assert_eq!(raw.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(raw.header("x-github-api-version"), Some("2022-11-28"));
    assert!(
        raw.header("user-agent")
            .is_some_and(|u| u.starts_with("warden/"))
    );
    assert_eq!(
        raw.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn without_a_ref_reads_the_mappings_default_ref_else_the_default_branch() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    // Names are case-insensitive on GitHub; the mapping's spelling is what is sent.
    let f = file(
        gh.read_file("ACME/Api", "/src/main.rs", None)
            .await
            .unwrap(),
    );
    assert_eq!((f.text.as_str(), f.git_ref), (MAIN_RS, None));
    assert_eq!(env.mock.requests()[0].param("ref"), None);
    assert_eq!(
        env.mock.requests()[0].path,
        "/repos/acme/api/contents/src/main.rs"
    );

    let mut src = source(&env);
    src.repositories[0].default_ref = "prod".into();
    let gh = client_with(&env, &src, &token(TOKEN));
    let f = file(gh.read_file("acme/api", "src/main.rs", None).await.unwrap());
    assert_eq!(
        (f.text.as_str(), f.git_ref.as_deref()),
        ("// prod\n", Some("prod"))
    );
    assert_eq!(env.mock.requests()[1].param("ref"), Some("prod"));
}

#[tokio::test]
async fn path_segments_are_percent_encoded() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let f = file(gh.read_file("acme/api", "docs/a b.md", None).await.unwrap());
    assert_eq!(f.text, "spaces\n");
    assert_eq!(
        env.mock.requests()[0].path,
        "/repos/acme/api/contents/docs/a%20b.md"
    );
}

#[tokio::test]
async fn a_directory_is_listed() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let Contents::Directory(root) = gh.read_file("acme/api", "", None).await.unwrap() else {
        panic!("the root is a directory")
    };
    let names: Vec<(&str, EntryKind)> = root
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("README.md", EntryKind::File),
            ("assets", EntryKind::Directory),
            ("data", EntryKind::Directory),
            ("docs", EntryKind::Directory),
            ("src", EntryKind::Directory)
        ]
    );
    assert_eq!(env.mock.requests()[0].path, "/repos/acme/api/contents");
    let Contents::Directory(src) = gh.read_file("acme/api", "src", None).await.unwrap() else {
        panic!("src is a directory")
    };
    assert_eq!(src.path, "src");
    assert_eq!(
        src.entries
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
        ["src/main.rs", "src/net.rs"]
    );
}

#[tokio::test]
async fn a_large_file_is_truncated_and_says_so() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let f = file(
        gh.read_file("acme/api", "data/big.txt", None)
            .await
            .unwrap(),
    );
    assert!(f.truncated);
    assert_eq!(f.size, 340_000);
    assert_eq!(f.text.len(), Limits::default().max_file_bytes);
    let small = gh.with_limits(Limits {
        max_file_bytes: 10,
        ..Limits::default()
    });
    let f = file(
        small
            .read_file("acme/api", "src/main.rs", None)
            .await
            .unwrap(),
    );
    assert_eq!((f.text.as_str(), f.truncated), ("fn main() ", true));
}

#[tokio::test]
async fn binary_and_oversized_files_are_refused_clearly() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let e = gh
        .read_file("acme/api", "assets/logo.png", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "assets/logo.png is a binary file; only text files can be read"
    );
    let e = gh
        .read_file("acme/api", "data/huge.log", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "data/huge.log is 1048577 bytes, more than GitHub's contents API returns"
    );
}

#[tokio::test]
async fn a_response_over_the_cap_is_an_error_not_a_cut() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN)).with_limits(Limits {
        max_response_bytes: 1000,
        ..Limits::default()
    });
    let e = gh
        .read_file("acme/api", "data/big.txt", None)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SourceError::ResponseTooLarge {
            what: "acme/api:data/big.txt".into(),
            limit: 1000
        }
    );
}

#[tokio::test]
async fn search_is_scoped_to_the_mapped_repository_whatever_the_query_says() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let s = gh
        .search_code("acme/api", "timeout repo:evil/secrets OR org:evil", 10)
        .await
        .unwrap();
    assert_eq!(s.query, "timeout repo:acme/api");
    assert_eq!(
        s.removed_qualifiers,
        ["repo:evil/secrets", "OR", "org:evil"]
    );
    let paths: Vec<&str> = s.matches.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        paths,
        ["src/main.rs", "src/net.rs"],
        "nothing from evil/secrets"
    );
    assert_eq!(
        s.matches[0].fragments,
        [
            "    let timeout = connect_timeout();\n",
            "    serve(timeout);\n"
        ]
    );
    assert!(!s.truncated);

    let r = &env.mock.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/search/code")
    );
    assert_eq!(r.param("q"), Some("timeout repo:acme/api"));
    assert_eq!(r.param("per_page"), Some("10"));
    assert_eq!(
        env.server.requests()[0].header("accept"),
        Some("application/vnd.github.text-match+json")
    );

    let one = gh.search_code("acme/api", "timeout", 1).await.unwrap();
    assert_eq!(
        (one.matches.len(), one.total_count, one.truncated),
        (1, 2, true)
    );
}

#[tokio::test]
async fn a_commit_comes_with_its_patches() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let c = gh.commit("acme/api", &sha_for(2)[..12]).await.unwrap();
    assert_eq!(c.summary.sha, sha_for(2));
    assert_eq!(
        c.summary.message,
        "fix: connect timeout 5s -> 30s\n\nThe upstream is slow at peak."
    );
    assert_eq!(
        (c.summary.author.as_str(), c.summary.author_login.as_deref()),
        ("Ada Lovelace", Some("ada"))
    );
    assert_eq!(c.summary.date, "2026-03-03T12:00:00Z");
    assert_eq!(c.parents, [sha_for(1)]);
    assert_eq!(c.files.len(), 1);
    assert_eq!(c.files[0].filename, "src/net.rs");
    assert_eq!((c.files[0].additions, c.files[0].deletions), (1, 1));
    assert!(
        c.files[0]
            .patch
            .as_deref()
            .unwrap()
            .contains("+const TIMEOUT: u64 = 30;")
    );
    assert_eq!(
        env.mock.requests()[0].path,
        format!("/repos/acme/api/commits/{}", &sha_for(2)[..12])
    );

    let by_tag = gh.commit("acme/api", "v2").await.unwrap();
    assert_eq!(by_tag.summary.sha, sha_for(3));
}

#[tokio::test]
async fn compare_shows_what_changed_between_two_deployments() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let c = gh.compare("acme/api", "v1", "v2").await.unwrap();
    assert_eq!(
        (c.status.as_str(), c.ahead_by, c.total_commits),
        ("ahead", 2, 2)
    );
    assert_eq!(
        c.commits.iter().map(|c| c.sha.clone()).collect::<Vec<_>>(),
        [sha_for(2), sha_for(3)],
        "oldest first"
    );
    assert_eq!(
        c.files
            .iter()
            .map(|f| f.filename.as_str())
            .collect::<Vec<_>>(),
        ["src/net.rs", "src/main.rs"]
    );
    assert!(
        c.files[1]
            .patch
            .as_deref()
            .unwrap()
            .contains("+    serve(timeout);")
    );
    assert!(!c.commits_truncated && !c.files_truncated);
    assert_eq!(
        env.mock.requests()[0].path,
        "/repos/acme/api/compare/v1...v2"
    );

    let few = gh.with_limits(Limits {
        max_items: 1,
        max_total_patch_bytes: 20,
        ..Limits::default()
    });
    let c = few.compare("acme/api", "v1", "v2").await.unwrap();
    assert!(c.commits_truncated && c.files_truncated);
    assert_eq!((c.commits.len(), c.files.len()), (1, 1));
    assert!(c.files[0].patch_truncated);
}

#[tokio::test]
async fn basic_auth_carries_a_token_as_the_password() {
    let env = start(repos()).await;
    let gh = client(&env, &basic("ci-bot", TOKEN));
    file(gh.read_file("acme/api", "README.md", None).await.unwrap());
    assert_eq!(env.mock.requests()[0].auth, Auth::Basic);
}

fn app_mock() -> GitHubMock {
    repos()
        .with_app(APP_ID, INSTALLATION, &app_key().unwrap().public_key_pem)
        .unwrap()
}

#[tokio::test]
async fn a_github_app_mints_an_installation_token_once_and_reuses_it() {
    let env = start(app_mock()).await;
    let gh = client(&env, &app(&app_key().unwrap().private_key_pem));
    file(gh.read_file("acme/api", "README.md", None).await.unwrap());
    gh.commit("acme/api", "v2").await.unwrap();
    gh.search_code("acme/api", "timeout", 5).await.unwrap();
    assert_eq!(
        env.mock.minted_tokens(),
        1,
        "the second and third call reuse the token"
    );
    let reqs = env.mock.requests();
    assert_eq!(
        reqs.iter()
            .map(|r| (r.method.as_str(), r.auth.clone()))
            .collect::<Vec<_>>(),
        [
            ("POST", Auth::AppJwt(APP_ID)),
            ("GET", Auth::Installation(INSTALLATION)),
            ("GET", Auth::Installation(INSTALLATION)),
            ("GET", Auth::Installation(INSTALLATION))
        ]
    );
    assert_eq!(reqs[0].path, "/app/installations/42/access_tokens");
}

#[tokio::test]
async fn concurrent_calls_mint_one_token() {
    let env = start(app_mock()).await;
    let gh = client(&env, &app(&app_key().unwrap().private_key_pem));
    let (a, b, c) = tokio::join!(
        gh.read_file("acme/api", "README.md", None),
        gh.read_file("acme/api", "src/main.rs", None),
        gh.commit("acme/api", "v1"),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(env.mock.minted_tokens(), 1);
}

#[tokio::test]
async fn a_token_close_to_expiry_is_not_reused() {
    // GitHub's token would expire within the renewal margin: each call mints afresh.
    let env = start(app_mock().with_token_lifetime(Duration::from_secs(120))).await;
    let gh = client(&env, &app(&app_key().unwrap().private_key_pem));
    file(gh.read_file("acme/api", "README.md", None).await.unwrap());
    file(gh.read_file("acme/api", "README.md", None).await.unwrap());
    assert_eq!(env.mock.minted_tokens(), 2);
}

#[tokio::test]
async fn a_jwt_signed_with_another_key_is_refused_and_nothing_else_is_asked() {
    let env = start(app_mock()).await;
    let gh = client(&env, &app(&other_app_key().unwrap().private_key_pem));
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Unauthenticated { .. }), "{e}");
    assert!(e.to_string().contains("App's JWT"), "{e}");
    let reqs = env.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].auth.clone()),
        ("POST", Auth::Refused)
    );
    assert_eq!(env.mock.minted_tokens(), 0);
}

#[tokio::test]
async fn an_unknown_installation_is_named() {
    let env = start(
        repos()
            .with_app(APP_ID, 99, &app_key().unwrap().public_key_pem)
            .unwrap(),
    )
    .await;
    let gh = client(&env, &app(&app_key().unwrap().private_key_pem));
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "installation 42 of GitHub App 7 not found on GitHub"
    );
}

#[tokio::test]
async fn a_wrong_token_is_an_authentication_error() {
    let env = start(repos()).await;
    let gh = client(&env, &token("ghp_wrongWrongWrong000000000000000000000"));
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "GitHub refused the credentials (401): the token is wrong, expired or revoked; upload a new one"
    );
    assert_eq!(env.mock.requests()[0].auth, Auth::Refused);
}

#[tokio::test]
async fn unmapped_repositories_are_refused_without_a_request() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let refused = [
        gh.read_file("evil/secrets", "config.txt", None)
            .await
            .unwrap_err(),
        gh.search_code("evil/secrets", "password", 5)
            .await
            .unwrap_err(),
        gh.commit("evil/secrets", "main").await.unwrap_err(),
        gh.compare("evil/secrets", "v1", "v2").await.unwrap_err(),
    ];
    for e in &refused {
        assert_eq!(
            e.to_string(),
            "repository evil/secrets is not mapped to any of the tenant's services; only mapped repositories can be read"
        );
    }
    assert!(
        env.mock.requests().is_empty(),
        "nothing reached GitHub: {:?}",
        env.mock.requests()
    );
    assert_eq!(
        gh.repository_for("api").map(|r| r.repository.as_str()),
        Some("acme/api")
    );
    assert!(gh.repository_for("evil").is_none());
}

#[tokio::test]
async fn traversal_and_bad_refs_are_refused_without_a_request() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let refused = [
        gh.read_file("acme/api", "../evil/secrets/contents/config.txt", None)
            .await
            .unwrap_err(),
        gh.read_file("acme/api", "src/../../x", None)
            .await
            .unwrap_err(),
        gh.read_file("acme/api", "src/main.rs\r\nX-Evil: 1", None)
            .await
            .unwrap_err(),
        gh.read_file("acme/api", "src/main.rs", Some("main..evil"))
            .await
            .unwrap_err(),
        gh.read_file("acme/api", "src/main.rs", Some("main?x=1"))
            .await
            .unwrap_err(),
        gh.read_file("acme/../evil/secrets", "x", None)
            .await
            .unwrap_err(),
        gh.commit("acme/api", "-x").await.unwrap_err(),
        gh.commit("acme/api", "a b").await.unwrap_err(),
        gh.compare("acme/api", "v1", "../../x").await.unwrap_err(),
        gh.search_code("acme/api", "repo:evil/secrets", 5)
            .await
            .unwrap_err(),
    ];
    for e in &refused {
        assert!(matches!(e, SourceError::Invalid { .. }), "{e}");
    }
    assert!(
        env.mock.requests().is_empty(),
        "nothing reached GitHub: {:?}",
        env.mock.requests()
    );
}

#[tokio::test]
async fn githubs_errors_are_named() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    let e = gh
        .read_file("acme/api", "nope.rs", Some("main"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "acme/api:nope.rs at main not found on GitHub"
    );
    let e = gh.commit("acme/api", "deadbeef").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "commit deadbeef in acme/api not found on GitHub"
    );
    let e = gh.compare("acme/api", "v1", "nope").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "comparison v1...nope in acme/api not found on GitHub"
    );

    env.server.script([Fault::status(403)]);
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "GitHub denied access to acme/api:README.md (403): Resource not accessible by integration"
    );
    env.server.script([Fault::status_retry_after(403, "60")]);
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::RateLimited { reset_at: Some(_) }),
        "{e}"
    );
    env.server.script([Fault::status(502)]);
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "GitHub answered 502 for acme/api:README.md: Server Error"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn an_exhausted_rate_limit_says_when_it_resets() {
    let env = start(repos()).await;
    let gh = client(&env, &token(TOKEN));
    env.mock.exhaust_rate_limit(1_772_366_400);
    let e = gh.search_code("acme/api", "timeout", 5).await.unwrap_err();
    assert_eq!(
        e,
        SourceError::RateLimited {
            reset_at: Some(1_772_366_400)
        }
    );
    assert_eq!(
        e.to_string(),
        "GitHub's rate limit is exhausted; it resets at 2026-03-01T12:00:00Z"
    );
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_at_construction() {
    let env = start(repos()).await;
    let mut plain = source(&env);
    plain.api_url = "http://github.example.com".into();
    let e = GitHubClient::new(&plain, &token(TOKEN), Duration::from_secs(5)).unwrap_err();
    assert!(e.to_string().contains("plain http"), "{e}");
    assert!(check_source(&plain).is_err());

    let mut bad = source(&env);
    bad.repositories.push(ServiceRepository {
        service: "x".into(),
        repository: "nope".into(),
        default_ref: String::new(),
    });
    let e = GitHubClient::new(&bad, &token(TOKEN), Duration::from_secs(5)).unwrap_err();
    assert!(e.to_string().contains("repositories[1].repository"), "{e}");

    let e = GitHubClient::new(&source(&env), &token(""), Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GitHub source is misconfigured: the stored token is empty"
    );
    assert!(env.mock.requests().is_empty());
}

#[tokio::test]
async fn a_server_with_an_untrusted_certificate_is_not_spoken_to() {
    let env = start(repos()).await;
    // Without the test CA: the mock's certificate is not trusted, so no request is made.
    let gh = GitHubClient::new(&source(&env), &token(TOKEN), Duration::from_secs(5)).unwrap();
    let e = gh
        .read_file("acme/api", "README.md", None)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Transport { .. }), "{e}");
    assert!(env.mock.requests().is_empty());
}

#[tokio::test]
async fn errors_never_carry_a_token_or_key() {
    let env = start(app_mock()).await;
    let key = app_key().unwrap();
    let mut errors = Vec::new();
    // A token refused, a token accepted then failures of every kind.
    for creds in [
        token(TOKEN),
        token("ghp_wrongWrongWrong000000000000000000000"),
        basic("bot", TOKEN),
    ] {
        let gh = client(&env, &creds);
        assert!(!format!("{gh:?}").contains("ghp_"));
        errors.push(gh.read_file("acme/api", "nope", None).await.unwrap_err());
        env.server.script([
            Fault::status(500),
            Fault::status_retry_after(429, "5"),
            Fault::Reset,
        ]);
        for _ in 0..3 {
            errors.push(gh.commit("acme/api", "v1").await.unwrap_err());
        }
    }
    // The App: a wrong key, a key that is not a key, then the right key failing.
    errors.push(
        client(&env, &app(&other_app_key().unwrap().private_key_pem))
            .commit("acme/api", "v1")
            .await
            .unwrap_err(),
    );
    let broken = format!("{}garbage", &key.private_key_pem[..200]);
    errors
        .push(GitHubClient::new(&source(&env), &app(&broken), Duration::from_secs(5)).unwrap_err());
    let gh = client(&env, &app(&key.private_key_pem));
    errors.push(gh.read_file("acme/api", "nope", None).await.unwrap_err());
    env.mock.exhaust_rate_limit(1);
    errors.push(
        gh.read_file("acme/api", "README.md", None)
            .await
            .unwrap_err(),
    );
    assert!(format!("{gh:?}").len() < 200);

    let minted: Vec<String> = env
        .server
        .requests()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|a| a.split_once(' ').map_or(a, |(_, v)| v).to_owned())
        })
        .collect();
    let key_body: String = key
        .private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for e in &errors {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(
                !text.contains(TOKEN) && !text.contains("ghp_wrong"),
                "{text}"
            );
            assert!(
                !text.contains("PRIVATE KEY") && !text.contains(&key_body[..40]),
                "{text}"
            );
            for secret in &minted {
                assert!(
                    !text.contains(secret.as_str()),
                    "{text} carries a credential"
                );
            }
        }
    }
}
