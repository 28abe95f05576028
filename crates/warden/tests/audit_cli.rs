//! `warden audit export` and `warden audit verify` as compliance runs them against a real
//! `warden up`: a tenant's provable export and the whole log as tlog tiles verify
//! offline with the log's key, hold one tenant only, and any edit is named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod common;

use common::{address, start, stop, warden};

/// Every file under `dir`, depth first.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_export_and_the_tiles_verify_offline_hold_one_tenant_and_name_any_edit() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(dir.path(), &[]);
    let storage = address(&lines, "storage");
    let gateway = address(&lines, "gateway");
    let pki = dir.path().join("data/pki");
    let pki = pki.to_str().unwrap();
    let log_key = dir.path().join("data-keys/audit-log.key");
    let log_key = log_key.to_str().unwrap();

    // Audited admin actions for two tenants.
    for (tenant, description) in [
        ("acme", "collector eu"),
        ("acme", "collector us"),
        ("beta", "beta collector"),
    ] {
        let (ok, text) = warden(&[
            "ingest-token",
            "create",
            "--tenant",
            tenant,
            "--description",
            description,
            "--storage",
            &storage,
            "--pki",
            pki,
        ]);
        assert!(ok, "{text}");
    }

    let export = dir.path().join("acme.export");
    let export_s = export.to_str().unwrap();
    let (ok, text) = warden(&[
        "audit",
        "export",
        "--tenant",
        "acme",
        "--out",
        export_s,
        "--gateway",
        &gateway,
        "--pki",
        pki,
    ]);
    assert!(ok, "{text}");
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(
        exported.contains("acme") && !exported.contains("\"beta\""),
        "{exported}"
    );
    let (ok, text) = warden(&["audit", "verify", export_s, "--key-file", log_key]);
    assert!(ok, "a fresh export verifies offline: {text}");

    // A record whose decision was flipped is named.
    let lines: Vec<&str> = exported.lines().collect();
    assert!(
        lines.len() >= 3,
        "a header and two acme records: {exported}"
    );
    let second: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    let id = second["record"]["id"].as_str().unwrap().to_owned();
    let flipped = lines[2].replacen("AUDIT_DECISION_ALLOWED", "AUDIT_DECISION_DENIED", 1);
    assert_ne!(flipped, lines[2]);
    let mut edited: Vec<&str> = lines.clone();
    edited[2] = &flipped;
    let tampered = dir.path().join("tampered.export");
    std::fs::write(&tampered, edited.join("\n") + "\n").unwrap();
    let (ok, text) = warden(&[
        "audit",
        "verify",
        tampered.to_str().unwrap(),
        "--key-file",
        log_key,
    ]);
    assert!(!ok, "an edited export must not verify: {text}");
    assert!(
        text.contains(&id) || text.contains("line 3"),
        "the edited record is named: {text}"
    );
    // So is a record moved to another tenant (the tenant is in every leaf).
    let moved = exported.replacen("\"acme\"", "\"beta\"", 2);
    assert_ne!(moved, exported);
    let tampered = dir.path().join("moved.export");
    std::fs::write(&tampered, &moved).unwrap();
    let (ok, text) = warden(&[
        "audit",
        "verify",
        tampered.to_str().unwrap(),
        "--key-file",
        log_key,
    ]);
    assert!(
        !ok,
        "a record moved to another tenant must not verify: {text}"
    );

    // The whole log as tiles, verified without a server.
    let tiles = dir.path().join("tiles");
    let (ok, text) = warden(&[
        "audit",
        "export",
        "--tiles",
        tiles.to_str().unwrap(),
        "--gateway",
        &gateway,
        "--pki",
        pki,
    ]);
    assert!(ok, "{text}");
    let (ok, text) = warden(&[
        "audit",
        "verify",
        "--tiles",
        tiles.to_str().unwrap(),
        "--key-file",
        log_key,
    ]);
    assert!(ok, "{text}");
    let _ = stop(child);
    // A changed hash in a level-0 tile is caught.
    let level0 = walk(&tiles.join("tile/0"));
    let tile = level0
        .first()
        .unwrap_or_else(|| panic!("no level-0 tile under {}", tiles.display()));
    let mut bytes = std::fs::read(tile).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(tile, bytes).unwrap();
    let (ok, text) = warden(&[
        "audit",
        "verify",
        "--tiles",
        tiles.to_str().unwrap(),
        "--key-file",
        log_key,
    ]);
    assert!(!ok, "a changed tile must not verify: {text}");

    // The live database, with the server stopped.
    let db = format!("sqlite://{}", dir.path().join("data/warden.db").display());
    let (ok, text) = warden(&["audit", "verify", "--database", &db, "--key-file", log_key]);
    assert!(ok, "{text}");
    // Another key did not sign this log.
    let other = dir.path().join("other.key");
    let (ok, _) = warden(&[
        "audit",
        "verify",
        export_s,
        "--key-file",
        other.to_str().unwrap(),
    ]);
    assert!(!ok, "verifying with a key that does not exist must fail");
}
