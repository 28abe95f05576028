//! tlog-proof: the C2SP spec example (c2sp.org/tlog-proof) and transparency-dev/formats
//! `proof/tlog_proof_test.go`'s expected texts and error cases, then proofs exported from
//! a signed log that verify offline, and fail for another leaf, index, hash or checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use warden_merkle::note::SignerKey;
use warden_merkle::tiles::{self, inclusion_proof_from_tiles};
use warden_merkle::tlog_proof::HEADER;
use warden_merkle::{
    CheckpointError, Checkpointer, Hash, ProofError, TlogProof, TlogProofError, leaf_hash, root,
};

#[test]
fn the_spec_example_parses() {
    let text = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
— witness1.example mJirIklj[...]qY9v2B/5bg==
— witness2.example TnKKVHLX[...]xwYwrSjgow==
— witness3.example S4X82uH5[...]3oEcROGLFQ==
";
    let p = TlogProof::parse(text.as_bytes()).unwrap();
    assert_eq!(p.index, 73894);
    assert_eq!(p.hashes.len(), 5);
    assert!(
        p.extra
            .as_ref()
            .unwrap()
            .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz")
    );
    assert!(p.checkpoint.starts_with("example.com/fancylog\n109482\n"));
    assert_eq!(p.to_text(), text);
}

fn sha(s: &str) -> Hash {
    Sha256::digest(s.as_bytes()).into()
}

#[test]
fn transparency_dev_marshal_cases() {
    let (h1, h2) = (sha("hash1"), sha("hash2"));
    let (b1, b2) = (B64.encode(h1), B64.encode(h2));
    let cases = [
        (
            TlogProof {
                extra: None,
                index: 5,
                hashes: vec![h1, h2],
                checkpoint: "test checkpoint\n".into(),
            },
            format!("c2sp.org/tlog-proof@v1\nindex 5\n{b1}\n{b2}\n\ntest checkpoint\n"),
        ),
        (
            TlogProof {
                extra: Some(b"extra information".to_vec()),
                index: 10,
                hashes: vec![h1],
                checkpoint: "checkpoint data\n".into(),
            },
            format!(
                "c2sp.org/tlog-proof@v1\nextra {}\nindex 10\n{b1}\n\ncheckpoint data\n",
                B64.encode("extra information")
            ),
        ),
        (
            TlogProof {
                extra: None,
                index: 0,
                hashes: vec![],
                checkpoint: "checkpoint\n".into(),
            },
            "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n".to_owned(),
        ),
    ];
    for (proof, text) in cases {
        assert_eq!(proof.to_text(), text);
        assert_eq!(TlogProof::parse(text.as_bytes()).unwrap(), proof);
    }
}

#[test]
fn transparency_dev_error_cases_and_stricter_ones() {
    let long_hash = B64.encode([0u8; 64]);
    let cases: Vec<(String, TlogProofError)> = vec![
        (
            "wrong-header\nindex 0\n\ncheckpoint\n".into(),
            TlogProofError::MissingHeader,
        ),
        (
            format!("{HEADER}\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n"),
            TlogProofError::BadExtra,
        ),
        (
            format!("{HEADER}\n\n\ncheckpoint\n"),
            TlogProofError::BadIndex(2),
        ),
        (
            format!("{HEADER}\nindex notanumber\n\ncheckpoint\n"),
            TlogProofError::BadIndex(2),
        ),
        (
            format!("{HEADER}\nindex -5\n\ncheckpoint\n"),
            TlogProofError::BadIndex(2),
        ),
        (
            format!("{HEADER}\nindex 0\n!!notbase64!!\n\ncheckpoint\n"),
            TlogProofError::BadHash(3),
        ),
        (
            format!("{HEADER}\nindex 0\n{long_hash}\n\ncheckpoint\n"),
            TlogProofError::BadHash(3),
        ),
        // Stricter than Go: one spelling per proof, and a checkpoint must follow.
        (
            format!("{HEADER}\nindex 007\n\ncheckpoint\n"),
            TlogProofError::BadIndex(2),
        ),
        (
            format!("{HEADER}\nextra x\nindex 1\n\ncheckpoint\n"),
            TlogProofError::BadExtra,
        ),
        (format!("{HEADER}\nindex 1\n"), TlogProofError::NoCheckpoint),
        (
            format!("{HEADER}\nindex 1\n\n"),
            TlogProofError::NoCheckpoint,
        ),
        (
            format!("{HEADER}\r\nindex 1\n\ncheckpoint\n"),
            TlogProofError::MissingHeader,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(TlogProof::parse(text.as_bytes()), Err(want), "{text:?}");
    }
    assert_eq!(TlogProof::parse(b"\xff"), Err(TlogProofError::NotUtf8));
}

#[test]
fn an_exported_proof_verifies_offline_and_nothing_else_does() {
    let origin = "audit.warden.example/tenant-a";
    let key = SignerKey::from_seed(origin, &[42; 32]).unwrap();
    let cp = Checkpointer::new(origin, key).unwrap();
    let log = cp.verifier();
    let witness = SignerKey::from_seed("witness.example", &[43; 32]).unwrap();

    let entries: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let checkpoint = cp.sign(None, 300, root(&leaves), &[]).unwrap();
    let cosigned = warden_merkle::note::parse(checkpoint.as_bytes())
        .unwrap()
        .cosign(&[&witness])
        .unwrap();
    let t = tiles::tiles(&leaves);

    for index in [0u64, 1, 255, 256, 299] {
        let proof = TlogProof {
            extra: None,
            index,
            hashes: inclusion_proof_from_tiles(index, 300, &t).unwrap(),
            checkpoint: cosigned.clone(),
        };
        let text = proof.to_text();
        let back = TlogProof::parse(text.as_bytes()).unwrap();
        let leaf = &leaves[index as usize];
        let (c, v) = back
            .verify(leaf, origin, &log, &[witness.verifier()])
            .unwrap();
        assert_eq!((c.size, v.verified.len()), (300, 2));
        // Without the witness key the log's signature still suffices.
        back.verify(leaf, origin, &log, &[]).unwrap();

        // Another entry, another index, a changed hash: not included.
        let other = leaf_hash(b"record that was never logged");
        assert!(matches!(
            back.verify(&other, origin, &log, &[]),
            Err(TlogProofError::NotIncluded(ProofError::RootMismatch))
        ));
        let mut moved = back.clone();
        moved.index = (index + 1) % 300;
        assert!(moved.verify(leaf, origin, &log, &[]).is_err());
        let mut bent = back.clone();
        bent.hashes[0][0] ^= 1;
        assert!(bent.verify(leaf, origin, &log, &[]).is_err());
        let mut past_end = back.clone();
        past_end.index = 300;
        assert!(matches!(
            past_end.verify(leaf, origin, &log, &[]),
            Err(TlogProofError::NotIncluded(
                ProofError::IndexOutOfRange { .. }
            ))
        ));
    }

    // A checkpoint changed after signing, or by another log, or of another origin: refused.
    let proof = TlogProof {
        extra: Some(b"unauthenticated".to_vec()),
        index: 7,
        hashes: inclusion_proof_from_tiles(7, 300, &t).unwrap(),
        checkpoint: cosigned.replacen("\n300\n", "\n299\n", 1),
    };
    assert!(matches!(
        proof.verify(&leaves[7], origin, &log, &[]),
        Err(TlogProofError::Checkpoint(CheckpointError::Note(_)))
    ));
    let proof = TlogProof {
        checkpoint: cosigned.clone(),
        ..proof
    };
    let impostor = SignerKey::from_seed(origin, &[44; 32]).unwrap().verifier();
    assert!(proof.verify(&leaves[7], origin, &impostor, &[]).is_err());
    assert!(matches!(
        proof.verify(&leaves[7], "audit.warden.example/tenant-b", &log, &[]),
        Err(TlogProofError::Checkpoint(
            CheckpointError::WrongOrigin { .. }
        ))
    ));
    // A witness signature that fails rejects the proof even though the log's verifies.
    let mut n = warden_merkle::note::parse(cosigned.as_bytes()).unwrap();
    n.signatures[1].bytes[10] ^= 1;
    let proof = TlogProof {
        checkpoint: n.encode().unwrap(),
        ..proof
    };
    assert!(matches!(
        proof.verify(&leaves[7], origin, &log, &[witness.verifier()]),
        Err(TlogProofError::Checkpoint(CheckpointError::Note(
            warden_merkle::NoteError::InvalidSignature { .. }
        )))
    ));
    // Not knowing that witness, the proof stands on the log's signature.
    proof.verify(&leaves[7], origin, &log, &[]).unwrap();
}
