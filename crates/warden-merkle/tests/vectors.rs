//! The transparency-dev/merkle proof vectors (RFC 6962 / 9162): every happy path is
//! accepted and every mutation rejected. Under `CI=true` missing vectors fail the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use base64::Engine;
use warden_merkle::{Hash, verify_consistency, verify_inclusion};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/merkle/testdata"
);

fn probes(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(DATA).join(kind);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and the Merkle vectors are missing at {}",
            dir.display()
        );
        eprintln!("SKIPPED: no Merkle vectors at {}", dir.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    while let Some(d) = dirs.pop() {
        if d.is_dir() {
            dirs.extend(std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()));
        } else if d.extension().is_some_and(|x| x == "json") {
            out.push(d);
        }
    }
    out.sort();
    out
}

fn b64(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD.decode(s).ok(),
        _ => None,
    }
}

fn hash(v: &serde_json::Value) -> Option<Hash> {
    b64(v)?.try_into().ok()
}

fn proof(v: &serde_json::Value) -> Option<Vec<Hash>> {
    match v {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

#[test]
fn inclusion_vectors() {
    let mut checked = 0;
    for path in probes("inclusion") {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let verdict = (|| {
            let leaf = hash(&v["leafHash"])?;
            let root = b64(&v["root"])?;
            let proof = proof(&v["proof"])?;
            let index = v["leafIdx"].as_u64()?;
            let size = v["treeSize"].as_u64()?;
            Some(verify_inclusion(index, size, &leaf, &proof, &root).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(verdict, !want_err, "{}", path.display());
        checked += 1;
    }
    if checked > 0 {
        assert!(checked > 50, "{checked}");
    }
}

#[test]
fn consistency_vectors() {
    let mut checked = 0;
    for path in probes("consistency") {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let verdict = (|| {
            let root1 = b64(&v["root1"])?;
            let root2 = b64(&v["root2"])?;
            let proof = proof(&v["proof"])?;
            let size1 = v["size1"].as_u64()?;
            let size2 = v["size2"].as_u64()?;
            Some(verify_consistency(size1, size2, &root1, &root2, &proof).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(verdict, !want_err, "{}", path.display());
        checked += 1;
    }
    if checked > 0 {
        assert!(checked > 50, "{checked}");
    }
}
