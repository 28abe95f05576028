//! The `TelemetryQuery` and `Ingest` services: one trait impl each, delegating to the
//! module that owns each signal (`signals` for logs, metrics and traces; `cluster` for
//! profiles, Kubernetes state and configuration snapshots).

use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;
use warden_proto::telemetry::v1::ingest_server::Ingest;
use warden_proto::telemetry::v1::telemetry_query_server::TelemetryQuery;

use crate::Storage;

#[tonic::async_trait]
impl TelemetryQuery for Storage {
    async fn query_logs(
        &self,
        req: Request<tm::QueryLogsRequest>,
    ) -> Result<Response<tm::QueryLogsResponse>, Status> {
        self.query_logs_rpc(req).await
    }
    async fn log_patterns(
        &self,
        req: Request<tm::LogPatternsRequest>,
    ) -> Result<Response<tm::LogPatternsResponse>, Status> {
        self.log_patterns_rpc(req).await
    }
    async fn list_metrics(
        &self,
        req: Request<tm::ListMetricsRequest>,
    ) -> Result<Response<tm::ListMetricsResponse>, Status> {
        self.list_metrics_rpc(req).await
    }
    async fn query_metrics(
        &self,
        req: Request<tm::QueryMetricsRequest>,
    ) -> Result<Response<tm::QueryMetricsResponse>, Status> {
        self.query_metrics_rpc(req).await
    }
    async fn get_trace(
        &self,
        req: Request<tm::GetTraceRequest>,
    ) -> Result<Response<tm::GetTraceResponse>, Status> {
        self.get_trace_rpc(req).await
    }
    async fn find_traces(
        &self,
        req: Request<tm::FindTracesRequest>,
    ) -> Result<Response<tm::FindTracesResponse>, Status> {
        self.find_traces_rpc(req).await
    }
    async fn top_functions(
        &self,
        req: Request<tm::TopFunctionsRequest>,
    ) -> Result<Response<tm::TopFunctionsResponse>, Status> {
        self.top_functions_rpc(req).await
    }
    async fn query_cluster(
        &self,
        req: Request<tm::QueryClusterRequest>,
    ) -> Result<Response<tm::QueryClusterResponse>, Status> {
        self.query_cluster_rpc(req).await
    }
    async fn query_config(
        &self,
        req: Request<tm::QueryConfigRequest>,
    ) -> Result<Response<tm::QueryConfigResponse>, Status> {
        self.query_config_rpc(req).await
    }
}

#[tonic::async_trait]
impl Ingest for Storage {
    async fn ingest_profile(
        &self,
        req: Request<tm::IngestProfileRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        self.ingest_profile_rpc(req).await
    }
    async fn ingest_cluster(
        &self,
        req: Request<tm::IngestClusterRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        self.ingest_cluster_rpc(req).await
    }
    async fn ingest_config(
        &self,
        req: Request<tm::IngestConfigRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        self.ingest_config_rpc(req).await
    }
}
