//! Generalization of template mining across header shapes: each dev Loghub log's message
//! (the ground truth `Content`) is written back under another common header shape, and the
//! grouping accuracy on every rewritten set must stay within 0.02 of the original file's.
//!
//! Why: held-out systems use headers the dev sets do not show; a miner that learned the dev
//! headers instead of inferring headers from the lines fails here. The header values vary
//! line by line (timestamps advance, pids and hosts change, programs come from the ground
//! truth's component column or from a fixed set when the log has none).
//! Skips when `../shared/data` is absent, except under `CI=true`, where that fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{PUBLISHED, data_dir, ga_of_lines, structured, truth};

/// The header shapes a line is rewritten into.
const SHAPES: [&str; 11] = [
    "rfc3164",
    "rfc5424",
    "iso8601_zone",
    "iso8601_local",
    "bracketed_datetime",
    "bracketed_time_program_dash",
    "bracketed_program_dash",
    "program_pid",
    "windows_cbs",
    "android_logcat",
    "json_lines",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const PROGRAMS: [&str; 8] = [
    "chrome.exe",
    "cron",
    "nginx",
    "kubelet",
    "postgres",
    "java",
    "svchost.exe",
    "node",
];
const HOSTS: [&str; 4] = ["web-01", "web-02", "db-1.example.net", "10.2.0.17"];

/// A small deterministic generator, so every run rewrites the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Level words as a shape writes them.
fn level_of(row: &HashMap<String, String>, rng: &mut Rng) -> String {
    let known = ["INFO", "WARN", "ERROR", "DEBUG", "NOTICE", "FATAL", "TRACE"];
    match row.get("Level").map(|l| l.to_ascii_uppercase()) {
        Some(l) if known.contains(&l.as_str()) => l,
        _ => ["INFO", "INFO", "WARN", "ERROR", "DEBUG"][rng.below(5) as usize].to_owned(),
    }
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Rewrites one message under `shape`; `i` is the line number, which advances the clock.
fn rewrite(shape: &str, row: &HashMap<String, String>, i: usize, rng: &mut Rng) -> String {
    let msg = &row["Content"];
    let secs = 1_700_000_000u64 + (i as u64) * 7 + rng.below(5);
    let (day, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let ms = rng.below(1000);
    let month = (day / 28 % 12) as usize;
    let dom = day % 28 + 1;
    let date = format!("2024-{:02}-{dom:02}", month + 1);
    let time = format!("{h:02}:{m:02}:{s:02}");
    let pid = 100 + rng.below(30_000);
    let tid = pid + rng.below(50);
    let host = HOSTS[rng.below(HOSTS.len() as u64) as usize];
    let program = row
        .get("Component")
        .filter(|c| !c.is_empty() && !c.contains(char::is_whitespace))
        .cloned()
        .unwrap_or_else(|| PROGRAMS[rng.below(PROGRAMS.len() as u64) as usize].to_owned());
    let level = level_of(row, rng);
    match shape {
        "rfc3164" => format!(
            "<{}>{} {dom:>2} {time} {host} {program}[{pid}]: {msg}",
            8 + rng.below(160),
            MONTHS[month]
        ),
        "rfc5424" => format!(
            "<{}>1 {date}T{time}.{ms:03}Z {host} {program} {pid} - - {msg}",
            8 + rng.below(160)
        ),
        "iso8601_zone" => format!("{date}T{time}.{ms:03}+01:00 {level} {msg}"),
        "iso8601_local" => format!("{date}T{time}.{ms:03} {level} {msg}"),
        "bracketed_datetime" => format!("[{date} {time}] {msg}"),
        "bracketed_time_program_dash" => {
            format!("[{:02}.{dom:02} {time}] {program} - {msg}", month + 1)
        }
        "bracketed_program_dash" => format!("[{program}] - {msg}"),
        "program_pid" => format!("{program}[{pid}]: {msg}"),
        "windows_cbs" => {
            let lvl = match level.as_str() {
                "INFO" | "NOTICE" | "DEBUG" | "TRACE" => "Info",
                "WARN" => "Warning",
                _ => "Error",
            };
            let comp = ["CBS", "CSI", "DPX", "CBS"][rng.below(4) as usize];
            format!("{date} {time}, {lvl:<22}{comp:<7}{msg}")
        }
        "android_logcat" => format!(
            "{:02}-{dom:02} {time}.{ms:03} {pid:>5} {tid:>5} {} {program}: {msg}",
            month + 1,
            &level[..1]
        ),
        "json_lines" => format!(
            "{{\"ts\":\"{date}T{time}.{ms:03}Z\",\"level\":\"{level}\",\"logger\":{},\"msg\":{}}}",
            json_escape(&program),
            json_escape(msg)
        ),
        other => panic!("unknown shape {other}"),
    }
}

/// Rewritten sets still more than 0.02 below the original, each with its cause. The test fails
/// when one of them recovers too, so this list only shrinks. Empty: every set holds.
const KNOWN_GAPS: [(&str, &str); 0] = [];

#[test]
fn grouping_holds_under_other_header_shapes() {
    let Some(dir) = data_dir("grouping_holds_under_other_header_shapes") else {
        return;
    };
    let mut failures = Vec::new();
    for (name, _) in PUBLISHED {
        let csv = dir.join(format!("{name}_2k.log_structured.csv"));
        let truth = truth(&csv);
        let rows = structured(&csv);
        let raw = std::fs::read_to_string(dir.join(format!("{name}_2k.log"))).unwrap();
        let original = ga_of_lines(raw.lines(), &truth);
        let mut line = format!("{name:<10} original={original:.4}");
        for shape in SHAPES {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let lines: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| rewrite(shape, r, i, &mut rng))
                .collect();
            let ga = ga_of_lines(lines.iter().map(String::as_str), &truth);
            if std::env::var("WARDEN_SHAPES_DEBUG").as_deref() == Ok(&format!("{name}:{shape}")) {
                let mined = warden_budget::mine(lines.iter().map(String::as_str));
                let mut by_t: HashMap<u32, Vec<usize>> = HashMap::new();
                let mut by_e: HashMap<&str, Vec<usize>> = HashMap::new();
                for (i, t) in mined.line_templates.iter().enumerate() {
                    by_t.entry(t.0).or_default().push(i);
                    by_e.entry(truth[&(i + 1)].as_str()).or_default().push(i);
                }
                let mut shown = 0;
                for (i, t) in mined.line_templates.iter().enumerate() {
                    if by_t[&t.0] != by_e[truth[&(i + 1)].as_str()] && shown < 12 {
                        shown += 1;
                        let tt = &mined.templates[(t.0 - 1) as usize];
                        eprintln!("{} {}\n   -> {}", truth[&(i + 1)], lines[i], tt.text());
                    }
                }
            }
            line.push_str(&format!(" {shape}={ga:.4}"));
            let known = KNOWN_GAPS.contains(&(name, shape));
            if ga < original - 0.02 && !known {
                failures.push(format!("{name} {shape}: {ga:.4} < {original:.4} - 0.02"));
            }
            if ga >= original - 0.02 && known {
                failures.push(format!(
                    "{name} {shape} recovered ({ga:.4}): drop it from KNOWN_GAPS"
                ));
            }
        }
        eprintln!("{line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
