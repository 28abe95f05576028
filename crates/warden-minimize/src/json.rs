//! Redaction that keeps a JSON document valid JSON, for tool-call arguments.
//!
//! The whole document is scanned as text, so a value is still judged by its key
//! (`{"password": "..."}`) exactly as in any other part. Each finding is then fitted to the
//! JSON tokens it touches: a finding inside one string literal that does not split an escape
//! sequence is replaced as it is; any other finding replaces the whole content of every
//! string literal it touches (never quotes or punctuation), and a number it touches becomes
//! a quoted placeholder. Placeholders hold no `"` or `\`, so the result is valid JSON; a
//! last check re-parses it and, should that ever fail, redacts string by string instead.

use serde_json::Value;

use crate::detect::{Engine, Kind};
use crate::placeholder::{Placeholders, Pseudonyms};

/// One JSON token a finding may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    /// The content of a string literal (without quotes), or a whole number.
    start: usize,
    end: usize,
    is_string: bool,
}

/// A replacement: bytes `start..end` become `kind`'s placeholder, quoted if `quote`.
struct Edit {
    start: usize,
    end: usize,
    kind: Kind,
    quote: bool,
}

/// `json` (a valid JSON document) with every secret and identifier replaced by its
/// placeholder from `table`; still valid JSON.
pub(crate) fn redact(engine: &Engine, table: &mut Placeholders, json: &str) -> String {
    let spans = engine.find_spans(json);
    if spans.is_empty() {
        return json.to_owned();
    }
    let (tokens, inside_escape) = tokenize(json.as_bytes());
    let mut edits: Vec<Edit> = Vec::new();
    for s in &spans {
        let touched: Vec<Token> = tokens
            .iter()
            .copied()
            .filter(|t| t.start < s.end && s.start < t.end.max(t.start + 1))
            .collect();
        let whole_inside_one_string = match touched.as_slice() {
            [t] => {
                t.is_string
                    && t.start <= s.start
                    && s.end <= t.end
                    && !inside_escape[s.start]
                    && !inside_escape[s.end]
            }
            _ => false,
        };
        if whole_inside_one_string {
            edits.push(Edit {
                start: s.start,
                end: s.end,
                kind: s.kind.clone(),
                quote: false,
            });
            continue;
        }
        for t in touched {
            edits.push(Edit {
                start: t.start,
                end: t.end,
                kind: s.kind.clone(),
                quote: !t.is_string,
            });
        }
    }
    // Widened edits may overlap their neighbours: keep the first of any overlap, merging
    // an overlapping later edit into it.
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        match merged.last_mut() {
            Some(last) if e.start < last.end => last.end = last.end.max(e.end),
            _ => merged.push(e),
        }
    }
    let mut out = String::with_capacity(json.len());
    let mut at = 0;
    for e in &merged {
        let (Some(before), Some(value)) = (json.get(at..e.start), json.get(e.start..e.end)) else {
            continue;
        };
        out.push_str(before);
        let p = table.placeholder(&e.kind, value);
        if e.quote {
            out.push('"');
            out.push_str(&p);
            out.push('"');
        } else {
            out.push_str(&p);
        }
        at = e.end;
    }
    out.push_str(json.get(at..).unwrap_or_default());
    if serde_json::from_str::<Value>(&out).is_ok() {
        return out;
    }
    // Unreachable for valid input; never send what we could not keep valid and redacted.
    redact_strings(engine, table, json)
}

/// Redacts every string (keys and values) of `json` on its own: valid JSON by construction,
/// but blind to key context, so only the fallback of [`redact`].
fn redact_strings(engine: &Engine, table: &mut Placeholders, json: &str) -> String {
    fn walk(engine: &Engine, table: &mut Placeholders, v: Value) -> Value {
        let mut text = |s: String| {
            let spans = engine.find_spans(&s);
            if spans.is_empty() {
                s
            } else {
                table.replace(&s, &spans)
            }
        };
        match v {
            Value::String(s) => Value::String(text(s)),
            Value::Array(a) => {
                Value::Array(a.into_iter().map(|v| walk(engine, table, v)).collect())
            }
            Value::Object(o) => {
                let mut out = serde_json::Map::new();
                for (k, v) in o {
                    let k = {
                        let spans = engine.find_spans(&k);
                        if spans.is_empty() {
                            k
                        } else {
                            table.replace(&k, &spans)
                        }
                    };
                    let v = walk(engine, table, v);
                    out.insert(k, v);
                }
                Value::Object(out)
            }
            other => other,
        }
    }
    match serde_json::from_str::<Value>(json) {
        Ok(v) => walk(engine, table, v).to_string(),
        // Not JSON at all: send an empty object rather than unredacted text.
        Err(_) => "{}".to_owned(),
    }
}

/// The string contents and numbers of `json`, and for each byte position whether it lies
/// strictly inside an escape sequence (`\n`, `\u00e9`), where a cut would break the string.
fn tokenize(json: &[u8]) -> (Vec<Token>, Vec<bool>) {
    let mut tokens = Vec::new();
    let mut inside_escape = vec![false; json.len() + 1];
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < json.len() && json[j] != b'"' {
                    if json[j] == b'\\' {
                        let len = if json.get(j + 1) == Some(&b'u') { 6 } else { 2 };
                        let end = (j + len).min(json.len());
                        for flag in &mut inside_escape[j + 1..end] {
                            *flag = true;
                        }
                        j = end;
                    } else {
                        j += 1;
                    }
                }
                tokens.push(Token {
                    start,
                    end: j.min(json.len()),
                    is_string: true,
                });
                i = j + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                tokens.push(Token {
                    start,
                    end: i,
                    is_string: false,
                });
            }
            _ => i += 1,
        }
    }
    (tokens, inside_escape)
}

// === impl Pseudonyms (JSON) ===

impl Pseudonyms {
    /// Restores identifiers in every string (keys and values) of a JSON value: tool-call
    /// arguments in an answer. Secrets are never in the map, so never restored.
    pub fn restore_value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => *s = self.restore(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.restore_value(v)),
            Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut v) in old {
                    self.restore_value(&mut v);
                    o.insert(self.restore(&k), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Like [`Pseudonyms::restore`] on JSON text (a streamed fragment of tool-call
    /// arguments): originals are escaped as JSON string content, so the text stays JSON.
    pub fn restore_json(&self, fragment: &str) -> String {
        self.restore_with(fragment, |original, out| {
            for c in original.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn redacted(json: &str) -> (String, Placeholders) {
        let engine = Engine::builtin().unwrap();
        let mut table = Placeholders::new(true);
        let out = redact(&engine, &mut table, json);
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        (out, table)
    }

    #[test]
    fn values_are_judged_by_their_key_and_json_stays_valid() {
        let (out, _) =
            redacted(r#"{"user":"ann@example.com","password":"hunter2-Very-Secret-9","limit":5}"#);
        assert_eq!(
            out,
            r#"{"user":"[EMAIL:1]","password":"[SECRET:password:2]","limit":5}"#
        );
    }

    #[test]
    fn escapes_are_never_split() {
        // The key=value inside the string ends at the escaped quote: the finding is widened
        // to the whole string rather than cutting `\"` in half.
        let (out, _) = redacted(r#"{"cmd":"export PASSWORD=Zx9\"kQ2mW7 && run","n":1}"#);
        assert!(!out.contains("Zx9"), "{out}");
        assert!(!out.contains("kQ2mW7"), "{out}");
    }

    #[test]
    fn tokenizer_marks_escape_interiors() {
        let json = br#"{"a":"x\ny\u00e9z"}"#;
        let (tokens, inside) = tokenize(json);
        assert_eq!(tokens.len(), 2);
        let s = std::str::from_utf8(json).unwrap();
        let at = s.find("\\n").unwrap();
        assert!(!inside[at] && inside[at + 1] && !inside[at + 2]);
        let u = s.find("\\u").unwrap();
        assert!((u + 1..u + 6).all(|i| inside[i]) && !inside[u + 6]);
    }

    #[test]
    fn restored_json_fragments_stay_json() {
        let engine = Engine::builtin().unwrap();
        let mut table = Placeholders::new(true);
        let out = redact(&engine, &mut table, r#"{"user":"ann@example.com"}"#);
        let ps = table.into_pseudonyms();
        assert_eq!(ps.restore_json(&out), r#"{"user":"ann@example.com"}"#);
        let mut v: Value = serde_json::from_str(&out).unwrap();
        ps.restore_value(&mut v);
        assert_eq!(v, serde_json::json!({"user": "ann@example.com"}));
    }
}
