//! Kubernetes Events in both API versions and the layouts exporters post, through
//! normalization, aggregation into incidents, and triggers.
//!
//! Fixtures:
//! - `CAPTURED_CORE_V1`: the Event body shown in the OpenTelemetry Collector's
//!   `k8s_event_input` documentation (a kubelet `Pulling` event as the API returns it).
//! - `BACKOFF_CORE_V1` / `BACKOFF_EVENTS_V1`: the same shape with the kubelet's
//!   `BackOff` warning ("Back-off restarting failed container"); the `events.k8s.io/v1`
//!   form uses the fields the Kubernetes API reference gives for that version
//!   (`regarding`, `note`, `deprecatedCount`, `deprecatedFirstTimestamp`,
//!   `deprecatedLastTimestamp`, `deprecatedSource`, `reportingController`), i.e. what
//!   the API server serves for the same Event.
//! - `SERIES_*`: an Event recorded through the newer events API (`eventTime`, `series`
//!   with `count` and `lastObservedTime`, no legacy timestamps), in both versions.
//! - `EXPORTER_WEBHOOK`: what kubernetes-event-exporter's webhook sink posts without a
//!   layout: the core `v1` Event plus `clusterName` and the involved object's labels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use warden_triggers::{
    EventFilter, KubeEvent, ObjectRef, PayloadError, Trigger, TriggerKind, aggregate,
    cluster_event_key, kubernetes_events,
};

const CAPTURED_CORE_V1: &str = r#"{
    "count": 1,
    "eventTime": null,
    "firstTimestamp": "2020-08-13T16:43:57Z",
    "involvedObject": {
      "apiVersion": "v1",
      "fieldPath": "spec.containers{stanza}",
      "kind": "Pod",
      "name": "stanza-g6rzd",
      "namespace": "default",
      "resourceVersion": "18292818",
      "uid": "47d965e6-4bb3-4c58-a089-1a8b16bf21b0"
    },
    "lastTimestamp": "2020-08-13T16:43:57Z",
    "message": "Pulling image \"observiq/stanza:dev\"",
    "metadata": {
      "creationTimestamp": "2020-08-13T16:43:57Z",
      "name": "stanza-g6rzd.162ae19292cebe25",
      "namespace": "default",
      "resourceVersion": "29923",
      "selfLink": "/api/v1/namespaces/default/events/stanza-g6rzd.162ae19292cebe25",
      "uid": "d210b74b-5c58-473f-ac51-3e21f6f8e2d1"
    },
    "reason": "Pulling",
    "reportingComponent": "",
    "reportingInstance": "",
    "source": {
      "component": "kubelet",
      "host": "kube-master-1"
    },
    "type": "Normal"
}"#;

const BACKOFF_CORE_V1: &str = r#"{
    "apiVersion": "v1",
    "kind": "Event",
    "count": 12,
    "eventTime": null,
    "firstTimestamp": "2020-08-13T16:43:57Z",
    "lastTimestamp": "2020-08-13T16:49:12Z",
    "involvedObject": {
      "apiVersion": "v1",
      "fieldPath": "spec.containers{checkout}",
      "kind": "Pod",
      "name": "checkout-7d9f8c6b5-x4kpq",
      "namespace": "shop",
      "uid": "9f1c1e3a-52f4-4c2e-9a43-5c1e8e0d2b71"
    },
    "message": "Back-off restarting failed container checkout in pod checkout-7d9f8c6b5-x4kpq_shop(9f1c1e3a-52f4-4c2e-9a43-5c1e8e0d2b71)",
    "metadata": {
      "creationTimestamp": "2020-08-13T16:43:57Z",
      "name": "checkout-7d9f8c6b5-x4kpq.162ae1a0c3b2e4f1",
      "namespace": "shop"
    },
    "reason": "BackOff",
    "reportingComponent": "",
    "reportingInstance": "",
    "source": {"component": "kubelet", "host": "worker-2"},
    "type": "Warning"
}"#;

const BACKOFF_EVENTS_V1: &str = r#"{
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "deprecatedCount": 12,
    "eventTime": null,
    "deprecatedFirstTimestamp": "2020-08-13T16:43:57Z",
    "deprecatedLastTimestamp": "2020-08-13T16:49:12Z",
    "regarding": {
      "apiVersion": "v1",
      "fieldPath": "spec.containers{checkout}",
      "kind": "Pod",
      "name": "checkout-7d9f8c6b5-x4kpq",
      "namespace": "shop",
      "uid": "9f1c1e3a-52f4-4c2e-9a43-5c1e8e0d2b71"
    },
    "note": "Back-off restarting failed container checkout in pod checkout-7d9f8c6b5-x4kpq_shop(9f1c1e3a-52f4-4c2e-9a43-5c1e8e0d2b71)",
    "metadata": {
      "creationTimestamp": "2020-08-13T16:43:57Z",
      "name": "checkout-7d9f8c6b5-x4kpq.162ae1a0c3b2e4f1",
      "namespace": "shop"
    },
    "reason": "BackOff",
    "reportingController": "",
    "reportingInstance": "",
    "deprecatedSource": {"component": "kubelet", "host": "worker-2"},
    "type": "Warning"
}"#;

const SERIES_CORE_V1: &str = r#"{
    "apiVersion": "v1",
    "kind": "Event",
    "eventTime": "2024-05-01T10:00:00.123456Z",
    "firstTimestamp": null,
    "lastTimestamp": null,
    "series": {"count": 4, "lastObservedTime": "2024-05-01T10:03:30.000000Z"},
    "involvedObject": {"kind": "Node", "name": "worker-3", "uid": "worker-3"},
    "message": "Node worker-3 status is now: NodeNotReady",
    "metadata": {"name": "worker-3.17c9", "namespace": "default"},
    "reason": "NodeNotReady",
    "reportingComponent": "node-controller",
    "reportingInstance": "",
    "action": "NodeNotReady",
    "type": "Warning"
}"#;

const SERIES_EVENTS_V1: &str = r#"{
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "eventTime": "2024-05-01T10:00:00.123456Z",
    "series": {"count": 4, "lastObservedTime": "2024-05-01T10:03:30.000000Z"},
    "regarding": {"kind": "Node", "name": "worker-3", "uid": "worker-3"},
    "note": "Node worker-3 status is now: NodeNotReady",
    "metadata": {"name": "worker-3.17c9", "namespace": "default"},
    "reason": "NodeNotReady",
    "reportingController": "node-controller",
    "reportingInstance": "",
    "action": "NodeNotReady",
    "type": "Warning"
}"#;

const EXPORTER_WEBHOOK: &str = r#"{
    "metadata": {"name": "db-0.17a3c0b0e2f4a1b2", "namespace": "data", "uid": "4c2f8d3e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
                 "creationTimestamp": "2024-05-01T09:58:00Z"},
    "reason": "OOMKilling",
    "message": "Memory cgroup out of memory: Killed process 4242 (postgres)",
    "source": {"component": "kernel-monitor", "host": "worker-1"},
    "firstTimestamp": "2024-05-01T09:58:00Z",
    "lastTimestamp": "2024-05-01T09:58:00Z",
    "count": 1,
    "type": "Warning",
    "eventTime": null,
    "reportingComponent": "",
    "reportingInstance": "",
    "clusterName": "prod-eu",
    "involvedObject": {
      "kind": "Pod", "namespace": "data", "name": "db-0", "uid": "77e0b6a2-3c1d-4f5e-9a8b-7c6d5e4f3a2b",
      "apiVersion": "v1", "resourceVersion": "123456",
      "labels": {"app.kubernetes.io/name": "postgres", "statefulset.kubernetes.io/pod-name": "db-0"},
      "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-04-30T08:00:00Z"}
    }
}"#;

fn one(body: &str) -> KubeEvent {
    let mut events = kubernetes_events(body.as_bytes()).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

#[test]
fn the_captured_core_v1_event_parses_to_its_values() {
    let ev = one(CAPTURED_CORE_V1);
    assert_eq!(
        ev,
        KubeEvent {
            warning: false,
            reason: "Pulling".into(),
            message: "Pulling image \"observiq/stanza:dev\"".into(),
            object: ObjectRef {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "stanza-g6rzd".into(),
                uid: "47d965e6-4bb3-4c58-a089-1a8b16bf21b0".into(),
            },
            count: 1,
            first_ms: 1_597_337_037_000,
            last_ms: 1_597_337_037_000,
            reporter: "kubelet".into(),
        }
    );
}

#[test]
fn both_api_versions_normalize_identically() {
    let core = one(BACKOFF_CORE_V1);
    assert_eq!(core, one(BACKOFF_EVENTS_V1));
    assert!(core.warning);
    assert_eq!(core.count, 12);
    assert_eq!(core.last_ms - core.first_ms, (5 * 60 + 15) * 1000);
    assert_eq!(core.reporter, "kubelet");

    let series = one(SERIES_CORE_V1);
    assert_eq!(series, one(SERIES_EVENTS_V1));
    assert_eq!(
        series.count, 4,
        "series.count when there is no legacy count"
    );
    assert_eq!(
        series.first_ms % 1000,
        123,
        "eventTime keeps its microseconds (as ms)"
    );
    assert_eq!(series.last_ms - series.first_ms, 3 * 60_000 + 29_877);
    assert_eq!(series.object.namespace, "", "a Node is cluster-scoped");
    assert_eq!(series.reporter, "node-controller");
}

#[test]
fn the_exporters_webhook_body_is_a_core_event_with_extras() {
    let ev = one(EXPORTER_WEBHOOK);
    assert!(ev.warning);
    assert_eq!(ev.reason, "OOMKilling");
    assert_eq!(ev.object.name, "db-0");
    assert_eq!(ev.object.namespace, "data");
    assert_eq!(ev.reporter, "kernel-monitor");
}

#[test]
fn every_batch_layout_reads_the_same_events() {
    let compact = |s: &str| {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(s).unwrap()).unwrap()
    };
    let bodies = [BACKOFF_CORE_V1, SERIES_EVENTS_V1, EXPORTER_WEBHOOK];
    let array = format!("[{}]", bodies.join(","));
    let list = format!(
        r#"{{"apiVersion":"v1","kind":"EventList","items":[{}]}}"#,
        bodies.join(",")
    );
    let ndjson: String = bodies.iter().map(|b| compact(b) + "\n").collect();
    let from_array = kubernetes_events(array.as_bytes()).unwrap();
    assert_eq!(from_array.len(), 3);
    assert_eq!(from_array, kubernetes_events(list.as_bytes()).unwrap());
    assert_eq!(from_array, kubernetes_events(ndjson.as_bytes()).unwrap());
    assert_eq!(from_array[0], one(BACKOFF_CORE_V1));
}

fn backoff(name: &str, first_ms: i64, count: u64) -> KubeEvent {
    let mut ev = one(BACKOFF_CORE_V1);
    ev.object.name = name.into();
    ev.first_ms = first_ms;
    ev.last_ms = first_ms + 30_000;
    ev.count = count;
    ev
}

#[test]
fn aggregation_groups_per_object_reason_and_window_and_ignores_normal_events() {
    let window = EventFilter::default().window_ms;
    let t0 = 1_700_000_400_000; // a multiple of ten minutes
    assert_eq!(t0 % window, 0);
    let mut failed = backoff("checkout-7d9f8c6b5-x4kpq", t0 + 3_000, 2);
    failed.reason = "Failed".into();
    failed.message = "Error: ImagePullBackOff".into();
    let mut pulling = one(CAPTURED_CORE_V1);
    pulling.first_ms = t0;
    let mut unlisted = backoff("checkout-7d9f8c6b5-x4kpq", t0, 1);
    unlisted.reason = "DNSConfigForming".into();
    let events = vec![
        backoff("checkout-7d9f8c6b5-x4kpq", t0 + 1_000, 3),
        backoff("checkout-7d9f8c6b5-x4kpq", t0 + 2_000, 4), // another series, same incident
        backoff("checkout-7d9f8c6b5-x4kpq", t0 + window + 1, 5), // next window
        backoff("payments-5c6d7f8b9-b2c3d", t0 + 1_000, 6), // another object
        failed,                                             // another reason
        pulling,                                            // Normal: ignored
        unlisted,                                           // reason not kept by default
    ];
    let incidents = aggregate(&events, &EventFilter::default());
    let summary: Vec<(&str, &str, u64)> = incidents
        .iter()
        .map(|i| (i.object.name.as_str(), i.reason.as_str(), i.count))
        .collect();
    assert_eq!(
        summary,
        [
            ("checkout-7d9f8c6b5-x4kpq", "BackOff", 7),
            ("payments-5c6d7f8b9-b2c3d", "BackOff", 6),
            ("checkout-7d9f8c6b5-x4kpq", "Failed", 2),
            ("checkout-7d9f8c6b5-x4kpq", "BackOff", 5),
        ]
    );
    let first = &incidents[0];
    assert_eq!(first.first_ms, t0 + 1_000);
    assert_eq!(first.last_ms, t0 + 2_000 + 30_000);
    assert_eq!(first.messages.len(), 1, "both series say the same thing");
    assert_eq!(first.reporters, ["kubelet"]);
    assert_eq!(first.key, cluster_event_key(&events[0], window));
    assert_ne!(first.key, incidents[3].key);

    let everything = EventFilter {
        window_ms: window,
        reasons: None,
    };
    assert_eq!(
        aggregate(&events, &everything).len(),
        5,
        "DNSConfigForming kept, Pulling not"
    );
}

#[test]
fn replicas_seeing_different_reports_agree_on_keys_and_reposts_do_not_double_count() {
    let t0 = 1_700_000_400_000;
    let early = backoff("checkout-7d9f8c6b5-x4kpq", t0 + 1_000, 3);
    let mut repost = early.clone(); // the exporter re-posts the series as it grows
    repost.count = 9;
    repost.last_ms = t0 + 500_000;
    let filter = EventFilter::default();
    let replica_a = aggregate(std::slice::from_ref(&early), &filter);
    let replica_b = aggregate(std::slice::from_ref(&repost), &filter);
    assert_eq!(replica_a[0].key, replica_b[0].key);
    let both = aggregate(&[early, repost], &filter);
    assert_eq!(both.len(), 1);
    assert_eq!(
        both[0].count, 9,
        "the largest count of the series, not 3 + 9"
    );
    assert_eq!(both[0].last_ms, t0 + 500_000);
}

#[test]
fn an_incident_becomes_a_cluster_event_trigger_for_its_workload() {
    let incidents = aggregate(&[one(BACKOFF_EVENTS_V1)], &EventFilter::default());
    let t = Trigger::from_incident(&incidents[0]);
    assert_eq!(t.kind, TriggerKind::ClusterEvent);
    assert_eq!(t.keys, vec![incidents[0].key.clone()]);
    assert_eq!(
        t.title,
        "BackOff: Pod shop/checkout-7d9f8c6b5-x4kpq (12 times)"
    );
    assert_eq!(t.service, "checkout");
    assert_eq!(t.occurred_at_ms, 1_597_337_037_000);
    assert_eq!(t.labels["trigger.source"], "kubernetes");
    assert_eq!(t.labels["kubernetes.namespace"], "shop");
    assert!(
        t.description
            .contains("Back-off restarting failed container checkout")
    );
    assert!(
        t.description
            .contains("between 2020-08-13T16:43:57Z and 2020-08-13T16:49:12Z")
    );
    assert_eq!(t.detail["reason"], "BackOff");
}

#[test]
fn malformed_events_are_refused_naming_the_event_and_field() {
    let good = BACKOFF_CORE_V1;
    let nameless = BACKOFF_CORE_V1.replace(r#""name": "checkout-7d9f8c6b5-x4kpq","#, "");
    let body = format!("[{good},{good},{nameless}]");
    assert_eq!(
        kubernetes_events(body.as_bytes()).unwrap_err().to_string(),
        "kubernetes event 3: involvedObject.name is missing"
    );
    let bad_time = BACKOFF_EVENTS_V1.replace("2020-08-13T16:49:12Z", "16:49");
    let e = kubernetes_events(bad_time.as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("kubernetes event 1: deprecatedLastTimestamp is not an RFC 3339 time"),
        "{e}"
    );
    let e = kubernetes_events(b"{\"items\": 5}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "kubernetes events: `items` must be an array of Events"
    );
    let e = kubernetes_events(b"{} {").unwrap_err();
    assert!(matches!(e, PayloadError::NotJson { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("kubernetes events is not valid JSON")
    );
}
