//! C2SP signed notes (<https://c2sp.org/signed-note>): a text ending in a newline, a blank
//! line, then one signature line per key, `— <key name> <base64(key id || signature)>`.
//!
//! Why this format: checkpoints, witness cosignatures and tlog proofs are all signed notes,
//! so an audit log that speaks it can be checked with the ecosystem's tools (Go's
//! `golang.org/x/mod/sumdb/note`, transparency-dev, Sigsum) instead of ours alone.
//!
//! Only Ed25519 keys (signature type `0x01`) exist here. Key ids are
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, and keys travel as Go writes them:
//! verifier keys `<name>+<hex id>+<base64(0x01 || public key)>`, signer keys
//! `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
//!
//! Invariants: [`open`] accepts a note only if at least one signature by a known key
//! verifies and none by a known key fails; signatures by unknown keys are kept aside,
//! never trusted. Whatever [`sign`] writes, [`open`] reads back. Errors name keys and
//! line numbers, never note text or key material.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 keys (c2sp.org/signed-note, "Signature types").
const ALG_ED25519: u8 = 0x01;
/// Go's `note.Open` refuses more; the spec asks verifiers to accept at least 16.
pub const MAX_SIGNATURES: usize = 100;
/// Em dash (U+2014) and a space: the start of every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a verifier or signer key string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    #[error("key name must be non-empty and contain neither spaces nor '+' (c2sp.org/signed-note)")]
    BadName,
    #[error("key algorithm {0:#04x} is not supported; only Ed25519 (0x01) is")]
    UnknownAlgorithm(u8),
    #[error("key id {got:08x} does not match the key, which has id {want:08x}")]
    WrongKeyId { got: u32, want: u32 },
    #[error("the Ed25519 public key is not a valid curve point")]
    BadPublicKey,
}

/// Why a signed note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("a signed note must be valid UTF-8")]
    NotUtf8,
    #[error("a signed note must not contain control characters other than newline (byte {offset})")]
    ControlCharacter { offset: usize },
    #[error("no blank line separates the note text from its signatures")]
    NoSignatureBlock,
    #[error("the signature block must end in a newline")]
    MissingFinalNewline,
    #[error("signature line {line} is malformed: {problem}")]
    BadSignatureLine { line: usize, problem: &'static str },
    #[error("the note carries more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("the signature by known key {name}+{key_id:08x} does not verify")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("two different known keys are named {name}+{key_id:08x}")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("no signature by a known key: the note is unverified")]
    NoKnownSignature,
    #[error("note text must be non-empty and end in a newline")]
    TextWithoutFinalNewline,
}

/// A public key that checks signatures on notes.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

/// A private key that signs notes. Its `Debug` shows the name and id, never the seed.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

/// One signature line of a note, verified or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key name.
    pub name: String,
    /// The 4-byte key id, big-endian.
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub bytes: Vec<u8>,
}

/// A note parsed but not yet verified: its text (ending in a newline) and its signatures
/// in order, with identical repeated lines dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<Signature>,
}

/// A note [`open`] accepted: the text, the signatures that verified (at least one) and
/// those by keys the caller does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub text: String,
    pub verified: Vec<Signature>,
    pub unverified: Vec<Signature>,
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]` as a big-endian integer.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A key name is non-empty with neither Unicode spaces nor `+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Parses a signed note's structure without checking any signature.
pub fn parse(msg: &[u8]) -> Result<Note, NoteError> {
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::NotUtf8)?;
    if let Some(offset) = msg.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter { offset });
    }
    // The text ends at the last blank line: texts may hold blank lines, signatures never.
    let split = msg.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
    let (text, block) = (&msg[..=split], &msg[split + 2..]);
    if block.is_empty() {
        return Err(NoteError::NoSignatureBlock);
    }
    if !block.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    let mut signatures: Vec<Signature> = Vec::new();
    let mut lines = 0;
    for (i, line) in block[..block.len() - 1].split('\n').enumerate() {
        lines += 1;
        if lines > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let sig = parse_signature_line(line, i + 1)?;
        if !signatures.contains(&sig) {
            signatures.push(sig);
        }
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

fn parse_signature_line(line: &str, n: usize) -> Result<Signature, NoteError> {
    let bad = |problem| NoteError::BadSignatureLine { line: n, problem };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(bad("it does not start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(bad("no space between key name and signature"))?;
    if !is_valid_name(name) {
        return Err(bad("the key name is empty or has a space or '+'"));
    }
    let raw = B64
        .decode(b64)
        .map_err(|_| bad("the signature is not canonical base64"))?;
    if raw.len() < 5 {
        return Err(bad("the signature is shorter than a key id and one byte"));
    }
    Ok(Signature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        bytes: raw[4..].to_vec(),
    })
}

/// Parses `msg` and checks its signatures against `known`, the way Go's `note.Open`
/// does: a failed signature by a known key rejects the note; signatures by unknown keys
/// (even if name or id alone match a known key) are returned as unverified; at least one
/// known key must have signed. A key that signs twice counts once.
pub fn open(msg: &[u8], known: &[VerifierKey]) -> Result<Verified, NoteError> {
    let note = parse(msg)?;
    let mut verified: Vec<Signature> = Vec::new();
    let mut unverified = Vec::new();
    for sig in note.signatures {
        let mut matches = known
            .iter()
            .filter(|k| k.name == sig.name && k.id == sig.key_id);
        let Some(key) = matches.next() else {
            unverified.push(sig);
            continue;
        };
        if matches.any(|other| other.key != key.key) {
            return Err(NoteError::AmbiguousKey {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        if verified
            .iter()
            .any(|v| v.name == sig.name && v.key_id == sig.key_id)
        {
            continue;
        }
        if !key.verify(note.text.as_bytes(), &sig.bytes) {
            return Err(NoteError::InvalidSignature {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        verified.push(sig);
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(Verified {
        text: note.text,
        verified,
        unverified,
    })
}

/// Signs `text` (which must end in a newline and itself be valid note text) with each
/// signer, in order.
pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<String, NoteError> {
    Note {
        text: text.to_owned(),
        signatures: Vec::new(),
    }
    .cosign(signers)
}

// === impl Note ===

impl Note {
    /// Adds one signature per signer after the existing ones (a signer's earlier
    /// signature is replaced) and writes the signed note. This is how a witness cosigns.
    pub fn cosign(mut self, signers: &[&SignerKey]) -> Result<String, NoteError> {
        check_text(&self.text)?;
        for s in signers {
            self.signatures
                .retain(|sig| !(sig.name == s.name && sig.key_id == s.id));
        }
        for s in signers {
            self.signatures.push(s.sign_text(&self.text));
        }
        self.encode()
    }

    /// Writes the note as it stands; it must carry at least one signature.
    pub fn encode(&self) -> Result<String, NoteError> {
        check_text(&self.text)?;
        if self.signatures.is_empty() {
            return Err(NoteError::NoSignatureBlock);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let mut out = self.text.clone();
        out.push('\n');
        for (i, sig) in self.signatures.iter().enumerate() {
            if !is_valid_name(&sig.name) || sig.bytes.is_empty() {
                return Err(NoteError::BadSignatureLine {
                    line: i + 1,
                    problem: "the key name is invalid or the signature empty",
                });
            }
            out.push_str(&sig.line());
        }
        Ok(out)
    }
}

/// Refuses text that [`parse`] would not give back unchanged.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextWithoutFinalNewline);
    }
    if let Some(offset) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter { offset });
    }
    Ok(())
}

// === impl Signature ===

impl Signature {
    /// The signature line, `— <name> <base64(key id || signature)>\n`.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.bytes);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

// === impl VerifierKey ===

impl VerifierKey {
    /// The verifier for an Ed25519 public key under `name`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::BadName);
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::BadPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, public_key),
            key,
        })
    }

    /// Parses `<name>+<hex id>+<base64(0x01 || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, KeyError> {
        let (name, rest) = vkey
            .split_once('+')
            .ok_or(KeyError::Malformed("expected <name>+<id>+<key>"))?;
        let (id, key) = parse_id_and_key(name, rest)?;
        let key = Self::new(name, &key)?;
        check_id(id, key.id)?;
        Ok(key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Strict Ed25519 verification (RFC 8032 plus rejection of weak keys and
    /// non-canonical points), so no two byte strings pass for one signature.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|sig| self.key.verify_strict(msg, &sig).is_ok())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

// === impl SignerKey ===

impl SignerKey {
    /// The signer for an Ed25519 seed under `name`. Randomness is the caller's: pass 32
    /// bytes from the operating system's generator to make a new key.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::BadName);
        }
        let key = SigningKey::from_bytes(seed);
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`; the id must be that
    /// of the derived public key.
    pub fn parse(skey: &str) -> Result<Self, KeyError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed("a signer key starts with PRIVATE+KEY+"))?;
        let (name, rest) = rest.split_once('+').ok_or(KeyError::Malformed(
            "expected PRIVATE+KEY+<name>+<id>+<key>",
        ))?;
        let (id, seed) = parse_id_and_key(name, rest)?;
        let key = Self::from_seed(name, &seed)?;
        check_id(id, key.id)?;
        Ok(key)
    }

    /// The encoded private key, for the one place that stores it.
    pub fn encode(&self) -> SecretString {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        let s = format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(raw)
        );
        SecretString::from(s)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The matching public key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    fn sign_text(&self, text: &str) -> Signature {
        Signature {
            name: self.name.clone(),
            key_id: self.id,
            bytes: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}+{:08x})", self.name, self.id)
    }
}

/// Parses `<hex id>+<base64(0x01 || 32 bytes)>` after a key name.
fn parse_id_and_key(name: &str, rest: &str) -> Result<(u32, [u8; 32]), KeyError> {
    if !is_valid_name(name) {
        return Err(KeyError::BadName);
    }
    let (hex, b64) = rest
        .split_once('+')
        .ok_or(KeyError::Malformed("expected <id>+<key> after the name"))?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::Malformed("the key id must be 8 hex digits"));
    }
    let id = u32::from_str_radix(hex, 16)
        .map_err(|_| KeyError::Malformed("the key id must be 8 hex digits"))?;
    let raw = B64
        .decode(b64)
        .map_err(|_| KeyError::Malformed("the key is not canonical base64"))?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) => key
            .try_into()
            .map(|k| (id, k))
            .map_err(|_| KeyError::Malformed("an Ed25519 key is 32 bytes")),
        Some((&alg, _)) => Err(KeyError::UnknownAlgorithm(alg)),
        None => Err(KeyError::Malformed("the key is empty")),
    }
}

fn check_id(got: u32, want: u32) -> Result<(), KeyError> {
    if got == want {
        Ok(())
    } else {
        Err(KeyError::WrongKeyId { got, want })
    }
}
