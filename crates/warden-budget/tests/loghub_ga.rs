//! Grouping accuracy on the seven Loghub sets, computed exactly as `score_templates.py` does.
//!
//! Why: the scorer also runs on held-out systems, so one general configuration must reach at
//! least Drain's published GA on every set here. Skips with a message when the data is absent.

#![expect(
    clippy::unwrap_used,
    reason = "fixture helpers: malformed ground truth must fail the test loudly"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use warden_budget::mine;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/loghub");

/// Drain's published GA (Loghub benchmark); the floor each set must reach.
const PUBLISHED: [(&str, f64); 7] = [
    ("HDFS", 0.998),
    ("Apache", 1.0),
    ("OpenSSH", 0.788),
    ("Linux", 0.690),
    ("Zookeeper", 0.967),
    ("Spark", 0.920),
    ("OpenStack", 0.733),
];

/// Splits one CSV record (RFC 4180 quoting) into fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Ground truth `LineId -> EventId` from a `_structured.csv`.
fn truth(path: &Path) -> HashMap<usize, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap());
    let id_col = header.iter().position(|h| h == "LineId").unwrap();
    let ev_col = header.iter().position(|h| h == "EventId").unwrap();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f = csv_fields(l);
            (f[id_col].parse().unwrap(), f[ev_col].clone())
        })
        .collect()
}

/// GA as `score_templates.py` computes it.
pub fn grouping_accuracy(truth: &HashMap<usize, String>, pred: &HashMap<usize, String>) -> f64 {
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<&str, Vec<usize>> = HashMap::new();
    for (no, eid) in truth {
        by_truth.entry(eid).or_default().push(*no);
        by_pred.entry(pred[no].as_str()).or_default().push(*no);
    }
    for v in by_truth.values_mut().chain(by_pred.values_mut()) {
        v.sort_unstable();
    }
    let correct = truth
        .iter()
        .filter(|(no, eid)| by_pred[pred[*no].as_str()] == by_truth[eid.as_str()])
        .count();
    correct as f64 / truth.len() as f64
}

fn ga_of(dir: &Path, name: &str) -> f64 {
    let raw = std::fs::read_to_string(dir.join(format!("{name}_2k.log"))).unwrap();
    let truth = truth(&dir.join(format!("{name}_2k.log_structured.csv")));
    let ids = mine(raw.lines()).line_templates;
    let pred: HashMap<usize, String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (i + 1, id.to_string()))
        .collect();
    grouping_accuracy(&truth, &pred)
}

#[test]
fn loghub_grouping_accuracy_reaches_drain() {
    let dir = PathBuf::from(DATA);
    if !dir.is_dir() {
        eprintln!(
            "SKIP loghub_grouping_accuracy_reaches_drain: {} is absent",
            dir.display()
        );
        return;
    }
    let mut failures = Vec::new();
    for (name, floor) in PUBLISHED {
        let ga = ga_of(&dir, name);
        eprintln!("{name:<10} ga={ga:.4} drain={floor:.3}");
        if ga < floor {
            failures.push(format!("{name}: {ga:.4} < {floor}"));
        }
    }
    assert!(failures.is_empty(), "below Drain: {failures:?}");
}

/// Bytes before and after the log budget on each real log, printed for `docs/BENCHMARKS.md`.
#[test]
fn loghub_budgets_fit_and_keep_templates() {
    let dir = PathBuf::from(DATA);
    if !dir.is_dir() {
        eprintln!(
            "SKIP loghub_budgets_fit_and_keep_templates: {} is absent",
            dir.display()
        );
        return;
    }
    for (name, _) in PUBLISHED {
        let raw = std::fs::read_to_string(dir.join(format!("{name}_2k.log"))).unwrap();
        for budget in [64 * 1024, 16 * 1024, 4 * 1024] {
            let cut = warden_budget::apply(warden_policy::DataType::Logs, &raw, budget);
            assert!(cut.text.len() <= budget);
            eprintln!("{name:<10} budget={budget:>6} {}", cut.report);
        }
    }
}
