//! The frames between a run's broker (in the agent service) and its worker (the sandboxed
//! process): protobuf messages, each after a 4-byte big-endian length, one request from
//! the worker answered by one reply from the broker, in order.
//!
//! The worker never names a tenant, a run, a destination or a credential: it asks for the
//! next step's plan, a model turn over the messages it built, a tool by name with its
//! arguments, a checkpoint of its own state, and to finish. The broker decides each one
//! against what it gave (the tools it offered this step, the budget it keeps) and fills in
//! everything else itself.

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warden_proto::gateway::v1 as gw;

/// The largest frame either side accepts: a conversation state at its storage limit.
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024 + 64 * 1024;

/// The broker's first frame: what the worker investigates, and how.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Start {
    #[prost(int32, tag = "1")]
    pub purpose: i32,
    #[prost(string, tag = "2")]
    pub trigger_json: String,
    #[prost(uint64, tag = "3")]
    pub lookback_ms: u64,
    /// The time the run's brief is evaluated at (fresh runs only).
    #[prost(int64, tag = "4")]
    pub now_ms: i64,
    /// The worker's state at the last checkpoint; empty for a fresh run.
    #[prost(bytes = "vec", tag = "5")]
    pub state: Vec<u8>,
    /// The model's context window, for compaction.
    #[prost(uint64, tag = "6")]
    pub context_tokens: u64,
    /// Escape attempts to make before reading anything else (JSON `selfcheck::Check`s).
    #[prost(string, repeated, tag = "7")]
    pub self_checks: Vec<String>,
}

/// One worker request.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Request {
    #[prost(oneof = "request::Kind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<request::Kind>,
}

pub(crate) mod request {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Kind {
        /// The outcomes of the start frame's self checks, in order (JSON `selfcheck::Outcome`s).
        #[prost(message, tag = "1")]
        SelfChecked(SelfChecked),
        /// What the next step may do.
        #[prost(message, tag = "2")]
        Plan(Plan),
        /// A model turn over these messages.
        #[prost(message, tag = "3")]
        Complete(Complete),
        #[prost(message, tag = "4")]
        Tool(Tool),
        #[prost(message, tag = "5")]
        Checkpoint(Checkpoint),
        #[prost(message, tag = "6")]
        Finish(Finish),
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct SelfChecked {
        #[prost(string, repeated, tag = "1")]
        pub outcomes: Vec<String>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Plan {}

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Complete {
        #[prost(message, repeated, tag = "1")]
        pub messages: Vec<gw::Message>,
        /// The worker wants the final answer now (its conversation nearly fills the
        /// context): no tools are offered.
        #[prost(bool, tag = "2")]
        pub final_answer: bool,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Tool {
        /// 0: the purpose's first queries, before the first model turn.
        #[prost(uint32, tag = "1")]
        pub step: u32,
        #[prost(uint32, tag = "2")]
        pub index: u32,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub arguments_json: String,
        /// Why the worker itself refuses the call (it repeats one already made); the
        /// broker records the refusal instead of running it.
        #[prost(string, tag = "5")]
        pub refusal: String,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Checkpoint {
        #[prost(uint32, tag = "1")]
        pub step: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub state: Vec<u8>,
    }

    /// The run's end as the worker read the model's last answer.
    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Finish {
        /// Empty: answered; otherwise why the run failed.
        #[prost(string, tag = "1")]
        pub failure: String,
        #[prost(string, tag = "2")]
        pub summary: String,
        #[prost(string, tag = "3")]
        pub suspected_cause: String,
        #[prost(string, tag = "4")]
        pub confidence: String,
        #[prost(string, repeated, tag = "5")]
        pub cited: Vec<String>,
    }
}

/// One broker reply.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Reply {
    #[prost(oneof = "reply::Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<reply::Kind>,
}

pub(crate) mod reply {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Kind {
        #[prost(message, tag = "1")]
        Plan(Plan),
        #[prost(message, tag = "2")]
        Completion(gw::CompleteResponse),
        #[prost(message, tag = "3")]
        ToolResult(ToolResult),
        /// Recorded (a checkpoint) or accepted (self checks).
        #[prost(message, tag = "4")]
        Ack(Ack),
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Plan {
        /// The step the next model turn is.
        #[prost(uint32, tag = "1")]
        pub step: u32,
        /// The tools the step may call (none when the model must answer now).
        #[prost(message, repeated, tag = "2")]
        pub tools: Vec<gw::ToolDefinition>,
        /// Data types the tenant no longer allows: their results are withheld.
        #[prost(message, repeated, tag = "3")]
        pub withheld: Vec<Withheld>,
        /// Non-empty: the budget says to answer now, and why.
        #[prost(string, tag = "4")]
        pub final_answer: String,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Withheld {
        #[prost(int32, tag = "1")]
        pub data_type: i32,
        #[prost(string, tag = "2")]
        pub reason: String,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct ToolResult {
        #[prost(int32, tag = "1")]
        pub data_type: i32,
        #[prost(string, tag = "2")]
        pub text: String,
        #[prost(bool, tag = "3")]
        pub is_error: bool,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Ack {}
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("the other side closed the connection")]
    Closed,
    #[error("a frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("a frame is not a valid message: {0}")]
    Invalid(#[from] prost::DecodeError),
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one frame.
pub(crate) async fn write<W: AsyncWrite + Unpin, M: Message>(
    w: &mut W,
    m: &M,
) -> Result<(), FrameError> {
    let len = m.encoded_len();
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(len + 4);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut buf)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame ([`FrameError::Closed`] when the peer closed before one began).
pub(crate) async fn read<R: AsyncRead + Unpin, M: Message + Default>(
    r: &mut R,
) -> Result<M, FrameError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(M::decode(body.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let req = Request {
            kind: Some(request::Kind::Tool(request::Tool {
                step: 2,
                index: 1,
                name: "query_logs".into(),
                arguments_json: "{}".into(),
                refusal: String::new(),
            })),
        };
        write(&mut a, &req).await.unwrap();
        let got: Request = read(&mut b).await.unwrap();
        assert_eq!(got, req);
        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        assert!(matches!(
            read::<_, Request>(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));
        drop(a);
        let (mut c, mut d) = tokio::io::duplex(64);
        drop(c.shutdown().await);
        drop(c);
        assert!(matches!(
            read::<_, Request>(&mut d).await,
            Err(FrameError::Closed)
        ));
    }
}
