use super::*;

fn row(time_ms: i64, service: &str, severity: i32, body: &str) -> LogRow {
    LogRow {
        time_ms,
        service: service.into(),
        severity_number: severity,
        body: body.into(),
        ..Default::default()
    }
}

fn lines(
    start: i64,
    n: usize,
    service: &str,
    severity: i32,
    f: impl Fn(usize) -> String,
) -> Vec<LogRow> {
    (0..n)
        .map(|i| row(start + i as i64, service, severity, &f(i)))
        .collect()
}

#[test]
fn new_and_grown_patterns_come_first_and_counts_add_up() {
    // Baseline: steady request lines and a few cache misses.
    let mut baseline = lines(0, 40, "api", 9, |i| {
        format!("request {i} served in {} ms", 10 + i)
    });
    baseline.extend(lines(100, 4, "api", 13, |i| {
        format!("cache miss for key user-{i}")
    }));
    baseline.extend(lines(200, 6, "api", 9, |i| format!("gc pause of {i} ms")));
    // Window: the same request rate, many more cache misses, a new error, no gc pauses.
    let mut window = lines(1000, 40, "api", 9, |i| {
        format!("request {i} served in {} ms", 20 + i)
    });
    window.extend(lines(1100, 20, "api", 13, |i| {
        format!("cache miss for key user-{i}")
    }));
    window.extend(lines(1200, 5, "payments", 17, |i| {
        format!("payment provider timeout after {} s order {i}", 30 + i)
    }));

    let p = patterns(&window, 1000, &baseline, 1000, 10);
    assert_eq!(p.records, 65);
    assert_eq!(p.baseline_records, 50);
    assert!(!p.truncated);
    let summary: Vec<(Change, &str, u64, u64)> = p
        .patterns
        .iter()
        .map(|p| (p.change, p.template.as_str(), p.count, p.baseline_count))
        .collect();
    assert_eq!(summary[0].0, Change::New, "{summary:?}");
    assert!(
        summary[0].1.starts_with("payment provider timeout"),
        "{summary:?}"
    );
    assert_eq!((summary[0].2, summary[0].3), (5, 0));
    assert_eq!(summary[1].0, Change::Grown, "{summary:?}");
    assert!(summary[1].1.starts_with("cache miss"), "{summary:?}");
    assert_eq!((summary[1].2, summary[1].3), (20, 4));
    assert_eq!(summary[2].0, Change::Steady, "{summary:?}");
    assert_eq!((summary[2].2, summary[2].3), (40, 40));
    assert_eq!(summary.last().unwrap().0, Change::Gone, "{summary:?}");
    assert_eq!(p.patterns.iter().map(|p| p.count).sum::<u64>(), 65);
    assert_eq!(p.patterns.iter().map(|p| p.baseline_count).sum::<u64>(), 50);

    let new = &p.patterns[0];
    assert!(new.template.contains("<*>"), "{}", new.template);
    assert_eq!(new.max_severity, 17);
    assert_eq!(new.services.iter().collect::<Vec<_>>(), ["payments"]);
    assert_eq!((new.first_seen_ms, new.last_seen_ms), (1200, 1204));
    assert!(
        new.example
            .starts_with("payment provider timeout after 30 s")
    );

    // Window times and examples, not the baseline's, for patterns seen in both.
    let grown = &p.patterns[1];
    assert_eq!((grown.first_seen_ms, grown.last_seen_ms), (1100, 1119));
    // A gone pattern keeps the baseline's.
    let gone = p.patterns.last().unwrap();
    assert_eq!((gone.first_seen_ms, gone.last_seen_ms), (200, 205));
    assert_eq!(gone.example, "gc pause of 0 ms");
}

#[test]
fn a_longer_baseline_is_scaled_to_the_window() {
    // 40 lines in a baseline four times as long as the window: 10 expected, 10 seen.
    let baseline = lines(0, 40, "api", 9, |i| format!("request {i} served in {i} ms"));
    let window = lines(5000, 10, "api", 9, |i| {
        format!("request {i} served in {i} ms")
    });
    let p = patterns(&window, 1000, &baseline, 4000, 10);
    assert_eq!(p.patterns.len(), 1);
    assert_eq!(p.patterns[0].change, Change::Steady);
    // The same counts against a baseline as long as the window: shrunk.
    let p = patterns(&window, 1000, &baseline, 1000, 10);
    assert_eq!(p.patterns[0].change, Change::Shrunk);
}

#[test]
fn the_limit_cuts_and_says_so() {
    let window: Vec<LogRow> = ["disk full on /var", "user logged out", "cache warmed up"]
        .iter()
        .enumerate()
        .map(|(i, b)| row(i as i64, "svc", 9, b))
        .collect();
    let p = patterns(&window, 10, &[], 10, 2);
    assert_eq!(p.patterns.len(), 2);
    assert!(p.truncated);
    assert!(p.patterns.iter().all(|p| p.change == Change::New));
}

#[test]
fn nothing_in_gives_nothing_out() {
    let p = patterns(&[], 1000, &[], 1000, 10);
    assert_eq!(p, Patterns::default());
}
