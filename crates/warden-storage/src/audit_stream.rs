//! `AuditLog/AppendStream`: many appends on one gRPC stream.
//!
//! The gateway appends two records a model call. As unary calls each costs an HTTP/2
//! stream, its headers and a server task on both sides; on one long-lived stream a record
//! is one message each way. Nothing else changes: every message is checked and authorized
//! as `Append` checks it (by the stream's peer certificate, never by the message), goes
//! through the same committer, and is answered only after its commit. Answers go out as
//! commits finish, so they may overtake one another; `call` pairs them with their message.

use std::pin::Pin;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Status, Streaming};
use warden_proto::storage::v1::append_stream_response::Result as Answer;
use warden_proto::storage::v1::{
    AppendRefused, AppendStreamRequest, AppendStreamResponse, AuditReceipt,
};
use warden_tls::Authorized;

use crate::Storage;

/// Appends one stream may have waiting for their commits; past this the stream is not
/// read until some are answered, so HTTP/2 flow control holds the sender back.
const IN_FLIGHT: usize = 4096;

/// The answers, in the order their commits finish.
pub(crate) type AnswerStream =
    Pin<Box<dyn Stream<Item = Result<AppendStreamResponse, Status>> + Send + 'static>>;

/// Serves one stream: reads messages while fewer than [`IN_FLIGHT`] wait, and answers
/// each after its commit. The answers end once the caller has closed its side, or storage
/// has begun to shut down ([`Storage::close_streams`]), and every append read has been
/// answered.
pub(crate) fn serve(
    storage: Storage,
    auth: Authorized,
    mut inbound: Streaming<AppendStreamRequest>,
) -> AnswerStream {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let mut closing = storage.closing();
    tokio::spawn(async move {
        let mut waiting = FuturesUnordered::new();
        let mut reading = !*closing.borrow_and_update();
        loop {
            tokio::select! {
                // Shutting down: messages not read yet get no answer, so their senders
                // see the stream end and refuse their calls.
                () = async { let _ = closing.wait_for(|c| *c).await; }, if reading => reading = false,
                next = inbound.message(), if reading && waiting.len() < IN_FLIGHT => match next {
                    Ok(Some(m)) => match admit(&auth, m) {
                        Ok((call, record)) => {
                            let storage = storage.clone();
                            waiting.push(async move { (call, storage.append_audit(record).await) });
                        }
                        Err((call, status)) => {
                            if tx.send(Ok(answer(call, Err(status)))).await.is_err() {
                                reading = false;
                            }
                        }
                    },
                    Ok(None) => reading = false,
                    Err(status) => {
                        // The caller's side broke (reset, bad frame): what it sent is
                        // still committed and answered if the answers can be delivered.
                        tracing::debug!(code = ?status.code(), "audit append stream ended by its caller");
                        reading = false;
                    }
                },
                Some((call, result)) = waiting.next(), if !waiting.is_empty() => {
                    // A caller that went away gets no answer; its records are committed.
                    let _ = tx.send(Ok(answer(call, result))).await;
                }
                else => break,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// What `Append` checks before it queues a record, for one message of the stream.
fn admit(
    auth: &Authorized,
    m: AppendStreamRequest,
) -> Result<(u64, warden_proto::common::v1::AuditRecord), (u64, Status)> {
    let call = m.call;
    crate::audit::admit_append(auth, m.record)
        .map(|r| (call, r))
        .map_err(|s| (call, s))
}

fn answer(call: u64, result: Result<AuditReceipt, Status>) -> AppendStreamResponse {
    AppendStreamResponse {
        call,
        result: Some(match result {
            Ok(receipt) => Answer::Receipt(receipt),
            Err(status) => Answer::Refused(AppendRefused {
                code: status.code() as i32,
                message: status.message().to_owned(),
            }),
        }),
    }
}
