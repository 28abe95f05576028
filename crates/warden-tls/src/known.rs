//! Callers already read from a connection's certificate chain, so a connection's
//! certificate is parsed once rather than on every request.
//!
//! tonic and Warden's HTTPS listener hand every request of a connection the same
//! `Arc<Vec<CertificateDer>>`, made once when the TLS handshake verified the chain. The
//! identity read from its leaf is a pure function of those bytes, so it is the same for
//! every request of the connection. [`KnownCallers`] remembers it per chain, keyed by the
//! chain's address and holding a [`Weak`] to it: the `Weak` keeps that allocation from
//! being freed, so no other chain can appear at a remembered address while its entry
//! exists, and an entry is only ever used for the very chain it was read from.
//!
//! Nothing else changes: identity comes from the certificate alone; what the handshake
//! checks (a chain to Warden's CA, validity) happens per connection as before; a
//! certificate that yields no identity is never remembered (it is refused every time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tonic::transport::CertificateDer;

use crate::identity::{Caller, IdentityError};

/// A verified peer chain, as tonic and the HTTPS listener share it across a connection's
/// requests.
pub type PeerChain = Arc<Vec<CertificateDer<'static>>>;

/// Entries kept before those of closed connections are dropped.
const CAPACITY: usize = 4096;

/// A remembered caller: the chain it was read from (held so its address stays its own)
/// and the caller, by the chain's address.
type ByChain = HashMap<usize, (Weak<Vec<CertificateDer<'static>>>, Caller)>;

/// The callers of open connections, by their certificate chain.
#[derive(Debug, Default)]
pub struct KnownCallers {
    by_chain: Mutex<ByChain>,
}

impl KnownCallers {
    pub fn new() -> Self {
        KnownCallers::default()
    }

    /// The caller named by `chain`'s leaf certificate (`None`: no certificate presented),
    /// read once per chain.
    pub fn caller(&self, chain: &PeerChain) -> Option<Result<Caller, IdentityError>> {
        let leaf = chain.first()?;
        let key = Arc::as_ptr(chain) as usize;
        if let Some((_, caller)) = self.lock().get(&key) {
            return Some(Ok(caller.clone()));
        }
        // Parsed outside the lock; two first requests of a connection may both parse.
        let caller = match Caller::from_der(leaf.as_ref()) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, (chain, _)| chain.strong_count() > 0);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key, (Arc::downgrade(chain), caller.clone()));
        Some(Ok(caller))
    }

    /// How many chains are remembered (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByChain> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.by_chain.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DevPki, Role};

    /// The DER certificates of a fresh dev PKI's `agent` and `admin`.
    fn agent_and_admin() -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::load_or_create(dir.path()).unwrap();
        let der_of = |name: &str| {
            let pem = std::fs::read(pki.files(name).cert).unwrap();
            x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
        };
        (der_of("agent"), der_of("admin"))
    }

    /// A new connection's chain.
    fn chain(der: &[u8]) -> PeerChain {
        Arc::new(vec![CertificateDer::from(der.to_vec())])
    }

    #[test]
    fn each_chain_is_read_once_and_answers_for_itself_only() {
        let (agent_der, admin_der) = agent_and_admin();
        let known = KnownCallers::new();
        let agent = chain(&agent_der);
        let admin = chain(&admin_der);
        let first = known.caller(&agent).unwrap().unwrap();
        assert_eq!(first.role, Role::Agent);
        assert_eq!(known.len(), 1);
        assert_eq!(known.caller(&agent).unwrap().unwrap(), first);
        assert_eq!(
            known.len(),
            1,
            "a connection's next request is not parsed again"
        );
        assert_eq!(known.caller(&admin).unwrap().unwrap().role, Role::Admin);
        assert_eq!(known.len(), 2);
        // The same certificate on another connection is its own entry, with the same caller.
        let again = chain(&agent_der);
        assert_eq!(known.caller(&again).unwrap().unwrap(), first);
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn no_certificate_and_bad_certificates_are_never_remembered() {
        let known = KnownCallers::new();
        assert!(known.caller(&Arc::new(Vec::new())).is_none());
        let junk = chain(&[0x30, 0x03, 1, 2, 3]);
        assert_eq!(
            known.caller(&junk).unwrap().unwrap_err(),
            IdentityError::BadCertificate
        );
        assert_eq!(
            known.caller(&junk).unwrap().unwrap_err(),
            IdentityError::BadCertificate
        );
        assert!(known.is_empty());
    }

    #[test]
    fn closed_connections_make_room() {
        let (agent, admin) = agent_and_admin();
        let known = KnownCallers::new();
        let open = chain(&agent);
        known.caller(&open).unwrap().unwrap();
        for _ in 0..CAPACITY {
            // Each dropped at once: a connection that closed.
            known.caller(&chain(&admin)).unwrap().unwrap();
        }
        assert!(
            known.len() < CAPACITY,
            "closed connections' entries were dropped"
        );
        assert_eq!(known.caller(&open).unwrap().unwrap().role, Role::Agent);
    }
}
