//! Sealing at rest: AES-256-GCM with a master key, the tenant id bound as associated
//! data, so a ciphertext copied into another tenant's row fails to open.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or create the master key at {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key file must hold exactly 32 bytes")]
    KeyLength,
    #[error("sealed value could not be opened (wrong key, wrong tenant, or tampered)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens values for one tenant at a time.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn from_key(key: [u8; 32]) -> Sealer {
        use sha2::Digest;
        let key_id = hex::encode(&sha2::Sha256::digest(key)[..4]);
        Sealer {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            key_id,
        }
    }

    /// Loads the master key at `path`, creating a random one (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        let err = |source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let key = Aes256Gcm::generate_key(OsRng);
            write_private(path, key.as_slice()).map_err(err)?;
        }
        let bytes = std::fs::read(path).map_err(err)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SealError::KeyLength)?;
        Ok(Sealer::from_key(key))
    }

    /// `key_id:hex(nonce || ciphertext)`.
    pub fn seal(&self, tenant_id: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: tenant_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{}:{}", self.key_id, hex::encode(out)))
    }

    pub fn open(&self, tenant_id: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let (_key_id, body) = sealed.split_once(':').ok_or(SealError::Open)?;
        let bytes = hex::decode(body).map_err(|_| SealError::Open)?;
        if bytes.len() < 12 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: tenant_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }

    pub fn open_string(&self, tenant_id: &str, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(tenant_id, sealed)?).map_err(|_| SealError::Open)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tenant_binding() {
        let s = Sealer::from_key([7; 32]);
        let sealed = s.seal("acme", b"hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.open("acme", &sealed).unwrap(), b"hunter2");
        assert!(
            matches!(s.open("globex", &sealed), Err(SealError::Open)),
            "moved to another tenant"
        );
        let other = Sealer::from_key([8; 32]);
        assert!(other.open("acme", &sealed).is_err(), "wrong key");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('0');
        assert!(s.open("acme", &tampered).is_err() || tampered == sealed);
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let a = Sealer::load_or_create(&path).unwrap();
        let b = Sealer::load_or_create(&path).unwrap();
        let sealed = a.seal("t", b"x").unwrap();
        assert_eq!(b.open("t", &sealed).unwrap(), b"x");
    }
}
