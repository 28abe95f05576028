//! Where the gateway writes audit records: the storage service, behind a trait so tests
//! can make it fail and prove that nothing leaves when it does.

use std::time::Duration;

use tonic::transport::Channel;
use warden_proto::common::v1::AuditRecord;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_proto::storage::v1::{AppendRequest, AuditReceipt};

/// The audit log could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not be written")]
pub struct AuditUnavailable;

#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends durably; `Ok` only once the record is committed.
    async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, AuditUnavailable>;
}

/// Appends through the storage service's `AuditLog` API.
#[derive(Clone)]
pub struct StorageAudit {
    client: AuditLogClient<Channel>,
}

impl StorageAudit {
    pub fn new(client: AuditLogClient<Channel>) -> Self {
        StorageAudit { client }
    }
}

#[async_trait::async_trait]
impl AuditSink for StorageAudit {
    async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, AuditUnavailable> {
        let mut client = self.client.clone();
        let call = client.append(AppendRequest {
            record: Some(record),
        });
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => {
                tracing::error!(code = ?status.code(), "audit append refused by storage");
                Err(AuditUnavailable)
            }
            Err(_) => {
                tracing::error!("audit append timed out");
                Err(AuditUnavailable)
            }
        }
    }
}
