//! Sealed values: `w2.<data key id>.<hex(nonce || ciphertext)>`, with the tenant and the
//! data key id bound as associated data, so a value moved to another tenant's row, or
//! relabelled with another key id, fails to open.

use zeroize::Zeroizing;

use crate::{KeyError, gcm_open, gcm_seal};

const PREFIX: &str = "w2";

/// A data key in the clear (zeroed on drop), with the id stored beside what it seals.
#[derive(Clone)]
pub struct DataKey {
    pub id: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    pub fn new(id: impl Into<String>, key: Zeroizing<[u8; 32]>) -> DataKey {
        DataKey { id: id.into(), key }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

fn aad(tenant_id: &str, key_id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(tenant_id.len() + key_id.len() + 1);
    a.extend_from_slice(tenant_id.as_bytes());
    a.push(0);
    a.extend_from_slice(key_id.as_bytes());
    a
}

/// Seals `plain` for `tenant_id` under `key`.
pub fn seal(key: &DataKey, tenant_id: &str, plain: &[u8]) -> Result<String, KeyError> {
    let body = gcm_seal(key.bytes(), &aad(tenant_id, &key.id), plain)?;
    Ok(format!("{PREFIX}.{}.{}", key.id, hex::encode(body)))
}

/// What a sealed value says about itself before it is opened: the data key it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRef<'a> {
    pub key_id: &'a str,
    body: &'a str,
}

impl<'a> SealedRef<'a> {
    pub fn parse(sealed: &'a str) -> Result<SealedRef<'a>, KeyError> {
        let mut parts = sealed.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(PREFIX), Some(key_id), Some(body)) if !key_id.is_empty() => {
                Ok(SealedRef { key_id, body })
            }
            _ => Err(KeyError::Format),
        }
    }
}

/// Opens a value sealed by [`seal`] with the data key it names (`key.id` must match).
pub fn open(key: &DataKey, tenant_id: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
    let r = SealedRef::parse(sealed)?;
    if r.key_id != key.id {
        return Err(KeyError::Open);
    }
    let body = hex::decode(r.body).map_err(|_| KeyError::Open)?;
    gcm_open(key.bytes(), &aad(tenant_id, &key.id), &body).ok_or(KeyError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_key;

    #[test]
    fn values_open_only_for_their_tenant_and_key() {
        let k = DataKey::new("dk1", random_key());
        let sealed = seal(&k, "acme", b"role arn:aws:iam::123:role/x").unwrap();
        assert!(!sealed.contains("arn:aws"));
        assert_eq!(SealedRef::parse(&sealed).unwrap().key_id, "dk1");
        assert_eq!(
            open(&k, "acme", &sealed).unwrap(),
            b"role arn:aws:iam::123:role/x"
        );
        assert!(
            open(&k, "beta", &sealed).is_err(),
            "moved to another tenant"
        );
        let other = DataKey::new("dk2", random_key());
        assert!(open(&other, "acme", &sealed).is_err(), "another key");
        // Relabelled to claim another key id: the id is bound, so it fails.
        let relabelled = sealed.replacen("dk1", "dk2", 1);
        let same_bytes = DataKey::new("dk2", Zeroizing::new(*k.bytes()));
        assert!(open(&same_bytes, "acme", &relabelled).is_err());
        assert!(matches!(
            SealedRef::parse("plain text"),
            Err(KeyError::Format)
        ));
    }
}
