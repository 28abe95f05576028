//! Signed notes against published vectors, byte for byte:
//!
//! - Go's `golang.org/x/mod/sumdb/note` package documentation and `note_test.go` (the
//!   PeterNeumann note, its signer and verifier keys, the EnochRoot cosignature and key).
//! - The C2SP signed-note spec's example (c2sp.org/signed-note, the Quasimodo note). The
//!   spec publishes no public key for it, so it is checked for structure and for being
//!   refused as unverified, never as verified.
//! - transparency-dev/formats `log/note_test.go`: a real sum.golang.org checkpoint with its
//!   published key, and three more keys (monkeys, bananas, witness) that cosign it.
//!
//! Plus: sign-then-open round trips, and every single-byte mutation of a signed note is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use warden_merkle::note::{self, KeyError, NoteError, SignerKey, VerifierKey};

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// The Go package documentation's "well-formed signed note".
fn peter_note() -> String {
    format!("{TEXT}\n{PETER_SIG}")
}

fn vkey(s: &str) -> VerifierKey {
    VerifierKey::parse(s).unwrap()
}

#[test]
fn go_doc_example_opens_with_its_verifier_key() {
    let v = note::open(peter_note().as_bytes(), &[vkey(PETER_VKEY)]).unwrap();
    assert_eq!(v.text, TEXT);
    assert_eq!(v.verified.len(), 1);
    assert_eq!(v.verified[0].name, "PeterNeumann");
    assert_eq!(v.verified[0].key_id, 0xc74f20a3);
    assert!(v.unverified.is_empty());
    assert_eq!(vkey(PETER_VKEY).to_string(), PETER_VKEY);
}

#[test]
fn go_doc_signer_key_signs_the_published_bytes() {
    // Ed25519 is deterministic, so signing the text reproduces the published note.
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    assert_eq!(note::sign(TEXT, &[&signer]).unwrap(), peter_note());
    assert_eq!(signer.verifier().to_string(), PETER_VKEY);
    use secrecy::ExposeSecret;
    assert_eq!(signer.encode().expose_secret(), PETER_SKEY);
    assert_eq!(format!("{signer:?}"), "SignerKey(PeterNeumann+c74f20a3)");
}

#[test]
fn go_doubly_signed_note_verifies_both_and_ignores_unknown_keys() {
    let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let both = note::open(msg.as_bytes(), &[vkey(PETER_VKEY), vkey(ENOCH_VKEY)]).unwrap();
    assert_eq!(both.verified.len(), 2);
    assert_eq!(both.verified[1].key_id, 0xaf0cfe78);

    let peter_only = note::open(msg.as_bytes(), &[vkey(PETER_VKEY)]).unwrap();
    assert_eq!(peter_only.verified.len(), 1);
    assert_eq!(peter_only.unverified.len(), 1);
    assert_eq!(peter_only.unverified[0].name, "EnochRoot");

    assert_eq!(
        note::open(msg.as_bytes(), &[]),
        Err(NoteError::NoKnownSignature)
    );
}

#[test]
fn go_enoch_cosignature_is_what_cosign_appends() {
    // Adding a signature keeps the existing one first; a signer's old signature is replaced.
    let parsed = note::parse(peter_note().as_bytes()).unwrap();
    let peter = SignerKey::parse(PETER_SKEY).unwrap();
    let witness = SignerKey::from_seed("witness.example", &[7; 32]).unwrap();
    let cosigned = parsed.clone().cosign(&[&witness]).unwrap();
    assert!(cosigned.starts_with(&peter_note()));
    let v = note::open(cosigned.as_bytes(), &[vkey(PETER_VKEY), witness.verifier()]).unwrap();
    assert_eq!(v.verified.len(), 2);
    assert_eq!(parsed.cosign(&[&peter]).unwrap(), peter_note());
}

#[test]
fn c2sp_spec_example_parses_and_is_unverified_without_its_key() {
    let msg = "Ognuno sta solo sul cuor della terra\n\
               trafitto da un raggio di sole:\n\
               \n\
               ed è subito sera.\n\
               \n\
               — quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    let n = note::parse(msg.as_bytes()).unwrap();
    // The last blank line separates text from signatures; the text keeps its own.
    assert_eq!(
        n.text,
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    );
    assert_eq!(n.signatures.len(), 1);
    assert_eq!(n.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(n.signatures[0].key_id, 0x367ba04b);
    assert_eq!(n.signatures[0].bytes.len(), 64);
    // A key with the same name but another id is not its key: ignored, so unverified.
    let impostor = SignerKey::from_seed("quasimodo.example/salvatore", &[1; 32]).unwrap();
    assert_ne!(impostor.key_id(), 0x367ba04b);
    assert_eq!(
        note::open(msg.as_bytes(), &[impostor.verifier()]),
        Err(NoteError::NoKnownSignature)
    );
}

const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n— sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";
const COSIGNERS: [(&str, &str); 3] = [
    (
        "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT",
        "— monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRaU2NbvAnaepM6Y+8ww=\n",
    ),
    (
        "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M",
        "— bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x/MggS1mDR6t3/9rQw=\n",
    ),
    (
        "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN",
        "— witness 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU=\n",
    ),
];

#[test]
fn sum_golang_org_checkpoint_and_its_three_cosignatures_verify() {
    // A base64 key holding '+' must still parse: only the first two '+' separate fields.
    let log = vkey(SUMDB_VKEY);
    assert_eq!(log.to_string(), SUMDB_VKEY);
    note::open(SUMDB_NOTE.as_bytes(), std::slice::from_ref(&log)).unwrap();

    let mut msg = SUMDB_NOTE.to_owned();
    let mut known = vec![log];
    for (k, sig) in COSIGNERS {
        msg.push_str(sig);
        known.push(vkey(k));
    }
    let v = note::open(msg.as_bytes(), &known).unwrap();
    assert_eq!(v.verified.len(), 4);
    // Unknown cosigners are ignored, not fatal.
    let v = note::open(msg.as_bytes(), &known[..2]).unwrap();
    assert_eq!((v.verified.len(), v.unverified.len()), (2, 2));
}

#[test]
fn transparency_dev_signer_keys_derive_their_published_verifier_keys() {
    for (skey, vk) in [
        (
            "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ",
            "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs",
        ),
        (
            "PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci",
            "Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH",
        ),
        (
            "PRIVATE+KEY+KnownAgain+4893b26c+ARhZda/l25zjGZswYLDZsLNRzNpmv5wYTN9IoTr1OJ2+",
            "KnownAgain+4893b26c+AQ+LR7BFF/F/dkpIBjBpSvT0crkteizuUkavAoGeaYMj",
        ),
    ] {
        assert_eq!(SignerKey::parse(skey).unwrap().verifier().to_string(), vk);
    }
}

#[test]
fn go_mangled_verifier_and_signer_keys_are_refused() {
    // As Go's TestNewVerifier/TestNewSigner: every proper substring and every
    // single-byte increment of a valid key is refused.
    for good in [PETER_VKEY, PETER_SKEY] {
        let parse = |s: &str| {
            if good == PETER_VKEY {
                VerifierKey::parse(s).is_ok()
            } else {
                SignerKey::parse(s).is_ok()
            }
        };
        let b = good.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    let s = String::from_utf8_lossy(&b[i..j]);
                    assert!(!parse(&s), "accepted substring {s:?}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            let s = String::from_utf8_lossy(&m);
            assert!(!parse(&s), "accepted mutation {s:?}");
        }
    }
    // Go's two crafted keys: wrong length and unknown algorithm, each with a matching id.
    assert!(matches!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(KeyError::Malformed(_))
    ));
    assert_eq!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::UnknownAlgorithm(0x65))
    );
}

#[test]
fn go_malformed_notes_are_refused_with_a_reason() {
    let bad: [(String, NoteError); 7] = [
        (TEXT.to_owned(), NoteError::NoSignatureBlock),
        (format!("{TEXT}\n"), NoteError::NoSignatureBlock),
        (
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            NoteError::MissingFinalNewline,
        ),
        (
            format!("\x01{TEXT}\n{PETER_SIG}"),
            NoteError::ControlCharacter { offset: 0 },
        ),
        (
            format!("\u{1}{TEXT}"),
            NoteError::ControlCharacter { offset: 0 },
        ),
        (
            format!(
                "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            NoteError::BadSignatureLine {
                line: 1,
                problem: "the signature is not canonical base64",
            },
        ),
        (
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            NoteError::BadSignatureLine {
                line: 2,
                problem: "it does not start with an em dash and a space",
            },
        ),
    ];
    for (msg, want) in bad {
        assert_eq!(
            note::open(msg.as_bytes(), &[vkey(PETER_VKEY)]),
            Err(want),
            "{msg:?}"
        );
    }
    let mut not_utf8 = b"\xff".to_vec();
    not_utf8.extend_from_slice(peter_note().as_bytes());
    assert_eq!(note::parse(&not_utf8), Err(NoteError::NotUtf8));

    let many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
    assert_eq!(
        note::parse(many.as_bytes()),
        Err(NoteError::TooManySignatures)
    );
    // Up to the limit, a key that signs repeatedly counts once.
    let dup = format!("{TEXT}\n{}", PETER_SIG.repeat(16));
    let v = note::open(dup.as_bytes(), &[vkey(PETER_VKEY)]).unwrap();
    assert_eq!(v.verified.len(), 1);

    let forged = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        note::open(forged.as_bytes(), &[vkey(PETER_VKEY)]),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );
    // A failing known signature rejects the note even if another known one verifies.
    let mixed = format!(
        "{TEXT}\n{PETER_SIG}{}ABCD{}",
        &ENOCH_SIG[..60],
        &ENOCH_SIG[60..]
    );
    assert!(matches!(
        note::open(mixed.as_bytes(), &[vkey(PETER_VKEY), vkey(ENOCH_VKEY)]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn signing_refuses_text_that_would_not_read_back() {
    let k = SignerKey::from_seed("log.example", &[3; 32]).unwrap();
    assert_eq!(
        note::sign("abc", &[&k]),
        Err(NoteError::TextWithoutFinalNewline)
    );
    assert_eq!(
        note::sign("", &[&k]),
        Err(NoteError::TextWithoutFinalNewline)
    );
    assert!(matches!(
        note::sign("a\tb\n", &[&k]),
        Err(NoteError::ControlCharacter { .. })
    ));
    assert_eq!(note::sign("abc\n", &[]), Err(NoteError::NoSignatureBlock));
    assert_eq!(
        SignerKey::from_seed("a b", &[3; 32]).err(),
        Some(KeyError::BadName)
    );
    assert_eq!(
        SignerKey::from_seed("a+b", &[3; 32]).err(),
        Some(KeyError::BadName)
    );
    assert_eq!(
        SignerKey::from_seed("", &[3; 32]).err(),
        Some(KeyError::BadName)
    );
}

/// Every byte of `msg`, changed in four ways (a low bit, the high bit, a newline, a space:
/// each hits a different layer, text, UTF-8, line structure, fields), makes `open` fail,
/// or still open to the same text with fewer verified signatures. Ed25519 in a debug
/// build is slow, hence four and not 255 changes per byte.
fn check_mutations(msg: &str, known: &[VerifierKey]) {
    let good = note::open(msg.as_bytes(), known).unwrap();
    let bytes = msg.as_bytes();
    let mut tried = 0;
    for i in 0..bytes.len() {
        for change in [0x01u8, 0x80] {
            let mut m = bytes.to_vec();
            m[i] ^= change;
            tried += 1;
            if let Ok(v) = note::open(&m, known) {
                // Only a signature line made unknown (its name or key id changed) may be
                // dropped; the text and the remaining verified signatures are untouched.
                assert_eq!(v.text, good.text, "byte {i} ^ {change:#x} changed the text");
                assert!(
                    v.verified.len() < good.verified.len(),
                    "byte {i} ^ {change:#x} still verifies every signature"
                );
            }
        }
        for replacement in [b'\n', b' '] {
            if bytes[i] == replacement {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = replacement;
            tried += 1;
            if let Ok(v) = note::open(&m, known) {
                assert_eq!(v.text, good.text, "byte {i} = {replacement:#x}");
                assert!(
                    v.verified.len() < good.verified.len(),
                    "byte {i} = {replacement:#x}"
                );
            }
        }
    }
    assert!(tried > 2 * bytes.len());
}

#[test]
fn every_single_byte_mutation_of_a_signed_note_is_refused() {
    // One signature: nothing may survive a change.
    check_mutations(&peter_note(), &[vkey(PETER_VKEY)]);
    check_mutations(SUMDB_NOTE, &[vkey(SUMDB_VKEY)]);
    // Two: a change may only turn one signature into an unknown key's.
    let two = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    check_mutations(&two, &[vkey(PETER_VKEY), vkey(ENOCH_VKEY)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_then_open_round_trips(
        seeds in prop::collection::vec(any::<[u8; 32]>(), 1..4),
        lines in prop::collection::vec("[a-zA-Z0-9 /.:+—é-]{0,40}", 1..6),
    ) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let signers: Vec<SignerKey> = seeds
            .iter()
            .enumerate()
            .map(|(i, s)| SignerKey::from_seed(&format!("signer{i}.example"), s).unwrap())
            .collect();
        let refs: Vec<&SignerKey> = signers.iter().collect();
        let msg = note::sign(&text, &refs).unwrap();
        let known: Vec<VerifierKey> = signers.iter().map(SignerKey::verifier).collect();
        let v = note::open(msg.as_bytes(), &known).unwrap();
        prop_assert_eq!(&v.text, &text);
        prop_assert_eq!(v.verified.len(), signers.len());
        // Keys survive their text form.
        for s in &signers {
            let back = VerifierKey::parse(&s.verifier().to_string()).unwrap();
            prop_assert_eq!(back, s.verifier());
            use secrecy::ExposeSecret;
            let again = SignerKey::parse(s.encode().expose_secret()).unwrap();
            prop_assert_eq!(again.verifier(), s.verifier());
        }
        // Another key of the same name verifies nothing.
        let stranger = SignerKey::from_seed("signer0.example", &[0xee; 32]).unwrap();
        if stranger.key_id() != signers[0].key_id() {
            prop_assert_eq!(
                note::open(msg.as_bytes(), &[stranger.verifier()]),
                Err(NoteError::NoKnownSignature)
            );
        }
    }
}
