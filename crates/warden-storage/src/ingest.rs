//! The ingest listener: storage receiving telemetry the way an OpenTelemetry collector
//! does, OTLP/gRPC on one port (plus `warden.telemetry.v1.Ingest`) and OTLP/HTTP on another.
//!
//! Both ports speak TLS with storage's service certificate. A sender proves its tenant
//! with an ingest certificate (role `ingest`, scoped to exactly one tenant) or with a
//! per-tenant ingest token (`Authorization: Bearer`); the tenant is never read from the
//! payload. Requests are bounded in size and in number in flight, and answered as the
//! OTLP specification says (partial success, retryable refusals with a delay).
//!
//! - `decode`: OTLP into rows (pure), item by item.
//! - `gate`: admission (a slot in flight) and authentication, for both ports.
//! - `otlp_grpc`, `otlp_http`: the two wire forms over the same [`Storage::export_logs`] and kin.
//! - `tokens`: the `IngestTokens` service. `retention`: pruning old telemetry per tenant.

pub mod decode;
mod gate;
mod otlp_grpc;
mod otlp_http;
pub(crate) mod retention;
pub(crate) mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::Status;
use warden_rpc::{HostError, Security};

pub use decode::ItemLimits;
pub use tokens::TOKEN_PREFIX;

use crate::Storage;

/// How the ingest listener bounds its work.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Largest request accepted, after decompression (gRPC RESOURCE_EXHAUSTED, HTTP 413).
    pub max_request_bytes: usize,
    /// Requests handled at once over both ports; more are refused as retryable
    /// (gRPC UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After).
    pub max_in_flight: usize,
    /// The delay a refused sender is told to wait.
    pub retry_after: Duration,
    pub items: ItemLimits,
    /// Open requests still running this long after shutdown are dropped.
    pub shutdown_deadline: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_request_bytes: 4 * 1024 * 1024,
            max_in_flight: 64,
            retry_after: Duration::from_secs(1),
            items: ItemLimits::default(),
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// Counts one request's items (labels: the signal and the outcome, never the tenant).
fn count(signal: &'static str, accepted: usize, rejected: u64) {
    metrics::counter!("warden_ingest_items_total", "signal" => signal, "outcome" => "accepted")
        .increment(accepted as u64);
    metrics::counter!("warden_ingest_items_total", "signal" => signal, "outcome" => "rejected")
        .increment(rejected);
    metrics::histogram!("warden_ingest_request_items", "signal" => signal)
        .record((accepted as u64 + rejected) as f64);
}

/// A request where items were sent and none could be kept: INVALID_ARGUMENT, nothing stored.
fn nothing_decoded(what: &str, message: String) -> Status {
    Status::invalid_argument(format!("no {what} could be stored: {message}"))
}

impl Storage {
    /// Stores the log records of one OTLP export for `tenant`: the valid ones, counting
    /// the rest in the partial success.
    pub async fn export_logs(
        &self,
        tenant: &str,
        req: &ExportLogsServiceRequest,
        lim: &ItemLimits,
    ) -> Result<ExportLogsServiceResponse, Status> {
        let d = decode::logs(req, lim);
        count("logs", d.rows.len(), d.rejected);
        let message = d.message("log records");
        if d.rows.is_empty() && d.rejected > 0 {
            return Err(nothing_decoded("log record", message));
        }
        if !d.rows.is_empty() {
            self.note_ingest_tenant(tenant).await?;
            self.store_logs(tenant, &d.rows).await?;
        }
        Ok(ExportLogsServiceResponse {
            partial_success: (d.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: d.rejected as i64,
                error_message: message,
            }),
        })
    }

    /// [`Storage::export_logs`] for metric data points.
    pub async fn export_metrics(
        &self,
        tenant: &str,
        req: &ExportMetricsServiceRequest,
        lim: &ItemLimits,
    ) -> Result<ExportMetricsServiceResponse, Status> {
        let d = decode::metrics(req, lim);
        count("metrics", d.rows.len(), d.rejected);
        let message = d.message("data points");
        if d.rows.is_empty() && d.rejected > 0 {
            return Err(nothing_decoded("data point", message));
        }
        if !d.rows.is_empty() {
            self.note_ingest_tenant(tenant).await?;
            self.store_metrics(tenant, &d.rows).await?;
        }
        Ok(ExportMetricsServiceResponse {
            partial_success: (d.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: d.rejected as i64,
                error_message: message,
            }),
        })
    }

    /// [`Storage::export_logs`] for spans.
    pub async fn export_spans(
        &self,
        tenant: &str,
        req: &ExportTraceServiceRequest,
        lim: &ItemLimits,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let d = decode::spans(req, lim);
        count("traces", d.rows.len(), d.rejected);
        let message = d.message("spans");
        if d.rows.is_empty() && d.rejected > 0 {
            return Err(nothing_decoded("span", message));
        }
        if !d.rows.is_empty() {
            self.note_ingest_tenant(tenant).await?;
            self.store_spans(tenant, &d.rows).await?;
        }
        Ok(ExportTraceServiceResponse {
            partial_success: (d.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: d.rejected as i64,
                error_message: message,
            }),
        })
    }

    /// Serves OTLP/gRPC (and `warden.telemetry.v1.Ingest`) on `grpc` and OTLP/HTTP on
    /// `http` until `shutdown` resolves. Under `--insecure-dev` both are plaintext on
    /// loopback and only ingest tokens authenticate.
    pub async fn serve_ingest(
        &self,
        grpc: TcpListener,
        http: TcpListener,
        security: &Security,
        opts: IngestOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HostError> {
        let tls = warden_rpc::https::optional_client_auth(security)?;
        let gate = Arc::new(gate::Gate::new(self.clone(), opts));
        let grpc_svc = otlp_grpc::service(self.clone(), gate.clone(), opts);
        let http_svc = otlp_http::service(gate, opts);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let grpc_task = warden_rpc::https::serve(
            "ingest-grpc",
            grpc,
            tls.clone(),
            grpc_svc,
            stop(rx.clone()),
            opts.shutdown_deadline,
        );
        let http_task = warden_rpc::https::serve(
            "ingest-http",
            http,
            tls,
            http_svc,
            stop(rx),
            opts.shutdown_deadline,
        );
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
            Ok::<(), HostError>(())
        };
        tokio::try_join!(grpc_task, http_task, signal)?;
        Ok(())
    }
}
