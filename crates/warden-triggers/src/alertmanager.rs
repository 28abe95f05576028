//! Prometheus Alertmanager's webhook (`webhook_config`), payload `version: "4"`.
//!
//! Alertmanager posts one notification per alert group and delivers it *at least once*:
//! it repeats the whole group every `group_interval` while anything changes and every
//! `repeat_interval` while it fires, and it retries a 5xx answer until it gets a 2xx. So
//! the same firing alert arrives many times, and the exactly-once key of an alert
//! ([`alert_key`]) is what it *is* (its fingerprint, a hash of its labels) and *when this
//! firing started* (`startsAt`), never anything about the delivery. An alert that
//! resolves and fires again gets a new `startsAt`, and so a new key.
//!
//! Parsing is tolerant: fields added across Alertmanager versions (`groupKey`,
//! `truncatedAlerts`, `fingerprint`) are optional, unknown fields are ignored, and a
//! templated body with a missing or other `version` is accepted when its shape is
//! right. A body that is not JSON, or has no `alerts` array, is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{PayloadError, invalid, quoted};
use crate::json::{parse_body, string_map, text, time_ms, uint};

/// The most alerts one notification may carry. Alertmanager's `max_alerts` on the
/// receiver (0 = unlimited by default) should be set at or below this; it then reports
/// the rest in `truncatedAlerts`, which is kept.
pub const MAX_ALERTS: usize = 1000;

const WHAT: &str = "alertmanager payload";

/// One webhook notification: one alert group, its firing and its resolved alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNotification {
    pub receiver: String,
    /// `firing` when at least one alert of the group fires, else `resolved`.
    pub status: String,
    /// Identifies the group (route and group labels); empty from senders before 0.11.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    /// Backlink to the Alertmanager.
    pub external_url: String,
    pub firing: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// Alerts of the group left out because of the receiver's `max_alerts`.
    pub truncated_alerts: u64,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alertmanager's fingerprint of the label set, or, from senders that do not send
    /// one, [`derive_fingerprint`] of the labels (prefixed `sha256-`).
    pub fingerprint: String,
    pub starts_at_ms: i64,
    /// `None` for Go's zero time (`0001-01-01T00:00:00Z`) or when absent: still firing
    /// with no announced end.
    pub ends_at_ms: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The Prometheus expression browser link of the rule that fired.
    pub generator_url: String,
}

/// Parses an Alertmanager webhook body.
pub fn alertmanager_notification(body: &[u8]) -> Result<AlertNotification, PayloadError> {
    let root = parse_body(WHAT, body)?;
    if !root.is_object() {
        return Err(invalid(WHAT, "the body must be a JSON object"));
    }
    let alerts = match root.get("alerts") {
        None | Some(Value::Null) => return Err(invalid(WHAT, "`alerts` is missing")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(WHAT, "`alerts` must be an array")),
    };
    if alerts.len() > MAX_ALERTS {
        return Err(PayloadError::TooMany {
            what: WHAT,
            items: "alerts",
            limit: MAX_ALERTS,
            hint: "set max_alerts on the webhook receiver",
        });
    }
    let group_status = text(&root, &["status"]).unwrap_or("");
    let mut notification = AlertNotification {
        receiver: text(&root, &["receiver"]).unwrap_or("").to_owned(),
        status: group_status.to_owned(),
        group_key: text(&root, &["groupKey"]).unwrap_or("").to_owned(),
        group_labels: string_map(&root, &["groupLabels"], WHAT, "groupLabels")?,
        common_labels: string_map(&root, &["commonLabels"], WHAT, "commonLabels")?,
        common_annotations: string_map(&root, &["commonAnnotations"], WHAT, "commonAnnotations")?,
        external_url: text(&root, &["externalURL"]).unwrap_or("").to_owned(),
        firing: Vec::new(),
        resolved: Vec::new(),
        truncated_alerts: uint(&root, &["truncatedAlerts"], WHAT, "truncatedAlerts")?.unwrap_or(0),
    };
    for (i, raw) in alerts.iter().enumerate() {
        let where_ = format!("{WHAT}: alert {}", i + 1);
        let (firing, alert) = parse_alert(raw, group_status, &where_)?;
        if firing {
            notification.firing.push(alert);
        } else {
            notification.resolved.push(alert);
        }
    }
    Ok(notification)
}

/// One alert; `true` when it fires.
fn parse_alert(
    raw: &Value,
    group_status: &str,
    where_: &str,
) -> Result<(bool, Alert), PayloadError> {
    if !raw.is_object() {
        return Err(invalid(where_, "must be a JSON object"));
    }
    // Every Alertmanager sends a per-alert status; a template that dropped it falls back
    // to the group's.
    let status = text(raw, &["status"]).unwrap_or(group_status);
    let firing = if status.eq_ignore_ascii_case("firing") {
        true
    } else if status.eq_ignore_ascii_case("resolved") {
        false
    } else if status.is_empty() {
        return Err(invalid(
            where_,
            "status is missing (expected \"firing\" or \"resolved\")",
        ));
    } else {
        return Err(invalid(
            where_,
            format!(
                "status is {}; expected \"firing\" or \"resolved\"",
                quoted(status)
            ),
        ));
    };
    let labels = string_map(raw, &["labels"], where_, "labels")?;
    let starts_at_ms = time_ms(raw, &["startsAt"], where_, "startsAt")?
        .ok_or_else(|| invalid(where_, "startsAt is missing"))?;
    let fingerprint = match text(raw, &["fingerprint"]) {
        Some(f) => f.to_owned(),
        None => derive_fingerprint(&labels),
    };
    let alert = Alert {
        fingerprint,
        starts_at_ms,
        ends_at_ms: time_ms(raw, &["endsAt"], where_, "endsAt")?,
        annotations: string_map(raw, &["annotations"], where_, "annotations")?,
        generator_url: text(raw, &["generatorURL"]).unwrap_or("").to_owned(),
        labels,
    };
    Ok((firing, alert))
}

/// The exactly-once key of a firing alert: `alertmanager:<fingerprint>:<startsAt ms>`.
///
/// The same alert repeated in later notifications (repeat_interval, a retried 5xx, a
/// second receiver or route) has the same key; the same labels firing again after
/// resolving have a new `startsAt` and so a new key. Receiver and group are left out on
/// purpose: one alert routed to two receivers is still one problem.
pub fn alert_key(a: &Alert) -> String {
    format!("alertmanager:{}:{}", a.fingerprint, a.starts_at_ms)
}

/// A fingerprint for senders that send none (Alertmanager before 0.19, hand-written
/// templates): `sha256-` and the first 16 hex digits of SHA-256 over the labels in name
/// order, each name and value length-prefixed so no two label sets encode alike. The
/// prefix keeps it apart from Alertmanager's own 16-hex-digit fingerprints.
pub fn derive_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        for part in [name, value] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let digest = hasher.finalize();
    format!("sha256-{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(alerts: &str) -> Vec<u8> {
        format!(r#"{{"version":"4","status":"firing","receiver":"r","alerts":{alerts}}}"#)
            .into_bytes()
    }

    #[test]
    fn status_falls_back_to_the_group_and_unknown_status_is_refused() {
        let n = alertmanager_notification(&body(
            r#"[{"labels":{"a":"1"},"startsAt":"2024-01-01T00:00:00Z"}]"#,
        ))
        .unwrap();
        assert_eq!(n.firing.len(), 1);
        let e = alertmanager_notification(&body(
            r#"[{"status":"pending","startsAt":"2024-01-01T00:00:00Z"}]"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "alertmanager payload: alert 1: status is \"pending\"; expected \"firing\" or \"resolved\""
        );
    }

    #[test]
    fn missing_starts_at_names_the_alert() {
        let e = alertmanager_notification(&body(
            r#"[{"status":"firing","startsAt":"2024-01-01T00:00:00Z"},{"status":"firing"}]"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "alertmanager payload: alert 2: startsAt is missing"
        );
    }

    #[test]
    fn more_than_the_cap_is_refused_and_the_cap_itself_is_accepted() {
        let one = r#"{"status":"firing","startsAt":"2024-01-01T00:00:00Z"}"#;
        let at_cap = format!("[{}]", vec![one; MAX_ALERTS].join(","));
        assert_eq!(
            alertmanager_notification(&body(&at_cap))
                .unwrap()
                .firing
                .len(),
            MAX_ALERTS
        );
        let over = format!("[{}]", vec![one; MAX_ALERTS + 1].join(","));
        let e = alertmanager_notification(&body(&over)).unwrap_err();
        assert!(
            matches!(
                e,
                PayloadError::TooMany {
                    limit: MAX_ALERTS,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("max_alerts"));
    }

    #[test]
    fn derived_fingerprints_separate_label_boundaries() {
        let ab: BTreeMap<String, String> = [("a".into(), "bc".into())].into();
        let abc: BTreeMap<String, String> = [("ab".into(), "c".into())].into();
        assert_ne!(derive_fingerprint(&ab), derive_fingerprint(&abc));
        assert_eq!(derive_fingerprint(&ab).len(), "sha256-".len() + 16);
    }
}
