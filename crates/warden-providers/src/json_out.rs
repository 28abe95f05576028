//! JSON written straight into the request buffer: a provider request is mostly one long text
//! (the minimized telemetry), and building a `serde_json::Value` of it first copied that text
//! into the tree and then escaped it byte by byte. Here each string is escaped once, eight
//! bytes a test on the runs that need no escape (nearly all of a log), with exactly the
//! escapes `serde_json` writes, so the bytes are the same (`tests`).

use serde_json::Value;

/// Appends `s` as a JSON string, quotes included.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    contents(out, s);
    out.push(b'"');
}

/// Appends `parts` joined by newlines as one JSON string, quotes included.
pub(crate) fn joined(out: &mut Vec<u8>, parts: &[&str]) {
    out.reserve(parts.iter().map(|p| p.len() + 2).sum::<usize>() + 2);
    out.push(b'"');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\\n");
        }
        contents(out, p);
    }
    out.push(b'"');
}

/// Appends `v` as compact JSON (as `serde_json::to_vec` writes it).
pub(crate) fn value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Writing to a `Vec` cannot fail, nor can serializing a `Value` or a number.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `v` as a JSON string holding its compact JSON text.
pub(crate) fn value_as_string(out: &mut Vec<u8>, v: &Value) {
    string(out, &v.to_string());
}

/// Bit 7 of each byte of the result set exactly where that byte of `w` must be escaped: below
/// 0x20, `"` or `\` (SWAR; no carry crosses bytes because each sum stays under 0x100).
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Bit 7 of `(b & 0x7f) + 0x60` is set iff `b & 0x7f >= 0x20`; `| w` keeps bytes >= 0x80 out.
    let control = !(((w & LO7) + ONES * 0x60) | w);
    // Zero bytes of `x`, exactly: bit 7 of `(x & 0x7f) + 0x7f` is set iff `x & 0x7f != 0`.
    let zero = |x: u64| !(((x & LO7) + LO7) | x);
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) & HI
}

/// Appends `run`, then the escape of `c` (a byte [`escape_mask`] marks), as `serde_json` writes it.
fn escaped(out: &mut Vec<u8>, run: &[u8], c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(run);
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            let hex = [HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[0], hex[1]]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

fn contents(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let (mut run, mut i) = (0, 0);
    // Eight bytes a test; each byte to escape found from the word's mask.
    while let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let mut mask = escape_mask(u64::from_le_bytes(*w));
        while mask != 0 {
            let j = i + (mask.trailing_zeros() / 8) as usize;
            escaped(out, &b[run..j], b[j]);
            run = j + 1;
            mask &= mask - 1;
        }
        i += 8;
    }
    for (j, &c) in b.iter().enumerate().skip(i) {
        if c < 0x20 || c == b'"' || c == b'\\' {
            escaped(out, &b[run..j], c);
            run = j + 1;
        }
    }
    out.extend_from_slice(&b[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Every ASCII byte, and random strings of escapes, plain bytes and multi-byte characters
    /// at every offset within a word, come out exactly as `serde_json` writes them.
    #[test]
    fn strings_are_escaped_exactly_like_serde_json() {
        for c in 0..=0x7fu8 {
            let s = format!("ab{}cdefghij", char::from(c));
            assert_eq!(written(&s), serde_json::to_string(&s).unwrap_or_default());
        }
        let pieces = [
            "a", "é", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", "\u{7f}", "日本", "xyzxyzxy", "🦀",
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut s = String::new();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            for _ in 0..rng % 40 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                s.push_str(pieces[(rng % pieces.len() as u64) as usize]);
            }
            assert_eq!(
                written(&s),
                serde_json::to_string(&s).unwrap_or_default(),
                "{s:?}"
            );
        }
        let mut out = Vec::new();
        joined(&mut out, &["a\"b", "", "c"]);
        assert_eq!(out, serde_json::to_vec("a\"b\n\nc").unwrap_or_default());
    }
}
