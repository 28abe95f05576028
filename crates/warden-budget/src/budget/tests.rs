//! Table tests for every budget method: exact output on small inputs, and the invariants.

use warden_policy::DataType;

use super::*;

#[track_caller]
fn check(data_type: DataType, text: &str, budget: usize, expected: &str, report: &str) {
    let cut = apply(data_type, text, budget);
    assert_eq!(cut.text, expected);
    assert_eq!(cut.report.to_string(), report);
    assert!(
        cut.text.len() <= budget.max(text.len().min(budget)),
        "over budget"
    );
}

#[test]
fn within_budget_is_untouched() {
    check(
        DataType::Logs,
        "a\nb\n",
        100,
        "a\nb\n",
        "logs: 4 -> 4 bytes (budget 100), untouched",
    );
}

#[test]
fn logs_fold_into_templates_errors_first() {
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "2024-01-01 10:00:{i:02} INFO Received block blk_{i} of size {} from /10.0.0.{i}\n",
            i * 7
        ));
    }
    text.push_str("2024-01-01 10:01:00 ERROR Disk full on volume data\n");
    let cut = apply(DataType::Logs, &text, 600);
    assert_eq!(
        cut.text,
        "[warden: 21 log lines folded into 2 templates; errors, warnings and rare templates first]\n\
         [x1] Disk full on volume data\n    2024-01-01 10:01:00 ERROR Disk full on volume data\n\
         [x20] Received block <*> of size <*> from <*>\n\
         \x20   2024-01-01 10:00:00 INFO Received block blk_0 of size 0 from /10.0.0.0\n\
         \x20   2024-01-01 10:00:01 INFO Received block blk_1 of size 7 from /10.0.0.1\n"
    );
    assert_eq!(
        cut.report.to_string(),
        "logs: 1514 -> 371 bytes (budget 600), log templates: 21 lines in 2 templates, 2 templates and 3 exemplar lines kept"
    );
}

#[test]
fn logs_drop_templates_that_do_not_fit() {
    let text: String = (1..50)
        .map(|i| format!("{}\n", "word ".repeat(i)))
        .collect();
    let cut = apply(DataType::Logs, &text, 300);
    assert!(cut.text.len() <= 300);
    assert!(cut.text.ends_with("not shown]\n"), "{}", cut.text);
}

#[test]
fn otlp_traces_keep_error_then_slow_spans() {
    let span = |id: &str, start: u64, end: u64, err: bool| {
        format!(
            r#"{{"spanId":"{id}","name":"op","startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"{}}}"#,
            if err { r#","status":{"code":2}"# } else { "" }
        )
    };
    let spans = [
        span("a", 0, 10, false),
        span("b", 0, 500, false),
        span("c", 0, 5, true),
        span("d", 0, 20, false),
    ];
    let text = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let cut = apply(DataType::Traces, &text, 230);
    assert_eq!(
        cut.text,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":"500","name":"op","spanId":"b","startTimeUnixNano":"0"},{"endTimeUnixNano":"5","name":"op","spanId":"c","startTimeUnixNano":"0","status":{"code":2}}]}]}]}"#
    );
    assert_eq!(
        cut.report.method,
        Method::SpanSelection {
            spans: 4,
            spans_kept: 2,
            error_spans_kept: 1
        }
    );
}

#[test]
fn line_traces_keep_error_then_slow_lines() {
    let text = "span=a duration=10ms ok\nspan=b duration=2s ok\nspan=c duration=1ms status=ERROR\nspan=d duration=30ms ok\n"
        .repeat(2);
    let cut = apply(DataType::Traces, &text, 150);
    assert_eq!(
        cut.text,
        "[warden: 2 of 8 spans kept, errors then slowest first, in original order]\nspan=c duration=1ms status=ERROR\nspan=c duration=1ms status=ERROR\n"
    );
}

#[test]
fn metric_lines_downsample_with_min_and_max() {
    let mut text = String::from("# TYPE cpu gauge\n");
    for i in 0..16 {
        let v = if i == 5 {
            99
        } else if i == 11 {
            1
        } else {
            50
        };
        text.push_str(&format!("cpu{{host=\"a\"}} {v} {}\n", 1000 + i));
    }
    let cut = apply(DataType::Metrics, &text, 150);
    assert_eq!(
        cut.text,
        "# TYPE cpu gauge\ncpu{host=\"a\"} 50 1000\ncpu{host=\"a\"} 50 1004\ncpu{host=\"a\"} 99 1005\ncpu{host=\"a\"} 50 1008\ncpu{host=\"a\"} 1 1011\ncpu{host=\"a\"} 50 1012\n"
    );
    assert_eq!(
        cut.report.method,
        Method::Downsample {
            series: 1,
            points: 16,
            points_kept: 6,
            stride: 4
        }
    );
}

#[test]
fn otlp_metrics_downsample_per_series() {
    let points: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"asDouble":{},"timeUnixNano":"{i}"}}"#,
                if i == 7 { 1000 } else { i % 3 }
            )
        })
        .collect();
    let text = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{}]}}}}]}}]}}]}}"#,
        points.join(",")
    );
    let cut = apply(DataType::Metrics, &text, 400);
    assert!(cut.text.len() <= 400);
    assert!(
        cut.text.contains(r#""asDouble":1000"#),
        "max kept: {}",
        cut.text
    );
    let Method::Downsample {
        series: 1,
        points: 40,
        ..
    } = cut.report.method
    else {
        panic!("{:?}", cut.report.method)
    };
}

#[test]
fn other_types_cut_at_char_boundary_with_marker() {
    check(
        DataType::ConfigMetadata,
        "ééééééééééééééééééééééééééééééééééééééééééééé",
        40,
        "ééééé\n[warden: cut 80 of 90 bytes]\n",
        "config_metadata: 90 -> 40 bytes (budget 40), truncate: 80 bytes cut at a UTF-8 boundary",
    );
    check(
        DataType::SourceCode,
        "éé",
        3,
        "é",
        "source_code: 4 -> 2 bytes (budget 3), truncate: 2 bytes cut at a UTF-8 boundary",
    );
}

#[test]
fn request_budget_is_shared_fairly() {
    assert_eq!(crate::share(&[10, 100, 1000], 300), vec![10, 100, 190]);
    assert_eq!(crate::share(&[500, 500], 300), vec![150, 150]);
    assert_eq!(crate::share(&[], 300), Vec::<usize>::new());
    let limits = crate::Limits {
        request_bytes: 100,
        ..crate::Limits::default()
    };
    let big = "x".repeat(500);
    let parts = [
        crate::Part {
            data_type: DataType::Profiles,
            text: &big,
        },
        crate::Part {
            data_type: DataType::Instruction,
            text: "hi",
        },
    ];
    let r = crate::apply_request(&parts, &limits);
    assert!(r.bytes_after <= 100, "{}", r.bytes_after);
    assert_eq!(r.cuts[1].text, "hi");
}

#[test]
fn limits_from_policy_use_defaults_for_zero() {
    let defaults = crate::Limits::from_policy(&warden_policy::Budgets::default());
    assert_eq!(defaults, crate::Limits::default());
    assert_eq!(defaults.for_type(DataType::Logs), 64 * 1024);
    let tenant = warden_policy::Budgets {
        max_request_bytes: 1000,
        max_bytes_per_data_type: 300,
        ..warden_policy::Budgets::default()
    };
    let limits = crate::Limits::from_policy(&tenant);
    assert_eq!(
        (limits.request_bytes, limits.for_type(DataType::Metrics)),
        (1000, 300)
    );
}

#[test]
fn a_type_budget_covers_all_parts_of_that_type() {
    // Two 64 KiB log parts under a 64 KiB logs budget: 64 KiB of logs leave, not 128.
    let line = "worker 7 finished job in 12 ms\n";
    let big: String = line.repeat(64 * 1024 / line.len());
    let limits = crate::Limits::default();
    let parts = [
        crate::Part {
            data_type: DataType::Logs,
            text: &big,
        },
        crate::Part {
            data_type: DataType::Logs,
            text: &big,
        },
    ];
    let r = crate::apply_request(&parts, &limits);
    let logs: usize = r.cuts.iter().map(|c| c.text.len()).sum();
    assert!(logs <= 64 * 1024, "{logs} bytes of logs");
    // Shared fairly: each part got half of the type budget.
    for c in &r.cuts {
        assert_eq!(c.report.budget_bytes, 32 * 1024);
        assert!(matches!(
            c.report.method,
            crate::Method::LogTemplates { .. }
        ));
    }
}

#[test]
fn small_parts_of_a_type_keep_everything_and_large_ones_share_the_rest() {
    let small = "x".repeat(100);
    let large = "y".repeat(5000);
    let mut limits = crate::Limits::default();
    limits.per_type.insert(DataType::ConfigMetadata, 1100);
    let parts = [
        crate::Part {
            data_type: DataType::ConfigMetadata,
            text: &large,
        },
        crate::Part {
            data_type: DataType::ConfigMetadata,
            text: &small,
        },
        crate::Part {
            data_type: DataType::ConfigMetadata,
            text: &large,
        },
        // Another type has its own budget and is not squeezed by this one.
        crate::Part {
            data_type: DataType::ClusterInfo,
            text: &large,
        },
    ];
    let r = crate::apply_request(&parts, &limits);
    let budgets: Vec<usize> = r.cuts.iter().map(|c| c.report.budget_bytes).collect();
    assert_eq!(budgets, [500, 100, 500, 5000]);
    assert_eq!(r.cuts[1].text, small);
    let config: usize = r.cuts[..3].iter().map(|c| c.text.len()).sum();
    assert!(config <= 1100, "{config}");
    assert_eq!(r.cuts[3].text, large);
}

#[test]
fn type_budgets_then_the_request_budget() {
    let text = "z".repeat(3000);
    let mut limits = crate::Limits {
        request_bytes: 2000,
        ..crate::Limits::default()
    };
    limits.per_type.insert(DataType::Profiles, 1000);
    let parts = [
        crate::Part {
            data_type: DataType::Profiles,
            text: &text,
        },
        crate::Part {
            data_type: DataType::Profiles,
            text: &text,
        },
        crate::Part {
            data_type: DataType::ClusterInfo,
            text: &text,
        },
    ];
    let r = crate::apply_request(&parts, &limits);
    let budgets: Vec<usize> = r.cuts.iter().map(|c| c.report.budget_bytes).collect();
    // Profiles share 1000 (500 each); cluster info wants 3000 but the request has 1000 left.
    assert_eq!(budgets, [500, 500, 1000]);
    assert!(r.bytes_after <= 2000);
}

#[test]
fn per_type_budgets_from_policy_override_the_default() {
    let mut tenant = warden_policy::Budgets {
        max_bytes_per_data_type: 300,
        ..warden_policy::Budgets::default()
    };
    tenant.per_data_type.insert(DataType::Logs, 4096);
    // Zero keeps the default.
    tenant.per_data_type.insert(DataType::Traces, 0);
    let limits = crate::Limits::from_policy(&tenant);
    assert_eq!(limits.for_type(DataType::Logs), 4096);
    assert_eq!(limits.for_type(DataType::Traces), 300);
    assert_eq!(limits.for_type(DataType::Metrics), 300);
    let mut only_logs = warden_policy::Budgets::default();
    only_logs.per_data_type.insert(DataType::Logs, 1000);
    let limits = crate::Limits::from_policy(&only_logs);
    assert_eq!(limits.for_type(DataType::Logs), 1000);
    assert_eq!(limits.for_type(DataType::Traces), 64 * 1024);
}

#[test]
fn the_instruction_budget_is_set_on_its_own() {
    // A small per-type budget for telemetry does not shrink the instruction budget ...
    let mut tenant = warden_policy::Budgets {
        max_bytes_per_data_type: 300,
        ..warden_policy::Budgets::default()
    };
    let limits = crate::Limits::from_policy(&tenant);
    assert_eq!(limits.for_type(DataType::Instruction), 64 * 1024);
    // ... only the tenant's own instruction budget does.
    tenant.per_data_type.insert(DataType::Instruction, 2000);
    let limits = crate::Limits::from_policy(&tenant);
    assert_eq!(limits.for_type(DataType::Instruction), 2000);
    assert_eq!(limits.for_type(DataType::Logs), 300);
}
