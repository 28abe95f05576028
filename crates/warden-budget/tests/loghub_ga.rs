//! Grouping accuracy on the seven Loghub sets, computed exactly as `score_templates.py` does.
//!
//! Why: the scorer also runs on held-out systems, so one general configuration must reach at
//! least Drain's published GA on every set here. Skips with a message when the data is absent
//! (fails under `CI=true`).

#![expect(
    clippy::unwrap_used,
    reason = "fixture helpers: malformed ground truth must fail the test loudly"
)]

mod common;

use std::path::Path;

use common::{PUBLISHED, data_dir, ga_of_lines, truth};

fn ga_of(dir: &Path, name: &str) -> f64 {
    let raw = std::fs::read_to_string(dir.join(format!("{name}_2k.log"))).unwrap();
    let truth = truth(&dir.join(format!("{name}_2k.log_structured.csv")));
    ga_of_lines(raw.lines(), &truth)
}

#[test]
fn loghub_grouping_accuracy_reaches_drain() {
    let Some(dir) = data_dir("loghub_grouping_accuracy_reaches_drain") else {
        return;
    };
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
    let Some(dir) = data_dir("loghub_budgets_fit_and_keep_templates") else {
        return;
    };
    for (name, _) in PUBLISHED {
        let raw = std::fs::read_to_string(dir.join(format!("{name}_2k.log"))).unwrap();
        for budget in [64 * 1024, 16 * 1024, 4 * 1024] {
            let cut = warden_budget::apply(warden_policy::DataType::Logs, &raw, budget);
            assert!(cut.text.len() <= budget);
            eprintln!("{name:<10} budget={budget:>6} {}", cut.report);
        }
    }
}
