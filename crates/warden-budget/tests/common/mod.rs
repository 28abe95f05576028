//! Loghub fixtures shared by the grouping tests: the data folder, the ground truth, and GA
//! computed exactly as `score_templates.py` does.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/loghub");

/// The seven dev sets and Drain's published GA on each (Loghub benchmark).
pub const PUBLISHED: [(&str, f64); 7] = [
    ("HDFS", 0.998),
    ("Apache", 1.0),
    ("OpenSSH", 0.788),
    ("Linux", 0.690),
    ("Zookeeper", 0.967),
    ("Spark", 0.920),
    ("OpenStack", 0.733),
];

/// The data folder, or `None` (after saying why) when it is absent outside CI; under
/// `CI=true` a missing folder fails the test.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(DATA);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {} is absent under CI=true",
        dir.display()
    );
    eprintln!("SKIP {test}: {} is absent", dir.display());
    None
}

/// Splits one CSV record (RFC 4180 quoting) into fields.
pub fn csv_fields(line: &str) -> Vec<String> {
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

/// The rows of a `_structured.csv` as column name -> value maps, in line order.
pub fn structured(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap());
    lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().cloned().zip(csv_fields(l)).collect())
        .collect()
}

/// Ground truth `LineId -> EventId` from a `_structured.csv`.
pub fn truth(path: &Path) -> HashMap<usize, String> {
    structured(path)
        .into_iter()
        .map(|r| (r["LineId"].parse().unwrap(), r["EventId"].clone()))
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

/// GA of the default miner on `lines` (line `i` is LineId `i + 1`).
pub fn ga_of_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    truth: &HashMap<usize, String>,
) -> f64 {
    let ids = warden_budget::mine(lines).line_templates;
    let pred: HashMap<usize, String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (i + 1, id.to_string()))
        .collect();
    grouping_accuracy(truth, &pred)
}
