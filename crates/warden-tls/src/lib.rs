//! mTLS identities: who is calling, and may they?
//!
//! Every Warden listener speaks TLS (rustls, through tonic) and requires a client
//! certificate from Warden's CA; a certificate from any other CA fails the handshake.
//! The identity lives in URI subject-alternative names: `spiffe://warden/<role>/<name>`,
//! plus `spiffe://warden/tenant/<tenant>` for a caller scoped to tenants. Services'
//! certificates name their service, and every client checks that name, so no other
//! certificate of the CA can pose as a service. [`access`] is the one table of who may
//! call what.
//!
//! [`DevPki`] creates a CA and one certificate per built-in identity on first run and
//! reuses them afterwards, so `warden up` needs no set-up.

pub mod access;
mod identity;
mod known;
mod pki;

pub use access::{Authorized, authorize, authorize_caller};
pub use identity::{Caller, IdentityError, Role, Scope, caller_of, identify, valid_tenant_id};
pub use known::{KnownCallers, PeerChain};
pub use pki::{BUILT_IN, DevPki, IdentityPaths, PkiError, TlsFiles};
