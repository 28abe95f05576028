//! Checkpoints: the real sum.golang.org checkpoint published in transparency-dev/formats
//! `log/note_test.go` (with sum.golang.org's key), the C2SP tlog-checkpoint spec example
//! (structure only: the spec publishes no key), strict parsing, and a `Checkpointer` that
//! refuses to sign a smaller, forked or inconsistent tree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use warden_merkle::checkpoint::check_extends;
use warden_merkle::note::{self, NoteError, SignerKey, VerifierKey};
use warden_merkle::{
    Checkpoint, CheckpointError, Checkpointer, Hash, ProofError, consistency_proof, empty_root,
    leaf_hash, root,
};

const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("audit record {i}").as_bytes()))
        .collect()
}

#[test]
fn the_sum_golang_org_checkpoint_opens() {
    let log = VerifierKey::parse(SUMDB_VKEY).unwrap();
    let (c, v) =
        Checkpoint::open(SUMDB_NOTE.as_bytes(), "go.sum database tree", &log, &[]).unwrap();
    assert_eq!(c.origin, "go.sum database tree");
    assert_eq!(c.size, 6476701);
    assert_eq!(
        B64.encode(c.root),
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="
    );
    assert!(c.extensions.is_empty());
    assert_eq!(
        c.to_text(),
        v.text,
        "formatting gives back the signed bytes"
    );

    // transparency-dev's "wrong logID" case.
    assert!(matches!(
        Checkpoint::open(
            SUMDB_NOTE.as_bytes(),
            "Go rocks but I might have the wrong ID",
            &log,
            &[]
        ),
        Err(CheckpointError::WrongOrigin { .. })
    ));
    // Signed by a witness we know but not by the log: not a checkpoint of this log.
    let witness = SignerKey::from_seed("witness.example", &[9; 32]).unwrap();
    let other_log = SignerKey::from_seed("sum.golang.org", &[8; 32]).unwrap();
    let cosigned = note::parse(SUMDB_NOTE.as_bytes())
        .unwrap()
        .cosign(&[&witness])
        .unwrap();
    assert!(matches!(
        Checkpoint::open(
            cosigned.as_bytes(),
            "go.sum database tree",
            &other_log.verifier(),
            &[witness.verifier()]
        ),
        Err(CheckpointError::NotSignedByLog { .. })
    ));
    let (_, v) = Checkpoint::open(
        cosigned.as_bytes(),
        "go.sum database tree",
        &log,
        &[witness.verifier()],
    )
    .unwrap();
    assert_eq!(v.verified.len(), 2);
}

#[test]
fn the_c2sp_spec_example_parses() {
    let msg = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    let n = note::parse(msg.as_bytes()).unwrap();
    let c = Checkpoint::parse(&n.text).unwrap();
    assert_eq!(
        (c.origin.as_str(), c.size),
        ("example.com/behind-the-sofa", 20852163)
    );
    assert_eq!(c.to_text(), n.text);
    assert_eq!(n.signatures[0].name, "example.com/behind-the-sofa");
}

#[test]
fn parsing_accepts_one_spelling_only() {
    let r = B64.encode([7u8; 32]);
    let e = B64.encode(empty_root());
    let ok = Checkpoint::parse(&format!("log.example\n5\n{r}\next one\n")).unwrap();
    assert_eq!(ok.extensions, ["ext one"]);
    assert_eq!(
        Checkpoint::parse(&format!("log.example\n0\n{e}\n"))
            .unwrap()
            .size,
        0
    );
    let bad = [
        (
            format!("log.example\n5\n{r}"),
            CheckpointError::NoFinalNewline,
        ),
        (
            "log.example\n5\n".to_owned(),
            CheckpointError::TooFewLines(2),
        ),
        (format!("\n5\n{r}\n"), CheckpointError::BadOrigin),
        (
            format!("log.example \n5\n{r}\n"),
            CheckpointError::BadOrigin,
        ),
        (
            format!(" log.example\n5\n{r}\n"),
            CheckpointError::BadOrigin,
        ),
        (format!("log.example\n05\n{r}\n"), CheckpointError::BadSize),
        (format!("log.example\n+5\n{r}\n"), CheckpointError::BadSize),
        (format!("log.example\n5 \n{r}\n"), CheckpointError::BadSize),
        (format!("log.example\n\n{r}\n"), CheckpointError::BadSize),
        (
            format!("log.example\n18446744073709551616\n{r}\n"),
            CheckpointError::BadSize,
        ),
        (
            format!("log.example\n5\n{}\n", B64.encode([7u8; 31])),
            CheckpointError::BadRoot,
        ),
        (
            format!("log.example\n5\n{}\n", r.trim_end_matches('=')),
            CheckpointError::BadRoot,
        ),
        (
            format!("log.example\n0\n{r}\n"),
            CheckpointError::BadEmptyRoot,
        ),
        (
            format!("log.example\n5\n{r}\n\n"),
            CheckpointError::EmptyExtension(1),
        ),
    ];
    for (text, want) in bad {
        assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
    }
    // A root whose unused base64 bits are set decodes to the same bytes: refused.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut loose = r.clone().into_bytes();
    let last = loose.len() - 2; // the last character before the '=' pad
    let v = ALPHABET.iter().position(|c| *c == loose[last]).unwrap();
    loose[last] = ALPHABET[v ^ 1];
    let loose = String::from_utf8(loose).unwrap();
    assert_eq!(
        Checkpoint::parse(&format!("log.example\n5\n{loose}\n")),
        Err(CheckpointError::BadRoot)
    );
}

#[test]
fn the_checkpointer_signs_a_growing_log_and_refuses_forks() {
    let key = SignerKey::from_seed("audit.warden.example/tenant-a", &[5; 32]).unwrap();
    let cp = Checkpointer::new("audit.warden.example/tenant-a", key).unwrap();
    let log = cp.verifier();
    let all = leaves(40);

    // First checkpoint: no predecessor.
    let first = cp.sign(None, 0, empty_root(), &[]).unwrap();
    // From the empty tree, any growth is consistent (and needs no proof).
    let c10 = cp
        .sign(Some(first.as_bytes()), 10, root(&all[..10]), &[])
        .unwrap();
    let p = consistency_proof(&all[..25], 10).unwrap();
    let c25 = cp
        .sign(Some(c10.as_bytes()), 25, root(&all[..25]), &p)
        .unwrap();
    let (c, _) =
        Checkpoint::open(c25.as_bytes(), "audit.warden.example/tenant-a", &log, &[]).unwrap();
    assert_eq!((c.size, c.root), (25, root(&all[..25])));
    // Re-signing the same head is allowed.
    cp.sign(Some(c25.as_bytes()), 25, root(&all[..25]), &[])
        .unwrap();

    // Smaller: refused.
    assert_eq!(
        cp.sign(Some(c25.as_bytes()), 24, root(&all[..24]), &[]),
        Err(CheckpointError::Shrinks {
            previous: 25,
            new: 24
        })
    );
    // Same size, another root: a fork.
    assert_eq!(
        cp.sign(Some(c25.as_bytes()), 25, root(&all[1..26]), &[]),
        Err(CheckpointError::Fork { size: 25 })
    );
    // Bigger, but a rewritten history: the proof of the rewritten tree does not link.
    let mut rewritten = all.clone();
    rewritten[3] = leaf_hash(b"rewritten");
    let p = consistency_proof(&rewritten[..40], 25).unwrap();
    assert!(matches!(
        cp.sign(Some(c25.as_bytes()), 40, root(&rewritten), &p),
        Err(CheckpointError::Inconsistent {
            previous: 25,
            new: 40,
            source: ProofError::RootMismatch
        })
    ));
    // Bigger, honest root, but no or a wrong proof.
    assert!(matches!(
        cp.sign(Some(c25.as_bytes()), 40, root(&all), &[]),
        Err(CheckpointError::Inconsistent { .. })
    ));
    let wrong = consistency_proof(&all, 24).unwrap();
    assert!(matches!(
        cp.sign(Some(c25.as_bytes()), 40, root(&all), &wrong),
        Err(CheckpointError::Inconsistent { .. })
    ));
    // The honest extension is signed.
    let p = consistency_proof(&all, 25).unwrap();
    cp.sign(Some(c25.as_bytes()), 40, root(&all), &p).unwrap();
}

#[test]
fn the_checkpointer_trusts_only_its_own_previous_checkpoint() {
    let key = SignerKey::from_seed("log.example", &[5; 32]).unwrap();
    let cp = Checkpointer::new("log.example", key).unwrap();
    let all = leaves(8);
    // A previous checkpoint signed by another key (even of the same name) is refused.
    let stranger = SignerKey::from_seed("log.example", &[6; 32]).unwrap();
    let foreign = note::sign(
        &Checkpoint::new("log.example", 4, root(&all[..4]))
            .unwrap()
            .to_text(),
        &[&stranger],
    )
    .unwrap();
    assert_eq!(
        cp.sign(Some(foreign.as_bytes()), 8, root(&all), &[]),
        Err(CheckpointError::Note(NoteError::NoKnownSignature))
    );
    // So is one of another origin, signed by our key.
    let other = Checkpointer::new(
        "other.example",
        SignerKey::from_seed("log.example", &[5; 32]).unwrap(),
    )
    .unwrap();
    let theirs = other.sign(None, 4, root(&all[..4]), &[]).unwrap();
    assert!(matches!(
        cp.sign(Some(theirs.as_bytes()), 8, root(&all), &[]),
        Err(CheckpointError::WrongOrigin { .. })
    ));
    // A tampered previous checkpoint is refused, not trusted.
    let ours = cp.sign(None, 4, root(&all[..4]), &[]).unwrap();
    let tampered = ours.replacen("\n4\n", "\n3\n", 1);
    assert!(matches!(
        cp.sign(Some(tampered.as_bytes()), 8, root(&all), &[]),
        Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
    ));
    // The note it signed last is trusted only byte for byte: with one signature bit
    // changed it is verified, and refused.
    let ours = cp.sign(None, 4, root(&all[..4]), &[]).unwrap();
    let sig = ours.trim_end().rsplit(' ').next().unwrap();
    let mut raw = B64.decode(sig).unwrap();
    raw[20] ^= 1;
    let forged = ours.replacen(sig, &B64.encode(&raw), 1);
    assert!(matches!(
        cp.sign(Some(forged.as_bytes()), 8, root(&all), &[]),
        Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
    ));
    cp.sign(Some(ours.as_bytes()), 4, root(&all[..4]), &[])
        .unwrap();
    // Origins are checked when the checkpointer is made.
    let k = SignerKey::from_seed("log.example", &[5; 32]).unwrap();
    assert_eq!(
        Checkpointer::new(" log.example", k).err(),
        Some(CheckpointError::BadOrigin)
    );
}

#[test]
fn check_extends_follows_every_prefix() {
    let all = leaves(33);
    for n in 0..=33usize {
        let next = Checkpoint::new("log.example", n as u64, root(&all[..n])).unwrap();
        for m in 0..=n {
            let prev = Checkpoint::new("log.example", m as u64, root(&all[..m])).unwrap();
            let proof = if m == 0 {
                Vec::new()
            } else {
                consistency_proof(&all[..n], m).unwrap()
            };
            check_extends(&prev, &next, &proof).unwrap();
            if m < n {
                assert!(check_extends(&next, &prev, &proof).is_err());
            }
        }
    }
}
