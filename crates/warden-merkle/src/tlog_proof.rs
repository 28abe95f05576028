//! C2SP transparency log proofs (<https://c2sp.org/tlog-proof>): one text file that proves
//! an entry is in a log, checkable offline with only the log's public key.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64 opaque data>]
//! index <decimal>
//! <base64 hash, leaf's sibling first, one per line>
//!
//! <signed checkpoint, verbatim>
//! ```
//!
//! Why: an audit record exported with its proof can be shown to an auditor who trusts
//! the log key and nothing else. Parsing is strict so that one proof has one spelling;
//! [`TlogProof::verify`] checks the checkpoint's signature, then the leaf's inclusion.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::checkpoint::{Checkpoint, CheckpointError, parse_decimal, parse_hash};
use crate::note::{Verified, VerifierKey};
use crate::{Hash, ProofError, verify_inclusion};

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    #[error("a tlog proof must be valid UTF-8")]
    NotUtf8,
    #[error("a tlog proof starts with the line {HEADER}")]
    MissingHeader,
    #[error("the extra data is not canonical base64")]
    BadExtra,
    #[error("line {0} must be `index <decimal without leading zeros>`")]
    BadIndex(usize),
    #[error("line {0} is not the canonical base64 of a 32-byte hash")]
    BadHash(usize),
    #[error("no blank line before the checkpoint")]
    NoCheckpoint,
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the entry is not in the checkpointed tree: {0}")]
    NotIncluded(#[from] ProofError),
}

/// A parsed proof. `checkpoint` is the signed note exactly as it appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Unauthenticated application data; never trust it without checking.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Hash>,
    pub checkpoint: String,
}

// === impl TlogProof ===

impl TlogProof {
    /// The proof's text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a proof; the signed checkpoint is kept as text and checked by `verify`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        let text = std::str::from_utf8(bytes).map_err(|_| TlogProofError::NotUtf8)?;
        let mut rest = text
            .strip_prefix(HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(TlogProofError::MissingHeader)?;
        let mut line_no = 1;
        line_no += 1;
        let mut line = take_line(&mut rest).ok_or(TlogProofError::BadIndex(line_no))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(b64).map_err(|_| TlogProofError::BadExtra)?);
            line_no += 1;
            line = take_line(&mut rest).ok_or(TlogProofError::BadIndex(line_no))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(TlogProofError::BadIndex(line_no))?;
        let mut hashes = Vec::new();
        loop {
            line_no += 1;
            let line = take_line(&mut rest).ok_or(TlogProofError::NoCheckpoint)?;
            if line.is_empty() {
                break;
            }
            hashes.push(parse_hash(line).ok_or(TlogProofError::BadHash(line_no))?);
        }
        if rest.is_empty() {
            return Err(TlogProofError::NoCheckpoint);
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: rest.to_owned(),
        })
    }

    /// Checks that `leaf` (a leaf hash, `SHA-256(0x00 || entry)`) is entry `index` of the
    /// tree that the log of `origin` signed with `log`, and returns that checkpoint.
    /// `witnesses`' signatures, if present, must verify too.
    pub fn verify(
        &self,
        leaf: &Hash,
        origin: &str,
        log: &VerifierKey,
        witnesses: &[VerifierKey],
    ) -> Result<(Checkpoint, Verified), TlogProofError> {
        let (checkpoint, verified) =
            Checkpoint::open(self.checkpoint.as_bytes(), origin, log, witnesses)?;
        verify_inclusion(
            self.index,
            checkpoint.size,
            leaf,
            &self.hashes,
            &checkpoint.root,
        )?;
        Ok((checkpoint, verified))
    }
}

/// The next line of `rest` without its newline; `None` if no newline is left.
fn take_line<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let (line, after) = rest.split_once('\n')?;
    *rest = after;
    Some(line)
}
