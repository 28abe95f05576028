#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;

fn r() -> Redactor {
    Redactor::builtin().unwrap()
}

/// The shape `kubectl get pods,events -o json` prints.
fn pods_and_events() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "api-7d4b9c-x2x",
                    "namespace": "shop",
                    "uid": "0b7c-11",
                    "resourceVersion": "4711",
                    "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"env\":\"DB_PASSWORD=p4ss-in-annotation\"}",
                        "team": "payments"
                    }
                },
                "spec": {"containers": [{
                    "name": "api",
                    "image": "ghcr.io/acme/api:1.4.2",
                    "env": [
                        {"name": "DB_PASSWORD", "value": "p4ss-in-env"},
                        {"name": "LOG_LEVEL", "value": "debug"}
                    ]
                }]},
                "status": {"phase": "Running", "containerStatuses": [{"restartCount": 7}]}
            },
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "api-7d4b9c-x2x.17a", "namespace": "shop", "creationTimestamp": "2024-05-01T10:00:00Z"},
                "involvedObject": {"kind": "Pod", "name": "api-7d4b9c-x2x", "namespace": "shop"},
                "reason": "BackOff",
                "message": "Back-off restarting failed container api",
                "type": "Warning",
                "count": 12,
                "firstTimestamp": "2024-05-01T10:00:00Z",
                "lastTimestamp": "2024-05-01T10:05:00Z"
            },
            {
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": "api.17b", "namespace": "shop"},
                "regarding": {"kind": "Deployment", "name": "api"},
                "reason": "ScalingReplicaSet",
                "note": "Scaled up replica set api-7d4b9c to 3",
                "type": "Normal",
                "eventTime": "2024-05-01T10:01:00.123456Z",
                "series": {"count": 2, "lastObservedTime": "2024-05-01T10:02:00.5Z"}
            }
        ]
    })
}

#[test]
fn a_list_of_pods_and_events_becomes_objects_and_events() {
    let rep = parse(&pods_and_events().to_string(), &r()).unwrap();
    assert_eq!(rep.objects.len(), 1);
    let pod = &rep.objects[0];
    assert_eq!(
        (pod.kind.as_str(), pod.namespace.as_str(), pod.name.as_str()),
        ("Pod", "shop", "api-7d4b9c-x2x")
    );
    assert_eq!(
        (pod.uid.as_str(), pod.resource_version.as_str()),
        ("0b7c-11", "4711")
    );
    let v: Value = serde_json::from_str(&pod.json).unwrap();
    assert!(v["metadata"].get("managedFields").is_none());
    assert!(v["metadata"]["annotations"].get(LAST_APPLIED).is_none());
    assert_eq!(v["metadata"]["annotations"]["team"], "payments");
    assert_eq!(v["status"]["containerStatuses"][0]["restartCount"], 7);
    assert_eq!(
        v["spec"]["containers"][0]["env"][0]["value"],
        marker("p4ss-in-env").as_str()
    );
    assert_eq!(v["spec"]["containers"][0]["env"][1]["value"], "debug");
    assert!(!pod.json.contains("p4ss"), "{}", pod.json);

    assert_eq!(
        rep.events,
        vec![
            KubeEvent {
                namespace: "shop".into(),
                name: "api-7d4b9c-x2x.17a".into(),
                r#type: "Warning".into(),
                reason: "BackOff".into(),
                involved_kind: "Pod".into(),
                involved_name: "api-7d4b9c-x2x".into(),
                message: "Back-off restarting failed container api".into(),
                count: 12,
                time_ms: Some(1_714_557_900_000),
            },
            KubeEvent {
                namespace: "shop".into(),
                name: "api.17b".into(),
                r#type: "Normal".into(),
                reason: "ScalingReplicaSet".into(),
                involved_kind: "Deployment".into(),
                involved_name: "api".into(),
                message: "Scaled up replica set api-7d4b9c to 3".into(),
                count: 2,
                time_ms: Some(1_714_557_720_500),
            },
        ]
    );
    assert!(rep.configs.is_empty());
}

#[test]
fn secret_values_are_digests_before_anything_leaves() {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "shop",
            "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
        "data": {"password": "aHVudGVyMg==", "user": "YXBp"},
        "stringData": {"url": "postgres://api:hunter2@db/shop"}
    });
    let rep = parse(&secret.to_string(), &r()).unwrap();
    let json = &rep.objects[0].json;
    for leaked in ["aHVudGVyMg", "YXBp", "hunter2"] {
        assert!(!json.contains(leaked), "{leaked} in {json}");
    }
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["data"]["password"], marker("aHVudGVyMg==").as_str());
    assert_eq!(
        v["stringData"]["url"],
        marker("postgres://api:hunter2@db/shop").as_str()
    );
    assert_eq!(v["type"], "Opaque");
}

#[test]
fn config_maps_are_objects_and_redacted_snapshots() {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "api-config", "namespace": "shop"},
        "data": {"LOG_LEVEL": "info", "API_TOKEN": "tok-123456789"}
    });
    let rep = parse(&cm.to_string(), &r()).unwrap();
    assert_eq!(rep.configs.len(), 1);
    let c = &rep.configs[0];
    assert_eq!(
        (c.namespace.as_str(), c.name.as_str()),
        ("shop", "api-config")
    );
    assert_eq!(
        c.content,
        format!("API_TOKEN: {}\nLOG_LEVEL: info\n", marker("tok-123456789"))
    );
    assert!(!rep.objects[0].json.contains("tok-123456789"));
}

#[test]
fn malformed_reports_name_the_item_and_the_field() {
    let cases = [
        ("{not json".to_owned(), "the cluster report is not JSON"),
        ("[1,2]".to_owned(), "the report: must be a JSON object"),
        (
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}).to_string(),
            "the object: kind is required",
        ),
        (
            json!({"kind": "List", "apiVersion": "v1", "items": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {}}
            ]})
            .to_string(),
            "items[1]: metadata.name is required",
        ),
        (
            json!({"kind": "List", "apiVersion": "v1", "items": [{"kind": "Pod", "metadata": {"name": "a"}}]}).to_string(),
            "items[0]: apiVersion is required",
        ),
        (
            json!({"kind": "List", "apiVersion": "v1", "items": {}}).to_string(),
            "the List: items must be an array",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "lastTimestamp": "yesterday"}).to_string(),
            "the object: lastTimestamp is not an RFC 3339 time",
        ),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"n": 1}}).to_string(),
            "the object: data.n must be a string",
        ),
    ];
    for (input, want) in cases {
        let e = parse(&input, &r()).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e} / {want}");
    }
    let big = " ".repeat(MAX_JSON_BYTES + 1);
    assert_eq!(
        parse(&big, &r()).unwrap_err(),
        KubeError::TooLarge(MAX_JSON_BYTES + 1)
    );
}
