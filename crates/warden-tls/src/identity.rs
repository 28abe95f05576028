//! Identities: who is calling, read from the peer certificate alone.
//!
//! A certificate carries exactly one identity URI SAN `spiffe://warden/<role>/<name>` and,
//! for a caller scoped to tenants, one `spiffe://warden/tenant/<tenant>` URI SAN per
//! tenant. Service identities (gateway, storage, agent service) are never tenant-scoped;
//! a caller identity without a tenant SAN is platform-wide.

use std::fmt;
use std::str::FromStr;

use tonic::{Request, Status};

use crate::known::KnownCallers;

/// What a certificate holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Caller: agent workers and internal services that ask for completions and submit triggers.
    Agent,
    /// Caller: the platform team (platform-wide) and tenant admins (tenant-scoped).
    Admin,
    /// Caller: reads, verifies and exports the audit log.
    Compliance,
    /// Caller: a human who approves or rejects proposals.
    Reviewer,
    /// Caller: a telemetry sender (an OpenTelemetry collector or SDK) of exactly one
    /// tenant; its data is stored under that tenant, whatever the payload says.
    Ingest,
    /// Caller: a customer's read-only identity: lists its tenants' runs and reads their
    /// findings; it can change nothing.
    Viewer,
    /// Service: the storage service.
    Storage,
    /// Service: the gateway.
    Gateway,
    /// Service: the agent service, which runs investigations and brokers reviews.
    AgentService,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Agent,
        Role::Admin,
        Role::Compliance,
        Role::Reviewer,
        Role::Ingest,
        Role::Viewer,
        Role::Storage,
        Role::Gateway,
        Role::AgentService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Compliance => "compliance",
            Role::Reviewer => "reviewer",
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Storage => "storage",
            Role::Gateway => "gateway",
            Role::AgentService => "agent-service",
        }
    }

    /// The three services' own identities, as opposed to their callers'.
    pub fn is_service(self) -> bool {
        matches!(self, Role::Storage | Role::Gateway | Role::AgentService)
    }

    /// The DNS name a service certificate carries and every client of that service
    /// checks (`None` for callers, whose certificates cannot serve).
    pub fn service_name(self) -> Option<&'static str> {
        match self {
            Role::Storage => Some("storage.warden.internal"),
            Role::Gateway => Some("gateway.warden.internal"),
            Role::AgentService => Some("agent.warden.internal"),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "unknown role {0:?}; valid roles: agent, admin, compliance, reviewer, ingest, viewer (callers), gateway, storage, agent-service (services)"
    )]
    UnknownRole(String),
    #[error("client certificate could not be parsed")]
    BadCertificate,
    #[error(
        "client certificate carries no Warden identity (expected a URI SAN spiffe://warden/<role>/<name>)"
    )]
    NoIdentity,
    #[error("certificate carries more than one Warden identity")]
    TwoIdentities,
    #[error("malformed Warden URI SAN {0:?}")]
    BadUri(String),
    #[error("a {0} service identity cannot be scoped to tenants")]
    ScopedService(Role),
    #[error("an ingest identity must be scoped to exactly one tenant; this one names {0}")]
    IngestScope(usize),
}

/// Which tenants an identity may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant: the platform's own services and teams.
    Platform,
    /// Only these tenants (sorted, deduplicated, never empty).
    Tenants(Vec<String>),
}

impl Scope {
    /// A scope from a certificate's tenant list: none means platform-wide.
    pub fn from_tenants(mut tenants: Vec<String>) -> Scope {
        tenants.sort();
        tenants.dedup();
        if tenants.is_empty() {
            Scope::Platform
        } else {
            Scope::Tenants(tenants)
        }
    }

    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::Platform => true,
            Scope::Tenants(ts) => ts.binary_search_by(|t| t.as_str().cmp(tenant)).is_ok(),
        }
    }

    pub fn is_platform(&self) -> bool {
        matches!(self, Scope::Platform)
    }

    /// The tenants named, empty for platform-wide.
    pub fn tenants(&self) -> &[String] {
        match self {
            Scope::Platform => &[],
            Scope::Tenants(ts) => ts,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Platform => f.write_str("platform-wide"),
            Scope::Tenants(ts) => write!(f, "tenants [{}]", ts.join(", ")),
        }
    }
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub name: String,
    pub scope: Scope,
    /// Only under `--insecure-dev` (no TLS, loopback only): trusted with every role.
    pub insecure_dev: bool,
}

pub(crate) const SPIFFE_PREFIX: &str = "spiffe://warden/";
pub(crate) const TENANT_SEGMENT: &str = "tenant";

/// Tenant ids as everywhere in Warden: 1 to 128 of letters, digits, '-', '_', '.'.
pub fn valid_tenant_id(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Caller {
    /// The identity in a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Caller, IdentityError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::BadCertificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::BadCertificate)?;
        let uris = san
            .into_iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                _ => None,
            });
        Caller::from_uris(uris)
    }

    /// The identity in a certificate's URI SANs (non-Warden URIs are ignored).
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Caller, IdentityError> {
        let mut who: Option<(Role, String)> = None;
        let mut tenants = Vec::new();
        for uri in uris {
            let Some(rest) = uri.strip_prefix(SPIFFE_PREFIX) else {
                continue;
            };
            let (kind, value) = rest
                .split_once('/')
                .filter(|(_, v)| !v.is_empty() && !v.contains('/'))
                .ok_or_else(|| IdentityError::BadUri(uri.to_owned()))?;
            if kind == TENANT_SEGMENT {
                if !valid_tenant_id(value) {
                    return Err(IdentityError::BadUri(uri.to_owned()));
                }
                tenants.push(value.to_owned());
            } else if who.is_some() {
                return Err(IdentityError::TwoIdentities);
            } else {
                who = Some((kind.parse()?, value.to_owned()));
            }
        }
        let (role, name) = who.ok_or(IdentityError::NoIdentity)?;
        if role.is_service() && !tenants.is_empty() {
            return Err(IdentityError::ScopedService(role));
        }
        if role == Role::Ingest && tenants.len() != 1 {
            return Err(IdentityError::IngestScope(tenants.len()));
        }
        Ok(Caller {
            role,
            name,
            scope: Scope::from_tenants(tenants),
            insecure_dev: false,
        })
    }

    /// `role/name`, as recorded in audit records.
    pub fn subject(&self) -> String {
        format!("{}/{}", self.role, self.name)
    }

    fn insecure() -> Caller {
        Caller {
            role: Role::Admin,
            name: "insecure-dev".into(),
            scope: Scope::Platform,
            insecure_dev: true,
        }
    }
}

/// Interceptor body: turns the peer certificate into a [`Caller`] stored in the request
/// (read once per connection, through `known`). With `insecure_dev` and no TLS, the
/// caller is a dev superuser (the server refused to start on anything but loopback and
/// warned at start).
pub fn identify<T>(
    mut req: Request<T>,
    insecure_dev: bool,
    known: &KnownCallers,
) -> Result<Request<T>, Status> {
    let caller = match req.peer_certs().and_then(|chain| known.caller(&chain)) {
        Some(caller) => caller.map_err(|e| Status::unauthenticated(e.to_string()))?,
        None if insecure_dev => Caller::insecure(),
        None => {
            return Err(Status::unauthenticated(
                "a client certificate from Warden's CA is required",
            ));
        }
    };
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The caller stored by [`identify`].
pub fn caller_of<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("caller identity missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_uris() {
        let c = Caller::from_uris([
            "spiffe://warden/admin/alice",
            "spiffe://warden/tenant/acme",
            "spiffe://warden/tenant/beta",
        ])
        .unwrap();
        assert_eq!(c.role, Role::Admin);
        assert!(c.scope.covers("acme") && c.scope.covers("beta") && !c.scope.covers("gamma"));
        let i = Caller::from_uris(["spiffe://warden/ingest/otel", "spiffe://warden/tenant/acme"])
            .unwrap();
        assert_eq!(
            (i.role, i.scope.tenants()),
            (Role::Ingest, &["acme".to_owned()][..])
        );
        let p = Caller::from_uris(["spiffe://warden/admin/root"]).unwrap();
        assert!(p.scope.is_platform() && p.scope.covers("anything"));
    }

    #[test]
    fn malformed_or_ambiguous_identities_are_refused() {
        for bad in [
            vec!["spiffe://warden/admin/a", "spiffe://warden/reviewer/b"],
            vec!["spiffe://warden/admin/a", "spiffe://warden/tenant/"],
            vec!["spiffe://warden/admin/a", "spiffe://warden/tenant/a/b"],
            vec![
                "spiffe://warden/admin/a",
                "spiffe://warden/tenant/bad tenant",
            ],
            vec!["spiffe://warden/gateway/g", "spiffe://warden/tenant/acme"],
            vec!["spiffe://warden/tenant/acme"],
            vec!["spiffe://warden/ingest/otel"],
            vec![
                "spiffe://warden/ingest/otel",
                "spiffe://warden/tenant/acme",
                "spiffe://warden/tenant/beta",
            ],
            vec!["spiffe://warden/root/x"],
            vec!["https://example.com/"],
        ] {
            assert!(Caller::from_uris(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
