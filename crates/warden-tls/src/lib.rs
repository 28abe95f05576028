//! mTLS identities: who is calling, and may they?
//!
//! Every Warden listener speaks TLS (rustls, through tonic) and requires a client
//! certificate from Warden's CA; a certificate from any other CA fails the handshake.
//! The identity lives in a URI subject-alternative name `spiffe://warden/<role>/<name>`,
//! and the role decides which RPCs the caller may use ([`authorize`]).
//!
//! [`DevPki`] creates a CA and one certificate per built-in identity on first run and
//! reuses them afterwards, so `warden up` needs no set-up.

mod identity;
mod pki;

pub use identity::{Caller, IdentityError, Role, authorize, caller_of, identify};
pub use pki::{DevPki, IdentityPaths, PkiError, TlsFiles};
