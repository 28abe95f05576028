//! OTLP/gRPC: the collector services `LogsService`, `MetricsService` and `TraceService`
//! (from the published protos), and `warden.telemetry.v1.Ingest`, behind the gate.
//! gzip-compressed requests are accepted; the size limit holds after decompression.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};
use warden_proto::telemetry::v1::ingest_server::IngestServer;

use super::gate::Gate;
use super::{IngestOptions, ItemLimits};
use crate::Storage;
use crate::ingest_auth::{IngestTenant, tenant_of};

/// The OTLP collector services over one storage.
#[derive(Clone)]
struct Otlp {
    storage: Storage,
    items: ItemLimits,
}

#[tonic::async_trait]
impl LogsService for Otlp {
    async fn export(
        &self,
        req: GrpcRequest<ExportLogsServiceRequest>,
    ) -> Result<GrpcResponse<ExportLogsServiceResponse>, Status> {
        let tenant = tenant_of(&req)?;
        let r = self
            .storage
            .export_logs(&tenant, req.get_ref(), &self.items)
            .await?;
        Ok(GrpcResponse::new(r))
    }
}

#[tonic::async_trait]
impl MetricsService for Otlp {
    async fn export(
        &self,
        req: GrpcRequest<ExportMetricsServiceRequest>,
    ) -> Result<GrpcResponse<ExportMetricsServiceResponse>, Status> {
        let tenant = tenant_of(&req)?;
        let r = self
            .storage
            .export_metrics(&tenant, req.get_ref(), &self.items)
            .await?;
        Ok(GrpcResponse::new(r))
    }
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        req: GrpcRequest<ExportTraceServiceRequest>,
    ) -> Result<GrpcResponse<ExportTraceServiceResponse>, Status> {
        let tenant = tenant_of(&req)?;
        let r = self
            .storage
            .export_spans(&tenant, req.get_ref(), &self.items)
            .await?;
        Ok(GrpcResponse::new(r))
    }
}

/// The gRPC port's service: size limit outside, then the gate, then the routes.
pub(super) fn service(
    storage: Storage,
    gate: Arc<Gate>,
    opts: IngestOptions,
) -> warden_rpc::LimitService<axum::Router> {
    let max = opts.max_request_bytes;
    let otlp = Otlp {
        storage: storage.clone(),
        items: opts.items,
    };
    let mut routes = tonic::service::RoutesBuilder::default();
    routes
        .add_service(
            LogsServiceServer::new(otlp.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            MetricsServiceServer::new(otlp.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            TraceServiceServer::new(otlp)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            IngestServer::new(storage)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        );
    let router = routes
        .routes()
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(gate, admit))
        .layer(axum::middleware::from_fn(malformed_is_invalid_argument));
    tower::Layer::layer(
        &warden_rpc::LimitLayer {
            max_message_bytes: max,
        },
        router,
    )
}

/// tonic answers a request body that is not valid protobuf with INTERNAL ("failed to
/// decode Protobuf message: ..."); for a sender that is its own mistake, so it becomes
/// INVALID_ARGUMENT (not retryable, per the OTLP spec), with tonic's reason kept.
async fn malformed_is_invalid_argument(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let internal = res
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"13");
    let undecodable = res
        .headers()
        .get("grpc-message")
        .is_some_and(|v| v.as_bytes().starts_with(b"failed%20to%20decode"));
    if internal && undecodable {
        res.headers_mut()
            .insert("grpc-status", axum::http::HeaderValue::from_static("3"));
    }
    res
}

/// Admits the call (its slot is held until the answer is ready) and hands the handler
/// the sender's tenant. Paths outside the matrix go on to the router, which answers
/// UNIMPLEMENTED.
async fn admit(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let Some(rule) = warden_tls::access::rule(req.uri().path().trim_start_matches('/')) else {
        return next.run(req).await;
    };
    match gate.admit(req.headers(), req.extensions(), rule.rpc).await {
        Ok(admitted) => {
            req.extensions_mut()
                .insert(IngestTenant(admitted.tenant.clone()));
            let res = next.run(req).await;
            drop(admitted);
            res
        }
        Err(status) => status.into_http(),
    }
}
