//! Configuration snapshots (Helm values, ConfigMap data, JSON, plain text) as an
//! investigation may read them: every secret value replaced by a digest marker
//! (`[REDACTED sha256:<first 12 hex>]`) so a changed secret still shows as a change, and a
//! unified diff from the snapshot before.
//!
//! Secrets are found two ways: the project's redactor (`warden-minimize`'s rule pack:
//! tokens, keys, PEM blocks, assignments it knows) on every value, and key names
//! (`password`, `secret`, `token`, `apikey`, `private_key`, `credentials`, ...), whose
//! whole value (or, for a nested block, every value under it) is replaced.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use warden_minimize::Engine;

/// The redactor could not be built (the shipped rule pack did not compile).
#[derive(Debug, thiserror::Error)]
#[error("the redaction rules do not compile: {0}")]
pub struct ConfigError(String);

/// Replaces secret values in configuration text.
#[derive(Debug, Clone)]
pub struct Redactor {
    engine: Engine,
}

/// What stands in for a secret value: its digest, so a change is still visible.
pub fn marker(value: &str) -> String {
    let d = Sha256::digest(value.as_bytes());
    format!("[REDACTED sha256:{}]", &hex::encode(d)[..12])
}

fn is_marker(value: &str) -> bool {
    value.starts_with("[REDACTED sha256:") && value.ends_with(']')
}

/// Key words whose values are secrets, matched on the key lowercased without `-`, `_`,
/// `.` and spaces.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "accesskey",
    "secretkey",
    "clientsecret",
    "connectionstring",
    "authkey",
    "signingkey",
    "encryptionkey",
];

/// Endings of keys that name or point at a secret rather than hold one (`secretName`,
/// `passwordFile`, `tokenTTL`).
const REFERENCE_ENDINGS: &[&str] = &[
    "name", "ref", "path", "file", "enabled", "ttl", "expiry", "length", "id", "type", "url",
];

/// Whether a key's value is a secret by the key's name alone.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' ' | '"' | '\''))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_WORDS.iter().any(|w| k.contains(w))
        && !REFERENCE_ENDINGS
            .iter()
            .any(|e| k.ends_with(e) && !SECRET_WORDS.iter().any(|w| k.ends_with(w)))
}

/// Values that stand for nothing secret, left as they are.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    v.is_empty()
        || is_marker(v)
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "null" | "~" | "true" | "false" | "none" | "\"\"" | "''"
        )
        || (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with("{{") && v.ends_with("}}"))
}

// === impl Redactor ===

impl Redactor {
    pub fn new(engine: Engine) -> Redactor {
        Redactor { engine }
    }

    /// With the shipped rule pack.
    pub fn builtin() -> Result<Redactor, ConfigError> {
        Engine::builtin()
            .map(Redactor::new)
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// `content` with every secret value replaced: JSON documents value by value (and
    /// pretty-printed), anything else (YAML, properties, env files, text) line by line.
    pub fn redact(&self, content: &str) -> String {
        match serde_json::from_str::<Value>(content) {
            Ok(mut v @ (Value::Object(_) | Value::Array(_))) => {
                self.redact_json(&mut v, false);
                serde_json::to_string_pretty(&v).unwrap_or_default()
            }
            _ => self.redact_text(content),
        }
    }

    /// One entry of a ConfigMap's (or Secret's) data: the whole value when the key names
    /// a secret, else the secrets in it.
    pub fn redact_entry(&self, key: &str, value: &str) -> String {
        if is_secret_key(key) && !is_placeholder(value) {
            marker(value)
        } else {
            self.redact(value)
        }
    }

    /// A JSON value with secrets replaced in place; `all`: every scalar under a secret key.
    pub fn redact_json(&self, v: &mut Value, all: bool) {
        match v {
            Value::Object(map) => {
                // `{"name": "DB_PASSWORD", "value": "..."}`: an env var named as a secret.
                let named = map
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(is_secret_key);
                for (k, child) in map.iter_mut() {
                    self.redact_json(child, all || is_secret_key(k) || (named && k == "value"));
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.redact_json(child, all);
                }
            }
            Value::String(s) if all && !is_placeholder(s) => *s = marker(s),
            Value::String(_) if all => {}
            Value::Number(n) if all => *v = Value::String(marker(&n.to_string())),
            Value::String(s) => *s = self.redact_text(s),
            _ => {}
        }
    }

    /// Text: first values of secret-named keys (YAML `key: value` and block scalars,
    /// nested blocks, `key=value`, and Kubernetes-style `- name: DB_PASSWORD` / `value:`
    /// pairs), then what the rule pack finds elsewhere.
    pub fn redact_text(&self, text: &str) -> String {
        self.by_rules(&self.by_key_names(text))
    }

    fn by_rules(&self, text: &str) -> String {
        // Markers already placed are digests of the real values: leave them whole.
        let placed: Vec<(usize, usize)> = text
            .match_indices("[REDACTED sha256:")
            .map(|(i, m)| (i, i + m.len() + 13))
            .collect();
        let spans = self.engine.find_spans(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in spans.iter().filter(|s| s.kind.is_secret()) {
            if s.start < at || placed.iter().any(|(a, b)| s.start < *b && *a < s.end) {
                continue;
            }
            out.push_str(&text[at..s.start]);
            let m = marker(&text[s.start..s.end]);
            // A whole YAML value is quoted, so the marker does not read as a list.
            let rest = &text[s.end..];
            if text[..s.start].ends_with(": ")
                && (rest.is_empty() || rest.starts_with(['\n', '\r']) || rest.starts_with(" #"))
            {
                out.push('"');
                out.push_str(&m);
                out.push('"');
            } else {
                out.push_str(&m);
            }
            at = s.end;
        }
        out.push_str(&text[at..]);
        out
    }

    fn by_key_names(&self, text: &str) -> String {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut out: Vec<String> = Vec::with_capacity(lines.len());
        // Lines indented deeper than this belong to a secret key's block.
        let mut block: Option<usize> = None;
        // After `- name: <secret-named>`: the indent of its sibling keys.
        let mut named_secret: Option<usize> = None;
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            i += 1;
            let indent = line.len() - line.trim_start().len();
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                out.push(line.to_owned());
                continue;
            }
            if let Some(b) = block {
                if indent > b {
                    out.push(redact_line_value(line));
                    continue;
                }
                block = None;
            }
            let Some(kv) = split_key_value(line) else {
                out.push(line.to_owned());
                continue;
            };
            if named_secret.is_some_and(|n| kv.key_indent < n || (kv.item && kv.key_indent <= n)) {
                named_secret = None;
            }
            let secret =
                is_secret_key(kv.key) || (kv.key == "value" && named_secret == Some(kv.key_indent));
            if kv.key == "name" && kv.sep == ':' && is_secret_key(kv.value.trim()) {
                named_secret = Some(kv.key_indent);
            }
            if !secret {
                out.push(line.to_owned());
                continue;
            }
            let value = kv.value.trim();
            let block_scalar = matches!(value.chars().next(), Some('|' | '>'))
                && value.len() <= 3
                && kv.sep == ':';
            if block_scalar {
                // The block's lines are the value: one marker for all of them.
                let mut body = Vec::new();
                while i < lines.len() {
                    let l = lines[i];
                    let ind = l.len() - l.trim_start().len();
                    if !l.trim().is_empty() && ind <= indent {
                        break;
                    }
                    body.push(l.trim());
                    i += 1;
                }
                out.push(format!("{}\"{}\"", kv.head, marker(&body.join("\n"))));
            } else if value.is_empty() && kv.sep == ':' {
                out.push(line.to_owned());
                block = Some(indent);
            } else if is_placeholder(split_comment(value).0) {
                out.push(line.to_owned());
            } else {
                let (v, comment) = split_comment(value);
                let v = v.trim_matches(|c| c == '"' || c == '\'');
                let m = marker(v);
                let m = if kv.sep == ':' { format!("\"{m}\"") } else { m };
                out.push(format!("{}{m}{comment}", kv.head));
            }
        }
        out.join("\n")
    }
}

/// A `key: value` or `key=value` line, split.
struct KeyValue<'a> {
    /// Everything up to and including the separator and the space after it.
    head: &'a str,
    key: &'a str,
    value: &'a str,
    sep: char,
    /// Column of the key (after any `- `).
    key_indent: usize,
    /// Whether the key opens a list item (`- key: value`).
    item: bool,
}

fn split_key_value(line: &str) -> Option<KeyValue<'_>> {
    let mut start = line.len() - line.trim_start().len();
    let mut item = false;
    while line[start..].starts_with("- ") {
        item = true;
        start += 2;
        start += line[start..].len() - line[start..].trim_start().len();
    }
    let rest = &line[start..];
    let (key_end, sep) = if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = rest[1..].find(q)? + 2;
        (close, rest[close..].chars().next()?)
    } else {
        let end = rest.find([':', '='])?;
        (end, rest[end..].chars().next()?)
    };
    if !matches!(sep, ':' | '=') {
        return None;
    }
    let key = rest[..key_end]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.contains(char::is_whitespace) && sep == '=' {
        return None;
    }
    let after = start + key_end + 1;
    // YAML needs a space (or the end) after ':'; `http://x` is not a key.
    if sep == ':' && !(line.len() == after || line[after..].starts_with([' ', '\t'])) {
        return None;
    }
    let value_start = after + (line[after..].len() - line[after..].trim_start().len());
    Some(KeyValue {
        head: &line[..value_start],
        key,
        value: &line[value_start..],
        sep,
        key_indent: start,
        item,
    })
}

/// A YAML value and its trailing ` # comment`, if any (outside quotes).
fn split_comment(value: &str) -> (&str, &str) {
    if value.starts_with(['"', '\'']) {
        return (value, "");
    }
    match value.find(" #") {
        Some(i) => (value[..i].trim_end(), &value[i..]),
        None => (value, ""),
    }
}

/// A line inside a secret key's block: its value (after `key:` or `- `), or the whole
/// line's content.
fn redact_line_value(line: &str) -> String {
    if let Some(kv) = split_key_value(line) {
        let (v, comment) = split_comment(kv.value.trim());
        if is_placeholder(v) {
            return line.to_owned();
        }
        let m = marker(v.trim_matches(|c| c == '"' || c == '\''));
        let m = if kv.sep == ':' { format!("\"{m}\"") } else { m };
        return format!("{}{m}{comment}", kv.head);
    }
    let indent = line.len() - line.trim_start().len();
    let content = line.trim();
    let (lead, v) = match content.strip_prefix("- ") {
        Some(v) => ("- ", v.trim()),
        None => ("", content),
    };
    if is_placeholder(v) {
        return line.to_owned();
    }
    format!("{}{lead}\"{}\"", &line[..indent], marker(v))
}

/// A ConfigMap's data as one text: `key: value`, multi-line values as YAML blocks, keys
/// in order, each value redacted.
pub fn render_data(data: &BTreeMap<String, String>, redactor: &Redactor) -> String {
    let mut out = String::new();
    for (k, v) in data {
        let v = redactor.redact_entry(k, v);
        if v.contains('\n') {
            out.push_str(&format!("{k}: |\n"));
            for line in v.trim_end_matches('\n').split('\n') {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

/// A unified diff from `previous` to `current` (3 lines of context); empty when equal.
pub fn diff(previous: &str, current: &str) -> String {
    if previous == current {
        return String::new();
    }
    similar::TextDiff::from_lines(previous, current)
        .unified_diff()
        .context_radius(3)
        .header("previous", "current")
        .to_string()
}

#[cfg(test)]
mod tests;
