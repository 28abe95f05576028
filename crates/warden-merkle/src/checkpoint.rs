//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed head of a Merkle log,
//! a signed note whose text is `<origin>\n<tree size>\n<base64 root hash>\n` and optional
//! extension lines.
//!
//! Why: a checkpoint is what an auditor keeps and a witness cosigns; two checkpoints of
//! one origin that no consistency proof links prove the log forked.
//!
//! [`Checkpointer`] is the log's side: it signs a new head only if it extends the last one
//! it signed, checked with [`verify_consistency`], so the log can never sign a fork.
//! Parsing is strict (one spelling per checkpoint), so two texts never name one head.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::note::{self, NoteError, SignerKey, Verified, VerifierKey};
use crate::{Hash, ProofError, empty_root, verify_consistency};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint text must be lines ending in a newline")]
    NoFinalNewline,
    #[error("a checkpoint has an origin, a tree size and a root hash line; this one has {0} lines")]
    TooFewLines(usize),
    #[error("the origin must be non-empty, without leading or trailing spaces")]
    BadOrigin,
    #[error("the tree size must be a decimal number without leading zeros")]
    BadSize,
    #[error("the root hash must be the canonical base64 of 32 bytes")]
    BadRoot,
    #[error("the root of the empty tree is SHA-256 of nothing")]
    BadEmptyRoot,
    #[error("extension line {0} is empty or holds a control character")]
    EmptyExtension(usize),
    #[error("the checkpoint is for origin {got:?}, not {want:?}")]
    WrongOrigin { got: String, want: String },
    #[error("the log key {name}+{key_id:08x} did not sign the checkpoint")]
    NotSignedByLog { name: String, key_id: u32 },
    #[error("signed note: {0}")]
    Note(#[from] NoteError),
    #[error("refusing to sign tree size {new}: the last signed checkpoint has size {previous}")]
    Shrinks { previous: u64, new: u64 },
    #[error("refusing to sign: tree size {size} is already signed with another root")]
    Fork { size: u64 },
    #[error("refusing to sign size {new}: it is not consistent with size {previous}: {source}")]
    Inconsistent {
        previous: u64,
        new: u64,
        source: ProofError,
    },
}

/// The three lines every checkpoint has, and any extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Opaque, non-empty lines after the root; not recommended by the spec.
    pub extensions: Vec<String>,
}

/// Signs checkpoints for one log, refusing any that does not extend the last one signed.
#[derive(Debug)]
pub struct Checkpointer {
    origin: String,
    key: SignerKey,
    /// The note it signed last, byte for byte, and its checkpoint: a `previous` equal to
    /// it needs no signature check (it is this key's own output), which saves an Ed25519
    /// verification per commit; any other `previous` is verified in full.
    last: std::sync::Mutex<Option<(String, Checkpoint)>>,
}

impl Clone for Checkpointer {
    fn clone(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            key: self.key.clone(),
            last: std::sync::Mutex::new(self.last_signed()),
        }
    }
}

// === impl Checkpoint ===

impl Checkpoint {
    /// A checkpoint without extension lines; checked as [`Checkpoint::parse`] would.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        let c = Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        };
        c.validate()?;
        Ok(c)
    }

    /// Parses checkpoint note text (the part of a signed note before its blank line).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines(lines.len()));
        };
        let c = Self {
            origin: (*origin).to_owned(),
            size: parse_decimal(size).ok_or(CheckpointError::BadSize)?,
            root: parse_hash(root).ok_or(CheckpointError::BadRoot)?,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        };
        c.validate()?;
        Ok(c)
    }

    /// The note text: origin, size, base64 root and extensions, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Opens a signed checkpoint of `origin`: `log` must have signed it, and `others`
    /// (witnesses) are checked if present; signatures by unknown keys are ignored.
    pub fn open(
        msg: &[u8],
        origin: &str,
        log: &VerifierKey,
        others: &[VerifierKey],
    ) -> Result<(Self, Verified), CheckpointError> {
        let mut known = vec![log.clone()];
        known.extend_from_slice(others);
        let verified = note::open(msg, &known)?;
        if !verified
            .verified
            .iter()
            .any(|s| s.name == log.name() && s.key_id == log.key_id())
        {
            return Err(CheckpointError::NotSignedByLog {
                name: log.name().to_owned(),
                key_id: log.key_id(),
            });
        }
        let c = Self::parse(&verified.text)?;
        if c.origin != origin {
            return Err(CheckpointError::WrongOrigin {
                got: c.origin,
                want: origin.to_owned(),
            });
        }
        Ok((c, verified))
    }

    fn validate(&self) -> Result<(), CheckpointError> {
        let o = &self.origin;
        if o.is_empty() || o.trim() != o || o.chars().any(char::is_control) {
            return Err(CheckpointError::BadOrigin);
        }
        if self.size == 0 && self.root != empty_root() {
            return Err(CheckpointError::BadEmptyRoot);
        }
        for (i, e) in self.extensions.iter().enumerate() {
            if e.is_empty() || e.chars().any(char::is_control) {
                return Err(CheckpointError::EmptyExtension(i + 1));
            }
        }
        Ok(())
    }
}

/// ASCII decimal with no leading zeros (`0` alone is the empty tree), within `u64`.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Canonical base64 of exactly 32 bytes.
pub(crate) fn parse_hash(s: &str) -> Option<Hash> {
    B64.decode(s).ok()?.try_into().ok()
}

// === impl Checkpointer ===

impl Checkpointer {
    /// A checkpointer for the log named `origin`, signing with `key` (whose name should
    /// be the origin, as the spec recommends, but need not be).
    pub fn new(origin: &str, key: SignerKey) -> Result<Self, CheckpointError> {
        Checkpoint::new(origin, 0, empty_root())?;
        Ok(Self {
            origin: origin.to_owned(),
            key,
            last: std::sync::Mutex::new(None),
        })
    }

    fn last_signed(&self) -> Option<(String, Checkpoint)> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The public key that verifies this checkpointer's signatures.
    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// Signs the head (`size`, `root`) if it extends `previous`, the last checkpoint this
    /// log signed (`None` only for the first). `proof` is the consistency proof from the
    /// previous size to `size` (empty if the previous tree was empty or the size is the
    /// same). The previous checkpoint must carry this log's own valid signature.
    pub fn sign(
        &self,
        previous: Option<&[u8]>,
        size: u64,
        root: Hash,
        proof: &[Hash],
    ) -> Result<String, CheckpointError> {
        let next = Checkpoint::new(&self.origin, size, root)?;
        if let Some(prev) = previous {
            let prev = match self.last_signed() {
                Some((note, c)) if note.as_bytes() == prev => c,
                _ => Checkpoint::open(prev, &self.origin, &self.key.verifier(), &[])?.0,
            };
            check_extends(&prev, &next, proof)?;
        }
        let note = note::sign(&next.to_text(), &[&self.key])?;
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((note.clone(), next));
        Ok(note)
    }
}

/// `next` extends `prev`: no smaller, the same root at the same size, and otherwise a
/// consistency proof that verifies. Every tree extends the empty one.
pub fn check_extends(
    prev: &Checkpoint,
    next: &Checkpoint,
    proof: &[Hash],
) -> Result<(), CheckpointError> {
    let (p, n) = (prev.size, next.size);
    if n < p {
        return Err(CheckpointError::Shrinks {
            previous: p,
            new: n,
        });
    }
    if n == p {
        return if prev.root == next.root && proof.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::Fork { size: n })
        };
    }
    if p == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::Inconsistent {
                previous: p,
                new: n,
                source: ProofError::WrongLength {
                    got: proof.len(),
                    want: 0,
                },
            })
        };
    }
    verify_consistency(p, n, &prev.root, &next.root, proof).map_err(|source| {
        CheckpointError::Inconsistent {
            previous: p,
            new: n,
            source,
        }
    })
}
