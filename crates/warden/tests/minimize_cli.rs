//! `warden minimize` end to end: the real binary on small fixtures, with exact output.
//!
//! Why: the command is how operators see what would leave Warden; its output and its errors
//! are the contract. Also scores `--templates` with `score_templates.py` on a Loghub set
//! (skipped with a message when `../shared/data` or python3 is absent).

#![expect(
    clippy::unwrap_used,
    reason = "helpers: a binary that cannot start must fail the test loudly"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minimize");
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

fn warden(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit before reading stdin (file input, usage errors): ignore a closed pipe.
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    child.wait_with_output().unwrap()
}

fn fixture(name: &str) -> String {
    Path::new(FIXTURES).join(name).display().to_string()
}

#[track_caller]
fn check(out: &Output, code: i32, stdout: &str, stderr: &str) {
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "stdout");
    assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "stderr");
    assert_eq!(out.status.code(), Some(code), "exit code");
}

#[test]
fn logs_are_redacted_and_folded_into_templates() {
    let out = warden(
        &[
            "minimize",
            "--type",
            "logs",
            "--budget",
            "600",
            "--explain",
            &fixture("app.log"),
        ],
        b"",
    );
    check(
        &out,
        0,
        "[warden: 10 log lines folded into 3 templates; errors, warnings and rare templates first]\n\
         [x1] connection to <*> refused after <*> retries\n\
         \x20   2024-05-01 10:00:07 ERROR api.db: connection to db-7 refused after 3 retries\n\
         [x1] login failed for [EMAIL:<*>] from [<*>]\n\
         \x20   2024-05-01 10:00:05 WARN api.auth: login failed for [EMAIL:1] from [IPV4:2]\n\
         [x8] request served path=<*> status=<*> in <*>\n\
         \x20   2024-05-01 10:00:01 INFO api.server: request served path=/v1/items status=200 in 12 ms\n",
        "minimize logs:\n\
         \x20 input:      856 bytes\n\
         \x20 redacted:   847 bytes, 2 redactions (email 1, ipv4 1)\n\
         \x20 sent:       483 bytes (budget 600)\n\
         \x20 budget:     log templates: 10 lines in 3 templates, 3 templates and 3 exemplar lines kept\n",
    );
}

#[test]
fn within_budget_only_redacts() {
    let input = "user bob@example.org logged in\n";
    let out = warden(&["minimize", "--type", "logs"], input.as_bytes());
    check(&out, 0, "user [EMAIL:1] logged in\n", "");
}

#[test]
fn metrics_are_downsampled_per_series() {
    let out = warden(
        &[
            "minimize",
            "--type",
            "metrics",
            "--budget",
            "300",
            "--explain",
            &fixture("metrics.txt"),
        ],
        b"",
    );
    check(
        &out,
        0,
        "# TYPE http_requests_total counter\n\
         http_requests_total{code=\"200\"} 100 1714557600\n\
         http_requests_total{code=\"200\"} 120 1714557640\n\
         http_requests_total{code=\"200\"} 135 1714557670\n\
         http_requests_total{code=\"500\"} 1 1714557600\n\
         http_requests_total{code=\"500\"} 4 1714557620\n",
        "minimize metrics:\n\
         \x20 input:      591 bytes\n\
         \x20 redacted:   591 bytes, no redactions\n\
         \x20 sent:       266 bytes (budget 300)\n\
         \x20 budget:     downsample: 5 of 12 points kept in 2 series (every 4th plus min and max)\n",
    );
}

#[test]
fn config_from_stdin_is_cut_with_a_marker() {
    let input = std::fs::read(fixture("config.yaml")).unwrap();
    let out = warden(&["minimize", "--type", "config", "--budget", "60"], &input);
    check(
        &out,
        0,
        "replicas: 3\nimage: registry.ex\n[warden: cut 65 of 95 bytes]\n",
        "",
    );
}

#[test]
fn traces_keep_error_spans_first() {
    let input = "span=checkout duration=120ms status=OK\n\
                 span=db.query duration=2s status=OK\n\
                 span=payment duration=15ms status=ERROR\n\
                 span=render duration=8ms status=OK\n";
    let out = warden(
        &[
            "minimize",
            "--type",
            "traces",
            "--budget",
            "130",
            "--explain",
        ],
        input.as_bytes(),
    );
    check(
        &out,
        0,
        "[warden: 1 of 4 spans kept, errors then slowest first, in original order]\n\
         span=payment duration=15ms status=ERROR\n",
        "minimize traces:\n\
         \x20 input:      150 bytes\n\
         \x20 redacted:   150 bytes, no redactions\n\
         \x20 sent:       114 bytes (budget 130)\n\
         \x20 budget:     span selection: 1 of 4 spans kept (1 with errors), errors then slowest first\n",
    );
}

#[test]
fn templates_prints_one_id_per_line() {
    let out = warden(
        &[
            "minimize",
            "--type",
            "logs",
            "--templates",
            &fixture("app.log"),
        ],
        b"",
    );
    check(
        &out,
        0,
        "1\tT1\n2\tT1\n3\tT1\n4\tT1\n5\tT2\n6\tT1\n7\tT3\n8\tT1\n9\tT1\n10\tT1\n",
        "",
    );
}

#[test]
fn unknown_type_lists_the_valid_ones() {
    let out = warden(&["minimize", "--type", "pictures"], b"");
    check(
        &out,
        2,
        "",
        "error: invalid value 'pictures' for '--type <TYPE>'\n  \
         [possible values: logs, metrics, traces, profiles, config, cluster, code]\n\n\
         For more information, try '--help'.\n",
    );
}

#[test]
fn invalid_utf8_names_the_byte_offset() {
    let out = warden(&["minimize", "--type", "logs"], b"fine line\n\xffbad");
    check(
        &out,
        1,
        "",
        "error: stdin is not valid UTF-8: invalid byte at offset 10\n",
    );
}

#[test]
fn templates_read_invalid_utf8_lossily_with_a_warning() {
    let out = warden(
        &["minimize", "--type", "logs", "--templates"],
        b"job 1 done\n\xffjob 2 done\nboot\n",
    );
    check(
        &out,
        0,
        "1\tT1\n2\tT2\n3\tT3\n",
        "warning: stdin is not valid UTF-8 (first invalid byte at offset 11); invalid bytes read as U+FFFD\n",
    );
}

#[test]
fn templates_needs_logs() {
    let out = warden(&["minimize", "--type", "metrics", "--templates"], b"x 1\n");
    check(
        &out,
        1,
        "",
        "error: --templates needs --type logs (got --type metrics)\n",
    );
}

#[test]
fn missing_file_is_reported() {
    let out = warden(
        &["minimize", "--type", "logs", "/nonexistent/warden.log"],
        b"",
    );
    check(
        &out,
        1,
        "",
        "error: opening /nonexistent/warden.log: No such file or directory (os error 2)\n",
    );
}

#[test]
fn templates_score_on_loghub_hdfs() {
    let data = PathBuf::from(SHARED).join("data/loghub");
    let scorer = PathBuf::from(SHARED).join("tools/score_templates.py");
    if !data.is_dir() || !scorer.is_file() {
        eprintln!(
            "SKIP templates_score_on_loghub_hdfs: {} is absent",
            data.display()
        );
        return;
    }
    let log = data.join("HDFS_2k.log").display().to_string();
    let out = warden(&["minimize", "--type", "logs", "--templates", &log], b"");
    assert_eq!(out.status.code(), Some(0));
    let predictions = std::env::temp_dir().join(format!(
        "warden-minimize-templates-{}.tsv",
        std::process::id()
    ));
    std::fs::write(&predictions, &out.stdout).unwrap();
    let scored = Command::new("python3")
        .arg(&scorer)
        .arg(data.join("HDFS_2k.log_structured.csv"))
        .arg(&predictions)
        .output();
    let _ = std::fs::remove_file(&predictions);
    let Ok(scored) = scored else {
        eprintln!("SKIP templates_score_on_loghub_hdfs: python3 is not available");
        return;
    };
    let text = String::from_utf8_lossy(&scored.stdout);
    eprintln!("score_templates.py HDFS: {text}");
    let last = text.lines().last().unwrap_or_default();
    let ga: f64 = last
        .strip_prefix("ga=")
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(ga >= 0.998, "HDFS GA {ga} below Drain's published 0.998");
}
