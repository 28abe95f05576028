//! Table tests for the rule pack and the request-level API: one `check` helper per shape so the
//! API can change without rewriting every case. Every rule has positive and negative cases.

use std::sync::LazyLock;

use warden_policy::{DataType, OnDisallowedData, Rule, TenantSettings};

use super::*;

/// Gating, placeholders, pseudonyms and tenant rules: the engine as the gateway drives it.
mod engine;

/// Where widely used tools keep credentials, in each encoding, with near misses.
mod catalogue;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::builtin().unwrap());

/// The text as the gateway would send it, placeholders numbered from 1.
fn redact(text: &str) -> String {
    let spans = ENGINE.find_spans(text);
    Placeholders::new(false).replace(text, &spans)
}

/// `input` redacts to exactly `expected`.
#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(redact(input), expected, "input: {input:?}");
}

/// `input` is left alone.
#[track_caller]
fn clean(input: &str) {
    let spans = ENGINE.find_spans(input);
    assert!(
        spans.is_empty(),
        "expected no findings in {input:?}, got {spans:?}"
    );
}

/// `secret` is found in `input` (fully covered) and reported as `kind`.
#[track_caller]
fn finds(input: &str, secret: &str, kind: &str) {
    let start = input.find(secret).unwrap();
    let end = start + secret.len();
    let spans = ENGINE.find_spans(input);
    let hit = spans.iter().find(|s| s.start <= start && end <= s.end);
    let Some(hit) = hit else {
        panic!("{secret:?} not covered in {input:?}; spans {spans:?}")
    };
    assert_eq!(hit.kind.name(), kind, "kind of {secret:?} in {input:?}");
    let out = redact(input);
    assert!(!out.contains(secret), "{secret:?} survived: {out:?}");
}

// === cloud credentials ===

#[test]
fn aws() {
    check(
        "key=AKIAIOSFODNN7EXAMPLE ok",
        "key=[SECRET:aws_access_key_id:1] ok",
    );
    finds(
        "aws_access_key_id = ASIAY34FZKBOKMUTVV7A",
        "ASIAY34FZKBOKMUTVV7A",
        "aws_access_key_id",
    );
    finds(
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY attempt=2",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    );
    finds(
        r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    );
    finds(
        "export AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    );
    clean("AKIA is a prefix; AKIAshort is not a key");
    clean("aws_region=eu-west-1 aws_account_id=123456789012");
}

#[test]
fn gcp() {
    finds(
        "GOOGLE_API_KEY=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "gcp_api_key",
    );
    clean("AIza alone, AIzaSmall");
    let sa = r#"{"type":"service_account","private_key_id":"3482f9a3800691d3250b485b0ff77aae964d3613","private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n","client_email":"ci@acme-prod.iam.gserviceaccount.com"}"#;
    check(
        sa,
        r#"{"type":"service_account","private_key_id":"3482f9a3800691d3250b485b0ff77aae964d3613","private_key":"[SECRET:private_key:1]","client_email":"ci@acme-prod.iam.gserviceaccount.com"}"#,
    );
}

#[test]
fn azure() {
    let key =
        "J2ntfHCryjSnzmHuZxEQs8NnYdaT6T+wppGFi003zxaZZCFrRCcfnDKUKvsXGOcrJDRdplGL6Z5NXV2hBO91Qg==";
    check(
        &format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={key};EndpointSuffix=core.windows.net"
        ),
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=[SECRET:azure_storage_key:1];EndpointSuffix=core.windows.net",
    );
    finds(
        &format!("AZURE_STORAGE_KEY={key}"),
        key,
        "azure_storage_key",
    );
    finds(
        "https://acme.blob.core.windows.net/c?sv=2022-11-02&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D&se=2030",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D",
        "azure_storage_key",
    );
    clean("AccountName=acme;EndpointSuffix=core.windows.net");
}

// === prefixed tokens ===

#[test]
fn tokens() {
    finds(
        "GITHUB_TOKEN: ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
        "ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
        "github_token",
    );
    finds(
        "token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
        "github_token",
    );
    finds(
        "GITLAB_TOKEN=glpat-WlQ7BDtRvsZSAWX_FdoZ",
        "glpat-WlQ7BDtRvsZSAWX_FdoZ",
        "gitlab_token",
    );
    finds(
        "SLACK_BOT_TOKEN=xoxb-663275763690-0145764088217-IEVywRA7zcerVWgXLXysmfrN",
        "xoxb-663275763690-0145764088217-IEVywRA7zcerVWgXLXysmfrN",
        "slack_token",
    );
    finds(
        "posting to https://hooks.slack.com/services/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 status=200",
        "https://hooks.slack.com/services/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",
        "slack_webhook",
    );
    finds(
        r#"{"secret_key":"sk_live_39Jv7tI2RnpAds97ddXb2KQD"}"#,
        "sk_live_39Jv7tI2RnpAds97ddXb2KQD",
        "stripe_key",
    );
    finds(
        "OPENAI_API_KEY=sk-proj-pobP0Z9ZuC6QZ7XTnnluUh16NwaSI_ZWbzOaprgvXUwriQoD",
        "sk-proj-pobP0Z9ZuC6QZ7XTnnluUh16NwaSI_ZWbzOaprgvXUwriQoD",
        "openai_key",
    );
    finds(
        "key sk-ant-api03-zwaL6byADRcli5FtsDI1ugs_dwz0Q7Vs5GrcDzNEDf-JqDNGYew3JkgL8mcXRJP9uqO095hwaBr-lsT-tioGF6sA_ysaRAA in use",
        "sk-ant-api03-zwaL6byADRcli5FtsDI1ugs_dwz0Q7Vs5GrcDzNEDf-JqDNGYew3JkgL8mcXRJP9uqO095hwaBr-lsT-tioGF6sA_ysaRAA",
        "anthropic_key",
    );
    finds(
        "NPM_TOKEN=npm_2rXbuPPEJWViUEAoPbAkWMTo0VuRswOwG5d2",
        "npm_2rXbuPPEJWViUEAoPbAkWMTo0VuRswOwG5d2",
        "npm_token",
    );
    finds(
        "//registry.npmjs.org/:_authToken=0f3c7a2e-9b1d-4c5e-8a6f-123456789abc",
        "0f3c7a2e-9b1d-4c5e-8a6f-123456789abc",
        "npm_token",
    );
    clean("the sk-learn package; task-ant-farm; ghp_short; npm_install ran; xoxo");
    clean("pk_live_51Habc is publishable");
}

#[test]
fn jwt_and_bearer() {
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1M2E3NmZjZjQ1MGMifQ.ja3JO_cMrSK7ILmJjS5Uh4fGNnOsBL_ESYrUi_Oc1pk";
    check(
        &format!("Authorization: Bearer {jwt}\r\n"),
        "Authorization: Bearer [SECRET:jwt:1]\r\n",
    );
    finds(&format!("id_token={jwt}"), jwt, "jwt");
    check(
        r"GET / HTTP/1.1\r\nAuthorization: Bearer 5DV1OItAp7ezJMnXRTkjIj5R3RdiKa8tyIQG2UDa\r\nAccept: */*",
        r"GET / HTTP/1.1\r\nAuthorization: Bearer [SECRET:bearer_token:1]\r\nAccept: */*",
    );
    finds(
        "authorization: Basic dXNlcjpwYXNzd29yZDEyMw==",
        "dXNlcjpwYXNzd29yZDEyMw==",
        "bearer_token",
    );
    clean(r#"{"token_type":"Bearer","expires_in":3600}"#);
    clean("token_type=Bearer expires_in=3600");
}

// === URLs and command lines ===

#[test]
fn url_credentials() {
    check(
        "retrying postgresql://root:Summer6068%@10.0.3.7:5432/orders?sslmode=require",
        "retrying postgresql://root:[SECRET:url_credentials:1]@10.0.3.7:5432/orders?sslmode=require",
    );
    finds(
        "redis://app:Passw0rd4061@@db-primary:6379/0",
        "Passw0rd4061@",
        "url_credentials",
    );
    finds(
        "mongodb+srv://svc:W&6dX%2FaD#!@cluster0.example.net/db",
        "W&6dX%2FaD#!",
        "url_credentials",
    );
    finds(
        "jdbc:postgresql://db:5432/app?user=svc&password=J8dbc!Pw&ssl=true",
        "J8dbc!Pw",
        "password",
    );
    finds(
        "fetching https://x-access-token:ghs_Nok69kK3ZAApEQpDppcTMs4H5ZkWx9y3Lz1s@github.com/acme/infra.git",
        "ghs_Nok69kK3ZAApEQpDppcTMs4H5ZkWx9y3Lz1s",
        "github_token",
    );
    clean("see https://github.com/acme/infra.git and http://host:8080/path@v2");
    // The host after credentials is not an email address.
    check(
        "mongodb://root:r00tPw@mongo-0.mongo:27017/?authSource=admin",
        "mongodb://root:[SECRET:url_credentials:1]@mongo-0.mongo:27017/?authSource=admin",
    );
}

#[test]
fn command_lines() {
    finds(
        "exec: /usr/bin/pg_dump --host=db --username=backup --password=C7wLoMOecUbzN^Fg --format=custom",
        "C7wLoMOecUbzN^Fg",
        "password",
    );
    finds(
        "exec: tool --verbose --password 'hunter2 two' --port 22",
        "hunter2 two",
        "password",
    );
    finds(
        "exec: tool --db-password s3cr3tP4ss --port 22",
        "s3cr3tP4ss",
        "password",
    );
    finds(
        "mysql -h db -u root -pS3cretPw! orders",
        "S3cretPw!",
        "password",
    );
    finds(
        "sshpass -p 'Tr0ub4dor&3' ssh admin@host",
        "Tr0ub4dor&3",
        "password",
    );
    finds(
        "redis-cli -h cache -a RedisPass123 ping",
        "RedisPass123",
        "password",
    );
    finds(
        "curl -u admin:Adm1nPass https://api.example.com",
        "Adm1nPass",
        "password",
    );
    finds(
        "docker login -u ci -p Dock3rPw! registry.example.com",
        "Dock3rPw!",
        "password",
    );
    finds(
        "echo x | docker login --password-stdin; token dckr_pat_abcDEF123ghiJKL456",
        "dckr_pat_abcDEF123ghiJKL456",
        "generic_secret",
    );
    clean("ssh -p 2222 admin@bastion; docker run -p 8080:80 nginx");
    clean("exec: tool --password-file /etc/secret --verbose");
}

// === passwords and secrets by key ===

#[test]
fn key_value_forms() {
    finds(
        r#"{"db":{"user":"app","password":"Tr0ub4dor272$"}}"#,
        "Tr0ub4dor272$",
        "password",
    );
    finds("password: 'Winter2024!'", "Winter2024!", "password");
    finds(
        "  DB_PASSWORD=ZH6%-7586!DBPHmzbgfga4",
        "ZH6%-7586!DBPHmzbgfga4",
        "password",
    );
    finds(
        r#"level=error msg="auth failed" password=Winter6576# attempt=1"#,
        "Winter6576#",
        "password",
    );
    finds("export PGPASSWORD=\"pg_Secr3t\"", "pg_Secr3t", "password");
    finds("<password>xml-S3cret</password>", "xml-S3cret", "password");
    finds(
        "spring.datasource.password = hunter2hunter",
        "hunter2hunter",
        "password",
    );
    finds(
        "SECRET_KEY_BASE=9f8e7d6c5b4a39281706f5e4d3c2b1a0ffee",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffee",
        "generic_secret",
    );
    finds(
        r#"{"clientSecret":"Qm9vbTEyMzQ1Njc4OTA","accessToken":"tok_8fJ2kLm9QxZ3"}"#,
        "tok_8fJ2kLm9QxZ3",
        "generic_secret",
    );
    finds(
        "client_secret=9f8e7d6c5b4a39281706f5e4d3c2b1a0 attempt=3",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "generic_secret",
    );
    finds(
        "api_key: 3xAmpl3K3yV4lu3Z",
        "3xAmpl3K3yV4lu3Z",
        "generic_secret",
    );
    finds(
        "X-Api-Key: a1b2c3d4e5f6a7b8c9d0",
        "a1b2c3d4e5f6a7b8c9d0",
        "generic_secret",
    );
    finds(
        r#"{"auth": {"token": "tok_8fJ2kLm9QxZ3vB7n"}}"#,
        "tok_8fJ2kLm9QxZ3vB7n",
        "generic_secret",
    );
    finds(
        "the password is 'correct horse battery'",
        "correct horse battery",
        "password",
    );
    finds(
        "reset done, new password is Blue7Sky#9 for ops",
        "Blue7Sky#9",
        "password",
    );
    check(
        "Server=db;User Id=sa;Password=Sa!Passw0rd;Encrypt=true",
        "Server=db;User Id=sa;Password=[SECRET:password:1];Encrypt=true",
    );
}

/// `auth-key` is woken by `auth` followed by each byte that can end a key, not by bare `auth`
/// (which is in most sshd and PAM log lines): every key form still reaches it, and a keyword
/// starting inside `auth:` (`:5432:` of a `.pgpass` line for host `auth`) still wakes its rule.
#[test]
fn auth_key_in_every_key_form() {
    let v = "ZGVwbG95OlM0bXBsZQ==";
    for text in [
        format!(r#"{{"auths":{{"r.io":{{"auth":"{v}"}}}}}}"#),
        format!(r#"{{"auth" : "{v}"}}"#),
        format!(r#"{{\"auth\":\"{v}\"}}"#),
        format!("{{'auth': '{v}'}}"),
        format!("    auth: {v}"),
        format!("_auth={v}"),
        format!("AUTH\t= {v}"),
        format!("<auth>{v}</auth>"),
        format!("login --auth {v}"),
        format!("login --auth={v}"),
        format!(r#"<add key="auth" value="{v}" />"#),
    ] {
        finds(&text, v, "password");
    }
    finds(
        "auth:5432:orders:app:Pg9PassW0rd",
        "Pg9PassW0rd",
        "password",
    );
    finds(
        "xauth://app:Pw9x4kQz@db.example.com/",
        "Pw9x4kQz",
        "url_credentials",
    );
    clean("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh");
}

#[test]
fn key_value_negatives() {
    clean(
        "Failed password for invalid user admin from 203.0.113.9 port 22 ssh2"
            .split(" from")
            .next()
            .unwrap(),
    );
    clean("Failed password for root");
    clean("password reset requested; token expired");
    clean("config key 'api_key' is not set; using anonymous access");
    clean("password=******** token=${GITHUB_TOKEN} secret=<redacted> api_key=null");
    clean("max_tokens=1024 token_count=33 password_min_length=12");
    clean("sessionid:0x14ed93111f20046 closed");
    clean("PWD=/home/app HOME=/app");
    clean(r#"{"password": null, "token": "", "secret": true}"#);
    clean("token: invalid_grant");
    clean("password is too short; password was changed");
}

#[test]
fn secret_inside_json_string_escapes() {
    let line = r#"{"level":"info","msg":"loaded config {\"db\":{\"password\":\"Esc4ped!Pw\"},\"api_key\":\"AKIAIOSFODNN7EXAMPLE\"}"}"#;
    check(
        line,
        r#"{"level":"info","msg":"loaded config {\"db\":{\"password\":\"[SECRET:password:1]\"},\"api_key\":\"[SECRET:aws_access_key_id:2]\"}"}"#,
    );
}

// === structures ===

#[test]
fn pem_block_across_lines() {
    let text = "ERROR tls: bad key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6d\nVJTUt9Us8cKjMzEfYyjiWA4R4==\n-----END RSA PRIVATE KEY-----\nnext line";
    check(
        text,
        "ERROR tls: bad key:\n[SECRET:private_key:1]\nnext line",
    );
    let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123\n\nMIIEow==\n-----END ENCRYPTED PRIVATE KEY-----";
    check(enc, "[SECRET:private_key:1]");
    // No END line (truncated log): the body is redacted up to the next line of prose.
    let cut = "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAMwAAAAtzc2gtZWQyNTUxOQ\n2026-01-01 INFO next event here";
    check(
        cut,
        "key:\n[SECRET:private_key:1]\n2026-01-01 INFO next event here",
    );
    clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    clean("we never log a PRIVATE KEY here");
}

#[test]
fn kubernetes_secret_base64() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: aG9yc2U2NTUxJQ==\n  username: YWRtaW4=\n  tls.crt: |\n    LS0tLS1CRUdJTi\n    BDRVJUSUZJQ0FU\nstringData:\n  note: \"plain text\"\n---\nkind: ConfigMap\ndata:\n  LOG_LEVEL: info\n";
    let out = redact(yaml);
    assert_eq!(
        out,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: [SECRET:k8s_secret_value:1]\n  username: [SECRET:k8s_secret_value:2]\n  tls.crt: |\n    [SECRET:k8s_secret_value:3]\n    [SECRET:k8s_secret_value:4]\nstringData:\n  note: \"[SECRET:k8s_secret_value:5]\"\n---\nkind: ConfigMap\ndata:\n  LOG_LEVEL: info\n"
    );
    let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"api-token":"Y29ycmVjdDM3MDkq","user":"YWRtaW4="}}"#;
    check(
        json,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"api-token":"[SECRET:k8s_secret_value:1]","user":"[SECRET:k8s_secret_value:2]"}}"#,
    );
    clean("kind: ConfigMap\ndata:\n  LOG_LEVEL: info\n");
    clean("the Secret was rotated");
}

/// A Secret manifest logged inside a quoted string (a JSON field, a `.env` value) is one line
/// with `\n` and `\"` escapes; its `data` values are still found, and only they.
#[test]
fn kubernetes_secret_inside_an_escaped_string() {
    check(
        r#"{"level":"info","text":"applied:\napiVersion: v1\nkind: Secret\ndata:\n  blob: aG9yc2U2NTUxJQ==\n  note: \"c2VjcmV0\"\nmetadata:\n  name: db\n"}"#,
        r#"{"level":"info","text":"applied:\napiVersion: v1\nkind: Secret\ndata:\n  blob: [SECRET:k8s_secret_value:1]\n  note: \"[SECRET:k8s_secret_value:2]\"\nmetadata:\n  name: db\n"}"#,
    );
    check(
        "MANIFEST=\"{\\\"kind\\\":\\\"Secret\\\",\\\"data\\\":{\\\"token\\\":\\\"dG9rZW4xMjM=\\\"}}\"\n",
        "MANIFEST=\"{\\\"kind\\\":\\\"Secret\\\",\\\"data\\\":{\\\"token\\\":\\\"[SECRET:k8s_secret_value:1]\\\"}}\"\n",
    );
    clean(r#"{"text":"kind: ConfigMap\ndata:\n  LOG_LEVEL: info\n"}"#);
    clean(r#"{"text":"the Secret was rotated\ndata:\n  LOG_LEVEL: info\n"}"#);
}

// === personal data ===

#[test]
fn personal_data() {
    check(
        "order by j.smith87@example.com from 201.169.79.50",
        "order by [EMAIL:1] from [IPV4:2]",
    );
    finds(
        "from 7fba:dcbd:5f41:74a6:0dca:b031:67b7:1959 amount",
        "7fba:dcbd:5f41:74a6:0dca:b031:67b7:1959",
        "ipv6",
    );
    finds(
        "peer 2001:db8::8a2e:370:7334 connected",
        "2001:db8::8a2e:370:7334",
        "ipv6",
    );
    finds(
        "declined card 5541914674861452 reason=x",
        "5541914674861452",
        "credit_card",
    );
    finds(
        "declined card 3730 0642 6878 423 reason=x",
        "3730 0642 6878 423",
        "credit_card",
    );
    finds(
        "card 4111-1111-1111-1111",
        "4111-1111-1111-1111",
        "credit_card",
    );
    clean("card 4111111111111112 fails Luhn");
    clean("blk_-1608999687919862906 and 081109 203615 148 are not cards");
    clean("version 1.2.3.4.5, v10.0.3.7, build 1.11.74");
    clean("at 10:00:32 std::io::Error Face::add mac 00:1a:2b:3c:4d:5e");
    clean("listening on 10.0.3.7 and 192.168.1.20 and 127.0.0.1");
    clean("client ci@acme-prod.iam.gserviceaccount.com");
}

#[test]
fn near_misses() {
    clean("commit 5d168392198fc51a9da1e8eff58e89e55f4da070 merged into main by ci");
    clean("image sha256:9b2a5c3e1f4d6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b pulled");
    clean("span_id=f68b717fef6a490a trace_id=610583885a949b3da0ada0111310e188 duration=12ms");
    clean("request_id=3f2b8c1e-f29d-b812-298b-0c4e5a6b7d8f status=200 latency_ms=144");
    clean("Failed password for invalid user admin from port 22 ssh2");
    clean("processed 75803 records in 33s (377 rec/s)");
}

// === placeholders and the request API ===

#[test]
fn spans_are_sorted_disjoint_and_on_char_boundaries() {
    let text = "é password=Pässwörd123 ü ann@exämple.com 201.169.79.50 ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X";
    let spans = ENGINE.find_spans(text);
    assert!(!spans.is_empty());
    for w in spans.windows(2) {
        assert!(w[0].end <= w[1].start);
    }
    for s in &spans {
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    assert!(!redact(text).contains("Pässwörd123"));
}

// === every shipped rule, alone: one positive and one negative example ===

/// (rule id, text, the value that rule alone must cover, a near-miss it must leave alone).
const RULE_EXAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "pem-private-key",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
        "MHcCAQEE",
        "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
    ),
    (
        "k8s-secret-data",
        "kind: Secret\ndata:\n  token: dG9rZW4=\n",
        "dG9rZW4=",
        "kind: ConfigMap\ndata:\n  token: dG9rZW4=\n",
    ),
    (
        "aws-access-key-id",
        "id AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
        "id AKIAIOSFODNN7EXAMPL",
    ),
    (
        "aws-secret-access-key",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG",
        "wJalrXUtnFEMI/K7MDENG",
        "aws_secret_access_key=short",
    ),
    (
        "aws-secret-access-key-value",
        "AWS_SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws secret rotated",
    ),
    (
        "gcp-api-key",
        "key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "AIzaSyD",
    ),
    (
        "azure-storage-account-key",
        "AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==;",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
        "AccountKey=;",
    ),
    (
        "azure-sas-signature",
        "?sv=1&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D",
        "?sig=short",
    ),
    (
        "azure-storage-key",
        "AZURE_STORAGE_KEY: Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
        "storage_key=small",
    ),
    (
        "github-token",
        "t=ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
        "ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
        "ghp_tooshort",
    ),
    (
        "github-fine-grained-pat",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "github_pat_",
    ),
    (
        "gitlab-token",
        "glpat-WlQ7BDtRvsZSAWX_FdoZ",
        "glpat-WlQ7BDtRvsZSAWX_FdoZ",
        "glpat-short",
    ),
    (
        "slack-token",
        "xoxp-1234567890-abcdef",
        "xoxp-1234567890-abcdef",
        "xoxo hugs",
    ),
    (
        "slack-webhook",
        "https://hooks.slack.com/services/T0/B0/abc",
        "https://hooks.slack.com/services/T0/B0/abc",
        "https://hooks.slack.com/",
    ),
    (
        "stripe-key",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "pk_test_4eC39HqLyjWDarjtT1zdp7dc",
    ),
    (
        "anthropic-key",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "sk-ant-",
    ),
    (
        "openai-key",
        "sk-proj-abcdefghijklmnopqrstuvwxyz",
        "sk-proj-abcdefghijklmnopqrstuvwxyz",
        "task-force-abcdefghijklmnopqrstuvwxyz",
    ),
    (
        "npm-token",
        "npm_2rXbuPPEJWViUEAoPbAkWMTo0VuRswOwG5d2",
        "npm_2rXbuPPEJWViUEAoPbAkWMTo0VuRswOwG5d2",
        "npm_config_cache",
    ),
    (
        "npmrc-auth-token",
        "//r/:_authToken=abcdef0123456789abcd",
        "abcdef0123456789abcd",
        "//r/:_authToken=${NPM_TOKEN}",
    ),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature",
        "eyJhbGciOiJIUzI1NiJ9",
    ),
    (
        "bearer-token",
        "Authorization: Bearer abcdefghijklmnop1234",
        "abcdefghijklmnop1234",
        "token_type: Bearer",
    ),
    (
        "authorization-header",
        "Authorization: Basic dXNlcjpwYXNz",
        "dXNlcjpwYXNz",
        "Authorization: required",
    ),
    (
        "url-credentials",
        "amqp://app:s3cr3t@mq:5672",
        "s3cr3t",
        "amqp://mq:5672/vhost",
    ),
    (
        "mysql-inline-password",
        "mysqldump -u root -pR00tPw db",
        "R00tPw",
        "mysql -u root -p db",
    ),
    (
        "registry-login-password",
        "podman login -u me -p S3cret quay.io",
        "S3cret",
        "podman login quay.io",
    ),
    (
        "docker-pat",
        "dckr_pat_abcdefghijklmnop123",
        "dckr_pat_abcdefghijklmnop123",
        "dckr_pat_",
    ),
    (
        "cli-password-flag",
        "curl -u admin:Adm1nPass https://x",
        "Adm1nPass",
        "curl -u admin https://x",
    ),
    (
        "password-phrase-quoted",
        "the password is 'Horse Battery'",
        "Horse Battery",
        "the password field is empty",
    ),
    (
        "password-phrase",
        "new password is Blue7Sky#9 now",
        "Blue7Sky#9",
        "password is required",
    ),
    (
        "password-key",
        "db_password: Hunter2",
        "Hunter2",
        "password_policy: strict",
    ),
    (
        "pwd-key",
        "user=ops pwd=Hunter2!",
        "Hunter2!",
        "PWD=/home/app",
    ),
    (
        "generic-secret-key",
        "client_secret=9f8e7d6c5b4a3928",
        "9f8e7d6c5b4a3928",
        "client_secret=expired",
    ),
    (
        "email",
        "mail ann@example.com",
        "ann@example.com",
        "user@localhost and a@b",
    ),
    (
        "ipv4",
        "from 203.0.113.9",
        "203.0.113.9",
        "from 10.0.0.1 and 1.2.3.4.5",
    ),
    (
        "ipv6",
        "from 2001:db8::8a2e:370:7334",
        "2001:db8::8a2e:370:7334",
        "at 12:30:45",
    ),
    (
        "credit-card",
        "card 4111 1111 1111 1111",
        "4111 1111 1111 1111",
        "card 4111 1111 1111 1112",
    ),
];

/// The shipped pack reduced to one rule (plus `[values]`), as a rule file.
fn only_rule(id: &str) -> String {
    let mut pack: toml::Table = toml::from_str(BUILTIN_RULES).unwrap();
    for section in ["pattern", "key", "structure"] {
        if let Some(toml::Value::Array(rules)) = pack.get_mut(section) {
            rules.retain(|r| r.get("id").and_then(|v| v.as_str()) == Some(id));
        }
    }
    toml::to_string(&pack).unwrap()
}

#[test]
fn every_shipped_rule_has_a_positive_and_a_negative_example() {
    let pack: toml::Table = toml::from_str(BUILTIN_RULES).unwrap();
    let ids: Vec<&str> = ["pattern", "key", "structure"]
        .iter()
        .filter_map(|s| pack.get(*s).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|r| r.get("id").and_then(|v| v.as_str()))
        .collect();
    let examples: Vec<&(&str, &str, &str, &str)> = RULE_EXAMPLES
        .iter()
        .chain(catalogue::RULE_EXAMPLES)
        .collect();
    for id in &ids {
        assert!(
            examples.iter().any(|e| e.0 == *id),
            "rule {id} has no example in RULE_EXAMPLES"
        );
    }
    for (id, text, value, negative) in examples {
        assert!(ids.contains(id), "example for unknown rule {id}");
        let engine = Engine::from_sources(&[("one rule", &only_rule(id))]).unwrap();
        let start = text.find(value).unwrap();
        let end = start + value.len();
        let spans = engine.find_spans(text);
        assert!(
            spans.iter().any(|s| s.start <= start && end <= s.end),
            "rule {id} alone does not cover {value:?} in {text:?}: {spans:?}"
        );
        let spans = engine.find_spans(negative);
        assert!(
            spans.is_empty(),
            "rule {id} alone flags the near-miss {negative:?}: {spans:?}"
        );
    }
}

/// The line filter only decides where the keyword automaton runs: on any input the spans are
/// exactly those of the automaton run over every byte (keywords in any case, at line and block
/// edges, in blocks long enough to be split into parts).
#[test]
fn line_filter_changes_no_span() {
    let filtered = Engine::builtin().unwrap();
    let reference = Engine::builtin_without_line_filter().unwrap();
    let pieces = [
        "password=",
        "Passw0rd-9x ",
        "PASSWORD: hunter2 ",
        "token",
        "secret=S3cr3tValue42 ",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
        "sk-",
        "eyJ",
        "https://u:p4ss@db.example.com",
        "-----BEGIN PRIVATE KEY-----\nQUFB\n-----END PRIVATE KEY-----",
        "kind: Secret\ndata:\n  k: dmFsdWU=\n",
        "Authorization: Bearer abcdefghijklmnop1234 ",
        "ann@example.com ",
        "8.8.8.8 ",
        "2001:db8::1 ",
        "4111 1111 1111 1111 ",
        "\n",
        "\n",
        " ",
        "x",
        "2015-10-18 18:01:47,978 INFO ",
        "blk_-1608999687919862906 ",
        "pass",
        "KEY",
        "cred",
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..200 {
        let target = [10, 300, 5000, 40_000, 70_000][round % 5];
        let mut text = String::new();
        while text.len() < target {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            text.push_str(pieces[(rng % pieces.len() as u64) as usize]);
        }
        assert_eq!(
            filtered.find_spans(&text),
            reference.find_spans(&text),
            "round {round}"
        );
    }
}
