//! The Merkle leaf of one audit record: a canonical byte encoding of everything a query,
//! filter or export ever reads from the row, so that changing any of it changes the leaf.
//!
//! Why these fields: `tenant_id`, `time_ms` and `decision` are clear columns that
//! queries and exports filter on; `id` is what proofs are asked for by; the sealed bytes
//! (by their SHA-256) hold every other field; and `commitment`, the SHA-256 of the
//! record's protobuf encoding (which carries 32 random bytes of salt, so it hides the
//! record from whoever reads the database), lets an export's records be checked offline
//! against the leaf without the tenant's key. Records written before the Merkle log have
//! no commitment (empty). Pure: bytes in, bytes out.

use sha2::{Digest, Sha256};
use warden_merkle::Hash;

/// The first bytes of every entry (version 1).
const TAG: &[u8] = b"warden-audit-leaf/v1\n";

/// One leaf entry, as the tree hashes it (`SHA-256(0x00 || encode())`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafEntry {
    /// The record's sequence; its leaf index is `sequence - 1`.
    pub sequence: u64,
    pub id: String,
    pub tenant_id: String,
    pub time_ms: i64,
    pub decision: i64,
    /// Hex SHA-256 of the record's protobuf encoding (with its salt); empty before v1.
    pub commitment: String,
    /// SHA-256 of the record column as stored (sealed, or hex before sealing).
    pub sealed_digest: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the leaf entry does not start with the warden-audit-leaf/v1 tag")]
    BadTag,
    #[error("the leaf entry is truncated")]
    Truncated,
    #[error("the leaf entry has {0} bytes after its last field")]
    Trailing(usize),
    #[error("a text field of the leaf entry is not UTF-8")]
    NotUtf8,
}

impl LeafEntry {
    /// The entry of a stored row.
    pub fn of_row(
        sequence: u64,
        id: &str,
        tenant_id: &str,
        time_ms: i64,
        decision: i64,
        commitment: &str,
        stored_record: &str,
    ) -> LeafEntry {
        LeafEntry {
            sequence,
            id: id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            time_ms,
            decision,
            commitment: commitment.to_owned(),
            sealed_digest: Sha256::digest(stored_record.as_bytes()).into(),
        }
    }

    /// Tag, then fixed-width big-endian numbers, then length-prefixed (u32) texts.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            TAG.len() + 24 + 32 + 12 + self.id.len() + self.tenant_id.len() + 64,
        );
        out.extend_from_slice(TAG);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.decision.to_be_bytes());
        for s in [&self.id, &self.tenant_id, &self.commitment] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.sealed_digest);
        out
    }

    /// Parses an entry; exactly one encoding is accepted for each entry.
    pub fn decode(bytes: &[u8]) -> Result<LeafEntry, EntryError> {
        let e = LeafEntryRef::decode(bytes)?;
        Ok(LeafEntry {
            sequence: e.sequence,
            id: e.id.to_owned(),
            tenant_id: e.tenant_id.to_owned(),
            time_ms: e.time_ms,
            decision: e.decision,
            commitment: e.commitment.to_owned(),
            sealed_digest: e.sealed_digest,
        })
    }

    /// `SHA-256(0x00 || entry)`.
    pub fn leaf_hash(&self) -> Hash {
        warden_merkle::leaf_hash(&self.encode())
    }
}

/// A [`LeafEntry`] read in place, its texts borrowed from the encoding: what an offline
/// verifier decodes for every record of an export, without three allocations a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafEntryRef<'a> {
    pub sequence: u64,
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub time_ms: i64,
    pub decision: i64,
    pub commitment: &'a str,
    pub sealed_digest: Hash,
}

impl<'a> LeafEntryRef<'a> {
    /// Parses an entry; exactly one encoding is accepted for each entry.
    pub fn decode(bytes: &'a [u8]) -> Result<LeafEntryRef<'a>, EntryError> {
        let mut rest = bytes.strip_prefix(TAG).ok_or(EntryError::BadTag)?;
        let mut take = |n: usize| -> Result<&'a [u8], EntryError> {
            if rest.len() < n {
                return Err(EntryError::Truncated);
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        let u64_at = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        let sequence = u64_at(take(8)?);
        let time_ms = u64_at(take(8)?) as i64;
        let decision = u64_at(take(8)?) as i64;
        let mut text = || -> Result<&'a str, EntryError> {
            let len = take(4)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            std::str::from_utf8(take(len)?).map_err(|_| EntryError::NotUtf8)
        };
        let id = text()?;
        let tenant_id = text()?;
        let commitment = text()?;
        let mut sealed_digest = [0u8; 32];
        sealed_digest.copy_from_slice(take(32)?);
        if !rest.is_empty() {
            return Err(EntryError::Trailing(rest.len()));
        }
        Ok(LeafEntryRef {
            sequence,
            id,
            tenant_id,
            time_ms,
            decision,
            commitment,
            sealed_digest,
        })
    }
}

/// Hex SHA-256 of a record's protobuf encoding: what [`LeafEntry::commitment`] holds.
pub fn commitment(record_bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(record_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_every_field_changes_the_leaf() {
        let e = LeafEntry::of_row(7, "id-7", "acme", 1_700_000_000_000, 2, "ab", "w2.x");
        assert_eq!(LeafEntry::decode(&e.encode()).unwrap(), e);
        let variants = [
            LeafEntry {
                sequence: 8,
                ..e.clone()
            },
            LeafEntry {
                id: "id-8".into(),
                ..e.clone()
            },
            LeafEntry {
                tenant_id: "acmf".into(),
                ..e.clone()
            },
            LeafEntry {
                time_ms: e.time_ms + 1,
                ..e.clone()
            },
            LeafEntry {
                decision: 1,
                ..e.clone()
            },
            LeafEntry {
                commitment: "ac".into(),
                ..e.clone()
            },
            LeafEntry::of_row(7, "id-7", "acme", 1_700_000_000_000, 2, "ab", "w2.y"),
        ];
        for v in variants {
            assert_ne!(v.leaf_hash(), e.leaf_hash(), "{v:?}");
        }
        let bytes = e.encode();
        assert_eq!(
            LeafEntry::decode(&bytes[..bytes.len() - 1]),
            Err(EntryError::Truncated)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(LeafEntry::decode(&longer), Err(EntryError::Trailing(1)));
        assert_eq!(LeafEntry::decode(&bytes[1..]), Err(EntryError::BadTag));
    }
}
