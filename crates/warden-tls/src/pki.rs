//! Certificates on disk: the dev CA that `warden up` creates on first run, and the
//! file triples (CA, certificate, key) every service and client loads.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::Role;
use crate::identity::{SPIFFE_PREFIX, TENANT_SEGMENT, valid_tenant_id};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid identity name {0:?}: use letters, digits, '-' and '_'")]
    BadName(String),
    #[error("invalid tenant id {0:?}: use 1 to 128 letters, digits, '-', '_' or '.'")]
    BadTenant(String),
    #[error("a {0} service identity cannot be scoped to tenants")]
    ScopedService(Role),
    #[error("an ingest identity sends one tenant's telemetry: give exactly one --tenant (got {0})")]
    IngestScope(usize),
    #[error("{0} already exists; pass --force to replace this identity")]
    Exists(PathBuf),
}

/// The three files a TLS endpoint needs: the CA it trusts, its certificate, its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where one identity's files are.
pub type IdentityPaths = TlsFiles;

impl TlsFiles {
    fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
        fs::read(path).map_err(|source| PkiError::Read {
            path: path.to_owned(),
            source,
        })
    }

    /// Server side: present our certificate, require a client certificate from our CA.
    pub fn server_config(&self) -> Result<ServerTlsConfig, PkiError> {
        let identity = Identity::from_pem(Self::read(&self.cert)?, Self::read(&self.key)?);
        Ok(ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(Certificate::from_pem(Self::read(&self.ca)?))
            .client_auth_optional(false))
    }

    /// Client side: trust only our CA, present our certificate, and accept only a server
    /// whose certificate names `domain` (a service's [`Role::service_name`]), so another
    /// identity of the same CA cannot pose as the service meant.
    pub fn client_config(&self, domain: &str) -> Result<ClientTlsConfig, PkiError> {
        let identity = Identity::from_pem(Self::read(&self.cert)?, Self::read(&self.key)?);
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(Self::read(&self.ca)?))
            .identity(identity)
            .domain_name(domain))
    }
}

/// A development CA in a directory, with certificates for Warden's built-in identities.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

/// Marks a directory whose built-in identities have the current layout.
const LAYOUT_MARKER: &str = "layout-v2";

/// The identities `warden up` issues: the three services, and one platform-wide caller
/// per caller role (file name = identity name). Ingest identities are always scoped to one
/// tenant, so none is built in: `warden certs issue --role ingest --tenant T` makes one.
pub const BUILT_IN: [(Role, &str); 7] = [
    (Role::Gateway, "gateway"),
    (Role::Storage, "storage"),
    (Role::AgentService, "agent-service"),
    (Role::Agent, "agent"),
    (Role::Admin, "admin"),
    (Role::Compliance, "compliance"),
    (Role::Reviewer, "reviewer"),
];

impl DevPki {
    /// Loads the CA in `dir`, creating it and the built-in identities on first use.
    /// Existing files are reused untouched, so restarts keep the same certificates.
    pub fn load_or_create(dir: impl Into<PathBuf>) -> Result<DevPki, PkiError> {
        let pki = DevPki { dir: dir.into() };
        fs::create_dir_all(&pki.dir).map_err(|source| PkiError::Write {
            path: pki.dir.clone(),
            source,
        })?;
        if !pki.ca_cert_path().exists() || !pki.ca_key_path().exists() {
            pki.create_ca("Warden dev CA")?;
            tracing::info!(dir = %pki.dir.display(), "created a development CA");
        }
        // Certificates from before service names and caller-only usages (no layout
        // marker) are re-issued once, so an old `.warden/` keeps working.
        let marker = pki.dir.join(LAYOUT_MARKER);
        let fresh = !marker.exists();
        for (role, name) in BUILT_IN {
            if fresh || !pki.files(name).cert.exists() || !pki.files(name).key.exists() {
                pki.issue(role, name, &[], true)?;
            }
        }
        if fresh {
            write_file(
                &marker,
                b"service names, client-only callers, tenant scopes\n",
            )?;
        }
        Ok(pki)
    }

    /// A CA that is not Warden's, for tests that a foreign certificate is refused.
    pub fn create_foreign(
        dir: impl Into<PathBuf>,
        role: Role,
        name: &str,
    ) -> Result<DevPki, PkiError> {
        let pki = DevPki { dir: dir.into() };
        fs::create_dir_all(&pki.dir).map_err(|source| PkiError::Write {
            path: pki.dir.clone(),
            source,
        })?;
        pki.create_ca("Some other CA")?;
        pki.issue(role, name, &[], true)?;
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }

    /// The files of the identity `name` (issued or not).
    pub fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            ca: self.ca_cert_path(),
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        }
    }

    fn create_ca(&self, common_name: &str) -> Result<(), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        write_file(&self.ca_cert_path(), cert.pem().as_bytes())?;
        write_secret(&self.ca_key_path(), key.serialize_pem().as_bytes())?;
        Ok(())
    }

    /// Issues a certificate for `role/name`, scoped to `tenants` (none: platform-wide),
    /// into `<name>.pem` and `<name>-key.pem`; an existing identity is replaced only
    /// with `overwrite`.
    ///
    /// A service certificate names its service ([`Role::service_name`]) and may serve and
    /// call; a caller certificate names no host and may only call (client-auth EKU), so
    /// it can never pose as a service.
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        tenants: &[String],
        overwrite: bool,
    ) -> Result<TlsFiles, PkiError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(PkiError::BadName(name.to_owned()));
        }
        if let Some(t) = tenants.iter().find(|t| !valid_tenant_id(t)) {
            return Err(PkiError::BadTenant(t.clone()));
        }
        if role.is_service() && !tenants.is_empty() {
            return Err(PkiError::ScopedService(role));
        }
        if role == Role::Ingest && tenants.len() != 1 {
            return Err(PkiError::IngestScope(tenants.len()));
        }
        let files = self.files(name);
        if !overwrite && (files.cert.exists() || files.key.exists()) {
            return Err(PkiError::Exists(files.cert));
        }
        let ca_pem = String::from_utf8_lossy(&TlsFiles::read(&self.ca_cert_path())?).into_owned();
        let ca_key_pem =
            String::from_utf8_lossy(&TlsFiles::read(&self.ca_key_path())?).into_owned();
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

        let key = KeyPair::generate()?;
        let dns: Vec<String> = role.service_name().map(str::to_owned).into_iter().collect();
        let mut params = CertificateParams::new(dns)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{role}/{name}"));
        params.subject_alt_names.push(SanType::URI(
            format!("{SPIFFE_PREFIX}{role}/{name}").try_into()?,
        ));
        for t in tenants {
            params.subject_alt_names.push(SanType::URI(
                format!("{SPIFFE_PREFIX}{TENANT_SEGMENT}/{t}").try_into()?,
            ));
        }
        params.extended_key_usages = if role.is_service() {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        write_file(&files.cert, cert.pem().as_bytes())?;
        write_secret(&files.key, key.serialize_pem().as_bytes())?;
        Ok(files)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    fs::write(path, bytes).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Private keys are readable by their owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| PkiError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Caller;

    fn der_of(path: &Path) -> Vec<u8> {
        let pem = fs::read_to_string(path).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&b64)
    }

    // Tiny decoder so the test needs no extra crate.
    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        bytes
            .chunks(4)
            .flat_map(|c| {
                let n = c
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &v)| acc | (u32::from(v) << (18 - 6 * i)));
                let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
                out.into_iter().take(c.len().saturating_sub(1))
            })
            .collect()
    }

    #[test]
    fn creates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        let first = fs::read(pki.files("gateway").cert).unwrap();
        let again = DevPki::load_or_create(dir.path()).unwrap();
        assert_eq!(first, fs::read(again.files("gateway").cert).unwrap());
    }

    #[test]
    fn identity_round_trips_through_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        for (role, name) in BUILT_IN {
            let caller = Caller::from_der(&der_of(&pki.files(name).cert)).unwrap();
            assert_eq!((caller.role, caller.name.as_str()), (role, name));
        }
        let files = pki
            .issue(Role::Reviewer, "alice", &["acme".to_owned()], false)
            .unwrap();
        let caller = Caller::from_der(&der_of(&files.cert)).unwrap();
        assert_eq!(caller.subject(), "reviewer/alice");
        assert!(caller.scope.covers("acme") && !caller.scope.covers("beta"));
    }

    #[test]
    fn ca_is_not_an_identity_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        assert!(Caller::from_der(&der_of(&pki.ca_cert_path())).is_err());
        assert!(matches!(
            pki.issue(Role::Admin, "../etc", &[], false),
            Err(PkiError::BadName(_))
        ));
        assert!(matches!(
            pki.issue(Role::Gateway, "gw2", &["acme".to_owned()], false),
            Err(PkiError::ScopedService(Role::Gateway))
        ));
        assert!(matches!(
            pki.issue(Role::Ingest, "otel", &[], false),
            Err(PkiError::IngestScope(0))
        ));
        let two = ["acme".to_owned(), "beta".to_owned()];
        assert!(matches!(
            pki.issue(Role::Ingest, "otel", &two, false),
            Err(PkiError::IngestScope(2))
        ));
        let files = pki
            .issue(Role::Ingest, "otel", &["acme".to_owned()], false)
            .unwrap();
        let caller = Caller::from_der(&der_of(&files.cert)).unwrap();
        assert_eq!(caller.subject(), "ingest/otel");
    }

    #[test]
    fn an_existing_identity_is_replaced_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        let before = fs::read(pki.files("admin").cert).unwrap();
        assert!(matches!(
            pki.issue(Role::Admin, "admin", &[], false),
            Err(PkiError::Exists(_))
        ));
        assert_eq!(before, fs::read(pki.files("admin").cert).unwrap());
        pki.issue(Role::Admin, "admin", &[], true).unwrap();
        assert_ne!(before, fs::read(pki.files("admin").cert).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(pki.files("admin").key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
