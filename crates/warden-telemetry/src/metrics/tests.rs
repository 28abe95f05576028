use super::*;

fn labels(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(time_ms, value)| Sample {
            time_ms,
            value,
            histogram: None,
        })
        .collect()
}

fn query(kind: MetricKind, aggregation: Aggregation, since_ms: i64, until_ms: i64) -> Query {
    Query {
        kind,
        aggregation,
        since_ms,
        until_ms,
        max_points: 60,
        max_series: 20,
    }
}

#[track_caller]
fn check_match(label: &str, op: MatchOp, value: &str, on: &[(&str, &str)], expected: bool) {
    let m = Matcher::new(label, op, value).unwrap();
    assert_eq!(
        m.matches(&labels(on)),
        expected,
        "{label} {op:?} {value:?} on {on:?}"
    );
}

#[test]
fn matchers_work_as_in_promql() {
    let on = [("service.name", "checkout"), ("code", "500")];
    check_match("service.name", MatchOp::Eq, "checkout", &on, true);
    check_match("service.name", MatchOp::Eq, "check", &on, false);
    check_match("service.name", MatchOp::Ne, "checkout", &on, false);
    check_match("service.name", MatchOp::Ne, "cart", &on, true);
    // Regexes are anchored at both ends.
    check_match("code", MatchOp::Re, "5..", &on, true);
    check_match("code", MatchOp::Re, "5", &on, false);
    check_match("code", MatchOp::Re, "4..|5..", &on, true);
    check_match("code", MatchOp::Nre, "5..", &on, false);
    check_match("code", MatchOp::Nre, "2..", &on, true);
    // A missing label is the empty string.
    check_match("region", MatchOp::Eq, "", &on, true);
    check_match("region", MatchOp::Ne, "", &on, false);
    check_match("region", MatchOp::Re, ".*", &on, true);
    check_match("region", MatchOp::Re, ".+", &on, false);
}

#[test]
fn bad_matchers_are_refused_with_the_reason() {
    let err = Matcher::new("code", MatchOp::Re, "5(").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the regular expression does not compile"),
        "{err}"
    );
    assert!(matches!(
        Matcher::new("", MatchOp::Eq, "x"),
        Err(MatcherError::EmptyLabel)
    ));
    // Too big to compile within the size limit.
    assert!(Matcher::new("x", MatchOp::Re, "(a{1000}){1000}").is_err());
}

#[test]
fn steps_are_readable_aligned_and_bounded() {
    // One hour in at most 60 points: one minute.
    assert_eq!(step_for(0, 3_600_000, 60), 60_000);
    // Not aligned to the minute: 61 minutes touched, so the next readable step.
    assert_eq!(step_for(30_000, 3_630_000, 60), 120_000);
    // Tiny windows: one second at least.
    assert_eq!(step_for(0, 10, 60), 1_000);
    // A month in 10 points: whole days.
    let month = 31 * 86_400_000;
    let step = step_for(0, month, 10);
    assert_eq!(step % 86_400_000, 0);
    assert!(steps_in(0, month, step) <= 10);
    for (since, until, max) in [(7, 1_000_007, 3), (123_456, 98_765_432, 500), (0, 1, 1)] {
        let step = step_for(since, until, max);
        assert!(
            steps_in(since, until, step) <= max as i64,
            "{since} {until} {max}"
        );
    }
}

#[test]
fn gauges_downsample_to_avg_max_min_sum_and_p95_per_step() {
    // 120 samples, one per second, value = second; two points of 60 s each.
    let pts: Vec<(i64, f64)> = (0..120).map(|i| (i * 1000, i as f64)).collect();
    let series = vec![SeriesData {
        labels: labels(&[("host", "a")]),
        samples: samples(&pts),
    }];
    let mut q = query(MetricKind::Gauge, Aggregation::Avg, 0, 120_000);
    q.max_points = 2;
    let a = evaluate(&q, series.clone());
    assert_eq!(a.step_ms, 60_000);
    assert_eq!(a.series[0].points, vec![(0, 29.5), (60_000, 89.5)]);
    for (agg, expected) in [
        (Aggregation::Max, [59.0, 119.0]),
        (Aggregation::Min, [0.0, 60.0]),
        (Aggregation::Sum, [1770.0, 5370.0]),
        // quantile_over_time: rank 0.95 * 59 = 56.05 between 56 and 57.
        (Aggregation::P95, [56.05, 116.05]),
    ] {
        q.aggregation = agg;
        let got: Vec<f64> = evaluate(&q, series.clone()).series[0]
            .points
            .iter()
            .map(|p| p.1)
            .collect();
        assert!(
            got.iter().zip(expected).all(|(g, e)| (g - e).abs() < 1e-9),
            "{agg:?}: {got:?}"
        );
    }
}

#[test]
fn rate_is_the_per_second_increase_across_resets() {
    // A counter growing 10/s, reset to 0 at 60 s (then 5 at 61 s), growing 10/s again.
    let mut pts: Vec<(i64, f64)> = (0..60).map(|i| (i * 1000, (i * 10) as f64)).collect();
    pts.extend((60..120).map(|i| (i * 1000, ((i - 60) * 10 + 5) as f64)));
    let series = vec![SeriesData {
        labels: labels(&[]),
        samples: samples(&pts),
    }];
    let mut q = query(MetricKind::Counter, Aggregation::Rate, 0, 120_000);
    q.max_points = 2;
    let a = evaluate(&q, series);
    // First step: 59 increases of 10 over 60 s; second: the reset counts 5, then 59 × 10.
    assert_eq!(a.series[0].points.len(), 2);
    assert!(
        (a.series[0].points[0].1 - 590.0 / 60.0).abs() < 1e-9,
        "{:?}",
        a.series[0].points
    );
    assert!(
        (a.series[0].points[1].1 - 595.0 / 60.0).abs() < 1e-9,
        "{:?}",
        a.series[0].points
    );
    assert_eq!(counter_increase(100.0, 3.0), 3.0);
    assert_eq!(counter_increase(3.0, 100.0), 97.0);
}

#[test]
fn rate_uses_the_sample_before_the_window() {
    // Samples at 50 s (before the window) and 70 s: one increase of 20 in the step.
    let series = vec![SeriesData {
        labels: labels(&[]),
        samples: samples(&[(50_000, 100.0), (70_000, 120.0), (200_000, 999.0)]),
    }];
    let mut q = query(MetricKind::Counter, Aggregation::Rate, 60_000, 120_000);
    q.max_points = 1;
    let a = evaluate(&q, series);
    assert_eq!(a.step_ms, 60_000);
    assert_eq!(a.series[0].points, vec![(60_000, 20.0 / 60.0)]);
}

#[test]
fn histogram_quantile_interpolates_like_prometheus() {
    let bounds = [0.1, 0.5, 1.0];
    // 100 observations: 50 ≤ 0.1, 40 in (0.1, 0.5], 9 in (0.5, 1], 1 above.
    let counts = [50, 40, 9, 1];
    // p50: rank 50 is the top of the first bucket.
    assert!((histogram_quantile(0.5, &bounds, &counts).unwrap() - 0.1).abs() < 1e-9);
    // p95: rank 95 is 5 of 9 into (0.5, 1].
    let p95 = histogram_quantile(0.95, &bounds, &counts).unwrap();
    assert!((p95 - (0.5 + 0.5 * 5.0 / 9.0)).abs() < 1e-9, "{p95}");
    // p99.5 lands in +Inf: the largest finite bound.
    assert_eq!(histogram_quantile(0.995, &bounds, &counts), Some(1.0));
    // p25: within the first bucket, from 0.
    assert!((histogram_quantile(0.25, &bounds, &counts).unwrap() - 0.05).abs() < 1e-9);
    assert_eq!(histogram_quantile(0.95, &bounds, &[0, 0, 0, 0]), None);
    assert_eq!(histogram_quantile(0.95, &[], &[3]), Some(0.0));
    assert_eq!(quantile(0.95, &mut []), None);
}

#[test]
fn histogram_p95_uses_each_steps_observations() {
    let h = |counts: [u64; 3]| HistogramValue {
        count: counts.iter().sum(),
        sum: 0.0,
        bounds: vec![0.1, 1.0],
        bucket_counts: counts.to_vec(),
    };
    let sample = |time_ms, counts| Sample {
        time_ms,
        value: 0.0,
        histogram: Some(h(counts)),
    };
    // Cumulative: fast requests in the first minute; the second adds only slow ones.
    let series = vec![SeriesData {
        labels: labels(&[]),
        samples: vec![
            sample(0, [0, 0, 0]),
            sample(59_000, [100, 0, 0]),
            sample(119_000, [100, 100, 0]),
        ],
    }];
    let mut q = query(MetricKind::Histogram, Aggregation::P95, 0, 120_000);
    q.max_points = 2;
    let a = evaluate(&q, series.clone());
    let p = &a.series[0].points;
    assert_eq!(p.len(), 2);
    assert!((p[0].1 - 0.095).abs() < 1e-9, "{p:?}");
    assert!((p[1].1 - (0.1 + 0.9 * 0.95)).abs() < 1e-9, "{p:?}");
    // Rate of a histogram: observations per second.
    q.aggregation = Aggregation::Rate;
    let a = evaluate(&q, series);
    assert_eq!(a.series[0].points[1], (60_000, 100.0 / 60.0));
    // After a reset the later histogram is used whole.
    assert_eq!(
        bucket_increase(Some(&h([5, 5, 0])), &h([1, 0, 0])),
        vec![1, 0, 0]
    );
}

#[test]
fn series_are_capped_by_labels_and_the_cut_is_reported() {
    let series: Vec<SeriesData> = ["c", "a", "b"]
        .iter()
        .map(|host| SeriesData {
            labels: labels(&[("host", host)]),
            samples: samples(&[(0, 1.0)]),
        })
        .collect();
    let mut q = query(MetricKind::Gauge, Aggregation::Avg, 0, 60_000);
    q.max_series = 2;
    let a = evaluate(&q, series.clone());
    assert!(a.truncated);
    let hosts: Vec<&str> = a.series.iter().map(|s| s.labels["host"].as_str()).collect();
    assert_eq!(hosts, ["a", "b"]);
    q.max_series = 3;
    assert!(!evaluate(&q, series).truncated);
}

#[test]
fn samples_outside_the_window_are_left_out() {
    let series = vec![SeriesData {
        labels: labels(&[]),
        samples: samples(&[
            (59_000, 100.0),
            (60_000, 1.0),
            (119_999, 3.0),
            (120_000, 100.0),
        ]),
    }];
    let mut q = query(MetricKind::Gauge, Aggregation::Max, 60_000, 120_000);
    q.max_points = 1;
    assert_eq!(evaluate(&q, series).series[0].points, vec![(60_000, 3.0)]);
}

#[test]
fn defaults_follow_the_kind() {
    assert_eq!(
        Aggregation::default_for(MetricKind::Counter),
        Aggregation::Rate
    );
    assert_eq!(
        Aggregation::default_for(MetricKind::Histogram),
        Aggregation::P95
    );
    assert_eq!(
        Aggregation::default_for(MetricKind::Gauge),
        Aggregation::Avg
    );
    assert_eq!(Aggregation::default_for(MetricKind::Sum), Aggregation::Avg);
}
