//! One tracing span and one set of Prometheus series per RPC, for every service.
//!
//! The span and labels carry the gRPC service and method only: never metadata, payload
//! or peer details, so nothing a caller sends can leak into logs or metric labels.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

/// Adds the span and the `warden_rpc_*` series.
#[derive(Debug, Clone, Copy)]
pub struct MetricsLayer {
    pub component: &'static str,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            component: self.component,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    component: &'static str,
}

impl<S, B, RB> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(req.uri().path());
        let component = self.component;
        let span = tracing::info_span!("rpc", component, service = %service, method = %method);
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let res = fut.await;
                // Errors before the body are sent as trailers-only responses, with
                // grpc-status in the headers; success carries it in trailers (so, OK).
                let code = match &res {
                    Ok(resp) => resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or("OK", |c| code_name(tonic::Code::from_i32(c))),
                    Err(_) => "TRANSPORT",
                };
                let labels = [
                    ("component", component.to_owned()),
                    ("service", service),
                    ("method", method),
                ];
                metrics::counter!("warden_rpc_requests_total", &labels).increment(1);
                let mut with_code = labels.to_vec();
                with_code.push(("code", code.to_owned()));
                metrics::counter!("warden_rpc_responses_total", &with_code).increment(1);
                metrics::histogram!("warden_rpc_request_duration_seconds", &labels)
                    .record(started.elapsed().as_secs_f64());
                if code != "OK" {
                    tracing::info!(code, "rpc refused");
                }
                res
            }
            .instrument(span),
        )
    }
}

/// `/warden.gateway.v1.Gateway/Complete` → (`warden.gateway.v1.Gateway`, `Complete`).
/// Unknown paths collapse to one label value so a caller cannot mint label series.
fn split_path(path: &str) -> (String, String) {
    let mut it = path.trim_start_matches('/').splitn(2, '/');
    let (svc, method) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
    let known = svc.starts_with("warden.") || svc.starts_with("grpc.");
    let clean = |s: &str| {
        s.len() <= 96
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    };
    if known && clean(svc) && clean(method) {
        (svc.to_owned(), method.to_owned())
    } else {
        ("unknown".to_owned(), "unknown".to_owned())
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            split_path("/warden.gateway.v1.Gateway/Complete"),
            ("warden.gateway.v1.Gateway".into(), "Complete".into())
        );
        assert_eq!(
            split_path("/evil/AKIA0123456789ABCDEF"),
            ("unknown".into(), "unknown".into())
        );
        assert_eq!(
            split_path("/warden.x/a b"),
            ("unknown".into(), "unknown".into())
        );
    }
}
