//! Alertmanager webhook bodies as senders document them, through parsing, keys and
//! triggers.
//!
//! Fixtures (values as published; long unrelated fields trimmed):
//! - `AM_V4`: a body Alertmanager 0.25 posted, the sample payload shipped by the
//!   `alertmanager-webhook-types` crate; its fields are the ones the Alertmanager
//!   `webhook_config` documentation lists for `"version": "4"` (with `fingerprint` and
//!   `truncatedAlerts`).
//! - `AM_2018`: the widely cited "Alertmanager Webhook Payload Example" from an
//!   Alertmanager of 2018: version 4 with `groupKey`, but no `fingerprint` and no
//!   `truncatedAlerts` yet.
//! - `GRAFANA`: the example body of Grafana's webhook contact point documentation, an
//!   Alertmanager-shaped body with `"version": "1"` and extra fields.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use warden_triggers::{
    PayloadError, Trigger, TriggerKind, alert_key, alertmanager_notification, derive_fingerprint,
};

const AM_V4: &str = r#"{
  "receiver": "sms",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "alertname": "ProbeFailure",
        "instance": "https://server.example.org",
        "job": "http_checks",
        "monitor": "master",
        "severity": "critical"
      },
      "annotations": {
        "description": "Instance https://server.example.org has been down for over 5m. Job: http_checks",
        "summary": "BlackBox Probe Failure: https://server.example.org"
      },
      "startsAt": "2023-02-06T13:08:45.828Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0\u0026g0.tab=1",
      "fingerprint": "1a30ba71cca2921f"
    }
  ],
  "groupLabels": {
    "alertname": "ProbeFailure"
  },
  "commonLabels": {
    "alertname": "ProbeFailure",
    "instance": "https://server.example.org",
    "job": "http_checks",
    "monitor": "master",
    "severity": "critical"
  },
  "commonAnnotations": {
    "description": "Instance https://server.example.org has been down for over 5m. Job: http_checks",
    "summary": "BlackBox Probe Failure: https://server.example.org"
  },
  "externalURL": "http://prometheus.example.org:9093",
  "version": "4",
  "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}",
  "truncatedAlerts": 0
}"#;

const AM_2018: &str = r#"{
  "receiver": "webhook",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "alertname": "Test",
        "dc": "eu-west-1",
        "instance": "localhost:9090",
        "job": "prometheus24"
      },
      "annotations": {
        "description": "some description"
      },
      "startsAt": "2018-08-03T09:52:26.739266876+02:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://example.com:9090/graph?g0.expr=go_memstats_alloc_bytes+%3E+0\u0026g0.tab=1"
    }
  ],
  "groupLabels": {
    "alertname": "Test",
    "job": "prometheus24"
  },
  "commonLabels": {
    "alertname": "Test",
    "dc": "eu-west-1",
    "instance": "localhost:9090",
    "job": "prometheus24"
  },
  "commonAnnotations": {
    "description": "some description"
  },
  "externalURL": "http://example.com:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"Test\", job=\"prometheus24\"}"
}"#;

const GRAFANA: &str = r#"{
  "receiver": "My Super Webhook",
  "status": "firing",
  "orgId": 1,
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "alertname": "High memory usage",
        "team": "blue",
        "zone": "us-1"
      },
      "annotations": {
        "description": "The system has high memory usage",
        "runbook_url": "https://myrunbook.com/runbook/1234",
        "summary": "This alert was triggered for zone us-1"
      },
      "startsAt": "2021-10-12T09:51:03.157076+02:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
      "fingerprint": "c6eadffa33fcdf37",
      "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
      "dashboardURL": "",
      "panelURL": "",
      "values": {
        "B": 44.23943737541908,
        "C": 1
      }
    },
    {
      "status": "firing",
      "labels": {
        "alertname": "High CPU usage",
        "team": "blue",
        "zone": "eu-1"
      },
      "annotations": {
        "description": "The system has high CPU usage",
        "runbook_url": "https://myrunbook.com/runbook/1234",
        "summary": "This alert was triggered for zone eu-1"
      },
      "startsAt": "2021-10-12T09:56:03.157076+02:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
      "fingerprint": "bc97ff14869b13e3",
      "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT1%2Cteam%3Dblue%2Czone%3Deu-1",
      "dashboardURL": "",
      "panelURL": "",
      "values": {
        "B": 44.23943737541908,
        "C": 1
      }
    }
  ],
  "groupLabels": {},
  "commonLabels": {
    "team": "blue"
  },
  "commonAnnotations": {},
  "externalURL": "https://play.grafana.org/",
  "version": "1",
  "groupKey": "{}:{}",
  "truncatedAlerts": 0,
  "title": "[FIRING:2]  (blue)",
  "state": "alerting",
  "message": "**Firing**\n\nLabels:\n - alertname = T2\n"
}"#;

// 2023-02-06T13:08:45.828Z
const PROBE_STARTS_MS: i64 = 1_675_688_925_828;

#[test]
fn documented_v4_body_parses_to_its_values() {
    let n = alertmanager_notification(AM_V4.as_bytes()).unwrap();
    assert_eq!(n.receiver, "sms");
    assert_eq!(n.status, "firing");
    assert_eq!(
        n.group_key,
        r#"{}/{severity="critical"}:{alertname="ProbeFailure"}"#
    );
    assert_eq!(n.group_labels["alertname"], "ProbeFailure");
    assert_eq!(n.common_labels["job"], "http_checks");
    assert_eq!(n.common_labels.len(), 5);
    assert_eq!(
        n.common_annotations["summary"],
        "BlackBox Probe Failure: https://server.example.org"
    );
    assert_eq!(n.external_url, "http://prometheus.example.org:9093");
    assert_eq!(n.truncated_alerts, 0);
    assert!(n.resolved.is_empty());
    let [a] = n.firing.as_slice() else {
        panic!("one firing alert, got {}", n.firing.len())
    };
    assert_eq!(a.fingerprint, "1a30ba71cca2921f");
    assert_eq!(a.starts_at_ms, PROBE_STARTS_MS);
    assert_eq!(a.ends_at_ms, None, "0001-01-01 is Go's zero time: no end");
    assert_eq!(a.labels["severity"], "critical");
    assert!(a.generator_url.ends_with("probe_success+%3D%3D+0&g0.tab=1"));
    assert_eq!(
        alert_key(a),
        format!("alertmanager:1a30ba71cca2921f:{PROBE_STARTS_MS}")
    );
}

#[test]
fn documented_v4_body_becomes_one_alert_trigger() {
    let n = alertmanager_notification(AM_V4.as_bytes()).unwrap();
    let t = Trigger::from_alerts(&n).unwrap();
    assert_eq!(t.kind, TriggerKind::Alert);
    assert_eq!(t.keys, vec![alert_key(&n.firing[0])]);
    assert_eq!(
        t.title,
        "ProbeFailure: BlackBox Probe Failure: https://server.example.org"
    );
    assert_eq!(t.service, "http_checks", "job, as no service label is set");
    assert_eq!(t.occurred_at_ms, PROBE_STARTS_MS);
    assert_eq!(t.labels["trigger.source"], "alertmanager");
    assert_eq!(t.labels["alertmanager.receiver"], "sms");
    assert_eq!(t.labels["severity"], "critical");
    assert!(
        t.description
            .contains("firing since 2023-02-06T13:08:45.828Z")
    );
    assert!(
        t.description
            .contains("Alertmanager: http://prometheus.example.org:9093")
    );
    assert_eq!(t.detail["firing"][0]["fingerprint"], "1a30ba71cca2921f");
}

#[test]
fn a_repeated_notification_has_the_same_keys() {
    // repeat_interval, a retried 5xx, or the same alert through a second receiver: the
    // delivery differs, the alert does not.
    let again = AM_V4
        .replace(r#""receiver": "sms""#, r#""receiver": "pager""#)
        .replace("has been down for over 5m", "has been down for over 4h");
    let first = Trigger::from_alerts(&alertmanager_notification(AM_V4.as_bytes()).unwrap());
    let second = Trigger::from_alerts(&alertmanager_notification(again.as_bytes()).unwrap());
    assert_eq!(first.unwrap().keys, second.unwrap().keys);
}

#[test]
fn an_alert_that_fires_again_gets_a_new_key() {
    let refired = AM_V4.replace("2023-02-06T13:08:45.828Z", "2023-02-06T15:30:00Z");
    let before = alertmanager_notification(AM_V4.as_bytes()).unwrap();
    let after = alertmanager_notification(refired.as_bytes()).unwrap();
    assert_eq!(before.firing[0].fingerprint, after.firing[0].fingerprint);
    assert_ne!(alert_key(&before.firing[0]), alert_key(&after.firing[0]));
}

#[test]
fn resolved_alerts_land_in_resolved_and_start_nothing() {
    let resolved = AM_V4
        .replace(r#""status": "firing""#, r#""status": "resolved""#)
        .replace("0001-01-01T00:00:00Z", "2023-02-06T13:20:45.828Z");
    let n = alertmanager_notification(resolved.as_bytes()).unwrap();
    assert!(n.firing.is_empty());
    assert_eq!(n.resolved.len(), 1);
    assert_eq!(
        n.resolved[0].ends_at_ms,
        Some(PROBE_STARTS_MS + 12 * 60_000)
    );
    assert_eq!(Trigger::from_alerts(&n), None);

    // One of Grafana's two alerts resolved: the trigger keys only the firing one.
    let mixed = GRAFANA.replacen(r#""status": "firing""#, r#""status": "resolved""#, 2);
    let n = alertmanager_notification(mixed.as_bytes()).unwrap();
    assert_eq!(n.firing.len(), 1);
    assert_eq!(n.resolved[0].fingerprint, "c6eadffa33fcdf37");
    let t = Trigger::from_alerts(&n).unwrap();
    assert_eq!(t.keys, vec![alert_key(&n.firing[0])]);
    assert!(t.description.starts_with("1 alert(s) firing, 1 resolved"));
}

#[test]
fn an_old_sender_without_fingerprints_gets_a_stable_derived_key() {
    let n = alertmanager_notification(AM_2018.as_bytes()).unwrap();
    let a = &n.firing[0];
    assert_eq!(a.fingerprint, derive_fingerprint(&a.labels));
    assert!(a.fingerprint.starts_with("sha256-"));
    assert_eq!(a.starts_at_ms, 1_533_282_746_739);
    assert_eq!(n.truncated_alerts, 0, "absent in 2018, defaults to 0");

    // The same labels in another order: the same key.
    let reordered = AM_2018.replace(
        r#""alertname": "Test",
        "dc": "eu-west-1",
        "instance": "localhost:9090",
        "job": "prometheus24""#,
        r#""job": "prometheus24",
        "instance": "localhost:9090",
        "alertname": "Test",
        "dc": "eu-west-1""#,
    );
    assert_ne!(reordered, AM_2018, "the fixture text was reordered");
    let same = alertmanager_notification(reordered.as_bytes()).unwrap();
    assert_eq!(alert_key(&same.firing[0]), alert_key(a));

    // Another label value is another alert.
    let other = AM_2018.replace(r#""dc": "eu-west-1""#, r#""dc": "us-east-1""#);
    let other = alertmanager_notification(other.as_bytes()).unwrap();
    assert_ne!(alert_key(&other.firing[0]), alert_key(a));
}

#[test]
fn grafanas_documented_body_with_version_1_is_read_by_its_shape() {
    let n = alertmanager_notification(GRAFANA.as_bytes()).unwrap();
    assert_eq!(n.receiver, "My Super Webhook");
    assert_eq!(n.group_key, "{}:{}");
    assert_eq!(n.common_labels["team"], "blue");
    let fingerprints: Vec<&str> = n.firing.iter().map(|a| a.fingerprint.as_str()).collect();
    assert_eq!(fingerprints, ["c6eadffa33fcdf37", "bc97ff14869b13e3"]);
    assert_eq!(n.firing[0].starts_at_ms, 1_634_025_063_157);
    assert_eq!(
        n.firing[1].starts_at_ms - n.firing[0].starts_at_ms,
        5 * 60_000
    );

    let t = Trigger::from_alerts(&n).unwrap();
    assert_eq!(t.keys.len(), 2, "one trigger, one key per firing alert");
    assert_eq!(t.title, "2 alerts firing", "no alertname common to both");
    assert_eq!(t.occurred_at_ms, 1_634_025_063_157, "the earliest startsAt");
    assert_eq!(t.service, "");
    assert!(
        t.description
            .contains("runbook_url: https://myrunbook.com/runbook/1234")
    );
}

#[test]
fn templated_bodies_without_version_are_accepted_when_shaped_right() {
    let without = AM_V4.replace(r#""version": "4","#, "");
    assert!(!without.contains("\"version\""));
    let a = alertmanager_notification(without.as_bytes()).unwrap();
    let b = alertmanager_notification(AM_V4.as_bytes()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn malformed_bodies_are_refused_with_a_message_that_says_what_is_wrong() {
    let cases: [(&str, &str); 7] = [
        ("not json", "alertmanager payload is not valid JSON"),
        ("[]", "alertmanager payload: the body must be a JSON object"),
        (
            r#"{"receiver":"x"}"#,
            "alertmanager payload: `alerts` is missing",
        ),
        (
            r#"{"alerts":{}}"#,
            "alertmanager payload: `alerts` must be an array",
        ),
        (
            r#"{"alerts":[{"status":"firing","startsAt":"soon"}]}"#,
            "alertmanager payload: alert 1: startsAt is not an RFC 3339 time",
        ),
        (
            r#"{"alerts":[{"status":"firing","startsAt":"2024-01-01T00:00:00Z","labels":{"a":{"b":1}}}]}"#,
            "alertmanager payload: alert 1: labels.a must be a string",
        ),
        (
            r#"{"alerts":[],"truncatedAlerts":-3}"#,
            "alertmanager payload: truncatedAlerts must be a non-negative integer",
        ),
    ];
    for (body, expected) in cases {
        let e = alertmanager_notification(body.as_bytes()).unwrap_err();
        assert!(
            e.to_string().starts_with(expected),
            "{body}: got {e}, want {expected}"
        );
        assert!(matches!(
            e,
            PayloadError::Invalid { .. } | PayloadError::NotJson { .. }
        ));
    }
}
