//! Runs the real `warden redact` binary: exact output on small fixtures, the bad-input cases,
//! ordering across threads and chunks, and the labelled corpus through `--jsonl` and the shared
//! scorer (skipped with a message when `../shared` is absent).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_warden");
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

fn redact(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("redact")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// A file under this test binary's scratch directory.
fn fixture(name: &str, content: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redact_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn text_mode_exact_output_with_consistent_placeholders() {
    let input = "user ann@example.com key AKIAIOSFODNN7EXAMPLE\n\
                 password=Hunter2Hunter2 from 203.0.113.9\n\
                 ann@example.com again, clean line\n";
    let out = redact(&[], input.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "user [EMAIL:1] key [SECRET:aws_access_key_id:2]\n\
         password=[SECRET:password:3] from [IPV4:4]\n\
         [EMAIL:1] again, clean line\n"
    );
    assert_eq!(text(&out.stderr), "", "no summary unless asked");
}

#[test]
fn files_in_order_share_placeholders_and_summary_has_counts_only() {
    let a = fixture("a.log", b"login ann@example.com\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----\n");
    let b = fixture(
        "b.log",
        b"again ann@example.com with ghp_1kdkxm4VCXRNruEAH30bG5xRPbi1XmHPKd3X",
    );
    let out = redact(
        &["--summary", a.to_str().unwrap(), b.to_str().unwrap()],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "login [EMAIL:1]\n[SECRET:private_key:2]\nagain [EMAIL:1] with [SECRET:github_token:3]"
    );
    assert_eq!(
        text(&out.stderr),
        "redactions: 4\n  email: 2\n  github_token: 1\n  private_key: 1\n"
    );
}

#[test]
fn jsonl_mode_writes_spans_in_input_order() {
    let input = concat!(
        r#"{"id":7,"text":"mail ann@example.com","labels":[]}"#,
        "\n",
        r#"{"id":"b","text":"nothing here"}"#,
        "\n\n",
        r#"{"id":3,"text":"é key=AKIAIOSFODNN7EXAMPLE"}"#,
        "\n"
    );
    let out = redact(&["--jsonl"], input.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        concat!(
            r#"{"id":7,"spans":[{"start":5,"end":20,"kind":"email"}]}"#,
            "\n",
            r#"{"id":"b","spans":[]}"#,
            "\n",
            r#"{"id":3,"spans":[{"start":7,"end":27,"kind":"aws_access_key_id"}]}"#,
            "\n"
        )
    );
}

#[test]
fn jsonl_bad_line_names_the_line_and_fails() {
    let input = "{\"id\":1,\"text\":\"ok\"}\n{\"id\":2,\"text\":\"secret hunter2\"\n";
    let out = redact(&["--jsonl"], input.as_bytes());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("<stdin>: line 2:"), "{err}");
    assert!(!err.contains("hunter2"), "errors never echo input: {err}");

    let out = redact(&["--jsonl"], b"{\"id\":1}\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("line 1: not a {\"id\",\"text\"} JSON object: missing field `text`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn invalid_utf8_reports_byte_offset() {
    let out = redact(&[], b"fine line\nbad \xff byte\n");
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "error: <stdin>: invalid UTF-8 at byte offset 14 (line 2)\n"
    );
}

#[test]
fn tenant_rules_add_patterns_and_errors_name_rule_and_line() {
    let rules = fixture(
        "tenant.toml",
        b"[[pattern]]\nid = \"acme-badge\"\nkind = \"badge\"\nclass = \"personal\"\nkeywords = [\"EMP-\"]\nregex = '''EMP-[0-9]{6}'''\n",
    );
    let out = redact(
        &["--rules", rules.to_str().unwrap()],
        b"badge EMP-123456 ok\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "badge [BADGE:1] ok\n");

    let bad = fixture(
        "bad.toml",
        b"# tenant rules\n[[pattern]]\nid = \"broken\"\nkind = \"x\"\nregex = '''(unclosed'''\n",
    );
    let out = redact(&["--rules", bad.to_str().unwrap()], b"x\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {}:5: rule \"broken\": invalid regex",
            bad.display()
        )),
        "{err}"
    );
}

#[test]
fn many_chunks_on_many_threads_keep_order() {
    // About 3 MB: several chunks, so ordering across workers is exercised.
    let mut input = String::new();
    for i in 0..60_000 {
        input.push_str(&format!("line {i} user{}@example.com status=ok\n", i % 7));
    }
    let one = redact(&["--threads", "1"], input.as_bytes());
    let four = redact(&["--threads", "4"], input.as_bytes());
    assert!(one.status.success() && four.status.success());
    assert_eq!(one.stdout, four.stdout);
    let out = text(&one.stdout);
    assert_eq!(out.lines().count(), 60_000);
    assert!(
        out.starts_with("line 0 [EMAIL:1] status=ok\nline 1 [EMAIL:2] status=ok\n"),
        "{}",
        &out[..80]
    );
    assert!(out.ends_with("line 59999 [EMAIL:3] status=ok\n"));
}

#[test]
fn labelled_corpus_scores_with_the_shared_scorer() {
    let corpus = format!("{SHARED}/data/secrets/labelled-dev.jsonl");
    let scorer = format!("{SHARED}/tools/score_redaction.py");
    if !Path::new(&corpus).exists() || !Path::new(&scorer).exists() {
        println!("SKIPPED: {corpus} or {scorer} is absent");
        return;
    }
    let input = std::fs::read(&corpus).unwrap();
    let out = redact(&["--jsonl"], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let preds = fixture("predictions.jsonl", &out.stdout);
    let scored = match Command::new("python3")
        .arg(&scorer)
        .arg(&corpus)
        .arg(&preds)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            println!("SKIPPED: python3 is not available ({e})");
            return;
        }
    };
    assert!(scored.status.success(), "{}", text(&scored.stderr));
    let last = text(&scored.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    println!("{last}");
    let field = |name: &str| -> f64 {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("recall=") >= 0.98, "{last}");
    assert!(field("precision=") >= 0.95, "{last}");
}

#[test]
fn a_line_longer_than_a_chunk_keeps_its_utf8_characters_whole() {
    // 9 MB in one line: the reader caps chunks at 8 MiB, and the cap falls inside a `é`.
    let mut input = String::from("x");
    input.push_str(&"é".repeat(4_500_000));
    input.push_str(" ann@example.com\n");
    let out = redact(&[], input.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = input.replace("ann@example.com", "[EMAIL:1]");
    assert!(
        out.stdout == expected.as_bytes(),
        "output differs from the input with one placeholder"
    );
}
