//! `warden up` as a user runs it: the real binary, its banner, its dev CA reused across
//! restarts, a clean stop on SIGTERM, and the loud warning under `--insecure-dev`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod common;

use common::{start, stop};

#[test]
fn up_prints_addresses_and_grpcurl_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(dir.path(), &[]);
    let text = lines.join("\n");
    assert!(text.contains("Warden is up"), "{text}");
    assert!(text.contains("gateway  https://127.0.0.1:"), "{text}");
    let pki = dir.path().join("data/pki");
    assert!(
        text.contains(&format!(
            "grpcurl -cacert {}/ca.pem -cert {}/admin.pem",
            pki.display(),
            pki.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("warden.gateway.v1.Admin/SetTenantSettings"),
        "{text}"
    );
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    // The key-encryption key is beside the data directory, not in it, and private.
    let key = dir.path().join("data-keys/kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let kek = std::fs::read(&key).unwrap();
    let err = stop(child);
    assert!(err.contains("stopped"), "{err}");

    // A second run reuses the CA and the database.
    let (child, lines) = start(dir.path(), &[]);
    assert!(lines.iter().any(|l| l.contains("Warden is up")));
    assert_eq!(
        std::fs::read(pki.join("ca.pem")).unwrap(),
        ca,
        "the dev CA is reused, not regenerated"
    );
    assert_eq!(std::fs::read(&key).unwrap(), kek, "the key file is reused");
    stop(child);
}

#[test]
fn insecure_dev_is_loud() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(dir.path(), &["--insecure-dev"]);
    assert!(lines.iter().any(|l| l.contains("-plaintext")), "{lines:?}");
    assert!(
        !dir.path().join("data/pki").exists(),
        "no certificates are made for a plaintext run"
    );
    let err = stop(child);
    assert!(err.contains("--insecure-dev: serving PLAINTEXT"), "{err}");
}

fn keys(args: &[&str]) -> (bool, String) {
    warden("keys", args)
}

fn warden(command: &str, args: &[&str]) -> (bool, String) {
    common::warden(&[&[command], args].concat())
}

#[test]
fn warden_keys_rotates_and_shreds_while_warden_up_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(dir.path(), &[]);
    let storage = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("storage  https://"))
        .unwrap_or_else(|| panic!("no storage address in {lines:?}"))
        .to_owned();
    let pki = dir.path().join("data/pki");
    let pki = pki.to_str().unwrap();
    let key_file = dir.path().join("data-keys/kek");
    let key_file = key_file.to_str().unwrap();
    let common = ["--storage", storage.as_str(), "--pki", pki];

    // An ingest token's description is sealed under acme's data key; the token is
    // printed once, listed without its secret, and revoked.
    let (ok, text) = warden(
        "ingest-token",
        &[
            &[
                "create",
                "--tenant",
                "acme",
                "--description",
                "collector eu",
            ][..],
            &common,
        ]
        .concat(),
    );
    assert!(ok && text.contains("wdn_ingest_"), "{text}");
    let token_id = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let list = |common: &[&str]| {
        warden(
            "ingest-token",
            &[&["list", "--tenant", "acme"][..], common].concat(),
        )
    };
    let (ok, text) = list(&common);
    assert!(
        ok && text.contains(&token_id) && text.contains("active"),
        "{text}"
    );
    assert!(
        text.contains("collector eu") && !text.contains("wdn_ingest_"),
        "{text}"
    );
    let (ok, text) = warden(
        "ingest-token",
        &[
            &[
                "revoke",
                "--tenant",
                "acme",
                "--token-id",
                token_id.as_str(),
            ][..],
            &common,
        ]
        .concat(),
    );
    assert!(ok, "{text}");
    assert!(list(&common).1.contains("revoked"));
    let (ok, text) = keys(&[&["rotate", "--tenant", "acme"][..], &common].concat());
    assert!(ok, "{text}");
    // The token's description and the demo incident `warden up` loaded for acme.
    let reencrypted: u64 = text
        .split("tenant acme: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text}"));
    assert!(reencrypted > 100, "{text}");
    let (ok, text) = keys(&[&["rotate", "--key-file", key_file][..], &common].concat());
    assert!(ok, "{text}");
    assert!(text.contains("2 data key(s) re-wrapped"), "{text}");
    let (ok, text) = keys(&[&["shred", "--tenant", "acme"][..], &common].concat());
    assert!(!ok && text.contains("--yes"), "{text}");
    let (ok, text) = keys(&[&["shred", "--tenant", "acme", "--yes"][..], &common].concat());
    assert!(ok, "{text}");
    assert!(text.contains("2 data key(s) destroyed"), "{text}");
    // A caller that is not a platform admin is refused.
    let (ok, text) = keys(
        &[
            &["rotate", "--tenant", "acme", "--identity", "agent"][..],
            &common,
        ]
        .concat(),
    );
    assert!(!ok && text.contains("requires role admin"), "{text}");
    stop(child);
    // The rotated key file (both KEKs) opens the store again.
    let (child, lines) = start(dir.path(), &[]);
    assert!(
        lines.iter().any(|l| l.contains("Warden is up")),
        "{lines:?}"
    );
    stop(child);
}
