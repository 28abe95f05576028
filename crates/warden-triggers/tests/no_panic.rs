//! No input makes a parser panic, and whatever parses becomes a trigger within its
//! bounds. Three kinds of input: arbitrary bytes, JSON built from the field names the
//! parsers look for (so the generator reaches past the first check), and valid bodies
//! with a slice of bytes overwritten.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use warden_triggers::{
    EventFilter, MAX_DESCRIPTION_BYTES, MAX_LABEL_NAME_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS,
    MAX_TITLE_BYTES, Trigger, aggregate, alertmanager_notification, argocd_notification,
    github_deployment_status, github_signature_ok, kubernetes_events,
};

const SEEDS: [&str; 4] = [
    r#"{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{}","truncatedAlerts":2,
        "commonLabels":{"alertname":"A","service":"s"},"commonAnnotations":{"summary":"é ☃"},
        "alerts":[{"status":"firing","labels":{"alertname":"A","job":"j"},"annotations":{"d":"x"},
        "startsAt":"2024-01-01T00:00:00.5+02:00","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f"},
        {"status":"resolved","labels":{},"startsAt":"2024-01-01T00:00:00Z","endsAt":"2024-01-01T01:00:00Z"}]}"#,
    r#"[{"apiVersion":"events.k8s.io/v1","regarding":{"kind":"Pod","namespace":"n","name":"p-0"},
        "reason":"BackOff","type":"Warning","note":"m","eventTime":"2024-01-01T00:00:00.000001Z",
        "series":{"count":3,"lastObservedTime":"2024-01-01T00:01:00Z"}},
        {"involvedObject":{"kind":"Node","name":"w"},"reason":"NodeNotReady","type":"Warning",
        "count":2,"firstTimestamp":"2024-01-01T00:00:00Z","lastTimestamp":"2024-01-01T00:02:00Z"}]"#,
    r#"{"action":"created","deployment_status":{"state":"failure","environment":"prod",
        "created_at":"2024-01-01T00:00:00Z","log_url":"https://ci"},"deployment":{"sha":"abc","environment":"prod"},
        "repository":{"name":"r","full_name":"o/r","html_url":"https://github.com/o/r"}}"#,
    r#"{"app":"shop","revision":"abc","syncStatus":"Synced","healthStatus":"Degraded","phase":"Succeeded",
        "destinationNamespace":"ns","repoURL":"https://git","finishedAt":"2024-01-01T00:00:00Z","previousRevision":"abb"}"#,
];

const KEYS: [&str; 40] = [
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "fingerprint",
    "generatorURL",
    "truncatedAlerts",
    "commonLabels",
    "groupLabels",
    "receiver",
    "items",
    "involvedObject",
    "regarding",
    "name",
    "namespace",
    "kind",
    "reason",
    "type",
    "count",
    "series",
    "firstTimestamp",
    "lastTimestamp",
    "eventTime",
    "deprecatedCount",
    "note",
    "message",
    "deployment_status",
    "deployment",
    "state",
    "sha",
    "created_at",
    "repository",
    "app",
    "revision",
    "phase",
    "finishedAt",
    "metadata",
    "history",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("firing".to_owned()),
            Just("resolved".to_owned()),
            Just("Warning".to_owned()),
            Just("Succeeded".to_owned()),
            Just("success".to_owned()),
            Just("2024-01-01T00:00:00Z".to_owned()),
            Just("0001-01-01T00:00:00Z".to_owned()),
            Just("9999-12-31T23:59:59.999999999+14:00".to_owned()),
            Just("-0001-01-01T00:00:00Z".to_owned()),
            Just("<no value>".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner), 0..6).prop_map(
                |pairs| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<String, Value>>(),
                    )
                }
            ),
        ]
    })
}

fn check_trigger(t: &Trigger) {
    assert!(!t.keys.is_empty());
    assert!(t.title.len() <= MAX_TITLE_BYTES);
    assert!(t.description.len() <= MAX_DESCRIPTION_BYTES);
    assert!(t.labels.len() <= MAX_LABELS);
    for (k, v) in &t.labels {
        assert!(k.len() <= MAX_LABEL_NAME_BYTES && v.len() <= MAX_LABEL_VALUE_BYTES);
    }
}

/// Every parser on one body; every successful parse through its trigger.
fn run_all(body: &[u8]) {
    if let Ok(n) = alertmanager_notification(body)
        && let Some(t) = Trigger::from_alerts(&n)
    {
        check_trigger(&t);
    }
    if let Ok(events) = kubernetes_events(body) {
        let all = EventFilter {
            window_ms: 600_000,
            reasons: None,
        };
        for i in aggregate(&events, &all) {
            check_trigger(&Trigger::from_incident(&i));
        }
    }
    if let Ok(Some(d)) = github_deployment_status("deployment_status", "id-1", body) {
        check_trigger(&Trigger::from_deployment(&d));
    }
    if let Ok(Some(d)) = argocd_notification(body) {
        check_trigger(&Trigger::from_deployment(&d));
    }
    let header = String::from_utf8_lossy(body);
    let _ = github_signature_ok(b"secret", body, Some(&header));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&body);
    }

    #[test]
    fn json_with_the_expected_field_names_never_panics(value in json_value()) {
        run_all(&serde_json::to_vec(&value).unwrap_or_default());
        // The same value as the one field it most likely belongs to.
        for key in ["alerts", "items", "app"] {
            let wrapped = serde_json::json!({ key: value.clone(), "status": "firing" });
            run_all(&serde_json::to_vec(&wrapped).unwrap_or_default());
        }
    }

    #[test]
    fn mangled_valid_bodies_never_panic(
        seed in 0..SEEDS.len(),
        at in any::<prop::sample::Index>(),
        patch in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut body = SEEDS[seed].as_bytes().to_vec();
        let start = at.index(body.len());
        for (i, b) in patch.into_iter().enumerate() {
            if let Some(slot) = body.get_mut(start + i) {
                *slot = b;
            }
        }
        run_all(&body);
    }
}

#[test]
fn the_seeds_are_valid_so_mangling_starts_from_real_bodies() {
    let n = alertmanager_notification(SEEDS[0].as_bytes()).unwrap();
    assert_eq!((n.firing.len(), n.resolved.len()), (1, 1));
    assert_eq!(kubernetes_events(SEEDS[1].as_bytes()).unwrap().len(), 2);
    assert!(
        github_deployment_status("deployment_status", "id-1", SEEDS[2].as_bytes())
            .unwrap()
            .is_some()
    );
    assert!(argocd_notification(SEEDS[3].as_bytes()).unwrap().is_some());
}
