//! `application/vnd.amazon.eventstream` framing, written from the spec (not the SDK), so
//! the real SDK's decoder is an independent check of the mock.
//!
//! Frame: `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32`,
//! big-endian, CRC32 (IEEE). Headers: `name_len u8 | name | type u8 | value`; Bedrock only
//! uses type 7 (string: `u16 len | bytes`).

use bytes::Bytes;

/// Encodes one message with string headers, in the given order.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// An event frame: `:event-type`, `:content-type`, `:message-type` (the order real Bedrock uses).
pub fn event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A modeled exception frame, e.g. `throttlingException`.
pub fn exception(exception_type: &str, message: &str) -> Bytes {
    frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        serde_json::json!({ "message": message })
            .to_string()
            .as_bytes(),
    )
}

/// A decoded frame (for tests of the encoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Decodes one frame from the front of `buf`, checking both CRCs. Returns the frame and its length.
pub fn decode(buf: &[u8]) -> Result<(Decoded, usize), String> {
    let u32_at = |i: usize| -> Result<u32, String> {
        buf.get(i..i + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| "short frame".to_owned())
    };
    let total = u32_at(0)? as usize;
    let hlen = u32_at(4)? as usize;
    if crc32fast::hash(buf.get(..8).ok_or("short")?) != u32_at(8)? {
        return Err("prelude CRC mismatch".into());
    }
    if buf.len() < total || total < 16 + hlen {
        return Err("short frame".into());
    }
    if crc32fast::hash(&buf[..total - 4]) != u32_at(total - 4)? {
        return Err("message CRC mismatch".into());
    }
    let mut headers = Vec::new();
    let mut i = 12;
    while i < 12 + hlen {
        let n = buf[i] as usize;
        let name = String::from_utf8_lossy(&buf[i + 1..i + 1 + n]).into_owned();
        i += 1 + n;
        if buf[i] != 7 {
            return Err("only string headers are supported".into());
        }
        let len = u16::from_be_bytes([buf[i + 1], buf[i + 2]]) as usize;
        let value = String::from_utf8_lossy(&buf[i + 3..i + 3 + len]).into_owned();
        i += 3 + len;
        headers.push((name, value));
    }
    Ok((
        Decoded {
            headers,
            payload: buf[12 + hlen..total - 4].to_vec(),
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_live_capture_layout() {
        // Live AWS frame 1 (reference §3.7): 180 bytes, 82 bytes of headers, prelude CRC 05 00 41 65.
        let payload = br#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012","role":"assistant"}"#;
        let f = frame(
            &[
                (":event-type", "messageStart"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload,
        );
        assert_eq!(f.len(), 180);
        assert_eq!(
            &f[..12],
            &[0, 0, 0, 0xb4, 0, 0, 0, 0x52, 0x05, 0x00, 0x41, 0x65]
        );
        assert_eq!(&f[f.len() - 4..], &[0x9f, 0x5f, 0x7f, 0x2d]);
        let (d, n) = decode(&f).unwrap();
        assert_eq!(n, 180);
        assert_eq!(d.headers[0], (":event-type".into(), "messageStart".into()));
        assert_eq!(d.payload, payload);
    }

    #[test]
    fn detects_a_flipped_byte() {
        let mut f = event("messageStop", &serde_json::json!({"stopReason":"end_turn"})).to_vec();
        let at = f.len() - 6;
        f[at] ^= 1;
        assert_eq!(decode(&f).unwrap_err(), "message CRC mismatch");
    }
}
