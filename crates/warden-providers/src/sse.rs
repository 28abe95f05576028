//! Server-sent events: a byte-level decoder and the loop that turns an HTTP body into
//! normalized [`StreamEvent`]s through a per-provider mapper.
//!
//! The decoder follows the WHATWG rules the providers rely on: `event:` and `data:` fields,
//! multi-line data joined with `\n`, comment lines ignored, `\r\n` accepted, an event ends at
//! a blank line. Mappers are pure state machines so each provider's event grammar is tested
//! without a socket.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;

use crate::{EventStream, ProviderError, StreamEvent};

/// One SSE event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE decoder. Bytes in, whole events out.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

/// The largest single SSE line we accept; a provider sending more is broken or hostile.
const MAX_LINE: usize = 8 * 1024 * 1024;

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line =
                String::from_utf8(line).map_err(|_| "event stream is not UTF-8".to_owned())?;
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err("event stream line too long".into());
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

/// A provider's SSE grammar: events in, normalized events out.
pub(crate) trait SseMapper: Send + 'static {
    fn on_event(&mut self, ev: SseEvent) -> Result<Vec<StreamEvent>, ProviderError>;
    /// The terminal event arrived; anything after it is ignored.
    fn is_done(&self) -> bool;
}

struct State<M> {
    provider: String,
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, ProviderError>>,
    decoder: SseDecoder,
    pending: VecDeque<StreamEvent>,
    mapper: M,
    pending_error: Option<ProviderError>,
    finished: bool,
}

/// Drives `mapper` over `resp`'s body. A stall longer than `idle` ends the stream with
/// `Timeout`; a body that ends before the mapper's terminal event ends it with `Protocol`.
pub(crate) fn event_stream<M: SseMapper>(
    provider: &str,
    resp: reqwest::Response,
    idle: Duration,
    mapper: M,
) -> EventStream {
    let body =
        crate::http::idle_guarded(provider.to_owned(), idle, Box::pin(resp.bytes_stream())).boxed();
    let state = State {
        provider: provider.to_owned(),
        body,
        decoder: SseDecoder::default(),
        pending: VecDeque::new(),
        mapper,
        pending_error: None,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok(ev), st));
            }
            if let Some(e) = st.pending_error.take() {
                return Some((Err(e), st));
            }
            if st.finished || st.mapper.is_done() {
                return None;
            }
            match st.body.next().await {
                None => {
                    st.finished = true;
                    let err = ProviderError::Protocol {
                        provider: st.provider.clone(),
                        message: "stream ended before its final event".into(),
                    };
                    return Some((Err(err), st));
                }
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(e), st));
                }
                Some(Ok(chunk)) => {
                    let events = match st.decoder.push(&chunk) {
                        Ok(evs) => evs,
                        Err(message) => {
                            st.finished = true;
                            return Some((
                                Err(ProviderError::Protocol {
                                    provider: st.provider.clone(),
                                    message,
                                }),
                                st,
                            ));
                        }
                    };
                    for ev in events {
                        if st.mapper.is_done() {
                            break;
                        }
                        match st.mapper.on_event(ev) {
                            Ok(out) => st.pending.extend(out),
                            Err(e) => {
                                // Deliver what came before the error, then the error, then stop.
                                st.finished = true;
                                st.pending_error = Some(e);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_across_chunk_boundaries() {
        let mut d = SseDecoder::default();
        let mut evs = d.push(b"event: ping\r\ndata: {\"type\"").unwrap();
        assert!(evs.is_empty());
        evs.extend(
            d.push(b": \"ping\"}\r\n\r\n: comment\n\ndata: a\ndata: b\n\ndata: [DONE]\n\n")
                .unwrap(),
        );
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("ping".into()),
                    data: "{\"type\": \"ping\"}".into()
                },
                SseEvent {
                    event: None,
                    data: "a\nb".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    /// However the bytes are split across reads (even inside a UTF-8 character or a `\r\n`),
    /// the same events come out.
    #[test]
    fn chunking_never_changes_the_events() {
        let input = "event: message_start\r\ndata: {\"t\":\"caf\u{e9} \u{1f600}\"}\r\n\r\n: keepalive\n\ndata: a\ndata: b\n\nevent: x\ndata:\n\n";
        let whole = SseDecoder::default().push(input.as_bytes()).unwrap();
        assert_eq!(whole.len(), 3);
        let bytes = input.as_bytes();
        for size in 1..=bytes.len() {
            let mut d = SseDecoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(size) {
                got.extend(d.push(chunk).unwrap());
            }
            assert_eq!(got, whole, "chunk size {size}");
        }
    }

    #[test]
    fn rejects_non_utf8() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: \xff\xfe\n\n").is_err());
    }
}
