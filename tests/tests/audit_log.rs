//! The Merkle audit log end to end: signed checkpoints, RFC 9162 proofs over gRPC,
//! provable exports that verify offline, and offline verification of the database that
//! names the record behind every kind of tampering.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::PathBuf;

use warden_integration_tests::*;
use warden_merkle::checkpoint::Checkpoint;
use warden_merkle::{Hash, VerifierKey, verify_consistency, verify_inclusion};
use warden_proto::common::v1::{AuditDecision, AuditKind, AuditRecord};
use warden_proto::gateway::v1 as gw;
use warden_proto::storage::v1 as st;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;

fn h(hex_text: &str) -> Hash {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

/// Appends `n` records for `tenant` as the gateway (one commit each).
async fn append(c: &Cluster, tenant: &str, n: usize) {
    let mut log = AuditLogClient::new(c.channel("gateway", c.storage_addr));
    for i in 0..n {
        log.append(st::AppendRequest {
            record: Some(AuditRecord {
                kind: AuditKind::Denial as i32,
                tenant_id: tenant.into(),
                caller: format!("agent/a{i}"),
                decision: AuditDecision::Denied as i32,
                reason: "OPT_IN_REQUIRED".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    }
}

fn log_key(c: &Cluster) -> VerifierKey {
    warden_storage::log_key::read_key(&c.dir.path().join("keys/audit-log.key"))
        .unwrap()
        .verifier()
}

async fn verify_db(c: &Cluster) -> warden_storage::LogReport {
    let db = warden_storage::Db::connect(&c.db_url).await.unwrap();
    warden_storage::verify_log(&db, &log_key(c), "warden.local/audit", &[], &|_, _| {})
        .await
        .unwrap()
}

#[tokio::test]
async fn proofs_verify_against_signed_checkpoints_and_fail_for_the_neighbours() {
    let c = Cluster::start().await;
    append(&c, "acme", 5).await;
    let mut audit = c.audit("compliance");
    let old = audit
        .get_checkpoint(gw::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    append(&c, "globex", 4).await;
    let new = audit
        .get_checkpoint(gw::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner();
    let key = log_key(&c);
    assert_eq!(new.verifier_key, key.to_string());
    assert_eq!(new.key_id, format!("{:08x}", key.key_id()));
    let (cp, _) = Checkpoint::open(new.note.as_bytes(), "warden.local/audit", &key, &[]).unwrap();
    assert_eq!(
        (cp.size, hex::encode(cp.root)),
        (new.tree_size, new.root_hash.clone())
    );
    assert_eq!(new.tree_size, old.tree_size + 4);

    for seq in 1..=new.tree_size {
        let p = audit
            .get_inclusion_proof(gw::GetInclusionProofRequest {
                sequence: seq,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((p.leaf_index, p.tree_size), (seq - 1, new.tree_size));
        assert_eq!(p.checkpoint, new.note);
        let hashes: Vec<Hash> = p.hashes.iter().map(|x| h(x)).collect();
        let leaf = warden_merkle::leaf_hash(&p.entry);
        assert_eq!(hex::encode(leaf), p.leaf_hash);
        verify_inclusion(seq - 1, cp.size, &leaf, &hashes, &cp.root).unwrap();
        // The neighbouring index and size do not verify.
        if seq < new.tree_size {
            assert!(verify_inclusion(seq, cp.size, &leaf, &hashes, &cp.root).is_err());
        }
        // Nor against the neighbouring (older) checkpoint.
        assert!(
            verify_inclusion(seq - 1, old.tree_size, &leaf, &hashes, &h(&old.root_hash)).is_err()
        );
    }
    // By record id, against the older checkpoint.
    let first = c.audit_records("acme").await.remove(0);
    let p = audit
        .get_inclusion_proof(gw::GetInclusionProofRequest {
            record_id: first.id.clone(),
            tree_size: old.tree_size,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (p.leaf_index, p.tree_size),
        (first.sequence - 1, old.tree_size)
    );
    assert_eq!(p.checkpoint, old.note);
    let hashes: Vec<Hash> = p.hashes.iter().map(|x| h(x)).collect();
    verify_inclusion(
        p.leaf_index,
        old.tree_size,
        &h(&p.leaf_hash),
        &hashes,
        &h(&old.root_hash),
    )
    .unwrap();

    let cons = audit
        .get_consistency_proof(gw::GetConsistencyProofRequest {
            old_size: old.tree_size,
            new_size: new.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (cons.old_checkpoint.as_str(), cons.new_checkpoint.as_str()),
        (old.note.as_str(), new.note.as_str())
    );
    let hashes: Vec<Hash> = cons.hashes.iter().map(|x| h(x)).collect();
    let (r1, r2) = (h(&old.root_hash), h(&new.root_hash));
    verify_consistency(old.tree_size, new.tree_size, &r1, &r2, &hashes).unwrap();
    assert!(verify_consistency(old.tree_size + 1, new.tree_size, &r1, &r2, &hashes).is_err());
    assert!(verify_consistency(old.tree_size, new.tree_size - 1, &r1, &r2, &hashes).is_err());
    assert!(verify_consistency(old.tree_size - 1, new.tree_size, &r1, &r2, &hashes).is_err());

    // Beyond the head, or no record named: clear refusals.
    let e = audit
        .get_inclusion_proof(gw::GetInclusionProofRequest {
            sequence: new.tree_size + 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    let e = audit
        .get_inclusion_proof(gw::GetInclusionProofRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Only compliance may ask.
    assert!(
        c.audit("admin")
            .get_checkpoint(gw::GetCheckpointRequest::default())
            .await
            .is_err()
    );
    c.stop().await;
}

async fn export(c: &Cluster, tenant: &str) -> String {
    let mut stream = c
        .audit("compliance")
        .export_audit_records(gw::ExportAuditRecordsRequest {
            tenant_id: tenant.into(),
            format: gw::ExportFormat::Provable as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        out.extend(chunk.data);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_provable_export_verifies_offline_holds_one_tenant_and_every_edit_is_named() {
    let c = Cluster::start().await;
    append(&c, "acme", 3).await;
    append(&c, "globex", 2).await;
    append(&c, "acme", 2).await;
    let text = export(&c, "acme").await;
    let key = log_key(&c);
    let r = warden::audit_verify::verify_export(&text, &key, &|_| {}).unwrap();
    // Five records and the export's own audit record, which the checkpoint covers.
    assert_eq!((r.tenant_id.as_str(), r.records), ("acme", 6));
    assert!(
        !text.contains("globex"),
        "another tenant's record in the export"
    );
    let lines: Vec<&str> = text.lines().collect();

    // Another log key is refused.
    let other = warden_merkle::SignerKey::from_seed("warden.local/audit", &[7; 32]).unwrap();
    let e = warden::audit_verify::verify_export(&text, &other.verifier(), &|_| {}).unwrap_err();
    assert!(e.what.contains("log key"), "{e}");

    // Any edit of a readable field, of the encoding, of the proof; a deleted, repeated or
    // reordered line: each is named.
    let edit = |n: usize, from: &str, to: &str| {
        let mut l = lines.clone();
        let changed = l[n].replacen(from, to, 1);
        assert_ne!(changed, l[n], "{from} not in line {n}");
        l[n] = &*Box::leak(changed.into_boxed_str());
        l.join("\n")
    };
    let cases = [
        (edit(2, "OPT_IN_REQUIRED", "OPT_IN_REQUIREE"), 2),
        (
            edit(
                2,
                "\"decision\":\"AUDIT_DECISION_DENIED\"",
                "\"decision\":\"AUDIT_DECISION_ALLOWED\"",
            ),
            2,
        ),
        (
            edit(2, "\"tenant_id\":\"acme\"", "\"tenant_id\":\"acmf\""),
            2,
        ),
        (edit(3, "\"pb\":\"", "\"pb\":\"AA"), 3),
        (edit(3, "index ", "index 1"), 3),
    ];
    for (bad, line) in cases {
        let e = verify_both_ways(bad.as_bytes(), &key).unwrap_err();
        assert_eq!(e.line, line + 1, "{e}");
    }
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let e = verify_both_ways(swapped.join("\n").as_bytes(), &key).unwrap_err();
    assert!(e.what.contains("reordered"), "{e}");
    let mut dup = lines.clone();
    dup.insert(3, lines[2]);
    assert!(verify_both_ways(dup.join("\n").as_bytes(), &key).is_err());
    // A line that is not UTF-8 (only a file can hold one) is named, the lines before pass.
    let mut bytes = text.as_bytes().to_vec();
    let at = lines[..4].iter().map(|l| l.len() + 1).sum::<usize>() + 10;
    bytes[at] = 0xff;
    let e = verify_both_ways(&bytes, &key).unwrap_err();
    assert_eq!((e.line, e.what.as_str()), (5, "the line is not UTF-8 text"));
    // The whole export read from a file, as `warden audit verify FILE` reads it.
    assert_eq!(verify_both_ways(text.as_bytes(), &key), Ok(r));
    c.stop().await;
}

/// An export checked as text in memory and as read in pieces of every size from one byte
/// (a piece a line) to the whole file: each gives the same verdict, which is returned.
fn verify_both_ways(
    export: &[u8],
    key: &warden_merkle::VerifierKey,
) -> Result<warden::audit_verify::ExportReport, warden::audit_verify::Bad> {
    let read = |piece_bytes: usize| {
        warden::audit_verify::verify_export_read(export, piece_bytes, key, &|_| {})
    };
    let whole = read(usize::MAX / 2);
    for piece_bytes in [1, 700, 3000] {
        assert_eq!(read(piece_bytes), whole, "pieces of {piece_bytes} bytes");
    }
    if let Ok(text) = std::str::from_utf8(export) {
        assert_eq!(
            warden::audit_verify::verify_export(text, key, &|_| {}),
            whole,
            "in memory"
        );
    }
    whole
}

async fn exec(c: &Cluster, sql: &str) {
    sqlx::query(sql).execute(&c.db().await).await.unwrap();
}

#[tokio::test]
async fn verify_names_the_record_behind_every_kind_of_tampering_with_the_database() {
    let c = Cluster::start().await;
    append(&c, "acme", 6).await;
    let good = verify_db(&c).await;
    assert_eq!(good.first_bad, None);
    assert!(good.records >= 6 && good.checkpoints >= 6, "{good:?}");

    // Each change is made, named, then undone from a copy of the row.
    exec(&c, "CREATE TABLE saved AS SELECT * FROM audit_log").await;
    let restore = "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM saved";
    let cases: [(&str, u64); 7] = [
        (
            "UPDATE audit_log SET tenant_id = 'globex' WHERE sequence = 3",
            3,
        ),
        ("UPDATE audit_log SET decision = 1 WHERE sequence = 2", 2),
        (
            "UPDATE audit_log SET time_ms = time_ms + 1 WHERE sequence = 4",
            4,
        ),
        (
            "UPDATE audit_log SET record = record || 'x' WHERE sequence = 5",
            5,
        ),
        (
            "UPDATE audit_log SET record = (SELECT record FROM saved WHERE sequence = 2) WHERE sequence = 1",
            1,
        ),
        ("DELETE FROM audit_log WHERE sequence = 3", 3),
        (
            "UPDATE audit_log SET commitment = '00' WHERE sequence = 6",
            6,
        ),
    ];
    for (sql, seq) in cases {
        for s in restore.split("; ") {
            exec(&c, s).await;
        }
        exec(&c, sql).await;
        let r = verify_db(&c).await;
        let (bad, what) = r
            .first_bad
            .clone()
            .unwrap_or_else(|| panic!("{sql} was not caught"));
        assert_eq!(bad, seq, "{sql}: {what}");
    }
    for s in restore.split("; ") {
        exec(&c, s).await;
    }
    assert_eq!(verify_db(&c).await.first_bad, None);

    // Reordering two records.
    exec(&c, "UPDATE audit_log SET sequence = -1 WHERE sequence = 2").await;
    exec(&c, "UPDATE audit_log SET sequence = 2 WHERE sequence = 3").await;
    exec(&c, "UPDATE audit_log SET sequence = 3 WHERE sequence = -1").await;
    assert_eq!(verify_db(&c).await.first_bad.unwrap().0, 2);
    for s in restore.split("; ") {
        exec(&c, s).await;
    }

    // Inserting a record after the fact: not covered by any checkpoint.
    let n = good.records;
    exec(&c, &format!("INSERT INTO audit_log (sequence, id, tenant_id, time_ms, decision, record, hash, commitment) SELECT {}, 'forged', tenant_id, time_ms, decision, record, hash, commitment FROM saved WHERE sequence = 1", n + 1)).await;
    assert_eq!(verify_db(&c).await.first_bad.unwrap().0, n + 1);
    exec(
        &c,
        &format!("DELETE FROM audit_log WHERE sequence = {}", n + 1),
    )
    .await;

    // Truncating the tail (records, tiles and checkpoints): a published checkpoint catches it.
    let db = warden_storage::Db::connect(&c.db_url).await.unwrap();
    let head: String =
        sqlx::query_scalar("SELECT note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
            .fetch_one(&c.db().await)
            .await
            .unwrap();
    exec(
        &c,
        &format!("DELETE FROM audit_log WHERE sequence > {}", n - 2),
    )
    .await;
    assert_eq!(
        verify_db(&c).await.first_bad.unwrap().0,
        n - 1,
        "the stored checkpoints name the cut"
    );
    exec(
        &c,
        &format!("DELETE FROM audit_checkpoints WHERE tree_size > {}", n - 2),
    )
    .await;
    let r =
        warden_storage::verify_log(&db, &log_key(&c), "warden.local/audit", &[head], &|_, _| {})
            .await
            .unwrap();
    assert_eq!(r.first_bad.unwrap().0, n - 1);
    for s in restore.split("; ") {
        exec(&c, s).await;
    }

    // Re-signing the checkpoints with another key: verify with the log key refuses them.
    let other = warden_merkle::SignerKey::from_seed("warden.local/audit", &[9; 32]).unwrap();
    let notes: Vec<(i64, String)> = sqlx::query_as("SELECT tree_size, note FROM audit_checkpoints")
        .fetch_all(&c.db().await)
        .await
        .unwrap();
    for (size, note) in notes {
        let text = warden_merkle::note::parse(note.as_bytes()).unwrap().text;
        let forged = warden_merkle::note::sign(&text, &[&other]).unwrap();
        sqlx::query("UPDATE audit_checkpoints SET note = $1 WHERE tree_size = $2")
            .bind(forged)
            .bind(size)
            .execute(&c.db().await)
            .await
            .unwrap();
    }
    let (_, what) = verify_db(&c).await.first_bad.unwrap();
    assert!(what.contains("log key"), "{what}");
    c.stop().await;
}

#[tokio::test]
async fn storage_refuses_to_start_with_a_log_key_that_did_not_sign_its_last_checkpoint() {
    let c = Cluster::start().await;
    append(&c, "acme", 2).await;
    let url = c.db_url.clone();
    let key_path: PathBuf = c.dir.path().join("keys/audit-log.key");
    let other = c.dir.path().join("other/audit-log.key");
    let db = warden_storage::Db::connect(&url).await.unwrap();
    // A missing key file for a log that has records is refused, never re-created.
    let e = warden_storage::log_key_file(&db, &other, "warden.local/audit", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // Another key is refused when storage opens.
    let signer = warden_storage::KeyFileSigner::from_key(
        "warden.local/audit",
        warden_merkle::SignerKey::from_seed("warden.local/audit", &[3; 32]).unwrap(),
    )
    .unwrap();
    let keys = warden_storage::key_file_provider(&db, &c.dir.path().join("keys/kek"), None)
        .await
        .unwrap();
    let opened = warden_storage::Storage::open_with(
        db.clone(),
        std::sync::Arc::new(keys),
        warden_storage::StorageOptions {
            log_signer: Some(std::sync::Arc::new(signer)),
            ..Default::default()
        },
    )
    .await;
    let e = opened
        .err()
        .expect("opened with another log key")
        .to_string();
    assert!(e.contains("does not verify with this log key"), "{e}");
    // The right key opens it.
    let right = warden_storage::log_key_file(&db, &key_path, "warden.local/audit", None)
        .await
        .unwrap();
    assert_eq!(warden_storage::LogSigner::verifier(&right), log_key(&c));
    c.stop().await;
}
