//! The last resort for any data type: keep the head, cut at a UTF-8 boundary, say so.
//!
//! Prefers the last line break in the final quarter of the kept head, so a reader sees whole
//! lines; the marker names only byte counts.

use super::Method;
use crate::template::floor_char_boundary;

/// Cuts `text` to at most `budget` bytes including the marker; see the module doc.
pub(crate) fn cut(text: &str, budget: usize) -> (String, Method) {
    let out = truncate(text, budget);
    let bytes_cut = text.len().saturating_sub(kept_len(&out));
    (out, Method::Truncate { bytes_cut })
}

/// `text` cut to at most `budget` bytes, ending in `[warden: cut N of M bytes]` when it fits.
pub(crate) fn truncate(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_owned();
    }
    // The marker's length depends on N; M's digit count bounds N's, so size it with M.
    let longest = marker(text.len(), text.len()).len();
    if budget < longest {
        return text[..floor_char_boundary(text, budget)].to_owned();
    }
    let mut keep = floor_char_boundary(text, budget - longest);
    if let Some(nl) = text[..keep].rfind('\n')
        && nl + 1 >= keep - keep / 4
    {
        keep = nl + 1;
    }
    let mut out = String::with_capacity(budget);
    out.push_str(&text[..keep]);
    out.push_str(&marker(text.len() - keep, text.len()));
    out
}

fn marker(cut: usize, total: usize) -> String {
    format!("\n[warden: cut {cut} of {total} bytes]\n")
}

/// Bytes of the original text kept in `out` (everything before the marker).
fn kept_len(out: &str) -> usize {
    match out.rfind("\n[warden: cut ") {
        Some(i) => i,
        None => out.len(),
    }
}
