//! A mock AWS KMS behind `warden_keys::KmsApi`: symmetric keys by ARN (and alias),
//! ciphertext blobs that carry their key's ARN as KMS's do, the encryption context bound
//! to every ciphertext and required again to decrypt, keys that can be disabled, and a
//! log of every call. It proves that the `KeyProvider` shape fits KMS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use warden_keys::{EncryptionContext, GeneratedDataKey, KeyError, KmsApi, Zeroizing};

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, ([u8; 32], bool)>,
    aliases: HashMap<String, String>,
    calls: Vec<(String, String)>,
    next: u32,
}

/// The mock KMS. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct MockKms {
    state: Arc<Mutex<State>>,
}

fn aad(context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in context {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

impl MockKms {
    pub fn new() -> MockKms {
        MockKms::default()
    }

    /// `CreateKey`, then `CreateAlias` if given: returns the key's ARN.
    pub fn create_key(&self, alias: Option<&str>) -> String {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.next += 1;
        let arn = format!(
            "arn:aws:kms:eu-central-1:111122223333:key/0000-mock-{:04}",
            s.next
        );
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(key.as_slice());
        s.keys.insert(arn.clone(), (bytes, true));
        if let Some(a) = alias {
            s.aliases.insert(a.to_owned(), arn.clone());
        }
        arn
    }

    /// `DisableKey`: every later call with it fails as KMS's `DisabledException` does.
    pub fn disable(&self, arn: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = s.keys.get_mut(arn) {
            k.1 = false;
        }
    }

    /// Every call so far: `(operation, key id as asked)`.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clone()
    }

    fn key(&self, op: &str, key_id: &str) -> Result<(String, [u8; 32]), KeyError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.calls.push((op.to_owned(), key_id.to_owned()));
        let arn = s
            .aliases
            .get(key_id)
            .cloned()
            .unwrap_or_else(|| key_id.to_owned());
        match s.keys.get(&arn) {
            Some((k, true)) => Ok((arn, *k)),
            Some((_, false)) => Err(KeyError::Unavailable(format!(
                "DisabledException: {arn} is disabled"
            ))),
            None => Err(KeyError::Unavailable(format!(
                "NotFoundException: {key_id} does not exist"
            ))),
        }
    }

    fn seal(
        arn: &str,
        key: &[u8; 32],
        plain: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        let cipher = Aes256Gcm::new(key.into());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad(context),
                },
            )
            .map_err(|_| KeyError::Seal)?;
        let mut blob = (arn.len() as u16).to_be_bytes().to_vec();
        blob.extend_from_slice(arn.as_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(blob)
    }
}

#[async_trait::async_trait]
impl KmsApi for MockKms {
    async fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KeyError> {
        let (arn, key) = self.key("GenerateDataKey", key_id)?;
        let data_key = Aes256Gcm::generate_key(OsRng);
        let blob = MockKms::seal(&arn, &key, data_key.as_slice(), context)?;
        Ok(GeneratedDataKey {
            plaintext: Zeroizing::new(data_key.to_vec()),
            ciphertext_blob: blob,
            key_id: arn,
        })
    }

    async fn decrypt(
        &self,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, String), KeyError> {
        let bad = || KeyError::Unwrap;
        let len = usize::from(u16::from_be_bytes([
            *blob.first().ok_or_else(bad)?,
            *blob.get(1).ok_or_else(bad)?,
        ]));
        let arn = std::str::from_utf8(blob.get(2..2 + len).ok_or_else(bad)?).map_err(|_| bad())?;
        let rest = blob.get(2 + len..).ok_or_else(bad)?;
        if rest.len() < 12 + 16 {
            return Err(bad());
        }
        let (arn, key) = self.key("Decrypt", arn)?;
        let (nonce, ct) = rest.split_at(12);
        // InvalidCiphertextException when the context differs, as in KMS.
        let plain = Aes256Gcm::new((&key).into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &aad(context),
                },
            )
            .map_err(|_| bad())?;
        Ok((Zeroizing::new(plain), arn))
    }

    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let (arn, key) = self.key("Encrypt", key_id)?;
        Ok((MockKms::seal(&arn, &key, plaintext, context)?, arn))
    }
}
