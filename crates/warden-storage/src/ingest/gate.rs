//! Admission and authentication of an ingest request, the same on both ports.
//!
//! First a slot among `max_in_flight` (none free: refused as retryable, before any
//! work), then the sender's tenant: from an `Authorization: Bearer` ingest token when
//! the request carries one, otherwise from the client certificate, which must be an
//! ingest identity of exactly one tenant (the access matrix's `own` rows).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};
use warden_rpc::https::PeerCertificates;
use warden_tls::Caller;

use super::IngestOptions;
use crate::Storage;

pub(crate) struct Gate {
    pub(crate) storage: Storage,
    in_flight: Arc<Semaphore>,
    pub(crate) retry_after: Duration,
}

/// A request let in: its slot (released when dropped) and its tenant.
pub(crate) struct Admitted {
    pub(crate) _slot: OwnedSemaphorePermit,
    pub(crate) tenant: String,
}

impl Gate {
    pub(crate) fn new(storage: Storage, opts: IngestOptions) -> Gate {
        Gate {
            storage,
            in_flight: Arc::new(Semaphore::new(opts.max_in_flight.max(1))),
            retry_after: opts.retry_after,
        }
    }

    /// Lets a request for `rpc` (a matrix row) in, or says why not.
    pub(crate) async fn admit(
        &self,
        headers: &::http::HeaderMap,
        extensions: &::http::Extensions,
        rpc: &'static str,
    ) -> Result<Admitted, Status> {
        let Ok(slot) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("warden_ingest_refused_total", "reason" => "busy").increment(1);
            return Err(self.busy());
        };
        let tenant = match bearer(headers)? {
            Some(token) => self.storage.tenant_of_token(token).await?,
            None => {
                let leaf = extensions
                    .get::<PeerCertificates>()
                    .and_then(PeerCertificates::leaf)
                    .ok_or_else(|| {
                        Status::unauthenticated(
                            "telemetry ingest needs an ingest certificate scoped to one tenant or `Authorization: Bearer <ingest token>`",
                        )
                    })?;
                let caller = Caller::from_der(leaf.as_ref())
                    .map_err(|e| Status::unauthenticated(e.to_string()))?;
                warden_tls::authorize_caller(caller, rpc)?.own_tenant()?
            }
        };
        Ok(Admitted {
            _slot: slot,
            tenant,
        })
    }

    /// UNAVAILABLE with the delay to wait: OTLP senders retry these.
    pub(crate) fn busy(&self) -> Status {
        Status::with_error_details(
            tonic::Code::Unavailable,
            format!(
                "the ingest listener is at its limit of requests in flight; retry after {} s",
                self.retry_after.as_secs().max(1)
            ),
            ErrorDetails::with_retry_info(Some(self.retry_after)),
        )
    }
}

/// The token of an `Authorization: Bearer` header (`None`: no such header).
fn bearer(headers: &::http::HeaderMap) -> Result<Option<&str>, Status> {
    let Some(value) = headers.get(::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the Authorization header is not readable text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(Status::unauthenticated(
            "the Authorization header must be `Bearer <ingest token>`",
        )),
    }
}
