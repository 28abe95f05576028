//! Where the gateway writes audit records: the storage service, behind a trait so tests
//! can make it fail and prove that nothing leaves when it does.
//!
//! Records go over one long-lived `AuditLog/AppendStream` (two records a model call: as
//! unary calls each would cost an HTTP/2 stream and its headers on both sides). Callers
//! write their message straight into the stream and wait for the answer with their
//! `call` number; one reader task hands answers out. When the stream breaks, every
//! record waiting on it fails (the call is refused, as when a unary append fails) and the
//! next append opens a new stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use warden_proto::common::v1::AuditRecord;
use warden_proto::storage::v1::append_stream_response::Result as Answer;
use warden_proto::storage::v1::audit_log_client::AuditLogClient;
use warden_proto::storage::v1::{AppendStreamRequest, AppendStreamResponse, AuditReceipt};

/// The audit log could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not be written")]
pub struct AuditUnavailable;

#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends durably; `Ok` only once the record is committed.
    async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, AuditUnavailable>;
}

/// How long an append may wait for its commit before the call is refused.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages written but not yet taken by the stream; past this, appends wait.
const OUTBOX: usize = 1024;

/// Appends through the storage service's `AuditLog/AppendStream`.
#[derive(Clone)]
pub struct StorageAudit {
    client: AuditLogClient<Channel>,
    /// The stream in use; replaced when it has broken.
    stream: Arc<Mutex<Option<Arc<Open>>>>,
}

/// One open stream: where messages go, and who waits for which answer. The reader task
/// holds only the waiters, so the stream ends (and its task with it) once the gateway
/// lets go of its `StorageAudit`.
struct Open {
    outbox: mpsc::Sender<AppendStreamRequest>,
    next_call: AtomicU64,
    waiting: Arc<Waiting>,
}

/// Who waits for which answer; `None` once the stream has ended, so no one may wait on it
/// any more.
struct Waiting(Mutex<Option<HashMap<u64, Waiter>>>);

type Waiter = oneshot::Sender<Result<AuditReceipt, AuditUnavailable>>;

impl StorageAudit {
    pub fn new(client: AuditLogClient<Channel>) -> Self {
        StorageAudit {
            client,
            stream: Arc::new(Mutex::new(None)),
        }
    }

    /// The stream in use, opened if there is none or the last one has ended.
    fn stream(&self) -> Arc<Open> {
        let mut slot = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = slot.as_ref().filter(|o| !o.waiting.ended()) {
            return open.clone();
        }
        let open = Open::start(self.client.clone());
        *slot = Some(open.clone());
        open
    }
}

impl Open {
    /// Opens the stream and starts the task that reads its answers.
    fn start(mut client: AuditLogClient<Channel>) -> Arc<Open> {
        let (outbox, messages) = mpsc::channel(OUTBOX);
        let waiting = Arc::new(Waiting(Mutex::new(Some(HashMap::new()))));
        let reader = waiting.clone();
        tokio::spawn(async move {
            let messages = tokio_stream::wrappers::ReceiverStream::new(messages);
            match client.append_stream(messages).await {
                Ok(answers) => reader.read(answers.into_inner()).await,
                Err(status) => {
                    tracing::error!(code = ?status.code(), "audit append stream refused by storage");
                }
            }
            reader.end();
        });
        Arc::new(Open {
            outbox,
            next_call: AtomicU64::new(0),
            waiting,
        })
    }

    /// Writes `record` and waits, until `deadline`, for its answer.
    async fn append(
        &self,
        record: AuditRecord,
        deadline: tokio::time::Instant,
    ) -> Result<AuditReceipt, AuditUnavailable> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let answer = self.waiting.wait_for(call)?;
        let message = AppendStreamRequest {
            call,
            record: Some(record),
        };
        let sent = tokio::time::timeout_at(deadline, self.outbox.send(message)).await;
        let answered = match sent {
            Ok(Ok(())) => tokio::time::timeout_at(deadline, answer).await,
            Ok(Err(_)) => {
                self.waiting.forget(call);
                tracing::error!("audit append stream closed before the record was sent");
                return Err(AuditUnavailable);
            }
            Err(elapsed) => Err(elapsed),
        };
        match answered {
            Ok(result) => result.map_err(|_| AuditUnavailable)?,
            Err(_) => {
                self.waiting.forget(call);
                tracing::error!("audit append timed out");
                Err(AuditUnavailable)
            }
        }
    }
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ended(&self) -> bool {
        self.lock().is_none()
    }

    /// Registers a wait for answer `call`, unless the stream has ended.
    fn wait_for(
        &self,
        call: u64,
    ) -> Result<oneshot::Receiver<Result<AuditReceipt, AuditUnavailable>>, AuditUnavailable> {
        let (done, answer) = oneshot::channel();
        match self.lock().as_mut() {
            Some(waiting) => {
                waiting.insert(call, done);
                Ok(answer)
            }
            None => Err(AuditUnavailable),
        }
    }

    fn forget(&self, call: u64) {
        if let Some(w) = self.lock().as_mut() {
            w.remove(&call);
        }
    }

    /// Hands each answer to whoever waits for it, until the stream ends.
    async fn read(&self, mut answers: tonic::Streaming<AppendStreamResponse>) {
        loop {
            match answers.message().await {
                Ok(Some(a)) => {
                    let result = match a.result {
                        Some(Answer::Receipt(r)) => Ok(r),
                        Some(Answer::Refused(r)) => {
                            tracing::error!(code = r.code, reason = %r.message, "audit append refused by storage");
                            Err(AuditUnavailable)
                        }
                        None => {
                            tracing::error!(
                                "audit append answered with neither receipt nor refusal"
                            );
                            Err(AuditUnavailable)
                        }
                    };
                    let waiter = self.lock().as_mut().and_then(|w| w.remove(&a.call));
                    if let Some(w) = waiter {
                        let _ = w.send(result);
                    }
                }
                Ok(None) => {
                    tracing::warn!("audit append stream closed by storage");
                    return;
                }
                Err(status) => {
                    tracing::error!(code = ?status.code(), "audit append stream broke");
                    return;
                }
            }
        }
    }

    /// Ends the stream for its waiters: each gets an error (their senders drop), and no
    /// one may wait on it again.
    fn end(&self) {
        self.lock().take();
    }
}

#[async_trait::async_trait]
impl AuditSink for StorageAudit {
    async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, AuditUnavailable> {
        let deadline = tokio::time::Instant::now() + APPEND_TIMEOUT;
        self.stream().append(record, deadline).await
    }
}
