//! Length-prefixed JSON frames on the worker socket: a 4-byte big-endian length, then that many
//! bytes of JSON. A length prefix lets the reader take exactly one message (nothing the worker
//! sends after its handshake is consumed by it) and refuse an oversized one before reading it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::SandboxError;

/// The largest handshake frame the parent accepts.
pub(crate) const HANDSHAKE_MAX: u32 = 16 * 1024;

fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, SandboxError> {
    let body = serde_json::to_vec(message)
        .map_err(|e| SandboxError::Frame(format!("cannot encode: {e}")))?;
    let len = u32::try_from(body.len())
        .map_err(|_| SandboxError::Frame(format!("{} bytes is too large", body.len())))?;
    let mut framed = Vec::with_capacity(body.len() + 4);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

fn checked_len(prefix: [u8; 4], max_len: u32) -> Result<usize, SandboxError> {
    let len = u32::from_be_bytes(prefix);
    if len > max_len {
        return Err(SandboxError::Frame(format!(
            "a frame of {len} bytes exceeds the limit of {max_len}"
        )));
    }
    usize::try_from(len).map_err(|_| SandboxError::Frame(format!("{len} bytes is too large")))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    serde_json::from_slice(body).map_err(|e| SandboxError::Frame(format!("not valid JSON: {e}")))
}

/// Writes one frame.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), SandboxError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let framed = encode(message)?;
    writer
        .write_all(&framed)
        .await
        .map_err(|e| SandboxError::os("writing a frame", e))?;
    writer
        .flush()
        .await
        .map_err(|e| SandboxError::os("writing a frame", e))
}

/// Reads one frame of at most `max_len` bytes; `Ok(None)` when the peer closed the socket
/// before a new frame began.
pub async fn read_frame<R, T>(reader: &mut R, max_len: u32) -> Result<Option<T>, SandboxError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SandboxError::os("reading a frame", e)),
    }
    let mut body = vec![0u8; checked_len(prefix, max_len)?];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| SandboxError::os("reading a frame", e))?;
    decode(&body).map(Some)
}

/// Writes one frame without a runtime (the worker's handshake, sent before it starts one).
pub fn write_frame_blocking<W: Write, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), SandboxError> {
    let framed = encode(message)?;
    writer
        .write_all(&framed)
        .and_then(|()| writer.flush())
        .map_err(|e| SandboxError::os("writing a frame", e))
}

/// Reads one frame without a runtime; `Ok(None)` on a clean end of stream.
pub fn read_frame_blocking<R: Read, T: DeserializeOwned>(
    reader: &mut R,
    max_len: u32,
) -> Result<Option<T>, SandboxError> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SandboxError::os("reading a frame", e)),
    }
    let mut body = vec![0u8; checked_len(prefix, max_len)?];
    reader
        .read_exact(&mut body)
        .map_err(|e| SandboxError::os("reading a frame", e))?;
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_leaves_what_follows_unread() -> Result<(), SandboxError> {
        let mut wire = Vec::new();
        write_frame_blocking(&mut wire, &vec!["one".to_owned()])?;
        wire.extend_from_slice(b"after");
        let mut reader = std::io::Cursor::new(wire);
        let got: Option<Vec<String>> = read_frame_blocking(&mut reader, 1024)?;
        assert_eq!(got, Some(vec!["one".to_owned()]));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest)
            .map_err(|e| SandboxError::os("test read", e))?;
        assert_eq!(rest, "after");
        Ok(())
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_read() {
        let mut wire = 2_000u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&[b'x'; 10]);
        let got: Result<Option<String>, _> =
            read_frame_blocking(&mut std::io::Cursor::new(wire), 1000);
        assert!(
            matches!(&got, Err(SandboxError::Frame(m)) if m.contains("2000")),
            "{got:?}"
        );
    }

    #[test]
    fn a_closed_stream_is_no_frame() -> Result<(), SandboxError> {
        let got: Option<String> = read_frame_blocking(&mut std::io::Cursor::new(Vec::new()), 10)?;
        assert_eq!(got, None);
        Ok(())
    }

    #[tokio::test]
    async fn async_and_blocking_frames_agree() -> Result<(), SandboxError> {
        let mut wire = Vec::new();
        write_frame(&mut wire, &42u32).await?;
        let got: Option<u32> = read_frame_blocking(&mut std::io::Cursor::new(wire), 16)?;
        assert_eq!(got, Some(42));
        Ok(())
    }
}
