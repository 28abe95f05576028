//! Roles, callers, and the check each RPC makes.

use std::fmt;
use std::str::FromStr;

use tonic::{Request, Status};

/// What a certificate holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Agent workers and internal services that ask for completions and submit triggers.
    Agent,
    /// The platform team and tenant admins: tenant AI settings.
    Admin,
    /// Compliance: reads and exports the audit log.
    Compliance,
    /// Humans who approve or reject proposals.
    Reviewer,
    /// The storage service.
    Storage,
    /// The gateway service.
    Gateway,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Agent,
        Role::Admin,
        Role::Compliance,
        Role::Reviewer,
        Role::Storage,
        Role::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Compliance => "compliance",
            Role::Reviewer => "reviewer",
            Role::Storage => "storage",
            Role::Gateway => "gateway",
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
        "unknown role {0:?}; valid roles: agent, admin, compliance, reviewer, storage, gateway"
    )]
    UnknownRole(String),
    #[error("client certificate could not be parsed")]
    BadCertificate,
    #[error(
        "client certificate carries no Warden identity (expected a URI SAN spiffe://warden/<role>/<name>)"
    )]
    NoIdentity,
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub name: String,
    /// Only under `--insecure-dev` (no TLS): the caller is trusted with every role.
    pub insecure_dev: bool,
}

pub(crate) const SPIFFE_PREFIX: &str = "spiffe://warden/";

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
        for uri in uris {
            if let Some(rest) = uri.strip_prefix(SPIFFE_PREFIX)
                && let Some((role, name)) = rest.split_once('/')
            {
                return Ok(Caller {
                    role: role.parse()?,
                    name: name.to_owned(),
                    insecure_dev: false,
                });
            }
        }
        Err(IdentityError::NoIdentity)
    }

    /// `role/name`, as recorded in audit records.
    pub fn subject(&self) -> String {
        format!("{}/{}", self.role, self.name)
    }

    fn insecure() -> Caller {
        Caller {
            role: Role::Admin,
            name: "insecure-dev".into(),
            insecure_dev: true,
        }
    }
}

/// Interceptor body: turns the peer certificate into a [`Caller`] stored in the request.
/// With `insecure_dev` and no TLS, the caller is a dev superuser (the server warned at start).
pub fn identify<T>(mut req: Request<T>, insecure_dev: bool) -> Result<Request<T>, Status> {
    let certs = req.peer_certs();
    let caller = match certs.as_ref().and_then(|c| c.first()) {
        Some(leaf) => {
            Caller::from_der(leaf.as_ref()).map_err(|e| Status::unauthenticated(e.to_string()))?
        }
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

/// Refuses with PERMISSION_DENIED, naming the role(s) required, unless the caller has one.
pub fn authorize<T>(req: &Request<T>, rpc: &str, allowed: &[Role]) -> Result<Caller, Status> {
    let caller = caller_of(req)?;
    if caller.insecure_dev || allowed.contains(&caller.role) {
        return Ok(caller);
    }
    let need = allowed
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    Err(Status::permission_denied(format!(
        "{rpc} requires role {need}; caller {} has role {}",
        caller.subject(),
        caller.role
    )))
}
