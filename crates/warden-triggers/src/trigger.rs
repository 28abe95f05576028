//! One normalized trigger per thing worth investigating, whatever sent it: bounded text
//! for a person and a model, bounded labels for routing, the exactly-once keys, and the
//! parsed source as `detail`.
//!
//! Keys: one per firing alert ([`crate::alert_key`]), one per incident
//! ([`crate::cluster_event_key`]), one per deployment ([`crate::Deployment::dedupe_key`]).
//! A trigger is new when any of its keys is new; a listener records the keys it acted on
//! and drops a trigger all of whose keys it has seen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aggregate::ClusterIncident;
use crate::alertmanager::{Alert, AlertNotification, alert_key};
use crate::deployment::Deployment;
use crate::json::format_ms;
use crate::kubernetes::ObjectRef;

/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Most labels on a trigger; the trigger's own (`trigger.source`, ...) come first.
pub const MAX_LABELS: usize = 32;
/// Labels with a longer name are dropped (a cut name would be a different label).
pub const MAX_LABEL_NAME_BYTES: usize = 128;
/// Longer label values are cut.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Most alerts listed in an alert trigger's `detail` (all of them still have keys).
pub const MAX_DETAIL_ALERTS: usize = 100;

/// What kind of thing triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TriggerKind {
    Alert,
    ClusterEvent,
    Deployment,
}

/// A normalized investigation trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// Exactly-once keys (see the module docs); never empty, no duplicates.
    pub keys: Vec<String>,
    /// One line, at most [`MAX_TITLE_BYTES`].
    pub title: String,
    /// At most [`MAX_DESCRIPTION_BYTES`].
    pub description: String,
    /// The service it is about, best guess; may be empty.
    pub service: String,
    /// At most [`MAX_LABELS`], names at most [`MAX_LABEL_NAME_BYTES`], values at most
    /// [`MAX_LABEL_VALUE_BYTES`].
    pub labels: BTreeMap<String, String>,
    pub occurred_at_ms: i64,
    /// The parsed source (notification, incident or deployment) as JSON.
    pub detail: Value,
}

impl Trigger {
    /// All firing alerts of one group notification as one trigger, with one key per
    /// alert; `None` when nothing fires (a resolved-only notification). The service is
    /// the first of the labels `service`, `job`, `app`, `namespace` found in the common
    /// labels, else in the first firing alert; the time is the earliest `startsAt`.
    pub fn from_alerts(n: &AlertNotification) -> Option<Trigger> {
        let earliest = n.firing.iter().map(|a| a.starts_at_ms).min()?;
        let mut keys: Vec<String> = Vec::with_capacity(n.firing.len());
        for key in n.firing.iter().map(alert_key) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }

        let name = n.common_labels.get("alertname").cloned().or_else(|| {
            let first = n.firing[0].labels.get("alertname")?;
            n.firing
                .iter()
                .all(|a| a.labels.get("alertname") == Some(first))
                .then(|| first.clone())
        });
        let summary = ["summary", "message", "description"].iter().find_map(|k| {
            n.common_annotations.get(*k).or_else(|| {
                (n.firing.len() == 1)
                    .then(|| n.firing[0].annotations.get(*k))
                    .flatten()
            })
        });
        let count = n.firing.len();
        let mut title = match (&name, count) {
            (Some(name), 1) => name.clone(),
            (Some(name), _) => format!("{name} ({count} firing)"),
            (None, _) => format!("{count} alerts firing"),
        };
        if let Some(summary) = summary {
            title = format!("{title}: {summary}");
        }

        let service = ["service", "job", "app", "namespace"]
            .iter()
            .find_map(|k| {
                n.common_labels
                    .get(*k)
                    .or_else(|| n.firing[0].labels.get(*k))
            })
            .cloned()
            .unwrap_or_default();

        let mut labels = Labels::default();
        labels.put("trigger.source", "alertmanager");
        labels.put("alertmanager.receiver", &n.receiver);
        for (k, v) in n.group_labels.iter().chain(&n.common_labels) {
            labels.put(k, v);
        }

        let mut text = Bounded::new(MAX_DESCRIPTION_BYTES);
        text.push(&format!("{count} alert(s) firing"));
        if !n.resolved.is_empty() {
            text.push(&format!(", {} resolved", n.resolved.len()));
        }
        if !n.receiver.is_empty() {
            text.push(&format!(" (receiver \"{}\")", n.receiver));
        }
        text.push(".\n");
        if !n.external_url.is_empty() {
            text.push(&format!("Alertmanager: {}\n", n.external_url));
        }
        if n.truncated_alerts > 0 {
            text.push(&format!(
                "{} more alert(s) of this group were left out by the receiver's max_alerts.\n",
                n.truncated_alerts
            ));
        }
        for (i, alert) in n.firing.iter().enumerate() {
            if text.is_full() {
                break;
            }
            describe_alert(&mut text, i + 1, alert);
        }

        let listed: Vec<Value> = n
            .firing
            .iter()
            .take(MAX_DETAIL_ALERTS)
            .map(|a| {
                json!({
                    "fingerprint": a.fingerprint,
                    "startsAt": format_ms(a.starts_at_ms),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "generatorURL": a.generator_url,
                })
            })
            .collect();
        let detail = json!({
            "source": "alertmanager",
            "receiver": n.receiver,
            "status": n.status,
            "groupKey": n.group_key,
            "groupLabels": n.group_labels,
            "commonLabels": n.common_labels,
            "commonAnnotations": n.common_annotations,
            "externalURL": n.external_url,
            "truncatedAlerts": n.truncated_alerts,
            "firing": listed,
            "firingNotListed": count.saturating_sub(MAX_DETAIL_ALERTS),
            "resolvedCount": n.resolved.len(),
        });

        Some(Trigger {
            kind: TriggerKind::Alert,
            keys,
            title: one_line(&title),
            description: text.finish(),
            service,
            labels: labels.0,
            occurred_at_ms: earliest,
            detail,
        })
    }

    /// One Kubernetes incident as a trigger. The service is the workload the object
    /// belongs to as far as its name tells ([`workload_name`]).
    pub fn from_incident(i: &ClusterIncident) -> Trigger {
        let object = describe_object(&i.object);
        let mut title = format!("{}: {object}", i.reason);
        if i.count > 1 {
            title.push_str(&format!(" ({} times)", i.count));
        }
        let mut text = Bounded::new(MAX_DESCRIPTION_BYTES);
        text.push(&format!(
            "Kubernetes reported {} {} time(s) for {object} between {} and {}",
            i.reason,
            i.count,
            format_ms(i.first_ms),
            format_ms(i.last_ms)
        ));
        if !i.reporters.is_empty() {
            text.push(&format!(" (reported by {})", i.reporters.join(", ")));
        }
        text.push(".\n");
        if !i.messages.is_empty() {
            text.push("\nMessages:\n");
            for m in &i.messages {
                text.push(&format!("- {m}\n"));
            }
        }
        let mut labels = Labels::default();
        labels.put("trigger.source", "kubernetes");
        labels.put("kubernetes.kind", &i.object.kind);
        labels.put("kubernetes.namespace", &i.object.namespace);
        labels.put("kubernetes.name", &i.object.name);
        labels.put("kubernetes.reason", &i.reason);
        let mut detail = serde_json::to_value(i).unwrap_or(Value::Null);
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("source".into(), "kubernetes".into());
        }
        Trigger {
            kind: TriggerKind::ClusterEvent,
            keys: vec![i.key.clone()],
            title: one_line(&title),
            description: text.finish(),
            service: workload_name(&i.object),
            labels: labels.0,
            occurred_at_ms: i.first_ms,
            detail,
        }
    }

    /// One finished deployment as a trigger.
    pub fn from_deployment(d: &Deployment) -> Trigger {
        let short: String = d.revision.chars().take(12).collect();
        let mut title = format!("Deployment {}: {} {short}", d.state, d.service);
        if !d.environment.is_empty() {
            title.push_str(&format!(" to {}", d.environment));
        }
        let mut text = Bounded::new(MAX_DESCRIPTION_BYTES);
        text.push(&format!(
            "{} reported a deployment of {} ({}) with state {} at {}.\n",
            match d.source {
                crate::DeploySource::GitHub => "GitHub",
                crate::DeploySource::ArgoCd => "Argo CD",
            },
            d.service,
            d.repository,
            d.state,
            format_ms(d.deployed_at_ms)
        ));
        text.push(&format!("Revision: {}\n", d.revision));
        if let Some(prev) = &d.previous_revision {
            text.push(&format!("Previous revision: {prev}\n"));
        }
        if !d.environment.is_empty() {
            text.push(&format!("Environment: {}\n", d.environment));
        }
        if !d.url.is_empty() {
            text.push(&format!("Link: {}\n", d.url));
        }
        let mut labels = Labels::default();
        labels.put("trigger.source", d.source.as_str());
        labels.put("deployment.state", &d.state);
        labels.put("deployment.environment", &d.environment);
        labels.put("deployment.repository", &d.repository);
        let mut detail = serde_json::to_value(d).unwrap_or(Value::Null);
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("source".into(), d.source.as_str().into());
        }
        Trigger {
            kind: TriggerKind::Deployment,
            keys: vec![d.dedupe_key.clone()],
            title: one_line(&title),
            description: text.finish(),
            service: d.service.clone(),
            labels: labels.0,
            occurred_at_ms: d.deployed_at_ms,
            detail,
        }
    }
}

fn describe_alert(text: &mut Bounded, n: usize, a: &Alert) {
    let name = a
        .labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or("alert");
    let rest: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    text.push(&format!(
        "\n{n}. {name} {{{}}} firing since {}\n",
        rest.join(", "),
        format_ms(a.starts_at_ms)
    ));
    for (k, v) in &a.annotations {
        text.push(&format!("   {k}: {v}\n"));
    }
    if !a.generator_url.is_empty() {
        text.push(&format!("   source: {}\n", a.generator_url));
    }
}

fn describe_object(o: &ObjectRef) -> String {
    let kind = if o.kind.is_empty() { "object" } else { &o.kind };
    if o.namespace.is_empty() {
        format!("{kind} {}", o.name)
    } else {
        format!("{kind} {}/{}", o.namespace, o.name)
    }
}

/// The workload a Kubernetes object belongs to, from the names controllers generate:
/// a Deployment's pod `checkout-7d9f8c6b5-x4kpq` and ReplicaSet `checkout-7d9f8c6b5`
/// give `checkout`; a StatefulSet's pod `db-0` gives `db`; a CronJob's Job
/// `backup-28453920` and its pod give `backup`. Generated suffixes use Kubernetes'
/// vowel-free alphabet, so ordinary words are left alone. Other kinds give their name.
pub fn workload_name(o: &ObjectRef) -> String {
    const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
    let generated = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.chars().all(|c| ALPHABET.contains(c))
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts: Vec<&str> = o.name.split('-').collect();
    let strip = |parts: &mut Vec<&str>, test: &dyn Fn(&str) -> bool| {
        if parts.len() > 1 && parts.last().is_some_and(|p| test(p)) {
            parts.pop();
            true
        } else {
            false
        }
    };
    match o.kind.as_str() {
        "Pod" => {
            if strip(&mut parts, &|p| generated(p, 5..=5)) {
                strip(&mut parts, &|p| {
                    generated(p, 6..=10) || (digits(p) && p.len() >= 8)
                });
            } else {
                strip(&mut parts, &digits);
            }
        }
        "ReplicaSet" => {
            strip(&mut parts, &|p| generated(p, 6..=10));
        }
        "Job" => {
            strip(&mut parts, &|p| digits(p) && p.len() >= 8);
        }
        _ => {}
    }
    parts.join("-")
}

/// `s` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    const MARK: &str = "…";
    let budget = max.saturating_sub(if max >= MARK.len() { MARK.len() } else { 0 });
    let mut cut = budget;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = s[..cut].to_owned();
    if max >= MARK.len() {
        out.push_str(MARK);
    }
    out
}

/// Control characters (newlines included) become spaces, then [`MAX_TITLE_BYTES`].
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(flat.trim(), MAX_TITLE_BYTES)
}

/// A string that stops growing past its limit and is cut to it at the end.
struct Bounded {
    buf: String,
    max: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Bounded {
            buf: String::new(),
            max,
        }
    }

    fn is_full(&self) -> bool {
        self.buf.len() > self.max
    }

    fn push(&mut self, s: &str) {
        if !self.is_full() {
            let room = self.max + 1 - self.buf.len();
            // Cut each piece near the limit too, so one huge piece never gets copied whole.
            self.buf.push_str(&truncate(s, room + 4));
        }
    }

    fn finish(self) -> String {
        truncate(self.buf.trim_end(), self.max)
    }
}

/// Labels within the bounds; the first value given for a name wins.
#[derive(Default)]
struct Labels(BTreeMap<String, String>);

impl Labels {
    fn put(&mut self, name: &str, value: &str) {
        if name.is_empty()
            || value.is_empty()
            || name.len() > MAX_LABEL_NAME_BYTES
            || self.0.len() >= MAX_LABELS
            || self.0.contains_key(name)
        {
            return;
        }
        self.0
            .insert(name.to_owned(), truncate(value, MAX_LABEL_VALUE_BYTES));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_char_boundaries_and_marks_the_cut() {
        let s = "ééééé"; // 10 bytes
        assert_eq!(truncate(s, 10), s);
        let cut = truncate(s, 8);
        assert!(cut.len() <= 8, "{}", cut.len());
        assert_eq!(cut, "éé…");
        assert_eq!(truncate(s, 2), "é");
        assert_eq!(truncate(s, 1), "");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn bounded_text_never_exceeds_its_limit() {
        let mut t = Bounded::new(100);
        for _ in 0..50 {
            t.push("ab€cd\n");
        }
        t.push(&"x".repeat(10_000));
        let out = t.finish();
        assert!(out.len() <= 100);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn labels_are_bounded_and_first_wins() {
        let mut l = Labels::default();
        l.put("trigger.source", "alertmanager");
        l.put("trigger.source", "forged");
        l.put(&"n".repeat(MAX_LABEL_NAME_BYTES + 1), "dropped");
        l.put("long", &"v".repeat(1000));
        for i in 0..100 {
            l.put(&format!("k{i:03}"), "v");
        }
        assert_eq!(l.0["trigger.source"], "alertmanager");
        assert_eq!(l.0.len(), MAX_LABELS);
        assert!(l.0["long"].len() <= MAX_LABEL_VALUE_BYTES);
        assert!(l.0.keys().all(|k| k.len() <= MAX_LABEL_NAME_BYTES));
    }

    #[test]
    fn workload_names_strip_generated_suffixes_only() {
        let w = |kind: &str, name: &str| {
            workload_name(&ObjectRef {
                kind: kind.into(),
                name: name.into(),
                ..ObjectRef::default()
            })
        };
        assert_eq!(w("Pod", "checkout-7d9f8c6b5-x4kpq"), "checkout");
        assert_eq!(w("Pod", "node-exporter-x4kpq"), "node-exporter");
        assert_eq!(w("Pod", "db-0"), "db");
        assert_eq!(w("Pod", "backup-28453920-x4kpq"), "backup");
        assert_eq!(w("Pod", "nginx"), "nginx");
        assert_eq!(w("Pod", "my-nginx"), "my-nginx");
        assert_eq!(w("ReplicaSet", "checkout-7d9f8c6b5"), "checkout");
        assert_eq!(w("Job", "backup-28453920"), "backup");
        assert_eq!(w("Node", "ip-10-0-1-5"), "ip-10-0-1-5");
        assert_eq!(w("Deployment", "api-v2"), "api-v2");
    }
}
