//! Key-encryption keys in a key file kept apart from the data: one `<id> <hex key>` line
//! per KEK, the last one current, mode 0600 (a file others can read is refused). A
//! rotation appends a line atomically; a running storage re-reads the file when it meets
//! a KEK id it does not know yet.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{
    KekList, Keks, KeyError, KeyProvider, WrappedKey, random_key, unwrap_local, wrap_local,
};

#[derive(Debug)]
pub struct FileKeyProvider {
    path: PathBuf,
    keys: Keks,
}

const HEADER: &str = "# Warden key-encryption keys: keep this file outside the data directory, mode 0600.\n# The last key is current; older ones still open data keys wrapped before a rotation.\n";

fn err(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::KeyFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn new_kek_id() -> String {
    format!("kek-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn line(id: &str, key: &[u8; 32]) -> String {
    format!("{id} {}\n", hex::encode(key))
}

impl FileKeyProvider {
    /// Creates a key file with one fresh KEK. Refuses to replace an existing file.
    pub fn create(path: &Path) -> Result<FileKeyProvider, KeyError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(path, e.to_string()))?;
        }
        let id = new_kek_id();
        let key = random_key();
        write_private(path, &format!("{HEADER}{}", line(&id, &key)), true)?;
        FileKeyProvider::load(path)
    }

    /// Loads the key file, refusing one that is missing, readable by others, or empty.
    pub fn load(path: &Path) -> Result<FileKeyProvider, KeyError> {
        let keys = read_keys(path)?;
        Ok(FileKeyProvider {
            path: path.to_owned(),
            keys: Keks::new(keys),
        })
    }

    /// Refuses a key file inside `data_dir`: whoever can read the data must not also
    /// hold the key.
    pub fn check_outside(path: &Path, data_dir: &Path) -> Result<(), KeyError> {
        // A key file yet to be created is judged by the directory it will be in.
        let key = match (path.exists(), path.parent(), path.file_name()) {
            (false, Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::create_dir_all(parent).map_err(|e| err(path, e.to_string()))?;
                std::fs::canonicalize(parent)
                    .map_err(|e| err(path, e.to_string()))?
                    .join(name)
            }
            _ => std::fs::canonicalize(path).map_err(|e| err(path, e.to_string()))?,
        };
        let Ok(data) = std::fs::canonicalize(data_dir) else {
            return Ok(());
        };
        if key.starts_with(&data) {
            return Err(err(
                path,
                format!(
                    "is inside the data directory {}; keep the key file apart from the data",
                    data.display()
                ),
            ));
        }
        Ok(())
    }

    /// Appends a new current KEK to the file (atomically) and returns its id. Data keys
    /// wrapped under older KEKs still open; re-wrap them to retire the old KEK.
    pub fn rotate(path: &Path) -> Result<String, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, e.to_string()))?;
        read_keys(path)?;
        let id = new_kek_id();
        let key = random_key();
        let tmp = path.with_extension("rotating");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &format!("{text}{}", line(&id, &key)), true)?;
        std::fs::rename(&tmp, path).map_err(|e| err(path, e.to_string()))?;
        Ok(id)
    }

    /// Re-reads the file (after `warden keys rotate`): the last key becomes current.
    pub fn reload(&self) -> Result<(), KeyError> {
        self.keys.replace(read_keys(&self.path)?);
        Ok(())
    }

    /// Every KEK id in the file, oldest first.
    pub fn kek_ids(&self) -> Vec<String> {
        self.keys.ids()
    }

    /// The KEK `id`, re-reading the file once if it is not known yet (a rotation by
    /// `warden keys rotate` while this process runs).
    fn key_or_reload(&self, id: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if let Some(k) = self.keys.get(id) {
            return Ok(k);
        }
        self.reload()?;
        self.keys
            .get(id)
            .ok_or_else(|| KeyError::UnknownKek(id.to_owned()))
    }
}

#[async_trait::async_trait]
impl KeyProvider for FileKeyProvider {
    fn current_kek(&self) -> String {
        self.keys.current()
    }

    async fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let kek = self.key_or_reload(&wrapped.kek_id)?;
        unwrap_local(&kek, wrapped, context)
    }

    async fn refresh(&self) -> Result<(), KeyError> {
        self.reload()
    }

    async fn wrap_key(&self, key: &[u8; 32], context: &str) -> Result<WrappedKey, KeyError> {
        let kek_id = self.current_kek();
        let kek = self.key_or_reload(&kek_id)?;
        wrap_local(kek_id, &kek, key, context)
    }
}

fn read_keys(path: &Path) -> Result<KekList, KeyError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            err(path, "does not exist (create it with `warden keys init`)")
        } else {
            err(path, e.to_string())
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(
                path,
                format!("has mode {mode:o}, so others can read it; run `chmod 600` on it"),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(path, e.to_string()))?);
    let mut keys = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = || {
            err(
                path,
                format!("line {} is not `<id> <64 hex digits>`", n + 1),
            )
        };
        let (id, hex_key) = l.split_once(' ').ok_or_else(bad)?;
        let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| bad())?);
        if bytes.len() != 32 || id.is_empty() {
            return Err(bad());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        keys.push((id.to_owned(), key));
    }
    if keys.is_empty() {
        return Err(err(path, "holds no key"));
    }
    Ok(keys)
}

fn write_private(path: &Path, text: &str, create_new: bool) -> Result<(), KeyError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    }
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err(path, "already exists; it is never replaced")
        } else {
            err(path, e.to_string())
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wrapped_keys_open_after_a_rotation_and_only_for_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/kek");
        let p = FileKeyProvider::create(&path).unwrap();
        let first = p.current_kek();
        let (key, wrapped) = p.generate_data_key("acme").await.unwrap();
        assert_eq!(wrapped.kek_id, first);
        assert_eq!(*p.unwrap_key(&wrapped, "acme").await.unwrap(), *key);
        assert!(matches!(
            p.unwrap_key(&wrapped, "beta").await,
            Err(KeyError::Unwrap)
        ));
        // Rotated by another process: this one learns the new KEK on first use.
        let second = FileKeyProvider::rotate(&path).unwrap();
        assert_ne!(first, second);
        // A running provider wraps under the KEK it knows until told to reload.
        assert_eq!(p.wrap_key(&key, "acme").await.unwrap().kek_id, first);
        p.reload().unwrap();
        assert_eq!(p.wrap_key(&key, "acme").await.unwrap().kek_id, second);
        let q = FileKeyProvider::load(&path).unwrap();
        assert_eq!(q.current_kek(), second);
        assert_eq!(q.kek_ids(), vec![first.clone(), second.clone()]);
        assert_eq!(*q.unwrap_key(&wrapped, "acme").await.unwrap(), *key);
        let w2 = q.wrap_key(&key, "acme").await.unwrap();
        assert_eq!(w2.kek_id, second);
        let fake = WrappedKey {
            kek_id: "kek-nowhere".into(),
            blob: w2.blob.clone(),
        };
        assert!(matches!(
            q.unwrap_key(&fake, "acme").await,
            Err(KeyError::UnknownKek(id)) if id == "kek-nowhere"
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_and_none_is_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        FileKeyProvider::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(FileKeyProvider::create(&path).is_err(), "never replaced");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileKeyProvider::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let missing = FileKeyProvider::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }

    #[test]
    fn a_key_file_inside_the_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        FileKeyProvider::create(&data.join("kek")).unwrap();
        assert!(FileKeyProvider::check_outside(&data.join("kek"), &data).is_err());
        FileKeyProvider::create(&dir.path().join("kek")).unwrap();
        assert!(FileKeyProvider::check_outside(&dir.path().join("kek"), &data).is_ok());
    }
}
