//! The official OTLP/JSON examples through the trace and metric budgets.
//!
//! Why: the gateway receives OTLP/JSON; a budget must keep it valid JSON of the same shape.
//! Reads `../shared/data/otlp` and skips with a message when it is absent.

use std::path::PathBuf;

use serde_json::Value;
use warden_budget::{Method, apply};
use warden_policy::DataType;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/otlp");

fn example(name: &str) -> Option<String> {
    let path = PathBuf::from(DATA).join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(_) => {
            eprintln!("SKIP: {} is absent", path.display());
            None
        }
    }
}

#[test]
fn otlp_trace_example_stays_valid_json() {
    let Some(text) = example("trace.json") else {
        return;
    };
    // Compact JSON of the one span is smaller than the pretty-printed file.
    let cut = apply(DataType::Traces, &text, text.len() - 1);
    let doc: Value = serde_json::from_str(&cut.text).unwrap();
    assert_eq!(
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cut.report.method,
        Method::SpanSelection {
            spans: 1,
            spans_kept: 1,
            error_spans_kept: 0
        }
    );
}

#[test]
fn otlp_metrics_example_stays_valid_json() {
    let Some(text) = example("metrics.json") else {
        return;
    };
    let cut = apply(DataType::Metrics, &text, text.len() - 1);
    let doc: Value = serde_json::from_str(&cut.text).unwrap();
    assert!(doc["resourceMetrics"].is_array());
    let Method::Downsample {
        points,
        points_kept,
        ..
    } = cut.report.method
    else {
        panic!("{:?}", cut.report.method)
    };
    assert_eq!(
        points, points_kept,
        "one point per series: min and max keep it"
    );
}

#[test]
fn otlp_logs_example_folds_records_into_templates() {
    let Some(text) = example("logs.json") else {
        return;
    };
    let cut = apply(DataType::Logs, &text, 300);
    assert_eq!(
        cut.text,
        "[warden: 1 log lines folded into 1 templates; errors, warnings and rare templates first]\n\
         [x1] Information Example log record\n    Information Example log record\n"
    );
}
