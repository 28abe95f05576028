//! Kubernetes warning events grouped into incidents: one per involved object, reason and
//! fixed time window.
//!
//! A crash-looping pod reports `BackOff` every few seconds, and an exporter re-posts the
//! same Event object each time its count goes up; one investigation per report would be
//! hundreds. The key ([`cluster_event_key`]) is a pure function of the event (object,
//! reason, and the fixed window its *first* occurrence falls in), so any number of
//! listener replicas, seeing any subset of the reports, agree on it without talking to
//! each other; and re-posts of a series (same first time) keep mapping to the same key
//! for as long as the series goes on.

use std::collections::{BTreeMap, BTreeSet};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::kubernetes::{KubeEvent, ObjectRef};

/// Reasons kept by [`EventFilter::default`]: the kubelet, scheduler, node and volume
/// controllers' warnings that mean a workload is failing (not, say, `Pulling` or a
/// failed probe on a pod that recovers on its own before anyone could look).
pub const DEFAULT_WARNING_REASONS: [&str; 12] = [
    "BackOff",
    "CrashLoopBackOff",
    "OOMKilling",
    "OOMKilled",
    "FailedScheduling",
    "Unhealthy",
    "FailedMount",
    "FailedAttachVolume",
    "Evicted",
    "FailedCreate",
    "NodeNotReady",
    "Failed",
];

/// The default incident window: 10 minutes.
pub const DEFAULT_WINDOW_MS: i64 = 10 * 60 * 1000;

/// The most distinct messages kept per incident.
pub const MAX_INCIDENT_MESSAGES: usize = 5;

/// The longest message kept (bytes, cut on a character boundary).
pub const MAX_INCIDENT_MESSAGE_BYTES: usize = 4096;

/// Which events become incidents, and how they are grouped in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Width of the fixed windows events are grouped in (values below 1 count as 1).
    pub window_ms: i64,
    /// Warning reasons kept; `None` keeps every Warning. Normal events are never kept.
    pub reasons: Option<BTreeSet<String>>,
}

impl Default for EventFilter {
    /// 10-minute windows, [`DEFAULT_WARNING_REASONS`].
    fn default() -> Self {
        EventFilter {
            window_ms: DEFAULT_WINDOW_MS,
            reasons: Some(
                DEFAULT_WARNING_REASONS
                    .iter()
                    .map(|r| (*r).to_owned())
                    .collect(),
            ),
        }
    }
}

impl EventFilter {
    /// Whether `ev` may become (part of) an incident: a Warning whose reason is allowed.
    pub fn allows(&self, ev: &KubeEvent) -> bool {
        ev.warning
            && self
                .reasons
                .as_ref()
                .is_none_or(|reasons| reasons.contains(&ev.reason))
    }
}

/// Warning events of one object and reason within one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIncident {
    /// [`cluster_event_key`] of its events: the exactly-once key.
    pub key: String,
    pub object: ObjectRef,
    pub reason: String,
    /// Sum of the counts of the distinct event series merged.
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Up to [`MAX_INCIDENT_MESSAGES`] distinct messages, earliest first.
    pub messages: Vec<String>,
    /// Distinct reporting components, sorted.
    pub reporters: Vec<String>,
}

/// Characters left as they are in key parts; everything else (`:` included) is
/// percent-encoded so a part can never forge another part's boundary.
const KEY_PART: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// The exactly-once key of the incident an event belongs to:
/// `k8s:<kind>:<namespace>:<name>:<reason>:<window start ms>:<window ms>`, the window
/// being the fixed `window_ms`-wide bucket (aligned to the Unix epoch) that the event's
/// first occurrence falls in. Stateless, so replicas agree.
pub fn cluster_event_key(ev: &KubeEvent, window_ms: i64) -> String {
    let window = window_ms.max(1);
    let start = ev.first_ms.div_euclid(window).saturating_mul(window);
    format!(
        "k8s:{}:{}:{}:{}:{start}:{window}",
        key_part(&ev.object.kind),
        key_part(&ev.object.namespace),
        key_part(&ev.object.name),
        key_part(&ev.reason),
    )
}

/// One sender-chosen part of a key, percent-encoded so it cannot contain a separator.
pub(crate) fn key_part(s: &str) -> String {
    utf8_percent_encode(s, KEY_PART).to_string()
}

/// Incidents from the events `filter` allows, grouped by [`cluster_event_key`], sorted by
/// first occurrence (then key).
///
/// An exporter posts the same Event series again each time it repeats, with a higher
/// count; such repeats (same object, reason, message, reporter and first time) are
/// merged first, keeping the largest count and latest time, so counts are not summed
/// twice. Distinct series of the same incident are then summed.
pub fn aggregate(events: &[KubeEvent], filter: &EventFilter) -> Vec<ClusterIncident> {
    type SeriesId<'a> = (&'a ObjectRef, &'a str, &'a str, &'a str, i64);
    let mut series: BTreeMap<SeriesId<'_>, (u64, i64)> = BTreeMap::new();
    for ev in events.iter().filter(|ev| filter.allows(ev)) {
        let id = (
            &ev.object,
            ev.reason.as_str(),
            ev.message.as_str(),
            ev.reporter.as_str(),
            ev.first_ms,
        );
        let entry = series.entry(id).or_insert((ev.count, ev.last_ms));
        entry.0 = entry.0.max(ev.count);
        entry.1 = entry.1.max(ev.last_ms);
    }

    // Series in first-occurrence order, so each incident's messages come earliest first.
    let mut ordered: Vec<_> = series.into_iter().collect();
    ordered.sort_by_key(|((_, _, message, _, first), _)| (*first, *message));

    let mut incidents: BTreeMap<String, ClusterIncident> = BTreeMap::new();
    for ((object, reason, message, reporter, first_ms), (count, last_ms)) in ordered {
        let probe = KubeEvent {
            warning: true,
            reason: reason.to_owned(),
            message: String::new(),
            object: object.clone(),
            count,
            first_ms,
            last_ms,
            reporter: String::new(),
        };
        let key = cluster_event_key(&probe, filter.window_ms);
        let incident = incidents
            .entry(key.clone())
            .or_insert_with(|| ClusterIncident {
                key,
                object: object.clone(),
                reason: reason.to_owned(),
                count: 0,
                first_ms,
                last_ms,
                messages: Vec::new(),
                reporters: Vec::new(),
            });
        incident.count = incident.count.saturating_add(count);
        incident.first_ms = incident.first_ms.min(first_ms);
        incident.last_ms = incident.last_ms.max(last_ms);
        if incident.object.uid.is_empty() {
            incident.object.uid.clone_from(&object.uid);
        }
        let message = crate::trigger::truncate(message, MAX_INCIDENT_MESSAGE_BYTES);
        if !message.is_empty()
            && incident.messages.len() < MAX_INCIDENT_MESSAGES
            && !incident.messages.contains(&message)
        {
            incident.messages.push(message);
        }
        if !reporter.is_empty() && !incident.reporters.iter().any(|r| r == reporter) {
            incident.reporters.push(reporter.to_owned());
            incident.reporters.sort();
        }
    }
    let mut out: Vec<ClusterIncident> = incidents.into_values().collect();
    out.sort_by(|a, b| (a.first_ms, &a.key).cmp(&(b.first_ms, &b.key)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, reason: &str, first_ms: i64) -> KubeEvent {
        KubeEvent {
            warning: true,
            reason: reason.into(),
            message: format!("{reason} on {name}"),
            object: ObjectRef {
                kind: "Pod".into(),
                namespace: "shop".into(),
                name: name.into(),
                uid: String::new(),
            },
            count: 1,
            first_ms,
            last_ms: first_ms,
            reporter: "kubelet".into(),
        }
    }

    #[test]
    fn key_parts_cannot_forge_boundaries() {
        let mut a = ev("a:b", "X", 0);
        let b = ev("a", "b:X", 0);
        a.reason = "X".into();
        assert_ne!(cluster_event_key(&a, 1000), cluster_event_key(&b, 1000));
        assert!(cluster_event_key(&a, 1000).contains("a%3Ab"));
    }

    #[test]
    fn windows_are_epoch_aligned_and_negative_times_floor() {
        assert_eq!(
            cluster_event_key(&ev("p", "X", 1_250), 1_000),
            "k8s:Pod:shop:p:X:1000:1000"
        );
        assert_eq!(
            cluster_event_key(&ev("p", "X", -1), 1_000),
            "k8s:Pod:shop:p:X:-1000:1000"
        );
        // A zero or negative window is treated as 1 ms, never a division by zero.
        assert_eq!(
            cluster_event_key(&ev("p", "X", 7), 0),
            "k8s:Pod:shop:p:X:7:1"
        );
    }

    #[test]
    fn reposted_series_are_not_counted_twice() {
        let mut first = ev("p", "BackOff", 1_000);
        first.count = 3;
        let mut repost = first.clone();
        repost.count = 5;
        repost.last_ms = 9_000;
        let got = aggregate(&[first, repost], &EventFilter::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].count, 5);
        assert_eq!(got[0].last_ms, 9_000);
    }

    #[test]
    fn messages_are_distinct_bounded_and_earliest_first() {
        let events: Vec<KubeEvent> = (0..8)
            .map(|i| {
                let mut e = ev("p", "Failed", 1_000 + i);
                e.message = format!("message {i}");
                e
            })
            .chain(std::iter::once(ev("p", "Failed", 500)))
            .collect();
        let got = aggregate(&events, &EventFilter::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].count, 9);
        assert_eq!(got[0].messages.len(), MAX_INCIDENT_MESSAGES);
        assert_eq!(got[0].messages[0], "Failed on p");
        assert_eq!(got[0].messages[1], "message 0");
        assert_eq!(got[0].first_ms, 500);
    }

    #[test]
    fn none_reasons_keep_every_warning_but_never_normal() {
        let mut normal = ev("p", "Pulling", 0);
        normal.warning = false;
        let custom = ev("p", "MyOperatorFailed", 0);
        let all = EventFilter {
            window_ms: 1000,
            reasons: None,
        };
        assert!(all.allows(&custom));
        assert!(!all.allows(&normal));
        assert!(!EventFilter::default().allows(&custom));
    }
}
