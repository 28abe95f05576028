//! Profiles, Kubernetes objects and events, configuration snapshots.
//! (Being built: see the telemetry branch.)

use tonic::{Request, Response, Status};
use warden_proto::telemetry::v1 as tm;

use crate::Storage;

fn todo<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not built yet"))
}

impl Storage {
    pub(crate) async fn top_functions_rpc(
        &self,
        _r: Request<tm::TopFunctionsRequest>,
    ) -> Result<Response<tm::TopFunctionsResponse>, Status> {
        todo()
    }
    pub(crate) async fn query_cluster_rpc(
        &self,
        _r: Request<tm::QueryClusterRequest>,
    ) -> Result<Response<tm::QueryClusterResponse>, Status> {
        todo()
    }
    pub(crate) async fn query_config_rpc(
        &self,
        _r: Request<tm::QueryConfigRequest>,
    ) -> Result<Response<tm::QueryConfigResponse>, Status> {
        todo()
    }
    pub(crate) async fn ingest_profile_rpc(
        &self,
        _r: Request<tm::IngestProfileRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        todo()
    }
    pub(crate) async fn ingest_cluster_rpc(
        &self,
        _r: Request<tm::IngestClusterRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        todo()
    }
    pub(crate) async fn ingest_config_rpc(
        &self,
        _r: Request<tm::IngestConfigRequest>,
    ) -> Result<Response<tm::IngestResponse>, Status> {
        todo()
    }
}
