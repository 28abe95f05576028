//! Who is sending telemetry. The ingest listener authenticates each request (an ingest
//! identity scoped to exactly one tenant, or a per-tenant ingest token) and attaches the
//! tenant as [`IngestTenant`]; ingest handlers take the tenant from there and never from
//! the payload.

use tonic::{Request, Status};

/// The tenant an ingest request was authenticated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestTenant(pub String);

/// The authenticated sender's tenant, or UNAUTHENTICATED.
pub(crate) fn tenant_of<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<IngestTenant>()
        .map(|t| t.0.clone())
        .ok_or_else(|| {
            Status::unauthenticated(
                "telemetry ingest needs an ingest identity scoped to one tenant or an ingest token",
            )
        })
}
