//! Generalization of redaction across encodings: every labelled document of the dev corpus is
//! re-encoded as compact JSON (the document as a string field), YAML (a block scalar),
//! an environment line, and every secret value base64-wrapped as registry credentials
//! (`"auth": base64(user:value)`) and as an HTTP Basic header; recall must stay >= 0.99 on each.
//!
//! Why: the held-out corpus shows the same secrets in encodings the dev corpus does not, so
//! detection must not depend on the encoding a value happens to be written in.
//! Skips when `../shared/data` is absent, except under `CI=true`, where that fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use warden_minimize::Engine;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

/// Kinds that are personal data, not credentials: they are not base64-wrapped.
const PII: [&str; 7] = [
    "email",
    "ip",
    "ipv4",
    "ipv6",
    "hostname",
    "phone",
    "credit_card",
];

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
    labels: Vec<Label>,
}

#[derive(serde::Deserialize, Clone)]
struct Label {
    start: usize,
    end: usize,
    kind: String,
}

/// A re-encoded text and its labels' new byte ranges.
struct Encoded {
    text: String,
    labels: Vec<(usize, usize, String)>,
}

/// Builds `prefix + f(text) + suffix` char by char, remembering where each input byte went.
fn transform(doc: &Doc, prefix: &str, suffix: &str, f: impl Fn(char, &mut String)) -> Encoded {
    let mut out = String::from(prefix);
    let mut map = vec![0usize; doc.text.len() + 1];
    for (i, c) in doc.text.char_indices() {
        for k in 0..c.len_utf8() {
            map[i + k] = out.len();
        }
        f(c, &mut out);
    }
    map[doc.text.len()] = out.len();
    out.push_str(suffix);
    let labels = doc
        .labels
        .iter()
        .map(|l| (map[l.start], map[l.end], l.kind.clone()))
        .collect();
    Encoded { text: out, labels }
}

fn compact_json(doc: &Doc) -> Encoded {
    transform(
        doc,
        r#"{"level":"info","text":""#,
        r#""}"#,
        |c, out| match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        },
    )
}

fn yaml_block(doc: &Doc) -> Encoded {
    transform(doc, "kind: Document\ntext: |\n  ", "\n", |c, out| {
        out.push(c);
        if c == '\n' {
            out.push_str("  ");
        }
    })
}

/// One `.env` line: the document as a double-quoted value, newlines as `\n` escapes.
fn env_lines(doc: &Doc) -> Encoded {
    transform(
        doc,
        "LOG_LEVEL=info\nMESSAGE=\"",
        "\"\n",
        |c, out| match c {
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        },
    )
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every secret of `doc` as base64(`deploy:value`), as docker `auth` and as a Basic header.
fn base64_wrapped(doc: &Doc) -> Vec<Encoded> {
    let mut out = Vec::new();
    for l in doc
        .labels
        .iter()
        .filter(|l| !PII.contains(&l.kind.as_str()))
    {
        let wrapped = base64(format!("deploy:{}", &doc.text[l.start..l.end]).as_bytes());
        for (before, after) in [
            (r#"{"auths":{"registry.example.com":{"auth":""#, r#""}}}"#),
            ("GET /v1/items HTTP/1.1\nAuthorization: Basic ", "\n"),
        ] {
            let text = format!("{before}{wrapped}{after}");
            let labels = vec![(before.len(), before.len() + wrapped.len(), l.kind.clone())];
            out.push(Encoded { text, labels });
        }
    }
    out
}

/// Encodings and kinds still below the floor, with their cause; left out of the floor and
/// reported. Empty: a Secret manifest inside a quoted string is read unescaped.
const KNOWN_GAPS: [(&str, &str); 0] = [];

/// (caught, total) over `docs`, leaving out the kinds that are known gaps of `encoding`.
fn recall(engine: &Engine, encoding: &str, docs: &[Encoded]) -> (u64, u64) {
    let (mut caught, mut total) = (0, 0);
    for d in docs {
        let spans = engine.find_spans(&d.text);
        for (s, e, kind) in &d.labels {
            if KNOWN_GAPS.contains(&(encoding, kind.as_str())) {
                continue;
            }
            total += 1;
            if (*s..*e).all(|b| spans.iter().any(|sp| sp.start <= b && b < sp.end)) {
                caught += 1;
            } else if std::env::var_os("WARDEN_CORPUS_VERBOSE").is_some() {
                let from = s.saturating_sub(40);
                println!("MISS {:?}", &d.text.get(from..*e).unwrap_or(""));
            }
        }
    }
    (caught, total)
}

#[test]
fn recall_holds_when_documents_are_re_encoded() {
    let path = format!("{DATA}/secrets/labelled-dev.jsonl");
    let Ok(corpus) = std::fs::read_to_string(&path) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{path} is absent under CI=true"
        );
        println!("SKIPPED: {path} is absent");
        return;
    };
    let docs: Vec<Doc> = corpus
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|d: &Doc| !d.labels.is_empty())
        .collect();
    let engine = Engine::builtin().unwrap();
    let encodings: [(&str, Vec<Encoded>); 4] = [
        ("compact_json", docs.iter().map(compact_json).collect()),
        ("yaml", docs.iter().map(yaml_block).collect()),
        ("env", docs.iter().map(env_lines).collect()),
        (
            "base64_wrapped",
            docs.iter().flat_map(base64_wrapped).collect(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, encoded) in &encodings {
        let (caught, total) = recall(&engine, name, encoded);
        let r = caught as f64 / total as f64;
        println!("{name:<15} recall={r:.4} ({caught}/{total})");
        if r < 0.99 {
            failures.push(format!("{name}: recall {r:.4} < 0.99"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
