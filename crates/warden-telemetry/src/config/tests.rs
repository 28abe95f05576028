#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn r() -> Redactor {
    Redactor::builtin().unwrap()
}

const HELM: &str = "\
replicaCount: 3
image:
  repository: ghcr.io/acme/api
  tag: 1.4.2
postgresql:
  auth:
    username: api
    password: hunter2-Very-Secret # set by ops
    existingSecretName: api-db
  host: db.internal:5432
redis:
  credentials:
    user: cache
    pass: s3cr3t-cache
tls:
  privateKey: |
    line one of a key
    line two of a key
env:
  - name: LOG_LEVEL
    value: debug
  - name: STRIPE_API_TOKEN
    value: sk_live_abcdefghijklmnop
  - name: PORT
    value: \"8080\"
apiKey: \"${API_KEY}\"
";

#[test]
fn marker_is_a_short_digest_that_changes_with_the_value() {
    assert_eq!(marker("hunter2"), "[REDACTED sha256:f52fbd32b2b3]");
    assert_ne!(marker("hunter2"), marker("hunter3"));
}

#[test]
fn key_names_decide_and_references_to_secrets_stay() {
    for k in [
        "password",
        "DB_PASSWORD",
        "clientSecret",
        "api-key",
        "apikey",
        "private_key",
        "credentials",
        "auth.token",
        "aws_secret_access_key",
    ] {
        assert!(is_secret_key(k), "{k}");
    }
    for k in [
        "username",
        "host",
        "existingSecretName",
        "passwordFile",
        "tokenTTL",
        "secretRef",
        "replicaCount",
    ] {
        assert!(!is_secret_key(k), "{k}");
    }
}

/// Helm values: the password (with its comment kept), every value under a secret-named
/// block, a block scalar, and the value of a secret-named env var are replaced by their
/// digests; names, hosts, ordinary env vars and `${...}` references stay.
#[test]
fn helm_values_keep_their_shape_and_lose_their_secrets() {
    let out = r().redact(HELM);
    for secret in [
        "hunter2-Very-Secret",
        "s3cr3t-cache",
        "line one of a key",
        "sk_live_abcdefghijklmnop",
    ] {
        assert!(!out.contains(secret), "{secret} in\n{out}");
    }
    assert!(
        out.contains(&format!(
            "    password: \"{}\" # set by ops",
            marker("hunter2-Very-Secret")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("    pass: \"{}\"", marker("s3cr3t-cache"))),
        "{out}"
    );
    assert!(
        out.contains(&format!("    user: \"{}\"", marker("cache"))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  privateKey: \"{}\"\n",
            marker("line one of a key\nline two of a key")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "    value: \"{}\"",
            marker("sk_live_abcdefghijklmnop")
        )),
        "{out}"
    );
    for kept in [
        "    username: api",
        "    existingSecretName: api-db",
        "  host: db.internal:5432",
        "    value: debug",
        "    value: \"8080\"",
        "apiKey: \"${API_KEY}\"",
        "  repository: ghcr.io/acme/api",
    ] {
        assert!(out.contains(kept), "{kept} missing from\n{out}");
    }
}

#[test]
fn the_rule_pack_finds_secrets_under_innocent_keys() {
    let text = "notes: deploy with AKIAIOSFODNN7EXAMPLE for now\nretries: 3\n";
    let out = r().redact(text);
    assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
    assert!(out.contains(&marker("AKIAIOSFODNN7EXAMPLE")), "{out}");
    assert!(out.contains("retries: 3"));
}

#[test]
fn json_is_redacted_value_by_value_and_stays_json() {
    let out = r().redact(r#"{"db":{"user":"api","password":"pw-123456"},"token":42,"nested":{"credentials":{"a":"x1","b":["y2"]}}}"#);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["db"]["user"], "api");
    assert_eq!(v["db"]["password"], marker("pw-123456").as_str());
    assert_eq!(v["token"], marker("42").as_str());
    assert_eq!(v["nested"]["credentials"]["b"][0], marker("y2").as_str());
}

#[test]
fn properties_and_env_files() {
    let out = r().redact(
        "spring.datasource.password=Tr0ub4dor&3\nserver.port=8080\nexport GITHUB_TOKEN=abc123def\n",
    );
    assert!(
        !out.contains("Tr0ub4dor&3") && !out.contains("abc123def"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "spring.datasource.password={}",
            marker("Tr0ub4dor&3")
        )),
        "{out}"
    );
    assert!(out.contains("server.port=8080"));
}

#[test]
fn config_map_data_renders_as_one_redacted_text() {
    let data = BTreeMap::from([
        ("DB_PASSWORD".to_owned(), "pw".to_owned()),
        ("LOG_LEVEL".to_owned(), "info".to_owned()),
        ("app.yaml".to_owned(), "a: 1\ntoken: t0k3n\n".to_owned()),
    ]);
    let out = render_data(&data, &r());
    assert_eq!(
        out,
        format!(
            "DB_PASSWORD: {}\nLOG_LEVEL: info\napp.yaml: |\n  a: 1\n  token: \"{}\"\n",
            marker("pw"),
            marker("t0k3n")
        )
    );
}

#[test]
fn a_changed_secret_shows_in_the_diff_as_a_changed_digest() {
    let r = r();
    let before = r.redact(HELM);
    let after = r.redact(
        &HELM
            .replace("hunter2-Very-Secret", "rotated-Secret-2")
            .replace("replicaCount: 3", "replicaCount: 5"),
    );
    let d = diff(&before, &after);
    assert!(d.starts_with("--- previous\n+++ current\n"), "{d}");
    assert!(d.contains("-replicaCount: 3\n+replicaCount: 5\n"), "{d}");
    assert!(
        d.contains(&format!(
            "-    password: \"{}\"",
            marker("hunter2-Very-Secret")
        )),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "+    password: \"{}\"",
            marker("rotated-Secret-2")
        )),
        "{d}"
    );
    assert!(
        !d.contains("hunter2") && !d.contains("rotated-Secret"),
        "{d}"
    );
    assert_eq!(diff(&before, &before), "");
}
