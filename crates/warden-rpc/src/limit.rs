//! Request size limit with a clear answer.
//!
//! tonic refuses an over-size message with OUT_OF_RANGE and a terse text. Warden reads
//! each gRPC frame's length prefix as the body streams in and refuses the call with
//! RESOURCE_EXHAUSTED and a sentence a person understands, before the body is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy)]
pub struct LimitLayer {
    pub max_message_bytes: usize,
}

impl<S> Layer<S> for LimitLayer {
    type Service = LimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitService {
            inner,
            max: self.max_message_bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LimitService<S> {
    inner: S,
    max: usize,
}

impl<S> Service<http::Request<tonic::body::Body>> for LimitService<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let max = self.max;
        self.inner
            .call(req.map(|b| tonic::body::Body::new(LimitBody::new(b, max))))
    }
}

/// Passes the body through, tracking gRPC frame boundaries (1 flag byte + 4 length bytes).
pub struct LimitBody {
    inner: tonic::body::Body,
    max: usize,
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to pass before the next header.
    remaining: usize,
}

impl LimitBody {
    pub fn new(inner: tonic::body::Body, max: usize) -> Self {
        LimitBody {
            inner,
            max,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// Walks `data`; returns the declared length of a message over the limit, if any.
    fn scan(&mut self, mut data: &[u8]) -> Option<usize> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if len > self.max {
                    return Some(len);
                }
                self.remaining = len;
                self.header_len = 0;
            }
        }
        None
    }
}

impl Body for LimitBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(len) = this.scan(data.chunk())
                {
                    return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                        "request message is {len} bytes, larger than this server's limit of {} bytes; send less data or split the request",
                        this.max
                    )))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn finds_oversize_header_across_chunks() {
        let mut b = LimitBody::new(tonic::body::Body::empty(), 100);
        let mut bytes = frame(10);
        bytes.extend_from_slice(&[7; 10]);
        bytes.extend_from_slice(&frame(1000));
        for chunk in bytes.chunks(3) {
            if let Some(len) = b.scan(chunk) {
                assert_eq!(len, 1000);
                return;
            }
        }
        panic!("over-size frame not found");
    }

    #[test]
    fn passes_messages_within_the_limit() {
        let mut b = LimitBody::new(tonic::body::Body::empty(), 100);
        let mut bytes = frame(100);
        bytes.extend_from_slice(&[1; 100]);
        bytes.extend(frame(0));
        assert_eq!(b.scan(&bytes), None);
    }
}
