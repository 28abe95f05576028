//! Logs, metrics and traces: stored rows and the queries an investigator asks.
//! (Being built: see the telemetry branch.)

use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;

use crate::Storage;

fn todo<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not built yet"))
}

impl Storage {
    pub(crate) async fn query_logs_rpc(
        &self,
        _r: Request<tm::QueryLogsRequest>,
    ) -> Result<Response<tm::QueryLogsResponse>, Status> {
        todo()
    }
    pub(crate) async fn log_patterns_rpc(
        &self,
        _r: Request<tm::LogPatternsRequest>,
    ) -> Result<Response<tm::LogPatternsResponse>, Status> {
        todo()
    }
    pub(crate) async fn list_metrics_rpc(
        &self,
        _r: Request<tm::ListMetricsRequest>,
    ) -> Result<Response<tm::ListMetricsResponse>, Status> {
        todo()
    }
    pub(crate) async fn query_metrics_rpc(
        &self,
        _r: Request<tm::QueryMetricsRequest>,
    ) -> Result<Response<tm::QueryMetricsResponse>, Status> {
        todo()
    }
    pub(crate) async fn get_trace_rpc(
        &self,
        _r: Request<tm::GetTraceRequest>,
    ) -> Result<Response<tm::GetTraceResponse>, Status> {
        todo()
    }
    pub(crate) async fn find_traces_rpc(
        &self,
        _r: Request<tm::FindTracesRequest>,
    ) -> Result<Response<tm::FindTracesResponse>, Status> {
        todo()
    }
}

// TEMPORARY (t-ingest): stand-ins with the agreed signatures until the t-signals branch,
// which owns the signal tables, is merged; they store nothing.
impl Storage {
    pub async fn store_logs(
        &self,
        _tenant_id: &str,
        _rows: &[warden_telemetry::model::LogRow],
    ) -> Result<(), Status> {
        Ok(())
    }
    pub async fn store_metrics(
        &self,
        _tenant_id: &str,
        _points: &[warden_telemetry::model::MetricPoint],
    ) -> Result<(), Status> {
        Ok(())
    }
    pub async fn store_spans(
        &self,
        _tenant_id: &str,
        _spans: &[warden_telemetry::model::SpanRow],
    ) -> Result<(), Status> {
        Ok(())
    }
    pub async fn prune_signals(&self, _tenant_id: &str, _before_ms: i64) -> Result<u64, Status> {
        Ok(0)
    }
}
