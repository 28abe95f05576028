//! Table tests of the input checks: what is refused, and what reaches a URL.

use warden_proto::common::v1::{GitHubSource, ServiceRepository};

use super::*;

#[track_caller]
fn refused(r: Result<impl std::fmt::Debug, SourceError>, needle: &str) {
    let e = r.expect_err("should be refused").to_string();
    assert!(e.contains(needle), "{e:?} should mention {needle:?}");
}

#[test]
fn repositories_are_owner_slash_name() {
    assert_eq!(parse_repository("acme/api").unwrap(), ("acme", "api"));
    assert_eq!(
        parse_repository("Acme-Corp/web.site_2").unwrap(),
        ("Acme-Corp", "web.site_2")
    );
    for bad in [
        "acme",
        "/api",
        "acme/",
        "acme/api/x",
        "acme/..",
        "acme/.",
        "-acme/api",
        "ac me/api",
        "acme/a%2Fb",
        "acme/api?x=1",
    ] {
        refused(parse_repository(bad), "invalid repository");
    }
}

#[test]
fn paths_cannot_step_outside() {
    assert_eq!(check_path("src/main.rs").unwrap(), "src/main.rs");
    assert_eq!(check_path("/src/lib/").unwrap(), "src/lib");
    assert_eq!(check_path("").unwrap(), "");
    assert_eq!(check_path("docs/a b.md").unwrap(), "docs/a b.md");
    refused(check_path("../secrets"), "'..'");
    refused(check_path("src/../../x"), "'..'");
    refused(check_path("src/./x"), "'.'");
    refused(check_path("src//x"), "empty segment");
    refused(check_path("src/\nx"), "control");
    refused(check_path("src/\u{0}x"), "control");
    refused(check_path(&"a/".repeat(3000)), "longer");
}

#[test]
fn refs_follow_git_rules() {
    for ok in ["main", "v1.2.3", "release/2026-03", "0123abcd", "deploy-42"] {
        check_ref("ref", ok).unwrap();
    }
    for (bad, why) in [
        ("", "empty"),
        ("main..evil", "'..'"),
        ("-x", "'-'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("HEAD~1", "'~'"),
        ("a:b", "':'"),
        ("a^", "'^'"),
        ("/main", "'/'"),
        ("main/", "'/'"),
        ("x.lock", "not a valid"),
        ("a@{1}", "not a valid"),
    ] {
        refused(check_ref("ref", bad), why);
    }
}

#[test]
fn segments_are_percent_encoded() {
    assert_eq!(encode("main.rs"), "main.rs");
    assert_eq!(encode("a b?c#d"), "a%20b%3Fc%23d");
    assert_eq!(encode("release/1"), "release%2F1");
    assert_eq!(encode("%2e%2e"), "%252e%252e");
}

#[track_caller]
fn check_query(query: &str, sent: &str, removed: &[&str]) {
    let (q, r) = scoped_query(query, "acme/api").unwrap();
    assert_eq!(q, sent);
    assert_eq!(r, removed);
}

#[test]
fn search_scope_is_set_by_the_client() {
    check_query("timeout", "timeout repo:acme/api", &[]);
    check_query(
        "retry language:rust path:src",
        "retry language:rust path:src repo:acme/api",
        &[],
    );
    check_query(
        "password repo:evil/secrets",
        "password repo:acme/api",
        &["repo:evil/secrets"],
    );
    check_query(
        "key ORG:evil user:someone Owner:x enterprise:e",
        "key repo:acme/api",
        &["ORG:evil", "user:someone", "Owner:x", "enterprise:e"],
    );
    check_query(
        "token OR repo:evil/x",
        "token repo:acme/api",
        &["OR", "repo:evil/x"],
    );
    check_query(
        "a NOT -repo:acme/api (b",
        "a b repo:acme/api",
        &["NOT", "-repo:acme/api"],
    );
    check_query(
        r#"x repo:"evil/y z""#,
        "x repo:acme/api",
        &[r#"repo:"evil/y z""#],
    );
    check_query("(repo:evil/x) y", "y repo:acme/api", &["(repo:evil/x)"]);
    check_query("\"quoted phrase\"", "\"quoted phrase\" repo:acme/api", &[]);
}

#[test]
fn search_needs_terms_and_no_control_characters() {
    refused(scoped_query("repo:evil/x", "acme/api"), "no search terms");
    refused(scoped_query("   ", "acme/api"), "no search terms");
    refused(scoped_query("a\nrepo:evil/x", "acme/api"), "control");
    refused(scoped_query(&"x".repeat(300), "acme/api"), "256");
}

#[test]
fn api_urls_are_https_or_loopback_http() {
    assert_eq!(check_api_url("").unwrap(), "https://api.github.com");
    assert_eq!(
        check_api_url("https://ghe.example.com/api/v3/").unwrap(),
        "https://ghe.example.com/api/v3"
    );
    check_api_url("http://127.0.0.1:8080").unwrap();
    check_api_url("http://[::1]:8080").unwrap();
    check_api_url("http://localhost:8080").unwrap();
    for (bad, why) in [
        ("http://ghe.example.com", "plain http"),
        ("http://10.0.0.1", "plain http"),
        ("ftp://x", "https"),
        ("api.github.com", "not a URL"),
        ("https://user:pw@ghe.example.com", "credentials"),
        ("https://ghe.example.com?x=1", "query"),
    ] {
        let e = check_api_url(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

fn source(repos: &[(&str, &str, &str)]) -> GitHubSource {
    GitHubSource {
        api_url: String::new(),
        credentials_id: "cred-1".into(),
        repositories: repos
            .iter()
            .map(|(s, r, d)| ServiceRepository {
                service: (*s).into(),
                repository: (*r).into(),
                default_ref: (*d).into(),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn check_source_names_every_problem() {
    check_source(&source(&[
        ("api", "acme/api", ""),
        ("web", "acme/web", "prod"),
    ]))
    .unwrap();
    check_source(&GitHubSource::default()).unwrap();
    let mut bad = source(&[
        ("api", "acme", ""),
        ("api", "acme/api", "main..x"),
        ("", "acme/web", ""),
    ]);
    bad.api_url = "http://github.example.com".into();
    bad.credentials_id.clear();
    let e = check_source(&bad).unwrap_err();
    for needle in [
        "plain http",
        "credentials_id is empty",
        "repositories[0].repository \"acme\"",
        "repositories[1].service \"api\" is mapped more than once",
        "repositories[1].invalid default_ref",
        "repositories[2].service must be",
    ] {
        assert!(e.contains(needle), "{e}\nshould mention {needle:?}");
    }
}
