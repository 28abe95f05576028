use super::*;

fn span(id: &str, parent: &str, start_ms: i64, duration_us: u64) -> SpanRow {
    SpanRow {
        trace_id: "t1".into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service: format!("svc-{id}"),
        name: format!("op-{id}"),
        start_ms,
        duration_us,
        ..Default::default()
    }
}

fn failed(mut s: SpanRow, message: &str) -> SpanRow {
    s.status = SpanStatus::Error;
    s.status_message = message.into();
    s
}

/// The tree as `id@depth`, in order.
fn shape(spans: &[SpanRow]) -> Vec<String> {
    tree(spans)
        .iter()
        .map(|p| format!("{}@{}", spans[p.index].span_id, p.depth))
        .collect()
}

#[test]
fn spans_come_in_pre_order_with_children_by_start() {
    let spans = vec![
        span("c2", "b", 30, 5),
        span("a", "", 0, 100),
        span("b", "a", 10, 50),
        span("c1", "b", 20, 5),
        span("d", "a", 5, 1),
    ];
    assert_eq!(shape(&spans), ["a@0", "d@1", "b@1", "c1@2", "c2@2"]);
}

#[test]
fn orphans_become_roots_and_cycles_end() {
    let spans = vec![
        span("a", "", 0, 10),
        span("x", "missing", 5, 10),
        span("y", "x", 6, 1),
        // A cycle: p → q → p, and r below q.
        span("p", "q", 50, 1),
        span("q", "p", 40, 1),
        span("r", "q", 60, 1),
        // Its own parent.
        span("s", "s", 70, 1),
    ];
    let got = shape(&spans);
    assert_eq!(got, ["a@0", "x@0", "y@1", "s@0", "q@0", "p@1", "r@1"]);
    assert_eq!(got.len(), spans.len(), "every span exactly once");
}

#[test]
fn duplicate_span_ids_are_each_placed_once() {
    let spans = vec![
        span("a", "", 0, 1),
        span("a", "", 1, 1),
        span("b", "a", 2, 1),
    ];
    let placed = tree(&spans);
    let mut idx: Vec<usize> = placed.iter().map(|p| p.index).collect();
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
}

#[test]
fn a_deep_trace_does_not_overflow() {
    let spans: Vec<SpanRow> = (0..100_000)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else {
                format!("s{}", i - 1)
            };
            span(&format!("s{i}"), &parent, i, 1)
        })
        .collect();
    let placed = tree(&spans);
    assert_eq!(placed.len(), 100_000);
    assert_eq!(placed.last().unwrap().depth, 99_999);
}

#[test]
fn summaries_name_the_root_the_duration_and_the_first_error() {
    let mut spans = vec![
        // An orphan that started first does not displace the true root.
        span("o", "gone", -5, 1),
        span("root", "", 0, 100_000),
        failed(span("b", "root", 50, 10), "connection refused"),
        failed(span("a", "root", 20, 10), ""),
        span("late", "root", 90, 30_000),
    ];
    for s in &mut spans {
        s.trace_id = "t1".into();
    }
    let mut other = span("z", "", 1000, 7);
    other.trace_id = "t2".into();
    spans.push(other);
    let sums = summarize(&spans);
    assert_eq!(sums.len(), 2);
    let t1 = &sums[0];
    assert_eq!(t1.trace_id, "t1");
    assert_eq!(
        (t1.root_service.as_str(), t1.root_name.as_str()),
        ("svc-root", "op-root")
    );
    assert_eq!(t1.start_ms, -5);
    // From -5 ms to the latest end, 90 ms + 30 ms = 120 ms.
    assert_eq!(t1.duration_us, 125_000);
    assert_eq!((t1.spans, t1.error_spans), (5, 2));
    // The earliest error span has no message: its name stands in.
    assert_eq!(t1.first_error, "op-a");
    assert_eq!(
        (sums[1].spans, sums[1].error_spans, sums[1].duration_us),
        (1, 0, 7)
    );
}

#[test]
fn choose_the_slowest_or_the_failed() {
    let s = |id: &str, start_ms: i64, duration_us: u64, error_spans: u32| TraceSummary {
        trace_id: id.into(),
        start_ms,
        duration_us,
        error_spans,
        ..Default::default()
    };
    let all = vec![
        s("a", 0, 10, 0),
        s("b", 1, 30, 1),
        s("c", 2, 20, 0),
        s("d", 3, 5, 2),
    ];
    let ids = |v: &[TraceSummary]| v.iter().map(|t| t.trace_id.clone()).collect::<Vec<_>>();
    let (slow, more) = choose(all.clone(), Order::Slowest, 2);
    assert_eq!(
        (ids(&slow), more),
        (vec!["b".to_owned(), "c".to_owned()], true)
    );
    let (failed, more) = choose(all.clone(), Order::Failed, 5);
    assert_eq!(
        (ids(&failed), more),
        (vec!["d".to_owned(), "b".to_owned()], false)
    );
    let (none, more) = choose(Vec::new(), Order::Failed, 5);
    assert!(none.is_empty() && !more);
    assert_eq!(choose(all, Order::Failed, 1).0.len(), 1);
}
