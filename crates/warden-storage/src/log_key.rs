//! Who signs the audit log's checkpoints, and where signed checkpoints are published.
//!
//! The key lives apart from the database (a file, 0600, like the key-encryption key)
//! behind [`LogSigner`], so a KMS or HSM could hold it instead: whoever can rewrite the
//! database still cannot sign a checkpoint. A key file is created on first run only, for
//! an empty log; a log whose last checkpoint another key signed refuses to start.
//! Publishing (an atomic file write and/or an HTTP POST) hands each new checkpoint to a
//! witness or the customer, so a cut tail is visible to anyone holding an older one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warden_merkle::checkpoint::{CheckpointError, Checkpointer};
use warden_merkle::{Hash, SignerKey, VerifierKey};

/// Signs checkpoints for one log. [`LogSigner::sign`] has [`Checkpointer::sign`]'s
/// contract: it refuses a checkpoint that does not extend `previous`.
pub trait LogSigner: Send + Sync + std::fmt::Debug {
    /// The log's origin line (e.g. `warden.example/audit`).
    fn origin(&self) -> &str;
    /// The public key that verifies this signer's checkpoints.
    fn verifier(&self) -> VerifierKey;
    fn sign(
        &self,
        previous: Option<&[u8]>,
        size: u64,
        root: Hash,
        proof: &[Hash],
    ) -> Result<String, CheckpointError>;
}

/// A [`Checkpointer`] over a key read from a file.
#[derive(Debug)]
pub struct KeyFileSigner {
    origin: String,
    checkpointer: Checkpointer,
}

impl LogSigner for KeyFileSigner {
    fn origin(&self) -> &str {
        &self.origin
    }
    fn verifier(&self) -> VerifierKey {
        self.checkpointer.verifier()
    }
    fn sign(
        &self,
        previous: Option<&[u8]>,
        size: u64,
        root: Hash,
        proof: &[Hash],
    ) -> Result<String, CheckpointError> {
        self.checkpointer.sign(previous, size, root, proof)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogKeyError {
    #[error("the audit log key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "the audit log key file {path} is missing, but the log already holds records or checkpoints; restore it (a new key could not prove the log's history)"
    )]
    Missing { path: String },
    #[error("the audit log key: {0}")]
    Key(#[from] warden_merkle::KeyError),
    #[error("the audit log origin: {0}")]
    Origin(#[from] CheckpointError),
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> LogKeyError {
    LogKeyError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl KeyFileSigner {
    /// Loads the key at `path`; creates it (0600) only if `may_create` (an empty log).
    /// The key is named after `origin` when created.
    pub fn load_or_create(
        path: &Path,
        origin: &str,
        may_create: bool,
    ) -> Result<KeyFileSigner, LogKeyError> {
        let key = if path.exists() {
            read_key(path)?
        } else if may_create {
            let mut seed = warden_keys::Zeroizing::new([0u8; 32]);
            {
                use aes_gcm::aead::OsRng;
                use aes_gcm::aead::rand_core::RngCore;
                OsRng.fill_bytes(seed.as_mut());
            }
            let key = SignerKey::from_seed(origin, &seed)?;
            write_private(
                path,
                &format!("{}\n", secrecy::ExposeSecret::expose_secret(&key.encode())),
            )?;
            tracing::info!(path = %path.display(), "created the audit log signing key (first run)");
            key
        } else {
            return Err(LogKeyError::Missing {
                path: path.display().to_string(),
            });
        };
        Ok(KeyFileSigner {
            origin: origin.to_owned(),
            checkpointer: Checkpointer::new(origin, key)?,
        })
    }

    /// The signer of a key held in memory (tests, or a key fetched from elsewhere).
    pub fn from_key(origin: &str, key: SignerKey) -> Result<KeyFileSigner, LogKeyError> {
        Ok(KeyFileSigner {
            origin: origin.to_owned(),
            checkpointer: Checkpointer::new(origin, key)?,
        })
    }
}

/// Reads a signer key file (refused if others can read it).
pub fn read_key(path: &Path) -> Result<SignerKey, LogKeyError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_err(
                path,
                format!("has mode {mode:o}, so others can read it; run `chmod 600` on it"),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text =
        warden_keys::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_err(path, e))?);
    Ok(SignerKey::parse(text.trim())?)
}

fn write_private(path: &Path, text: &str) -> Result<(), LogKeyError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| file_err(path, e))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| file_err(path, e))
}

/// Where each new signed checkpoint goes once its batch is committed.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    /// Replaced atomically (write, fsync, rename) with the latest checkpoint.
    pub file: Option<PathBuf>,
    /// POSTed the latest checkpoint (`text/plain`); a failure is logged and retried
    /// with the next checkpoint.
    pub url: Option<String>,
}

/// Starts the publisher: the latest checkpoint sent on the returned channel is
/// published; checkpoints that arrive while one is being published are coalesced.
pub(crate) fn spawn_publisher(publish: Publish) -> Option<tokio::sync::watch::Sender<String>> {
    if publish.file.is_none() && publish.url.is_none() {
        return None;
    }
    let (tx, mut rx) = tokio::sync::watch::channel(String::new());
    let client = Arc::new(reqwest::Client::new());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let note = rx.borrow_and_update().clone();
            if let Some(path) = &publish.file {
                let path = path.clone();
                let text = note.clone();
                match tokio::task::spawn_blocking(move || write_atomic(&path, &text)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "could not publish the audit checkpoint to its file")
                    }
                    Err(e) => tracing::error!(error = %e, "the checkpoint publisher failed"),
                }
            }
            if let Some(url) = &publish.url {
                let sent = client
                    .post(url)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(note)
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status);
                if let Err(e) = sent {
                    metrics::counter!("warden_storage_audit_checkpoint_publish_failures_total")
                        .increment(1);
                    // Not the URL: it may carry a token.
                    tracing::warn!(status = ?e.status(), "could not POST the audit checkpoint");
                }
            }
        }
    });
    Some(tx)
}

/// Writes `text` to `path` so that readers see the old or the new file, never a part.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("checkpoint")
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Opens the log key file at `path` for `db`: created on first run only, when the log
/// has no record and no checkpoint; refused if missing otherwise, if others can read it,
/// or if it sits inside `data_dir`. Storage itself then refuses to start if this key did
/// not sign the log's last checkpoint.
pub async fn log_key_file(
    db: &crate::Db,
    path: &Path,
    origin: &str,
    data_dir: Option<&Path>,
) -> Result<KeyFileSigner, crate::KeyringError> {
    db.migrate().await?;
    if let Some(dir) = data_dir {
        warden_keys::FileKeyProvider::check_outside(path, dir)?;
    }
    let any: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM audit_log UNION ALL SELECT 1 FROM audit_checkpoints LIMIT 1",
    )
    .fetch_optional(&db.pool)
    .await
    .map_err(crate::DbError::from)?;
    KeyFileSigner::load_or_create(path, origin, any.is_none())
        .map_err(|e| crate::KeyringError::AuditLog(e.to_string()))
}
